/**
 * RFC 2408 3.4-3.6: the Security Association payload, its Proposal and
 * Transform payloads and their data attributes (3.3). In IKEv1 the proposals
 * and transforms are full payloads nested inside the SA payload's length;
 * their Next Payload fields only say "another one follows" (2 or 3) or "last"
 * (0), and must agree with the counts and lengths actually present.
 */
import { ByteReader, ByteWriter } from '../../util/bytes.js';
import { MalformedError, UnsupportedError } from '../../util/errors.js';
import { Doi, Situation, V1PayloadType, V1ProtocolId } from './constants.js';
import type { V1Attribute, V1Proposal, V1Transform } from './types.js';

const AF_BIT = 0x8000;
const SUB_HEADER_LENGTH = 4;

export function fits8(n: number, what: string, field: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new MalformedError(what, `${field} ${n} does not fit 8 bits`);
  return n;
}
export function fits16(n: number, what: string, field: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new MalformedError(what, `${field} ${n} does not fit 16 bits`);
  return n;
}
export function fits32(n: number, what: string, field: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new MalformedError(what, `${field} ${n} does not fit 32 bits`);
  return n;
}

/*
 * RFC 2408 3.3, data attributes:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !A!       Attribute Type        !    AF=0  Attribute Length     !
 * !F!                             !    AF=1  Attribute Value      !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * .                   AF=0  Attribute Value                       .
 * .                   AF=1  Not Transmitted                       .
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Meaning is left to attributes.ts; here only the framing is checked.
 */
export function decodeAttributes(r: ByteReader, what: string): V1Attribute[] {
  const out: V1Attribute[] = [];
  while (!r.atEnd) {
    const word = r.u16(`${what} attribute type`);
    const type = word & 0x7fff;
    if ((word & AF_BIT) !== 0) {
      out.push({ type, value: r.u16(`${what} attribute value`) });
    } else {
      const len = r.u16(`${what} attribute length`);
      if (len > r.remaining) throw new MalformedError(what, `attribute ${type} length ${len} exceeds the transform`);
      out.push({ type, value: r.bytes(len) });
    }
  }
  return out;
}

export function encodeAttributes(w: ByteWriter, what: string, attrs: readonly V1Attribute[]): void {
  for (const a of attrs) {
    if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0x7fff) throw new MalformedError(what, `attribute type ${a.type} does not fit 15 bits`);
    if (typeof a.value === 'number') w.u16(AF_BIT | a.type).u16(fits16(a.value, what, `attribute ${a.type} value`));
    else w.u16(a.type).u16(fits16(a.value.length, what, `attribute ${a.type} length`)).bytes(a.value);
  }
}

/**
 * Reads one proposal or transform payload header inside an SA payload:
 * Next Payload must be `more` or 0, and 0 exactly when `lastExpected`.
 */
function subPayload(r: ByteReader, what: string, more: number, lastExpected: boolean | undefined): { body: ByteReader; last: boolean } {
  if (r.remaining < SUB_HEADER_LENGTH) throw new MalformedError(what, `${r.remaining} bytes left where a payload header needs ${SUB_HEADER_LENGTH}`);
  const next = r.u8(`${what} next payload`);
  r.skip(1, `${what} reserved`);
  const len = r.u16(`${what} length`);
  if (next !== 0 && next !== more) throw new MalformedError(what, `next payload ${next}, expected ${more} or 0`);
  if (len < SUB_HEADER_LENGTH + 4) throw new MalformedError(what, `payload length ${len} < ${SUB_HEADER_LENGTH + 4}`);
  if (len - SUB_HEADER_LENGTH > r.remaining) throw new MalformedError(what, `payload length ${len} exceeds the enclosing payload`);
  const last = next === 0;
  if (lastExpected !== undefined && last !== lastExpected) {
    throw new MalformedError(what, last ? 'marked last but the transform count says more follow' : 'announces another transform beyond the count');
  }
  return { body: r.sub(len - SUB_HEADER_LENGTH), last };
}

/*
 * RFC 2408 3.6, Transform payload:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ! Next Payload  !   RESERVED    !         Payload Length        !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !  Transform #  !  Transform-Id !           RESERVED2           !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                        SA Attributes                          ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
function decodeTransform(r: ByteReader, what: string, lastExpected: boolean): V1Transform {
  const { body } = subPayload(r, what, V1PayloadType.TRANSFORM, lastExpected);
  const num = body.u8(`${what} number`);
  const id = body.u8(`${what} id`);
  body.skip(2, `${what} reserved`);
  return { num, id, attributes: decodeAttributes(body, what) };
}

/** RFC 2407 4.4.1 / RFC 2408 2.4: SPI sizes that make sense per protocol; unknown protocols are the IKE layer's to skip. */
function spiSizeOk(protocol: number, size: number): boolean {
  switch (protocol) {
    case V1ProtocolId.ISAKMP: return size === 0 || size === 8 || size === 16; // the cookies, or nothing
    case V1ProtocolId.IPSEC_AH:
    case V1ProtocolId.IPSEC_ESP: return size === 4;
    case V1ProtocolId.IPCOMP: return size === 2 || size === 4; // RFC 2407 4.4.5: a 2-octet CPI, some send 4
    default: return true;
  }
}

/*
 * RFC 2408 3.5, Proposal payload:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ! Next Payload  !   RESERVED    !         Payload Length        !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !  Proposal #   !  Protocol-Id  !    SPI Size   !# of Transforms!
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !                        SPI (variable)                         !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
function decodeProposal(r: ByteReader, index: number): { p: V1Proposal; last: boolean } {
  let what = `SA proposal ${index + 1}`;
  const { body, last } = subPayload(r, what, V1PayloadType.PROPOSAL, undefined);
  const num = body.u8(`${what} number`);
  const protocol = body.u8(`${what} protocol`);
  const spiSize = body.u8(`${what} SPI size`);
  const count = body.u8(`${what} transform count`);
  what = `SA proposal #${num}`;
  if (protocol === 0) throw new MalformedError(what, 'protocol ID 0');
  if (!spiSizeOk(protocol, spiSize)) throw new MalformedError(what, `SPI size ${spiSize} invalid for protocol ${protocol}`);
  if (spiSize > body.remaining) throw new MalformedError(what, `SPI size ${spiSize} exceeds the proposal`);
  const spi = body.bytes(spiSize);
  if (count === 0) throw new MalformedError(what, 'no transforms');
  const transforms: V1Transform[] = [];
  for (let i = 0; i < count; i++) {
    if (body.atEnd) throw new MalformedError(what, `announces ${count} transforms but holds ${i}`);
    transforms.push(decodeTransform(body, `${what} transform ${i + 1}`, i === count - 1));
  }
  if (!body.atEnd) throw new MalformedError(what, `${body.remaining} bytes after the last transform`);
  return { p: { num, protocol, spi, transforms }, last };
}

/*
 * RFC 2408 3.4, Security Association payload, with the RFC 2407 4.6.1
 * situation:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ! Next Payload  !   RESERVED    !         Payload Length        !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !              Domain of Interpretation  (DOI)                  !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !                           Situation                           !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                          <Proposals>                          ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The situation's layout belongs to the DOI, so only the IPsec DOI can be
 * read, and only SIT_IDENTITY_ONLY: the secrecy and integrity situations
 * append labelled-domain fields (RFC 2407 4.6.1) no deployed peer uses.
 * RFC 2408 4.2: proposal numbers never decrease (equal numbers form one
 * bundle); they may start at 0, which real responders send.
 */
export function decodeSaBody(r: ByteReader): { doi: number; situation: number; proposals: V1Proposal[] } {
  const doi = r.u32('SA DOI');
  if (doi !== Doi.IPSEC) throw new UnsupportedError(`SA DOI ${doi}`);
  const situation = r.u32('SA situation');
  if (situation !== Situation.SIT_IDENTITY_ONLY) throw new UnsupportedError(`SA situation 0x${situation.toString(16)}`);
  if (r.atEnd) throw new MalformedError('SA', 'no proposals');
  const proposals: V1Proposal[] = [];
  for (let i = 0; ; i++) {
    const { p, last } = decodeProposal(r, i);
    const prev = proposals[proposals.length - 1];
    if (prev !== undefined && p.num < prev.num) throw new MalformedError('SA', `proposal #${p.num} follows #${prev.num}; numbers must not decrease`);
    proposals.push(p);
    if (last) {
      if (!r.atEnd) throw new MalformedError('SA', `${r.remaining} bytes after the last proposal`);
      return { doi, situation, proposals };
    }
    if (r.atEnd) throw new MalformedError('SA', `proposal #${p.num} announces another proposal but none follows`);
  }
}

export function encodeSaBody(w: ByteWriter, doi: number, situation: number, proposals: readonly V1Proposal[]): void {
  if (proposals.length === 0) throw new MalformedError('SA', 'no proposals');
  w.u32(fits32(doi, 'SA', 'DOI')).u32(fits32(situation, 'SA', 'situation'));
  proposals.forEach((p, pi) => {
    const what = `SA proposal #${p.num}`;
    if (p.transforms.length === 0) throw new MalformedError(what, 'no transforms');
    const start = w.length;
    w.u8(pi === proposals.length - 1 ? 0 : V1PayloadType.PROPOSAL).u8(0);
    const lenAt = w.mark16();
    w.u8(fits8(p.num, what, 'number')).u8(fits8(p.protocol, what, 'protocol'))
      .u8(fits8(p.spi.length, what, 'SPI size')).u8(fits8(p.transforms.length, what, 'transform count'))
      .bytes(p.spi);
    p.transforms.forEach((t, ti) => {
      const twhat = `${what} transform ${ti + 1}`;
      const tStart = w.length;
      w.u8(ti === p.transforms.length - 1 ? 0 : V1PayloadType.TRANSFORM).u8(0);
      const tLenAt = w.mark16();
      w.u8(fits8(t.num, twhat, 'number')).u8(fits8(t.id, twhat, 'id')).u16(0);
      encodeAttributes(w, twhat, t.attributes);
      w.patch16(tLenAt, fits16(w.length - tStart, twhat, 'length'));
    });
    w.patch16(lenAt, fits16(w.length - start, what, 'length'));
  });
}
