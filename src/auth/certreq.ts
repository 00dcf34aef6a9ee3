/**
 * CERTREQ payloads (RFC 7296 3.7) with the X.509 Signature encoding (4):
 * the Certification Authority field is a concatenation of SHA-1 hashes of
 * the SubjectPublicKeyInfo of each CA the sender trusts. Hashing the key
 * rather than the name means a re-issued CA certificate with the same key
 * still matches.
 */
import { createHash } from 'node:crypto';
import { MalformedError } from '../util/errors.js';
import type { Cert } from './x509.js';

const SHA1_LEN = 20;

/** SHA-1 of the CA's SubjectPublicKeyInfo, exactly as encoded in its certificate. */
export function caKeyHash(ca: Cert): Buffer {
  return createHash('sha1').update(ca.spki).digest();
}

/** The Certification Authority field for the given trust anchors (duplicates dropped, order kept). */
export function encodeCertReq(cas: readonly Cert[]): Buffer {
  const seen = new Set<string>();
  const parts: Buffer[] = [];
  for (const ca of cas) {
    const h = caKeyHash(ca);
    const k = h.toString('hex');
    if (!seen.has(k)) { seen.add(k); parts.push(h); }
  }
  return Buffer.concat(parts);
}

/** Splits a received Certification Authority field into its hashes; empty means "any CA". */
export function decodeCertReq(data: Buffer): Buffer[] {
  if (data.length % SHA1_LEN) throw new MalformedError('CERTREQ', `${data.length} octets is not a list of SHA-1 hashes`);
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += SHA1_LEN) out.push(Buffer.from(data.subarray(i, i + SHA1_LEN)));
  return out;
}

/**
 * Which certificate of our chain (leaf first, then its issuers up to the
 * root) has a key the peer named as trusted. The first match from the leaf
 * side wins: the peer needs nothing above it.
 */
export function matchCertReq(hashes: readonly Buffer[], chain: readonly Cert[]): { cert: Cert; index: number } | undefined {
  for (let i = 1; i < chain.length; i++) {
    const h = caKeyHash(chain[i]!);
    if (hashes.some((x) => x.equals(h))) return { cert: chain[i]!, index: i };
  }
  return undefined;
}

/**
 * The certificates to put in CERT payloads (RFC 7296 3.6), leaf first:
 * everything below the CA the peer trusts. Without a match (or without a
 * CERTREQ) the leaf and all intermediates, never a self-signed root, which
 * the peer must have anyway to trust it.
 */
export function certsToSend(chain: readonly Cert[], hashes: readonly Buffer[]): Cert[] {
  const m = matchCertReq(hashes, chain);
  if (m) return chain.slice(0, m.index);
  return chain.filter((c, i) => i === 0 || !c.selfIssued);
}
