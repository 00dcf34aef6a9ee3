import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type { DataplaneEvents, PolicyParams, SaParams } from '../../../src/dataplane/api.js';
import { EspEngine, createEspTransform, sealEsp } from '../../../src/esp/index.js';
import { EncrId, IntegId } from '../../../src/wire/ikev2/constants.js';
import {
  ANY4, ANY6, fixture, hx, ipv4HeaderOk, ipv4Icmp, ipv4Udp, ipv6Udp, makePair, n, s, saParams, send, sel4, v4, type Suite,
} from './helpers.js';

type Expire = DataplaneEvents['expire'][0];

const GCM128: Suite = { name: 'AES-GCM-16-128', encr: { id: EncrId.ENCR_AES_GCM_16, keyLength: 128 }, integ: IntegId.NONE };
const SUITES: Suite[] = [
  GCM128,
  { name: 'AES-GCM-8-256', encr: { id: EncrId.ENCR_AES_GCM_8, keyLength: 256 }, integ: IntegId.NONE },
  { name: 'AES-GCM-12-192', encr: { id: EncrId.ENCR_AES_GCM_12, keyLength: 192 }, integ: IntegId.NONE },
  { name: 'CHACHA20-POLY1305', encr: { id: EncrId.ENCR_CHACHA20_POLY1305, keyLength: 0 }, integ: IntegId.NONE },
  { name: 'AES-CBC-128/HMAC-SHA2-256-128', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 }, integ: IntegId.AUTH_HMAC_SHA2_256_128 },
  { name: 'AES-CBC-256/HMAC-SHA1-96', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 256 }, integ: IntegId.AUTH_HMAC_SHA1_96 },
  { name: 'AES-CBC-192/HMAC-SHA2-384-192', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 192 }, integ: IntegId.AUTH_HMAC_SHA2_384_192 },
  { name: 'AES-CBC-256/HMAC-SHA2-512-256', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 256 }, integ: IntegId.AUTH_HMAC_SHA2_512_256 },
];

const udpAB = (i = 1, size = 100): Buffer => ipv4Udp('10.1.0.5', '10.2.0.9', 40000 + i, 53, randomBytes(size), i);

function listen(e: EspEngine): Expire[] {
  const got: Expire[] = [];
  e.events.on('expire', (x) => got.push(x));
  return got;
}

function anyPolicy(spi: number, direction: 'in' | 'out' = 'out'): PolicyParams {
  return { direction, local: ANY4, remote: ANY4, mode: 'tunnel', spi, tunnel: null, tag: 'kat' };
}

describe('esp/engine: known answers through the engine', () => {
  function inboundSa(spi: number, encr: SaParams['encr'], integ: SaParams['integ'], esn = false): SaParams {
    return saParams({ spi, direction: 'in', encr, integ, esn, selectors: { local: [ANY4], remote: [ANY4] } });
  }

  it('RFC 7634 A: decapsulates the ChaCha20-Poly1305 ESP example', () => {
    const v = fixture('esp-aead-gcm-chacha-vectors.json').find((x) => s(x, 'id').startsWith('RFC 7634 Appendix A'))!;
    const e = new EspEngine();
    e.addSa(inboundSa(0x0102_0304, { id: EncrId.ENCR_CHACHA20_POLY1305, key: hx(v, 'keymat_rfc7634'), keyLength: 0 }, null));
    const out = e.decapsulate([{ data: hx(v, 'esp_packet'), from: { address: '192.0.2.1', port: 4500 } }]);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.toString('hex'), s(v, 'inner_payload'));
    assert.equal(e.querySa(0x0102_0304, 'in')!.packets, 1n);
  });

  it('Linux xfrm AES-GCM packets, including ESN with the high half inferred as 1 (RFC 4303 A2)', () => {
    for (const v of fixture('scapy-linux-xfrm-reference-esp-packets.json').filter((x) => s(x, 'test').includes('AES-GCM'))) {
      const esn = s(v, 'test').endsWith('ESN');
      const e = new EspEngine();
      const p = inboundSa(0x222, { id: EncrId.ENCR_AES_GCM_16, key: hx(v, 'linux_key_hex'), keyLength: 128 }, null, esn);
      // The kernel's ESN SA was at seq-hi 1: start the window at 2^32 as if 2^32 packets had come.
      e.addSa(p, esn ? { replayStart: 1n << 32n } : {});
      const out = e.decapsulate([{ data: hx(v, 'esp_packet'), from: { address: '10.125.0.2', port: 4500 } }]);
      assert.equal(out.length, 1, s(v, 'test'));
      assert.equal(out[0]!.toString('hex'), s(v, 'inner_payload'));
      if (esn) assert.equal(e.getSa(0x222, 'in')!.replay!.top, (1n << 32n) + BigInt(n(v, 'seq')));
    }
  });

  it('without the ESN high half the xfrm ESN packet fails its tag and is counted', () => {
    const v = fixture('scapy-linux-xfrm-reference-esp-packets.json').find((x) => s(x, 'test').endsWith('AES-GCM - NULL -- ESN'))!;
    const e = new EspEngine();
    e.addSa(inboundSa(0x222, { id: EncrId.ENCR_AES_GCM_16, key: hx(v, 'linux_key_hex'), keyLength: 128 }, null, true));
    assert.deepEqual(e.decapsulate([{ data: hx(v, 'esp_packet'), from: { address: '10.125.0.2', port: 4500 } }]), []);
    assert.equal(e.querySa(0x222, 'in')!.authFailures, 1n);
  });

  const cbcVectors = (): { id: string; spi: number; encr: SaParams['encr']; integ: NonNullable<SaParams['integ']>; packet: Buffer; inner: Buffer }[] => [
    ...fixture('esp-aes-cbc-rfc3602-vectors.json').filter((v) => typeof v['auth_key'] === 'string').map((v) => ({
      id: s(v, 'case'), spi: parseInt(s(v, 'spi'), 16), encr: { id: EncrId.ENCR_AES_CBC, key: hx(v, 'aes_key'), keyLength: 128 },
      integ: { id: IntegId.AUTH_HMAC_SHA1_96, key: hx(v, 'auth_key') }, packet: hx(v, 'esp_packet'), inner: hx(v, 'inner_payload'),
    })),
    ...fixture('wireshark-wiki-ikev2-esp-samples.json').filter((v) => s(v, 'kind').startsWith('esp_AES-CBC')).map((v) => ({
      id: `wiki frame ${n(v, 'frame')}`, spi: parseInt(s(v, 'spi'), 16), encr: { id: EncrId.ENCR_AES_CBC, key: hx(v, 'enc_key'), keyLength: 128 },
      integ: { id: IntegId.AUTH_HMAC_SHA2_256_128, key: hx(v, 'auth_key') }, packet: hx(v, 'esp_packet'), inner: hx(v, 'inner_packet'),
    })),
  ];

  it('AES-CBC + HMAC packets (RUB-NDS SHA1-96, real peers SHA2-256-128): decapsulated by the engine', () => {
    const vs = cbcVectors();
    assert.equal(vs.length, 3);
    for (const v of vs) {
      const e = new EspEngine();
      e.addSa(inboundSa(v.spi, v.encr, v.integ));
      const out = e.decapsulate([{ data: v.packet, from: { address: '192.0.2.1', port: 4500 } }]);
      assert.equal(out.length, 1, v.id);
      assert.deepEqual(out[0], v.inner);
    }
  });

  it('AES-CBC + HMAC: the engine builds the same packets byte for byte given the IV (seq 1 is its first number)', () => {
    for (const v of cbcVectors()) {
      const e = new EspEngine();
      const iv = v.packet.subarray(8, 24);
      e.addSa(saParams({ spi: v.spi, direction: 'out', encr: v.encr, integ: v.integ, selectors: { local: [ANY4], remote: [ANY4] } }), { ivSource: () => Buffer.from(iv) });
      e.addPolicy(anyPolicy(v.spi));
      const out = e.encapsulate([v.inner]);
      assert.equal(out.length, 1, v.id);
      assert.equal(out[0]!.data.toString('hex'), v.packet.toString('hex'), v.id);
    }
  });

  it('AES-GCM packets from the real peers decapsulate through the engine', () => {
    const vs = fixture('wireshark-wiki-ikev2-esp-samples.json').filter((v) => s(v, 'kind').startsWith('esp_AES-GCM'));
    assert.equal(vs.length, 2);
    for (const v of vs) {
      const e = new EspEngine();
      const spi = parseInt(s(v, 'spi'), 16);
      e.addSa(inboundSa(spi, { id: EncrId.ENCR_AES_GCM_16, key: hx(v, 'enc_key'), keyLength: 128 }, null));
      const out = e.decapsulate([{ data: hx(v, 'esp_packet'), from: { address: '192.0.2.1', port: 4500 } }]);
      assert.deepEqual(out, [hx(v, 'inner_packet')]);
    }
  });

  it('the engine never runs encryption-only CBC (RFC 8221 5)', () => {
    const e = new EspEngine();
    assert.throws(() => e.addSa(saParams({ spi: 0x4321, direction: 'in', encr: { id: EncrId.ENCR_AES_CBC, key: randomBytes(16), keyLength: 128 }, integ: null }), { allowEncryptionOnly: true }));
  });
});

describe('esp/engine: engine to engine', () => {
  for (const suite of SUITES) {
    for (const esn of [false, true]) {
      it(`${suite.name}${esn ? ' ESN' : ''}: tunnel mode, IPv4 and IPv6 inner packets both ways`, () => {
        const p = makePair(suite, { esn });
        const v4p = [udpAB(1, 0), udpAB(2, 1), udpAB(3, 1380), ipv4Icmp('10.1.2.3', '10.2.3.4', randomBytes(56))];
        const v6p = [ipv6Udp('2001:db8:1::5', '2001:db8:2::9', 1000, 2000, randomBytes(333))];
        const dgrams = p.a.encapsulate([...v4p, ...v6p]);
        assert.equal(dgrams.length, 5);
        for (const d of dgrams) {
          assert.deepEqual(d.dst, { address: '203.0.113.2', port: 4500 });
          assert.deepEqual(d.src, { address: '198.51.100.1', port: 4500 });
          assert.equal(d.data.readUInt32BE(0), 0x1000);
        }
        const got = p.b.decapsulate(dgrams.map((d) => ({ data: d.data, from: d.src })));
        assert.deepEqual(got, [...v4p, ...v6p]);
        const back = ipv4Udp('10.2.0.9', '10.1.0.5', 53, 40001, randomBytes(77));
        const r = p.a.decapsulate(p.b.encapsulate([back]).map((d) => ({ data: d.data, from: d.src })));
        assert.deepEqual(r, [back]);
        const inB = p.b.querySa(0x1000, 'in')!;
        assert.equal(inB.packets, 5n);
        assert.equal(inB.bytes, BigInt([...v4p, ...v6p].reduce((t, x) => t + x.length, 0)));
        assert.equal(p.a.querySa(0x1000, 'out')!.packets, 5n);
      });
    }
  }

  it('sequence numbers count from 1 and the AEAD IV is the sequence number', () => {
    const p = makePair(GCM128);
    const d = p.a.encapsulate([udpAB(1), udpAB(2), udpAB(3)]);
    assert.deepEqual(d.map((x) => x.data.readUInt32BE(4)), [1, 2, 3]);
    assert.deepEqual(d.map((x) => x.data.readBigUInt64BE(8)), [1n, 2n, 3n]);
  });

  it('ESN: sender and receiver cross 2^32 together; only the low half is sent', () => {
    const start = (1n << 32n) - 3n;
    const p = makePair(GCM128, { esn: true, aOut: { outboundSeqStart: start }, bIn: { replayStart: start } });
    const pk = Array.from({ length: 6 }, (_, i) => udpAB(i));
    const d = p.a.encapsulate(pk);
    assert.deepEqual(d.map((x) => x.data.readUInt32BE(4)), [0xffff_fffe, 0xffff_ffff, 0, 1, 2, 3]);
    assert.deepEqual(p.b.decapsulate(d.map((x) => ({ data: x.data, from: x.src }))), pk);
    assert.equal(p.b.getSa(0x1000, 'in')!.replay!.top, (1n << 32n) + 3n);
  });

  it('TFC padding after the inner packet is cut off (RFC 4303 2.7)', () => {
    const p = makePair(GCM128);
    const inner = udpAB(1, 40);
    const sa = createEspTransform(p.aToB.encr, null, false);
    const padded = Buffer.concat([inner, Buffer.alloc(60)]);
    const pkt = sealEsp(sa, 0x1000, 0, 1, padded, 4);
    assert.deepEqual(p.b.decapsulate([{ data: pkt, from: p.aToB.src }]), [inner]);
  });

  it('transport mode (IPv4): only the upper layer is protected; the receiver rebuilds the header from the SA', () => {
    const p = makePair(GCM128, { mode: 'transport' });
    const inner = ipv4Udp('198.51.100.1', '203.0.113.2', 5000, 6000, randomBytes(64), 77);
    const d = p.a.encapsulate([inner]);
    assert.equal(d.length, 1);
    // SPI, seq, IV, then 8 (UDP header) + 64 + 2 trailer rounded to 4, then the tag.
    assert.equal(d[0]!.data.length, 8 + 8 + 76 + 16);
    const got = p.b.decapsulate([{ data: d[0]!.data, from: d[0]!.src }]);
    assert.equal(got.length, 1);
    const out = got[0]!;
    assert.ok(ipv4HeaderOk(out));
    assert.equal(out[9], 17);
    assert.deepEqual(out.subarray(12, 16), v4('198.51.100.1'));
    assert.deepEqual(out.subarray(16, 20), v4('203.0.113.2'));
    assert.deepEqual(out.subarray(20), inner.subarray(20));
    assert.equal(out.readUInt16BE(2), inner.length);
  });

  it('transport mode refuses IPv6 and fragments (counted as unsupported)', () => {
    const p = makePair(GCM128, { mode: 'transport' });
    p.a.addPolicy({ direction: 'out', local: ANY6, remote: ANY6, mode: 'transport', spi: 0x1000, tunnel: null, tag: 't' });
    const frag = ipv4Udp('198.51.100.1', '203.0.113.2', 5000, 6000, randomBytes(64));
    frag.writeUInt16BE(0x2000, 6); // more fragments
    assert.deepEqual(p.a.encapsulate([ipv6Udp('::1', '::2', 1, 2, Buffer.alloc(4)), frag]), []);
    assert.equal(p.a.counters().unsupported, 2);
  });

  it('a replayed packet is dropped and counted; reordering inside the window is not', () => {
    const p = makePair(GCM128);
    const d = p.a.encapsulate([udpAB(1), udpAB(2), udpAB(3)]).map((x) => ({ data: x.data, from: x.src }));
    assert.equal(p.b.decapsulate([d[2]!, d[0]!]).length, 2);
    assert.equal(p.b.decapsulate([d[0]!, d[2]!, d[1]!, d[1]!]).length, 1);
    assert.equal(p.b.querySa(0x1000, 'in')!.replayDrops, 3n);
  });

  it('a tampered packet is dropped as an auth failure and does not move the window', () => {
    const p = makePair(GCM128);
    const [d] = p.a.encapsulate([udpAB(1)]);
    const bad = Buffer.from(d!.data);
    bad[30]! ^= 0x80;
    assert.deepEqual(p.b.decapsulate([{ data: bad, from: d!.src }]), []);
    assert.equal(p.b.querySa(0x1000, 'in')!.authFailures, 1n);
    // The genuine packet with the same number still gets in.
    assert.equal(p.b.decapsulate([{ data: d!.data, from: d!.src }]).length, 1);
  });

  it('wrong SPI, deleted SA, truncated, keepalive and non-ESP marker: each dropped and counted', () => {
    const p = makePair(GCM128);
    const [d] = p.a.encapsulate([udpAB(1)]);
    const from = d!.src;
    const wrong = Buffer.from(d!.data);
    wrong.writeUInt32BE(0x9999, 0);
    const input = [
      { data: wrong, from },
      { data: Buffer.from([0xff]), from },
      { data: Buffer.alloc(40), from },
      { data: Buffer.from([0, 0, 0x10]), from },
      { data: d!.data.subarray(0, 8), from },
      { data: d!.data.subarray(0, 20), from },
    ];
    assert.deepEqual(p.b.decapsulate(input), []);
    const c = p.b.counters();
    assert.equal(c.unknownSpi, 1);
    assert.equal(c.keepalive, 1);
    assert.equal(c.nonEsp, 1);
    assert.equal(c.truncated, 3);
    assert.equal(p.b.deleteSa(0x1000, 'in'), true);
    assert.deepEqual(p.b.decapsulate([{ data: d!.data, from }]), []);
    assert.equal(p.b.counters().unknownSpi, 2);
    assert.equal(p.b.querySa(0x1000, 'in'), null);
  });

  it('authentic packets with bad padding and dummy packets (Next Header 59) are dropped and counted', () => {
    const p = makePair(GCM128);
    const t = createEspTransform(p.aToB.encr, null, false);
    const inner = udpAB(1, 41);
    // A valid packet but for padding 1, 3: RFC 4303 2.4.
    const ptAt = 16;
    const plain = Buffer.concat([inner, Buffer.from([1, 3, 2, 4])]);
    const bad = Buffer.alloc(ptAt + plain.length + 16);
    bad.writeUInt32BE(0x1000, 0); bad.writeUInt32BE(1, 4); t.writeIv(bad, 8, 0, 1);
    plain.copy(bad, ptAt);
    t.seal(bad, ptAt, plain.length, 0);
    const dummy = sealEsp(t, 0x1000, 0, 2, randomBytes(30), 59);
    assert.deepEqual(p.b.decapsulate([{ data: bad, from: p.aToB.src }, { data: dummy, from: p.aToB.src }]), []);
    assert.equal(p.b.querySa(0x1000, 'in')!.paddingErrors, 1n);
    assert.equal(p.b.counters().dummy, 1);
  });

  it('tunnel mode with a Next Header that is not 4 or 41 is malformed', () => {
    const p = makePair(GCM128);
    const t = createEspTransform(p.aToB.encr, null, false);
    assert.deepEqual(p.b.decapsulate([{ data: sealEsp(t, 0x1000, 0, 1, udpAB(1), 17), from: p.aToB.src }]), []);
    assert.equal(p.b.counters().malformed, 1);
  });

  it('drops outbound packets with no policy (RFC 4301 5.1) or no SA behind the policy', () => {
    const p = makePair(GCM128);
    assert.deepEqual(p.a.encapsulate([ipv4Udp('10.9.0.1', '10.2.0.1', 1, 2, Buffer.alloc(8)), Buffer.from([0x45])]), []);
    const c = p.a.counters();
    assert.equal(c.noPolicy, 1);
    assert.equal(c.truncated, 1);
    p.a.deleteSa(0x1000, 'out');
    assert.deepEqual(p.a.encapsulate([udpAB(1)]), []);
    assert.equal(p.a.counters().noSa, 1);
  });

  it('asks for an SA (acquire) when a packet matches a trap policy, at most once per policy every 2 s', () => {
    let now = 1_000_000;
    const e = new EspEngine({ now: () => now });
    const acquires: DataplaneEvents['acquire'][0][] = [];
    e.events.on('acquire', (a) => acquires.push(a));
    e.addPolicy({ direction: 'out', local: sel4('10.1.0.0', '10.1.0.255'), remote: sel4('10.2.0.0', '10.2.0.255'), mode: 'tunnel', spi: 0, tunnel: null, tag: 'trap' });
    const pkt = ipv4Udp('10.1.0.5', '10.2.0.9', 1, 2, Buffer.alloc(8));
    assert.deepEqual(e.encapsulate([pkt, pkt]), []);
    assert.equal(acquires.length, 1);
    assert.ok(acquires[0]!.selector.remote.startAddr.equals(Buffer.from([10, 2, 0, 0])));
    now += 1000;
    e.encapsulate([pkt]);
    assert.equal(acquires.length, 1);
    now += 1500;
    e.encapsulate([pkt]);
    assert.equal(acquires.length, 2);
    // Traffic no trap covers asks for nothing.
    e.encapsulate([ipv4Udp('10.1.0.5', '10.3.0.9', 1, 2, Buffer.alloc(8))]);
    assert.equal(acquires.length, 2);
    assert.equal(e.counters().noSa, 4);
  });

  it('RFC 4301 5.2: a decapsulated packet outside the SA selectors is dropped', () => {
    const p = makePair(GCM128, { bInSelectors: { local: [sel4('10.2.0.0', '10.2.255.255', 17, 53, 53)], remote: [sel4('10.1.0.5', '10.1.0.5')] } });
    const ok = udpAB(1);
    const wrongPort = ipv4Udp('10.1.0.5', '10.2.0.9', 1234, 54, Buffer.alloc(8));
    const wrongSrc = ipv4Udp('10.1.0.6', '10.2.0.9', 1234, 53, Buffer.alloc(8));
    const wrongProto = ipv4Icmp('10.1.0.5', '10.2.0.9', Buffer.alloc(8));
    assert.deepEqual(send(p, [ok, wrongPort, wrongSrc, wrongProto]), [ok]);
    assert.equal(p.b.counters().selectorMismatch, 3);
    // An inbound policy naming the SA widens what it accepts.
    p.b.addPolicy({ direction: 'in', local: sel4('10.2.0.9', '10.2.0.9'), remote: sel4('10.1.0.6', '10.1.0.6'), mode: 'tunnel', spi: 0x1000, tunnel: null, tag: 'x' });
    const more = ipv4Udp('10.1.0.6', '10.2.0.9', 1234, 53, Buffer.alloc(8));
    assert.deepEqual(send(p, [more]), [more]);
  });

  it('picks the most specific outbound policy', () => {
    const p = makePair(GCM128);
    // A second SA for one host pair, added after the /16 policy: the /32 one must still win.
    const k = { id: EncrId.ENCR_AES_GCM_16, key: randomBytes(20), keyLength: 128 };
    p.a.addSa(saParams({ spi: 0x3000, direction: 'out', encr: k, dst: { address: '203.0.113.99', port: 4500 } }));
    const narrow: PolicyParams = { direction: 'out', local: sel4('10.1.0.5', '10.1.0.5'), remote: sel4('10.2.0.7', '10.2.0.7', 17), mode: 'tunnel', spi: 0x3000, tunnel: null, tag: 'n' };
    p.a.addPolicy(narrow);
    const d = p.a.encapsulate([ipv4Udp('10.1.0.5', '10.2.0.7', 1, 2, Buffer.alloc(8)), ipv4Udp('10.1.0.5', '10.2.0.8', 1, 2, Buffer.alloc(8))]);
    assert.deepEqual(d.map((x) => x.data.readUInt32BE(0)), [0x3000, 0x1000]);
    assert.equal(d[0]!.dst.address, '203.0.113.99');
    assert.equal(p.a.deletePolicy(narrow), true);
    assert.equal(p.a.deletePolicy(narrow), false);
    assert.equal(p.a.encapsulate([ipv4Udp('10.1.0.5', '10.2.0.7', 1, 2, Buffer.alloc(8))])[0]!.data.readUInt32BE(0), 0x1000);
  });

  it('a rekeyed CHILD_SA takes over at once: among equal policies the newest wins', () => {
    const p = makePair(GCM128);
    const k = { id: EncrId.ENCR_AES_GCM_16, key: randomBytes(20), keyLength: 128 };
    p.a.addSa(saParams({ spi: 0x3000, direction: 'out', encr: k, dst: p.aToB.dst }));
    const old = { direction: 'out' as const, local: p.aToB.selectors.local[0]!, remote: p.aToB.selectors.remote[0]!, mode: 'tunnel' as const, spi: 0x1000, tunnel: null, tag: 'test' };
    p.a.addPolicy({ ...old, spi: 0x3000 });
    assert.equal(p.a.encapsulate([udpAB(1)])[0]!.data.readUInt32BE(0), 0x3000);
    // Deleting the old policy (rekey done) leaves the new one; deleting the new one would fall back.
    assert.equal(p.a.deletePolicy(old), true);
    assert.equal(p.a.encapsulate([udpAB(2)])[0]!.data.readUInt32BE(0), 0x3000);
  });

  it('updateSa moves the destination (NAT mapping change); encap sends to 4500', () => {
    const p = makePair(GCM128);
    assert.equal(p.a.updateSa(0x1000, 'out', { dst: { address: '203.0.113.50', port: 31337 } }), true);
    assert.deepEqual(p.a.encapsulate([udpAB(1)])[0]!.dst, { address: '203.0.113.50', port: 31337 });
    p.a.updateSa(0x1000, 'out', { dst: { address: '203.0.113.50', port: 500 } });
    assert.deepEqual(p.a.encapsulate([udpAB(2)])[0]!.dst, { address: '203.0.113.50', port: 4500 });
    assert.equal(p.a.updateSa(0x7777, 'out', { encap: false }), false);
  });

  it('refuses duplicate SPIs and bad SA parameters', () => {
    const p = makePair(GCM128);
    assert.throws(() => p.a.addSa(p.aToB));
    assert.throws(() => p.a.addSa(saParams({ spi: 5, direction: 'out' })));
    assert.throws(() => p.a.addSa(saParams({ spi: 0x5000, direction: 'out', encr: { id: EncrId.ENCR_AES_GCM_16, key: Buffer.alloc(16), keyLength: 128 } })));
  });
});

describe('esp/engine: lifetimes (RFC 4301 4.4.2.1)', () => {
  it('soft and hard packet limits each raise one expire event; past hard the SA is not used', () => {
    const p = makePair(GCM128, { limits: { softPackets: 3n, hardPackets: 5n } });
    const ea = listen(p.a);
    const eb = listen(p.b);
    for (let i = 0; i < 7; i++) send(p, [udpAB(i)]);
    assert.deepEqual(ea, [{ spi: 0x1000, direction: 'out', hard: false }, { spi: 0x1000, direction: 'out', hard: true }]);
    assert.deepEqual(eb, [{ spi: 0x1000, direction: 'in', hard: false }, { spi: 0x1000, direction: 'in', hard: true }]);
    assert.equal(p.a.querySa(0x1000, 'out')!.packets, 5n);
    assert.equal(p.a.querySa(0x1000, 'out')!.expiredDrops, 2n);
    assert.equal(p.a.counters().expired, 2);
  });

  it('byte limits count inner octets', () => {
    const p = makePair(GCM128, { limits: { softBytes: 250n, hardBytes: 1000n } });
    const ea = listen(p.a);
    const pk = udpAB(1, 72); // 100 octets
    send(p, [pk, pk, pk]);
    assert.deepEqual(ea, [{ spi: 0x1000, direction: 'out', hard: false }]);
    send(p, Array.from({ length: 8 }, () => pk));
    assert.deepEqual(ea.map((x) => x.hard), [false, true]);
    assert.equal(p.a.querySa(0x1000, 'out')!.bytes, 1000n);
  });

  it('time limits fire from tick() with the clock', () => {
    const p = makePair(GCM128, { limits: { softSeconds: 10, hardSeconds: 20 } });
    const ea = listen(p.a);
    p.a.tick();
    p.clock.t += 9_999;
    p.a.tick();
    assert.equal(ea.length, 0);
    p.clock.t += 1;
    p.a.tick();
    p.a.tick();
    assert.equal(ea.length, 2); // soft for the in and the out SA
    assert.ok(ea.every((x) => !x.hard));
    p.clock.t += 10_000;
    p.a.tick();
    assert.equal(ea.filter((x) => x.hard).length, 2);
    assert.deepEqual(p.a.encapsulate([udpAB(1)]), []);
    assert.equal(p.a.counters().expired, 1);
  });

  it('an outbound counter never cycles (RFC 4303 3.3.3): soft before the end, hard at it', () => {
    const p = makePair(GCM128, { aOut: { outboundSeqStart: 0xffff_fffdn } });
    const ea = listen(p.a);
    const d = p.a.encapsulate([udpAB(1), udpAB(2), udpAB(3), udpAB(4)]);
    assert.deepEqual(d.map((x) => x.data.readUInt32BE(4)), [0xffff_fffe, 0xffff_ffff]);
    assert.deepEqual(ea, [{ spi: 0x1000, direction: 'out', hard: false }, { spi: 0x1000, direction: 'out', hard: true }]);
  });

  it('a listener that deletes the SA on expiry does not disturb the batch', () => {
    const p = makePair(GCM128, { limits: { hardPackets: 2n } });
    p.b.events.on('expire', (x) => { p.b.deleteSa(x.spi, x.direction); });
    assert.equal(send(p, [udpAB(1), udpAB(2), udpAB(3)]).length, 2);
    assert.equal(p.b.querySa(0x1000, 'in'), null);
  });
});

describe('esp/engine: robustness', () => {
  it('decapsulate never throws and never returns anything for random datagrams', () => {
    const p = makePair(GCM128);
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), (arrs) => {
      const out = p.b.decapsulate(arrs.map((a) => ({ data: Buffer.from(a), from: p.aToB.src })));
      assert.deepEqual(out, []);
    }), { numRuns: 300 });
    // With the right SPI in front, everything still fails the ICV.
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (a) => {
      const data = Buffer.concat([Buffer.from([0, 0, 0x10, 0]), Buffer.from(a)]);
      assert.deepEqual(p.b.decapsulate([{ data, from: p.aToB.src }]), []);
    }), { numRuns: 300 });
    assert.equal(p.b.counters().internalErrors, 0);
  });

  it('encapsulate never throws on random bytes from the TUN', () => {
    const p = makePair(GCM128);
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 20 }), (arrs) => {
      p.a.encapsulate(arrs.map((a) => Buffer.from(a)));
    }), { numRuns: 300 });
    assert.equal(p.a.counters().internalErrors, 0);
  });

  it('every single-bit change of a genuine packet is refused', () => {
    const p = makePair({ name: 'cbc', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 }, integ: IntegId.AUTH_HMAC_SHA2_256_128 });
    const [d] = p.a.encapsulate([udpAB(1, 30)]);
    fc.assert(fc.property(fc.integer({ min: 0, max: d!.data.length * 8 - 1 }), (bit) => {
      const bad = Buffer.from(d!.data);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      assert.deepEqual(p.b.decapsulate([{ data: bad, from: d!.src }]), []);
    }), { numRuns: 400 });
    assert.equal(p.b.decapsulate([{ data: d!.data, from: d!.src }]).length, 1);
  });
});
