/**
 * The signature primitives of IKEv1 phase 1 (src/ike/v1/sig.ts) checked
 * against node:crypto: ECDSA over a given digest on P-256/384/521 signs what
 * node:crypto verifies and verifies what it signs; the RSA signature is
 * PKCS#1 v1.5 type 1 padding around the bare hash, no DigestInfo; a key of
 * the wrong kind for the method is refused as such. Also the authentication
 * method a connection's key makes and the certificates sent for a CR.
 */
import assert from 'node:assert/strict';
import { constants, createHash, generateKeyPairSync, publicDecrypt, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cert, isAuthError, parsePrivateKey } from '../../../src/auth/index.js';
import { parseConfig } from '../../../src/config/index.js';
import { authMethodOf, certsForPeer, ecdsaForTests, signHash, verifyHash } from '../../../src/ike/v1/sig.js';
import { V1AuthMethod } from '../../../src/wire/ikev1/index.js';

const PKI = fileURLToPath(new URL('../../../../certs/pki/', import.meta.url));
const pki = (f: string): string => join(PKI, f);
const cert = (name: string): Cert => Cert.fromPem(readFileSync(pki(`${name}.pem`), 'utf8'), `${name}.pem`);
const key = (name: string) => parsePrivateKey(readFileSync(pki(`${name}.key.pem`)), `${name}.key.pem`);

const CURVES = [['P-256', 'sha256', 32], ['P-384', 'sha384', 48], ['P-521', 'sha512', 66]] as const;

describe('ike/v1 signature primitives', function () {
  this.timeout(20_000);

  for (const [curve, hash, half] of CURVES) {
    it(`ECDSA ${curve}: a raw-digest signature verifies in node:crypto and node:crypto's verifies here`, () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      for (let i = 0; i < 4; i++) {
        const msg = Buffer.from(`message ${i} for ${curve}`);
        const digest = createHash(hash).update(msg).digest();
        // node:crypto hashes the message itself; signing its digest here must give what it accepts.
        const ours = ecdsaForTests.sign(curve, privateKey, digest);
        assert.equal(ours.length, 2 * half, 'r || s, each the curve size (RFC 4754 7)');
        assert.ok(nodeVerify(hash, msg, { key: publicKey, dsaEncoding: 'ieee-p1363' }, ours));
        const theirs = nodeSign(hash, msg, { key: privateKey, dsaEncoding: 'ieee-p1363' });
        assert.ok(ecdsaForTests.verify(curve, publicKey, digest, theirs));
        // A changed digest, a changed signature or another key fail.
        const other = Buffer.from(digest); other[0]! ^= 1;
        assert.equal(ecdsaForTests.verify(curve, publicKey, other, theirs), false);
        const bad = Buffer.from(theirs); bad[bad.length - 1]! ^= 1;
        assert.equal(ecdsaForTests.verify(curve, publicKey, digest, bad), false);
        assert.equal(ecdsaForTests.verify(curve, generateKeyPairSync('ec', { namedCurve: curve }).publicKey, digest, theirs), false);
        assert.equal(ecdsaForTests.verify(curve, publicKey, digest, theirs.subarray(1)), false);
      }
    });

  }

  it('a digest shorter than the order (SHA-256 on P-384) and longer (SHA-512 on P-256) sign and verify', () => {
    for (const [curve, hash] of [['P-384', 'sha256'], ['P-256', 'sha512']] as const) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const d = createHash(hash).update('x').digest();
      assert.ok(ecdsaForTests.verify(curve, publicKey, d, ecdsaForTests.sign(curve, privateKey, d)));
      assert.ok(nodeVerify(hash, Buffer.from('x'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, ecdsaForTests.sign(curve, privateKey, d)));
    }
  });

  it('RSA: PKCS#1 v1.5 type 1 padding around the bare HASH, no DigestInfo, and it verifies against the certificate', () => {
    const hash = createHash('sha256').update('HASH_I').digest();
    const sig = signHash(V1AuthMethod.RSA_SIGNATURES, key('moon'), hash);
    assert.equal(sig.length, 384, 'RSA-3072');
    const moon = cert('moon');
    assert.deepEqual(publicDecrypt({ key: moon.publicKey, padding: constants.RSA_PKCS1_PADDING }, sig), hash);
    const raw = publicDecrypt({ key: moon.publicKey, padding: constants.RSA_NO_PADDING }, sig);
    assert.equal(raw.subarray(0, 2).toString('hex'), '0001');
    assert.equal(raw.length - raw.lastIndexOf(0) - 1, hash.length, 'the hash follows the zero separator directly');
    assert.ok(verifyHash(V1AuthMethod.RSA_SIGNATURES, moon, hash, sig));
    assert.equal(verifyHash(V1AuthMethod.RSA_SIGNATURES, moon, Buffer.alloc(32), sig), false);
    assert.equal(verifyHash(V1AuthMethod.RSA_SIGNATURES, moon, hash, sig.subarray(1)), false);
    assert.equal(verifyHash(V1AuthMethod.RSA_SIGNATURES, moon, hash, Buffer.alloc(384)), false);
  });

  it('ECDSA methods 9-11 with the certificates of the test PKI, and keys that do not fit the method refused as such', () => {
    for (const [name, method] of [['sun', V1AuthMethod.ECDSA_SHA256_P256], ['venus', V1AuthMethod.ECDSA_SHA384_P384], ['mercury', V1AuthMethod.ECDSA_SHA512_P521]] as const) {
      const h = createHash('sha512').update(name).digest().subarray(0, name === 'sun' ? 32 : name === 'venus' ? 48 : 64);
      assert.ok(verifyHash(method, cert(name), h, signHash(method, key(name), h)), name);
    }
    const h = Buffer.alloc(32, 7);
    assert.throws(() => verifyHash(V1AuthMethod.RSA_SIGNATURES, cert('sun'), h, Buffer.alloc(64)), (e: unknown) => isAuthError(e, 'ERR_SIGNATURE_SCHEME') && /ecdsa P-256 key; the negotiated RSA signatures need RSA/.test(e.message));
    assert.throws(() => verifyHash(V1AuthMethod.ECDSA_SHA384_P384, cert('sun'), h, Buffer.alloc(96)), (e: unknown) => isAuthError(e, 'ERR_SIGNATURE_SCHEME') && /need ECDSA P-384/.test(e.message));
    assert.throws(() => signHash(V1AuthMethod.ECDSA_SHA256_P256, key('moon'), h), (e: unknown) => isAuthError(e, 'ERR_SIGNATURE_SCHEME'));
    assert.throws(() => signHash(V1AuthMethod.RSA_SIGNATURES, key('sun'), h), (e: unknown) => isAuthError(e, 'ERR_SIGNATURE_SCHEME'));
  });

  it('the authentication method follows the local key; IKEv1 cannot mix PSK with certificates', () => {
    const conf = (local: string, remote: string): string => `
connections:
  c:
    version: 1
    local_addrs: [192.0.2.1]
    remote_addrs: [192.0.2.2]
    local: ${local}
    remote: ${remote}
secrets:
  - { ids: [a.example], psk: "x" }
`;
    const remote = `{ auth: pubkey, cacerts: [${pki('ca-bundle.pem')}] }`;
    const method = (local: string, r = remote): number => authMethodOf(parseConfig(conf(local, r), 't.yaml').connections[0]!);
    const local = (n: string): string => `{ auth: pubkey, cert: ${pki(`${n}.pem`)}, key: ${pki(`${n}.key.pem`)} }`;
    assert.equal(method(local('moon')), V1AuthMethod.RSA_SIGNATURES);
    assert.equal(method(local('sun')), V1AuthMethod.ECDSA_SHA256_P256);
    assert.equal(method(local('venus')), V1AuthMethod.ECDSA_SHA384_P384);
    assert.equal(method(local('mercury')), V1AuthMethod.ECDSA_SHA512_P521);
    assert.equal(method('{ auth: psk, id: a.example }', '{ auth: psk, id: b.example }'), V1AuthMethod.PRE_SHARED_KEY);
    assert.throws(() => method('{ auth: psk, id: a.example }'), /IKEv1 authenticates both peers with the one method .* local psk with remote pubkey cannot be expressed/);
  });

  it('sends the certificates below the CA a CR named, else the leaf and its intermediates but never a root', () => {
    const moon = cert('moon'), inter = cert('intermediate-ca'), root = cert('root-ca');
    const chain = [moon, inter, root];
    assert.deepEqual(certsForPeer(chain, [root.subjectDer]), [moon, inter]);
    assert.deepEqual(certsForPeer(chain, [inter.subjectDer, root.subjectDer]), [moon]);
    assert.deepEqual(certsForPeer(chain, []), [moon, inter]);
    assert.deepEqual(certsForPeer(chain, [Buffer.alloc(0)]), [moon, inter]);
    assert.deepEqual(certsForPeer(chain, [cert('rogue-ca').subjectDer]), [moon, inter]);
  });
});
