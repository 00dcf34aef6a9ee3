/**
 * RFC 7296 3.3: the Security Association payload and its proposal,
 * transform and attribute substructures. Substructure lengths must tile the
 * enclosing structure exactly; the "last substructure" flags and the
 * transform count must agree with what is actually there, because a peer
 * whose counts and lengths disagree is not one whose proposal we can trust
 * to mean what we think it means.
 */
import { ByteReader, ByteWriter } from '../../util/bytes.js';
import { MalformedError } from '../../util/errors.js';
import { ProtocolId, TransformAttr } from './constants.js';
import type { Proposal, Transform, TransformAttribute } from './types.js';

/** Last Substruc values: 3.3.1 uses 2 for "more proposals", 3.3.2 uses 3 for "more transforms". */
const LAST = 0;
const MORE_PROPOSALS = 2;
const MORE_TRANSFORMS = 3;
const AF_BIT = 0x8000;

export function fits16(n: number, what: string, field: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new MalformedError(what, `${field} ${n} does not fit 16 bits`);
  return n;
}
export function fits8(n: number, what: string, field: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new MalformedError(what, `${field} ${n} does not fit 8 bits`);
  return n;
}

/*
 * RFC 7296 3.3.5, transform attributes:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |A|       Attribute Type        |    AF=0  Attribute Length     |
 * |F|                             |    AF=1  Attribute Value      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                   AF=0  Attribute Value                       |
 * |                   AF=1  Not Transmitted                       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Kept attributes use a number for TV (AF=1) and a Buffer for TLV (AF=0).
 */
function decodeAttributes(r: ByteReader, what: string, t: Transform): void {
  const others: TransformAttribute[] = [];
  while (!r.atEnd) {
    const word = r.u16(`${what} attribute type`);
    const type = word & 0x7fff;
    const tv = (word & AF_BIT) !== 0;
    if (type === TransformAttr.KEY_LENGTH) {
      // 3.3.5: Key Length is only ever TV; a TLV form or a second copy would be ambiguous.
      if (!tv) throw new MalformedError(what, 'KEY_LENGTH attribute must use the TV format');
      if (t.keyLength !== undefined) throw new MalformedError(what, 'duplicate KEY_LENGTH attribute');
      t.keyLength = r.u16(`${what} KEY_LENGTH value`);
    } else if (tv) {
      others.push({ type, value: r.u16(`${what} attribute value`) });
    } else {
      const len = r.u16(`${what} attribute length`);
      others.push({ type, value: r.bytes(len, `${what} attribute value`) });
    }
  }
  if (others.length > 0) t.attributes = others;
}

function encodeAttributes(w: ByteWriter, what: string, t: Transform): void {
  if (t.keyLength !== undefined) w.u16(AF_BIT | TransformAttr.KEY_LENGTH).u16(fits16(t.keyLength, what, 'key length'));
  for (const a of t.attributes ?? []) {
    if (a.type === TransformAttr.KEY_LENGTH) throw new MalformedError(what, 'KEY_LENGTH belongs in keyLength, not attributes');
    if (a.type < 0 || a.type > 0x7fff) throw new MalformedError(what, `attribute type ${a.type} does not fit 15 bits`);
    if (typeof a.value === 'number') w.u16(AF_BIT | a.type).u16(fits16(a.value, what, 'attribute value'));
    else w.u16(a.type).u16(fits16(a.value.length, what, 'attribute length')).bytes(a.value);
  }
}

/*
 * RFC 7296 3.3.2, transform substructure:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Last Substruc |   RESERVED    |        Transform Length       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Transform Type |   RESERVED    |          Transform ID         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                                                               |
 * ~                      Transform Attributes                     ~
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
function decodeTransform(r: ByteReader, what: string, isLastExpected: boolean): { t: Transform; last: boolean } {
  const last = r.u8(`${what} last substruc`);
  r.skip(1, `${what} reserved`);
  const len = r.u16(`${what} length`);
  if (last !== LAST && last !== MORE_TRANSFORMS) throw new MalformedError(what, `last substruc ${last}, expected 0 or 3`);
  if (len < 8) throw new MalformedError(what, `transform length ${len} < 8`);
  if (len - 4 > r.remaining) throw new MalformedError(what, `transform length ${len} exceeds the proposal`);
  const body = r.sub(len - 4);
  const type = body.u8(`${what} type`);
  body.skip(1);
  const id = body.u16(`${what} id`);
  // 3.3.2: type 0 is reserved; anything else unknown is kept for the IKE layer to skip.
  if (type === 0) throw new MalformedError(what, 'transform type 0 is reserved');
  const t: Transform = { type, id };
  decodeAttributes(body, what, t);
  if ((last === LAST) !== isLastExpected) {
    throw new MalformedError(what, last === LAST ? 'marked last but the transform count says more follow' : 'marked "more" but it is the last transform');
  }
  return { t, last: last === LAST };
}

function spiSizeOk(protocol: number, size: number): boolean {
  switch (protocol) {
    case ProtocolId.IKE: return size === 0 || size === 8; // 0 in IKE_SA_INIT, 8 when rekeying (3.3.1)
    case ProtocolId.AH:
    case ProtocolId.ESP: return size === 4;
    default: return true; // a protocol styx does not speak: the IKE layer will skip the proposal
  }
}

/*
 * RFC 7296 3.3.1, proposal substructure:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Last Substruc |   RESERVED    |         Proposal Length       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                        SPI (variable)                         ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                                                               |
 * ~                        <Transforms>                           ~
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
function decodeProposal(r: ByteReader, index: number): { p: Proposal; last: boolean } {
  let what = `SA proposal ${index + 1}`;
  const last = r.u8(`${what} last substruc`);
  r.skip(1, `${what} reserved`);
  const len = r.u16(`${what} length`);
  if (last !== LAST && last !== MORE_PROPOSALS) throw new MalformedError(what, `last substruc ${last}, expected 0 or 2`);
  if (len < 8) throw new MalformedError(what, `proposal length ${len} < 8`);
  if (len - 4 > r.remaining) throw new MalformedError(what, `proposal length ${len} exceeds the SA payload`);
  const body = r.sub(len - 4);
  const num = body.u8(`${what} number`);
  const protocol = body.u8(`${what} protocol`);
  const spiSize = body.u8(`${what} SPI size`);
  const numTransforms = body.u8(`${what} transform count`);
  what = `SA proposal #${num}`;
  if (protocol === ProtocolId.NONE) throw new MalformedError(what, 'protocol ID 0');
  if (!spiSizeOk(protocol, spiSize)) throw new MalformedError(what, `SPI size ${spiSize} invalid for protocol ${protocol}`);
  if (spiSize > body.remaining) throw new MalformedError(what, `SPI size ${spiSize} exceeds the proposal`);
  const spi = body.bytes(spiSize);
  if (numTransforms === 0) throw new MalformedError(what, 'no transforms');
  const transforms: Transform[] = [];
  for (let i = 0; i < numTransforms; i++) {
    if (body.atEnd) throw new MalformedError(what, `announces ${numTransforms} transforms but holds ${i}`);
    transforms.push(decodeTransform(body, `${what} transform ${i + 1}`, i === numTransforms - 1).t);
  }
  if (!body.atEnd) throw new MalformedError(what, `${body.remaining} bytes after the last transform`);
  return { p: { num, protocol, spi, transforms }, last: last === LAST };
}

/*
 * RFC 7296 3.3, Security Association payload (after the generic header):
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Next Payload  |C|  RESERVED   |         Payload Length        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                                                               |
 * ~                          <Proposals>                          ~
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * 3.3.1: proposal numbers start where the sender chose (a response echoes the
 * accepted number) and each later proposal is one more than the previous.
 */
export function decodeProposals(r: ByteReader): Proposal[] {
  const proposals: Proposal[] = [];
  if (r.atEnd) throw new MalformedError('SA', 'no proposals');
  for (let i = 0; ; i++) {
    const { p, last } = decodeProposal(r, i);
    if (p.num === 0) throw new MalformedError('SA', 'proposal number 0');
    const prev = proposals[proposals.length - 1];
    if (prev !== undefined && p.num !== prev.num + 1) {
      throw new MalformedError('SA', `proposal #${p.num} follows #${prev.num}; numbers must increase by one`);
    }
    proposals.push(p);
    if (last) {
      if (!r.atEnd) throw new MalformedError('SA', `${r.remaining} bytes after the last proposal`);
      return proposals;
    }
    if (r.atEnd) throw new MalformedError('SA', `proposal #${p.num} announces more proposals but none follow`);
  }
}

export function encodeProposals(w: ByteWriter, proposals: Proposal[]): void {
  if (proposals.length === 0) throw new MalformedError('SA', 'no proposals');
  proposals.forEach((p, pi) => {
    const what = `SA proposal #${p.num}`;
    w.u8(pi === proposals.length - 1 ? LAST : MORE_PROPOSALS).u8(0);
    const lenAt = w.mark16();
    const start = w.length - 4;
    w.u8(fits8(p.num, what, 'number')).u8(fits8(p.protocol, what, 'protocol'))
      .u8(fits8(p.spi.length, what, 'SPI size')).u8(fits8(p.transforms.length, what, 'transform count'))
      .bytes(p.spi);
    p.transforms.forEach((t, ti) => {
      const twhat = `${what} transform ${ti + 1}`;
      w.u8(ti === p.transforms.length - 1 ? LAST : MORE_TRANSFORMS).u8(0);
      const tLenAt = w.mark16();
      const tStart = w.length - 4;
      w.u8(fits8(t.type, twhat, 'type')).u8(0).u16(fits16(t.id, twhat, 'id'));
      encodeAttributes(w, twhat, t);
      w.patch16(tLenAt, fits16(w.length - tStart, twhat, 'length'));
    });
    w.patch16(lenAt, fits16(w.length - start, what, 'length'));
  });
}
