import assert from 'node:assert/strict';
import { getPrf, integIcv, integIcvBytes, integKeyBytes, prfPlus, prfName, integName } from '../../../src/crypto/index.js';
import { UnsupportedError } from '../../../src/util/errors.js';
import { IntegId, PrfId } from '../../../src/wire/ikev2/constants.js';
import { asArray, asRecord, fixtureJson, fixtureText, hexField, kvHex, parseKeyValue, str } from './fixtures.js';

const PRF_BY_NAME: Record<string, number> = {
  PRF_HMAC_SHA2_256: PrfId.PRF_HMAC_SHA2_256,
  PRF_HMAC_SHA2_384: PrfId.PRF_HMAC_SHA2_384,
  PRF_HMAC_SHA2_512: PrfId.PRF_HMAC_SHA2_512,
};
const INTEG_BY_NAME: Record<string, number> = {
  AUTH_HMAC_SHA2_256_128: IntegId.AUTH_HMAC_SHA2_256_128,
  AUTH_HMAC_SHA2_384_192: IntegId.AUTH_HMAC_SHA2_384_192,
  AUTH_HMAC_SHA2_512_256: IntegId.AUTH_HMAC_SHA2_512_256,
};

function lookup(table: Record<string, number>, name: string): number {
  const id = table[name];
  if (id === undefined) throw new Error(`unknown algorithm ${name} in fixture`);
  return id;
}

describe('crypto/prf: RFC 4868 HMAC-SHA2 PRFs and ICVs', () => {
  const vectors = asArray(fixtureJson('strongswan-sha2_hmac.json')).map((v) => asRecord(v));
  const prfVectors = vectors.filter((v) => str(v, 'type') === 'prf_test_vector_t');
  const icvVectors = vectors.filter((v) => str(v, 'type') === 'signer_test_vector_t');

  it('has both kinds of vectors', () => {
    assert.equal(prfVectors.length, 15);
    assert.equal(icvVectors.length, 9);
  });

  for (const v of prfVectors) {
    it(`PRF ${str(v, 'name')}`, () => {
      const prf = getPrf(lookup(PRF_BY_NAME, str(v, 'alg')));
      assert.equal(prf.compute(hexField(v, 'key'), hexField(v, 'data')).toString('hex'), str(v, 'out'));
    });
  }

  for (const v of icvVectors) {
    it(`ICV ${str(v, 'name')}`, () => {
      const id = lookup(INTEG_BY_NAME, str(v, 'alg'));
      const icv = integIcv(id, hexField(v, 'key'), hexField(v, 'data'));
      assert.equal(icv.length, integIcvBytes(id));
      assert.equal(icv.toString('hex'), str(v, 'icv'));
      // RFC 4868 2.1.1 keys are the full hash length.
      assert.equal(hexField(v, 'key').length, integKeyBytes(id));
    });
  }
});

describe('crypto/prf: prf+ (RFC 7296 2.13)', () => {
  const vectors = parseKeyValue(fixtureText('strongswan-kdf_prf_plus-cavp.txt'), 'name');

  it('has the SHA-256/384/512 vectors', () => assert.equal(vectors.length, 7));

  for (const v of vectors) {
    it(`prf+ ${v.get('name')}`, () => {
      const prf = getPrf(lookup(PRF_BY_NAME, v.get('prf') ?? ''));
      const len = Number(v.get('out_len'));
      const out = prf.plus(kvHex(v, 'key'), kvHex(v, 'salt'), len);
      assert.equal(out.toString('hex'), kvHex(v, 'out').toString('hex'));
      // A shorter request is a prefix: the split into keys relies on that.
      assert.deepEqual(prf.plus(kvHex(v, 'key'), kvHex(v, 'salt'), 17), kvHex(v, 'out').subarray(0, 17));
    });
  }

  it('refuses more than 255 blocks', () => {
    const prf = getPrf(PrfId.PRF_HMAC_SHA1);
    assert.equal(prf.plus(Buffer.alloc(20), Buffer.alloc(4), 255 * 20).length, 255 * 20);
    assert.throws(() => prf.plus(Buffer.alloc(20), Buffer.alloc(4), 255 * 20 + 1), UnsupportedError);
  });

  it('prfPlus with a PRF compute function matches Prf.plus', () => {
    const prf = getPrf(PrfId.PRF_HMAC_SHA2_256);
    const k = Buffer.from('0b'.repeat(20), 'hex');
    const s = Buffer.from('4869205468657265', 'hex');
    assert.deepEqual(prfPlus((a, b) => prf.compute(a, b), prf.outputLength, k, s, 100), prf.plus(k, s, 100));
  });
});

describe('crypto/registry: PRF and INTEG descriptors', () => {
  it('sizes follow the hash', () => {
    for (const [id, n] of [[PrfId.PRF_HMAC_SHA1, 20], [PrfId.PRF_HMAC_SHA2_256, 32], [PrfId.PRF_HMAC_SHA2_384, 48], [PrfId.PRF_HMAC_SHA2_512, 64]] as const) {
      const p = getPrf(id);
      assert.equal(p.id, id);
      assert.equal(p.outputLength, n);
      assert.equal(p.keyLength, n);
      assert.equal(p.compute(Buffer.alloc(1), Buffer.alloc(1)).length, n);
    }
  });

  it('integrity key and ICV sizes (RFC 2404, RFC 4868)', () => {
    assert.deepEqual(
      [IntegId.AUTH_HMAC_SHA1_96, IntegId.AUTH_HMAC_SHA2_256_128, IntegId.AUTH_HMAC_SHA2_384_192, IntegId.AUTH_HMAC_SHA2_512_256].map(
        (i) => [integKeyBytes(i), integIcvBytes(i)],
      ),
      [[20, 12], [32, 16], [48, 24], [64, 32]],
    );
    assert.equal(integKeyBytes(IntegId.NONE), 0);
  });

  it('names for logs', () => {
    assert.equal(prfName(PrfId.PRF_HMAC_SHA2_256), 'PRF_HMAC_SHA2_256');
    assert.equal(integName(IntegId.AUTH_HMAC_SHA2_256_128), 'HMAC_SHA2_256_128');
    assert.equal(prfName(PrfId.PRF_HMAC_MD5), 'PRF_HMAC_MD5');
  });

  it('unknown or refused algorithms throw UnsupportedError', () => {
    assert.throws(() => getPrf(PrfId.PRF_HMAC_MD5), UnsupportedError);
    assert.throws(() => getPrf(99), UnsupportedError);
    assert.throws(() => integIcv(IntegId.AUTH_HMAC_MD5_96, Buffer.alloc(16), Buffer.alloc(1)), UnsupportedError);
  });
});
