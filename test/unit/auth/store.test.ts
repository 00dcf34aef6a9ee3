import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertStore } from '../../../src/auth/store.js';
import { AuthError } from '../../../src/auth/errors.js';
import { caKeyHash, decodeCertReq } from '../../../src/auth/certreq.js';
import { verify } from '../../../src/auth/signer.js';
import { cert, NOW, PKI } from './pki.js';

describe('auth/store', () => {
  it('loads a connection\'s files relative to a base directory and validates a peer', async () => {
    const store = await CertStore.load({
      baseDir: PKI, cert: 'moon.chain.pem', key: 'moon.key.pkcs1.pem', cas: ['root-ca.pem'], crls: ['intermediate-ca.crl.der', 'root-ca.crl.pem'],
    });
    assert.equal(store.local?.subject, 'C=CH, O=styx, CN=moon.styx.example');
    assert.deepEqual(store.intermediates.map((c) => c.subject), ['C=CH, O=styx, CN=styx Intermediate CA']);
    assert.equal(store.anchors.length, 1);
    assert.equal(store.crls.length, 2);
    const chain = await store.localChain(NOW);
    assert.equal(chain.length, 3);
    // Peer sun sends only its certificate; the intermediate comes from our store.
    const v = await store.validatePeer(await cert('sun'), [], NOW);
    assert.equal(v.anchor.subject, 'C=CH, O=styx, CN=styx Root CA');
    await assert.rejects(store.validatePeer(await cert('mars'), [], NOW), (e: unknown) => e instanceof AuthError && e.code === 'ERR_CERT_REVOKED');
    assert.deepEqual(decodeCertReq(store.certReq()).map((h) => h.toString('hex')), [caKeyHash(store.anchors[0]!).toString('hex')]);
    const data = Buffer.from('octets');
    const signer = store.signer();
    assert.equal(verify(store.local!.publicKey, data, await signer.sign(data, 'rsa-pss-sha256'), 'rsa-pss-sha256'), true);
  });

  it('refuses a key that does not belong to the certificate', async () => {
    await assert.rejects(
      CertStore.load({ baseDir: PKI, cert: 'moon.pem', key: 'sun.key.pem' }),
      (e: unknown) => e instanceof AuthError && e.code === 'ERR_KEY_MISMATCH' && /sun\.key\.pem/.test(e.message) && /moon\.pem/.test(e.message),
    );
  });

  it('reads CA and CRL directories', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'styx-store-'));
    copyFileSync(join(PKI, 'root-ca.pem'), join(dir, 'a-root.pem'));
    copyFileSync(join(PKI, 'rogue-ca.pem'), join(dir, 'b-rogue.crt'));
    writeFileSync(join(dir, 'README'), 'not a certificate');
    const store = await CertStore.load({ cas: [dir] });
    assert.deepEqual(store.anchors.map((c) => c.subject), ['C=CH, O=styx, CN=styx Root CA', 'C=CH, O=rogue, CN=rogue Root CA']);
    await assert.rejects(CertStore.load({ cas: [join(dir, 'nope')] }), (e: unknown) => e instanceof AuthError && e.code === 'ERR_LOAD');
  });

  it('lists certificates with subject, issuer, validity and status', async () => {
    const store = await CertStore.load({
      baseDir: PKI, cert: 'moon.pem', key: 'moon.key.pem', cas: ['root-ca.pem', 'rogue-ca.pem'],
      intermediates: ['intermediate-ca.pem', 'retired-ca.pem', 'mars.pem', 'pluto.pem', 'rogue-moon.pem'], crls: ['intermediate-ca.crl.pem', 'root-ca.crl.pem'],
    });
    const { certs, crls } = await store.list(NOW);
    const by = new Map(certs.map((c) => [`${c.role}:${c.subject}`, c]));
    const moon = by.get('local:C=CH, O=styx, CN=moon.styx.example')!;
    assert.equal(moon.status, 'valid');
    assert.equal(moon.issuer, 'C=CH, O=styx, CN=styx Intermediate CA');
    assert.equal(moon.notBefore, '2025-01-01T00:00:00.000Z');
    assert.equal(moon.notAfter, '2045-01-01T00:00:00.000Z');
    assert.equal(moon.key, 'RSA-3072');
    assert.deepEqual(moon.altNames, ['DNS:moon.styx.example', 'IP:192.0.2.1', 'IP:2001:db8::1', 'email:moon@styx.example']);
    assert.equal(by.get('intermediate:C=CH, O=styx, CN=styx Intermediate CA')!.status, 'valid');
    assert.equal(by.get('intermediate:C=CH, O=styx, CN=styx Retired CA')!.status, 'revoked');
    assert.equal(by.get('intermediate:C=CH, O=styx, CN=mars.styx.example')!.status, 'revoked');
    const pluto = by.get('intermediate:C=CH, O=styx, CN=pluto.styx.example')!;
    assert.equal(pluto.status, 'expired');
    assert.match(pluto.detail!, /expired/);
    assert.equal(by.get('ca:C=CH, O=rogue, CN=rogue Root CA')!.status, 'valid');
    // rogue-moon chains to the rogue root, which this store trusts: listed as valid; without it, untrusted.
    assert.equal(certs.filter((c) => c.subject === 'C=CH, O=styx, CN=moon.styx.example' && c.role === 'intermediate')[0]!.status, 'valid');
    const narrow = await CertStore.load({ baseDir: PKI, cas: ['root-ca.pem'], intermediates: ['rogue-moon.pem'] });
    assert.equal((await narrow.list(NOW)).certs.find((c) => c.role === 'intermediate')!.status, 'untrusted');
    assert.deepEqual(crls.map((c) => [c.issuer, c.revoked, c.status, c.crlNumber]), [
      ['C=CH, O=styx, CN=styx Intermediate CA', 1, 'current', '1'],
      ['C=CH, O=styx, CN=styx Root CA', 1, 'current', '1'],
    ]);
    assert.equal((await store.list(new Date('2046-01-01T00:00:00Z'))).crls[0]!.status, 'stale');
    assert.equal(JSON.parse(JSON.stringify(certs)).length, certs.length);
  });
});
