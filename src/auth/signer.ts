/**
 * Signatures for the IKEv2 AUTH payload (RFC 7296 2.15, 3.8): the legacy
 * per-key methods and the RFC 7427 Digital Signature method, which names the
 * algorithm inside the payload. Private-key operations sit behind the
 * Signer interface so they can later move out of the daemon process (an
 * agent or an HSM); LocalSigner keeps the key in memory. node:crypto does
 * all signing and verification.
 */
import { constants, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { AuthMethod } from '../wire/ikev2/constants.js';
import { MalformedError } from '../util/errors.js';
import { AuthError } from './errors.js';
import { HASH_LEN, keyInfo, Oid, parseAlgorithmId, parsePssParams, type HashName } from './algs.js';
import { oidDer, Tag, tlv } from './der.js';

export type SignatureScheme =
  | 'rsa-sha1'            // method 1: RSASSA-PKCS1-v1_5 with SHA-1
  | 'ecdsa-p256-sha256'   // method 9 (RFC 4754): r || s, 32 octets each
  | 'ecdsa-p384-sha384'   // method 10: r || s, 48 octets each
  | 'ecdsa-p521-sha512'   // method 11: r || s, 66 octets each
  | 'rsa-pkcs1-sha256' | 'rsa-pkcs1-sha384' | 'rsa-pkcs1-sha512'  // method 14 (RFC 7427)
  | 'rsa-pss-sha256' | 'rsa-pss-sha384' | 'rsa-pss-sha512'
  | 'ecdsa-sha256' | 'ecdsa-sha384' | 'ecdsa-sha512';

export type KeyType = 'rsa' | 'ecdsa';

export interface Signer {
  readonly keyType: KeyType;
  /** 'P-256', 'P-384' or 'P-521' for ECDSA keys. */
  readonly curve?: string;
  sign(data: Buffer, scheme: SignatureScheme): Promise<Buffer>;
}

/** RFC 7427 4: hash algorithm identifiers of the SIGNATURE_HASH_ALGORITHMS notify. */
export const SignatureHash = { SHA1: 1, SHA2_256: 2, SHA2_384: 3, SHA2_512: 4 } as const;
const HASH_ID: Record<HashName, number | undefined> = { sha1: 1, sha224: undefined, sha256: 2, sha384: 3, sha512: 4 };

/** What styx announces: SHA-1 is left out, as RFC 8247 4.2 asks for signature hashes. */
export const SUPPORTED_SIGNATURE_HASHES: readonly number[] = [SignatureHash.SHA2_256, SignatureHash.SHA2_384, SignatureHash.SHA2_512];

interface SchemeDef {
  method: number;
  key: KeyType;
  curve?: string;
  hash: HashName;
  /** How the signature value is laid out. */
  form: 'pkcs1' | 'pss' | 'p1363' | 'der';
}

const DEFS: Record<SignatureScheme, SchemeDef> = {
  'rsa-sha1': { method: AuthMethod.RSA_SIG, key: 'rsa', hash: 'sha1', form: 'pkcs1' },
  'ecdsa-p256-sha256': { method: AuthMethod.ECDSA_SHA256_P256, key: 'ecdsa', curve: 'P-256', hash: 'sha256', form: 'p1363' },
  'ecdsa-p384-sha384': { method: AuthMethod.ECDSA_SHA384_P384, key: 'ecdsa', curve: 'P-384', hash: 'sha384', form: 'p1363' },
  'ecdsa-p521-sha512': { method: AuthMethod.ECDSA_SHA512_P521, key: 'ecdsa', curve: 'P-521', hash: 'sha512', form: 'p1363' },
  'rsa-pkcs1-sha256': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'rsa', hash: 'sha256', form: 'pkcs1' },
  'rsa-pkcs1-sha384': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'rsa', hash: 'sha384', form: 'pkcs1' },
  'rsa-pkcs1-sha512': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'rsa', hash: 'sha512', form: 'pkcs1' },
  'rsa-pss-sha256': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'rsa', hash: 'sha256', form: 'pss' },
  'rsa-pss-sha384': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'rsa', hash: 'sha384', form: 'pss' },
  'rsa-pss-sha512': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'rsa', hash: 'sha512', form: 'pss' },
  // RFC 7427 3: ECDSA signatures in the Digital Signature method are DER Ecdsa-Sig-Value, unlike RFC 4754's r || s.
  'ecdsa-sha256': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'ecdsa', hash: 'sha256', form: 'der' },
  'ecdsa-sha384': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'ecdsa', hash: 'sha384', form: 'der' },
  'ecdsa-sha512': { method: AuthMethod.DIGITAL_SIGNATURE, key: 'ecdsa', hash: 'sha512', form: 'der' },
};

export const SIGNATURE_SCHEMES = Object.keys(DEFS) as SignatureScheme[];

const HASH_OID: Record<'sha256' | 'sha384' | 'sha512', string> = { sha256: Oid.sha256, sha384: Oid.sha384, sha512: Oid.sha512 };
const NULL = tlv(Tag.NULL, Buffer.alloc(0));
const seq = (...items: Buffer[]): Buffer => tlv(Tag.SEQUENCE, Buffer.concat(items));

/**
 * The AlgorithmIdentifier DER for an RFC 7427 scheme, built from the OIDs
 * with the parameter encodings RFC 7427 appendix A shows: NULL for PKCS#1
 * v1.5 (A.1), absent for ECDSA (A.3), and for RSASSA-PSS explicit hash, MGF1
 * with the same hash and a salt as long as the hash (A.4.3 for SHA-256; the
 * SHA-384/512 forms follow the same pattern).
 */
function buildAlgorithmId(scheme: SignatureScheme): Buffer | undefined {
  const d = DEFS[scheme];
  if (d.method !== AuthMethod.DIGITAL_SIGNATURE || d.hash === 'sha1' || d.hash === 'sha224') return undefined;
  const h = d.hash;
  if (d.form === 'pkcs1') {
    const oid = h === 'sha256' ? Oid.sha256WithRSAEncryption : h === 'sha384' ? Oid.sha384WithRSAEncryption : Oid.sha512WithRSAEncryption;
    return seq(oidDer(oid), NULL);
  }
  if (d.form === 'der') {
    return seq(oidDer(h === 'sha256' ? Oid.ecdsaWithSHA256 : h === 'sha384' ? Oid.ecdsaWithSHA384 : Oid.ecdsaWithSHA512));
  }
  const hashAlg = seq(oidDer(HASH_OID[h]), NULL);
  return seq(oidDer(Oid.rsassaPss), seq(
    tlv(0xa0, hashAlg),
    tlv(0xa1, seq(oidDer(Oid.mgf1), hashAlg)),
    tlv(0xa2, tlv(Tag.INTEGER, Buffer.from([HASH_LEN[h]]))),
  ));
}

const ALG_IDS = new Map<SignatureScheme, Buffer>();
for (const s of SIGNATURE_SCHEMES) { const a = buildAlgorithmId(s); if (a) ALG_IDS.set(s, a); }

/** The AlgorithmIdentifier DER that RFC 7427 AUTH data carries for `scheme`. */
export function algorithmIdentifier(scheme: SignatureScheme): Buffer {
  const a = ALG_IDS.get(scheme);
  if (!a) throw new AuthError('ERR_SIGNATURE_SCHEME', `${scheme} is not an RFC 7427 scheme`);
  return Buffer.from(a);
}

export const authMethodOf = (scheme: SignatureScheme): number => DEFS[scheme].method;
export const hashIdOf = (scheme: SignatureScheme): number | undefined => HASH_ID[DEFS[scheme].hash];

/** RFC 7427 3: 1-octet length of the AlgorithmIdentifier, the AlgorithmIdentifier, the signature. */
export function encodeRfc7427(scheme: SignatureScheme, signature: Buffer): Buffer {
  const a = algorithmIdentifier(scheme);
  return Buffer.concat([Buffer.from([a.length]), a, signature]);
}

const PKCS1_BY_OID = new Map<string, SignatureScheme>([
  [Oid.sha256WithRSAEncryption, 'rsa-pkcs1-sha256'], [Oid.sha384WithRSAEncryption, 'rsa-pkcs1-sha384'], [Oid.sha512WithRSAEncryption, 'rsa-pkcs1-sha512'],
]);
const ECDSA_BY_OID = new Map<string, SignatureScheme>([
  [Oid.ecdsaWithSHA256, 'ecdsa-sha256'], [Oid.ecdsaWithSHA384, 'ecdsa-sha384'], [Oid.ecdsaWithSHA512, 'ecdsa-sha512'],
]);

/**
 * Splits RFC 7427 AUTH data. Known AlgorithmIdentifiers are matched as
 * byte strings, as RFC 7427 3 suggests; other encodings of the same
 * algorithms (absent NULL, explicit PSS defaults) are accepted by parsing.
 */
export function decodeRfc7427(authData: Buffer): { scheme: SignatureScheme; algorithmId: Buffer; signature: Buffer } {
  if (authData.length < 1) throw new MalformedError('AUTH data', 'empty');
  const len = authData[0]!;
  if (authData.length < 1 + len) throw new MalformedError('AUTH data', `AlgorithmIdentifier length ${len} beyond ${authData.length - 1} octets`);
  const algorithmId = Buffer.from(authData.subarray(1, 1 + len));
  const signature = Buffer.from(authData.subarray(1 + len));
  for (const [scheme, a] of ALG_IDS) if (a.equals(algorithmId)) return { scheme, algorithmId, signature };
  let parsed;
  try { parsed = parseAlgorithmId(algorithmId); } catch { throw new AuthError('ERR_SIGNATURE_SCHEME', 'malformed AlgorithmIdentifier in AUTH data'); }
  const absentOrNull = !parsed.params || parsed.params.tag === Tag.NULL;
  const pk = PKCS1_BY_OID.get(parsed.oid);
  if (pk && absentOrNull) return { scheme: pk, algorithmId, signature };
  const ec = ECDSA_BY_OID.get(parsed.oid);
  if (ec && !parsed.params) return { scheme: ec, algorithmId, signature };
  if (parsed.oid === Oid.rsassaPss) {
    const p = parsePssParams(parsed.params);
    const scheme = (`rsa-pss-${p.hash}`) as SignatureScheme;
    if (p.mgfHash === p.hash && scheme in DEFS && p.saltLength === HASH_LEN[p.hash]) return { scheme, algorithmId, signature };
    throw new AuthError('ERR_SIGNATURE_SCHEME', `RSASSA-PSS with ${p.hash}/MGF1-${p.mgfHash}/salt ${p.saltLength} is not supported`);
  }
  throw new AuthError('ERR_SIGNATURE_SCHEME', `unsupported signature algorithm ${parsed.oid} in AUTH data`);
}

/** RFC 7427 4: the notify data is a list of 2-octet hash algorithm identifiers. */
export function encodeSignatureHashAlgorithms(ids: readonly number[]): Buffer {
  const b = Buffer.alloc(ids.length * 2);
  ids.forEach((id, i) => b.writeUInt16BE(id, i * 2));
  return b;
}

export function decodeSignatureHashAlgorithms(data: Buffer): number[] {
  if (data.length % 2) throw new MalformedError('SIGNATURE_HASH_ALGORITHMS', `odd length ${data.length}`);
  const out: number[] = [];
  for (let i = 0; i < data.length; i += 2) out.push(data.readUInt16BE(i));
  return out;
}

interface KeyShape { keyType: KeyType; curve: string | undefined }

function shapeOf(key: KeyObject): KeyShape {
  const k = keyInfo(key);
  if (k.type === 'rsa' || k.type === 'rsa-pss') return { keyType: 'rsa', curve: undefined };
  if (k.type === 'ecdsa') return { keyType: 'ecdsa', curve: k.curve };
  throw new AuthError('ERR_SIGNATURE_SCHEME', `${key.asymmetricKeyType ?? 'unknown'} keys cannot sign IKE AUTH payloads`);
}

function requireFit(scheme: SignatureScheme, shape: KeyShape): SchemeDef {
  const d = DEFS[scheme];
  if (!d) throw new AuthError('ERR_SIGNATURE_SCHEME', `unknown signature scheme ${String(scheme)}`);
  if (d.key !== shape.keyType || (d.curve !== undefined && d.curve !== shape.curve)) {
    throw new AuthError('ERR_SIGNATURE_SCHEME', `${scheme} needs ${d.curve ?? d.key} but the key is ${shape.curve ?? shape.keyType}`);
  }
  return d;
}

interface CryptoKeyInput { key: KeyObject; padding?: number; saltLength?: number; dsaEncoding?: 'der' | 'ieee-p1363' }

function keyInput(key: KeyObject, d: SchemeDef): CryptoKeyInput {
  switch (d.form) {
    case 'pkcs1': return { key, padding: constants.RSA_PKCS1_PADDING };
    case 'pss': return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_LEN[d.hash] };
    case 'p1363': return { key, dsaEncoding: 'ieee-p1363' };
    case 'der': return { key, dsaEncoding: 'der' };
  }
}

const P1363_LEN: Record<string, number> = { 'P-256': 64, 'P-384': 96, 'P-521': 132 };

/** A Signer over a private key held in this process. */
export class LocalSigner implements Signer {
  readonly keyType: KeyType;
  readonly curve: string | undefined;
  readonly publicKey: KeyObject;
  constructor(private readonly key: KeyObject) {
    if (key.type !== 'private') throw new AuthError('ERR_KEY_PARSE', 'LocalSigner needs a private key');
    const s = shapeOf(key);
    this.keyType = s.keyType;
    this.curve = s.curve;
    this.publicKey = createPublicKey(key);
  }
  async sign(data: Buffer, scheme: SignatureScheme): Promise<Buffer> {
    const d = requireFit(scheme, { keyType: this.keyType, curve: this.curve });
    return cryptoSign(d.hash, data, keyInput(this.key, d));
  }
}

/**
 * Verifies `signature` over `data` under `scheme`. False for a signature
 * that does not verify (including a wrong length); ERR_SIGNATURE_SCHEME when
 * the scheme does not fit the key.
 */
export function verify(publicKey: KeyObject, data: Buffer, signature: Buffer, scheme: SignatureScheme): boolean {
  const shape = shapeOf(publicKey);
  const d = requireFit(scheme, shape);
  // RFC 4754 7: the r || s form has a fixed length per curve; anything else is not a signature.
  if (d.form === 'p1363' && signature.length !== P1363_LEN[d.curve!]) return false;
  try {
    return cryptoVerify(d.hash, data, keyInput(publicKey, d), signature);
  } catch {
    return false;
  }
}

/** What goes into an AUTH payload: the method and its data (RFC 7296 3.8). */
export interface AuthPayloadData { method: number; data: Buffer }

/** Signs the octets RFC 7296 2.15 defines and lays the result out for `scheme`'s AUTH method. */
export async function signAuth(signer: Signer, scheme: SignatureScheme, octets: Buffer): Promise<AuthPayloadData> {
  const sig = await signer.sign(octets, scheme);
  const method = authMethodOf(scheme);
  return { method, data: method === AuthMethod.DIGITAL_SIGNATURE ? encodeRfc7427(scheme, sig) : sig };
}

const LEGACY: Record<number, SignatureScheme> = {
  [AuthMethod.RSA_SIG]: 'rsa-sha1',
  [AuthMethod.ECDSA_SHA256_P256]: 'ecdsa-p256-sha256',
  [AuthMethod.ECDSA_SHA384_P384]: 'ecdsa-p384-sha384',
  [AuthMethod.ECDSA_SHA512_P521]: 'ecdsa-p521-sha512',
};

/** The scheme an AUTH payload uses, and its bare signature. */
export function parseAuth(auth: AuthPayloadData): { scheme: SignatureScheme; signature: Buffer } {
  if (auth.method === AuthMethod.DIGITAL_SIGNATURE) {
    const d = decodeRfc7427(auth.data);
    return { scheme: d.scheme, signature: d.signature };
  }
  const scheme = LEGACY[auth.method];
  if (!scheme) throw new AuthError('ERR_SIGNATURE_SCHEME', `AUTH method ${auth.method} is not a signature method styx supports`);
  return { scheme, signature: auth.data };
}

/**
 * Verifies a peer's AUTH payload against the public key of its (validated)
 * certificate. Returns the scheme used; throws ERR_SIGNATURE when the
 * signature does not verify.
 */
export function verifyAuth(publicKey: KeyObject, auth: AuthPayloadData, octets: Buffer): SignatureScheme {
  const { scheme, signature } = parseAuth(auth);
  if (!verify(publicKey, octets, signature, scheme)) {
    throw new AuthError('ERR_SIGNATURE', `AUTH signature (${scheme}, method ${auth.method}) does not verify`);
  }
  return scheme;
}

/** The hash of matching strength for each curve, as the legacy methods 9-11 pair them. */
const CURVE_HASH: Record<string, HashName> = { 'P-256': 'sha256', 'P-384': 'sha384', 'P-521': 'sha512' };

/**
 * Picks the scheme to sign with. When the peer sent SIGNATURE_HASH_ALGORITHMS
 * (and so did we), RFC 7427 applies and a hash must be one the peer listed
 * (RFC 7427 4); otherwise the key's legacy method from RFC 7296 3.8.
 */
export function chooseScheme(signer: Pick<Signer, 'keyType' | 'curve'>, peerHashes: readonly number[] | undefined, opts: { preferPss?: boolean } = {}): SignatureScheme {
  const usable = (['sha256', 'sha384', 'sha512'] as const).filter((h) => peerHashes?.includes(HASH_ID[h]!));
  if (usable.length > 0) {
    if (signer.keyType === 'ecdsa') {
      const want = signer.curve !== undefined ? CURVE_HASH[signer.curve] : undefined;
      const h = want && usable.includes(want as 'sha256') ? want : usable[0]!;
      return `ecdsa-${h}` as SignatureScheme;
    }
    return `${opts.preferPss ? 'rsa-pss' : 'rsa-pkcs1'}-${usable[0]!}` as SignatureScheme;
  }
  if (signer.keyType === 'rsa') return 'rsa-sha1';
  switch (signer.curve) {
    case 'P-256': return 'ecdsa-p256-sha256';
    case 'P-384': return 'ecdsa-p384-sha384';
    case 'P-521': return 'ecdsa-p521-sha512';
    default: throw new AuthError('ERR_SIGNATURE_SCHEME', `no IKEv2 AUTH method for ECDSA on ${signer.curve ?? 'an unknown curve'} without RFC 7427`);
  }
}
