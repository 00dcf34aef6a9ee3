/**
 * IKEv1 phase 1 key material (RFC 2409 5 and appendix B) and the
 * authenticating hashes HASH_I / HASH_R. All inputs are raw octets: `_b`
 * values are payload bodies without their generic header, exactly as sent.
 */
import { UnsupportedError } from '../../util/errors.js';
import { v1Prf } from './algorithms.js';

/** How SKEYID is keyed: RFC 2409 5 gives one formula per authentication class. */
export type V1SkeyidAuth =
  | { method: 'psk'; psk: Buffer }
  | { method: 'signature' };

/** RFC 2409 5, pre-shared keys: SKEYID = prf(pre-shared-key, Ni_b | Nr_b). */
export function v1SkeyidPsk(hashId: number, psk: Buffer, niB: Buffer, nrB: Buffer): Buffer {
  return v1Prf(hashId).compute(psk, Buffer.concat([niB, nrB]));
}

/** RFC 2409 5, signatures: SKEYID = prf(Ni_b | Nr_b, g^xy). */
export function v1SkeyidSig(hashId: number, niB: Buffer, nrB: Buffer, gxy: Buffer): Buffer {
  return v1Prf(hashId).compute(Buffer.concat([niB, nrB]), gxy);
}

/** SKEYID by authentication class; public key encryption (RFC 2409 5.2/5.3) is not supported. */
export function v1Skeyid(hashId: number, auth: V1SkeyidAuth, niB: Buffer, nrB: Buffer, gxy: Buffer): Buffer {
  return auth.method === 'psk' ? v1SkeyidPsk(hashId, auth.psk, niB, nrB) : v1SkeyidSig(hashId, niB, nrB, gxy);
}

export interface V1Skeyids { skeyidD: Buffer; skeyidA: Buffer; skeyidE: Buffer }

/**
 * RFC 2409 5:
 *   SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
 *   SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
 *   SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
 * The trailing numbers are single octets; g^xy is the full-width shared secret.
 */
export function v1DeriveSkeyids(hashId: number, skeyid: Buffer, gxy: Buffer, ckyI: Buffer, ckyR: Buffer): V1Skeyids {
  const prf = v1Prf(hashId);
  const skeyidD = prf.compute(skeyid, Buffer.concat([gxy, ckyI, ckyR, Buffer.from([0])]));
  const skeyidA = prf.compute(skeyid, Buffer.concat([skeyidD, gxy, ckyI, ckyR, Buffer.from([1])]));
  const skeyidE = prf.compute(skeyid, Buffer.concat([skeyidA, gxy, ckyI, ckyR, Buffer.from([2])]));
  return { skeyidD, skeyidA, skeyidE };
}

/** Sanity bound on key expansion; the longest real cipher key (AES-256) needs at most 2 blocks. */
const MAX_EXPANSION_BLOCKS = 16;

/**
 * RFC 2409 appendix B: the cipher key is the first bytes of SKEYID_e; when
 * SKEYID_e is too short, K = K1 | K2 | K3 ... with K1 = prf(SKEYID_e, 0)
 * (a single zero octet) and Kn = prf(SKEYID_e, Kn-1), and the key is cut
 * from K. Expansion replaces SKEYID_e entirely; it is not appended to it.
 */
export function v1EncryptionKey(hashId: number, skeyidE: Buffer, keyBytes: number): Buffer {
  if (keyBytes <= skeyidE.length) return Buffer.from(skeyidE.subarray(0, keyBytes));
  const prf = v1Prf(hashId);
  const blocks: Buffer[] = [];
  let k = prf.compute(skeyidE, Buffer.from([0]));
  blocks.push(k);
  let have = k.length;
  while (have < keyBytes) {
    if (blocks.length >= MAX_EXPANSION_BLOCKS) throw new UnsupportedError(`IKEv1 encryption key of ${keyBytes} bytes`);
    k = prf.compute(skeyidE, k);
    blocks.push(k);
    have += k.length;
  }
  return Buffer.concat(blocks).subarray(0, keyBytes);
}

export interface V1Phase1Keys extends V1Skeyids {
  skeyid: Buffer;
  /** The phase 1 cipher key derived from SKEYID_e (appendix B). */
  encryptionKey: Buffer;
}

export interface V1Phase1KeyInput {
  hashId: number;
  auth: V1SkeyidAuth;
  niB: Buffer;
  nrB: Buffer;
  gxy: Buffer;
  ckyI: Buffer;
  ckyR: Buffer;
  /** Octets of the negotiated cipher's key (V1CipherInfo.keyBytes). */
  keyBytes: number;
}

/** RFC 2409 5 and appendix B in one step. */
export function v1DerivePhase1Keys(x: V1Phase1KeyInput): V1Phase1Keys {
  const skeyid = v1Skeyid(x.hashId, x.auth, x.niB, x.nrB, x.gxy);
  const ids = v1DeriveSkeyids(x.hashId, skeyid, x.gxy, x.ckyI, x.ckyR);
  return { skeyid, ...ids, encryptionKey: v1EncryptionKey(x.hashId, ids.skeyidE, x.keyBytes) };
}

/** The phase 1 values both HASH_I and HASH_R cover. */
export interface V1Phase1Transcript {
  gxi: Buffer;
  gxr: Buffer;
  ckyI: Buffer;
  ckyR: Buffer;
  /** The initiator's SA payload body, in both hashes. */
  saiB: Buffer;
}

/**
 * RFC 2409 5: HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b).
 * With pre-shared keys it is sent as is; with signatures it is what SIG_I signs.
 */
export function v1HashI(hashId: number, skeyid: Buffer, t: V1Phase1Transcript, idiiB: Buffer): Buffer {
  return v1Prf(hashId).compute(skeyid, Buffer.concat([t.gxi, t.gxr, t.ckyI, t.ckyR, t.saiB, idiiB]));
}

/** RFC 2409 5: HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b). */
export function v1HashR(hashId: number, skeyid: Buffer, t: V1Phase1Transcript, idirB: Buffer): Buffer {
  return v1Prf(hashId).compute(skeyid, Buffer.concat([t.gxr, t.gxi, t.ckyR, t.ckyI, t.saiB, idirB]));
}
