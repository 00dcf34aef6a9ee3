/**
 * RFC 7296 3.1: the fixed IKE header.
 *
 * Length policy: decodeHeader requires the Length field to equal buf.length
 * exactly. A UDP datagram (after the caller strips any non-ESP marker or TCP
 * framing) carries exactly one message, so a longer Length means the datagram
 * was cut short (TruncatedError) and a shorter one means bytes trail the
 * message. Trailing bytes are rejected (MalformedError) rather than ignored:
 * they sit outside the integrity-protected region and nothing legitimate puts
 * them there.
 */
import { ByteReader, ByteWriter } from '../../util/bytes.js';
import { MalformedError, TruncatedError } from '../../util/errors.js';
import { HeaderFlag } from './constants.js';
import type { HeaderInit, IkeHeader } from './types.js';

export const HEADER_LENGTH = 28;
export const IKE_MAJOR_VERSION = 2;
export const IKE_MINOR_VERSION = 0;

/**
 * The peer speaks a major version other than 2. Carries what the fixed header
 * said, so a responder can answer INVALID_MAJOR_VERSION (RFC 7296 2.5) with
 * the right SPIs and Message ID; major < 2 is IKEv1 and belongs elsewhere.
 */
export class VersionError extends MalformedError {
  override readonly code: string = 'ERR_VERSION';
  readonly major: number;
  readonly minor: number;
  readonly spiI: Buffer;
  readonly spiR: Buffer;
  readonly exchangeType: number;
  readonly messageId: number;
  readonly response: boolean;
  constructor(major: number, minor: number, spiI: Buffer, spiR: Buffer, exchangeType: number, messageId: number, response: boolean) {
    super('IKE header', `major version ${major}.${minor}, expected ${IKE_MAJOR_VERSION}`);
    this.major = major;
    this.minor = minor;
    this.spiI = spiI;
    this.spiR = spiR;
    this.exchangeType = exchangeType;
    this.messageId = messageId;
    this.response = response;
  }
}

/*
 * RFC 7296 3.1:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                       IKE SA Initiator's SPI                  |
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                       IKE SA Responder's SPI                  |
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                          Message ID                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                            Length                             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */

/**
 * RFC 7296 3.1. The version is checked before the length so that a peer
 * with a newer major version gets INVALID_MAJOR_VERSION even if its framing
 * differs. The minor version is kept but not checked ("MUST ignore").
 * Undefined flag bits are ignored on receipt, as 3.1 requires.
 */
export function decodeHeader(buf: Buffer): IkeHeader {
  const r = new ByteReader(buf);
  if (buf.length < HEADER_LENGTH) throw new TruncatedError('IKE header', HEADER_LENGTH, buf.length);
  const spiI = r.bytes(8, 'IKE SA initiator SPI');
  const spiR = r.bytes(8, 'IKE SA responder SPI');
  const nextPayload = r.u8();
  const version = r.u8();
  const exchangeType = r.u8();
  const flagBits = r.u8();
  const messageId = r.u32();
  const length = r.u32();
  const majorVersion = version >> 4;
  const minorVersion = version & 0x0f;
  const flags = {
    initiator: (flagBits & HeaderFlag.INITIATOR) !== 0,
    response: (flagBits & HeaderFlag.RESPONSE) !== 0,
    version: (flagBits & HeaderFlag.VERSION) !== 0,
  };
  if (majorVersion !== IKE_MAJOR_VERSION) {
    throw new VersionError(majorVersion, minorVersion, spiI, spiR, exchangeType, messageId, flags.response);
  }
  if (length < HEADER_LENGTH) throw new MalformedError('IKE header', `length field ${length} < ${HEADER_LENGTH}`);
  if (length > buf.length) throw new TruncatedError('IKE message', length, buf.length);
  if (length < buf.length) throw new MalformedError('IKE header', `length field ${length} but ${buf.length} bytes received`);
  return { spiI, spiR, nextPayload, majorVersion, minorVersion, exchangeType, flags, messageId, length };
}

function checkSpi(spi: Buffer, what: string): void {
  if (spi.length !== 8) throw new MalformedError('IKE header', `${what} must be 8 bytes, got ${spi.length}`);
}

/** Writes the 28-byte header; version is always 2.0 (RFC 7296 3.1 "MUST set the minor version to zero"). */
export function writeHeader(w: ByteWriter, h: HeaderInit, nextPayload: number, length: number): void {
  checkSpi(h.spiI, 'initiator SPI');
  checkSpi(h.spiR, 'responder SPI');
  if (length > 0xffffffff) throw new MalformedError('IKE header', `length ${length} does not fit 32 bits`);
  if (!Number.isInteger(h.exchangeType) || h.exchangeType < 0 || h.exchangeType > 0xff) {
    throw new MalformedError('IKE header', `exchange type ${h.exchangeType} does not fit 8 bits`);
  }
  if (!Number.isInteger(h.messageId) || h.messageId < 0 || h.messageId > 0xffffffff) {
    throw new MalformedError('IKE header', `message ID ${h.messageId} does not fit 32 bits`);
  }
  const flags = (h.flags.initiator ? HeaderFlag.INITIATOR : 0)
    | (h.flags.response ? HeaderFlag.RESPONSE : 0)
    | (h.flags.version ? HeaderFlag.VERSION : 0);
  w.bytes(h.spiI).bytes(h.spiR)
    .u8(nextPayload).u8((IKE_MAJOR_VERSION << 4) | IKE_MINOR_VERSION).u8(h.exchangeType).u8(flags)
    .u32(h.messageId).u32(length);
}
