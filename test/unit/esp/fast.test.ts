/**
 * The ESP fast path (styx_esp addon): AEAD transforms that must agree octet
 * for octet with the JS ones and the published vectors, the engine behaving
 * the same on them (counters, drops, replay), and batched ESP-in-UDP sends
 * on a socket dgram wraps.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import type { Endpoint, PolicyParams, SaParams } from '../../../src/dataplane/api.js';
import { EspEngine, createEspTransform, openEsp, sealEsp } from '../../../src/esp/index.js';
import { NativeAeadTransform, createFastEspTransform, releaseFastCrypto, useFastCrypto } from '../../../src/esp/fast.js';
import { tryLoadEspAddon, type EspAddon } from '../../../src/esp/native.js';
import { FastUdpSocket } from '../../../src/esp/udp.js';
import { IkeSockets } from '../../../src/net/sockets.js';
import { encrKeyBytes } from '../../../src/crypto/registry.js';
import { IntegrityError, MalformedError } from '../../../src/util/errors.js';
import { LogManager } from '../../../src/util/log.js';
import { EncrId, IntegId } from '../../../src/wire/ikev2/constants.js';
import { fixture, hx, ipv4Udp, ipv6Udp, n, s, saParams, sel4, sel6 } from './helpers.js';

const load = tryLoadEspAddon();
const optional = process.env['STYX_SKIP_NATIVE'] === '1' || process.env['STYX_NATIVE_OPTIONAL'] === '1' || process.env['STYX_ESP_FAST'] === '0';

interface AeadSuite { name: string; id: number; keyLength: number }
const AEADS: AeadSuite[] = [
  { name: 'AES-GCM-16-128', id: EncrId.ENCR_AES_GCM_16, keyLength: 128 },
  { name: 'AES-GCM-16-256', id: EncrId.ENCR_AES_GCM_16, keyLength: 256 },
  { name: 'AES-GCM-12-192', id: EncrId.ENCR_AES_GCM_12, keyLength: 192 },
  { name: 'AES-GCM-8-256', id: EncrId.ENCR_AES_GCM_8, keyLength: 256 },
  { name: 'AES-GCM-8-128', id: EncrId.ENCR_AES_GCM_8, keyLength: 128 },
  { name: 'CHACHA20-POLY1305', id: EncrId.ENCR_CHACHA20_POLY1305, keyLength: 0 },
];

const encrFor = (x: AeadSuite, key?: Buffer): SaParams['encr'] =>
  ({ id: x.id, key: key ?? randomBytes(encrKeyBytes(x.id, x.keyLength)), keyLength: x.keyLength });

if (!load.ok) {
  describe('esp/fast: the styx_esp addon', () => {
    (optional ? it.skip : it)(`is built and loads (${load.reason})`, () => assert.fail(load.reason));
  });
} else {
  const addon: EspAddon = load.addon;
  const fast = (encr: SaParams['encr'], esn: boolean): NativeAeadTransform => {
    const t = createFastEspTransform(encr, null, esn, addon);
    assert.ok(t);
    return t;
  };

  describe('esp/fast: AEAD known answers on the addon', () => {
    it(`runs on the OpenSSL inside node (${addon.openssl()})`, () => {
      assert.match(addon.openssl(), /^OpenSSL 3\./);
      assert.equal(addon.openssl().split(' ')[1], process.versions.openssl);
    });

    interface Kat { id: string; encr: SaParams['encr']; esn: boolean; packet: Buffer; seqHigh: number; seqLow: number; payload: Buffer; nextHeader: number; padLength: number }
    const kats: Kat[] = [];
    for (const v of fixture('esp-aead-gcm-chacha-vectors.json').filter((x) => typeof x['esp_packet'] === 'string')) {
      const chacha = s(v, 'transform').startsWith('ENCR_CHACHA20_POLY1305');
      const seq = BigInt(`0x${s(v, 'seq')}`);
      kats.push({
        id: s(v, 'id'),
        encr: chacha ? { id: EncrId.ENCR_CHACHA20_POLY1305, key: hx(v, 'keymat_rfc7634'), keyLength: 0 }
          : { id: EncrId.ENCR_AES_GCM_16, key: hx(v, 'keymat_rfc4106'), keyLength: hx(v, 'aes_key').length * 8 },
        esn: v['esn'] === true, packet: hx(v, 'esp_packet'), seqHigh: Number(seq >> 32n), seqLow: Number(seq & 0xffff_ffffn),
        payload: hx(v, 'inner_payload'), nextHeader: n(v, 'next_header'), padLength: n(v, 'pad_length'),
      });
    }
    for (const v of fixture('scapy-linux-xfrm-reference-esp-packets.json').filter((x) => /AES-GCM - NULL( -- ESN)?$/.test(s(x, 'test')))) {
      const esn = s(v, 'test').endsWith('ESN');
      kats.push({
        id: `xfrm ${s(v, 'test')}`, encr: { id: EncrId.ENCR_AES_GCM_16, key: hx(v, 'linux_key_hex'), keyLength: 128 }, esn,
        packet: hx(v, 'esp_packet'), seqHigh: esn ? 1 : 0, seqLow: n(v, 'seq'),
        payload: hx(v, 'inner_payload'), nextHeader: n(v, 'next_header'), padLength: n(v, 'pad_length'),
      });
    }
    for (const v of fixture('wireshark-wiki-ikev2-esp-samples.json').filter((x) => s(x, 'kind').startsWith('esp_AES-GCM'))) {
      kats.push({
        id: `wiki frame ${n(v, 'frame')}`, encr: { id: EncrId.ENCR_AES_GCM_16, key: hx(v, 'enc_key'), keyLength: 128 }, esn: false,
        packet: hx(v, 'esp_packet'), seqHigh: 0, seqLow: n(v, 'seq'),
        payload: hx(v, 'inner_packet'), nextHeader: n(v, 'next_header'), padLength: n(v, 'pad_length'),
      });
    }

    it('has every AEAD vector packet.test.ts uses (15 draft/RFC 7634, 2 xfrm, 2 wiki)', () => assert.equal(kats.length, 19));
    for (const k of kats) {
      it(`${k.id}: opens to the published payload and seals to the published packet`, () => {
        const t = fast(k.encr, k.esn);
        const before = Buffer.from(k.packet);
        const r = openEsp(t, k.packet, k.seqHigh, true);
        assert.ok(r.ok, r.ok ? '' : r.error.message);
        assert.equal(r.value.payload.toString('hex'), k.payload.toString('hex'));
        assert.equal(r.value.nextHeader, k.nextHeader);
        assert.equal(r.value.padLength, k.padLength);
        assert.deepEqual(k.packet, before, 'the packet is left as it came');
        const built = sealEsp(t, k.packet.readUInt32BE(0), k.seqHigh, k.seqLow, k.payload, k.nextHeader, k.packet.subarray(8, 16));
        assert.equal(built.toString('hex'), k.packet.toString('hex'));
        if (k.esn) {
          const wrong = openEsp(t, k.packet, (k.seqHigh + 1) >>> 0, true);
          assert.ok(!wrong.ok && wrong.error instanceof IntegrityError, 'the ESN high half is in the AAD');
        }
      });
    }
  });

  describe('esp/fast: the same octets as the JS transforms', () => {
    for (const x of AEADS) {
      it(`${x.name}: seals identically and opens the other's packets, 0-300 and 1400 octets, with and without ESN`, () => {
        for (const esn of [false, true]) {
          const encr = encrFor(x);
          const js = createEspTransform(encr, null, esn);
          const nat = fast(encr, esn);
          assert.equal(nat.name, js.name);
          for (const k of ['icvBytes', 'ivBytes', 'align', 'blockBytes'] as const) assert.equal(nat[k], js[k], k);
          const sizes = [...Array.from({ length: 43 }, (_, i) => i * 7), 1400];
          for (const len of sizes) {
            const payload = randomBytes(len);
            const seqHigh = esn ? 0x8000_0001 : 0, seqLow = 0xffff_fff0 - len;
            const a = sealEsp(js, 0xc001_d00d, seqHigh, seqLow, payload, 4);
            const b = sealEsp(nat, 0xc001_d00d, seqHigh, seqLow, payload, 4);
            assert.equal(b.toString('hex'), a.toString('hex'), `length ${len}`);
            const ra = openEsp(nat, a, seqHigh, true), rb = openEsp(js, b, seqHigh, true);
            assert.ok(ra.ok && rb.ok);
            assert.deepEqual(ra.value.payload, payload);
            assert.deepEqual(rb.value.payload, payload);
          }
        }
      });

      it(`${x.name}: any changed octet fails the tag, and the packet is left as it came`, () => {
        const nat = fast(encrFor(x), false);
        const pkt = sealEsp(nat, 0xabcd, 0, 1, randomBytes(60), 4);
        for (let i = 0; i < pkt.length; i++) {
          const bad = Buffer.from(pkt);
          bad[i]! ^= 0x01;
          const copy = Buffer.from(bad);
          const r = openEsp(nat, bad, 0, true);
          assert.ok(!r.ok && r.error instanceof IntegrityError, `octet ${i}`);
          assert.deepEqual(bad, copy);
        }
        assert.ok(openEsp(nat, pkt, 0, true).ok, 'a failure leaves the context usable');
      });
    }

    it('CBC suites and missing addons stay on the JS transforms; bad keys are refused as by createEspTransform', () => {
      assert.equal(createFastEspTransform({ id: EncrId.ENCR_AES_CBC, key: randomBytes(16), keyLength: 128 }, { id: IntegId.AUTH_HMAC_SHA2_256_128, key: randomBytes(32) }, false, addon), null);
      assert.equal(createFastEspTransform(encrFor(AEADS[0]!), null, false, null), null);
      assert.throws(() => createFastEspTransform({ id: EncrId.ENCR_AES_GCM_16, key: randomBytes(16), keyLength: 128 }, null, false, addon), MalformedError);
      assert.throws(() => addon.aeadNew(0, randomBytes(15), randomBytes(4), 16, false), RangeError);
      assert.throws(() => addon.aeadNew(1, randomBytes(32), randomBytes(4), 8, false), RangeError);
    });

    it('refuses ranges outside the buffer instead of reading or writing past it', () => {
      const nat = fast(encrFor(AEADS[0]!), false);
      const h = (nat as unknown as { handle: Parameters<EspAddon['aeadSeal']>[0] }).handle;
      assert.throws(() => addon.aeadSeal(h, Buffer.alloc(40), 16, 20, 0), RangeError);
      assert.throws(() => addon.aeadSeal(h, Buffer.alloc(40), 8, 4, 0), RangeError);
      assert.throws(() => addon.aeadOpen(h, Buffer.alloc(31), Buffer.alloc(64), 0), RangeError);
      assert.throws(() => addon.aeadOpen(h, Buffer.alloc(64), Buffer.alloc(10), 0), RangeError);
    });

    it('released keys are gone: the transform throws rather than use them', () => {
      const p = saParams({ spi: 0x3000, direction: 'out', encr: encrFor(AEADS[0]!) });
      const e = new EspEngine();
      e.addSa(p);
      const sa = e.getSa(0x3000, 'out')!;
      assert.ok(useFastCrypto(sa, p, addon));
      assert.ok(sa.transform instanceof NativeAeadTransform);
      releaseFastCrypto(sa);
      assert.throws(() => sealEsp(sa.transform, 0x3000, 0, 1, Buffer.alloc(10), 4), MalformedError);
      releaseFastCrypto(sa);
    });
  });

  describe('esp/fast: the engine behaves the same on either transform', () => {
    const SITE_A = [sel4('10.1.0.0', '10.1.255.255'), sel6('2001:db8:1::', '2001:db8:1:ffff:ffff:ffff:ffff:ffff')];
    const SITE_B = [sel4('10.2.0.0', '10.2.255.255'), sel6('2001:db8:2::', '2001:db8:2:ffff:ffff:ffff:ffff:ffff')];
    const epA: Endpoint = { address: '198.51.100.1', port: 4500 }, epB: Endpoint = { address: '203.0.113.2', port: 4500 };

    /** A sender and a receiver engine for one SA, with node:crypto or the addon. */
    function side(out: SaParams, inn: SaParams, withAddon: boolean, clock: { t: number }, seqStart: bigint): { a: EspEngine; b: EspEngine } {
      const a = new EspEngine({ now: () => clock.t }), b = new EspEngine({ now: () => clock.t });
      a.addSa(out, { outboundSeqStart: seqStart });
      b.addSa(inn, { replayStart: seqStart });
      if (withAddon) {
        assert.ok(useFastCrypto(a.getSa(out.spi, 'out')!, out, addon));
        assert.ok(useFastCrypto(b.getSa(inn.spi, 'in')!, inn, addon));
      }
      out.selectors.local.forEach((l, i) => a.addPolicy({ direction: 'out', local: l, remote: out.selectors.remote[i]!, mode: 'tunnel', spi: out.spi, tunnel: null, tag: 't' } satisfies PolicyParams));
      return { a, b };
    }

    /** A small deterministic PRNG, so a failure can be replayed from its seed. */
    function rng(seed: number): () => number {
      let x = seed >>> 0 || 1;
      return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 0x1_0000_0000; };
    }

    for (const x of AEADS) {
      for (const esn of [false, true]) {
        it(`${x.name}${esn ? ' ESN' : ''}: same datagrams, same output, same counters through loss, duplicates, reordering, tampering and limits`, () => {
          const encr = encrFor(x);
          const common = { mode: 'tunnel' as const, esn, replayWindow: 32, limits: { softPackets: 150n, hardPackets: 260n } };
          const out = saParams({ ...common, spi: 0x1000, direction: 'out', src: epA, dst: epB, encr, selectors: { local: SITE_A, remote: SITE_B } });
          const inn = saParams({ ...common, spi: 0x1000, direction: 'in', src: epA, dst: epB, encr, selectors: { local: SITE_B, remote: SITE_A } });
          // ESN: start just below 2^32 so both sides cross it during the run.
          const seqStart = esn ? (1n << 32n) - 100n : 0n;
          const clock = { t: 1_000_000 };
          const j = side(out, inn, false, clock, seqStart), f = side(out, inn, true, clock, seqStart);
          const expires: string[][] = [[], []];
          j.b.events.on('expire', (ev) => expires[0]!.push(JSON.stringify(ev)));
          f.b.events.on('expire', (ev) => expires[1]!.push(JSON.stringify(ev)));
          j.a.events.on('expire', (ev) => expires[0]!.push(`a${JSON.stringify(ev)}`));
          f.a.events.on('expire', (ev) => expires[1]!.push(`a${JSON.stringify(ev)}`));
          const r = rng(0x5eed + x.id * 7 + (esn ? 1 : 0));
          let held: Buffer[] = [];
          for (let round = 0; round < 40; round++) {
            const pkts: Buffer[] = [];
            for (let i = 0; i < 8; i++) {
              const len = Math.floor(r() * 1300);
              pkts.push(r() < 0.8 ? ipv4Udp('10.1.0.5', '10.2.0.9', 1000 + i, 53, randomBytes(len), round * 8 + i)
                : ipv6Udp('2001:db8:1::5', '2001:db8:2::9', 1000, 2000, randomBytes(len)));
            }
            if (round % 9 === 4) pkts.push(ipv4Udp('10.9.0.5', '10.2.0.9', 1, 2, Buffer.alloc(10)));
            const dj = j.a.encapsulate(pkts), df = f.a.encapsulate(pkts);
            assert.deepEqual(df.map((d) => d.data.toString('hex')), dj.map((d) => d.data.toString('hex')), `round ${round}: datagrams`);
            // The network: drop, duplicate, hold back (reorder), tamper, truncate.
            let wire: Buffer[] = [];
            for (const d of dj) {
              const p = r();
              if (p < 0.05) continue;
              if (p < 0.1) { wire.push(d.data, d.data); continue; }
              if (p < 0.2) { held.push(d.data); continue; }
              if (p < 0.25) { const bad = Buffer.from(d.data); bad[Math.floor(r() * bad.length)]! ^= 0x40; wire.push(bad); continue; }
              if (p < 0.27) { wire.push(d.data.subarray(0, Math.floor(r() * d.data.length))); continue; }
              wire.push(d.data);
            }
            if (r() < 0.3) { wire = [...wire, ...held]; held = []; }
            // Each engine gets its own copies: nothing may depend on the other having read or changed them.
            const gj = j.b.decapsulate(wire.map((w) => ({ data: Buffer.from(w), from: epA })));
            const gf = f.b.decapsulate(wire.map((w) => ({ data: Buffer.from(w), from: epA })));
            assert.deepEqual(gf, gj, `round ${round}: decapsulated packets`);
            clock.t += 1000;
            j.b.tick(); f.b.tick(); j.a.tick(); f.a.tick();
          }
          assert.deepEqual(f.b.counters(), j.b.counters());
          assert.deepEqual(f.a.counters(), j.a.counters());
          assert.deepEqual(f.b.querySa(0x1000, 'in'), j.b.querySa(0x1000, 'in'));
          assert.deepEqual(f.a.querySa(0x1000, 'out'), j.a.querySa(0x1000, 'out'));
          assert.deepEqual(f.b.saDropTotals(), j.b.saDropTotals());
          assert.deepEqual(expires[1], expires[0]);
          const sa = j.b.querySa(0x1000, 'in')!;
          assert.ok(sa.authFailures > 0n && sa.replayDrops > 0n && sa.packets > 100n, 'the run exercised drops and deliveries');
          assert.ok(expires[0]!.length >= 2, 'the run reached the soft and hard limits');
          assert.equal(j.b.counters().internalErrors, 0);
        });
      }
    }

    it('the whole engine test suite passes with every AEAD SA on the addon (mocha run with fast-hook)', function () {
      this.timeout(120_000);
      const here = fileURLToPath(new URL('.', import.meta.url));
      const r = spawnSync(process.execPath, [
        fileURLToPath(new URL('../../../../node_modules/mocha/bin/mocha.js', import.meta.url)),
        '--reporter', 'dot', '--timeout', '30000', '--require', `${here}fast-hook.js`, `${here}engine.test.js`,
      ], { encoding: 'utf8', env: { ...process.env, STYX_ESP_FAST: '1' } });
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      const m = /fast-hook: (\d+) SAs on the addon's AEAD/.exec(r.stderr);
      assert.ok(m && Number(m[1]) > 20, `the hook converted SAs: ${r.stderr}`);
      assert.match(r.stdout, /passing/);
      assert.doesNotMatch(r.stdout, /failing|pending/);
    });
  });

  describe('esp/fast: batched ESP-in-UDP sends', () => {
    const bound = (sock: dgram.Socket): Promise<void> => new Promise((res) => sock.once('listening', () => res()));
    /**
     * A receiver with room for a whole batch landing at once, past a small
     * net.core.rmem_max too (the addon's socket asks with SO_RCVBUFFORCE), so
     * the tests see no loopback drops.
     */
    async function roomyPeer(): Promise<dgram.Socket> {
      const f = FastUdpSocket.open('127.0.0.1', 0, 4 << 20, addon)!;
      const peer = dgram.createSocket('udp4');
      await new Promise<void>((res) => peer.bind({ fd: f.fd }, () => res()));
      return peer;
    }

    it('a socket from the addon that dgram wraps: sendmmsg batches, dgram receives and sends on it', async () => {
      const fastSock = FastUdpSocket.open('127.0.0.1', 0, 1 << 20, addon)!;
      const [rcv] = fastSock.bufferSizes();
      assert.ok(rcv >= 1 << 20, `receive buffer ${rcv}`);
      const wrap = dgram.createSocket('udp4');
      // An fd is bound already: dgram says 'listening' from inside bind(), so the callback goes in with it.
      await new Promise<void>((res) => wrap.bind({ fd: fastSock.fd }, () => res()));
      const fallbacks: Buffer[] = [], refusals: Error[] = [];
      fastSock.attach((d, to) => { fallbacks.push(d); wrap.send(d, to.port, to.address); }, (e) => refusals.push(e));
      const peer = await roomyPeer();
      const to = { address: '127.0.0.1', port: peer.address().port };
      const got: Buffer[] = [];
      const want = Array.from({ length: 300 }, (_, i) => Buffer.concat([Buffer.from([i >> 8, i & 255]), randomBytes(i % 100)]));
      const all = new Promise<void>((res) => peer.on('message', (m) => { got.push(m); if (got.length === want.length) res(); }));
      for (const w of want.slice(0, 100)) fastSock.queue(w, to);
      // Broadcast without SO_BROADCAST is refused (EACCES) and counted; the rest of the turn still goes.
      fastSock.queue(Buffer.from('x'), { address: '255.255.255.255', port: 9 });
      for (const w of want.slice(100)) fastSock.queue(w, to);
      await all;
      assert.deepEqual(got, want, 'every datagram, in order');
      assert.equal(refusals.length, 1);
      assert.match(refusals[0]!.message, /EACCES 255\.255\.255\.255:9/);
      assert.equal(fastSock.stats.sent + fastSock.stats.fallback, 300);
      assert.ok(fastSock.stats.batches <= 4, `${fastSock.stats.batches} batches for one turn`);
      // The wrapped socket is an ordinary dgram socket for everything else.
      const echo = new Promise<Buffer>((res) => wrap.once('message', (m) => res(m)));
      peer.send(Buffer.from('to the wrapped socket'), wrap.address().port, '127.0.0.1');
      assert.equal((await echo).toString(), 'to the wrapped socket');
      fastSock.close();
      await new Promise<void>((res) => wrap.close(() => res()));
      await new Promise<void>((res) => peer.close(() => res()));
    });

    it('IkeSockets: the NAT-T socket comes from the addon; ESP goes out batched, IKE and keepalives as before', async () => {
      const free = dgram.createSocket('udp4');
      free.bind(0, '127.0.0.1');
      await bound(free);
      const natPort = free.address().port;
      await new Promise<void>((res) => free.close(() => res()));
      const ike: Buffer[] = [];
      const esp: Buffer[] = [];
      const sockets = new IkeSockets(new LogManager(() => undefined).for('net'), (data) => ike.push(data));
      sockets.espReceiver = (data) => esp.push(data);
      await sockets.bind(['127.0.0.1'], 0, natPort);
      const local = { address: '127.0.0.1', port: natPort };
      assert.ok(sockets.isNatT(local));
      const peer = await roomyPeer();
      const remote = { address: '127.0.0.1', port: peer.address().port };
      const got: Buffer[] = [];
      const n = 130;
      const all = new Promise<void>((res) => peer.on('message', (m) => { got.push(m); if (got.length === n + 1) res(); }));
      const espOut = Array.from({ length: n }, (_, i) => Buffer.concat([Buffer.from([0, 0, 0x10, 0, 0, 0, 0, i]), randomBytes(50)]));
      for (const d of espOut) sockets.sendRaw(d, local, remote);
      sockets.send(Buffer.from('ike message'), local, remote);
      await all;
      assert.deepEqual(got.filter((m) => m.readUInt32BE(0) !== 0), espOut);
      assert.equal(got.find((m) => m.readUInt32BE(0) === 0)!.subarray(4).toString(), 'ike message');
      assert.equal(sockets.counters.sentRaw, n);
      assert.equal(sockets.counters.sendErrors, 0);
      // Inbound on the wrapped fd: IKE behind the marker, ESP, a keepalive.
      const inbound = new Promise<void>((res) => { const t = setInterval(() => { if (ike.length && esp.length && sockets.counters.keepalives) { clearInterval(t); res(); } }, 5); });
      peer.send(Buffer.concat([Buffer.alloc(4), Buffer.from('ike in')]), natPort, '127.0.0.1');
      peer.send(Buffer.from([0, 0, 0x20, 0, 0, 0, 0, 1, 9, 9]), natPort, '127.0.0.1');
      peer.send(Buffer.from([0xff]), natPort, '127.0.0.1');
      await inbound;
      assert.equal(ike[0]!.toString(), 'ike in');
      assert.equal(esp[0]!.readUInt32BE(0), 0x2000);
      await sockets.close();
      await new Promise<void>((res) => peer.close(() => res()));
    });

    it('a port in use is refused with the code dgram would give', async () => {
      const sock = dgram.createSocket('udp4');
      sock.bind(0, '127.0.0.1');
      await bound(sock);
      assert.throws(() => FastUdpSocket.open('127.0.0.1', sock.address().port, 0, addon), (e: Error & { code?: string }) => e.code === 'EADDRINUSE');
      await new Promise<void>((res) => sock.close(() => res()));
    });
  });
}
