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
import { constants, createHmac, privateEncrypt, publicDecrypt, randomBytes, type KeyObject } from 'node:crypto';
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

/** Turns a KeyObject's JWK coordinate into a number. */
const jwkInt = (v: string | undefined, what: string): bigint => {
  if (!v) throw new AuthError('ERR_KEY_PARSE', `EC key without ${what}`);
  return BigInt(`0x${Buffer.from(v, 'base64url').toString('hex') || '0'}`);
};

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
  return ecdsaSign(CURVES[e.curve]!, jwkInt(key.export({ format: 'jwk' }).d, 'd'), hash, e.node);
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
  const jwk = cert.publicKey.export({ format: 'jwk' });
  return ecdsaVerify(CURVES[e.curve]!, { x: jwkInt(jwk.x, 'x'), y: jwkInt(jwk.y, 'y') }, hash, sig);
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
// ECDSA over a given digest (FIPS 186-4 6.4, SEC 1 4.1) on the NIST prime
// curves, all y^2 = x^3 - 3x + b. Signing derives k as RFC 6979 3.2 does,
// with fresh random octets as the additional input of its 3.6 variant so a
// weak random source alone cannot repeat k. JavaScript big integers do not
// compute in constant time, so timing may say something about k; the
// ladder at least takes the same steps for every k.

interface Curve { name: string; p: bigint; n: bigint; g: Affine; bits: number; bytes: number }
interface Affine { x: bigint; y: bigint }
/** Jacobian coordinates (X/Z^2, Y/Z^3); Z = 0 is the point at infinity. */
interface Jac { x: bigint; y: bigint; z: bigint }

const hex = (s: string): bigint => BigInt(`0x${s}`);
function curve(name: string, p: string, n: string, gx: string, gy: string, bits: number): Curve {
  return { name, p: hex(p), n: hex(n), g: { x: hex(gx), y: hex(gy) }, bits, bytes: Math.ceil(bits / 8) };
}

/** SEC 2 / FIPS 186-4 D.1.2 parameters: field prime, group order, base point. */
const CURVES: Record<string, Curve> = {
  'P-256': curve('P-256',
    'ffffffff00000001000000000000000000000000ffffffffffffffffffffffff',
    'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551',
    '6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296',
    '4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5', 256),
  'P-384': curve('P-384',
    'fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff',
    'ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973',
    'aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7',
    '3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f', 384),
  'P-521': curve('P-521',
    '01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
    '01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409',
    '00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66',
    '011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650', 521),
};

const mod = (a: bigint, m: bigint): bigint => { const r = a % m; return r < 0n ? r + m : r; };

/** a^-1 mod m by the extended Euclidean algorithm; m is prime and a not a multiple of it. */
function inv(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0, m);
}

const INFINITY: Jac = { x: 1n, y: 1n, z: 0n };

/** Point doubling with a = -3 (dbl-2001-b of the Explicit-Formulas Database). */
function dbl(c: Curve, P: Jac): Jac {
  const p = c.p;
  if (P.z === 0n || P.y === 0n) return INFINITY;
  const delta = P.z * P.z % p, gamma = P.y * P.y % p, beta = P.x * gamma % p;
  const alpha = 3n * mod(P.x - delta, p) * (P.x + delta) % p;
  const x = mod(alpha * alpha - 8n * beta, p);
  const z = mod((P.y + P.z) * (P.y + P.z) - gamma - delta, p);
  const y = mod(alpha * (4n * beta - x) - 8n * gamma * gamma, p);
  return { x, y, z };
}

/** Point addition in Jacobian coordinates (add-1998-cmo-2), doubling for equal points. */
function add(c: Curve, P: Jac, Q: Jac): Jac {
  const p = c.p;
  if (P.z === 0n) return Q;
  if (Q.z === 0n) return P;
  const z1z1 = P.z * P.z % p, z2z2 = Q.z * Q.z % p;
  const u1 = P.x * z2z2 % p, u2 = Q.x * z1z1 % p;
  const s1 = P.y * Q.z % p * z2z2 % p, s2 = Q.y * P.z % p * z1z1 % p;
  const h = mod(u2 - u1, p), r = mod(s2 - s1, p);
  if (h === 0n) return r === 0n ? dbl(c, P) : INFINITY;
  const hh = h * h % p, hhh = h * hh % p, v = u1 * hh % p;
  const x = mod(r * r - hhh - 2n * v, p);
  const y = mod(r * (v - x) - s1 * hhh, p);
  return { x, y, z: P.z * Q.z % p * h % p };
}

/** k * P by a Montgomery ladder over every bit of the group order, so the steps do not depend on k's bits. */
function mul(c: Curve, k: bigint, P: Affine): Jac {
  let r0 = INFINITY, r1: Jac = { x: P.x, y: P.y, z: 1n };
  for (let i = c.n.toString(2).length - 1; i >= 0; i--) {
    if ((k >> BigInt(i)) & 1n) { r0 = add(c, r0, r1); r1 = dbl(c, r1); } else { r1 = add(c, r0, r1); r0 = dbl(c, r0); }
  }
  return r0;
}

function affine(c: Curve, P: Jac): Affine | null {
  if (P.z === 0n) return null;
  const zi = inv(P.z, c.p), zi2 = zi * zi % c.p;
  return { x: P.x * zi2 % c.p, y: P.y * zi2 % c.p * zi % c.p };
}

/** SEC 1 4.1.3 step 5 / RFC 6979 2.3.2: the leftmost bits of the digest, as many as the order has. */
function bits2int(c: Curve, b: Buffer): bigint {
  const v = b.length ? BigInt(`0x${b.toString('hex')}`) : 0n;
  const excess = b.length * 8 - c.n.toString(2).length;
  return excess > 0 ? v >> BigInt(excess) : v;
}

const int2octets = (v: bigint, len: number): Buffer => Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');

/** RFC 6979 3.2 (with 3.6 additional input): k for private key d and digest h. */
function nonceK(c: Curve, d: bigint, h: Buffer, hash: string, extra: Buffer): bigint {
  const rlen = Math.ceil(c.n.toString(2).length / 8);
  const hm = (key: Buffer, ...parts: Buffer[]): Buffer => { const m = createHmac(hash, key); for (const x of parts) m.update(x); return m.digest(); };
  const seed = Buffer.concat([int2octets(d, rlen), int2octets(mod(bits2int(c, h), c.n), rlen), extra]);
  const hlen = createHmac(hash, '').digest().length;
  let v: Buffer = Buffer.alloc(hlen, 1), k: Buffer = Buffer.alloc(hlen, 0);
  k = hm(k, v, Buffer.from([0]), seed); v = hm(k, v);
  k = hm(k, v, Buffer.from([1]), seed); v = hm(k, v);
  for (;;) {
    let t: Buffer = Buffer.alloc(0);
    while (t.length < rlen) { v = hm(k, v); t = Buffer.concat([t, v]); }
    const cand = bits2int(c, t.subarray(0, rlen));
    if (cand >= 1n && cand < c.n) return cand;
    k = hm(k, v, Buffer.from([0])); v = hm(k, v);
  }
}

function ecdsaSign(c: Curve, d: bigint, h: Buffer, hash: string): Buffer {
  const e = bits2int(c, h);
  for (;;) {
    const k = nonceK(c, d, h, hash, randomBytes(32));
    const R = affine(c, mul(c, k, c.g));
    if (!R) continue;
    const r = R.x % c.n;
    if (r === 0n) continue;
    const s = inv(k, c.n) * mod(e + r * d, c.n) % c.n;
    if (s === 0n) continue;
    return Buffer.concat([int2octets(r, c.bytes), int2octets(s, c.bytes)]);
  }
}

function ecdsaVerify(c: Curve, q: Affine, h: Buffer, sig: Buffer): boolean {
  // RFC 4754 7: r and s each fill half of the signature, the curve's octet length.
  if (sig.length !== 2 * c.bytes) return false;
  const r = BigInt(`0x${sig.subarray(0, c.bytes).toString('hex')}`), s = BigInt(`0x${sig.subarray(c.bytes).toString('hex')}`);
  if (r < 1n || r >= c.n || s < 1n || s >= c.n) return false;
  const w = inv(s, c.n), e = bits2int(c, h);
  const X = affine(c, add(c, mul(c, e * w % c.n, c.g), mul(c, r * w % c.n, q)));
  return X !== null && X.x % c.n === r;
}

/** For tests: the curve arithmetic against keys node:crypto made. */
export const ecdsaForTests = {
  sign: (curveName: string, key: KeyObject, digest: Buffer, hash: string): Buffer => ecdsaSign(CURVES[curveName]!, jwkInt(key.export({ format: 'jwk' }).d, 'd'), digest, hash),
  verify: (curveName: string, key: KeyObject, digest: Buffer, sig: Buffer): boolean => {
    const j = key.export({ format: 'jwk' });
    return ecdsaVerify(CURVES[curveName]!, { x: jwkInt(j.x, 'x'), y: jwkInt(j.y, 'y') }, digest, sig);
  },
  publicPoint: (curveName: string, d: bigint): Affine | null => { const c = CURVES[curveName]!; return affine(c, mul(c, d, c.g)); },
  order: (curveName: string): bigint => CURVES[curveName]!.n,
};
