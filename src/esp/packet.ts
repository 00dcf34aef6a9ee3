/**
 * ESP packet framing (RFC 4303 2):
 *
 *   SPI (4) | Sequence Number (4) | IV | Payload | Padding (0-255) |
 *   Pad Length (1) | Next Header (1) | ICV
 *
 * sealEsp builds a packet from a payload with the sequence number (and, for
 * known-answer tests, the IV) given; openEsp verifies and strips one. Both
 * work on Buffers with a transform from sa.ts and know nothing of SAs,
 * windows or policies.
 *
 * Hot path: headers and trailers are read and written on the Buffer
 * directly with explicit length checks rather than through ByteReader, and
 * the returned payload is a view into the decrypted buffer.
 */
import { MalformedError, StyxError, TruncatedError, err, ok, type Result } from '../util/errors.js';
import type { EspTransform } from './sa.js';

export const ESP_HEADER_BYTES = 8;

/** The cleartext header of an ESP packet (RFC 4303 2.1, 2.2). */
export interface EspHeader {
  readonly spi: number;
  /** The low 32 bits of the sequence number, as sent. */
  readonly seqLow: number;
}

/**
 * RFC 4303 2.1: SPI 0 is reserved; on a UDP 4500 socket four zero octets are
 * the non-ESP marker of an IKE message (RFC 3948 2.2), which the demux
 * should have taken already.
 */
export function decodeEspHeader(packet: Buffer): Result<EspHeader, TruncatedError | MalformedError> {
  if (packet.length < ESP_HEADER_BYTES) return err(new TruncatedError('ESP header', ESP_HEADER_BYTES, packet.length));
  const spi = packet.readUInt32BE(0);
  if (spi === 0) return err(new MalformedError('ESP header', 'SPI 0 (non-ESP marker)'));
  return ok({ spi, seqLow: packet.readUInt32BE(4) });
}

/** Padding that is not 1, 2, 3, ... (RFC 4303 2.4) or a Pad Length longer than the plaintext. */
export class PaddingError extends MalformedError {
  constructor(why: string) { super('ESP padding', why); }
}

/** What is left of an ESP packet after verification and decryption. */
export interface EspPlaintext {
  /** A view into the decrypted buffer: the inner IP packet (tunnel) or upper-layer payload (transport). */
  readonly payload: Buffer;
  readonly nextHeader: number;
  readonly padLength: number;
}

/**
 * RFC 4303 2.4: Payload | Padding | Pad Length | Next Header must end on the
 * cipher's block size and on 4 octets (so the ICV is aligned). Returns the
 * Padding length.
 */
export function espPadLength(payloadLength: number, align: number): number {
  const rem = (payloadLength + 2) % align;
  return rem === 0 ? 0 : align - rem;
}

/** The length of the packet sealEsp will build. */
export function espSealedLength(t: EspTransform, payloadLength: number): number {
  return ESP_HEADER_BYTES + t.ivBytes + payloadLength + espPadLength(payloadLength, t.align) + 2 + t.icvBytes;
}

/**
 * Builds one ESP packet. `iv` is for known-answer tests; left out, the
 * transform makes one (AEAD: the sequence number, CBC: random).
 */
export function sealEsp(t: EspTransform, spi: number, seqHigh: number, seqLow: number, payload: Buffer, nextHeader: number, iv?: Buffer): Buffer {
  const padLen = espPadLength(payload.length, t.align);
  const ptAt = ESP_HEADER_BYTES + t.ivBytes;
  const ptLen = payload.length + padLen + 2;
  const out = Buffer.allocUnsafe(ptAt + ptLen + t.icvBytes);
  out.writeUInt32BE(spi >>> 0, 0);
  out.writeUInt32BE(seqLow >>> 0, 4);
  if (iv) {
    if (iv.length !== t.ivBytes) throw new MalformedError('ESP IV', `${iv.length} octets, ${t.ivBytes} needed`);
    iv.copy(out, ESP_HEADER_BYTES);
  } else {
    t.writeIv(out, ESP_HEADER_BYTES, seqHigh, seqLow);
  }
  // The plaintext is assembled in place, then encrypted with one update() call.
  payload.copy(out, ptAt);
  let at = ptAt + payload.length;
  // RFC 4303 2.4: default padding is the monotonic series 1, 2, 3, ...
  for (let i = 1; i <= padLen; i++) out[at++] = i;
  out[at++] = padLen;
  out[at] = nextHeader;
  t.seal(out, ptAt, ptLen, seqHigh);
  return out;
}

/**
 * Verifies and decrypts one ESP packet whose sequence number's high half is
 * `seqHigh` (0 without ESN), then takes the trailer apart. Errors:
 * TruncatedError (too short to hold IV, trailer and ICV), MalformedError
 * (ciphertext not whole cipher blocks), IntegrityError (bad ICV),
 * PaddingError (bad Pad Length or, if `checkPadding`, padding contents).
 */
export function openEsp(t: EspTransform, packet: Buffer, seqHigh: number, checkPadding: boolean): Result<EspPlaintext, StyxError> {
  const ctAt = ESP_HEADER_BYTES + t.ivBytes;
  // RFC 4303 2: at least the IV, Pad Length, Next Header and the ICV follow the header.
  const min = ctAt + Math.max(2, t.blockBytes) + t.icvBytes;
  if (packet.length < min) return err(new TruncatedError('ESP packet', min, packet.length));
  const ctLen = packet.length - ctAt - t.icvBytes;
  if (ctLen % t.blockBytes !== 0) return err(new MalformedError('ESP packet', `${ctLen} octets of ciphertext is not whole ${t.blockBytes}-octet blocks`));
  const opened = t.open(packet, seqHigh);
  if (!opened.ok) return opened;
  return parseTrailer(opened.value, checkPadding);
}

/** RFC 4303 2.4-2.6: Pad Length and Next Header are the last two octets; the padding precedes them. */
export function parseTrailer(plain: Buffer, checkPadding: boolean): Result<EspPlaintext, PaddingError | TruncatedError> {
  const n = plain.length;
  if (n < 2) return err(new TruncatedError('ESP trailer', 2, n));
  const nextHeader = plain[n - 1]!;
  const padLength = plain[n - 2]!;
  const payloadEnd = n - 2 - padLength;
  if (payloadEnd < 0) return err(new PaddingError(`pad length ${padLength} exceeds the ${n - 2} octets before it`));
  if (checkPadding) {
    for (let i = 0; i < padLength; i++) {
      if (plain[payloadEnd + i] !== i + 1) return err(new PaddingError(`octet ${i + 1} of the padding is ${plain[payloadEnd + i]}, not ${i + 1}`));
    }
  }
  return ok({ payload: plain.subarray(0, payloadEnd), nextHeader, padLength });
}
