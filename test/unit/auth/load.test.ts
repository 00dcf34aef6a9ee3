import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadCertificate, loadCertificates, loadCrls, loadPrivateKey, parseCertificates, parsePrivateKey,
} from '../../../src/auth/load.js';
import { AuthError } from '../../../src/auth/errors.js';
import { pki } from './pki.js';

const spki = (k: Parameters<typeof createPublicKey>[0]): string => createPublicKey(k).export({ type: 'spki', format: 'der' }).toString('hex');

describe('auth/load', () => {
  it('loads the same certificate from PEM and DER', async () => {
    const pem = await loadCertificate(pki('moon.pem'));
    const der = await loadCertificate(pki('moon.der'));
    assert.ok(pem.der.equals(der.der));
    assert.equal(pem.subject, 'C=CH, O=styx, CN=moon.styx.example');
    assert.equal(der.source, pki('moon.der'));
  });

  it('loads every certificate of a PEM bundle, in order', async () => {
    const chain = await loadCertificates(pki('moon.chain.pem'));
    assert.deepEqual(chain.map((c) => c.subject), ['C=CH, O=styx, CN=moon.styx.example', 'C=CH, O=styx, CN=styx Intermediate CA']);
  });

  it('loads RSA keys from PKCS#8 and PKCS#1 PEM to the same key', async () => {
    const p8 = await loadPrivateKey(pki('moon.key.pem'));
    const p1 = await loadPrivateKey(pki('moon.key.pkcs1.pem'));
    assert.equal(p8.asymmetricKeyType, 'rsa');
    assert.equal(p8.asymmetricKeyDetails?.modulusLength, 3072);
    assert.equal(spki(p8), spki(p1));
    assert.equal(spki(p8), (await loadCertificate(pki('moon.pem'))).spki.toString('hex'));
  });

  it('loads EC keys from PKCS#8 PEM, PKCS#8 DER and SEC 1 PEM to the same key', async () => {
    const a = await loadPrivateKey(pki('sun.key.pem'));
    const b = await loadPrivateKey(pki('sun.key.der'));
    const c = await loadPrivateKey(pki('sun.key.sec1.pem'));
    assert.equal(a.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(spki(a), spki(b));
    assert.equal(spki(a), spki(c));
  });

  it('loads DER PKCS#1 and encrypted PKCS#8 keys', async () => {
    const k = await loadPrivateKey(pki('moon.key.pem'));
    const p1der = k.export({ type: 'pkcs1', format: 'der' });
    assert.equal(spki(parsePrivateKey(p1der, 'mem')), spki(k));
    const enc = k.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'styx-test' });
    assert.equal(spki(parsePrivateKey(Buffer.from(enc), 'enc.pem', 'styx-test')), spki(k));
    assert.throws(() => parsePrivateKey(Buffer.from(enc), 'enc.pem'), (e: unknown) => e instanceof AuthError && e.code === 'ERR_KEY_PARSE' && /enc\.pem: .*encrypted/.test(e.message));
    assert.throws(() => parsePrivateKey(Buffer.from(enc), 'enc.pem', 'wrong'), (e: unknown) => e instanceof AuthError && e.code === 'ERR_KEY_PARSE');
  });

  it('loads CRLs from PEM and DER', async () => {
    const [a] = await loadCrls(pki('intermediate-ca.crl.pem'));
    const [b] = await loadCrls(pki('intermediate-ca.crl.der'));
    assert.ok(a!.der.equals(b!.der));
    assert.equal(a!.issuer, 'C=CH, O=styx, CN=styx Intermediate CA');
    assert.equal(a!.entries.size, 1);
    assert.equal(a!.crlNumber, 1n);
  });

  it('names the file in every error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'styx-auth-'));
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await assert.rejects(loadCertificate(junk), (e: unknown) => e instanceof AuthError && e.code === 'ERR_CERT_PARSE' && e.file === junk && e.message.includes(junk));
    const missing = join(dir, 'missing.pem');
    await assert.rejects(loadCertificate(missing), (e: unknown) => e instanceof AuthError && e.code === 'ERR_LOAD' && e.message.includes(missing) && /ENOENT/.test(e.message));
    // A certificate file given where a key is expected.
    await assert.rejects(loadPrivateKey(pki('moon.pem')), (e: unknown) => e instanceof AuthError && e.code === 'ERR_KEY_PARSE' && e.message.includes('moon.pem'));
    // A key file given where a certificate is expected.
    await assert.rejects(loadCertificate(pki('moon.key.pem')), (e: unknown) => e instanceof AuthError && e.code === 'ERR_CERT_PARSE' && e.message.includes('moon.key.pem'));
    await assert.rejects(loadCrls(pki('moon.pem')), (e: unknown) => e instanceof AuthError && e.code === 'ERR_CRL_PARSE');
  });

  it('refuses trailing garbage after a DER certificate', () => {
    const der = readFileSync(pki('moon.der'));
    assert.throws(() => parseCertificates(Buffer.concat([der, Buffer.from([0])]), 'x.der'), (e: unknown) => e instanceof AuthError && e.code === 'ERR_CERT_PARSE');
  });
});
