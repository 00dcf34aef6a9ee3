/**
 * Hostile input for the IKEv1 codec and body decryption: every prefix of a
 * recorded message, and random mutations of recorded messages and of their
 * decrypted bodies, must give a value or a StyxError, never any other
 * exception; whatever decodes must re-encode to a fixpoint.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { v1Cipher, v1Decrypt, v1DerivePhase1Keys, v1Encrypt, V1IvChain } from '../../../src/crypto/ikev1/index.js';
import type { V1CipherInfo } from '../../../src/crypto/ikev1/index.js';
import {
  V1ExchangeType, V1PayloadType, V1ProtocolId, checkV1Message, decodeIsakmp, decodeV1PayloadChain, encodeIsakmp, encodeV1PayloadChain,
  ipsecAttributes, phase1Attributes, splitV1Hash,
} from '../../../src/wire/ikev1/index.js';
import type { IsakmpMessage, V1Payload } from '../../../src/wire/ikev1/index.js';
import { StyxError, attempt } from '../../../src/util/errors.js';
import { H, fixture, pcapIsakmp, recorded } from './fixtures.js';
import type { RecordedHandshake } from './fixtures.js';

const P = V1PayloadType;

/** An encrypted recorded message with what it takes to open it. */
interface Sealed { buf: Buffer; key: Buffer; iv: Buffer; cipher: V1CipherInfo; plaintext: Buffer }

function sealedMessages(hs: RecordedHandshake): Sealed[] {
  const cipher = v1Cipher(7, 128);
  const keys = v1DerivePhase1Keys({
    hashId: 2, auth: { method: 'psk', psk: Buffer.from('AAAA') }, niB: H(hs.Ni_b), nrB: H(hs.Nr_b), gxy: H(hs.g_xy),
    ckyI: H(hs.CKY_I), ckyR: H(hs.CKY_R), keyBytes: 16,
  });
  const chain = new V1IvChain(2, 16, H(hs.g_xi), H(hs.g_xr));
  const out: Sealed[] = [];
  const encryptedNames = [...['m5', 'm6'].filter((n) => hs.messages[n] !== undefined).map((n) => hs.messages[n]!), hs.qm1, hs.qm2, hs.qm3];
  for (const hexMsg of encryptedNames) {
    const buf = H(hexMsg);
    const m = decodeIsakmp(buf);
    assert.ok(m.encrypted);
    const iv = chain.iv(m.header.messageId);
    out.push({ buf, key: keys.encryptionKey, iv, cipher, plaintext: v1Decrypt(cipher, keys.encryptionKey, iv, m.ciphertext).plaintext });
    chain.advance(m.header.messageId, m.ciphertext);
  }
  return out;
}

const rec = recorded();
const sealed = [...sealedMessages(rec.main), ...sealedMessages(rec.aggressive)];
const plainRecorded = [rec.main, rec.aggressive].flatMap((hs) => Object.values(hs.messages).map(H)).filter((b) => (b[19]! & 1) === 0);
const captures = ['suricata-ikev1-isakmp-main-mode.pcap', 'tcpdump-isakmp4500.pcap', 'wireshark-wiki-ikev1-main-mode.pcap', 'tcpdump-ISAKMP_sa_setup.pcap']
  .flatMap((f) => pcapIsakmp(fixture(f)));
/** Every whole message: recorded plaintext and encrypted ones, and the capture datagrams. */
const seeds: Buffer[] = [...plainRecorded, ...sealed.map((s) => s.buf), ...captures];

/** Offsets of length fields: the header's u32, each payload's u16, and inside SA payloads each proposal's and transform's. */
function lengthFields(buf: Buffer): { at: number; size: 2 | 4 }[] {
  const out: { at: number; size: 2 | 4 }[] = [{ at: 24, size: 4 }];
  if ((buf[19]! & 1) !== 0) return out;
  let next = buf[16]!;
  let off = 28;
  while (next !== 0 && off + 4 <= buf.length) {
    const len = buf.readUInt16BE(off + 2);
    out.push({ at: off + 2, size: 2 });
    if (next === P.SA && len >= 12) {
      // Proposals start after DOI and situation; transforms after each proposal's 8 octets and SPI.
      let p = off + 12;
      while (p + 8 <= Math.min(off + len, buf.length)) {
        const plen = buf.readUInt16BE(p + 2);
        out.push({ at: p + 2, size: 2 });
        let t = p + 8 + buf[p + 6]!;
        while (t + 4 <= Math.min(p + plen, buf.length)) {
          out.push({ at: t + 2, size: 2 });
          const tlen = buf.readUInt16BE(t + 2);
          if (tlen < 4) break;
          t += tlen;
        }
        if (plen < 8) break;
        p += plen;
      }
    }
    if (len < 4) break;
    next = buf[off]!;
    off += len;
  }
  return out;
}

type Mutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'insert'; pos: number; byte: number }
  | { kind: 'delete'; pos: number }
  | { kind: 'length'; which: number; value: number }
  | { kind: 'u16'; pos: number; value: number }
  | { kind: 'truncate'; keep: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), pos: fc.nat() }),
  fc.record({ kind: fc.constant('length' as const), which: fc.nat(), value: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.nat({ max: 0xffff })) }),
  fc.record({ kind: fc.constant('u16' as const), pos: fc.nat(), value: fc.nat({ max: 0xffff }) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
);

function mutate(src: Buffer, ms: Mutation[], fields: (b: Buffer) => { at: number; size: 2 | 4 }[]): Buffer {
  let buf = Buffer.from(src);
  for (const m of ms) {
    if (buf.length === 0) break;
    const pos = 'pos' in m ? m.pos % buf.length : 0;
    switch (m.kind) {
      case 'flip': buf[pos] = buf[pos]! ^ (1 << m.bit); break;
      case 'insert': buf = Buffer.concat([buf.subarray(0, pos), Buffer.from([m.byte]), buf.subarray(pos)]); break;
      case 'delete': buf = Buffer.concat([buf.subarray(0, pos), buf.subarray(pos + 1)]); break;
      case 'u16': if (pos + 2 <= buf.length) buf.writeUInt16BE(m.value, pos); break;
      case 'truncate': buf = buf.subarray(0, m.keep % buf.length); break;
      case 'length': {
        const fs = fields(buf);
        const f = fs[m.which % fs.length];
        if (f === undefined || f.at + f.size > buf.length) break;
        if (f.size === 4) buf.writeUInt32BE(m.value, f.at);
        else buf.writeUInt16BE(m.value, f.at);
        break;
      }
    }
  }
  return buf;
}

/** Everything the IKE layer would do with decoded payloads: typed attributes and the message rules. */
function interpret(ps: readonly V1Payload[], encrypted: boolean): void {
  for (const p of ps) {
    if (p.type !== P.SA) continue;
    for (const prop of p.proposals) {
      for (const t of prop.transforms) {
        const r = attempt(() => (prop.protocol === V1ProtocolId.ISAKMP ? phase1Attributes(t) : ipsecAttributes(t)));
        if (!r.ok) assert.ok(r.error instanceof StyxError);
      }
    }
  }
  for (const [ex, n] of [[V1ExchangeType.IDENTITY_PROTECTION, 5], [V1ExchangeType.AGGRESSIVE, 2], [V1ExchangeType.QUICK, 1], [V1ExchangeType.INFORMATIONAL, 1]] as const) {
    const r = attempt(() => checkV1Message(ex, n, encrypted, ps));
    if (!r.ok) assert.ok(r.error instanceof StyxError);
  }
}

function reencodes(m: IsakmpMessage): void {
  if (m.encrypted) return;
  const once = encodeIsakmp(m.header, m.payloads);
  const again = decodeIsakmp(once);
  assert.ok(!again.encrypted);
  assert.deepEqual(encodeIsakmp(again.header, again.payloads), once);
}

function reencodesChain(ps: V1Payload[]): void {
  const { firstType, bytes } = encodeV1PayloadChain(ps);
  assert.deepEqual(encodeV1PayloadChain(decodeV1PayloadChain(firstType, bytes)).bytes, bytes);
}

describe('IKEv1 robustness', () => {
  it('has seeds of every kind', () => {
    assert.equal(sealed.length, 8);
    assert.ok(plainRecorded.length >= 7);
    assert.ok(captures.length > 30);
    for (const s of seeds) assert.ok(attempt(() => decodeIsakmp(s)).ok);
  });

  it('every proper prefix of a message fails with a StyxError, even with its Length patched to fit', () => {
    let checked = 0;
    for (const s of seeds) {
      for (let n = 0; n < s.length; n++) {
        const cut = Buffer.from(s.subarray(0, n));
        const r = attempt(() => decodeIsakmp(cut));
        assert.ok(!r.ok && r.error instanceof StyxError, `prefix of ${n}/${s.length} bytes decoded`);
        if (n >= 28 && (s[19]! & 1) === 0) {
          cut.writeUInt32BE(n, 24);
          const r2 = attempt(() => decodeIsakmp(cut));
          assert.ok(!r2.ok && r2.error instanceof StyxError, `patched prefix of ${n}/${s.length} bytes decoded`);
        }
        checked++;
      }
    }
    assert.ok(checked > 10000);
  });

  it('every prefix of a decrypted body that cuts into its payloads fails with a StyxError', () => {
    for (const s of sealed) {
      const m = decodeIsakmp(s.buf);
      assert.ok(m.encrypted);
      const end = encodeV1PayloadChain(decodeV1PayloadChain(m.firstPayload, s.plaintext)).bytes.length;
      for (let n = 0; n < end; n++) {
        const r = attempt(() => decodeV1PayloadChain(m.firstPayload, s.plaintext.subarray(0, n)));
        assert.ok(!r.ok && r.error instanceof StyxError, `body prefix ${n}/${end}`);
      }
    }
  });

  it('mutated messages give a value or a StyxError; values re-encode and interpret without other exceptions', () => {
    let decoded = 0;
    fc.assert(fc.property(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
      const r = attempt(() => decodeIsakmp(mutate(seeds[i]!, ms, lengthFields)));
      if (!r.ok) {
        assert.ok(r.error instanceof StyxError);
        return;
      }
      decoded++;
      reencodes(r.value);
      if (!r.value.encrypted) interpret(r.value.payloads, false);
    }), { numRuns: 4000, seed: 0x1c1 });
    assert.ok(decoded > 0);
  });

  it('mutated decrypted bodies, re-encrypted under the real keys, give a value or a StyxError all the way through', () => {
    const bodyFields = (b: Buffer) => lengthFields(b).slice(1);
    fc.assert(fc.property(fc.nat({ max: sealed.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
      const s = sealed[i]!;
      const m = decodeIsakmp(s.buf);
      assert.ok(m.encrypted);
      // Mutate behind a copy of the real header so 'length' mutations find the payload lengths.
      const framed = mutate(Buffer.concat([s.buf.subarray(0, 28), s.plaintext]), ms, bodyFields);
      if (framed.length < 28) return;
      const first = framed[16]!;
      const body = framed.subarray(28);
      const ct = v1Encrypt(s.cipher, s.key, s.iv, body).ciphertext;
      const opened = attempt(() => v1Decrypt(s.cipher, s.key, s.iv, ct));
      assert.ok(opened.ok);
      const r = attempt(() => decodeV1PayloadChain(first, opened.value.plaintext));
      if (!r.ok) {
        assert.ok(r.error instanceof StyxError);
        return;
      }
      reencodesChain(r.value);
      interpret(r.value, true);
      const split = attempt(() => splitV1Hash(first, opened.value.plaintext));
      if (!split.ok) assert.ok(split.error instanceof StyxError);
    }), { numRuns: 3000, seed: 0x1c2 });
  });

  it('mutated ciphertext decrypts to garbage that decodes to a value or a StyxError', () => {
    fc.assert(fc.property(fc.nat({ max: sealed.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), (i, ms) => {
      const s = sealed[i]!;
      const r = attempt(() => {
        const m = decodeIsakmp(mutate(s.buf, ms, lengthFields));
        if (!m.encrypted) return m.payloads;
        return decodeV1PayloadChain(m.firstPayload, v1Decrypt(s.cipher, s.key, s.iv, m.ciphertext).plaintext);
      });
      if (!r.ok) assert.ok(r.error instanceof StyxError);
    }), { numRuns: 2000, seed: 0x1c3 });
  });

  it('random bytes behind a valid header give a value or a StyxError', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300 }), (next, body) => {
      const buf = Buffer.concat([Buffer.alloc(28), body]);
      buf[16] = next;
      buf[17] = 0x10;
      buf.writeUInt32BE(buf.length, 24);
      const r = attempt(() => decodeIsakmp(buf));
      if (!r.ok) {
        assert.ok(r.error instanceof StyxError);
        return;
      }
      reencodes(r.value);
      if (!r.value.encrypted) interpret(r.value.payloads, false);
    }), { numRuns: 3000, seed: 0x1c4 });
  });
});
