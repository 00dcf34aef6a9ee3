/**
 * The certificate material of one connection: our certificate and key, the
 * trust anchors, extra intermediates and CRLs, loaded from the files the
 * configuration names. Also lists what it holds with each certificate's
 * status, for a future `styx list-certs`.
 */
import { readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { addrText } from '../ike/ts.js';
import { AuthError } from './errors.js';
import { validateChain, type ChainOptions, type ValidatedChain } from './chain.js';
import { encodeCertReq } from './certreq.js';
import { loadCertificates, loadCrls, loadPrivateKey } from './load.js';
import { LocalSigner } from './signer.js';
import type { Cert, Crl } from './x509.js';

export interface CertStoreSpec {
  /** Our certificate; a PEM file may carry its intermediates after it. */
  cert?: string;
  /** Our private key. */
  key?: string;
  passphrase?: string;
  /** Trust anchors: files, or directories whose *.pem, *.crt, *.cer and *.der files are read. */
  cas?: string[];
  /** Further intermediates to offer and to build peer paths with. */
  intermediates?: string[];
  /** CRL files, or directories whose *.pem, *.crl and *.der files are read. */
  crls?: string[];
  /** Relative paths resolve against this directory (default: the working directory). */
  baseDir?: string;
}

export type CertRole = 'local' | 'intermediate' | 'ca';
export type CertStatus = 'valid' | 'expired' | 'not-yet-valid' | 'revoked' | 'untrusted' | 'invalid';

export interface StoredCert { cert: Cert; file: string; role: CertRole }

export interface CertListing {
  role: CertRole;
  file: string;
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  /** "RSA-3072", "ECDSA P-256", ... */
  key: string;
  altNames: string[];
  sha256: string;
  status: CertStatus;
  /** Why, when the status is not 'valid'. */
  detail?: string;
}

export interface CrlListing {
  file: string;
  issuer: string;
  thisUpdate: string;
  nextUpdate?: string;
  crlNumber?: string;
  revoked: number;
  status: 'current' | 'stale';
}

const CERT_EXT = /\.(pem|crt|cer|der)$/i;
const CRL_EXT = /\.(pem|crl|der)$/i;

async function expand(paths: readonly string[] | undefined, base: string, ext: RegExp): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths ?? []) {
    const full = isAbsolute(p) ? p : resolve(base, p);
    let isDir = false;
    try { isDir = (await stat(full)).isDirectory(); } catch (e) {
      throw new AuthError('ERR_LOAD', `${full}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { file: full });
    }
    if (isDir) out.push(...(await readdir(full)).filter((f) => ext.test(f)).sort().map((f) => join(full, f)));
    else out.push(full);
  }
  return out;
}

const spkiOf = (k: KeyObject): Buffer => (k.type === 'private' ? createPublicKey(k) : k).export({ type: 'spki', format: 'der' });

function keyLabel(c: Cert): string {
  const k = c.key;
  if (k.type === 'rsa' || k.type === 'rsa-pss') return `RSA-${k.bits ?? '?'}`;
  if (k.type === 'ecdsa') return `ECDSA ${k.curve ?? '?'}`;
  return k.type;
}

function altNameText(c: Cert): string[] {
  return c.altNames.map((n) => {
    switch (n.type) {
      case 'dns': return `DNS:${n.value}`;
      case 'email': return `email:${n.value}`;
      case 'uri': return `URI:${n.value}`;
      case 'ip': return `IP:${n.value.length === 4 || n.value.length === 16 ? addrText(n.value) : n.value.toString('hex')}`;
      case 'dn': return 'DirName';
      default: return `other:${n.tag.toString(16)}`;
    }
  });
}

const STATUS_OF: Partial<Record<string, CertStatus>> = {
  ERR_CERT_REVOKED: 'revoked', ERR_CERT_EXPIRED: 'expired', ERR_CERT_NOT_YET_VALID: 'not-yet-valid', ERR_CERT_UNKNOWN_CA: 'untrusted',
};

export class CertStore {
  private constructor(
    readonly entries: StoredCert[],
    readonly crls: Crl[],
    readonly key: KeyObject | undefined,
    readonly keyFile: string | undefined,
  ) {}

  static async load(spec: CertStoreSpec): Promise<CertStore> {
    const base = spec.baseDir ?? process.cwd();
    const entries: StoredCert[] = [];
    let localFile: string | undefined;
    if (spec.cert) {
      localFile = isAbsolute(spec.cert) ? spec.cert : resolve(base, spec.cert);
      const [leaf, ...rest] = await loadCertificates(localFile);
      entries.push({ cert: leaf!, file: localFile, role: 'local' });
      for (const c of rest) entries.push({ cert: c, file: localFile, role: 'intermediate' });
    }
    for (const f of await expand(spec.intermediates, base, CERT_EXT)) for (const c of await loadCertificates(f)) entries.push({ cert: c, file: f, role: 'intermediate' });
    for (const f of await expand(spec.cas, base, CERT_EXT)) for (const c of await loadCertificates(f)) entries.push({ cert: c, file: f, role: 'ca' });
    const crls: Crl[] = [];
    for (const f of await expand(spec.crls, base, CRL_EXT)) crls.push(...(await loadCrls(f)));
    let key: KeyObject | undefined;
    let keyFile: string | undefined;
    if (spec.key) {
      keyFile = isAbsolute(spec.key) ? spec.key : resolve(base, spec.key);
      key = await loadPrivateKey(keyFile, spec.passphrase);
      const local = entries.find((e) => e.role === 'local');
      if (local && !spkiOf(key).equals(spkiOf(local.cert.publicKey))) {
        throw new AuthError('ERR_KEY_MISMATCH', `${keyFile}: private key does not belong to the certificate in ${local.file} (${local.cert.describe()})`, { file: keyFile, cert: local.cert.subject, serial: local.cert.serial });
      }
    }
    return new CertStore(entries, crls, key, keyFile);
  }

  get local(): Cert | undefined { return this.entries.find((e) => e.role === 'local')?.cert; }
  get anchors(): Cert[] { return this.entries.filter((e) => e.role === 'ca').map((e) => e.cert); }
  get intermediates(): Cert[] { return this.entries.filter((e) => e.role === 'intermediate').map((e) => e.cert); }

  /** A signer over our private key. */
  signer(): LocalSigner {
    if (!this.key) throw new AuthError('ERR_LOAD', 'no private key configured');
    return new LocalSigner(this.key);
  }

  private chainOptions(now: Date, extra: Partial<ChainOptions>): ChainOptions {
    return { anchors: this.anchors, crls: this.crls, now, ...extra };
  }

  /** Validates a peer's certificate against this store's anchors and CRLs (RFC 5280 6.1). */
  validatePeer(peer: Cert, peerIntermediates: readonly Cert[], now: Date, extra: Partial<ChainOptions> = {}): Promise<ValidatedChain> {
    return validateChain(peer, [...peerIntermediates, ...this.intermediates], this.chainOptions(now, extra));
  }

  /**
   * Our certificate and the issuers up to (and including) the anchor, as
   * validation finds them: the order CERT payloads and certsToSend() want.
   */
  async localChain(now: Date): Promise<Cert[]> {
    const local = this.local;
    if (!local) throw new AuthError('ERR_LOAD', 'no local certificate configured');
    return (await validateChain(local, this.intermediates, this.chainOptions(now, {}))).path;
  }

  /** The CERTREQ Certification Authority field naming our anchors (RFC 7296 3.7). */
  certReq(): Buffer { return encodeCertReq(this.anchors); }

  /** Everything loaded, with status at `now`. */
  async list(now: Date = new Date()): Promise<{ certs: CertListing[]; crls: CrlListing[] }> {
    const certs: CertListing[] = [];
    for (const e of this.entries) {
      const c = e.cert;
      let status: CertStatus = 'valid';
      let detail: string | undefined;
      try {
        if (e.role === 'ca') {
          if (now < c.notBefore) throw new AuthError('ERR_CERT_NOT_YET_VALID', `not valid before ${c.notBefore.toISOString()}`);
          if (now > c.notAfter) throw new AuthError('ERR_CERT_EXPIRED', `expired ${c.notAfter.toISOString()}`);
        } else {
          await validateChain(c, this.intermediates, this.chainOptions(now, { endEntity: e.role === 'local' }));
        }
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        status = STATUS_OF[err.code] ?? 'invalid';
        detail = err.message;
      }
      certs.push({
        role: e.role, file: e.file, subject: c.subject, issuer: c.issuer, serial: c.serial,
        notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), key: keyLabel(c),
        altNames: altNameText(c), sha256: c.fingerprint('sha256'), status, ...(detail !== undefined ? { detail } : {}),
      });
    }
    const crls = this.crls.map((r): CrlListing => ({
      file: r.source ?? '', issuer: r.issuer, thisUpdate: r.thisUpdate.toISOString(),
      ...(r.nextUpdate ? { nextUpdate: r.nextUpdate.toISOString() } : {}),
      ...(r.crlNumber !== undefined ? { crlNumber: r.crlNumber.toString() } : {}),
      revoked: r.entries.size,
      status: r.nextUpdate && r.nextUpdate < now ? 'stale' : 'current',
    }));
    return { certs, crls };
  }
}
