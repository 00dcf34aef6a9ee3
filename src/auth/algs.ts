/**
 * Signature algorithm identifiers (RFC 5280 4.1.1.2, RFC 4055, RFC 5758)
 * and the one place that turns an AlgorithmIdentifier plus a public key into
 * a node:crypto verification. Used for certificate and CRL signatures; IKE
 * AUTH signatures go through signer.ts.
 */
import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { AuthError } from './errors.js';
import { children, oidText, readOne, Tag, type Tlv } from './der.js';

export const Oid = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha1WithRSAEncryption: '1.2.840.113549.1.1.5',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  sha224WithRSAEncryption: '1.2.840.113549.1.1.14',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSHA1: '1.2.840.10045.4.1',
  ecdsaWithSHA224: '1.2.840.10045.4.3.1',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
  ed25519: '1.3.101.112',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  sha224: '2.16.840.1.101.3.4.2.4',
} as const;

export type HashName = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
export const HASH_LEN: Record<HashName, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

const HASH_BY_OID = new Map<string, HashName>([
  [Oid.sha1, 'sha1'], [Oid.sha224, 'sha224'], [Oid.sha256, 'sha256'], [Oid.sha384, 'sha384'], [Oid.sha512, 'sha512'],
]);
const RSA_PKCS1 = new Map<string, HashName>([
  [Oid.sha1WithRSAEncryption, 'sha1'], [Oid.sha224WithRSAEncryption, 'sha224'], [Oid.sha256WithRSAEncryption, 'sha256'],
  [Oid.sha384WithRSAEncryption, 'sha384'], [Oid.sha512WithRSAEncryption, 'sha512'],
]);
const ECDSA = new Map<string, HashName>([
  [Oid.ecdsaWithSHA1, 'sha1'], [Oid.ecdsaWithSHA224, 'sha224'], [Oid.ecdsaWithSHA256, 'sha256'],
  [Oid.ecdsaWithSHA384, 'sha384'], [Oid.ecdsaWithSHA512, 'sha512'],
]);

export interface AlgorithmId { oid: string; params: Tlv | undefined; raw: Buffer }

export function parseAlgorithmId(der: Buffer): AlgorithmId {
  const t = readOne(der, 'AlgorithmIdentifier');
  const parts = children(t, 'AlgorithmIdentifier');
  if (t.tag !== Tag.SEQUENCE || parts.length < 1 || parts.length > 2 || parts[0]!.tag !== Tag.OID) {
    throw new AuthError('ERR_SIGNATURE_SCHEME', 'malformed AlgorithmIdentifier');
  }
  return { oid: oidText(parts[0]!.contents), params: parts[1], raw: Buffer.from(der) };
}

export interface PssParams { hash: HashName; mgfHash: HashName; saltLength: number }

function hashOfAlgId(t: Tlv): HashName {
  const parts = children(t, 'hash AlgorithmIdentifier');
  const h = parts[0]?.tag === Tag.OID ? HASH_BY_OID.get(oidText(parts[0].contents)) : undefined;
  if (!h) throw new AuthError('ERR_SIGNATURE_SCHEME', 'unsupported hash in RSASSA-PSS parameters');
  return h;
}

/** RFC 4055 3.1 RSASSA-PSS-params; absent fields take the SHA-1 defaults the RFC gives. */
export function parsePssParams(params: Tlv | undefined): PssParams {
  const out: PssParams = { hash: 'sha1', mgfHash: 'sha1', saltLength: 20 };
  if (!params || params.tag === Tag.NULL) return out;
  if (params.tag !== Tag.SEQUENCE) throw new AuthError('ERR_SIGNATURE_SCHEME', 'malformed RSASSA-PSS parameters');
  for (const f of children(params, 'RSASSA-PSS-params')) {
    const inner = children(f, 'RSASSA-PSS-params')[0];
    if (!inner) throw new AuthError('ERR_SIGNATURE_SCHEME', 'empty RSASSA-PSS field');
    switch (f.tag) {
      case 0xa0: out.hash = hashOfAlgId(inner); break;
      case 0xa1: {
        const mgf = children(inner, 'maskGenAlgorithm');
        if (mgf[0]?.tag !== Tag.OID || oidText(mgf[0].contents) !== Oid.mgf1 || !mgf[1]) throw new AuthError('ERR_SIGNATURE_SCHEME', 'RSASSA-PSS mask generation is not MGF1');
        out.mgfHash = hashOfAlgId(mgf[1]);
        break;
      }
      case 0xa2: {
        if (inner.tag !== Tag.INTEGER || inner.contents.length > 2 || (inner.contents[0]! & 0x80)) throw new AuthError('ERR_SIGNATURE_SCHEME', 'bad RSASSA-PSS salt length');
        out.saltLength = inner.contents.readUIntBE(0, inner.contents.length);
        break;
      }
      case 0xa3:
        if (inner.tag !== Tag.INTEGER || inner.contents.length !== 1 || inner.contents[0] !== 1) throw new AuthError('ERR_SIGNATURE_SCHEME', 'RSASSA-PSS trailer field must be 1');
        break;
      default: throw new AuthError('ERR_SIGNATURE_SCHEME', 'unknown RSASSA-PSS field');
    }
  }
  return out;
}

export interface KeyInfo { type: 'rsa' | 'rsa-pss' | 'ecdsa' | 'ed25519' | 'other'; bits: number | undefined; curve: string | undefined }

const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** Key type, size and curve in the names IKE speaks of (P-256 rather than prime256v1). */
export function keyInfo(key: KeyObject): KeyInfo {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa': return { type: 'rsa', bits: d.modulusLength, curve: undefined };
    case 'rsa-pss': return { type: 'rsa-pss', bits: d.modulusLength, curve: undefined };
    case 'ec': {
      const c = d.namedCurve;
      const bits = c === 'prime256v1' ? 256 : c === 'secp384r1' ? 384 : c === 'secp521r1' ? 521 : undefined;
      return { type: 'ecdsa', bits, curve: c !== undefined ? CURVES[c] ?? c : undefined };
    }
    case 'ed25519': return { type: 'ed25519', bits: 256, curve: undefined };
    default: return { type: 'other', bits: undefined, curve: undefined };
  }
}

export interface VerifyOptions {
  /** SHA-1 signatures are collision-prone (RFC 8247 4.2 retires them for IKE); refused unless asked for. */
  allowSha1?: boolean;
}

/**
 * Verifies a signature over `tbs` made as `alg` says, with `key`. Returns
 * false for a wrong signature; throws ERR_SIGNATURE_SCHEME when the algorithm
 * is unknown, refused, or does not fit the key type.
 */
export function verifySignedData(tbs: Buffer, alg: AlgorithmId, signature: Buffer, key: KeyObject, opts: VerifyOptions = {}): boolean {
  const kt = key.asymmetricKeyType;
  const refuseSha1 = (h: HashName): void => {
    if (h === 'sha1' && !opts.allowSha1) throw new AuthError('ERR_SIGNATURE_SCHEME', 'SHA-1 signature refused');
  };
  const wrongKey = (): never => { throw new AuthError('ERR_SIGNATURE_SCHEME', `signature algorithm ${alg.oid} does not fit a ${kt} key`); };
  const pkcs1 = RSA_PKCS1.get(alg.oid);
  if (pkcs1) {
    if (kt !== 'rsa') wrongKey();
    refuseSha1(pkcs1);
    return safeVerify(pkcs1, tbs, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
  }
  if (alg.oid === Oid.rsassaPss) {
    if (kt !== 'rsa' && kt !== 'rsa-pss') wrongKey();
    const p = parsePssParams(alg.params);
    // node:crypto ties the MGF1 hash to the message hash, and so do all sane profiles (RFC 8017 9.1 note).
    if (p.mgfHash !== p.hash) throw new AuthError('ERR_SIGNATURE_SCHEME', 'RSASSA-PSS with differing MGF1 hash');
    refuseSha1(p.hash);
    return safeVerify(p.hash, tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: p.saltLength }, signature);
  }
  const ec = ECDSA.get(alg.oid);
  if (ec) {
    if (kt !== 'ec') wrongKey();
    refuseSha1(ec);
    return safeVerify(ec, tbs, { key, dsaEncoding: 'der' }, signature);
  }
  if (alg.oid === Oid.ed25519) {
    if (kt !== 'ed25519') wrongKey();
    return safeVerify(null, tbs, key, signature);
  }
  throw new AuthError('ERR_SIGNATURE_SCHEME', `unsupported signature algorithm ${alg.oid}`);
}

type VerifyKey = Parameters<typeof cryptoVerify>[2];

/** A malformed signature (bad DER, wrong length) is a failed verification, not an exception. */
function safeVerify(hash: string | null, data: Buffer, key: VerifyKey, sig: Buffer): boolean {
  try { return cryptoVerify(hash, data, key, sig); } catch { return false; }
}
