/**
 * Reading certificates, CRLs and private keys from files. PEM or DER is
 * recognised by content, not by file name; keys may be PKCS#8 (optionally
 * encrypted), PKCS#1 (RSA) or SEC 1 (EC). Every error names the file.
 */
import { readFile } from 'node:fs/promises';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { AuthError } from './errors.js';
import { Cert, Crl } from './x509.js';

interface PemBlock { label: string; der: Buffer }

/** All PEM blocks in a text, in order (RFC 7468). */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    // Encapsulated headers (Proc-Type, DEK-Info) of legacy encrypted keys are kept for createPrivateKey, not decoded here.
    out.push({ label: m[1]!, der: Buffer.from(m[2]!.replace(/^[A-Za-z-]+:.*$/gm, '').replace(/\s+/g, ''), 'base64') });
  }
  return out;
}

const looksPem = (data: Buffer): boolean => data.includes('-----BEGIN ');

async function read(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new AuthError('ERR_LOAD', `${file}: cannot read (${code})`, { file });
  }
}

/** Certificates in a PEM text (every CERTIFICATE block) or a single DER certificate. */
export function parseCertificates(data: Buffer, source: string): Cert[] {
  if (!looksPem(data)) return [Cert.fromDer(data, source)];
  const blocks = pemBlocks(data.toString('latin1')).filter((b) => b.label === 'CERTIFICATE');
  if (blocks.length === 0) throw new AuthError('ERR_CERT_PARSE', `${source}: no CERTIFICATE block`, { file: source });
  return blocks.map((b, i) => Cert.fromDer(b.der, blocks.length > 1 ? `${source}#${i + 1}` : source));
}

export async function loadCertificates(file: string): Promise<Cert[]> {
  return parseCertificates(await read(file), file);
}

/** The first certificate of a file; a PEM file may carry its intermediates after it. */
export async function loadCertificate(file: string): Promise<Cert> {
  return (await loadCertificates(file))[0]!;
}

export function parseCrls(data: Buffer, source: string): Crl[] {
  if (!looksPem(data)) return [Crl.fromDer(data, source)];
  const blocks = pemBlocks(data.toString('latin1')).filter((b) => b.label === 'X509 CRL');
  if (blocks.length === 0) throw new AuthError('ERR_CRL_PARSE', `${source}: no X509 CRL block`, { file: source });
  return blocks.map((b, i) => Crl.fromDer(b.der, blocks.length > 1 ? `${source}#${i + 1}` : source));
}

export async function loadCrls(file: string): Promise<Crl[]> {
  return parseCrls(await read(file), file);
}

const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);

/**
 * A private key from PEM (PKCS#8, encrypted PKCS#8, PKCS#1, SEC 1) or DER
 * (PKCS#8, encrypted PKCS#8, PKCS#1, SEC 1, tried in that order).
 */
export function parsePrivateKey(data: Buffer, source: string, passphrase?: string): KeyObject {
  const fail = (why: string): AuthError => new AuthError('ERR_KEY_PARSE', `${source}: ${why}`, { file: source });
  const pass = passphrase !== undefined ? { passphrase } : {};
  if (looksPem(data)) {
    const text = data.toString('latin1');
    const block = pemBlocks(text).find((b) => KEY_LABELS.has(b.label));
    if (!block) throw fail('no private key block');
    if (block.label === 'ENCRYPTED PRIVATE KEY' && passphrase === undefined) throw fail('key is encrypted and no passphrase was given');
    try {
      return createPrivateKey({ key: text, format: 'pem', ...pass });
    } catch (e) {
      throw fail(`unusable ${block.label} (${(e as Error).message})`);
    }
  }
  const attempts: { type: 'pkcs8' | 'pkcs1' | 'sec1' }[] = [{ type: 'pkcs8' }, { type: 'pkcs1' }, { type: 'sec1' }];
  for (const a of attempts) {
    try {
      return createPrivateKey({ key: data, format: 'der', type: a.type, ...(a.type === 'pkcs8' ? pass : {}) });
    } catch { /* try the next encoding */ }
  }
  throw fail(passphrase === undefined ? 'not a DER private key (PKCS#8, PKCS#1 or SEC 1), or encrypted without a passphrase' : 'not a DER private key, or wrong passphrase');
}

export async function loadPrivateKey(file: string, passphrase?: string): Promise<KeyObject> {
  return parsePrivateKey(await read(file), file, passphrase);
}
