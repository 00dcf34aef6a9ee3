import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateChain, type ChainOptions } from '../../../src/auth/chain.js';
import { AuthError, type AuthErrorCode } from '../../../src/auth/errors.js';
import { Cert, ExtOid } from '../../../src/auth/x509.js';
import { deriveEcKey, labelSerial, makeCert, makeCrl, type CertSpec } from '../../../src/tools/pki-builder.js';
import { cert, crls, hasOpenssl, key, NOW, openssl, pki } from './pki.js';

const rejectsWith = async (p: Promise<unknown>, code: AuthErrorCode, about?: RegExp): Promise<AuthError> => {
  let err: unknown;
  await assert.rejects(p, (e: unknown) => { err = e; return true; });
  assert.ok(err instanceof AuthError, `expected AuthError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (about) assert.match(err.message, about);
  return err;
};

describe('auth/chain: the test PKI', () => {
  let opts: ChainOptions;
  let inter: Cert;
  before(async () => {
    inter = await cert('intermediate-ca');
    opts = { anchors: [await cert('root-ca')], crls: await crls(), now: NOW };
  });

  for (const [name, keyDesc] of [['moon', 'RSA-3072'], ['sun', 'ECDSA P-256'], ['venus', 'ECDSA P-384'], ['mercury', 'ECDSA P-521']] as const) {
    it(`accepts ${name} (${keyDesc}) via the intermediate, with CRLs`, async () => {
      const leaf = await cert(name);
      const v = await validateChain(leaf, [inter], opts);
      assert.deepEqual(v.path.map((c) => c.subject), [leaf.subject, inter.subject, 'C=CH, O=styx, CN=styx Root CA']);
      assert.equal(v.anchor.subject, 'C=CH, O=styx, CN=styx Root CA');
      assert.deepEqual(v.revocation, ['good', 'good']);
      assert.deepEqual(v.warnings, []);
    });
  }

  it('refuses the revoked certificate, naming it and its serial', async () => {
    const mars = await cert('mars');
    const e = await rejectsWith(validateChain(mars, [inter], opts), 'ERR_CERT_REVOKED', /keyCompromise/);
    assert.equal(e.serial, mars.serial);
    assert.ok(e.message.includes(mars.serial));
    assert.equal(e.cert, 'C=CH, O=styx, CN=mars.styx.example');
  });

  it('accepts the revoked certificate when its CRL is not configured (revocation unknown)', async () => {
    const v = await validateChain(await cert('mars'), [inter], { ...opts, crls: [] });
    assert.deepEqual(v.revocation, ['unknown', 'unknown']);
    await rejectsWith(validateChain(await cert('mars'), [inter], { ...opts, crls: [], requireCrl: true }), 'ERR_CERT_REVOCATION_UNKNOWN');
  });

  it('refuses a host below an intermediate the root revoked, naming the intermediate', async () => {
    const retired = await cert('retired-ca');
    const e = await rejectsWith(validateChain(await cert('neptune'), [retired], opts), 'ERR_CERT_REVOKED', /cessationOfOperation/);
    assert.equal(e.serial, retired.serial);
    assert.equal(e.cert, 'C=CH, O=styx, CN=styx Retired CA');
  });

  it('refuses the expired certificate', async () => {
    await rejectsWith(validateChain(await cert('pluto'), [inter], opts), 'ERR_CERT_EXPIRED', /pluto.*expired 2021-01-01/);
  });

  it('refuses a certificate before its validity', async () => {
    await rejectsWith(validateChain(await cert('moon'), [inter], { ...opts, now: new Date('2024-12-31T23:59:59Z') }), 'ERR_CERT_NOT_YET_VALID');
  });

  it('refuses a certificate without digitalSignature', async () => {
    await rejectsWith(validateChain(await cert('saturn'), [inter], opts), 'ERR_CERT_KEY_USAGE', /saturn.*keyEncipherment, keyAgreement/);
  });

  it('refuses a CA without keyCertSign as issuer', async () => {
    const e = await rejectsWith(validateChain(await cert('titan'), [await cert('nosign-ca')], opts), 'ERR_CERT_KEY_USAGE', /keyCertSign/);
    assert.equal(e.cert, 'C=CH, O=styx, CN=styx No-Sign CA');
  });

  it('applies the IKE extKeyUsage rule only when asked', async () => {
    const io = await cert('io');
    await validateChain(io, [inter], opts);
    await rejectsWith(validateChain(io, [inter], { ...opts, requireIkeEku: true }), 'ERR_CERT_KEY_USAGE', /ipsecIKE/);
    await validateChain(await cert('sun'), [inter], { ...opts, requireIkeEku: true }); // lists ipsecIKE
    await validateChain(await cert('moon'), [inter], { ...opts, requireIkeEku: true }); // no extKeyUsage at all
  });

  it('refuses a certificate from an unknown CA, even with its CA at hand as intermediate', async () => {
    const rogue = await cert('rogue-moon');
    await rejectsWith(validateChain(rogue, [inter], opts), 'ERR_CERT_UNKNOWN_CA', /rogue Root CA/);
    await rejectsWith(validateChain(rogue, [await cert('rogue-ca')], opts), 'ERR_CERT_UNKNOWN_CA');
  });

  it('refuses when the intermediate is missing', async () => {
    await rejectsWith(validateChain(await cert('moon'), [], opts), 'ERR_CERT_UNKNOWN_CA');
  });

  it('trusts the intermediate as an anchor on its own', async () => {
    const v = await validateChain(await cert('sun'), [], { ...opts, anchors: [inter] });
    assert.equal(v.path.length, 2);
  });

  it('accepts a directly trusted end entity', async () => {
    const moon = await cert('moon');
    const v = await validateChain(moon, [], { ...opts, anchors: [moon] });
    assert.equal(v.path.length, 1);
  });

  it('agrees with `openssl verify` on the test PKI', async function () {
    if (!hasOpenssl()) this.skip();
    const verify = (leaf: string, extra: string[] = []): boolean => {
      try { openssl(['verify', ...extra, '-CAfile', pki('root-ca.pem'), '-untrusted', pki('intermediate-ca.pem'), pki(`${leaf}.pem`)]); return true; } catch { return false; }
    };
    const withCrl = ['-crl_check_all', '-CRLfile', pki('intermediate-ca.crl.pem'), '-CRLfile', pki('root-ca.crl.pem')];
    for (const leaf of ['moon', 'sun', 'venus', 'mercury']) {
      assert.equal(verify(leaf, withCrl), true, leaf);
      await validateChain(await cert(leaf), [inter], opts);
    }
    assert.equal(verify('mars', withCrl), false);
    assert.equal(verify('pluto'), false);
    assert.equal(verify('rogue-moon'), false);
  });
});

describe('auth/chain: generated edge cases', () => {
  const FROM = new Date('2025-01-01T00:00:00Z');
  const UNTIL = new Date('2045-01-01T00:00:00Z');
  let rootKey: KeyObject;
  let root: Cert;
  const pub = (k: KeyObject): KeyObject => createPublicKey(k);

  before(() => {
    // An ECDSA hierarchy, so chain signatures of that kind are exercised too.
    rootKey = deriveEcKey('P-384', 'edge-root');
    root = makeCert({ subject: 'C=CH, O=styx, CN=edge root', publicKey: pub(rootKey), signingKey: rootKey, serial: labelSerial('edge-root'), notBefore: FROM, notAfter: UNTIL, ca: true, keyUsage: ['keyCertSign', 'cRLSign'] });
  });

  const sub = (label: string, issuer: Cert, issuerKey: KeyObject, more: Partial<CertSpec> = {}): { cert: Cert; key: KeyObject } => {
    const k = deriveEcKey('P-256', label);
    const c = makeCert({
      subject: `C=CH, O=styx, CN=${label}`, publicKey: pub(k), issuer, signingKey: issuerKey, serial: labelSerial(label),
      notBefore: FROM, notAfter: UNTIL, keyUsage: ['digitalSignature'], ...more,
    });
    return { cert: c, key: k };
  };
  const base = (): ChainOptions => ({ anchors: [root], crls: [], now: NOW });

  it('accepts an ECDSA-signed chain of three', async () => {
    const i = sub('edge-int', root, rootKey, { ca: true, keyUsage: ['keyCertSign', 'cRLSign'] });
    const leaf = sub('edge-leaf', i.cert, i.key);
    const v = await validateChain(leaf.cert, [i.cert], base());
    assert.equal(v.path.length, 3);
  });

  it('agrees with `openssl verify` on an ECDSA-signed chain', async function () {
    if (!hasOpenssl()) this.skip();
    const i = sub('edge-int', root, rootKey, { ca: true, keyUsage: ['keyCertSign', 'cRLSign'] });
    const leaf = sub('edge-leaf', i.cert, i.key);
    const dir = mkdtempSync(join(tmpdir(), 'styx-chain-'));
    writeFileSync(join(dir, 'root.pem'), root.toPem());
    writeFileSync(join(dir, 'int.pem'), i.cert.toPem());
    writeFileSync(join(dir, 'leaf.pem'), leaf.cert.toPem());
    assert.match(openssl(['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'int.pem'), join(dir, 'leaf.pem')]), /leaf\.pem: OK/);
  });

  it('refuses an issuer that is not a CA', async () => {
    const notCa = sub('edge-notca', root, rootKey, { keyUsage: ['digitalSignature', 'keyCertSign'] });
    const leaf = sub('edge-below-notca', notCa.cert, notCa.key);
    await rejectsWith(validateChain(leaf.cert, [notCa.cert], base()), 'ERR_CERT_NOT_CA', /edge-notca/);
  });

  it('enforces pathLenConstraint', async () => {
    const i1 = sub('edge-pl0', root, rootKey, { ca: true, pathLen: 0, keyUsage: ['keyCertSign'] });
    const i2 = sub('edge-pl-below', i1.cert, i1.key, { ca: true, keyUsage: ['keyCertSign'] });
    const leaf = sub('edge-pl-leaf', i2.cert, i2.key);
    await rejectsWith(validateChain(leaf.cert, [i1.cert, i2.cert], base()), 'ERR_CERT_PATH_LENGTH', /edge-pl0/);
    const ok1 = sub('edge-pl1', root, rootKey, { ca: true, pathLen: 1, keyUsage: ['keyCertSign'] });
    const ok2 = sub('edge-pl1-below', ok1.cert, ok1.key, { ca: true, keyUsage: ['keyCertSign'] });
    const leaf2 = sub('edge-pl1-leaf', ok2.cert, ok2.key);
    await validateChain(leaf2.cert, [ok1.cert, ok2.cert], base());
  });

  it('refuses unprocessed critical extensions, and name constraints', async () => {
    const odd = sub('edge-critical', root, rootKey, { extra: [['1.3.6.1.4.1.99999.1', true, Buffer.from([0x05, 0x00])]] });
    await rejectsWith(validateChain(odd.cert, [], base()), 'ERR_CERT_CRITICAL_EXTENSION', /1\.3\.6\.1\.4\.1\.99999\.1/);
    const benign = sub('edge-noncritical', root, rootKey, { extra: [['1.3.6.1.4.1.99999.1', false, Buffer.from([0x05, 0x00])]] });
    await validateChain(benign.cert, [], base());
    // permittedSubtrees [0] { GeneralSubtree { dNSName "styx.example" } }
    const nc = Buffer.from('3012a010300e820c737479782e6578616d706c65', 'hex');
    const ca = sub('edge-nc', root, rootKey, { ca: true, keyUsage: ['keyCertSign'], extra: [[ExtOid.nameConstraints, true, nc]] });
    const leaf = sub('edge-nc-leaf', ca.cert, ca.key);
    await rejectsWith(validateChain(leaf.cert, [ca.cert], base()), 'ERR_CERT_CRITICAL_EXTENSION', /name constraints/);
  });

  it('reports a signature that does not verify', async () => {
    const leaf = sub('edge-sig', root, rootKey);
    const der = Buffer.from(leaf.cert.der);
    der[der.length - 5]! ^= 0x01; // inside the ECDSA signature value
    const tampered = Cert.fromDer(der);
    await rejectsWith(validateChain(tampered, [], base()), 'ERR_SIGNATURE', /edge-sig/);
    // A certificate signed by a different key under the root's name.
    const impostorKey = deriveEcKey('P-384', 'edge-impostor');
    const forged = makeCert({ subject: 'C=CH, O=styx, CN=forged', publicKey: pub(deriveEcKey('P-256', 'forged')), issuer: root, signingKey: impostorKey, serial: labelSerial('forged'), notBefore: FROM, notAfter: UNTIL });
    await rejectsWith(validateChain(forged, [], base()), 'ERR_SIGNATURE');
  });

  it('refuses SHA-1 certificate signatures unless allowed, and says so', async () => {
    const leaf = sub('edge-sha1', root, rootKey, { sigHash: 'sha1' });
    assert.equal(leaf.cert.signatureAlgorithm.oid, '1.2.840.10045.4.1');
    await rejectsWith(validateChain(leaf.cert, [], base()), 'ERR_SIGNATURE', /SHA-1 signature refused/);
    await validateChain(leaf.cert, [], { ...base(), allowSha1: true });
  });

  it('uses only CRLs that verify with the issuer key, and counts a stale CRL as unknown', async () => {
    const leaf = sub('edge-crl-leaf', root, rootKey);
    const revoke = [{ serial: leaf.cert.serial, date: FROM, reason: 1 }];
    const forged = makeCrl({ issuer: root, signingKey: deriveEcKey('P-384', 'edge-impostor'), thisUpdate: FROM, nextUpdate: UNTIL, crlNumber: 1, revoked: revoke });
    const v = await validateChain(leaf.cert, [], { ...base(), crls: [forged] });
    assert.deepEqual(v.revocation, ['unknown']);
    assert.match(v.warnings.join('\n'), /does not verify/);
    const genuine = makeCrl({ issuer: root, signingKey: rootKey, thisUpdate: FROM, nextUpdate: UNTIL, crlNumber: 2, revoked: revoke });
    await rejectsWith(validateChain(leaf.cert, [], { ...base(), crls: [forged, genuine] }), 'ERR_CERT_REVOKED');
    const stale = makeCrl({ issuer: root, signingKey: rootKey, thisUpdate: FROM, nextUpdate: new Date('2026-01-01T00:00:00Z'), crlNumber: 3, revoked: [] });
    const s = await validateChain(leaf.cert, [], { ...base(), crls: [stale] });
    assert.deepEqual(s.revocation, ['unknown']);
    assert.match(s.warnings.join('\n'), /stale/);
    await rejectsWith(validateChain(leaf.cert, [], { ...base(), crls: [stale], requireCrl: true }), 'ERR_CERT_REVOCATION_UNKNOWN');
    // A revoked entry on a stale CRL still counts.
    const staleRevoking = makeCrl({ issuer: root, signingKey: rootKey, thisUpdate: FROM, nextUpdate: new Date('2026-01-01T00:00:00Z'), crlNumber: 4, revoked: revoke });
    await rejectsWith(validateChain(leaf.cert, [], { ...base(), crls: [staleRevoking] }), 'ERR_CERT_REVOKED');
  });

  it('checks the anchor validity too', async () => {
    const oldRootKey = deriveEcKey('P-256', 'edge-old-root');
    const oldRoot = makeCert({ subject: 'C=CH, O=styx, CN=old root', publicKey: pub(oldRootKey), signingKey: oldRootKey, serial: labelSerial('old'), notBefore: FROM, notAfter: new Date('2026-01-01T00:00:00Z'), ca: true, keyUsage: ['keyCertSign'] });
    const leaf = sub('edge-old-leaf', oldRoot, oldRootKey);
    await rejectsWith(validateChain(leaf.cert, [], { ...base(), anchors: [oldRoot] }), 'ERR_CERT_EXPIRED', /old root/);
  });

  it('finds the committed moon key matching the committed moon certificate', async () => {
    const k = await key('moon');
    assert.ok(createPublicKey(k).equals((await cert('moon')).publicKey));
  });
});
