import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, getDiffieHellman } from 'node:crypto';
import { createKeyExchange, dhInfo, dhName, supportedDhGroups } from '../../../src/crypto/index.js';
import { MalformedError, UnsupportedError } from '../../../src/util/errors.js';
import { DhId } from '../../../src/wire/ikev2/constants.js';

const ALL_GROUPS = [DhId.MODP_1024, DhId.MODP_2048, DhId.MODP_3072, DhId.MODP_4096, DhId.ECP_256, DhId.ECP_384, DhId.ECP_521, DhId.CURVE25519];

/** RFC 7296 2.14 (MODP: prime length), RFC 5903 7 (ECP: x only), RFC 8031 (32). */
const SECRET_BYTES: Record<number, number> = { 2: 128, 14: 256, 15: 384, 16: 512, 19: 32, 20: 48, 21: 66, 31: 32 };

const b64u = (b: Buffer): string => b.toString('base64url');

describe('crypto/dh: key exchange', () => {
  it('supportedDhGroups lists the negotiable groups, without MODP_1024', () => {
    assert.deepEqual([...supportedDhGroups].sort((a, b) => a - b), [14, 15, 16, 19, 20, 21, 31]);
    assert.ok(dhInfo(DhId.MODP_1024).legacy);
    assert.equal(dhName(DhId.CURVE25519), 'CURVE_25519');
    assert.equal(dhName(DhId.ECP_384), 'ECP_384');
  });

  it('unknown groups throw UnsupportedError', () => {
    for (const g of [0, 1, 5, 24, 99]) assert.throws(() => createKeyExchange(g), UnsupportedError, `group ${g}`);
  });

  for (const g of ALL_GROUPS) {
    describe(dhName(g), () => {
      const a = createKeyExchange(g);
      const b = createKeyExchange(g);

      it('both sides agree, at the RFC lengths', () => {
        assert.equal(a.group, g);
        assert.equal(a.publicValue.length, dhInfo(g).publicBytes);
        assert.notDeepEqual(a.publicValue, b.publicValue);
        const s1 = a.computeSecret(b.publicValue);
        const s2 = b.computeSecret(a.publicValue);
        assert.deepEqual(s1, s2);
        assert.equal(s1.length, SECRET_BYTES[g]);
      });

      it('a peer value of the wrong length is MalformedError', () => {
        assert.throws(() => a.computeSecret(b.publicValue.subarray(1)), MalformedError);
        assert.throws(() => a.computeSecret(Buffer.concat([b.publicValue, Buffer.alloc(1)])), MalformedError);
        assert.throws(() => a.computeSecret(Buffer.alloc(0)), MalformedError);
      });

      it('replaying a private key gives the same public value', () => {
        // 32 octets is a valid exponent / scalar for every group here.
        const priv = Buffer.alloc(32, 0x5a);
        const x = createKeyExchange(g, priv);
        const y = createKeyExchange(g, priv);
        assert.deepEqual(x.publicValue, y.publicValue);
        assert.deepEqual(x.computeSecret(b.publicValue), b.computeSecret(y.publicValue));
      });
    });
  }

  describe('MODP peer value checks (1 < y < p-1)', () => {
    for (const [g, name] of [[DhId.MODP_1024, 'modp2'], [DhId.MODP_2048, 'modp14']] as const) {
      it(dhName(g), () => {
        const p = getDiffieHellman(name).getPrime();
        const ke = createKeyExchange(g);
        const n = p.length;
        const small = (v: number): Buffer => { const b = Buffer.alloc(n); b[n - 1] = v; return b; };
        const pMinus = (v: number): Buffer => { const b = Buffer.from(p); b[n - 1]! -= v; return b; };
        for (const bad of [small(0), small(1), pMinus(1), Buffer.from(p), Buffer.alloc(n, 0xff)]) {
          assert.throws(() => ke.computeSecret(bad), MalformedError);
        }
        // The values just inside the range are accepted.
        assert.equal(ke.computeSecret(small(2)).length, n);
        assert.equal(ke.computeSecret(pMinus(2)).length, n);
      });
    }
  });

  describe('ECP (RFC 5903)', () => {
    const curves = [[DhId.ECP_256, 'P-256', 32], [DhId.ECP_384, 'P-384', 48], [DhId.ECP_521, 'P-521', 66]] as const;
    for (const [g, crv, coord] of curves) {
      it(`${dhName(g)}: KE data is x || y of ${coord} octets each; the secret is x alone`, () => {
        const priv = generateKeyPairSync('ec', { namedCurve: crv }).privateKey.export({ format: 'jwk' });
        const peer = generateKeyPairSync('ec', { namedCurve: crv }).privateKey.export({ format: 'jwk' });
        if (!priv.d || !peer.x || !peer.y) throw new Error('jwk export');
        const ke = createKeyExchange(g, Buffer.from(priv.d, 'base64url'));
        assert.equal(ke.publicValue.length, 2 * coord);
        assert.equal(b64u(ke.publicValue.subarray(0, coord)), priv.x);
        assert.equal(b64u(ke.publicValue.subarray(coord)), priv.y);
        // Independent path: OpenSSL key objects built from JWK coordinates.
        const expected = diffieHellman({
          privateKey: createPrivateKey({ key: priv, format: 'jwk' }),
          publicKey: createPublicKey({ key: { kty: 'EC', crv, x: peer.x, y: peer.y }, format: 'jwk' }),
        });
        const peerValue = Buffer.concat([Buffer.from(peer.x, 'base64url'), Buffer.from(peer.y, 'base64url')]);
        assert.deepEqual(ke.computeSecret(peerValue), expected);
        assert.equal(expected.length, coord);
      });

      it(`${dhName(g)}: a point off the curve is MalformedError`, () => {
        const ke = createKeyExchange(g);
        const other = Buffer.from(createKeyExchange(g).publicValue);
        other[other.length - 1]! ^= 0x01;
        assert.throws(() => ke.computeSecret(other), MalformedError);
        assert.throws(() => ke.computeSecret(Buffer.alloc(2 * coord)), MalformedError);
      });
    }
  });

  describe('Curve25519 (RFC 8031)', () => {
    it('the public value is the raw 32-octet u-coordinate', () => {
      const jwk = generateKeyPairSync('x25519').privateKey.export({ format: 'jwk' });
      if (!jwk.d || !jwk.x) throw new Error('jwk export');
      const ke = createKeyExchange(DhId.CURVE25519, Buffer.from(jwk.d, 'base64url'));
      assert.equal(b64u(ke.publicValue), jwk.x);
    });

    it('low-order peer values (all-zero secret) are MalformedError', () => {
      const ke = createKeyExchange(DhId.CURVE25519);
      const one = Buffer.alloc(32);
      one[0] = 1; // u = 1, little-endian
      for (const bad of [Buffer.alloc(32), one]) assert.throws(() => ke.computeSecret(bad), MalformedError);
    });

    it('a private key of the wrong size is MalformedError', () => {
      assert.throws(() => createKeyExchange(DhId.CURVE25519, Buffer.alloc(31, 1)), MalformedError);
    });
  });
});
