/**
 * Quick Mode and Informational hashes and Quick Mode keying material
 * (RFC 2409 5.5, 5.7). `rest` is always the decrypted message after the
 * HASH payload, payload headers included, padding excluded (splitV1Hash in
 * wire/ikev1 cuts it).
 */
import { IntegrityError, UnsupportedError } from '../../util/errors.js';
import { safeEqual } from '../../util/bytes.js';
import { EspTransformId, IpsecAuthAlg, nameOf } from '../../wire/ikev1/constants.js';
import { v1Prf } from './algorithms.js';

function mid(messageId: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(messageId >>> 0);
  return b;
}

/** RFC 2409 5.5: HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ]). */
export function v1QuickHash1(hashId: number, skeyidA: Buffer, messageId: number, rest: Buffer): Buffer {
  return v1Prf(hashId).compute(skeyidA, Buffer.concat([mid(messageId), rest]));
}

/** RFC 2409 5.5: HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ]). */
export function v1QuickHash2(hashId: number, skeyidA: Buffer, messageId: number, niB: Buffer, rest: Buffer): Buffer {
  return v1Prf(hashId).compute(skeyidA, Buffer.concat([mid(messageId), niB, rest]));
}

/** RFC 2409 5.5: HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b), the 0 a single octet. */
export function v1QuickHash3(hashId: number, skeyidA: Buffer, messageId: number, niB: Buffer, nrB: Buffer): Buffer {
  return v1Prf(hashId).compute(skeyidA, Buffer.concat([Buffer.from([0]), mid(messageId), niB, nrB]));
}

/** RFC 2409 5.7: HASH(1) = prf(SKEYID_a, M-ID | N/D), over the Notification or Delete that follows. */
export function v1InformationalHash(hashId: number, skeyidA: Buffer, messageId: number, rest: Buffer): Buffer {
  return v1Prf(hashId).compute(skeyidA, Buffer.concat([mid(messageId), rest]));
}

/** Compares a received HASH with the computed one in constant time; IntegrityError names what failed. */
export function v1CheckHash(what: string, computed: Buffer, received: Buffer): void {
  if (!safeEqual(computed, received)) throw new IntegrityError(what);
}

export interface V1KeymatInput {
  /** RFC 2407 4.4.1 protocol of the SA (ESP 3, AH 2), one octet. */
  protocol: number;
  /** The SPI the receiving side chose for this SA (4 octets for ESP/AH). */
  spi: Buffer;
  niB: Buffer;
  nrB: Buffer;
  /** g(qm)^xy when Quick Mode ran a PFS exchange. */
  gxyQm?: Buffer;
}

/** Sanity bound on KEYMAT expansion (AES-256 + HMAC-SHA2-512 needs 96 octets). */
const MAX_KEYMAT_BLOCKS = 32;

/**
 * RFC 2409 5.5:
 *   KEYMAT = prf(SKEYID_d, protocol | SPI | Ni_b | Nr_b)                   (no PFS)
 *   KEYMAT = prf(SKEYID_d, g(qm)^xy | protocol | SPI | Ni_b | Nr_b)       (PFS)
 * expanded as K1 | K2 | ... with Kn+1 = prf(SKEYID_d, Kn | <the same seed>),
 * then cut to `length`. Each direction has its own SA and so its own SPI.
 */
export function v1QuickKeymat(hashId: number, skeyidD: Buffer, x: V1KeymatInput, length: number): Buffer {
  if (!Number.isInteger(x.protocol) || x.protocol < 0 || x.protocol > 0xff) throw new UnsupportedError(`KEYMAT protocol ${x.protocol}`);
  const prf = v1Prf(hashId);
  const seed = Buffer.concat([...(x.gxyQm ? [x.gxyQm] : []), Buffer.from([x.protocol]), x.spi, x.niB, x.nrB]);
  const blocks: Buffer[] = [];
  let prev: Buffer = Buffer.alloc(0);
  let have = 0;
  while (have < length) {
    if (blocks.length >= MAX_KEYMAT_BLOCKS) throw new UnsupportedError(`KEYMAT of ${length} bytes`);
    prev = prf.compute(skeyidD, Buffer.concat([prev, seed]));
    blocks.push(prev);
    have += prev.length;
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/**
 * Octets of KEYMAT an ESP SA takes, encryption key first, then the
 * authentication key (the order RFC 2401-era stacks and Linux XFRM use).
 * AEAD keys include the RFC 4106 8.1 4-octet salt.
 */
export function v1EspKeyLengths(transformId: number, keyLengthBits: number | undefined, authAlg: number | undefined): { encr: number; integ: number } {
  let encr: number;
  switch (transformId) {
    case EspTransformId.ESP_3DES:
      encr = 24;
      break;
    case EspTransformId.ESP_AES:
    case EspTransformId.ESP_AES_GCM_8:
    case EspTransformId.ESP_AES_GCM_12:
    case EspTransformId.ESP_AES_GCM_16: {
      if (keyLengthBits !== 128 && keyLengthBits !== 192 && keyLengthBits !== 256) {
        throw new UnsupportedError(`${nameOf(EspTransformId, transformId)} key length ${keyLengthBits ?? 'absent'}`);
      }
      encr = keyLengthBits / 8 + (transformId === EspTransformId.ESP_AES ? 0 : 4);
      break;
    }
    default:
      throw new UnsupportedError(`ESP transform ${nameOf(EspTransformId, transformId)}`);
  }
  const INTEG: Record<number, number> = {
    [IpsecAuthAlg.HMAC_SHA]: 20, [IpsecAuthAlg.HMAC_SHA2_256]: 32, [IpsecAuthAlg.HMAC_SHA2_384]: 48, [IpsecAuthAlg.HMAC_SHA2_512]: 64,
  };
  if (authAlg === undefined) return { encr, integ: 0 };
  // GCM carries its own integrity (RFC 4106); a separate authentication algorithm next to it cannot be honoured.
  if (transformId !== EspTransformId.ESP_AES && transformId !== EspTransformId.ESP_3DES) {
    throw new UnsupportedError(`${nameOf(EspTransformId, transformId)} with an authentication algorithm`);
  }
  const integ = INTEG[authAlg];
  if (integ === undefined) throw new UnsupportedError(`ESP authentication algorithm ${nameOf(IpsecAuthAlg, authAlg)}`);
  return { encr, integ };
}
