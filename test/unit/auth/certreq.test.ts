import assert from 'node:assert/strict';
import { MalformedError } from '../../../src/util/errors.js';
import { caKeyHash, certsToSend, decodeCertReq, encodeCertReq, matchCertReq } from '../../../src/auth/certreq.js';
import { cert, hasOpenssl, openssl, pki } from './pki.js';
import { execFileSync } from 'node:child_process';

describe('auth/certreq', () => {
  it('hashes the SubjectPublicKeyInfo of a known CA key with SHA-1', async () => {
    // Computed once with: openssl x509 -in root-ca.pem -pubkey -noout | openssl pkey -pubin -outform DER | openssl sha1
    assert.equal(caKeyHash(await cert('root-ca')).toString('hex'), '611e2f75da0d469b59a646cd954cfc66c2709db9');
    assert.equal(caKeyHash(await cert('intermediate-ca')).toString('hex'), '7d2cb1f6a19d5c7c468beb5ab7db83abcd95dc93');
  });

  it('agrees with OpenSSL on the key hash', async function () {
    if (!hasOpenssl()) this.skip();
    const pem = openssl(['x509', '-in', pki('venus.pem'), '-pubkey', '-noout']);
    const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'DER'], { input: pem });
    const sha1 = execFileSync('openssl', ['sha1', '-r'], { input: der }).toString().split(' ')[0];
    assert.equal(caKeyHash(await cert('venus')).toString('hex'), sha1);
  });

  it('concatenates hashes, dropping duplicates, and splits them back', async () => {
    const root = await cert('root-ca');
    const inter = await cert('intermediate-ca');
    const data = encodeCertReq([root, inter, root]);
    assert.equal(data.length, 40);
    assert.equal(data.toString('hex'), caKeyHash(root).toString('hex') + caKeyHash(inter).toString('hex'));
    assert.deepEqual(decodeCertReq(data).map((h) => h.toString('hex')), [caKeyHash(root), caKeyHash(inter)].map((h) => h.toString('hex')));
    assert.deepEqual(decodeCertReq(Buffer.alloc(0)), []);
    assert.throws(() => decodeCertReq(Buffer.alloc(21)), (e: unknown) => e instanceof MalformedError);
  });

  it('matches a CERTREQ against our chain and picks what to send', async () => {
    const moon = await cert('moon');
    const inter = await cert('intermediate-ca');
    const root = await cert('root-ca');
    const chain = [moon, inter, root];
    // Peer trusts the root: send leaf and intermediate.
    assert.equal(matchCertReq(decodeCertReq(encodeCertReq([root])), chain)?.index, 2);
    assert.deepEqual(certsToSend(chain, decodeCertReq(encodeCertReq([root]))).map((c) => c.subject), [moon.subject, inter.subject]);
    // Peer trusts the intermediate: the leaf is enough.
    assert.deepEqual(certsToSend(chain, decodeCertReq(encodeCertReq([root, inter]))).map((c) => c.subject), [moon.subject]);
    // Peer trusts only a CA we do not chain to: no match; send all but the self-signed root.
    const rogue = decodeCertReq(encodeCertReq([await cert('rogue-ca')]));
    assert.equal(matchCertReq(rogue, chain), undefined);
    assert.deepEqual(certsToSend(chain, rogue).map((c) => c.subject), [moon.subject, inter.subject]);
    assert.deepEqual(certsToSend(chain, []).map((c) => c.subject), [moon.subject, inter.subject]);
    // The leaf's own key never counts as a CA match.
    assert.equal(matchCertReq([caKeyHash(moon)], chain), undefined);
  });
});
