/**
 * IKEv1 phase 1 authenticated with signatures (RFC 2409 5.1): the
 * authentication method a connection's key makes (RSA 3, ECDSA 9-11 from
 * RFC 4754), the CR payloads naming the CAs we trust (RFC 2408 3.10), the
 * CERT payloads with our chain (RFC 2408 3.9) and SIG_I / SIG_R over
 * HASH_I / HASH_R (RFC 2408 3.12), and the checks a peer passes in the order
 * src/ike/v2/pubkey.ts uses: its chain (trust, validity, revocation, key
 * usage), the binding of its ID to the certificate, then the signature.
 *
 * IKEv1 signs the phase 1 HASH as it is, with no hashing of its own: RSA as
 * PKCS#1 v1.5 type 1 padding around the bare hash (no DigestInfo, which is
 * what deployed peers put on the wire), ECDSA over the hash as the digest,
 * r || s as RFC 4754 7 lays it out. node:crypto signs only what it hashes
 * itself for ECDSA, so the curve arithmetic for those methods is done here.
 */
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { constants, privateEncrypt, publicDecrypt, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  AuthError, Cert, certMatchesIdentity, checkCertIdentity, describeIdentity, dnEquals, keyInfo, parseCertificates, type CertStore,
} from '../../auth/index.js';
import type { ConnectionConfig } from '../../config/model.js';
import { safeEqual } from '../../util/bytes.js';
import { StyxError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import {
  Doi, V1AuthMethod, V1CertEncoding, V1HashAlg, V1NotifyType, V1PayloadType, V1ProtocolId, findV1Payload, findV1Payloads, nameOf,
  type Phase1Attributes, type V1CertPayload, type V1CertReqPayload, type V1Payload, type V1SigPayload,
} from '../../wire/ikev1/index.js';
import { configIdText, identityText, type Identity } from '../identity.js';
import { certStore, refusalText } from '../v2/pubkey.js';
import type { V1Context } from './context.js';
import type { IkeSaV1 } from './ike-sa.js';
import { sendInformational } from './info.js';
import { phase1Transforms } from './proposals.js';

/** More CERT payloads than this are not looked at: a real chain is a handful deep. */
const MAX_PEER_CERTS = 8;

/** The signature methods styx speaks; DSS (2) and the encryption methods (4, 5) are not. */
export const V1_SIG_METHODS: readonly number[] = [
  V1AuthMethod.RSA_SIGNATURES, V1AuthMethod.ECDSA_SHA256_P256, V1AuthMethod.ECDSA_SHA384_P384, V1AuthMethod.ECDSA_SHA512_P521,
];
export const isSigMethod = (m: number | undefined): boolean => m !== undefined && V1_SIG_METHODS.includes(m);

/** What each ECDSA method fixes: its curve, and the hash whose HMAC makes HASH_I / HASH_R. */
const ECDSA_METHODS: Record<number, { curve: string; hash: number; node: 'sha256' | 'sha384' | 'sha512' }> = {
  [V1AuthMethod.ECDSA_SHA256_P256]: { curve: 'P-256', hash: V1HashAlg.SHA2_256, node: 'sha256' },
  [V1AuthMethod.ECDSA_SHA384_P384]: { curve: 'P-384', hash: V1HashAlg.SHA2_384, node: 'sha384' },
  [V1AuthMethod.ECDSA_SHA512_P521]: { curve: 'P-521', hash: V1HashAlg.SHA2_512, node: 'sha512' },
};

/** "PSK", "RSA signatures", "ECDSA P-256 signatures", ... for logs. */
export function methodText(m: number): string {
  if (m === V1AuthMethod.PRE_SHARED_KEY) return 'PSK';
  if (m === V1AuthMethod.RSA_SIGNATURES) return 'RSA signatures';
  const e = ECDSA_METHODS[m];
  return e ? `ECDSA ${e.curve} signatures` : `authentication method ${nameOf(V1AuthMethod, m)}`;
}

/**
 * The hash whose HMAC computes HASH_I and HASH_R. RFC 4754 ties each ECDSA
 * method to one hash, and peers compute the phase 1 HASH that gets signed
 * with it, whatever hash the transform negotiated (SKEYID and everything
 * else keep the negotiated one). RSA and PSK use the negotiated hash.
 */
export function authHashId(a: Phase1Attributes): number {
  return ECDSA_METHODS[a.authMethod]?.hash ?? a.hash;
}

function methodOfKey(c: Cert, conn: ConnectionConfig): number {
  const k = c.key;
  if (k.type === 'rsa') return V1AuthMethod.RSA_SIGNATURES;
  if (k.type === 'ecdsa') {
    for (const [m, e] of Object.entries(ECDSA_METHODS)) if (e.curve === k.curve) return Number(m);
  }
  throw new AuthError('ERR_SIGNATURE_SCHEME', `${conn.name}: certificate ${c.describe()} has a ${k.type}${k.curve ? ` ${k.curve}` : ''} key; IKEv1 signs with RSA (PKCS#1 v1.5) or ECDSA on P-256, P-384 or P-521 only`, { cert: c.subject, serial: c.serial });
}

const methods = new WeakMap<ConnectionConfig, number>();

/**
 * The one authentication method of the connection's phase 1 transforms
 * (RFC 2409 5: it is negotiated, so both peers use the same one). For
 * certificates it follows our key; the certificate file is read here, without
 * waiting, because the first message must name the method. Throws a
 * StyxError for a connection IKEv1 cannot express.
 */
export function authMethodOf(conn: ConnectionConfig): number {
  const known = methods.get(conn);
  if (known !== undefined) return known;
  const l = conn.local, r = conn.remote;
  if (l.method !== r.method) {
    throw new StyxError('ERR_AUTH_CLASS', `${conn.name}: IKEv1 authenticates both peers with the one method of the phase 1 transform (RFC 2409 5); local ${l.method} with remote ${r.method} cannot be expressed`);
  }
  let m: number = V1AuthMethod.PRE_SHARED_KEY;
  if (l.method === 'pubkey') {
    if (!l.cert) throw new AuthError('ERR_LOAD', `${conn.name}: no local certificate configured`);
    let data: Buffer;
    try { data = readFileSync(l.cert); } catch (e) {
      throw new AuthError('ERR_LOAD', `${l.cert}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { file: l.cert });
    }
    m = methodOfKey(parseCertificates(data, l.cert)[0]!, conn);
  }
  methods.set(conn, m);
  return m;
}

/** Our phase 1 transforms with the connection's authentication method in each. */
export function phase1Offer(conn: ConnectionConfig, lifeSeconds: number): Phase1Attributes[] {
  const m = authMethodOf(conn);
  return phase1Transforms(conn, lifeSeconds).map((a) => ({ ...a, authMethod: m }));
}

// ---------------------------------------------------------------------------
// CR and CERT payloads

/**
 * RFC 2408 3.10: one CR per CA we trust for the peer, X.509 signature
 * encoding, the authority being the CA's DER subject name (the form peers
 * parse it in). Peers that send certificates only when asked need these.
 */
export async function certReqPayloads(conn: ConnectionConfig, log: Logger, tag: string): Promise<V1CertReqPayload[]> {
  if (conn.remote.method !== 'pubkey') return [];
  let store: CertStore;
  try { store = await certStore(conn); } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    log.warn(`${tag}: ${conn.name}: certificates not loaded, sending no CR: ${e.message}`);
    return [];
  }
  const out: V1CertReqPayload[] = [];
  for (const ca of store.anchors) {
    if (!ca.isCa || out.some((p) => dnEquals(p.authority, ca.subjectDer))) continue;
    out.push({ type: V1PayloadType.CR, encoding: V1CertEncoding.X509_SIGNATURE, authority: Buffer.from(ca.subjectDer) });
  }
  return out;
}

/** The CA names the peer's CR payloads asked for; an empty authority means any CA. */
const requested = new WeakMap<IkeSaV1, Buffer[]>();

/** Remembers the CAs the peer named in CR payloads (RFC 2408 3.10), from any phase 1 message. */
export function noteCertReqs(sa: IkeSaV1, payloads: readonly V1Payload[]): void {
  const crs = findV1Payloads(payloads, V1PayloadType.CR);
  if (crs.length === 0) return;
  const list = requested.get(sa) ?? [];
  for (const cr of crs) {
    if (cr.encoding !== V1CertEncoding.X509_SIGNATURE) { sa.log.info(`${sa.tag}: ignoring a CR for certificate type ${nameOf(V1CertEncoding, cr.encoding)}`); continue; }
    list.push(Buffer.from(cr.authority));
  }
  requested.set(sa, list);
}

/**
 * Our certificates to send, leaf first: everything below the CA the peer
 * named. Without a match, or without a CR, the leaf and its intermediates,
 * never a self-signed root (the peer must hold it to trust it anyway).
 */
export function certsForPeer(chain: readonly Cert[], names: readonly Buffer[]): Cert[] {
  for (let i = 1; i < chain.length; i++) {
    if (names.some((n) => n.length > 0 && dnEquals(n, chain[i]!.subjectDer))) return chain.slice(0, i);
  }
  return chain.filter((c, i) => i === 0 || !c.selfIssued);
}

// ---------------------------------------------------------------------------
// Signing and verifying a phase 1 HASH

/**
 * RSA signature of IKEv1: the bare HASH in PKCS#1 v1.5 type 1 padding under
 * the private key, which is exactly what privateEncrypt does.
 */
function rsaSign(key: KeyObject, hash: Buffer): Buffer {
  return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, hash);
}

function rsaVerify(key: KeyObject, hash: Buffer, sig: Buffer): boolean {
  const bytes = Math.ceil((keyInfo(key).bits ?? 0) / 8);
  if (sig.length !== bytes) return false;
  try {
    return safeEqual(publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, sig), hash);
  } catch {
    return false;
  }
}

/** Signs a phase 1 HASH under `method` with our private key. */
export function signHash(method: number, key: KeyObject, hash: Buffer): Buffer {
  if (method === V1AuthMethod.RSA_SIGNATURES) {
    if (keyInfo(key).type !== 'rsa') throw new AuthError('ERR_SIGNATURE_SCHEME', `${methodText(method)} need an RSA key`);
    return rsaSign(key, hash);
  }
  const e = ECDSA_METHODS[method];
  const info = keyInfo(key);
  if (!e || info.type !== 'ecdsa' || info.curve !== e.curve) throw new AuthError('ERR_SIGNATURE_SCHEME', `${methodText(method)} cannot be made with a ${info.type}${info.curve ? ` ${info.curve}` : ''} key`);
  return ecdsaSign(e.curve, key, hash);
}

/**
 * Whether `sig` is the peer's signature of `hash` under `method` with the
 * key of `cert`. A key of the wrong kind for the method is an
 * ERR_SIGNATURE_SCHEME refusal, not a mere mismatch.
 */
export function verifyHash(method: number, cert: Cert, hash: Buffer, sig: Buffer): boolean {
  const k = cert.key;
  if (method === V1AuthMethod.RSA_SIGNATURES) {
    if (k.type !== 'rsa') throw new AuthError('ERR_SIGNATURE_SCHEME', `certificate ${cert.describe()} has a ${k.type}${k.curve ? ` ${k.curve}` : ''} key; the negotiated ${methodText(method)} need RSA`, { cert: cert.subject, serial: cert.serial });
    return rsaVerify(cert.publicKey, hash, sig);
  }
  const e = ECDSA_METHODS[method];
  if (!e || k.type !== 'ecdsa' || k.curve !== e.curve) {
    throw new AuthError('ERR_SIGNATURE_SCHEME', `certificate ${cert.describe()} has a ${k.type}${k.curve ? ` ${k.curve}` : ''} key; the negotiated ${methodText(method)} need ECDSA ${e?.curve ?? ''}`.trimEnd(), { cert: cert.subject, serial: cert.serial });
  }
  return ecdsaVerify(e.curve, cert.publicKey, hash, sig);
}

// ---------------------------------------------------------------------------
// The two sides of phase 1

export interface LocalSig {
  /** CERT payloads, then the SIG payload: the order RFC 2409 5.1 shows after the ID. */
  payloads: V1Payload[];
  how: string;
}

/**
 * Our CERT payloads (RFC 2408 3.9: the leaf first, then what the peer needs
 * to reach a CA it named in CR) and the SIG payload (3.12) over our HASH_I
 * or HASH_R. Throws an AuthError when our certificate material cannot sign.
 */
export async function signLocal(sa: IkeSaV1, hash: Buffer): Promise<LocalSig> {
  const method = sa.attrs!.authMethod;
  const store = await certStore(sa.conn);
  const leaf = store.local;
  if (!leaf || !store.key) throw new AuthError('ERR_LOAD', `${sa.conn.name}: no local certificate and key loaded`);
  if (sa.localId && !certMatchesIdentity(sa.localId, leaf)) {
    sa.log.warn(`${sa.tag}: our identity '${describeIdentity(sa.localId)}' is not in our certificate ${leaf.describe()}; the peer will likely refuse it`);
  }
  let chain: Cert[];
  try { chain = await store.localChain(new Date()); } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    // Our chain need not end at a CA we trust for the peer; send what the certificate file holds.
    chain = [leaf, ...store.intermediates];
  }
  const certs = certsForPeer(chain, requested.get(sa) ?? []).map((c): V1CertPayload => ({ type: V1PayloadType.CERT, encoding: V1CertEncoding.X509_SIGNATURE, data: c.der }));
  const sig: V1SigPayload = { type: V1PayloadType.SIG, data: signHash(method, store.key, hash) };
  return { payloads: [...certs, sig], how: `certificate ${leaf.describe()}, ${methodText(method)}` };
}

/**
 * Checks the peer's certificate chain against the connection's CAs and
 * CRLs, the binding of its ID to the certificate (RFC 4945 3.1), and its
 * SIG payload over `hash` (its HASH_I or HASH_R), in that order. Throws the
 * AuthError of the first check that fails; returns how it proved itself.
 */
export async function verifyPeer(sa: IkeSaV1, rid: Identity, payloads: readonly V1Payload[], hash: Buffer): Promise<string> {
  const method = sa.attrs!.authMethod;
  const sig = findV1Payload(payloads, V1PayloadType.SIG);
  if (!sig) throw new AuthError('ERR_SIGNATURE_SCHEME', `peer sent a HASH payload; the negotiated ${methodText(method)} need a SIG payload (RFC 2409 5.1)`);
  const store = await certStore(sa.conn);
  const sent = findV1Payloads(payloads, V1PayloadType.CERT);
  const x509 = sent.filter((c) => c.encoding === V1CertEncoding.X509_SIGNATURE);
  if (x509.length < sent.length) sa.log.info(`${sa.tag}: ignoring ${sent.length - x509.length} CERT payload(s) in encodings other than X.509 signature (4)`);
  if (x509.length > MAX_PEER_CERTS) sa.log.info(`${sa.tag}: peer sent ${x509.length} certificates; looking at the first ${MAX_PEER_CERTS}`);
  const certs = x509.slice(0, MAX_PEER_CERTS).map((c, i) => Cert.fromDer(c.data, `CERT payload ${i + 1}`));
  // RFC 2408 3.9 gives CERT payloads no order: the end entity is the one that is not a CA.
  const leaf = certs.find((c) => !c.isCa) ?? certs[0] ?? store.anchors.find((c) => !c.isCa && certMatchesIdentity(rid, c));
  if (!leaf) throw new AuthError('ERR_CERT_UNKNOWN_CA', `peer '${describeIdentity(rid)}' sent no certificate and none is configured for it`);
  // RFC 5280 6.1 at the time of use: the wall clock, whatever clock drives the protocol timers.
  const chain = await store.validatePeer(leaf, certs.filter((c) => c !== leaf), new Date());
  checkCertIdentity(rid, leaf);
  if (!verifyHash(method, leaf, hash, sig.data)) {
    throw new AuthError('ERR_SIGNATURE', `SIG payload (${methodText(method)}) does not verify with the key of certificate ${leaf.describe()}`, { cert: leaf.subject, serial: leaf.serial });
  }
  for (const w of chain.warnings) sa.log.warn(`${sa.tag}: ${w}`);
  const via = chain.path.slice(1).map((c) => `"${c.subject}"`).join(' -> ') || 'itself';
  sa.log.info(`${sa.tag}: peer '${identityText(rid)}' proved by certificate ${leaf.describe()} via ${via}, ${methodText(method)}`);
  return `certificate ${leaf.describe()}, ${methodText(method)}`;
}

/**
 * The peer did not prove itself: one line saying which certificate and
 * why, protected Informationals telling the peer (RFC 2408 3.14.1
 * AUTHENTICATION-FAILED, and a Delete of the ISAKMP SA, 3.15, so it drops
 * its half of the exchange too), and our SA removed; nothing was installed.
 * `ciphertext` is the refused message's, if it came encrypted: the peer's
 * IV chain already moved past it (RFC 2409 appendix B).
 */
export async function refusePeer(ctx: V1Context, sa: IkeSaV1, rid: Identity, e: AuthError, what: string, ciphertext: Buffer | null): Promise<void> {
  ctx.counters.authFailures++;
  const why = `peer '${identityText(rid)}': ${refusalText(e)}`;
  ctx.log.error(`${sa.tag}: AUTHENTICATION_FAILED: ${why} (${what})`);
  if (ciphertext) sa.iv?.advance(0, ciphertext);
  await tellPeerFailed(ctx, sa);
  await ctx.destroy(sa, why);
}

/**
 * The peer's ID is not the one the connection names (checked before its
 * certificate, which could only bind that wrong ID): refused like a bad
 * certificate, with the two identities in the line.
 */
export async function refuseIdentity(ctx: V1Context, sa: IkeSaV1, rid: Identity, what: string, ciphertext: Buffer | null): Promise<void> {
  ctx.counters.authFailures++;
  const why = `peer identity '${identityText(rid)}' is not the configured '${configIdText(sa.conn.remote.id)}'`;
  ctx.log.error(`${sa.tag}: AUTHENTICATION_FAILED: ${why} (${what})`);
  if (ciphertext) sa.iv?.advance(0, ciphertext);
  await tellPeerFailed(ctx, sa);
  await ctx.destroy(sa, why);
}

/**
 * RFC 2408 3.14.1 / 3.15: AUTHENTICATION-FAILED, then a Delete of this
 * ISAKMP SA, each in its own protected Informational: a peer that already
 * counts the SA as established (a Main Mode responder after MM6) logs the
 * error notify and acts only on a Delete that comes alone.
 */
export async function tellPeerFailed(ctx: V1Context, sa: IkeSaV1): Promise<void> {
  await sendInformational(ctx, sa, [
    { type: V1PayloadType.N, doi: Doi.IPSEC, protocol: V1ProtocolId.ISAKMP, spi: sa.cookies, notifyType: V1NotifyType.AUTHENTICATION_FAILED, data: Buffer.alloc(0) },
  ]);
  await sendInformational(ctx, sa, [{ type: V1PayloadType.D, doi: Doi.IPSEC, protocol: V1ProtocolId.ISAKMP, spiSize: 16, spis: [sa.cookies] }]);
}

// ---------------------------------------------------------------------------
// ECDSA over a given digest (RFC 4754, IKEv1 "ECDSA with NULL hash": the
// phase 1 HASH is signed as it is). node:crypto always hashes the message
// itself, so the audited @noble/curves implementation signs the digest;
// signing is deterministic per RFC 6979 with extra random input (hedged).

type NobleCurve = typeof p256;
const NOBLE: Record<string, NobleCurve> = { 'P-256': p256, 'P-384': p384, 'P-521': p521 };

const coordinate = (v: string | undefined, what: string): Buffer => {
  if (!v) throw new AuthError('ERR_KEY_PARSE', `EC key without ${what}`);
  return Buffer.from(v, 'base64url');
};

/** r || s, each the curve size (RFC 4754 7). */
function ecdsaSign(curveName: string, key: KeyObject, digest: Buffer): Buffer {
  const c = NOBLE[curveName]!;
  const d = coordinate(key.export({ format: 'jwk' }).d, 'd');
  return Buffer.from(c.sign(digest, d, { prehash: false, extraEntropy: true, lowS: false }));
}

function ecdsaVerify(curveName: string, key: KeyObject, digest: Buffer, sig: Buffer): boolean {
  const c = NOBLE[curveName]!;
  const jwk = key.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), coordinate(jwk.x, 'x'), coordinate(jwk.y, 'y')]);
  try {
    return c.verify(sig, digest, point, { prehash: false, lowS: false });
  } catch {
    return false;
  }
}

/** For tests: the digest signatures against keys node:crypto made. */
export const ecdsaForTests = {
  sign: (curveName: string, key: KeyObject, digest: Buffer): Buffer => ecdsaSign(curveName, key, digest),
  verify: (curveName: string, key: KeyObject, digest: Buffer, sig: Buffer): boolean => ecdsaVerify(curveName, key, digest, sig),
};
