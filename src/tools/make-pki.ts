/**
 * Writes styx's test PKI to certs/pki/ (or the directory given as the first
 * argument). Every key is derived from its file name and every certificate
 * and CRL is signed by an RSA CA, so running this again reproduces the same
 * bytes; the output is committed and the unit tests read it.
 *
 *   npm run certs        (builds, then runs dist/src/tools/make-pki.js)
 *
 * The keys are public test material: never use them for anything real.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { deriveEcKey, deriveRsaKey, labelSerial, makeCert, makeCrl, type AltNamesSpec, type Curve } from './pki-builder.js';
import { EkuOid, type Cert, type KeyUsageName } from '../auth/x509.js';

const FROM = new Date('2025-01-01T00:00:00Z');
const UNTIL = new Date('2045-01-01T00:00:00Z');
const REVOKED_AT = new Date('2025-06-01T00:00:00Z');
const DN = (cn: string, o = 'styx'): string => `C=CH, O=${o}, CN=${cn}`;

const here = dirname(fileURLToPath(import.meta.url));
// dist/src/tools -> repository root
const outDir = resolve(process.argv[2] ?? join(here, '..', '..', '..', 'certs', 'pki'));
mkdirSync(outDir, { recursive: true });

const written: string[] = [];
function out(name: string, data: string | Buffer): void {
  writeFileSync(join(outDir, name), data);
  written.push(name);
}
function keyFiles(name: string, key: KeyObject): void {
  out(`${name}.key.pem`, key.export({ type: 'pkcs8', format: 'pem' }));
}

type KeySpec = { rsa: number } | { ec: Curve };
function key(name: string, spec: KeySpec): KeyObject {
  const t = Date.now();
  const k = 'rsa' in spec ? deriveRsaKey(spec.rsa, name) : deriveEcKey(spec.ec, name);
  if ('rsa' in spec) process.stderr.write(`  ${name}: RSA-${spec.rsa} key in ${Date.now() - t} ms\n`);
  return k;
}

interface CaResult { cert: Cert; key: KeyObject }

function ca(name: string, cn: string, keySpec: KeySpec, issuer: CaResult | undefined, opts: { pathLen?: number; keyUsage?: KeyUsageName[]; o?: string } = {}): CaResult {
  const k = key(name, keySpec);
  const cert = makeCert({
    subject: DN(cn, opts.o),
    publicKey: createPublicKey(k),
    ...(issuer ? { issuer: issuer.cert } : {}),
    signingKey: issuer ? issuer.key : k,
    serial: labelSerial(name),
    notBefore: FROM, notAfter: UNTIL,
    ca: true,
    ...(opts.pathLen !== undefined ? { pathLen: opts.pathLen } : {}),
    keyUsage: opts.keyUsage ?? ['keyCertSign', 'cRLSign'],
  });
  out(`${name}.pem`, cert.toPem());
  keyFiles(name, k);
  return { cert, key: k };
}

interface HostOpts {
  cn?: string;
  san?: AltNamesSpec;
  keyUsage?: KeyUsageName[];
  eku?: string[];
  notBefore?: Date;
  notAfter?: Date;
}
function host(name: string, keySpec: KeySpec, issuer: CaResult, opts: HostOpts = {}): { cert: Cert; key: KeyObject } {
  const k = key(name, keySpec);
  const cert = makeCert({
    subject: DN(opts.cn ?? `${name}.styx.example`),
    publicKey: createPublicKey(k),
    issuer: issuer.cert,
    signingKey: issuer.key,
    serial: labelSerial(name),
    notBefore: opts.notBefore ?? FROM, notAfter: opts.notAfter ?? UNTIL,
    keyUsage: opts.keyUsage ?? ['digitalSignature'],
    ...(opts.eku ? { extKeyUsage: opts.eku } : {}),
    altNames: opts.san ?? { dns: [`${name}.styx.example`], email: [`${name}@styx.example`] },
  });
  out(`${name}.pem`, cert.toPem());
  keyFiles(name, k);
  return { cert, key: k };
}

// The trusted hierarchy: root -> intermediate -> hosts.
const root = ca('root-ca', 'styx Root CA', { rsa: 3072 }, undefined);
const inter = ca('intermediate-ca', 'styx Intermediate CA', { rsa: 3072 }, root, { pathLen: 0 });

const moon = host('moon', { rsa: 3072 }, inter, {
  san: { dns: ['moon.styx.example'], ip: ['192.0.2.1', '2001:db8::1'], email: ['moon@styx.example'] },
});
const sun = host('sun', { ec: 'P-256' }, inter, {
  san: { dns: ['sun.styx.example'], ip: ['192.0.2.2', '2001:db8::2'], email: ['sun@styx.example'] },
  eku: [EkuOid.ipsecIKE],
});
host('venus', { ec: 'P-384' }, inter, { san: { dns: ['venus.styx.example'], ip: ['192.0.2.3'], email: ['venus@styx.example'] } });
host('mercury', { ec: 'P-521' }, inter, { san: { dns: ['mercury.styx.example'], ip: ['192.0.2.4'], email: ['mercury@styx.example'] } });

// Failure cases, one property each.
const mars = host('mars', { ec: 'P-256' }, inter, { san: { dns: ['mars.styx.example'], ip: ['192.0.2.5'] } });
host('pluto', { ec: 'P-256' }, inter, {
  san: { dns: ['pluto.styx.example'], ip: ['192.0.2.6'] },
  notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z'),
});
host('jupiter', { ec: 'P-256' }, inter, { san: { dns: ['jupiter.styx.example'], ip: ['192.0.2.9'], email: ['jupiter@styx.example'] } });
host('saturn', { ec: 'P-256' }, inter, { san: { dns: ['saturn.styx.example'], ip: ['192.0.2.7'] }, keyUsage: ['keyEncipherment', 'keyAgreement'] });
host('io', { ec: 'P-256' }, inter, { san: { dns: ['io.styx.example'], ip: ['192.0.2.8'] }, eku: [EkuOid.serverAuth] });

// A CA nobody configured, issuing a certificate that claims moon's identity.
const rogue = ca('rogue-ca', 'rogue Root CA', { rsa: 2048 }, undefined, { o: 'rogue' });
host('rogue-moon', { ec: 'P-256' }, rogue, {
  cn: 'moon.styx.example',
  san: { dns: ['moon.styx.example'], ip: ['192.0.2.1'], email: ['moon@styx.example'] },
});

// An intermediate the root has revoked, and a host below it.
const retired = ca('retired-ca', 'styx Retired CA', { rsa: 2048 }, root, { pathLen: 0 });
host('neptune', { ec: 'P-256' }, retired, { san: { dns: ['neptune.styx.example'], ip: ['192.0.2.10'] } });

// A CA certificate whose key usage does not allow certificate signing, and a host below it.
const nosign = ca('nosign-ca', 'styx No-Sign CA', { rsa: 2048 }, root, { keyUsage: ['digitalSignature'] });
host('titan', { ec: 'P-256' }, nosign, { san: { dns: ['titan.styx.example'], ip: ['192.0.2.11'] } });

// CRLs: the intermediate revokes mars, the root revokes the retired CA.
const interCrl = makeCrl({
  issuer: inter.cert, signingKey: inter.key, thisUpdate: REVOKED_AT, nextUpdate: UNTIL, crlNumber: 1,
  revoked: [{ serial: mars.cert.serial, date: REVOKED_AT, reason: 1 }],
});
out('intermediate-ca.crl.pem', interCrl.toPem());
out('intermediate-ca.crl.der', interCrl.der);
const rootCrl = makeCrl({
  issuer: root.cert, signingKey: root.key, thisUpdate: REVOKED_AT, nextUpdate: UNTIL, crlNumber: 1,
  revoked: [{ serial: retired.cert.serial, date: REVOKED_AT, reason: 5 }],
});
out('root-ca.crl.pem', rootCrl.toPem());

// The same material in the other encodings the loader must accept.
out('moon.der', moon.cert.der);
out('moon.key.pkcs1.pem', moon.key.export({ type: 'pkcs1', format: 'pem' }));
out('moon.chain.pem', moon.cert.toPem() + inter.cert.toPem());
out('sun.key.der', sun.key.export({ type: 'pkcs8', format: 'der' }));
out('sun.key.sec1.pem', sun.key.export({ type: 'sec1', format: 'pem' }));
out('ca-bundle.pem', root.cert.toPem() + inter.cert.toPem());

process.stdout.write(`wrote ${written.length} files to ${outDir}\n`);
