import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  PaddingError, createEspTransform, decodeEspHeader, espPadLength, espSealedLength, openEsp, parseTrailer, sealEsp,
  type EspTransform,
} from '../../../src/esp/index.js';
import { encrKeyBytes, integKeyBytes } from '../../../src/crypto/registry.js';
import { IntegrityError, MalformedError, TruncatedError, UnsupportedError } from '../../../src/util/errors.js';
import { EncrId, IntegId } from '../../../src/wire/ikev2/constants.js';
import { fixture, hx, n, s, type Rec } from './helpers.js';

/** A vector's 32- or 64-bit sequence number as (high, low). */
function seqParts(hex: string): [number, number] {
  const v = BigInt(`0x${hex}`);
  return [Number(v >> 32n), Number(v & 0xffff_ffffn)];
}

/** Seals a caller-made plaintext (with its own trailer) so tests can send authentic packets with bad trailers. */
function sealRaw(t: EspTransform, spi: number, seqHigh: number, seqLow: number, plaintext: Buffer): Buffer {
  const ptAt = 8 + t.ivBytes;
  const out = Buffer.alloc(ptAt + plaintext.length + t.icvBytes);
  out.writeUInt32BE(spi, 0);
  out.writeUInt32BE(seqLow, 4);
  t.writeIv(out, 8, seqHigh, seqLow);
  plaintext.copy(out, ptAt);
  t.seal(out, ptAt, plaintext.length, seqHigh);
  return out;
}

interface Kat {
  id: string;
  t: EspTransform;
  packet: Buffer;
  seqHigh: number;
  seqLow: number;
  iv: Buffer;
  payload: Buffer;
  nextHeader: number;
  padLength: number;
}

function katsAead(): Kat[] {
  return fixture('esp-aead-gcm-chacha-vectors.json').filter((v) => typeof v['esp_packet'] === 'string').map((v: Rec) => {
    const chacha = s(v, 'transform').startsWith('ENCR_CHACHA20_POLY1305');
    const keymat = chacha ? hx(v, 'keymat_rfc7634') : hx(v, 'keymat_rfc4106');
    const encr = chacha
      ? { id: EncrId.ENCR_CHACHA20_POLY1305, key: keymat, keyLength: 0 }
      : { id: EncrId.ENCR_AES_GCM_16, key: keymat, keyLength: hx(v, 'aes_key').length * 8 };
    const esn = v['esn'] === true;
    const [seqHigh, seqLow] = seqParts(s(v, 'seq'));
    return {
      id: s(v, 'id'), t: createEspTransform(encr, null, esn), packet: hx(v, 'esp_packet'), seqHigh, seqLow, iv: hx(v, 'iv'),
      payload: hx(v, 'inner_payload'), nextHeader: n(v, 'next_header'), padLength: n(v, 'pad_length'),
    };
  });
}

function katsCbc(): Kat[] {
  return fixture('esp-aes-cbc-rfc3602-vectors.json').map((v) => {
    const integ = typeof v['auth_key'] === 'string' ? { id: IntegId.AUTH_HMAC_SHA1_96, key: hx(v, 'auth_key') } : null;
    return {
      id: s(v, 'case'),
      t: createEspTransform({ id: EncrId.ENCR_AES_CBC, key: hx(v, 'aes_key'), keyLength: 128 }, integ, false, { allowEncryptionOnly: true }),
      packet: hx(v, 'esp_packet'), seqHigh: 0, seqLow: n(v, 'seq'), iv: hx(v, 'iv'),
      payload: hx(v, 'inner_payload'), nextHeader: n(v, 'next_header'), padLength: n(v, 'pad_length'),
    };
  });
}

/** The Linux xfrm packets in algorithms styx has: AES-CBC (no auth), AES-GCM-16, AES-GCM-16 with ESN (seq-hi 1). */
function katsXfrm(): Kat[] {
  const out: Kat[] = [];
  for (const v of fixture('scapy-linux-xfrm-reference-esp-packets.json')) {
    const name = s(v, 'test');
    const key = hx(v, 'linux_key_hex');
    let t: EspTransform;
    let seqHigh = 0;
    let ivBytes: number;
    if (name.endsWith('AES-CBC - NULL')) {
      t = createEspTransform({ id: EncrId.ENCR_AES_CBC, key, keyLength: 128 }, null, false, { allowEncryptionOnly: true });
      ivBytes = 16;
    } else if (name.endsWith('AES-GCM - NULL') || name.endsWith('AES-GCM - NULL -- ESN')) {
      const esn = name.endsWith('ESN');
      seqHigh = esn ? 1 : 0;
      t = createEspTransform({ id: EncrId.ENCR_AES_GCM_16, key, keyLength: 128 }, null, esn);
      ivBytes = 8;
    } else {
      continue;
    }
    const packet = hx(v, 'esp_packet');
    out.push({
      id: `xfrm ${name}`, t, packet, seqHigh, seqLow: n(v, 'seq'), iv: packet.subarray(8, 8 + ivBytes),
      payload: hx(v, 'inner_payload'), nextHeader: n(v, 'next_header'), padLength: n(v, 'pad_length'),
    });
  }
  return out;
}

/** ESP packets from the Wireshark wiki capture of a real client and gateway. */
function katsWiki(): Kat[] {
  const out: Kat[] = [];
  for (const v of fixture('wireshark-wiki-ikev2-esp-samples.json')) {
    const kind = s(v, 'kind');
    let t: EspTransform;
    let ivBytes: number;
    if (kind.startsWith('esp_AES-GCM')) {
      t = createEspTransform({ id: EncrId.ENCR_AES_GCM_16, key: hx(v, 'enc_key'), keyLength: 128 }, null, false);
      ivBytes = 8;
    } else if (kind.startsWith('esp_AES-CBC')) {
      t = createEspTransform({ id: EncrId.ENCR_AES_CBC, key: hx(v, 'enc_key'), keyLength: 128 }, { id: IntegId.AUTH_HMAC_SHA2_256_128, key: hx(v, 'auth_key') }, false);
      ivBytes = 16;
    } else {
      continue;
    }
    const packet = hx(v, 'esp_packet');
    out.push({
      id: `wiki frame ${n(v, 'frame')} ${kind}`, t, packet, seqHigh: 0, seqLow: n(v, 'seq'), iv: packet.subarray(8, 8 + ivBytes),
      payload: hx(v, 'inner_packet'), nextHeader: n(v, 'next_header'), padLength: n(v, 'pad_length'),
    });
  }
  return out;
}

const GROUPS: [string, () => Kat[], number][] = [
  ['draft-mcgrew-gcm-test-01 and RFC 7634 A', katsAead, 15],
  ['RFC 3602 section 4 and the HMAC-SHA1-96 packet', katsCbc, 5],
  ['Linux xfrm reference packets', katsXfrm, 3],
  ['Wireshark wiki capture (real peers)', katsWiki, 4],
];

describe('esp/packet: known answers', () => {
  for (const [group, load, count] of GROUPS) {
    describe(group, () => {
      const kats = load();
      it(`has the ${count} usable packets`, () => assert.equal(kats.length, count));
      for (const k of kats) {
        it(`${k.id}: decapsulates to the published payload`, () => {
          const h = decodeEspHeader(k.packet);
          if (k.packet.readUInt32BE(0) === 0) {
            // draft-mcgrew #4 uses SPI 0, which RFC 4303 2.1 reserves: the header decoder says so; the crypto still checks out.
            assert.ok(!h.ok && h.error instanceof MalformedError);
          } else {
            assert.ok(h.ok);
            assert.equal(h.value.seqLow, k.seqLow);
          }
          const r = openEsp(k.t, k.packet, k.seqHigh, true);
          assert.ok(r.ok, r.ok ? '' : r.error.message);
          assert.equal(r.value.payload.toString('hex'), k.payload.toString('hex'));
          assert.equal(r.value.nextHeader, k.nextHeader);
          assert.equal(r.value.padLength, k.padLength);
        });
        it(`${k.id}: encapsulates byte for byte with the IV and sequence number fixed`, () => {
          const spi = k.packet.readUInt32BE(0);
          const built = sealEsp(k.t, spi, k.seqHigh, k.seqLow, k.payload, k.nextHeader, k.iv);
          assert.equal(built.toString('hex'), k.packet.toString('hex'));
        });
      }
    });
  }

  it('ESN: the high half takes part in the AAD (RFC 4106 5), so a wrong one fails the tag', () => {
    const k = katsAead().find((x) => x.id.endsWith('#1'))!;
    assert.equal(k.seqHigh, 0x8765_4321);
    const r = openEsp(k.t, k.packet, k.seqHigh - 1, true);
    assert.ok(!r.ok && r.error instanceof IntegrityError);
  });

  it('ESN with CBC+HMAC: the high half is in the ICV input but not on the wire (RFC 4303 3.3.2.2)', () => {
    const key = randomBytes(16);
    const akey = randomBytes(32);
    const integ = { id: IntegId.AUTH_HMAC_SHA2_256_128, key: akey };
    const esn = createEspTransform({ id: EncrId.ENCR_AES_CBC, key, keyLength: 128 }, integ, true);
    const plain = createEspTransform({ id: EncrId.ENCR_AES_CBC, key, keyLength: 128 }, integ, false);
    const iv = randomBytes(16);
    const a = sealEsp(esn, 0x1234, 7, 9, Buffer.from('payload'), 4, iv);
    const b = sealEsp(plain, 0x1234, 7, 9, Buffer.from('payload'), 4, iv);
    assert.equal(a.length, b.length);
    assert.deepEqual(a.subarray(0, a.length - 16), b.subarray(0, b.length - 16));
    assert.notDeepEqual(a.subarray(-16), b.subarray(-16));
    assert.ok(openEsp(esn, a, 7, true).ok);
    assert.ok(!openEsp(esn, a, 6, true).ok);
  });

  it('the xfrm transforms styx does not offer are refused', () => {
    // IANA IKEv2 ENCR IDs: DES 2, 3DES 3, CAST 6, BLOWFISH 7, AES-CTR 13, AES-CCM-8 14, NULL_AUTH_AES_GMAC 21.
    for (const id of [2, 3, 6, 7, 13, 14, 21]) {
      assert.throws(() => createEspTransform({ id, key: Buffer.alloc(20), keyLength: 128 }, null, false), UnsupportedError, `ENCR ${id}`);
    }
  });
});

describe('esp/packet: framing and failures', () => {
  const SUITES: { name: string; encr: { id: number; keyLength: number }; integ: number }[] = [
    { name: 'AES-GCM-16-128', encr: { id: EncrId.ENCR_AES_GCM_16, keyLength: 128 }, integ: IntegId.NONE },
    { name: 'AES-GCM-8-256', encr: { id: EncrId.ENCR_AES_GCM_8, keyLength: 256 }, integ: IntegId.NONE },
    { name: 'AES-GCM-12-192', encr: { id: EncrId.ENCR_AES_GCM_12, keyLength: 192 }, integ: IntegId.NONE },
    { name: 'CHACHA20-POLY1305', encr: { id: EncrId.ENCR_CHACHA20_POLY1305, keyLength: 0 }, integ: IntegId.NONE },
    { name: 'AES-CBC-128/SHA1-96', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 }, integ: IntegId.AUTH_HMAC_SHA1_96 },
    { name: 'AES-CBC-128/SHA2-256-128', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 }, integ: IntegId.AUTH_HMAC_SHA2_256_128 },
    { name: 'AES-CBC-192/SHA2-384-192', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 192 }, integ: IntegId.AUTH_HMAC_SHA2_384_192 },
    { name: 'AES-CBC-256/SHA2-512-256', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 256 }, integ: IntegId.AUTH_HMAC_SHA2_512_256 },
  ];
  const make = (x: (typeof SUITES)[number], esn: boolean): EspTransform => createEspTransform(
    { id: x.encr.id, key: randomBytes(encrKeyBytes(x.encr.id, x.encr.keyLength)), keyLength: x.encr.keyLength },
    x.integ === IntegId.NONE ? null : { id: x.integ, key: randomBytes(integKeyBytes(x.integ)) }, esn);

  for (const x of SUITES) {
    it(`${x.name}: round trip, lengths, alignment and ICV size for payloads of 0-300 octets, with and without ESN`, () => {
      for (const esn of [false, true]) {
        const t = make(x, esn);
        for (let len = 0; len <= 300; len += 7) {
          const payload = randomBytes(len);
          const pkt = sealEsp(t, 0xabcd, esn ? 3 : 0, len + 1, payload, 41);
          assert.equal(pkt.length, espSealedLength(t, len));
          // RFC 4303 2.4: the encrypted part ends on the block size and on 4 octets.
          const encrypted = pkt.length - 8 - t.ivBytes - t.icvBytes;
          assert.equal(encrypted % Math.max(4, t.blockBytes), 0);
          const r = openEsp(t, pkt, esn ? 3 : 0, true);
          assert.ok(r.ok);
          assert.deepEqual(r.value.payload, payload);
          assert.equal(r.value.nextHeader, 41);
        }
      }
    });

    it(`${x.name}: any changed octet fails the ICV`, () => {
      const t = make(x, false);
      const pkt = sealEsp(t, 0xabcd, 0, 1, randomBytes(60), 4);
      for (let i = 0; i < pkt.length; i++) {
        const bad = Buffer.from(pkt);
        bad[i]! ^= 0x01;
        const r = openEsp(t, bad, 0, true);
        assert.ok(!r.ok && r.error instanceof IntegrityError, `octet ${i}`);
      }
    });
  }

  it('AEAD: the IV is the 64-bit sequence number (RFC 4106 3.1)', () => {
    const t = make(SUITES[0]!, true);
    const pkt = sealEsp(t, 0x1000, 0x0102_0304, 0x0506_0708, Buffer.alloc(10), 4);
    assert.equal(pkt.subarray(8, 16).toString('hex'), '0102030405060708');
  });

  it('CBC: IVs are random and differ per packet (RFC 3602 3)', () => {
    const t = make(SUITES[5]!, false);
    const ivs = new Set<string>();
    for (let i = 1; i <= 300; i++) ivs.add(sealEsp(t, 0x1000, 0, i, Buffer.alloc(10), 4).subarray(8, 24).toString('hex'));
    assert.equal(ivs.size, 300);
  });

  it('refuses CBC without integrity unless asked for known-answer use, and INTEG with an AEAD', () => {
    const key = randomBytes(16);
    assert.throws(() => createEspTransform({ id: EncrId.ENCR_AES_CBC, key, keyLength: 128 }, null, false), UnsupportedError);
    assert.throws(() => createEspTransform({ id: EncrId.ENCR_AES_GCM_16, key: randomBytes(20), keyLength: 128 }, { id: IntegId.AUTH_HMAC_SHA1_96, key: randomBytes(20) }, false), UnsupportedError);
    assert.throws(() => createEspTransform({ id: EncrId.ENCR_AES_GCM_16, key: randomBytes(16), keyLength: 128 }, null, false), MalformedError);
    assert.throws(() => createEspTransform({ id: EncrId.ENCR_AES_CBC, key, keyLength: 128 }, { id: IntegId.AUTH_HMAC_SHA2_256_128, key: randomBytes(20) }, false), MalformedError);
  });

  it('truncated packets are TruncatedError, ragged CBC ciphertext MalformedError', () => {
    const gcm = make(SUITES[0]!, false);
    const pkt = sealEsp(gcm, 0x1000, 0, 1, Buffer.alloc(20), 4);
    for (const len of [0, 7, 8, 16, 8 + 8 + 16 + 1]) {
      const r = openEsp(gcm, pkt.subarray(0, len), 0, true);
      assert.ok(!r.ok && r.error instanceof TruncatedError, `length ${len}`);
    }
    assert.ok(!decodeEspHeader(Buffer.alloc(7)).ok);
    const cbc = make(SUITES[5]!, false);
    const c = sealEsp(cbc, 0x1000, 0, 1, Buffer.alloc(40), 4);
    const ragged = Buffer.concat([c.subarray(0, 40), c.subarray(41)]);
    const r = openEsp(cbc, ragged, 0, true);
    assert.ok(!r.ok && r.error instanceof MalformedError && !(r.error instanceof PaddingError));
  });

  it('SPI 0 is not an ESP packet (RFC 4303 2.1, RFC 3948 non-ESP marker)', () => {
    const r = decodeEspHeader(Buffer.alloc(20));
    assert.ok(!r.ok && r.error instanceof MalformedError);
  });

  it('authentic packets with bad padding are PaddingError (RFC 4303 2.4), unless the check is off', () => {
    for (const x of [SUITES[0]!, SUITES[5]!]) {
      const t = make(x, false);
      const len = x.encr.id === EncrId.ENCR_AES_CBC ? 32 : 8;
      // 4 octets of padding that are 1, 2, 4, 3 instead of 1, 2, 3, 4.
      const badOrder = Buffer.concat([Buffer.alloc(len - 6, 0xaa), Buffer.from([1, 2, 4, 3, 4, 4])]);
      const r1 = openEsp(t, sealRaw(t, 0x1000, 0, 1, badOrder), 0, true);
      assert.ok(!r1.ok && r1.error instanceof PaddingError, x.name);
      const r2 = openEsp(t, sealRaw(t, 0x1000, 0, 1, badOrder), 0, false);
      assert.ok(r2.ok);
      assert.equal(r2.value.payload.length, len - 6);
      // A Pad Length longer than what precedes it is refused whatever the setting.
      const tooLong = Buffer.concat([Buffer.alloc(len - 2), Buffer.from([len - 1, 4])]);
      const r3 = openEsp(t, sealRaw(t, 0x1000, 0, 1, tooLong), 0, false);
      assert.ok(!r3.ok && r3.error instanceof PaddingError, x.name);
    }
  });

  it('parseTrailer reads Pad Length and Next Header from the end', () => {
    const r = parseTrailer(Buffer.from([9, 9, 9, 1, 2, 3, 3, 41]), true);
    assert.ok(r.ok);
    assert.deepEqual([...r.value.payload], [9, 9, 9]);
    assert.equal(r.value.nextHeader, 41);
    assert.ok(!parseTrailer(Buffer.from([7]), true).ok);
    assert.ok(parseTrailer(Buffer.from([0, 59]), true).ok);
  });

  it('espPadLength aligns payload + 2 to the boundary with less than one boundary of padding', () => {
    for (const align of [4, 16]) {
      for (let len = 0; len < 100; len++) {
        const pad = espPadLength(len, align);
        assert.ok(pad >= 0 && pad < align);
        assert.equal((len + pad + 2) % align, 0);
      }
    }
  });
});
