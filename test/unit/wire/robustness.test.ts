/**
 * Hostile input: every prefix of a valid message, random mutations of valid
 * messages and plain random bytes must give a decoded value or a StyxError,
 * never any other exception; whatever decodes must re-encode.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  PayloadType, decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain,
} from '../../../src/wire/ikev2/index.js';
import type { IkeMessage, Payload, SkPayload } from '../../../src/wire/ikev2/index.js';
import { StyxError, attempt, fromHex } from '../../../src/util/index.js';
import { fixture, messages, pcapUdpPayloads, unpad } from './fixtures.js';

const rub = messages()['rub-nds'];
const wiki = messages()['wireshark-wiki'];
const pcaps = [...pcapUdpPayloads(fixture('wire', 'ikev2four.pcap')), ...pcapUdpPayloads(fixture('wire', 'ikev2pI2.pcap'))];

/** Valid whole messages: recorded ones, plus one holding every payload type (built from the decoded inner chains). */
const innerChains: { first: number; bytes: Buffer }[] = [
  ['m3_ike_auth_req', 'm3_decrypted'], ['m4_ike_auth_resp', 'm4_decrypted'],
].map(([m, p]) => ({ first: (decodeMessage(fromHex(rub[m!]!)).payloads[0] as SkPayload).innerFirst, bytes: unpad(fromHex(rub[p!]!)) }));
innerChains.push({ first: (decodeMessage(fromHex(wiki.ike_message)).payloads[0] as SkPayload).innerFirst, bytes: unpad(fromHex(wiki.plaintext)) });

const seeds: Buffer[] = [
  ...['m1_ike_sa_init_req', 'm2_ike_sa_init_resp', 'm3_ike_auth_req'].map((k) => fromHex(rub[k]!)),
  pcaps[0]!, pcaps[1]!, pcaps[3]!, pcaps[pcaps.length - 2]!,
];
{
  // A plaintext message carrying every inner payload, so mutations reach the ID, AUTH, TS, CP, CERT codecs.
  const h = decodeMessage(seeds[0]!).header;
  const everything: Payload[] = innerChains.flatMap((c) => decodePayloadChain(c.first, c.bytes));
  everything.push({ type: PayloadType.DELETE, critical: false, protocol: 3, spiSize: 4, spis: [fromHex('01020304')] },
    { type: PayloadType.EAP, critical: false, data: fromHex('0201000601ff') });
  seeds.push(encodeMessage(h, everything));
}

/** Offsets of length fields in a message: the header's u32 and each outer payload's u16. */
function lengthFields(buf: Buffer): { at: number; size: 2 | 4 }[] {
  const out: { at: number; size: 2 | 4 }[] = [{ at: 24, size: 4 }];
  let next = buf[16]!;
  let off = 28;
  while (next !== 0 && off + 4 <= buf.length) {
    out.push({ at: off + 2, size: 2 });
    if (next === PayloadType.SK || next === PayloadType.SKF) break;
    const len = buf.readUInt16BE(off + 2);
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

function mutate(src: Buffer, ms: Mutation[]): Buffer {
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
        const fields = lengthFields(buf);
        const f = fields[m.which % fields.length]!;
        if (f.at + f.size > buf.length) break;
        if (f.size === 4) buf.writeUInt32BE(m.value, f.at);
        else buf.writeUInt16BE(m.value, f.at);
        break;
      }
    }
  }
  return buf;
}

/** A decoded message must re-encode, and re-encoding is a fixpoint. */
function reencodes(m: IkeMessage): void {
  const once = encodeMessage(m.header, m.payloads);
  const again = decodeMessage(once);
  assert.deepEqual(encodeMessage(again.header, again.payloads), once);
}
function reencodesChain(first: number, ps: Payload[]): void {
  const { firstType, bytes } = encodePayloadChain(ps);
  assert.equal(firstType, ps.length === 0 ? 0 : first);
  assert.deepEqual(encodePayloadChain(decodePayloadChain(firstType, bytes)).bytes, bytes);
}

describe('wire/ikev2 robustness', () => {
  it('every seed is valid and round-trips', () => {
    for (const s of seeds) assert.deepEqual(encodeMessage(decodeMessage(s).header, decodeMessage(s).payloads), s);
  });

  it('every proper prefix of a valid message fails with a StyxError', () => {
    let checked = 0;
    for (const s of seeds) {
      for (let n = 0; n < s.length; n++) {
        const r = attempt(() => decodeMessage(s.subarray(0, n)));
        assert.ok(!r.ok, `prefix of ${n}/${s.length} bytes decoded`);
        assert.ok(r.error instanceof StyxError);
        checked++;
      }
    }
    // Prefixes of decrypted chains: each fails or (if it ends on a payload boundary with next 0) decodes.
    for (const c of innerChains) {
      for (let n = 0; n < c.bytes.length; n++) {
        assert.ok(!attempt(() => decodePayloadChain(c.first, c.bytes.subarray(0, n))).ok, `chain prefix ${n}`);
        checked++;
      }
    }
    assert.ok(checked > 3000);
  });

  it('mutated messages give a value or a StyxError, and values re-encode', () => {
    let decoded = 0;
    fc.assert(fc.property(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
      const r = attempt(() => decodeMessage(mutate(seeds[i]!, ms)));
      if (r.ok) { decoded++; reencodes(r.value); }
    }), { numRuns: 4000, seed: 0x5717 });
    assert.ok(decoded > 0, 'some mutations should still decode (e.g. flips inside opaque data)');
  });

  it('mutated decrypted chains give a value or a StyxError, and values re-encode', () => {
    fc.assert(fc.property(fc.nat({ max: innerChains.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
      const c = innerChains[i]!;
      // Chains have no IKE header; mutate them behind a dummy 28-byte prefix so 'length' mutations hit payload lengths.
      const framed = mutate(Buffer.concat([Buffer.alloc(16), Buffer.from([c.first]), Buffer.alloc(11), c.bytes]), ms);
      if (framed.length < 28) return;
      const r = attempt(() => decodePayloadChain(framed[16]!, framed.subarray(28)));
      if (r.ok) reencodesChain(framed[16]!, r.value);
    }), { numRuns: 2000, seed: 0x5718 });
  });

  it('random bytes behind a valid header give a value or a StyxError', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300 }), (next, body) => {
      const buf = Buffer.concat([Buffer.alloc(28), body]);
      buf[16] = next;
      buf[17] = 0x20;
      buf.writeUInt32BE(buf.length, 24);
      const r = attempt(() => decodeMessage(buf));
      if (r.ok) reencodes(r.value);
    }), { numRuns: 3000, seed: 0x5719 });
  });
});
