import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { Cert } from '../../../src/auth/x509.js';
import { AuthError } from '../../../src/auth/errors.js';
import { cert, hasOpenssl, openssl, pki } from './pki.js';

describe('auth/x509', () => {
  it('parses the fields of a host certificate', async () => {
    const c = await cert('moon');
    assert.equal(c.version, 3);
    assert.equal(c.subject, 'C=CH, O=styx, CN=moon.styx.example');
    assert.equal(c.issuer, 'C=CH, O=styx, CN=styx Intermediate CA');
    assert.equal(c.notBefore.toISOString(), '2025-01-01T00:00:00.000Z');
    assert.equal(c.notAfter.toISOString(), '2045-01-01T00:00:00.000Z');
    assert.deepEqual(c.key, { type: 'rsa', bits: 3072, curve: undefined });
    assert.deepEqual([...c.keyUsage!], ['digitalSignature']);
    assert.equal(c.basicConstraints, undefined);
    assert.equal(c.isCa, false);
    assert.deepEqual(c.altNames.map((n) => n.type), ['dns', 'ip', 'ip', 'email']);
    assert.ok(c.subjectKeyId && c.authorityKeyId);
    assert.equal(c.selfIssued, false);
  });

  it('agrees with OpenSSL on serial, fingerprint, key and validity', async () => {
    for (const name of ['moon', 'sun', 'venus', 'mercury', 'root-ca']) {
      const c = await cert(name);
      const x = new X509Certificate(readFileSync(pki(`${name}.pem`)));
      assert.equal(c.serial, x.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''), name);
      assert.equal(c.fingerprint('sha256'), x.fingerprint256.replace(/:/g, '').toLowerCase(), name);
      assert.ok(c.publicKey.equals(x.publicKey), name);
      assert.equal(c.notAfter.getTime(), new Date(x.validTo).getTime(), name);
      assert.equal(c.isCa, x.ca, name);
    }
  });

  it('reads CA constraints', async () => {
    const root = await cert('root-ca');
    const inter = await cert('intermediate-ca');
    assert.equal(root.selfIssued, true);
    assert.deepEqual(root.basicConstraints, { ca: true, pathLen: undefined });
    assert.deepEqual(inter.basicConstraints, { ca: true, pathLen: 0 });
    assert.deepEqual([...inter.keyUsage!].sort(), ['cRLSign', 'keyCertSign']);
    assert.ok(inter.authorityKeyId!.equals(root.subjectKeyId!));
  });

  it('matches `openssl x509 -noout -text` for moon', async function () {
    if (!hasOpenssl()) this.skip();
    const text = openssl(['x509', '-in', pki('moon.pem'), '-noout', '-text']);
    const c = await cert('moon');
    assert.match(text, /Subject: C ?= ?CH, O ?= ?styx, CN ?= ?moon\.styx\.example/);
    assert.match(text, /Issuer: C ?= ?CH, O ?= ?styx, CN ?= ?styx Intermediate CA/);
    assert.match(text, /Public-Key: \(3072 bit\)/);
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /DNS:moon\.styx\.example, IP Address:192\.0\.2\.1, IP Address:2001:DB8:0:0:0:0:0:1, email:moon@styx\.example/);
    const serial = /Serial Number:\s*\n\s*([0-9a-f:]+)/.exec(text)![1]!.replace(/:/g, '');
    assert.equal(serial, c.serial);
  });

  it('refuses a certificate whose inner and outer signature algorithms differ', async () => {
    const c = await cert('moon');
    // Flip sha256WithRSAEncryption (…01 01 0b) to sha384 (…01 01 0c) in the outer AlgorithmIdentifier only.
    const der = Buffer.from(c.der);
    const outerAlg = der.indexOf(c.signatureAlgorithm.raw, c.tbs.length);
    der[outerAlg + 12] = 0x0c;
    assert.throws(() => Cert.fromDer(der, 'tampered'), (e: unknown) => e instanceof AuthError && e.code === 'ERR_CERT_PARSE' && /differs/.test(e.message));
  });
});
