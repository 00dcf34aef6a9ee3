/**
 * Binding IKE identities to certificates (RFC 4945 3.1): the ID payload a
 * peer sends (RFC 7296 3.5) must name the certificate whose key signed its
 * AUTH payload. Each ID type is matched against one field only:
 *
 *   ID_IPV4_ADDR, ID_IPV6_ADDR  iPAddress subjectAltName     (RFC 4945 3.1.1)
 *   ID_FQDN                     dNSName subjectAltName       (RFC 4945 3.1.2)
 *   ID_RFC822_ADDR              rfc822Name subjectAltName    (RFC 4945 3.1.3)
 *   ID_DER_ASN1_DN              the subject                  (RFC 4945 3.1.5)
 *
 * Other types (ID_KEY_ID, ID_DER_ASN1_GN) have no agreed binding to a
 * certificate (RFC 4945 3.1.6, 3.1.7) and never match. The CN of the subject
 * is deliberately not consulted for FQDNs: RFC 4945 3.1.2 puts FQDNs in
 * subjectAltName.
 */
import type { Identity } from '../ike/identity.js';
import { identityText } from '../ike/identity.js';
import { IdType } from '../wire/ikev2/constants.js';
import { AuthError } from './errors.js';
import { derToDnText, dnEquals, dnToDer, parseDn } from './dn.js';
import type { Cert } from './x509.js';

export { dnToDer, derToDnText, dnEquals } from './dn.js';

const lowerDomain = (s: string): string => s.toLowerCase().replace(/\.$/, '');

/** RFC 5280 7.5: the local part is case-sensitive, the domain is not. */
function emailEqual(a: string, b: string): boolean {
  const ia = a.lastIndexOf('@');
  const ib = b.lastIndexOf('@');
  if (ia <= 0 || ib <= 0) return false;
  return a.slice(0, ia) === b.slice(0, ib) && lowerDomain(a.slice(ia + 1)) === lowerDomain(b.slice(ib + 1));
}

function nonEmptyName(der: Buffer): boolean {
  try { return parseDn(der).length > 0; } catch { return false; }
}

/** Whether `cert` is bound to the identity `id`. */
export function certMatchesIdentity(id: Identity, cert: Cert): boolean {
  switch (id.type) {
    case IdType.ID_IPV4_ADDR:
    case IdType.ID_IPV6_ADDR: {
      const len = id.type === IdType.ID_IPV4_ADDR ? 4 : 16;
      return id.data.length === len && cert.altNames.some((n) => n.type === 'ip' && n.value.equals(id.data));
    }
    case IdType.ID_FQDN: {
      const want = lowerDomain(id.data.toString('latin1'));
      return want !== '' && cert.altNames.some((n) => n.type === 'dns' && lowerDomain(n.value) === want);
    }
    case IdType.ID_RFC822_ADDR: {
      const want = id.data.toString('latin1');
      return cert.altNames.some((n) => n.type === 'email' && emailEqual(n.value, want));
    }
    case IdType.ID_DER_ASN1_DN:
      return nonEmptyName(id.data) && dnEquals(id.data, cert.subjectDer);
    default:
      return false;
  }
}

/** Readable form of an identity: DNs as text, the rest as the IKE layer prints them. */
export function describeIdentity(id: Identity): string {
  if (id.type === IdType.ID_DER_ASN1_DN) {
    try { return derToDnText(id.data); } catch { return `0x${id.data.toString('hex')}`; }
  }
  return identityText(id);
}

/** Throws ERR_ID_MISMATCH unless `cert` is bound to `id`. */
export function checkCertIdentity(id: Identity, cert: Cert): void {
  if (!certMatchesIdentity(id, cert)) {
    throw new AuthError('ERR_ID_MISMATCH', `identity "${describeIdentity(id)}" is not bound to certificate ${cert.describe()}`, { cert: cert.subject, serial: cert.serial });
  }
}

/** The identity to send for a certificate when none is configured: its subject DN (RFC 4945 3.1.5). */
export function defaultCertIdentity(cert: Cert): Identity {
  return { type: IdType.ID_DER_ASN1_DN, data: Buffer.from(cert.subjectDer) };
}

/** Every identity the certificate can back: the subject, then each usable subjectAltName. */
export function certIdentities(cert: Cert): Identity[] {
  const out: Identity[] = [];
  if (nonEmptyName(cert.subjectDer)) out.push(defaultCertIdentity(cert));
  for (const n of cert.altNames) {
    if (n.type === 'dns') out.push({ type: IdType.ID_FQDN, data: Buffer.from(n.value, 'latin1') });
    else if (n.type === 'email') out.push({ type: IdType.ID_RFC822_ADDR, data: Buffer.from(n.value, 'latin1') });
    else if (n.type === 'ip' && (n.value.length === 4 || n.value.length === 16)) {
      out.push({ type: n.value.length === 4 ? IdType.ID_IPV4_ADDR : IdType.ID_IPV6_ADDR, data: Buffer.from(n.value) });
    }
  }
  return out;
}

/** An ID_DER_ASN1_DN identity from the text a configuration holds. */
export function dnIdentity(text: string): Identity {
  return { type: IdType.ID_DER_ASN1_DN, data: dnToDer(text) };
}
