/**
 * The ISAKMP codec on hand-built messages: header rules, a round trip of
 * every payload type, the structural checks that must refuse bad framing,
 * the padding tolerance of decrypted bodies, attribute interpretation and
 * the per-message rules.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  IsakmpVersionError, Phase1Attr, IpsecAttr, V1DraftPayloadType, V1ExchangeType, V1IdType, V1NotifyType, V1PayloadType, V1ProtocolId,
  V1VendorId, V1_MAX_TRAILING_PADDING, checkV1Message, decodeIsakmp, decodeV1PayloadChain, describeV1, encodeIsakmp,
  encodeIsakmpEncrypted, encodeV1PayloadChain, ipsecAttributeList, ipsecAttributes, phase1AttributeList, phase1Attributes,
  splitV1Hash, vendorIdName, walkV1PayloadChain,
} from '../../../src/wire/ikev1/index.js';
import type { IsakmpHeaderInit, IsakmpPlainMessage, V1Attribute, V1Payload, V1SaPayload, V1Transform } from '../../../src/wire/ikev1/index.js';
import { MalformedError, StyxError, TruncatedError, UnsupportedError } from '../../../src/util/errors.js';
import { H } from './fixtures.js';

const P = V1PayloadType;
const header: IsakmpHeaderInit = {
  cookieI: H('0102030405060708'), cookieR: H('1112131415161718'), exchangeType: V1ExchangeType.IDENTITY_PROTECTION,
  flags: { encryption: false, commit: false, authOnly: false }, messageId: 0,
};

const saPayload: V1SaPayload = {
  type: P.SA, doi: 1, situation: 1,
  proposals: [
    { num: 1, protocol: V1ProtocolId.IPSEC_ESP, spi: H('aabbccdd'), transforms: [
      { num: 1, id: 12, attributes: [{ type: 1, value: 1 }, { type: 2, value: H('00015180') }, { type: 6, value: 256 }] },
      { num: 2, id: 3, attributes: [] },
    ] },
    { num: 1, protocol: V1ProtocolId.IPSEC_AH, spi: H('01020304'), transforms: [{ num: 1, id: 3, attributes: [{ type: 5, value: 2 }] }] },
    { num: 2, protocol: V1ProtocolId.ISAKMP, spi: Buffer.alloc(0), transforms: [{ num: 0, id: 1, attributes: [] }] },
  ],
};

/** One payload of every kind styx models, plus an unknown one. */
const everyPayload: V1Payload[] = [
  saPayload,
  { type: P.KE, data: H('00112233') },
  { type: P.ID, idType: V1IdType.ID_IPV4_ADDR_SUBNET, protocol: 17, port: 500, data: H('0a000000ffffff00') },
  { type: P.CERT, encoding: 4, data: H('3082') },
  { type: P.CR, encoding: 4, authority: Buffer.alloc(0) },
  { type: P.HASH, data: H('00'.repeat(20)) },
  { type: P.SIG, data: H('ff'.repeat(16)) },
  { type: P.NONCE, data: H('ab'.repeat(8)) },
  { type: P.N, doi: 1, protocol: 1, spi: H('01'.repeat(16)), notifyType: V1NotifyType.R_U_THERE, data: H('00000001') },
  { type: P.D, doi: 1, protocol: V1ProtocolId.IPSEC_ESP, spiSize: 4, spis: [H('01020304'), H('05060708')] },
  { type: P.VID, data: H(V1VendorId.DPD) },
  { type: P.NAT_D, draft: false, data: H('cd'.repeat(20)) },
  { type: P.NAT_D, draft: true, data: H('ef'.repeat(20)) },
  { type: P.NAT_OA, draft: false, idType: V1IdType.ID_IPV4_ADDR, address: H('c0a80001') },
  { type: P.NAT_OA, draft: true, idType: V1IdType.ID_IPV6_ADDR, address: H('20010db8'.padEnd(32, '0')) },
  { type: 'unknown', rawType: 14, data: H('0102') },
];

/** A plaintext message made of one payload with a hand-written body. */
function single(type: number, body: string): Buffer {
  const b = H(body);
  const len = 28 + 4 + b.length;
  const hdr = encodeIsakmp(header, []);
  hdr[16] = type;
  hdr.writeUInt32BE(len, 24);
  const gen = Buffer.from([0, 0, 0, 0]);
  gen.writeUInt16BE(4 + b.length, 2);
  return Buffer.concat([hdr, gen, b]);
}
function malformed(buf: Buffer, what: RegExp): void {
  assert.throws(() => decodeIsakmp(buf), (e: unknown) => e instanceof MalformedError && what.test(e.message));
}
const firstPayloads = (buf: Buffer): V1Payload[] => (decodeIsakmp(buf) as IsakmpPlainMessage).payloads;

describe('ISAKMP header (RFC 2408 3.1)', () => {
  it('round-trips cookies, flags, message ID and fills version, next payload and length', () => {
    const h = { ...header, exchangeType: V1ExchangeType.QUICK, messageId: 0xdeadbeef, flags: { encryption: false, commit: true, authOnly: true } };
    const buf = encodeIsakmp(h, [{ type: P.HASH, data: H('aa') }]);
    assert.equal(buf[17], 0x10, 'version 1.0');
    assert.equal(buf[19], 0x06, 'C and A bits');
    const m = decodeIsakmp(buf);
    assert.deepEqual(m.header, { ...h, nextPayload: P.HASH, majorVersion: 1, minorVersion: 0, length: buf.length });
  });

  it('ignores unused flag bits and keeps the minor version', () => {
    const buf = encodeIsakmp(header, []);
    buf[19] = 0xf8;
    buf[17] = 0x13;
    const m = decodeIsakmp(buf);
    assert.deepEqual(m.header.flags, { encryption: false, commit: false, authOnly: false });
    assert.equal(m.header.minorVersion, 3);
  });

  it('refuses other major versions with IsakmpVersionError carrying the header fields', () => {
    const buf = encodeIsakmp(header, []);
    buf[17] = 0x20;
    assert.throws(() => decodeIsakmp(buf), (e: unknown) => e instanceof IsakmpVersionError && e.code === 'ERR_VERSION' && e.major === 2
      && e.cookieI.equals(header.cookieI) && e instanceof StyxError);
  });

  it('requires Length to equal the datagram', () => {
    const buf = encodeIsakmp(header, [{ type: P.VID, data: H('01') }]);
    assert.throws(() => decodeIsakmp(buf.subarray(0, buf.length - 1)), TruncatedError);
    assert.throws(() => decodeIsakmp(buf.subarray(0, 27)), TruncatedError);
    malformed(Buffer.concat([buf, H('00')]), /length field/);
    const short = Buffer.from(buf);
    short.writeUInt32BE(20, 24);
    malformed(short, /length field 20 < 28/);
  });

  it('keeps an encrypted body opaque and writes it back with the E flag', () => {
    const buf = encodeIsakmpEncrypted(header, P.ID, H('00'.repeat(16)));
    assert.equal(buf[19]! & 1, 1);
    const m = decodeIsakmp(buf);
    assert.ok(m.encrypted);
    assert.equal(m.firstPayload, P.ID);
    assert.equal(m.ciphertext.length, 16);
    assert.match(describeV1(m), /^Main Mode\* 00000000 \[ encrypted \]$/);
    const none = Buffer.from(buf);
    none[16] = 0;
    malformed(none, /no payloads/);
    const empty = encodeIsakmp(header, []);
    empty[19] = 1;
    empty[16] = P.ID;
    malformed(empty, /no ciphertext/);
    assert.throws(() => encodeIsakmp({ ...header, flags: { ...header.flags, encryption: true } }, []), MalformedError);
  });

  it('range-checks what it writes', () => {
    assert.throws(() => encodeIsakmp({ ...header, cookieI: H('01') }, []), MalformedError);
    assert.throws(() => encodeIsakmp({ ...header, messageId: 2 ** 32 }, []), MalformedError);
    assert.throws(() => encodeIsakmp({ ...header, exchangeType: 256 }, []), MalformedError);
  });
});

describe('ISAKMP payloads (RFC 2408 3.2-3.16, RFC 3947)', () => {
  it('round-trips one payload of every type', () => {
    const buf = encodeIsakmp(header, everyPayload);
    const m = decodeIsakmp(buf) as IsakmpPlainMessage;
    assert.deepEqual(m.payloads, everyPayload);
    assert.equal(m.header.nextPayload, P.SA);
    assert.equal(encodeIsakmp(header, m.payloads).toString('hex'), buf.toString('hex'));
    assert.equal(describeV1(m), 'Main Mode 00000000 [ SA KE ID CERT CR HASH SIG No N(R_U_THERE) D V(DPD) NAT-D NAT-D NAT-OA NAT-OA U(14) ]');
  });

  it('puts draft NAT-T payloads on the wire as 130 and 131 and reads them back as NAT-D / NAT-OA', () => {
    const { firstType, bytes } = encodeV1PayloadChain([everyPayload[12]!, everyPayload[14]!]);
    assert.equal(firstType, V1DraftPayloadType.NAT_D_DRAFT);
    assert.equal(bytes[0], V1DraftPayloadType.NAT_OA_DRAFT);
    const back = decodeV1PayloadChain(firstType, bytes);
    assert.deepEqual(back.map((p) => p.type), [P.NAT_D, P.NAT_OA]);
  });

  it('refuses broken generic headers and stray bytes', () => {
    const vid = encodeIsakmp(header, [{ type: P.VID, data: H('0102') }]);
    const lenLow = Buffer.from(vid);
    lenLow.writeUInt16BE(3, 30);
    malformed(lenLow, /malformed Vendor ID: payload length 3 < 4/);
    const lenHigh = Buffer.from(vid);
    lenHigh.writeUInt16BE(7, 30);
    malformed(lenHigh, /malformed Vendor ID: payload length 7 runs 1 bytes past the end/);
    const trailing = Buffer.from(vid);
    trailing.writeUInt16BE(5, 30);
    malformed(trailing, /malformed payload chain: 1 bytes after the last payload/);
    const cut = Buffer.from(vid);
    cut[28] = P.HASH;
    malformed(cut, /malformed HASH: 0 bytes left/);
  });

  it('checks the body of each payload type', () => {
    malformed(single(P.PROPOSAL, '0000000801010000'), /malformed Proposal: outside an SA payload/);
    malformed(single(P.TRANSFORM, '00000000'), /malformed Transform: outside an SA payload/);
    malformed(single(P.KE, ''), /malformed KE: empty payload/);
    malformed(single(P.HASH, ''), /malformed HASH/);
    malformed(single(P.SIG, ''), /malformed SIG/);
    malformed(single(P.CERT, '04'), /malformed CERT/);
    malformed(single(P.NONCE, '01'.repeat(7)), /malformed Nonce: nonce of 7 bytes/);
    malformed(single(P.NONCE, '01'.repeat(257)), /malformed Nonce: nonce of 257 bytes/);
    malformed(single(P.ID, '01000000c0a80001ff'), /malformed ID: ID type 1 needs 4 bytes/);
    malformed(single(P.ID, '02000000'), /malformed ID: empty identification data/);
    malformed(single(P.ID, '0100'), /malformed ID: payload too short/);
    malformed(single(P.N, '000000010110' + '0018' + '00'.repeat(4)), /malformed Notification: SPI size 16 exceeds/);
    malformed(single(P.D, '0000000101040001' + '01020304'), /malformed Delete: ISAKMP SA delete with SPI size 4/);
    malformed(single(P.D, '0000000103080001' + '0102030405060708'), /malformed Delete: SPI size 8 for protocol 3/);
    malformed(single(P.D, '0000000103040002' + '01020304'), /malformed Delete: 2 SPIs of 4 bytes need 8/);
    malformed(single(P.D, '0000000103040000'), /malformed Delete: 0 SPIs/);
    malformed(single(P.NAT_OA, '02000000c0a80001'), /malformed NAT-OA: ID type 2/);
    malformed(single(P.NAT_OA, '01000000c0a8000102'), /malformed NAT-OA: address of 5 bytes/);
    malformed(single(P.NAT_D, ''), /malformed NAT-D/);
    assert.deepEqual(firstPayloads(single(P.CR, '04')), [{ type: P.CR, encoding: 4, authority: Buffer.alloc(0) }]);
    assert.deepEqual(firstPayloads(single(P.VID, '')), [{ type: P.VID, data: Buffer.alloc(0) }]);
  });
});

describe('SA, Proposal and Transform payloads (RFC 2408 3.4-3.6)', () => {
  // DOI 1, situation 1, then one proposal (#1 ESP, 4-byte SPI, 1 transform) and its transform.
  const transform = (next = '00', extra = '') => `${next}00${(8 + extra.length / 2).toString(16).padStart(4, '0')}010c0000${extra}`;
  const proposal = (next: string, num: string, count: string, transforms: string, spi = '01020304') =>
    `${next}00${(8 + spi.length / 2 + transforms.length / 2).toString(16).padStart(4, '0')}${num}03${(spi.length / 2).toString(16).padStart(2, '0')}${count}${spi}${transforms}`;
  const sa = (body: string, doi = '00000001', sit = '00000001') => single(P.SA, doi + sit + body);

  it('decodes nested proposals and transforms', () => {
    const p = firstPayloads(sa(proposal('00', '01', '01', transform('00', '80040001'))))[0] as V1SaPayload;
    assert.deepEqual(p.proposals, [{ num: 1, protocol: 3, spi: H('01020304'), transforms: [{ num: 1, id: 12, attributes: [{ type: 4, value: 1 }] }] }]);
  });

  it('accepts equal proposal numbers (a bundle) and refuses decreasing ones', () => {
    const two = (a: string, b: string) => sa(proposal('02', a, '01', transform()) + proposal('00', b, '01', transform()));
    assert.equal((firstPayloads(two('01', '01'))[0] as V1SaPayload).proposals.length, 2);
    malformed(two('02', '01'), /malformed SA: proposal #1 follows #2/);
  });

  it('refuses framing that disagrees with itself', () => {
    assert.throws(() => decodeIsakmp(sa(proposal('00', '01', '01', transform()), '00000002')), UnsupportedError);
    assert.throws(() => decodeIsakmp(sa(proposal('00', '01', '01', transform()), '00000001', '00000002')), UnsupportedError);
    malformed(sa(''), /malformed SA: no proposals/);
    malformed(sa(proposal('05', '01', '01', transform())), /malformed SA proposal 1: next payload 5, expected 2 or 0/);
    malformed(sa(proposal('02', '01', '01', transform())), /announces another proposal but none follows/);
    malformed(sa(proposal('00', '01', '02', transform('03'))), /announces 2 transforms but holds 1/);
    malformed(sa(proposal('00', '01', '01', transform('03'))), /announces another transform beyond the count/);
    malformed(sa(proposal('00', '01', '02', transform() + transform())), /marked last but the transform count says more follow/);
    malformed(sa(proposal('00', '01', '00', '')), /no transforms/);
    malformed(sa(proposal('00', '01', '01', transform(), '010203')), /SPI size 3 invalid for protocol 3/);
    malformed(sa(proposal('00', '01', '01', transform() + '00')), /1 bytes after the last transform/);
    malformed(sa(proposal('00', '01', '01', transform('00', '00040008'))), /attribute 4 length 8 exceeds the transform/);
    malformed(sa(proposal('00', '01', '01', transform()) + '00'), /malformed SA: 1 bytes after the last proposal/);
    malformed(sa(proposal('02', '01', '01', transform()) + '00'), /malformed SA proposal 2: 1 bytes left/);
  });
});

describe('transform attributes (RFC 2409 appendix A, RFC 2407 4.5)', () => {
  const t = (attributes: V1Attribute[]): V1Transform => ({ num: 1, id: 1, attributes });
  const base: V1Attribute[] = [{ type: 1, value: 7 }, { type: 14, value: 256 }, { type: 2, value: 4 }, { type: 4, value: 14 }, { type: 3, value: 1 }];

  it('reads a phase 1 transform, life durations in TV or TLV form, and writes it back', () => {
    const a = phase1Attributes(t([...base, { type: 11, value: 1 }, { type: 12, value: H('00015180') }, { type: 11, value: 2 }, { type: 12, value: 1000 }]));
    assert.deepEqual(a, { encryption: 7, keyLength: 256, hash: 4, group: 14, authMethod: 1, life: { seconds: 86400, kilobytes: 1000 } });
    const list = phase1AttributeList(a);
    assert.deepEqual(list.find((x) => x.type === Phase1Attr.LIFE_DURATION), { type: 12, value: H('00015180') }, 'long durations go TLV');
    assert.deepEqual(phase1Attributes(t(list)), a);
    assert.deepEqual(phase1Attributes(t([...base, { type: 11, value: 1 }, { type: 12, value: H('0000000000007080') }])).life, { seconds: 28800 });
  });

  it('refuses incomplete, duplicated, mis-encoded or unknown phase 1 attributes', () => {
    const bad = (attrs: V1Attribute[], err: typeof MalformedError | typeof UnsupportedError, re: RegExp) =>
      assert.throws(() => phase1Attributes(t(attrs)), (e: unknown) => e instanceof err && re.test(e.message));
    bad(base.filter((a) => a.type !== 2), MalformedError, /missing HASH_ALGORITHM/);
    bad(base.filter((a) => a.type !== 4), MalformedError, /missing GROUP_DESCRIPTION/);
    bad([...base, { type: 1, value: 5 }], MalformedError, /duplicate ENCRYPTION_ALGORITHM/);
    bad([{ type: 1, value: H('0007') }, ...base.slice(1)], MalformedError, /ENCRYPTION_ALGORITHM must use the TV form/);
    bad([...base, { type: 12, value: 100 }], MalformedError, /life duration without a life type/);
    bad([...base, { type: 11, value: 1 }], MalformedError, /life type without a duration/);
    bad([...base, { type: 11, value: 1 }, { type: 11, value: 2 }], MalformedError, /life type without a duration/);
    bad([...base, { type: 11, value: 1 }, { type: 12, value: 1 }, { type: 11, value: 1 }, { type: 12, value: 2 }], MalformedError, /two seconds lifetimes/);
    bad([...base, { type: 11, value: 3 }, { type: 12, value: 2 }], UnsupportedError, /life type 3/);
    bad([...base, { type: 11, value: 1 }, { type: 12, value: H('010000000000000000') }], UnsupportedError, /wider than 48 bits/);
    bad([...base, { type: 11, value: 1 }, { type: 12, value: Buffer.alloc(0) }], MalformedError, /LIFE_DURATION is empty/);
    bad([...base, { type: Phase1Attr.GROUP_PRIME, value: H('ff') }], UnsupportedError, /GROUP_PRIME/);
    bad([...base, { type: Phase1Attr.PRF, value: 1 }], UnsupportedError, /PRF/);
  });

  it('reads IPsec attributes including ESN and refuses unknown ones', () => {
    const a = ipsecAttributes(t([{ type: 1, value: 1 }, { type: 2, value: 3600 }, { type: 4, value: 3 }, { type: 5, value: 5 }, { type: 6, value: 128 }, { type: 3, value: 14 }, { type: 11, value: 1 }]));
    assert.deepEqual(a, { encapsulation: 3, authAlgorithm: 5, keyLength: 128, group: 14, esn: true, life: { seconds: 3600 } });
    assert.deepEqual(ipsecAttributes(t(ipsecAttributeList(a))), a);
    assert.deepEqual(ipsecAttributes(t([])), { esn: false, life: {} });
    assert.throws(() => ipsecAttributes(t([{ type: IpsecAttr.EXTENDED_SEQUENCE_NUMBER, value: 2 }])), UnsupportedError);
    assert.throws(() => ipsecAttributes(t([{ type: IpsecAttr.KEY_ROUNDS, value: 2 }])), UnsupportedError);
    assert.throws(() => ipsecAttributes(t([{ type: 4, value: 1 }, { type: 4, value: 2 }])), MalformedError);
  });
});

describe('decrypted bodies: padding, raw payloads and the hashed region', () => {
  const chain = encodeV1PayloadChain([{ type: P.HASH, data: H('aa'.repeat(20)) }, { type: P.N, doi: 1, protocol: 1, spi: Buffer.alloc(0), notifyType: 24578, data: Buffer.alloc(0) }]);

  it('ignores up to V1_MAX_TRAILING_PADDING bytes after the last payload, whatever they hold', () => {
    for (const pad of [H('000000'), H('0102030405060707'), Buffer.alloc(V1_MAX_TRAILING_PADDING, 0xa5)]) {
      assert.equal(decodeV1PayloadChain(chain.firstType, Buffer.concat([chain.bytes, pad])).length, 2);
    }
    assert.throws(() => decodeV1PayloadChain(chain.firstType, Buffer.concat([chain.bytes, Buffer.alloc(V1_MAX_TRAILING_PADDING + 1)])), MalformedError);
  });

  it('still refuses a payload cut short by the end of the body', () => {
    assert.throws(() => decodeV1PayloadChain(chain.firstType, chain.bytes.subarray(0, chain.bytes.length - 1)), MalformedError);
  });

  it('splits off HASH and the following payloads without padding (RFC 2409 5.5, 5.7)', () => {
    const { hash, rest } = splitV1Hash(chain.firstType, Buffer.concat([chain.bytes, Buffer.alloc(12)]));
    assert.equal(hash.toString('hex'), 'aa'.repeat(20));
    assert.equal(rest.toString('hex'), chain.bytes.subarray(24).toString('hex'));
    const raw = walkV1PayloadChain(chain.firstType, chain.bytes);
    assert.deepEqual(raw.map((r) => [r.type, r.start, r.end]), [[P.HASH, 0, 24], [P.N, 24, chain.bytes.length]]);
    const noHash = encodeV1PayloadChain([{ type: P.VID, data: H('01') }]);
    assert.throws(() => splitV1Hash(noHash.firstType, noHash.bytes), /expected HASH/);
  });
});

describe('per-message rules (RFC 2409 5.1-5.7, RFC 3947)', () => {
  const hash: V1Payload = { type: P.HASH, data: H('01') };
  const sig: V1Payload = { type: P.SIG, data: H('01') };
  const id = everyPayload[2]!;
  const nonce = everyPayload[7]!;
  const ke = everyPayload[1]!;
  const n = everyPayload[8]!;
  const d = everyPayload[9]!;
  const vid = everyPayload[10]!;
  const natOa = everyPayload[13]!;
  const ok = (ex: number, msg: number, enc: boolean, p: V1Payload[]) => assert.doesNotThrow(() => checkV1Message(ex, msg, enc, p));
  const bad = (ex: number, msg: number, enc: boolean, p: V1Payload[], re: RegExp) =>
    assert.throws(() => checkV1Message(ex, msg, enc, p), (e: unknown) => e instanceof MalformedError && re.test(e.message));
  const MM = V1ExchangeType.IDENTITY_PROTECTION;
  const AM = V1ExchangeType.AGGRESSIVE;
  const QM = V1ExchangeType.QUICK;
  const INFO = V1ExchangeType.INFORMATIONAL;

  it('Main Mode', () => {
    ok(MM, 1, false, [saPayload, vid, vid]);
    bad(MM, 1, false, [vid], /malformed Main Mode message 1: missing SA/);
    bad(MM, 1, true, [saPayload], /encrypted before keys exist/);
    ok(MM, 3, false, [ke, nonce, everyPayload[11]!, everyPayload[11]!]);
    bad(MM, 3, false, [ke], /missing Nonce/);
    ok(MM, 5, true, [id, hash, n]);
    ok(MM, 6, true, [id, everyPayload[3]!, sig]);
    bad(MM, 5, false, [id, hash], /must be encrypted/);
    bad(MM, 5, true, [id, hash, sig], /carries both HASH and SIG/);
    bad(MM, 5, true, [id], /needs one of HASH, SIG/);
    bad(MM, 5, true, [id, id, hash], /2 ID payloads, at most 1/);
    bad(MM, 3, false, [ke, nonce, { type: 'unknown', rawType: 15, data: H('00') }], /unexpected payload type 15/);
  });

  it('Aggressive Mode', () => {
    ok(AM, 1, false, [saPayload, ke, nonce, id, vid]);
    ok(AM, 2, false, [saPayload, ke, nonce, id, hash, vid]);
    bad(AM, 2, false, [saPayload, ke, nonce, hash], /missing ID/);
    ok(AM, 3, false, [hash]);
    ok(AM, 3, true, [hash]);
    bad(AM, 3, false, [saPayload, hash], /unexpected SA payload/);
  });

  it('Quick Mode', () => {
    ok(QM, 1, true, [hash, saPayload, nonce, ke, id, id, natOa, natOa]);
    ok(QM, 2, true, [hash, saPayload, saPayload, nonce]);
    bad(QM, 1, true, [saPayload, hash, nonce], /HASH must be the first payload/);
    bad(QM, 1, true, [hash, saPayload, nonce, id], /1 ID payloads; they come in pairs/);
    bad(QM, 1, false, [hash, saPayload, nonce], /must be encrypted/);
    ok(QM, 3, true, [hash]);
    bad(QM, 3, true, [hash, nonce], /unexpected Nonce/);
    ok(QM, 4, true, [hash, n]);
    bad(QM, 4, true, [hash], /needs at least one of Notification/);
  });

  it('Informational', () => {
    ok(INFO, 1, false, [n]);
    ok(INFO, 1, true, [hash, d, d]);
    bad(INFO, 1, true, [d, hash], /HASH must be the first payload/);
    bad(INFO, 1, true, [hash], /needs at least one of Notification, Delete/);
    assert.throws(() => checkV1Message(V1ExchangeType.BASE, 1, false, [n]), UnsupportedError);
    assert.throws(() => checkV1Message(MM, 7, true, [n]), UnsupportedError);
  });
});

describe('vendor IDs', () => {
  it('are the MD5 hashes their comments claim', () => {
    const md5 = (s: string) => createHash('md5').update(s, 'ascii').digest('hex');
    assert.equal(V1VendorId.NAT_T_RFC3947, md5('RFC 3947'));
    assert.equal(V1VendorId.NAT_T_DRAFT_02, md5('draft-ietf-ipsec-nat-t-ike-02'));
    assert.equal(V1VendorId.NAT_T_DRAFT_02N, md5('draft-ietf-ipsec-nat-t-ike-02\n'));
    assert.equal(V1VendorId.NAT_T_DRAFT_03, md5('draft-ietf-ipsec-nat-t-ike-03'));
    assert.equal(V1VendorId.XAUTH, md5('draft-ietf-ipsra-isakmp-xauth-06.txt').slice(0, 16));
    assert.equal(V1VendorId.IKE_FRAGMENTATION, md5('FRAGMENTATION'));
    assert.equal(V1VendorId.CISCO_UNITY, md5('CISCO-UNITY').slice(0, 28));
  });

  it('are recognised exactly or by prefix for the versioned ones', () => {
    assert.equal(vendorIdName(H(V1VendorId.NAT_T_RFC3947)), 'NAT_T_RFC3947');
    assert.equal(vendorIdName(H(V1VendorId.IKE_FRAGMENTATION + '80000000')), 'IKE_FRAGMENTATION');
    assert.equal(vendorIdName(H(V1VendorId.CISCO_UNITY + '0100')), 'CISCO_UNITY');
    assert.equal(vendorIdName(H(V1VendorId.NAT_T_RFC3947 + '00')), undefined);
    assert.equal(vendorIdName(H('00112233')), undefined);
  });
});
