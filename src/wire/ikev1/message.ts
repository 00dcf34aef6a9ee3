/**
 * Whole ISAKMP messages: the header (RFC 2408 3.1), the payload chain
 * (3.2), and the encrypted body that follows the header when the E flag is
 * set.
 */
import { ByteReader, ByteWriter } from '../../util/bytes.js';
import { MalformedError } from '../../util/errors.js';
import { V1PayloadType } from './constants.js';
import { ISAKMP_HEADER_LENGTH, decodeIsakmpHeader, writeIsakmpHeader } from './header.js';
import { decodeV1Body, encodeV1Body, v1PayloadName, v1WireType } from './payloads.js';
import { fits16 } from './sa.js';
import type { IsakmpHeaderInit, IsakmpMessage, RawV1Payload, V1Payload } from './types.js';

/*
 * RFC 2408 3.2, generic payload header:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ! Next Payload  !   RESERVED    !         Payload Length        !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * IKEv1 has no critical bit: RESERVED is dropped on receipt and sent as 0.
 * The length includes this header, so it is at least 4 and never reaches
 * past the enclosing buffer.
 */
export const V1_GENERIC_HEADER_LENGTH = 4;

/**
 * Most trailing octets tolerated after the last payload of a decrypted body.
 * IKEv1 CBC padding carries no reliable length: RFC 2408 has senders pad with
 * zeros to the block size, RFC 2409 5.3 describes padding whose last octet
 * counts it, and implementations do either (or pad with other octets). So
 * what follows the payload whose Next Payload is 0 is ignored, whatever its
 * content, up to 255 octets: padding a one-octet count could describe. More
 * than that is not padding but stray data, and is refused.
 */
export const V1_MAX_TRAILING_PADDING = 255;

/**
 * Walks a chain from `first` until Next Payload is 0, keeping every body
 * raw. `padded` allows trailing padding (decrypted bodies only); in a
 * plaintext message any byte after the last payload is an error.
 */
function walk(first: number, r: ByteReader, padded: boolean): RawV1Payload[] {
  const out: RawV1Payload[] = [];
  let type = first;
  while (type !== V1PayloadType.NONE) {
    const name = v1PayloadName(type);
    const start = r.offset;
    if (r.remaining < V1_GENERIC_HEADER_LENGTH) {
      throw new MalformedError(name, `${r.remaining} bytes left where a payload header needs ${V1_GENERIC_HEADER_LENGTH}`);
    }
    const next = r.u8();
    r.skip(1);
    const len = r.u16();
    if (len < V1_GENERIC_HEADER_LENGTH) throw new MalformedError(name, `payload length ${len} < ${V1_GENERIC_HEADER_LENGTH}`);
    if (len - V1_GENERIC_HEADER_LENGTH > r.remaining) {
      throw new MalformedError(name, `payload length ${len} runs ${len - V1_GENERIC_HEADER_LENGTH - r.remaining} bytes past the end`);
    }
    const body = r.bytes(len - V1_GENERIC_HEADER_LENGTH);
    out.push({ type, body, start, end: r.offset });
    type = next;
  }
  if (!r.atEnd) {
    if (!padded) throw new MalformedError('payload chain', `${r.remaining} bytes after the last payload`);
    if (r.remaining > V1_MAX_TRAILING_PADDING) throw new MalformedError('payload chain', `${r.remaining} bytes after the last payload exceed any padding`);
  }
  return out;
}

/**
 * The raw payloads of a decrypted body (RFC 2408 3.2), padding tolerated.
 * Offsets are relative to `buf`. For hashing received bodies: RFC 2409 5
 * hashes SAi_b and IDii_b exactly as they were sent.
 */
export function walkV1PayloadChain(firstType: number, buf: Buffer): RawV1Payload[] {
  return walk(firstType, new ByteReader(buf), true);
}

function decodeRaw(raw: readonly RawV1Payload[]): V1Payload[] {
  return raw.map((p) => decodeV1Body(p.type, p.body));
}

/**
 * RFC 2408 3.1 + 3.2. A plaintext message's chain must fill the message
 * exactly. With the E flag set the payloads are not read: the body is kept
 * as ciphertext, to be decrypted by crypto/ikev1 and read with
 * decodeV1PayloadChain(firstPayload, plaintext).
 * Throws MalformedError ("malformed <payload>: <why>"), TruncatedError when
 * the datagram is shorter than its header says, and IsakmpVersionError (code
 * ERR_VERSION) for anything but ISAKMP 1.x.
 */
export function decodeIsakmp(buf: Buffer): IsakmpMessage {
  const header = decodeIsakmpHeader(buf);
  if (header.flags.encryption) {
    if (header.nextPayload === V1PayloadType.NONE) throw new MalformedError('ISAKMP message', 'encrypted, yet Next Payload says there are no payloads');
    if (buf.length === ISAKMP_HEADER_LENGTH) throw new MalformedError('ISAKMP message', 'encryption flag set but no ciphertext follows');
    return { header, encrypted: true, firstPayload: header.nextPayload, ciphertext: Buffer.from(buf.subarray(ISAKMP_HEADER_LENGTH)) };
  }
  const payloads = decodeRaw(walk(header.nextPayload, new ByteReader(buf, ISAKMP_HEADER_LENGTH, buf.length), false));
  return { header, encrypted: false, payloads };
}

/**
 * Decodes a decrypted message body starting with `firstType` (the header's
 * Next Payload). Trailing CBC padding is tolerated (see V1_MAX_TRAILING_PADDING).
 */
export function decodeV1PayloadChain(firstType: number, buf: Buffer): V1Payload[] {
  return decodeRaw(walkV1PayloadChain(firstType, buf));
}

/**
 * RFC 2409 5.5 and 5.7: Quick Mode and Informational messages start with a
 * HASH payload computed over "the entire message that follows the hash
 * payload, including all payload headers, but excluding any padding".
 * Returns that HASH value and those bytes, cut from a decrypted body.
 */
export function splitV1Hash(firstType: number, buf: Buffer): { hash: Buffer; rest: Buffer } {
  const raw = walkV1PayloadChain(firstType, buf);
  const first = raw[0];
  if (first === undefined || first.type !== V1PayloadType.HASH) {
    throw new MalformedError('ISAKMP message', `first payload is ${first === undefined ? 'missing' : v1PayloadName(first.type)}, expected HASH`);
  }
  if (first.body.length === 0) throw new MalformedError('HASH', 'empty payload');
  const last = raw[raw.length - 1]!;
  return { hash: first.body, rest: Buffer.from(buf.subarray(first.end, last.end)) };
}

function writeChain(w: ByteWriter, payloads: readonly V1Payload[]): void {
  payloads.forEach((p, i) => {
    const following = payloads[i + 1];
    const type = v1WireType(p);
    const name = v1PayloadName(type);
    if (!Number.isInteger(type) || type <= 0 || type > 0xff) throw new MalformedError(name, 'type does not fit 8 bits');
    if (type === V1PayloadType.PROPOSAL || type === V1PayloadType.TRANSFORM) throw new MalformedError(name, 'only inside an SA payload');
    const start = w.length;
    w.u8(following === undefined ? V1PayloadType.NONE : v1WireType(following)).u8(0);
    const lenAt = w.mark16();
    encodeV1Body(w, p);
    w.patch16(lenAt, fits16(w.length - start, name, 'payload length'));
  });
}

/**
 * Encodes payloads back to back and reports the first one's type (for the
 * header's Next Payload). Encoding is deterministic, so the bytes after a
 * leading HASH payload equal encodeV1PayloadChain of the payloads after it:
 * a sender computes HASH(1) over those, then encodes [HASH, ...rest].
 */
export function encodeV1PayloadChain(payloads: readonly V1Payload[]): { firstType: number; bytes: Buffer } {
  const w = new ByteWriter(512);
  writeChain(w, payloads);
  const first = payloads[0];
  return { firstType: first === undefined ? V1PayloadType.NONE : v1WireType(first), bytes: w.finish() };
}

/** A complete plaintext message: version 1.0, Next Payload and Length are filled in. */
export function encodeIsakmp(h: IsakmpHeaderInit, payloads: readonly V1Payload[]): Buffer {
  if (h.flags.encryption) throw new MalformedError('ISAKMP header', 'encryption flag on a plaintext message; use encodeIsakmpEncrypted');
  const { firstType, bytes } = encodeV1PayloadChain(payloads);
  const w = new ByteWriter(ISAKMP_HEADER_LENGTH + bytes.length);
  writeIsakmpHeader(w, h, firstType, ISAKMP_HEADER_LENGTH + bytes.length);
  w.bytes(bytes);
  return w.finish();
}

/**
 * RFC 2408 3.1: a message whose body is ciphertext (padding included); the
 * E flag is set whatever `h` says, and Next Payload names the first
 * encrypted payload.
 */
export function encodeIsakmpEncrypted(h: IsakmpHeaderInit, firstPayload: number, ciphertext: Buffer): Buffer {
  if (!Number.isInteger(firstPayload) || firstPayload <= 0 || firstPayload > 0xff) {
    throw new MalformedError('ISAKMP header', `first payload type ${firstPayload}`);
  }
  if (ciphertext.length === 0) throw new MalformedError('ISAKMP message', 'empty ciphertext');
  const w = new ByteWriter(ISAKMP_HEADER_LENGTH + ciphertext.length);
  writeIsakmpHeader(w, { ...h, flags: { ...h.flags, encryption: true } }, firstPayload, ISAKMP_HEADER_LENGTH + ciphertext.length);
  w.bytes(ciphertext);
  return w.finish();
}
