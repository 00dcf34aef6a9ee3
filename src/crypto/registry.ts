/**
 * Transform ID -> algorithm descriptor for everything styx negotiates, plus
 * the names used in logs and `styx list`. IDs are the IANA "IKEv2
 * Parameters" numbers from wire/ikev2/constants.ts.
 */
import { createHmac } from 'node:crypto';
import type { KeyExchange, Prf } from './api.js';
import { HmacPrf } from './prf.js';
import { EcpExchange, ModpExchange, X25519Exchange } from './dh.js';
import { UnsupportedError } from '../util/errors.js';
import { DhId, EncrId, IntegId, PrfId, nameOf } from '../wire/ikev2/constants.js';

// ---------------------------------------------------------------- ENCR

export type EncrMode = 'cbc' | 'gcm' | 'chacha20-poly1305';

export interface EncrInfo {
  readonly id: number;
  readonly mode: EncrMode;
  /** Allowed Key Length attribute values in bits; 0 means the attribute must be absent. */
  readonly keyLengths: readonly number[];
  /** RFC 4106 8.1 / RFC 5282 / RFC 7634 2: salt octets taken from the keying material after the key. */
  readonly saltBytes: number;
  /** Octets of IV carried in each SK payload / ESP packet. */
  readonly ivBytes: number;
  /** Integrity octets appended by the cipher itself (AEAD tag); 0 for CBC, whose ICV comes from INTEG. */
  readonly tagBytes: number;
  /** Alignment of plaintext+padding+pad-length; 1 for the AEAD stream modes. */
  readonly blockBytes: number;
}

const AES_KEY_LENGTHS = [128, 192, 256] as const;

const ENCR: ReadonlyMap<number, EncrInfo> = new Map<number, EncrInfo>([
  // RFC 3602 / RFC 7296 3.14: 16-octet random IV, CBC block padding.
  [EncrId.ENCR_AES_CBC, { id: EncrId.ENCR_AES_CBC, mode: 'cbc', keyLengths: AES_KEY_LENGTHS, saltBytes: 0, ivBytes: 16, tagBytes: 0, blockBytes: 16 }],
  // RFC 5282 (RFC 4106 nonce layout): 4-octet salt, 8-octet explicit IV, 8/12/16-octet tag.
  [EncrId.ENCR_AES_GCM_8, { id: EncrId.ENCR_AES_GCM_8, mode: 'gcm', keyLengths: AES_KEY_LENGTHS, saltBytes: 4, ivBytes: 8, tagBytes: 8, blockBytes: 1 }],
  [EncrId.ENCR_AES_GCM_12, { id: EncrId.ENCR_AES_GCM_12, mode: 'gcm', keyLengths: AES_KEY_LENGTHS, saltBytes: 4, ivBytes: 8, tagBytes: 12, blockBytes: 1 }],
  [EncrId.ENCR_AES_GCM_16, { id: EncrId.ENCR_AES_GCM_16, mode: 'gcm', keyLengths: AES_KEY_LENGTHS, saltBytes: 4, ivBytes: 8, tagBytes: 16, blockBytes: 1 }],
  // RFC 7634 2: 256-bit key, 4-octet salt, 8-octet IV, 16-octet tag; no Key Length attribute.
  [EncrId.ENCR_CHACHA20_POLY1305, { id: EncrId.ENCR_CHACHA20_POLY1305, mode: 'chacha20-poly1305', keyLengths: [0], saltBytes: 4, ivBytes: 8, tagBytes: 16, blockBytes: 1 }],
]);

export function encrInfo(id: number): EncrInfo {
  const e = ENCR.get(id);
  if (!e) throw new UnsupportedError(`encryption algorithm ${nameOf(EncrId, id)}`);
  return e;
}

export function isAead(encrId: number): boolean {
  return encrInfo(encrId).mode !== 'cbc';
}

/** The cipher key size in bits, after checking the Key Length attribute is valid for the algorithm. */
export function encrCipherKeyBits(encrId: number, keyLengthBits: number): number {
  const e = encrInfo(encrId);
  if (e.mode === 'chacha20-poly1305') {
    // RFC 7634 2 forbids the attribute; config writes 0 for "none", accept an explicit 256 too.
    if (keyLengthBits !== 0 && keyLengthBits !== 256) throw new UnsupportedError(`CHACHA20_POLY1305 key length ${keyLengthBits}`);
    return 256;
  }
  if (!e.keyLengths.includes(keyLengthBits)) throw new UnsupportedError(`${nameOf(EncrId, encrId)} key length ${keyLengthBits}`);
  return keyLengthBits;
}

/** Octets of keying material for SK_e / ESP encryption keys, including the AEAD salt. */
export function encrKeyBytes(encrId: number, keyLengthBits: number): number {
  return encrCipherKeyBits(encrId, keyLengthBits) / 8 + encrInfo(encrId).saltBytes;
}

export function encrName(encrId: number, keyLengthBits: number): string {
  const e = ENCR.get(encrId);
  if (!e) return nameOf(EncrId, encrId);
  switch (e.mode) {
    case 'cbc': return `AES_CBC_${keyLengthBits}`;
    case 'gcm': return `AES_GCM_${e.tagBytes}_${keyLengthBits}`;
    case 'chacha20-poly1305': return 'CHACHA20_POLY1305';
  }
}

// ---------------------------------------------------------------- INTEG

export interface IntegInfo {
  readonly id: number;
  readonly name: string;
  readonly hash: string;
  readonly keyBytes: number;
  readonly icvBytes: number;
}

const INTEG: ReadonlyMap<number, IntegInfo> = new Map<number, IntegInfo>([
  // RFC 2404: HMAC-SHA1 truncated to 96 bits, 160-bit key.
  [IntegId.AUTH_HMAC_SHA1_96, { id: IntegId.AUTH_HMAC_SHA1_96, name: 'HMAC_SHA1_96', hash: 'sha1', keyBytes: 20, icvBytes: 12 }],
  // RFC 4868 2.1: key = hash output size, ICV = half of it.
  [IntegId.AUTH_HMAC_SHA2_256_128, { id: IntegId.AUTH_HMAC_SHA2_256_128, name: 'HMAC_SHA2_256_128', hash: 'sha256', keyBytes: 32, icvBytes: 16 }],
  [IntegId.AUTH_HMAC_SHA2_384_192, { id: IntegId.AUTH_HMAC_SHA2_384_192, name: 'HMAC_SHA2_384_192', hash: 'sha384', keyBytes: 48, icvBytes: 24 }],
  [IntegId.AUTH_HMAC_SHA2_512_256, { id: IntegId.AUTH_HMAC_SHA2_512_256, name: 'HMAC_SHA2_512_256', hash: 'sha512', keyBytes: 64, icvBytes: 32 }],
]);

export function integInfo(id: number): IntegInfo {
  const i = INTEG.get(id);
  if (!i) throw new UnsupportedError(`integrity algorithm ${nameOf(IntegId, id)}`);
  return i;
}

/** SK_a / ESP integrity key octets; 0 for NONE, which goes with AEAD ciphers (RFC 5282). */
export function integKeyBytes(id: number): number {
  return id === IntegId.NONE ? 0 : integInfo(id).keyBytes;
}

export function integIcvBytes(id: number): number {
  return id === IntegId.NONE ? 0 : integInfo(id).icvBytes;
}

/** The truncated HMAC ICV (RFC 2404 2, RFC 4868 2.1.1). */
export function integIcv(id: number, key: Buffer, data: Buffer): Buffer {
  const i = integInfo(id);
  return createHmac(i.hash, key).update(data).digest().subarray(0, i.icvBytes);
}

export function integName(id: number): string {
  return id === IntegId.NONE ? 'NONE' : (INTEG.get(id)?.name ?? nameOf(IntegId, id));
}

// ---------------------------------------------------------------- PRF

const PRF: ReadonlyMap<number, Prf> = new Map<number, Prf>([
  [PrfId.PRF_HMAC_SHA1, new HmacPrf(PrfId.PRF_HMAC_SHA1, 'PRF_HMAC_SHA1', 'sha1', 20)],
  [PrfId.PRF_HMAC_SHA2_256, new HmacPrf(PrfId.PRF_HMAC_SHA2_256, 'PRF_HMAC_SHA2_256', 'sha256', 32)],
  [PrfId.PRF_HMAC_SHA2_384, new HmacPrf(PrfId.PRF_HMAC_SHA2_384, 'PRF_HMAC_SHA2_384', 'sha384', 48)],
  [PrfId.PRF_HMAC_SHA2_512, new HmacPrf(PrfId.PRF_HMAC_SHA2_512, 'PRF_HMAC_SHA2_512', 'sha512', 64)],
]);

export function getPrf(id: number): Prf {
  const p = PRF.get(id);
  if (!p) throw new UnsupportedError(`PRF ${nameOf(PrfId, id)}`);
  return p;
}

export function prfName(id: number): string {
  return PRF.get(id)?.name ?? nameOf(PrfId, id);
}

// ---------------------------------------------------------------- DH

export type DhKind = 'modp' | 'ecp' | 'curve25519';

export interface DhInfo {
  readonly id: number;
  readonly name: string;
  readonly kind: DhKind;
  /** KE payload data length in octets. */
  readonly publicBytes: number;
  /** Accepted only for replaying old recordings; never offered or accepted in negotiation. */
  readonly legacy: boolean;
  /** OpenSSL's name: the MODP group ('modp14') or the curve ('prime256v1'). */
  readonly openssl: string;
}

const DH: ReadonlyMap<number, DhInfo> = new Map<number, DhInfo>([
  // RFC 2409 6.2: 1024-bit MODP. Too weak for use (RFC 8247 2.4); kept for recorded-handshake tests.
  [DhId.MODP_1024, { id: DhId.MODP_1024, name: 'MODP_1024', kind: 'modp', publicBytes: 128, legacy: true, openssl: 'modp2' }],
  // RFC 3526 3-5.
  [DhId.MODP_2048, { id: DhId.MODP_2048, name: 'MODP_2048', kind: 'modp', publicBytes: 256, legacy: false, openssl: 'modp14' }],
  [DhId.MODP_3072, { id: DhId.MODP_3072, name: 'MODP_3072', kind: 'modp', publicBytes: 384, legacy: false, openssl: 'modp15' }],
  [DhId.MODP_4096, { id: DhId.MODP_4096, name: 'MODP_4096', kind: 'modp', publicBytes: 512, legacy: false, openssl: 'modp16' }],
  // RFC 5903 3: NIST curves; KE data x || y.
  [DhId.ECP_256, { id: DhId.ECP_256, name: 'ECP_256', kind: 'ecp', publicBytes: 64, legacy: false, openssl: 'prime256v1' }],
  [DhId.ECP_384, { id: DhId.ECP_384, name: 'ECP_384', kind: 'ecp', publicBytes: 96, legacy: false, openssl: 'secp384r1' }],
  [DhId.ECP_521, { id: DhId.ECP_521, name: 'ECP_521', kind: 'ecp', publicBytes: 132, legacy: false, openssl: 'secp521r1' }],
  // RFC 8031 2.
  [DhId.CURVE25519, { id: DhId.CURVE25519, name: 'CURVE_25519', kind: 'curve25519', publicBytes: 32, legacy: false, openssl: 'x25519' }],
]);

/** Groups styx may offer or accept (order carries no preference); MODP_1024 is deliberately absent. */
export const supportedDhGroups: readonly number[] = [...DH.values()].filter((d) => !d.legacy).map((d) => d.id);

export function dhInfo(group: number): DhInfo {
  const d = DH.get(group);
  if (!d) throw new UnsupportedError(`DH group ${nameOf(DhId, group)}`);
  return d;
}

export function dhName(group: number): string {
  return DH.get(group)?.name ?? nameOf(DhId, group);
}

/**
 * A fresh key exchange for `group`. `privateKey` is for tests that replay a
 * recorded handshake (raw: MODP exponent, EC scalar, or X25519 scalar);
 * production code leaves it out.
 */
export function createKeyExchange(group: number, privateKey?: Buffer): KeyExchange {
  const d = dhInfo(group);
  switch (d.kind) {
    case 'modp': return new ModpExchange(group, d.openssl, privateKey);
    case 'ecp': return new EcpExchange(group, d.openssl, d.publicBytes / 2, privateKey);
    case 'curve25519': return new X25519Exchange(group, privateKey);
  }
}

// ---------------------------------------------------------------- listing

export interface AlgorithmListing {
  encr: { id: number; keyLength: number; name: string }[];
  integ: { id: number; name: string }[];
  prf: { id: number; name: string }[];
  dh: { id: number; name: string }[];
}

/** Everything styx can negotiate, for `styx list`. */
export function listAlgorithms(): AlgorithmListing {
  const encr: AlgorithmListing['encr'] = [];
  for (const e of ENCR.values()) for (const k of e.keyLengths) encr.push({ id: e.id, keyLength: k, name: encrName(e.id, k) });
  return {
    encr,
    integ: [...INTEG.values()].map((i) => ({ id: i.id, name: i.name })),
    prf: [...PRF.values()].map((p) => ({ id: p.id, name: p.name })),
    dh: supportedDhGroups.map((g) => ({ id: g, name: dhName(g) })),
  };
}
