/**
 * RFC 2408 3.1: the fixed ISAKMP header.
 *
 * Length policy, as for IKEv2: the Length field must equal the datagram
 * length. Longer means the datagram was cut (TruncatedError); shorter means
 * bytes trail the message, which nothing legitimate puts there, so it is
 * MalformedError rather than silently ignored. Encrypted bodies include
 * their CBC padding, so the rule holds for them too.
 */
import { ByteReader, ByteWriter } from '../../util/bytes.js';
import { MalformedError, TruncatedError } from '../../util/errors.js';
import { V1HeaderFlag } from './constants.js';
import type { IsakmpHeader, IsakmpHeaderInit } from './types.js';

export const ISAKMP_HEADER_LENGTH = 28;
export const ISAKMP_MAJOR_VERSION = 1;
export const ISAKMP_MINOR_VERSION = 0;
const COOKIE_LENGTH = 8;

/**
 * The datagram is not ISAKMP 1.x. Carries the header fields so a caller can
 * hand an IKEv2 message to the IKEv2 codec, or answer INVALID-MAJOR-VERSION
 * (RFC 2408 5.2) with the right cookies.
 */
export class IsakmpVersionError extends MalformedError {
  override readonly code: string = 'ERR_VERSION';
  readonly major: number;
  readonly minor: number;
  readonly cookieI: Buffer;
  readonly cookieR: Buffer;
  readonly exchangeType: number;
  readonly messageId: number;
  constructor(major: number, minor: number, cookieI: Buffer, cookieR: Buffer, exchangeType: number, messageId: number) {
    super('ISAKMP header', `version ${major}.${minor}, expected ${ISAKMP_MAJOR_VERSION}.x`);
    this.major = major;
    this.minor = minor;
    this.cookieI = cookieI;
    this.cookieR = cookieR;
    this.exchangeType = exchangeType;
    this.messageId = messageId;
  }
}

/*
 * RFC 2408 3.1:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !                          Initiator                            !
 * !                            Cookie                             !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !                          Responder                            !
 * !                            Cookie                             !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !  Next Payload ! MjVer ! MnVer ! Exchange Type !     Flags     !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !                          Message ID                           !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !                            Length                             !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */

/**
 * RFC 2408 3.1. The version is checked before the length so an IKEv2
 * datagram is recognised as such whatever its framing. The minor version is
 * kept but not judged: RFC 2408 5.2 leaves INVALID-MINOR-VERSION to the
 * receiver and deployed peers all send 0. Flag bits 3-7 are unused and
 * ignored on receipt.
 */
export function decodeIsakmpHeader(buf: Buffer): IsakmpHeader {
  if (buf.length < ISAKMP_HEADER_LENGTH) throw new TruncatedError('ISAKMP header', ISAKMP_HEADER_LENGTH, buf.length);
  const r = new ByteReader(buf);
  const cookieI = r.bytes(COOKIE_LENGTH, 'initiator cookie');
  const cookieR = r.bytes(COOKIE_LENGTH, 'responder cookie');
  const nextPayload = r.u8();
  const version = r.u8();
  const exchangeType = r.u8();
  const flagBits = r.u8();
  const messageId = r.u32();
  const length = r.u32();
  const majorVersion = version >> 4;
  const minorVersion = version & 0x0f;
  if (majorVersion !== ISAKMP_MAJOR_VERSION) {
    throw new IsakmpVersionError(majorVersion, minorVersion, cookieI, cookieR, exchangeType, messageId);
  }
  if (length < ISAKMP_HEADER_LENGTH) throw new MalformedError('ISAKMP header', `length field ${length} < ${ISAKMP_HEADER_LENGTH}`);
  if (length > buf.length) throw new TruncatedError('ISAKMP message', length, buf.length);
  if (length < buf.length) throw new MalformedError('ISAKMP header', `length field ${length} but ${buf.length} bytes received`);
  const flags = {
    encryption: (flagBits & V1HeaderFlag.ENCRYPTION) !== 0,
    commit: (flagBits & V1HeaderFlag.COMMIT) !== 0,
    authOnly: (flagBits & V1HeaderFlag.AUTHENTICATION_ONLY) !== 0,
  };
  return { cookieI, cookieR, nextPayload, majorVersion, minorVersion, exchangeType, flags, messageId, length };
}

/** Writes the 28-byte header, version 1.0 (RFC 2408 3.1: minor version 0 for this RFC). */
export function writeIsakmpHeader(w: ByteWriter, h: IsakmpHeaderInit, nextPayload: number, length: number): void {
  if (h.cookieI.length !== COOKIE_LENGTH) throw new MalformedError('ISAKMP header', `initiator cookie of ${h.cookieI.length} bytes`);
  if (h.cookieR.length !== COOKIE_LENGTH) throw new MalformedError('ISAKMP header', `responder cookie of ${h.cookieR.length} bytes`);
  if (!Number.isInteger(h.exchangeType) || h.exchangeType < 0 || h.exchangeType > 0xff) {
    throw new MalformedError('ISAKMP header', `exchange type ${h.exchangeType} does not fit 8 bits`);
  }
  if (!Number.isInteger(h.messageId) || h.messageId < 0 || h.messageId > 0xffffffff) {
    throw new MalformedError('ISAKMP header', `message ID ${h.messageId} does not fit 32 bits`);
  }
  if (length > 0xffffffff) throw new MalformedError('ISAKMP header', `length ${length} does not fit 32 bits`);
  const flags = (h.flags.encryption ? V1HeaderFlag.ENCRYPTION : 0)
    | (h.flags.commit ? V1HeaderFlag.COMMIT : 0)
    | (h.flags.authOnly ? V1HeaderFlag.AUTHENTICATION_ONLY : 0);
  w.bytes(h.cookieI).bytes(h.cookieR)
    .u8(nextPayload).u8((ISAKMP_MAJOR_VERSION << 4) | ISAKMP_MINOR_VERSION).u8(h.exchangeType).u8(flags)
    .u32(h.messageId).u32(length);
}
