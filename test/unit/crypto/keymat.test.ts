import assert from 'node:assert/strict';
import {
  deriveChildKeys, deriveIkeKeys, deriveRekeyedIkeKeys, encrKeyBytes, getPrf, ikeKeymatLength, pskAuth, signedOctets, verifyPskAuth,
  type IkeKeys, type IkeSuite,
} from '../../../src/crypto/index.js';
import { DhId, EncrId, IntegId, PrfId } from '../../../src/wire/ikev2/constants.js';
import { asRecord, fixtureJson, fixtureText, kvHex, parseKeyValue, str } from './fixtures.js';

const concatKeys = (k: IkeKeys): Buffer => Buffer.concat([k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr]);

/** With SHA-1, AES-CBC-128 and HMAC-SHA1-96 the seven keys add up to exactly the 1056-bit CAVS DKM. */
const SHA1_SUITE: IkeSuite = {
  encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 },
  integ: IntegId.AUTH_HMAC_SHA1_96,
  prf: PrfId.PRF_HMAC_SHA1,
  dh: DhId.MODP_2048,
};

interface KdfCase {
  label: string;
  ni: Buffer; nr: Buffer; gir: Buffer; girNew: Buffer; spiI: Buffer; spiR: Buffer;
  skeyseed: string; dkm: string; dkmChild: string; dkmChildDh: string; skeyseedRekey: string;
}

function cavsCase(): KdfCase {
  const [inp] = parseKeyValue(fixtureText('libreswan-test.acvp.ikev2.run'), 'COUNT');
  const out = asRecord(fixtureJson('libreswan-test.acvp.ikev2.json'));
  if (!inp) throw new Error('no CAVS input');
  return {
    label: 'NIST CAVS IKEv2 KDF tcId 100',
    ni: kvHex(inp, 'Ni'), nr: kvHex(inp, 'Nr'), gir: kvHex(inp, 'g^ir'), girNew: kvHex(inp, 'g^ir (new)'),
    spiI: kvHex(inp, 'SPIi'), spiR: kvHex(inp, 'SPIr'),
    skeyseed: str(out, 'sKeySeed'), dkm: str(out, 'derivedKeyingMaterial'),
    dkmChild: str(out, 'derivedKeyingMaterialChild'), dkmChildDh: str(out, 'derivedKeyingMaterialDh'),
    skeyseedRekey: str(out, 'sKeySeedReKey'),
  };
}

function sp800135Case(): KdfCase {
  const [v] = parseKeyValue(fixtureText('nist-sp800-135-ikev2-example-sha1.txt'), 'PRF');
  if (!v) throw new Error('no SP 800-135 example');
  const s = (k: string): string => kvHex(v, k).toString('hex');
  return {
    label: 'NIST SP 800-135 example',
    ni: kvHex(v, 'Ni'), nr: kvHex(v, 'Nr'), gir: kvHex(v, 'g^ir'), girNew: kvHex(v, 'g^ir (new)'),
    spiI: kvHex(v, 'SPIi'), spiR: kvHex(v, 'SPIr'),
    skeyseed: s('SKEYSEED'), dkm: s('DKM'), dkmChild: s('DKM(Child SA)'), dkmChildDh: s('DKM(Child SA D-H)'),
    skeyseedRekey: s('SKEYSEED(Rekey)'),
  };
}

describe('crypto/keymat: SHA-1 IKEv2 KDF known answers', () => {
  for (const c of [cavsCase(), sp800135Case()]) {
    describe(c.label, () => {
      it('SKEYSEED and the seven SK_* keys (RFC 7296 2.14)', () => {
        assert.equal(ikeKeymatLength(SHA1_SUITE), 132);
        const { skeyseed, keys } = deriveIkeKeys(SHA1_SUITE, c.ni, c.nr, c.gir, c.spiI, c.spiR);
        assert.equal(skeyseed.toString('hex'), c.skeyseed);
        assert.equal(concatKeys(keys).toString('hex'), c.dkm);
        assert.deepEqual(
          [keys.skD, keys.skAi, keys.skAr, keys.skEi, keys.skEr, keys.skPi, keys.skPr].map((k) => k.length),
          [20, 20, 20, 16, 16, 20, 20],
        );
      });

      it('child KEYMAT without and with PFS (RFC 7296 2.17)', () => {
        const skD = Buffer.from(c.dkm.slice(0, 40), 'hex');
        const encr = { id: EncrId.ENCR_AES_CBC, keyLength: 256 };
        for (const [gir, expected] of [[undefined, c.dkmChild], [c.girNew, c.dkmChildDh]] as const) {
          const k = deriveChildKeys(PrfId.PRF_HMAC_SHA1, skD, c.ni, c.nr, encr, IntegId.AUTH_HMAC_SHA1_96, gir);
          assert.deepEqual([k.encrI.length, k.integI.length, k.encrR.length, k.integR.length], [32, 20, 32, 20]);
          const all = Buffer.concat([k.encrI, k.integI, k.encrR, k.integR]).toString('hex');
          assert.equal(all, expected.slice(0, all.length));
        }
      });

      it('rekeyed SKEYSEED uses SK_d(old) and g^ir(new) (RFC 7296 2.18)', () => {
        const skD = Buffer.from(c.dkm.slice(0, 40), 'hex');
        const r = deriveRekeyedIkeKeys(PrfId.PRF_HMAC_SHA1, skD, SHA1_SUITE, c.ni, c.nr, c.girNew, c.spiI, c.spiR);
        assert.equal(r.skeyseed.toString('hex'), c.skeyseedRekey);
        // The new keys are prf+ of the new SKEYSEED over Ni | Nr | SPIi | SPIr.
        const seed = Buffer.concat([c.ni, c.nr, c.spiI, c.spiR]);
        assert.deepEqual(concatKeys(r.keys), getPrf(PrfId.PRF_HMAC_SHA1).plus(r.skeyseed, seed, 132));
      });

      it('rekeying to a different PRF: SKEYSEED with the old one, keys with the new one', () => {
        const skD = Buffer.from(c.dkm.slice(0, 40), 'hex');
        const suite: IkeSuite = { ...SHA1_SUITE, prf: PrfId.PRF_HMAC_SHA2_256, integ: IntegId.AUTH_HMAC_SHA2_256_128 };
        const r = deriveRekeyedIkeKeys(PrfId.PRF_HMAC_SHA1, skD, suite, c.ni, c.nr, c.girNew, c.spiI, c.spiR);
        assert.equal(r.skeyseed.toString('hex'), c.skeyseedRekey);
        assert.equal(r.keys.skD.length, 32);
        const seed = Buffer.concat([c.ni, c.nr, c.spiI, c.spiR]);
        assert.deepEqual(concatKeys(r.keys), getPrf(PrfId.PRF_HMAC_SHA2_256).plus(r.skeyseed, seed, ikeKeymatLength(suite)));
      });
    });
  }
});

describe('crypto/keymat: SHA-2 SKEYSEED and prf+ (CAVP via strongSwan test vectors)', () => {
  const seeds = parseKeyValue(fixtureText('strongswan-kdf_prf-skeyseed-cavp.txt'), 'name');
  const plus = parseKeyValue(fixtureText('strongswan-kdf_prf_plus-cavp.txt'), 'name');
  const PRFS: Record<string, number> = { sha256: PrfId.PRF_HMAC_SHA2_256, sha384: PrfId.PRF_HMAC_SHA2_384, sha512: PrfId.PRF_HMAC_SHA2_512 };
  // One realistic suite per PRF; AEAD for SHA-384 so SK_a is empty in one case.
  const SUITES: Record<number, IkeSuite> = {
    [PrfId.PRF_HMAC_SHA2_256]: { encr: { id: EncrId.ENCR_AES_CBC, keyLength: 256 }, integ: IntegId.AUTH_HMAC_SHA2_256_128, prf: PrfId.PRF_HMAC_SHA2_256, dh: DhId.ECP_256 },
    [PrfId.PRF_HMAC_SHA2_384]: { encr: { id: EncrId.ENCR_AES_GCM_16, keyLength: 256 }, integ: IntegId.NONE, prf: PrfId.PRF_HMAC_SHA2_384, dh: DhId.ECP_384 },
    [PrfId.PRF_HMAC_SHA2_512]: { encr: { id: EncrId.ENCR_AES_CBC, keyLength: 256 }, integ: IntegId.AUTH_HMAC_SHA2_512_256, prf: PrfId.PRF_HMAC_SHA2_512, dh: DhId.ECP_521 },
  };

  it('has all six pairs', () => assert.equal(seeds.length, 6));

  for (const s of seeds) {
    const name = s.get('name') ?? '';
    const [, hash, n] = /^prf_(sha\d+)_(\d)$/.exec(name) ?? [];
    const p = plus.find((v) => v.get('name') === `prf_plus_${hash}_${n}`);
    it(`${name}: SKEYSEED, then the SK_* split of prf+`, () => {
      const prf = PRFS[hash ?? ''];
      if (prf === undefined || !p) throw new Error(`no matching prf+ vector for ${name}`);
      const ninr = kvHex(s, 'salt');
      const seed = kvHex(p, 'salt');
      // prf+ seed is Ni|Nr|SPIi|SPIr with 8-octet SPIs; check the vectors chain before relying on it.
      assert.deepEqual(seed.subarray(0, ninr.length), ninr);
      assert.equal(seed.length - ninr.length, 16);
      assert.deepEqual(kvHex(p, 'key'), kvHex(s, 'out'));
      const spiI = seed.subarray(ninr.length, ninr.length + 8);
      const spiR = seed.subarray(ninr.length + 8);
      const suite = SUITES[prf];
      if (!suite) throw new Error('no suite');
      // Only the concatenation Ni|Nr enters the derivation, so any split of the salt is equivalent.
      const half = ninr.length / 2;
      const { skeyseed, keys } = deriveIkeKeys(suite, ninr.subarray(0, half), ninr.subarray(half), kvHex(s, 'key'), spiI, spiR);
      assert.equal(skeyseed.toString('hex'), kvHex(s, 'out').toString('hex'));
      const all = concatKeys(keys);
      assert.equal(all.length, ikeKeymatLength(suite));
      // The keys are consecutive slices of one prf+ stream; compare as far as the vector reaches.
      const n = Math.min(all.length, Number(p.get('out_len')));
      assert.ok(n >= 132);
      assert.equal(all.subarray(0, n).toString('hex'), kvHex(p, 'out').subarray(0, n).toString('hex'));
      if (suite.integ === IntegId.NONE) {
        assert.equal(keys.skAi.length, 0);
        assert.equal(keys.skEi.length, encrKeyBytes(suite.encr.id, suite.encr.keyLength));
      }
    });
  }
});

describe('crypto/keymat: shared-key AUTH (RFC 7296 2.15)', () => {
  it('signedOctets is message | nonce | prf(SK_p, IDx\')', () => {
    const msg = Buffer.from('aabbcc', 'hex');
    const nonce = Buffer.from('0102', 'hex');
    const skP = Buffer.alloc(32, 7);
    const id = Buffer.from('01000000c0000201', 'hex');
    const so = signedOctets(msg, nonce, PrfId.PRF_HMAC_SHA2_256, skP, id);
    assert.equal(so.length, 3 + 2 + 32);
    assert.deepEqual(so.subarray(0, 5), Buffer.from('aabbcc0102', 'hex'));
    assert.notDeepEqual(so, signedOctets(msg, nonce, PrfId.PRF_HMAC_SHA2_256, skP, Buffer.from('01000000c0000202', 'hex')));
  });

  it('verifyPskAuth accepts only the matching value', () => {
    const psk = Buffer.from('secret');
    const so = Buffer.from('signed');
    const auth = pskAuth(PrfId.PRF_HMAC_SHA2_256, psk, so);
    assert.equal(auth.length, 32);
    assert.ok(verifyPskAuth(PrfId.PRF_HMAC_SHA2_256, psk, so, auth));
    assert.ok(!verifyPskAuth(PrfId.PRF_HMAC_SHA2_256, Buffer.from('secreT'), so, auth));
    assert.ok(!verifyPskAuth(PrfId.PRF_HMAC_SHA2_256, psk, so, auth.subarray(0, 31)));
  });
});
