/**
 * Certification path validation for IKE peers: styx's own walk of RFC 5280
 * 6.1 over certificates parsed by pkijs, with node:crypto verifying every
 * signature. pkijs's CertificateChainValidationEngine was not used because
 * it reports failures as untyped strings without saying which certificate
 * failed, does not check the end entity's key usage, and demands a CRL for
 * every certificate once any CRL is given.
 *
 * What is checked, for every certificate on the path: its signature by the
 * next one (6.1.3 (a)(1)), validity at `now` (6.1.3 (a)(2)), revocation on
 * the configured CRLs (6.1.3 (a)(3), 6.3), name chaining (6.1.3 (a)(4)), and
 * that no critical extension is left unprocessed (6.1.4 (o), 6.1.5 (e)). For
 * issuers: basicConstraints cA (6.1.4 (k)), pathLenConstraint (6.1.4 (l),
 * (m)) and keyCertSign (6.1.4 (n)). For the end entity, RFC 4945 5.1.3.2
 * (digitalSignature or nonRepudiation) and, on request, 5.1.3.12 (extended
 * key usage). Not implemented: policy processing (policies are treated as
 * anyPolicy, so certificates with critical policy constraints are refused)
 * and name constraints (refused when present).
 */
import { AuthError, type AuthErrorCode } from './errors.js';
import { verifySignedData } from './algs.js';
import { dnEquals } from './dn.js';
import { Cert, Crl, EkuOid, ExtOid, REASONS, type RevokedEntry } from './x509.js';

export interface ChainOptions {
  /** Trust anchors configured for the connection. */
  anchors: Cert[];
  /** CRLs loaded from files; those of unrelated issuers are ignored. */
  crls: Crl[];
  now: Date;
  /** Fail when no current CRL covers a certificate on the path, rather than warn. */
  requireCrl?: boolean;
  /** Apply RFC 4945 5.1.3.12: an end entity with extKeyUsage must list ipsecIKE or anyExtendedKeyUsage. */
  requireIkeEku?: boolean;
  /** Accept SHA-1 signatures on certificates and CRLs (off: RFC 8247 retires SHA-1 signatures). */
  allowSha1?: boolean;
  /** Longest path tried, anchor included (default 8). */
  maxDepth?: number;
  /** Apply the end-entity checks of RFC 4945 5.1.3 (default true; off to report on a CA certificate itself). */
  endEntity?: boolean;
}

export type RevocationStatus = 'good' | 'unknown';

export interface ValidatedChain {
  /** End entity first, trust anchor last. A directly trusted end entity gives a path of one. */
  path: Cert[];
  leaf: Cert;
  anchor: Cert;
  /** Per path entry except the anchor: what the CRLs said. */
  revocation: RevocationStatus[];
  /** Things an operator should know that did not fail validation (stale or unverifiable CRLs). */
  warnings: string[];
}

/** Extensions whose semantics are applied here or that carry no constraint. */
const PROCESSED = new Set<string>([
  ExtOid.basicConstraints, ExtOid.keyUsage, ExtOid.extKeyUsage, ExtOid.subjectAltName, ExtOid.issuerAltName,
  ExtOid.subjectKeyIdentifier, ExtOid.authorityKeyIdentifier, ExtOid.cRLDistributionPoints,
  ExtOid.authorityInfoAccess, ExtOid.certificatePolicies,
]);

/** CRL extensions understood well enough to use the CRL (RFC 5280 5.2); delta and partitioned CRLs are not. */
const CRL_PROCESSED = new Set<string>([ExtOid.authorityKeyIdentifier, ExtOid.cRLNumber]);

const fail = (code: AuthErrorCode, cert: Cert, why: string): AuthError =>
  new AuthError(code, `certificate ${cert.describe()}: ${why}`, { cert: cert.subject, serial: cert.serial, ...(cert.source ? { file: cert.source } : {}) });

/** Could `issuer` have issued `cert`? Names must chain (RFC 5280 7.1) and key identifiers, where both exist, agree. */
function mayIssue(issuer: Cert, cert: Cert): boolean {
  if (!dnEquals(cert.issuerDer, issuer.subjectDer)) return false;
  return !cert.authorityKeyId || !issuer.subjectKeyId || cert.authorityKeyId.equals(issuer.subjectKeyId);
}

/** Why `issuer`'s key does not vouch for `cert`, or undefined when the signature verifies. */
function linkProblem(cert: Cert, issuer: Cert, allowSha1: boolean): string | undefined {
  try {
    return verifySignedData(cert.tbs, cert.signatureAlgorithm, cert.signature, issuer.publicKey, { allowSha1 })
      ? undefined : `signature does not verify with the key of ${issuer.describe()}`;
  } catch (e) {
    if (e instanceof AuthError) return `${e.message} (issuer ${issuer.describe()})`;
    throw e;
  }
}

interface Candidate { path: Cert[] }
interface BuildNotes { badLink?: [Cert, string] }

/**
 * All paths from the leaf to an anchor, shortest first, each link's
 * signature already verified. Records why links were rejected so that a
 * failure can say "unknown CA" or "bad signature" precisely.
 */
function buildPaths(leaf: Cert, intermediates: Cert[], opts: ChainOptions, notes: BuildNotes): Candidate[] {
  const maxDepth = opts.maxDepth ?? 8;
  const allowSha1 = opts.allowSha1 === true;
  const found: Candidate[] = [];
  const isAnchor = (c: Cert): boolean => opts.anchors.some((a) => a.equals(c));
  if (isAnchor(leaf)) found.push({ path: [leaf] });
  const walk = (path: Cert[]): void => {
    const cert = path[path.length - 1]!;
    if (path.length >= maxDepth) return;
    // Anchors first: a path that stops at a configured anchor is preferred over one through a cross-certificate.
    for (const issuer of [...opts.anchors, ...intermediates]) {
      if (path.some((p) => p.equals(issuer)) || !mayIssue(issuer, cert)) continue;
      const problem = linkProblem(cert, issuer, allowSha1);
      if (problem !== undefined) { notes.badLink ??= [cert, problem]; continue; }
      const next = [...path, issuer];
      if (isAnchor(issuer)) found.push({ path: next });
      else walk(next);
    }
  };
  walk([leaf]);
  return found.sort((a, b) => a.path.length - b.path.length);
}

function checkValidity(cert: Cert, now: Date): void {
  if (now < cert.notBefore) throw fail('ERR_CERT_NOT_YET_VALID', cert, `not valid before ${cert.notBefore.toISOString()}`);
  if (now > cert.notAfter) throw fail('ERR_CERT_EXPIRED', cert, `expired ${cert.notAfter.toISOString()}`);
}

function checkCriticalExtensions(cert: Cert): void {
  for (const x of cert.extensions) {
    if (!x.critical || PROCESSED.has(x.oid)) continue;
    const what = x.oid === ExtOid.nameConstraints ? 'name constraints are not supported' : `unsupported critical extension ${x.oid}`;
    throw fail('ERR_CERT_CRITICAL_EXTENSION', cert, what);
  }
}

/** RFC 4945 5.1.3.2 and 5.1.3.12 for the certificate whose key signs the IKE AUTH payload. */
function checkEndEntity(cert: Cert, opts: ChainOptions): void {
  const ku = cert.keyUsage;
  if (ku && !ku.has('digitalSignature') && !ku.has('nonRepudiation')) {
    throw fail('ERR_CERT_KEY_USAGE', cert, `keyUsage (${[...ku].join(', ') || 'none'}) allows neither digitalSignature nor nonRepudiation`);
  }
  const eku = cert.extKeyUsage;
  if (opts.requireIkeEku && eku && !eku.includes(EkuOid.ipsecIKE) && !eku.includes(EkuOid.anyExtendedKeyUsage)) {
    throw fail('ERR_CERT_KEY_USAGE', cert, `extKeyUsage (${eku.join(', ')}) lists neither ipsecIKE nor anyExtendedKeyUsage`);
  }
}

/** Issuer checks: a CA by basicConstraints (v1 anchors excepted), keyCertSign, path length below it. */
function checkIssuer(ca: Cert, isAnchorCert: boolean, caCertsBelow: number): void {
  const legacyAnchor = isAnchorCert && ca.version < 3;
  if (!legacyAnchor && !ca.isCa) throw fail('ERR_CERT_NOT_CA', ca, 'issues certificates but basicConstraints does not mark it as a CA');
  if (ca.keyUsage && !ca.keyUsage.has('keyCertSign')) throw fail('ERR_CERT_KEY_USAGE', ca, 'issues certificates but keyUsage lacks keyCertSign');
  const pathLen = ca.basicConstraints?.pathLen;
  if (pathLen !== undefined && caCertsBelow > pathLen) {
    throw fail('ERR_CERT_PATH_LENGTH', ca, `pathLenConstraint ${pathLen} but ${caCertsBelow} CA certificate(s) follow it`);
  }
}

interface CrlVerdict { status: RevocationStatus; revoked?: RevokedEntry; crl?: Crl }

/**
 * RFC 5280 6.3, for complete CRLs issued directly by the certificate's
 * issuer: the CRL's issuer name matches, its signature verifies with the
 * issuer's key, and that key may sign CRLs. A revoked entry counts even on a
 * stale CRL; "good" needs a CRL whose nextUpdate has not passed.
 */
function crlStatus(cert: Cert, issuer: Cert, opts: ChainOptions, warnings: string[], verified: Map<Crl, Cert>): CrlVerdict {
  let status: RevocationStatus = 'unknown';
  for (const crl of opts.crls) {
    if (!dnEquals(crl.issuerDer, cert.issuerDer)) continue;
    if (crl.authorityKeyId && issuer.subjectKeyId && !crl.authorityKeyId.equals(issuer.subjectKeyId)) continue;
    const label = `CRL ${crl.source ? `${crl.source} ` : ''}from "${crl.issuer}"`;
    if (verified.get(crl) !== issuer) {
      let ok = false;
      try { ok = verifySignedData(crl.tbs, crl.signatureAlgorithm, crl.signature, issuer.publicKey, { allowSha1: opts.allowSha1 === true }); } catch (e) {
        if (!(e instanceof AuthError)) throw e;
      }
      if (!ok) { warnings.push(`${label}: signature does not verify with the issuer's key; ignored`); continue; }
      verified.set(crl, issuer);
    }
    if (issuer.keyUsage && !issuer.keyUsage.has('cRLSign')) { warnings.push(`${label}: issuer's keyUsage lacks cRLSign; ignored`); continue; }
    const unknown = crl.extensions.find((x) => x.critical && !CRL_PROCESSED.has(x.oid));
    if (unknown || crl.hasUnknownCriticalEntryExtension) { warnings.push(`${label}: critical extension ${unknown?.oid ?? 'in an entry'} not supported; ignored`); continue; }
    const entry = crl.revoked(cert.serial);
    if (entry) return { status: 'unknown', revoked: entry, crl };
    if (crl.nextUpdate && crl.nextUpdate < opts.now) { warnings.push(`${label}: stale since ${crl.nextUpdate.toISOString()}`); continue; }
    status = 'good';
  }
  return { status };
}

function validatePath(path: Cert[], opts: ChainOptions, warnings: string[], verified: Map<Crl, Cert>): RevocationStatus[] {
  const leaf = path[0]!;
  const anchorIndex = path.length - 1;
  // Walk from the anchor down, the order of RFC 5280 6.1, so the first failure reported is the one nearest the root.
  for (let i = anchorIndex; i >= 0; i--) {
    const cert = path[i]!;
    checkValidity(cert, opts.now);
    checkCriticalExtensions(cert);
    if (i > 0) {
      let caBelow = 0;
      for (let j = 1; j < i; j++) if (!path[j]!.selfIssued) caBelow++;
      checkIssuer(cert, i === anchorIndex, caBelow);
    }
  }
  if (opts.endEntity !== false) checkEndEntity(leaf, opts);
  const revocation: RevocationStatus[] = [];
  for (let i = anchorIndex - 1; i >= 0; i--) {
    const cert = path[i]!;
    const v = crlStatus(cert, path[i + 1]!, opts, warnings, verified);
    if (v.revoked) {
      const reason = v.revoked.reason !== undefined ? `, reason ${REASONS[v.revoked.reason] ?? v.revoked.reason}` : '';
      throw fail('ERR_CERT_REVOKED', cert, `revoked ${v.revoked.date.toISOString()}${reason} (serial ${cert.serial}, ${v.crl?.source ?? 'CRL'} of "${v.crl?.issuer ?? cert.issuer}")`);
    }
    if (v.status === 'unknown') {
      if (opts.requireCrl) throw fail('ERR_CERT_REVOCATION_UNKNOWN', cert, `no current CRL from "${cert.issuer}"`);
    }
    revocation.unshift(v.status);
  }
  return revocation;
}

/**
 * Validates `leaf` against the configured anchors, using `intermediates`
 * (those the peer sent plus any configured) to build the path. Resolves
 * with the path that passed; rejects with the AuthError of the best path
 * that did not, or ERR_CERT_UNKNOWN_CA / ERR_SIGNATURE when none reaches an
 * anchor.
 */
export async function validateChain(leaf: Cert, intermediates: Cert[], opts: ChainOptions): Promise<ValidatedChain> {
  const notes: BuildNotes = {};
  const candidates = buildPaths(leaf, intermediates, opts, notes);
  if (candidates.length === 0) {
    if (notes.badLink) throw fail('ERR_SIGNATURE', notes.badLink[0], notes.badLink[1]);
    throw fail('ERR_CERT_UNKNOWN_CA', leaf, `no path to a trusted CA (issuer "${leaf.issuer}")`);
  }
  const verified = new Map<Crl, Cert>();
  let first: unknown;
  for (const c of candidates) {
    const warnings: string[] = [];
    try {
      const revocation = validatePath(c.path, opts, warnings, verified);
      return { path: c.path, leaf, anchor: c.path[c.path.length - 1]!, revocation, warnings };
    } catch (e) {
      first ??= e;
    }
  }
  throw first;
}
