/**
 * The IKEv1 algorithms styx computes with, keyed by the RFC 2409 appendix A
 * numbers: the hash (which also makes the PRF, RFC 2409 4: "the HMAC version
 * of the negotiated hash"), the phase 1 CBC cipher, and the DH groups. The
 * HMAC and DH machinery is src/crypto's; this file only maps numbers.
 */
import { createHash } from 'node:crypto';
import type { KeyExchange, Prf } from '../api.js';
import { HmacPrf } from '../prf.js';
import { createKeyExchange } from '../registry.js';
import { UnsupportedError } from '../../util/errors.js';
import { V1EncryptionAlg, V1Group, V1HashAlg, nameOf } from '../../wire/ikev1/constants.js';

export interface V1HashInfo {
  readonly id: number;
  readonly name: string;
  /** node:crypto digest name. */
  readonly node: string;
  readonly outputBytes: number;
  /** Only for checking recorded exchanges (ike-scan's MD5 vectors); never offered or accepted. */
  readonly legacy: boolean;
}

const HASHES: ReadonlyMap<number, V1HashInfo> = new Map<number, V1HashInfo>([
  [V1HashAlg.MD5, { id: V1HashAlg.MD5, name: 'MD5', node: 'md5', outputBytes: 16, legacy: true }],
  [V1HashAlg.SHA, { id: V1HashAlg.SHA, name: 'SHA1', node: 'sha1', outputBytes: 20, legacy: false }],
  [V1HashAlg.SHA2_256, { id: V1HashAlg.SHA2_256, name: 'SHA2_256', node: 'sha256', outputBytes: 32, legacy: false }],
  [V1HashAlg.SHA2_384, { id: V1HashAlg.SHA2_384, name: 'SHA2_384', node: 'sha384', outputBytes: 48, legacy: false }],
  [V1HashAlg.SHA2_512, { id: V1HashAlg.SHA2_512, name: 'SHA2_512', node: 'sha512', outputBytes: 64, legacy: false }],
]);

export function v1HashInfo(hashId: number): V1HashInfo {
  const h = HASHES.get(hashId);
  if (!h) throw new UnsupportedError(`IKEv1 hash algorithm ${nameOf(V1HashAlg, hashId)}`);
  return h;
}

/** Hash algorithms styx may negotiate (MD5 is absent). */
export const v1SupportedHashes: readonly number[] = [...HASHES.values()].filter((h) => !h.legacy).map((h) => h.id);

const PRFS = new Map<number, Prf>();

/** RFC 2409 4: prf is HMAC (RFC 2104) with the negotiated hash, since no PRF attribute is ever negotiated. */
export function v1Prf(hashId: number): Prf {
  let p = PRFS.get(hashId);
  if (!p) {
    const h = v1HashInfo(hashId);
    p = new HmacPrf(h.id, `HMAC_${h.name}`, h.node, h.outputBytes);
    PRFS.set(hashId, p);
  }
  return p;
}

/** The bare negotiated hash over the concatenated parts (RFC 2409 appendix B uses it for IVs). */
export function v1Digest(hashId: number, ...parts: Buffer[]): Buffer {
  const h = createHash(v1HashInfo(hashId).node);
  for (const p of parts) h.update(p);
  return h.digest();
}

export interface V1CipherInfo {
  readonly id: number;
  readonly name: string;
  /** node:crypto cipher name. */
  readonly node: string;
  readonly keyBytes: number;
  readonly blockBytes: number;
}

const AES_BITS: readonly number[] = [128, 192, 256];

/**
 * The phase 1 cipher for an encryption algorithm and Key Length attribute
 * (bits, undefined when absent). AES-CBC (RFC 3602) must name its key length
 * because it has several; 3DES-CBC has one, so the attribute must be absent
 * (RFC 2409 appendix A: only for variable-length ciphers).
 */
export function v1Cipher(encryptionId: number, keyLengthBits?: number): V1CipherInfo {
  if (encryptionId === V1EncryptionAlg.AES_CBC) {
    if (keyLengthBits === undefined) throw new UnsupportedError('AES_CBC without a key length attribute');
    if (!AES_BITS.includes(keyLengthBits)) throw new UnsupportedError(`AES_CBC key length ${keyLengthBits}`);
    return { id: encryptionId, name: `AES_CBC_${keyLengthBits}`, node: `aes-${keyLengthBits}-cbc`, keyBytes: keyLengthBits / 8, blockBytes: 16 };
  }
  if (encryptionId === V1EncryptionAlg.TRIPLE_DES_CBC) {
    if (keyLengthBits !== undefined) throw new UnsupportedError(`3DES_CBC with a key length attribute (${keyLengthBits})`);
    return { id: encryptionId, name: '3DES_CBC', node: 'des-ede3-cbc', keyBytes: 24, blockBytes: 8 };
  }
  throw new UnsupportedError(`IKEv1 encryption algorithm ${nameOf(V1EncryptionAlg, encryptionId)}`);
}

/**
 * Group descriptions styx computes for IKEv1. The numbers are the same
 * IANA values the IKEv2 registry uses, so createKeyExchange serves both;
 * this list keeps out groups defined only for IKEv2 (Curve25519).
 * MODP_1024 is here for replaying recordings; the registry marks it legacy.
 */
export const V1_DH_GROUPS: readonly number[] = [
  V1Group.MODP_1024, V1Group.MODP_2048, V1Group.MODP_3072, V1Group.MODP_4096, V1Group.ECP_256, V1Group.ECP_384, V1Group.ECP_521,
];

/** A DH exchange for an IKEv1 group description; `privateKey` is for replaying recorded exchanges. */
export function createV1KeyExchange(group: number, privateKey?: Buffer): KeyExchange {
  if (!V1_DH_GROUPS.includes(group)) throw new UnsupportedError(`IKEv1 group ${nameOf(V1Group, group)}`);
  return createKeyExchange(group, privateKey);
}
