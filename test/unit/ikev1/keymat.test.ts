/**
 * IKEv1 key derivation known answers (RFC 2409 5, appendix B) and the CBC
 * body protection. The recorded-handshake replay is in replay.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import {
  V1IvChain, createV1KeyExchange, v1Cipher, v1Decrypt, v1DeriveSkeyids, v1DerivePhase1Keys, v1EncryptionKey, v1Encrypt,
  v1EspKeyLengths, v1HashI, v1HashInfo, v1HashR, v1Phase1Iv, v1Phase2Iv, v1QuickKeymat, v1Skeyid, v1SkeyidPsk, v1SkeyidSig,
  v1CheckHash, v1InformationalHash, v1Prf,
} from '../../../src/crypto/ikev1/index.js';
import { EspTransformId, IpsecAuthAlg, V1EncryptionAlg, V1HashAlg } from '../../../src/wire/ikev1/index.js';
import { IntegrityError, MalformedError, UnsupportedError } from '../../../src/util/errors.js';
import { H, fixtureText, ikeScan, keyValues } from './fixtures.js';

const SHA1 = V1HashAlg.SHA;
const hex = (b: Buffer): string => b.toString('hex');

describe('IKEv1 SKEYID and SKEYID_d/a/e (RFC 2409 5)', () => {
  it('matches the NIST CAVS pre-shared-key vector (libreswan copy)', () => {
    const v = keyValues(fixtureText('libreswan-test.acvp.ikev1_psk.run'));
    const expected = JSON.parse(fixtureText('libreswan-test.acvp.ikev1_psk.json')) as Record<string, string>;
    const skeyid = v1SkeyidPsk(SHA1, H(v.get('pre-shared-key')!), H(v.get('Ni')!), H(v.get('Nr')!));
    assert.equal(hex(skeyid), v.get('SKEYID'));
    assert.equal(hex(skeyid), expected.sKeyId);
    const ids = v1DeriveSkeyids(SHA1, skeyid, H(v.get('g^xy')!), H(v.get('CKY_I')!), H(v.get('CKY_R')!));
    assert.equal(hex(ids.skeyidD), v.get('SKEYID_d'));
    assert.equal(hex(ids.skeyidA), v.get('SKEYID_a'));
    assert.equal(hex(ids.skeyidE), v.get('SKEYID_e'));
    assert.deepEqual([hex(ids.skeyidD), hex(ids.skeyidA), hex(ids.skeyidE)], [expected.sKeyIdD, expected.sKeyIdA, expected.sKeyIdE]);
  });

  it('matches the NIST CAVS signature (DSA) vector (libreswan copy)', () => {
    const v = keyValues(fixtureText('libreswan-test.acvp.ikev1_dsa.run'));
    const expected = JSON.parse(fixtureText('libreswan-test.acvp.ikev1_dsa.json')) as Record<string, string>;
    const gxy = H(v.get('g^xy')!);
    const skeyid = v1SkeyidSig(SHA1, H(v.get('Ni')!), H(v.get('Nr')!), gxy);
    assert.equal(hex(skeyid), expected.sKeyId);
    const ids = v1DeriveSkeyids(SHA1, skeyid, gxy, H(v.get('CKY_I')!), H(v.get('CKY_R')!));
    assert.deepEqual([hex(ids.skeyidD), hex(ids.skeyidA), hex(ids.skeyidE)], [expected.sKeyIdD, expected.sKeyIdA, expected.sKeyIdE]);
  });

  it('matches the NIST SP 800-135 signature example through v1DerivePhase1Keys', () => {
    const v = keyValues(fixtureText('nist-sp800-135-ikev1-sig-example-sha1.txt'));
    const k = v1DerivePhase1Keys({
      hashId: SHA1, auth: { method: 'signature' }, niB: H(v.get('Ni')!), nrB: H(v.get('Nr')!), gxy: H(v.get('g^xy')!),
      ckyI: H(v.get('CKY_I')!), ckyR: H(v.get('CKY_R')!), keyBytes: 16,
    });
    assert.equal(hex(k.skeyid), v.get('SKEYID'));
    assert.equal(hex(k.skeyidD), v.get('SKEYID_d'));
    assert.equal(hex(k.skeyidA), v.get('SKEYID_a'));
    assert.equal(hex(k.skeyidE), v.get('SKEYID_e'));
    assert.equal(hex(k.encryptionKey), v.get('SKEYID_e')!.slice(0, 32));
  });

  it('keys SKEYID by the authentication class: PSK and signature formulas differ', () => {
    const ni = randomBytes(16);
    const nr = randomBytes(16);
    const gxy = randomBytes(128);
    const psk = Buffer.from('secret');
    assert.deepEqual(v1Skeyid(SHA1, { method: 'psk', psk }, ni, nr, gxy), createHmac('sha1', psk).update(Buffer.concat([ni, nr])).digest());
    assert.deepEqual(v1Skeyid(SHA1, { method: 'signature' }, ni, nr, gxy), createHmac('sha1', Buffer.concat([ni, nr])).update(gxy).digest());
  });
});

describe('IKEv1 HASH_R from ike-scan Aggressive Mode captures (RFC 2409 5)', () => {
  const cases: { file: string; psk: (i: number) => string }[] = [
    { file: 'ike-scan-psk-abc123.txt', psk: () => 'abc123' },
    { file: 'ike-scan-psk-check4.txt', psk: (i) => (i < 2 ? 'garibaldi' : '12345678901234567890123456789012345678901234567890123456789012345') },
  ];
  for (const { file, psk } of cases) {
    ikeScan(file).forEach((v, i) => {
      const hashId = v.hashR.length === 16 ? V1HashAlg.MD5 : V1HashAlg.SHA;
      it(`${file} line ${i + 1} (${v1HashInfo(hashId).name}, PSK of ${psk(i).length} chars)`, () => {
        const skeyid = v1SkeyidPsk(hashId, Buffer.from(psk(i), 'ascii'), v.niB, v.nrB);
        const got = v1HashR(hashId, skeyid, { gxi: v.gxi, gxr: v.gxr, ckyI: v.ckyI, ckyR: v.ckyR, saiB: v.saiB }, v.idirB);
        assert.equal(hex(got), hex(v.hashR));
      });
    });
  }

  it('a wrong PSK or swapped roles give a different HASH_R', () => {
    const v = ikeScan('ike-scan-psk-abc123.txt')[0]!;
    const t = { gxi: v.gxi, gxr: v.gxr, ckyI: v.ckyI, ckyR: v.ckyR, saiB: v.saiB };
    const skeyid = v1SkeyidPsk(V1HashAlg.MD5, Buffer.from('abc124'), v.niB, v.nrB);
    assert.notEqual(hex(v1HashR(V1HashAlg.MD5, skeyid, t, v.idirB)), hex(v.hashR));
    const right = v1SkeyidPsk(V1HashAlg.MD5, Buffer.from('abc123'), v.niB, v.nrB);
    assert.notEqual(hex(v1HashI(V1HashAlg.MD5, right, t, v.idirB)), hex(v.hashR));
    assert.throws(() => v1CheckHash('HASH_R', v1HashI(V1HashAlg.MD5, right, t, v.idirB), v.hashR), IntegrityError);
    v1CheckHash('HASH_R', v1HashR(V1HashAlg.MD5, right, t, v.idirB), v.hashR);
  });
});

describe('IKEv1 encryption key expansion (RFC 2409 appendix B)', () => {
  const skeyidE = H('6c40f4ee0189ebbfcdb7a4630732e95d6df312ab');

  it('truncates SKEYID_e when it is long enough', () => {
    assert.equal(hex(v1EncryptionKey(SHA1, skeyidE, 16)), hex(skeyidE.subarray(0, 16)));
    assert.equal(hex(v1EncryptionKey(SHA1, skeyidE, 20)), hex(skeyidE));
  });

  it('expands as K1 | K2 with K1 = prf(SKEYID_e, 0) and K2 = prf(SKEYID_e, K1) when it is not', () => {
    const k1 = createHmac('sha1', skeyidE).update(Buffer.from([0])).digest();
    const k2 = createHmac('sha1', skeyidE).update(k1).digest();
    const k3 = createHmac('sha1', skeyidE).update(k2).digest();
    const key24 = v1EncryptionKey(SHA1, skeyidE, 24);
    assert.equal(hex(key24), hex(Buffer.concat([k1, k2]).subarray(0, 24)));
    assert.notEqual(hex(key24.subarray(0, 20)), hex(skeyidE), 'expansion replaces SKEYID_e rather than extending it');
    assert.equal(hex(v1EncryptionKey(SHA1, skeyidE, 32)), hex(Buffer.concat([k1, k2]).subarray(0, 32)));
    assert.equal(hex(v1EncryptionKey(SHA1, skeyidE, 48)), hex(Buffer.concat([k1, k2, k3]).subarray(0, 48)));
  });

  it('v1DerivePhase1Keys expands for 3DES and AES-256 under SHA-1 but not AES-256 under SHA2-256', () => {
    const base = { auth: { method: 'psk' as const, psk: Buffer.from('k') }, niB: randomBytes(16), nrB: randomBytes(16), gxy: randomBytes(256), ckyI: randomBytes(8), ckyR: randomBytes(8) };
    const des = v1DerivePhase1Keys({ ...base, hashId: SHA1, keyBytes: v1Cipher(V1EncryptionAlg.TRIPLE_DES_CBC).keyBytes });
    assert.equal(des.encryptionKey.length, 24);
    assert.equal(hex(des.encryptionKey.subarray(0, 20)), hex(createHmac('sha1', des.skeyidE).update(Buffer.from([0])).digest()));
    const sha256 = v1DerivePhase1Keys({ ...base, hashId: V1HashAlg.SHA2_256, keyBytes: 32 });
    assert.equal(hex(sha256.encryptionKey), hex(sha256.skeyidE));
  });
});

describe('IKEv1 algorithms', () => {
  it('maps hash IDs to HMAC PRFs of the right size', () => {
    const data = Buffer.from('data');
    for (const [id, node, len] of [[V1HashAlg.SHA, 'sha1', 20], [V1HashAlg.SHA2_256, 'sha256', 32], [V1HashAlg.SHA2_384, 'sha384', 48], [V1HashAlg.SHA2_512, 'sha512', 64]] as const) {
      const prf = v1Prf(id);
      assert.equal(prf.outputLength, len);
      assert.deepEqual(prf.compute(Buffer.from('key'), data), createHmac(node, 'key').update(data).digest());
    }
    assert.throws(() => v1Prf(V1HashAlg.TIGER), UnsupportedError);
  });

  it('knows AES-CBC 128/192/256 with a key length and 3DES-CBC without one', () => {
    assert.equal(v1Cipher(V1EncryptionAlg.AES_CBC, 192).keyBytes, 24);
    assert.equal(v1Cipher(V1EncryptionAlg.TRIPLE_DES_CBC).blockBytes, 8);
    assert.throws(() => v1Cipher(V1EncryptionAlg.AES_CBC), UnsupportedError);
    assert.throws(() => v1Cipher(V1EncryptionAlg.AES_CBC, 64), UnsupportedError);
    assert.throws(() => v1Cipher(V1EncryptionAlg.TRIPLE_DES_CBC, 192), UnsupportedError);
    assert.throws(() => v1Cipher(V1EncryptionAlg.DES_CBC), UnsupportedError);
  });

  it('builds DH exchanges for IKEv1 groups through the shared registry and refuses others', () => {
    for (const group of [14, 19]) {
      const a = createV1KeyExchange(group);
      const b = createV1KeyExchange(group);
      assert.deepEqual(a.computeSecret(b.publicValue), b.computeSecret(a.publicValue));
    }
    assert.throws(() => createV1KeyExchange(1), UnsupportedError);
    assert.throws(() => createV1KeyExchange(31), UnsupportedError);
  });

  it('sizes ESP KEYMAT as encryption key then authentication key', () => {
    assert.deepEqual(v1EspKeyLengths(EspTransformId.ESP_AES, 128, IpsecAuthAlg.HMAC_SHA), { encr: 16, integ: 20 });
    assert.deepEqual(v1EspKeyLengths(EspTransformId.ESP_3DES, undefined, IpsecAuthAlg.HMAC_SHA2_256), { encr: 24, integ: 32 });
    assert.deepEqual(v1EspKeyLengths(EspTransformId.ESP_AES_GCM_16, 256, undefined), { encr: 36, integ: 0 });
    assert.throws(() => v1EspKeyLengths(EspTransformId.ESP_AES_GCM_16, 256, IpsecAuthAlg.HMAC_SHA), UnsupportedError);
    assert.throws(() => v1EspKeyLengths(EspTransformId.ESP_AES, undefined, IpsecAuthAlg.HMAC_SHA), UnsupportedError);
    assert.throws(() => v1EspKeyLengths(EspTransformId.ESP_AES, 128, IpsecAuthAlg.HMAC_MD5), UnsupportedError);
  });

  it('computes the Informational HASH(1) over M-ID and the N/D payloads (RFC 2409 5.7)', () => {
    const skeyidA = randomBytes(32);
    const rest = H('0000000c000000010110000100000000');
    const expected = createHmac('sha256', skeyidA).update(H('a1b2c3d4')).update(rest).digest();
    assert.equal(hex(v1InformationalHash(V1HashAlg.SHA2_256, skeyidA, 0xa1b2c3d4, rest)), hex(expected));
    assert.notEqual(hex(v1InformationalHash(V1HashAlg.SHA2_256, skeyidA, 0xa1b2c3d5, rest)), hex(expected));
  });

  it('puts g(qm)^xy first in the PFS KEYMAT seed and chains Kn into Kn+1 (RFC 2409 5.5)', () => {
    const skeyidD = randomBytes(20);
    const x = { protocol: 3, spi: H('01020304'), niB: randomBytes(16), nrB: randomBytes(16), gxyQm: randomBytes(128) };
    const seed = Buffer.concat([x.gxyQm, Buffer.from([3]), x.spi, x.niB, x.nrB]);
    const k1 = createHmac('sha1', skeyidD).update(seed).digest();
    const k2 = createHmac('sha1', skeyidD).update(Buffer.concat([k1, seed])).digest();
    assert.equal(hex(v1QuickKeymat(SHA1, skeyidD, x, 40)), hex(Buffer.concat([k1, k2])));
    const { gxyQm: _unused, ...noPfs } = x;
    assert.notEqual(hex(v1QuickKeymat(SHA1, skeyidD, noPfs, 40)), hex(Buffer.concat([k1, k2])));
  });
});

describe('IKEv1 CBC body protection (RFC 2409 appendix B)', () => {
  const ciphers = [v1Cipher(V1EncryptionAlg.AES_CBC, 128), v1Cipher(V1EncryptionAlg.AES_CBC, 192), v1Cipher(V1EncryptionAlg.AES_CBC, 256), v1Cipher(V1EncryptionAlg.TRIPLE_DES_CBC)];

  for (const c of ciphers) {
    it(`${c.name}: zero-pads to the block, round-trips, and chains the last block`, () => {
      const key = randomBytes(c.keyBytes);
      const iv = randomBytes(c.blockBytes);
      for (const n of [1, c.blockBytes - 1, c.blockBytes, 3 * c.blockBytes + 5]) {
        const plain = randomBytes(n);
        const { ciphertext, nextIv } = v1Encrypt(c, key, iv, plain);
        assert.equal(ciphertext.length, Math.ceil(n / c.blockBytes) * c.blockBytes, 'no extra block when aligned');
        assert.deepEqual(nextIv, ciphertext.subarray(ciphertext.length - c.blockBytes));
        const d = v1Decrypt(c, key, iv, ciphertext);
        assert.deepEqual(d.plaintext.subarray(0, n), plain);
        assert.ok(d.plaintext.subarray(n).every((b) => b === 0), 'padding is zeros and is not stripped');
        assert.deepEqual(d.nextIv, nextIv);
      }
    });
  }

  it('refuses partial blocks, empty bodies and wrong key or IV sizes', () => {
    const c = ciphers[0]!;
    const key = randomBytes(16);
    const iv = randomBytes(16);
    assert.throws(() => v1Decrypt(c, key, iv, randomBytes(17)), MalformedError);
    assert.throws(() => v1Decrypt(c, key, iv, Buffer.alloc(0)), MalformedError);
    assert.throws(() => v1Decrypt(c, randomBytes(24), iv, randomBytes(16)), MalformedError);
    assert.throws(() => v1Encrypt(c, key, randomBytes(8), randomBytes(16)), MalformedError);
  });

  it('derives phase 1 and phase 2 IVs from the negotiated hash and chains per message ID', () => {
    const gxi = randomBytes(128);
    const gxr = randomBytes(128);
    const iv0 = createHash('sha256').update(gxi).update(gxr).digest().subarray(0, 16);
    assert.deepEqual(v1Phase1Iv(V1HashAlg.SHA2_256, gxi, gxr, 16), iv0);
    const chain = new V1IvChain(V1HashAlg.SHA2_256, 16, gxi, gxr);
    assert.deepEqual(chain.iv(0), iv0);
    const mm5 = randomBytes(48);
    chain.advance(0, mm5);
    assert.deepEqual(chain.iv(0), mm5.subarray(32));
    const mid = 0x01020304;
    const qmIv = createHash('sha256').update(mm5.subarray(32)).update(H('01020304')).digest().subarray(0, 16);
    assert.deepEqual(chain.iv(mid), qmIv);
    assert.deepEqual(v1Phase2Iv(V1HashAlg.SHA2_256, mm5.subarray(32), mid, 16), qmIv);
    const qm1 = randomBytes(64);
    chain.advance(mid, qm1);
    assert.deepEqual(chain.iv(mid), qm1.subarray(48));
    assert.deepEqual(chain.iv(0), mm5.subarray(32), 'phase 2 traffic does not move the phase 1 IV');
    assert.deepEqual(chain.iv(7), v1Phase2Iv(V1HashAlg.SHA2_256, mm5.subarray(32), 7, 16), 'other exchanges start from the phase 1 IV');
    chain.forget(mid);
    assert.deepEqual(chain.iv(mid), qmIv);
  });
});
