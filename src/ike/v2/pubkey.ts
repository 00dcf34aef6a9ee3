/**
 * Certificate authentication for IKE_AUTH (RFC 7296 2.15, 3.6-3.8, RFC 7427,
 * RFC 4945): which CAs to ask for, which certificates to send, signing our
 * AUTH payload, and the checks a peer must pass, in the order that makes a
 * refusal most useful to read: its certificate chain (trust, validity,
 * revocation, key usage), then the binding of its ID to the certificate,
 * then the signature.
 */
import {
  AuthError, CertStore, SUPPORTED_SIGNATURE_HASHES, certMatchesIdentity, certsToSend, checkCertIdentity, chooseScheme,
  decodeCertReq, decodeSignatureHashAlgorithms, describeIdentity, encodeSignatureHashAlgorithms, signAuth, verifyAuth,
  Cert, type AuthErrorCode, type SignatureScheme,
} from '../../auth/index.js';
import type { ConnectionConfig, PubkeyAuthConfig } from '../../config/model.js';
import { StyxError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { CertEncoding, NotifyType, PayloadType } from '../../wire/ikev2/constants.js';
import type { AuthPayload, CertPayload, CertReqPayload, NotifyPayload, Payload } from '../../wire/ikev2/types.js';
import { findNotify, findPayloads, notify } from '../../wire/ikev2/index.js';
import type { Identity } from '../identity.js';
import type { IkeSaV2 } from './ike-sa.js';

/** More CERT payloads than this are not looked at: a real chain is a handful deep (RFC 5280 6.1 paths). */
const MAX_PEER_CERTS = 8;

/** What the peer announced that decides how we sign and what we send. */
interface PeerAnnouncements {
  /** RFC 7427 4: its SIGNATURE_HASH_ALGORITHMS, undefined when it sent none. */
  hashes: number[] | undefined;
  /** RFC 7296 3.7: SHA-1 hashes of the CA keys it trusts, from every CERTREQ so far. */
  certReq: Buffer[];
}

const announcements = new WeakMap<IkeSaV2, PeerAnnouncements>();

export function peerAnnouncements(sa: IkeSaV2): PeerAnnouncements {
  let a = announcements.get(sa);
  if (!a) { a = { hashes: undefined, certReq: [] }; announcements.set(sa, a); }
  return a;
}

/**
 * Remembers SIGNATURE_HASH_ALGORITHMS (RFC 7427 4, IKE_SA_INIT) and CERTREQ
 * hashes (RFC 7296 3.7, IKE_SA_INIT response or IKE_AUTH request) from a
 * peer's message. A malformed announcement is logged and ignored: it only
 * makes us fall back to the legacy method or to sending every certificate.
 */
export function notePeerAnnouncements(sa: IkeSaV2, payloads: readonly Payload[]): void {
  const a = peerAnnouncements(sa);
  const sh = findNotify(payloads, NotifyType.SIGNATURE_HASH_ALGORITHMS);
  if (sh) {
    try { a.hashes = decodeSignatureHashAlgorithms(sh.data); } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      sa.log.info(`${sa.tag}: ignoring SIGNATURE_HASH_ALGORITHMS: ${e.message}`);
    }
  }
  for (const cr of findPayloads(payloads, PayloadType.CERTREQ)) {
    if (cr.encoding !== CertEncoding.X509_SIGNATURE) continue;
    try { a.certReq.push(...decodeCertReq(cr.data)); } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      sa.log.info(`${sa.tag}: ignoring CERTREQ: ${e.message}`);
    }
  }
}

/** RFC 7427 4: the hashes styx verifies signatures with, announced in IKE_SA_INIT in both directions. */
export function signatureHashesNotify(): NotifyPayload {
  return notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, encodeSignatureHashAlgorithms(SUPPORTED_SIGNATURE_HASHES));
}

const stores = new WeakMap<ConnectionConfig, Promise<CertStore>>();

/**
 * The certificate material of a connection, loaded once per configuration
 * (a reload brings new connection objects, so files are read again). A
 * failed load is not cached: the next attempt reads the files anew.
 */
export function certStore(conn: ConnectionConfig): Promise<CertStore> {
  let p = stores.get(conn);
  if (!p) {
    const l = conn.local.method === 'pubkey' ? conn.local : undefined;
    const r = conn.remote.method === 'pubkey' ? conn.remote : undefined;
    p = CertStore.load({
      ...(l?.cert !== undefined ? { cert: l.cert } : {}),
      ...(l?.key !== undefined ? { key: l.key } : {}),
      // A peer certificate configured on the remote side is trusted as it is: a path of one (RFC 5280 6.1).
      cas: [...(r?.cacerts ?? []), ...(r?.cert !== undefined ? [r.cert] : [])],
      crls: r?.crls ?? [],
    });
    stores.set(conn, p);
    p.catch(() => { if (stores.get(conn) === p) stores.delete(conn); });
  }
  return p;
}

/**
 * RFC 7296 3.7: CERTREQ naming the CAs of the connections that verify the
 * peer by certificate. Every anchor's key is listed, so the peer can stop
 * its chain below whichever it shares with us.
 */
export async function certReqPayloads(conns: readonly ConnectionConfig[], log: Logger, tag: string): Promise<CertReqPayload[]> {
  const seen = new Set<string>();
  const hashes: Buffer[] = [];
  for (const c of conns) {
    if (c.remote.method !== 'pubkey') continue;
    let store: CertStore;
    try { store = await certStore(c); } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      log.warn(`${tag}: ${c.name}: certificates not loaded, sending no CERTREQ for them: ${e.message}`);
      continue;
    }
    const field = store.certReq();
    for (let i = 0; i < field.length; i += 20) {
      const h = field.subarray(i, i + 20);
      if (!seen.has(h.toString('hex'))) { seen.add(h.toString('hex')); hashes.push(h); }
    }
  }
  if (hashes.length === 0) return [];
  return [{ type: PayloadType.CERTREQ, critical: false, encoding: CertEncoding.X509_SIGNATURE, data: Buffer.concat(hashes) }];
}

/** The scheme our AUTH payload uses under the connection's signature policy (RFC 7427 4, RFC 7296 3.8). */
export function localScheme(cfg: PubkeyAuthConfig, store: CertStore, peerHashes: number[] | undefined): SignatureScheme {
  const signer = store.signer();
  if (cfg.signature === 'legacy') return chooseScheme(signer, undefined);
  return chooseScheme(signer, peerHashes, { preferPss: cfg.signature === 'pss' });
}

export interface LocalSignature {
  certs: CertPayload[];
  auth: AuthPayload;
  scheme: SignatureScheme;
  cert: Cert;
}

/**
 * Our CERT payloads (RFC 7296 3.6: the end-entity certificate first, then
 * what the peer needs to reach a CA it named in CERTREQ) and our AUTH
 * payload over the signed octets of 2.15.
 */
export async function signLocal(sa: IkeSaV2, cfg: PubkeyAuthConfig, localId: Identity, octets: Buffer): Promise<LocalSignature> {
  const store = await certStore(sa.conn);
  const leaf = store.local;
  if (!leaf) throw new AuthError('ERR_LOAD', `${sa.conn.name}: no local certificate loaded`);
  if (!certMatchesIdentity(localId, leaf)) {
    sa.log.warn(`${sa.tag}: our identity '${describeIdentity(localId)}' is not in our certificate ${leaf.describe()}; the peer will likely refuse it`);
  }
  let chain: Cert[];
  try { chain = await store.localChain(new Date()); } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    // Our chain need not end at a CA we trust for the peer; send what the certificate file holds.
    chain = [leaf, ...store.intermediates];
  }
  const a = peerAnnouncements(sa);
  const send = certsToSend(chain, a.certReq);
  const scheme = localScheme(cfg, store, a.hashes);
  const signed = await signAuth(store.signer(), scheme, octets);
  return {
    certs: send.map((c) => ({ type: PayloadType.CERT, critical: false, encoding: CertEncoding.X509_SIGNATURE, data: c.der })),
    auth: { type: PayloadType.AUTH, critical: false, method: signed.method, data: signed.data },
    scheme,
    cert: leaf,
  };
}

export interface VerifiedPeer {
  cert: Cert;
  scheme: SignatureScheme;
  /** The path that validated, leaf first, as subjects. */
  path: string[];
  warnings: string[];
}

/**
 * Checks the peer's certificate, identity and AUTH signature. Throws the
 * AuthError of the first check that fails; the caller answers
 * AUTHENTICATION_FAILED and installs nothing.
 */
export async function verifyPeer(sa: IkeSaV2, conn: ConnectionConfig, id: Identity, payloads: readonly Payload[], auth: AuthPayload, octets: Buffer): Promise<VerifiedPeer> {
  const store = await certStore(conn);
  const sent = findPayloads(payloads, PayloadType.CERT);
  const x509 = sent.filter((c) => c.encoding === CertEncoding.X509_SIGNATURE);
  if (x509.length < sent.length) sa.log.info(`${sa.tag}: ignoring ${sent.length - x509.length} CERT payload(s) in encodings other than X.509 signature (4)`);
  if (x509.length > MAX_PEER_CERTS) sa.log.info(`${sa.tag}: peer sent ${x509.length} certificates; looking at the first ${MAX_PEER_CERTS}`);
  const certs = x509.slice(0, MAX_PEER_CERTS).map((c, i) => Cert.fromDer(c.data, `CERT payload ${i + 1}`));
  // Without CERT, only a peer certificate configured for the connection can carry its key.
  const leaf = certs[0] ?? store.anchors.find((c) => !c.isCa && certMatchesIdentity(id, c));
  if (!leaf) throw new AuthError('ERR_CERT_UNKNOWN_CA', `peer '${describeIdentity(id)}' sent no certificate and none is configured for it`);
  // RFC 5280 6.1 at the time of use: the wall clock, whatever clock drives the protocol timers.
  const chain = await store.validatePeer(leaf, certs.slice(1), new Date());
  checkCertIdentity(id, leaf);
  const scheme = verifyAuth(leaf.publicKey, { method: auth.method, data: auth.data }, octets);
  return { cert: leaf, scheme, path: chain.path.map((c) => c.subject), warnings: chain.warnings };
}

const REFUSAL: Partial<Record<AuthErrorCode, string>> = {
  ERR_CERT_REVOKED: 'certificate revoked',
  ERR_CERT_EXPIRED: 'certificate expired',
  ERR_CERT_NOT_YET_VALID: 'certificate not yet valid',
  ERR_CERT_UNKNOWN_CA: 'unknown CA',
  ERR_CERT_KEY_USAGE: 'certificate key usage',
  ERR_CERT_NOT_CA: 'issuer is not a CA',
  ERR_CERT_PATH_LENGTH: 'path length exceeded',
  ERR_CERT_CRITICAL_EXTENSION: 'unsupported critical extension',
  ERR_CERT_REVOCATION_UNKNOWN: 'revocation status unknown',
  ERR_CERT_PARSE: 'malformed certificate',
  ERR_ID_MISMATCH: 'identity not in certificate',
  ERR_SIGNATURE: 'bad signature',
  ERR_SIGNATURE_SCHEME: 'unusable signature scheme',
};

/** "certificate revoked: certificate "C=CH, ..." (serial 0a): revoked ..." for the log line of a refusal. */
export function refusalText(e: AuthError): string {
  return `${REFUSAL[e.code] ?? 'certificate authentication failed'}: ${e.message}`;
}

/** What "authenticated with ..." says in the state change line. */
export function schemeText(scheme: SignatureScheme): string {
  return `${scheme.startsWith('ecdsa') ? 'ECDSA' : 'RSA'} signature (${scheme})`;
}
