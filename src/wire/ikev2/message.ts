/**
 * Whole messages: the header, the payload chain (RFC 7296 3.2) and the
 * encrypted payloads SK (RFC 7296 3.14) and SKF (RFC 7383 2.5).
 */
import { ByteReader, ByteWriter } from '../../util/bytes.js';
import { MalformedError } from '../../util/errors.js';
import { PayloadType } from './constants.js';
import { HEADER_LENGTH, decodeHeader, writeHeader } from './header.js';
import { decodeBody, encodeBody, payloadName, wireType } from './payloads.js';
import { fits16 } from './sa.js';
import type { HeaderInit, IkeMessage, Payload, SkPayload, SkfPayload } from './types.js';

/*
 * RFC 7296 3.2, generic payload header:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Next Payload  |C|  RESERVED   |         Payload Length        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The RESERVED bits "MUST be ignored on receipt", so they are dropped and
 * re-encoded as zero. The payload length includes this header, so it is at
 * least 4 and never reaches past the enclosing buffer.
 */
export const GENERIC_HEADER_LENGTH = 4;
const CRITICAL = 0x80;
/** RFC 7383 2.5: Fragment Number and Total Fragments follow the generic header. */
const SKF_FIELDS_LENGTH = 4;

interface Walk { payloads: Payload[] }

/**
 * Walks a chain starting at `first`, reading from r until Next Payload is 0
 * or an SK/SKF payload ends it. `msg` is the whole message when walking the
 * outer chain (SK/SKF allowed, and their AAD is taken from it); undefined for
 * decrypted contents, where an encrypted payload may not nest.
 */
function walkChain(first: number, r: ByteReader, msg: Buffer | undefined): Walk {
  const payloads: Payload[] = [];
  let type = first;
  while (type !== PayloadType.NONE) {
    const name = payloadName(type);
    if (r.remaining < GENERIC_HEADER_LENGTH) {
      throw new MalformedError(name, `${r.remaining} bytes left where a payload header needs ${GENERIC_HEADER_LENGTH}`);
    }
    const next = r.u8();
    const critical = (r.u8() & CRITICAL) !== 0;
    const len = r.u16();
    if (len < GENERIC_HEADER_LENGTH) throw new MalformedError(name, `payload length ${len} < ${GENERIC_HEADER_LENGTH}`);
    if (len - GENERIC_HEADER_LENGTH > r.remaining) {
      throw new MalformedError(name, `payload length ${len} runs ${len - GENERIC_HEADER_LENGTH - r.remaining} bytes past the end`);
    }
    if (type === PayloadType.SK || type === PayloadType.SKF) {
      if (msg === undefined) throw new MalformedError(name, 'encrypted payload inside an encrypted payload');
      // 3.14: SK is last and its Next Payload names the first inner payload, so the walk stops here.
      payloads.push(type === PayloadType.SK
        ? decodeSk(next, critical, r, len, msg)
        : decodeSkf(next, critical, r, len, msg));
      if (!r.atEnd) throw new MalformedError(name, `${r.remaining} bytes after the encrypted payload, which must be last`);
      return { payloads };
    }
    const body = r.bytes(len - GENERIC_HEADER_LENGTH);
    payloads.push(decodeBody(type, critical, body));
    type = next;
  }
  if (!r.atEnd) throw new MalformedError('payload chain', `${r.remaining} bytes after the last payload`);
  return { payloads };
}

/*
 * RFC 7296 3.14, Encrypted payload:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Next Payload  |C|  RESERVED   |         Payload Length        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                     Initialization Vector                     |
 * |         (length is block size for encryption algorithm)       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                    Encrypted IKE Payloads                     ~
 * +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |               |             Padding (0-255 octets)            |
 * +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
 * |                                               |  Pad Length   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                    Integrity Checksum Data                    ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The body is opaque here; `aad` is everything before it, which is both the
 * RFC 5282 AAD and the prefix of the RFC 7296 integrity-checked region.
 */
function decodeSk(next: number, critical: boolean, r: ByteReader, len: number, msg: Buffer): SkPayload {
  const bodyStart = r.offset;
  if (len === GENERIC_HEADER_LENGTH) throw new MalformedError('SK', 'empty encrypted payload');
  const body = r.bytes(len - GENERIC_HEADER_LENGTH);
  return { type: PayloadType.SK, critical, innerFirst: next, body, aad: Buffer.from(msg.subarray(0, bodyStart)) };
}

/*
 * RFC 7383 2.5, Encrypted Fragment payload:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Next Payload  |C|  RESERVED   |         Payload Length        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        Fragment Number        |        Total Fragments        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                     Initialization Vector                     |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                      Encrypted content                        ~
 * +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |               |             Padding (0-255 octets)            |
 * +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
 * |                                               |  Pad Length   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                    Integrity Checksum Data                    ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Next Payload is kept as found: 2.5 says only fragment 1 carries the inner
 * type, and whether a later fragment's nonzero value matters is up to the
 * reassembler.
 */
function decodeSkf(next: number, critical: boolean, r: ByteReader, len: number, msg: Buffer): SkfPayload {
  if (len < GENERIC_HEADER_LENGTH + SKF_FIELDS_LENGTH + 1) throw new MalformedError('SKF', `payload length ${len} leaves no encrypted content`);
  const fragmentNumber = r.u16();
  const totalFragments = r.u16();
  if (fragmentNumber === 0 || totalFragments === 0) throw new MalformedError('SKF', `fragment ${fragmentNumber} of ${totalFragments}: numbering starts at 1`);
  if (fragmentNumber > totalFragments) throw new MalformedError('SKF', `fragment ${fragmentNumber} of ${totalFragments}`);
  const bodyStart = r.offset;
  const body = r.bytes(len - GENERIC_HEADER_LENGTH - SKF_FIELDS_LENGTH);
  return {
    type: PayloadType.SKF, critical, innerFirst: next, fragmentNumber, totalFragments, body,
    aad: Buffer.from(msg.subarray(0, bodyStart)),
  };
}

/**
 * RFC 7296 3.1 + 3.2: header and the payload chain outside any SK payload.
 * Structural errors throw MalformedError ("malformed <payload>: <why>"), a
 * datagram shorter than its header says throws TruncatedError, and a major
 * version other than 2 throws VersionError (code ERR_VERSION).
 */
export function decodeMessage(buf: Buffer): IkeMessage {
  const header = decodeHeader(buf);
  const r = new ByteReader(buf, HEADER_LENGTH, buf.length);
  const { payloads } = walkChain(header.nextPayload, r, buf);
  return { header, payloads };
}

/** Decodes the decrypted contents of an SK payload (padding already removed), starting with the SK's innerFirst type. */
export function decodePayloadChain(firstType: number, buf: Buffer): Payload[] {
  return walkChain(firstType, new ByteReader(buf), undefined).payloads;
}

/**
 * Writes payloads back to back, each generic header's Next Payload naming the
 * following payload. An SK or SKF payload may only be last; its Next Payload
 * is its innerFirst.
 */
function writeChain(w: ByteWriter, payloads: Payload[]): void {
  payloads.forEach((p, i) => {
    const following = payloads[i + 1];
    const last = following === undefined;
    const name = payloadName(wireType(p));
    if ((p.type === PayloadType.SK || p.type === PayloadType.SKF) && !last) {
      throw new MalformedError(name, 'an encrypted payload must be the last payload');
    }
    const next = p.type === PayloadType.SK || p.type === PayloadType.SKF ? p.innerFirst : last ? PayloadType.NONE : wireType(following);
    if (!Number.isInteger(next) || next < 0 || next > 0xff) throw new MalformedError(name, `next payload ${next} does not fit 8 bits`);
    if (p.type === 'unknown' && (p.rawType <= 0 || p.rawType > 0xff)) throw new MalformedError(name, 'type does not fit 8 bits');
    w.u8(next).u8(p.critical ? CRITICAL : 0);
    const lenAt = w.mark16();
    const start = w.length - GENERIC_HEADER_LENGTH;
    if (p.type === PayloadType.SK) {
      w.bytes(p.body);
    } else if (p.type === PayloadType.SKF) {
      w.u16(fits16(p.fragmentNumber, name, 'fragment number')).u16(fits16(p.totalFragments, name, 'total fragments')).bytes(p.body);
    } else {
      encodeBody(w, p);
    }
    w.patch16(lenAt, fits16(w.length - start, name, 'payload length'));
  });
}

/** Encodes a chain (e.g. the plaintext of an SK payload) and reports the type of its first payload. */
export function encodePayloadChain(payloads: Payload[]): { firstType: number; bytes: Buffer } {
  const w = new ByteWriter(512);
  writeChain(w, payloads);
  const first = payloads[0];
  return { firstType: first === undefined ? PayloadType.NONE : wireType(first), bytes: w.finish() };
}

/**
 * A complete plaintext message (IKE_SA_INIT, or any message whose SK body
 * is already built): version 2.0, Next Payload and Length are filled in.
 */
export function encodeMessage(h: HeaderInit, payloads: Payload[]): Buffer {
  const { firstType, bytes } = encodePayloadChain(payloads);
  const w = new ByteWriter(HEADER_LENGTH + bytes.length);
  writeHeader(w, h, firstType, HEADER_LENGTH + bytes.length);
  w.bytes(bytes);
  return w.finish();
}

function checkBodyLength(bodyLength: number, overhead: number, what: string): void {
  if (!Number.isInteger(bodyLength) || bodyLength < 1 || bodyLength + overhead > 0xffff) {
    throw new MalformedError(what, `body length ${bodyLength} does not fit the payload length field`);
  }
}

/**
 * The header plus the SK generic header of a message whose only payload is
 * SK (RFC 7296 3.14): header Length = 32 + bodyLength. This is the AEAD AAD
 * (RFC 5282 5.1) and the start of the integrity-checked region; the caller
 * appends IV || ciphertext || ICV of exactly bodyLength bytes.
 */
export function encodeSkPrefix(h: HeaderInit, innerFirst: number, bodyLength: number): Buffer {
  checkBodyLength(bodyLength, GENERIC_HEADER_LENGTH, 'SK');
  const w = new ByteWriter(HEADER_LENGTH + GENERIC_HEADER_LENGTH);
  writeHeader(w, h, PayloadType.SK, HEADER_LENGTH + GENERIC_HEADER_LENGTH + bodyLength);
  w.u8(innerFirst).u8(0).u16(GENERIC_HEADER_LENGTH + bodyLength);
  return w.finish();
}

/**
 * RFC 7383 2.5: as encodeSkPrefix, for one Encrypted Fragment. The prefix
 * also holds Fragment Number and Total Fragments (36 bytes in all), and 2.5
 * requires innerFirst to be 0 on every fragment but the first.
 */
export function encodeSkfPrefix(h: HeaderInit, innerFirst: number, fragmentNumber: number, totalFragments: number, bodyLength: number): Buffer {
  checkBodyLength(bodyLength, GENERIC_HEADER_LENGTH + SKF_FIELDS_LENGTH, 'SKF');
  if (!Number.isInteger(fragmentNumber) || !Number.isInteger(totalFragments) || fragmentNumber < 1 || fragmentNumber > totalFragments || totalFragments > 0xffff) {
    throw new MalformedError('SKF', `fragment ${fragmentNumber} of ${totalFragments}`);
  }
  if (fragmentNumber > 1 && innerFirst !== PayloadType.NONE) throw new MalformedError('SKF', 'only fragment 1 names the first inner payload');
  const w = new ByteWriter(HEADER_LENGTH + GENERIC_HEADER_LENGTH + SKF_FIELDS_LENGTH);
  const payloadLength = GENERIC_HEADER_LENGTH + SKF_FIELDS_LENGTH + bodyLength;
  writeHeader(w, h, PayloadType.SKF, HEADER_LENGTH + payloadLength);
  w.u8(innerFirst).u8(0).u16(payloadLength).u16(fragmentNumber).u16(totalFragments);
  return w.finish();
}
