/** Paths and loaders for the committed test PKI in certs/pki (see certs/README.md). */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadCertificate, loadCrls, loadPrivateKey } from '../../../src/auth/load.js';
import type { Cert, Crl } from '../../../src/auth/x509.js';
import type { KeyObject } from 'node:crypto';

// dist/test/unit/auth -> repository root
export const PKI = fileURLToPath(new URL('../../../../certs/pki/', import.meta.url));
export const pki = (name: string): string => join(PKI, name);

/** A moment inside every non-expired certificate's validity. */
export const NOW = new Date('2030-01-01T00:00:00Z');

export const cert = (name: string): Promise<Cert> => loadCertificate(pki(`${name}.pem`));
export const key = (name: string): Promise<KeyObject> => loadPrivateKey(pki(`${name}.key.pem`));

export async function crls(): Promise<Crl[]> {
  return [...(await loadCrls(pki('intermediate-ca.crl.pem'))), ...(await loadCrls(pki('root-ca.crl.pem')))];
}

/** Runs openssl; returns stdout, or throws with stderr. */
export function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function hasOpenssl(): boolean {
  try { openssl(['version']); return true; } catch { return false; }
}
