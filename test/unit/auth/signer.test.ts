import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthMethod } from '../../../src/wire/ikev2/constants.js';
import { MalformedError } from '../../../src/util/errors.js';
import { AuthError } from '../../../src/auth/errors.js';
import {
  algorithmIdentifier, authMethodOf, chooseScheme, decodeRfc7427, decodeSignatureHashAlgorithms, encodeRfc7427,
  encodeSignatureHashAlgorithms, hashIdOf, LocalSigner, parseAuth, SIGNATURE_SCHEMES, SignatureHash, signAuth,
  SUPPORTED_SIGNATURE_HASHES, verify, verifyAuth, type SignatureScheme,
} from '../../../src/auth/signer.js';
import { cert, hasOpenssl, key, openssl, pki } from './pki.js';

const isCode = (code: string) => (e: unknown): boolean => e instanceof AuthError && e.code === code;

/** Which committed key can make each scheme. */
const KEY_FOR: Record<SignatureScheme, string[]> = {
  'rsa-sha1': ['moon'],
  'ecdsa-p256-sha256': ['sun'],
  'ecdsa-p384-sha384': ['venus'],
  'ecdsa-p521-sha512': ['mercury'],
  'rsa-pkcs1-sha256': ['moon'], 'rsa-pkcs1-sha384': ['moon'], 'rsa-pkcs1-sha512': ['moon'],
  'rsa-pss-sha256': ['moon'], 'rsa-pss-sha384': ['moon'], 'rsa-pss-sha512': ['moon'],
  'ecdsa-sha256': ['sun', 'venus', 'mercury'], 'ecdsa-sha384': ['sun', 'venus', 'mercury'], 'ecdsa-sha512': ['sun', 'venus', 'mercury'],
};

/*
 * RFC 7427 appendix A, transcribed from the RFC's hex dumps: A.1.2-A.1.4
 * (PKCS#1 1.5), A.3.2-A.3.4 (ECDSA) and A.4.3 (RSASSA-PSS with SHA-256).
 */
const RFC7427_APPENDIX_A: Partial<Record<SignatureScheme, string>> = {
  'rsa-pkcs1-sha256': '300d 0609 2a86 4886 f70d 0101 0b05 00',
  'rsa-pkcs1-sha384': '300d 0609 2a86 4886 f70d 0101 0c05 00',
  'rsa-pkcs1-sha512': '300d 0609 2a86 4886 f70d 0101 0d05 00',
  'ecdsa-sha256': '300a 0608 2a86 48ce 3d04 0302',
  'ecdsa-sha384': '300a 0608 2a86 48ce 3d04 0303',
  'ecdsa-sha512': '300a 0608 2a86 48ce 3d04 0304',
  'rsa-pss-sha256':
    '3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0201 0500 a203 0201 20',
};
const hexOf = (s: string): string => s.replace(/\s+/g, '');

describe('auth/signer: sign and verify', () => {
  const keys = new Map<string, KeyObject>();
  const data = Buffer.from('styx: the octets of RFC 7296 2.15 stand here');
  before(async () => { for (const n of ['moon', 'sun', 'venus', 'mercury']) keys.set(n, await key(n)); });

  for (const scheme of SIGNATURE_SCHEMES) {
    for (const k of KEY_FOR[scheme]) {
      it(`${scheme} with ${k}: round trip; tampered signature and data fail`, async () => {
        const signer = new LocalSigner(keys.get(k)!);
        const sig = await signer.sign(data, scheme);
        const pub = (await cert(k)).publicKey;
        assert.equal(verify(pub, data, sig, scheme), true);
        const bad = Buffer.from(sig);
        bad[bad.length >> 1]! ^= 0x40;
        assert.equal(verify(pub, data, bad, scheme), false);
        assert.equal(verify(pub, Buffer.concat([data, Buffer.from([0])]), sig, scheme), false);
        assert.equal(verify(pub, data, sig.subarray(0, sig.length - 1), scheme), false);
      });
    }
  }

  it('lays out RFC 4754 signatures as r || s of fixed length', async () => {
    const lens: [string, SignatureScheme, number][] = [['sun', 'ecdsa-p256-sha256', 64], ['venus', 'ecdsa-p384-sha384', 96], ['mercury', 'ecdsa-p521-sha512', 132]];
    for (const [k, scheme, len] of lens) {
      for (let i = 0; i < 4; i++) assert.equal((await new LocalSigner(keys.get(k)!).sign(data, scheme)).length, len, scheme);
    }
    const der = await new LocalSigner(keys.get('sun')!).sign(data, 'ecdsa-sha256');
    assert.equal(der[0], 0x30, 'RFC 7427 ECDSA signatures are DER');
  });

  it('refuses a scheme that does not fit the key', async () => {
    await assert.rejects(new LocalSigner(keys.get('venus')!).sign(data, 'ecdsa-p256-sha256'), isCode('ERR_SIGNATURE_SCHEME'));
    await assert.rejects(new LocalSigner(keys.get('moon')!).sign(data, 'ecdsa-sha256'), isCode('ERR_SIGNATURE_SCHEME'));
    await assert.rejects(new LocalSigner(keys.get('sun')!).sign(data, 'rsa-sha1'), isCode('ERR_SIGNATURE_SCHEME'));
    const sunPub = (await cert('sun')).publicKey;
    assert.throws(() => verify(sunPub, data, Buffer.alloc(64), 'rsa-pss-sha256'), isCode('ERR_SIGNATURE_SCHEME'));
    const ed = generateKeyPairSync('ed25519').privateKey;
    assert.throws(() => new LocalSigner(ed), isCode('ERR_SIGNATURE_SCHEME'));
  });

  it('reports key type and curve', () => {
    assert.deepEqual([new LocalSigner(keys.get('moon')!).keyType, new LocalSigner(keys.get('moon')!).curve], ['rsa', undefined]);
    assert.deepEqual([new LocalSigner(keys.get('venus')!).keyType, new LocalSigner(keys.get('venus')!).curve], ['ecdsa', 'P-384']);
  });

  it('makes the same PKCS#1 v1.5 signatures as OpenSSL and accepts OpenSSL\'s ECDSA and PSS ones', async function () {
    if (!hasOpenssl()) this.skip();
    const dir = mkdtempSync(join(tmpdir(), 'styx-sig-'));
    const msg = join(dir, 'msg');
    writeFileSync(msg, data);
    const osslSign = (keyFile: string, args: string[]): Buffer => {
      const out = join(dir, 'sig');
      openssl(['dgst', ...args, '-sign', pki(keyFile), '-out', out, msg]);
      return readFileSync(out);
    };
    const moon = new LocalSigner(keys.get('moon')!);
    assert.ok((await moon.sign(data, 'rsa-sha1')).equals(osslSign('moon.key.pem', ['-sha1'])));
    assert.ok((await moon.sign(data, 'rsa-pkcs1-sha384')).equals(osslSign('moon.key.pem', ['-sha384'])));
    const pss = osslSign('moon.key.pem', ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32']);
    assert.equal(verify((await cert('moon')).publicKey, data, pss, 'rsa-pss-sha256'), true);
    const ec = osslSign('venus.key.pem', ['-sha384']);
    assert.equal(verify((await cert('venus')).publicKey, data, ec, 'ecdsa-sha384'), true);
    // And OpenSSL accepts ours.
    const ours = join(dir, 'ours');
    writeFileSync(ours, await new LocalSigner(keys.get('sun')!).sign(data, 'ecdsa-sha256'));
    writeFileSync(join(dir, 'sun.pub'), (await cert('sun')).publicKey.export({ type: 'spki', format: 'pem' }));
    assert.match(openssl(['dgst', '-sha256', '-verify', join(dir, 'sun.pub'), '-signature', ours, msg]), /Verified OK/);
  });
});

describe('auth/signer: RFC 7427 AUTH data', () => {
  it('uses the AlgorithmIdentifier bytes of RFC 7427 appendix A', () => {
    for (const [scheme, hexs] of Object.entries(RFC7427_APPENDIX_A) as [SignatureScheme, string][]) {
      assert.equal(algorithmIdentifier(scheme).toString('hex'), hexOf(hexs), scheme);
    }
    assert.equal(algorithmIdentifier('rsa-pss-sha256').length, 67); // the RFC's "Length = 67"
  });

  it('builds the PSS SHA-384/512 identifiers OpenSSL parses as such', async function () {
    if (!hasOpenssl()) this.skip();
    const dir = mkdtempSync(join(tmpdir(), 'styx-alg-'));
    for (const [scheme, hash, salt] of [['rsa-pss-sha384', 'sha384', '30'], ['rsa-pss-sha512', 'sha512', '40']] as const) {
      const f = join(dir, scheme);
      writeFileSync(f, algorithmIdentifier(scheme));
      const dump = openssl(['asn1parse', '-inform', 'DER', '-in', f]);
      assert.match(dump, /OBJECT\s+:rsassaPss/);
      assert.equal(dump.match(new RegExp(`OBJECT\\s+:${hash}`, 'g'))?.length, 2, `${scheme}: hash and MGF1 hash`);
      assert.match(dump, /OBJECT\s+:mgf1/);
      assert.match(dump, new RegExp(`INTEGER\\s+:${salt}\\b`));
    }
  });

  it('has no AlgorithmIdentifier for the legacy methods', () => {
    for (const s of ['rsa-sha1', 'ecdsa-p256-sha256', 'ecdsa-p384-sha384', 'ecdsa-p521-sha512'] as const) {
      assert.throws(() => algorithmIdentifier(s), isCode('ERR_SIGNATURE_SCHEME'));
    }
  });

  it('encodes length | AlgorithmIdentifier | signature and decodes it back', () => {
    const sig = Buffer.from('00112233', 'hex');
    for (const scheme of Object.keys(RFC7427_APPENDIX_A) as SignatureScheme[]) {
      const a = algorithmIdentifier(scheme);
      const enc = encodeRfc7427(scheme, sig);
      assert.equal(enc[0], a.length);
      assert.ok(enc.subarray(1, 1 + a.length).equals(a));
      assert.ok(enc.subarray(1 + a.length).equals(sig));
      const d = decodeRfc7427(enc);
      assert.equal(d.scheme, scheme);
      assert.ok(d.signature.equals(sig));
    }
  });

  it('decodes other encodings of known algorithms and refuses unknown ones', () => {
    const sig = Buffer.from([1, 2, 3]);
    const wrap = (alg: string): Buffer => Buffer.concat([Buffer.from([hexOf(alg).length / 2]), Buffer.from(hexOf(alg), 'hex'), sig]);
    // sha256WithRSAEncryption without the NULL parameters.
    assert.equal(decodeRfc7427(wrap('300b 0609 2a86 4886 f70d 0101 0b')).scheme, 'rsa-pkcs1-sha256');
    // RFC 7427 A.1.1 sha1WithRSAEncryption: known to the RFC, refused by styx.
    assert.throws(() => decodeRfc7427(wrap('300d 0609 2a86 4886 f70d 0101 0505 00')), isCode('ERR_SIGNATURE_SCHEME'));
    // RFC 7427 A.4.2 RSASSA-PSS with default parameters means SHA-1: refused.
    assert.throws(() => decodeRfc7427(wrap('300d 0609 2a86 4886 f70d 0101 0a30 00')), isCode('ERR_SIGNATURE_SCHEME'));
    // RSASSA-PSS SHA-256 with a 20-octet salt: not the salt styx signs with.
    assert.throws(() => decodeRfc7427(wrap(algorithmIdentifier('rsa-pss-sha256').toString('hex').replace(/020120$/, '020114'))), isCode('ERR_SIGNATURE_SCHEME'));
    assert.throws(() => decodeRfc7427(wrap('3005 0603 2a03 04')), isCode('ERR_SIGNATURE_SCHEME'));
    assert.throws(() => decodeRfc7427(Buffer.from([0x0f, 0x30, 0x0d])), (e: unknown) => e instanceof MalformedError);
    assert.throws(() => decodeRfc7427(Buffer.alloc(0)), (e: unknown) => e instanceof MalformedError);
  });

  it('signs and verifies whole AUTH payloads for every method', async () => {
    const octets = Buffer.from('RealMessage1 | Nr | prf(SK_pi, IDi)');
    const cases: [string, SignatureScheme, number][] = [
      ['moon', 'rsa-sha1', AuthMethod.RSA_SIG], ['sun', 'ecdsa-p256-sha256', AuthMethod.ECDSA_SHA256_P256],
      ['venus', 'ecdsa-p384-sha384', AuthMethod.ECDSA_SHA384_P384], ['mercury', 'ecdsa-p521-sha512', AuthMethod.ECDSA_SHA512_P521],
      ['moon', 'rsa-pss-sha384', AuthMethod.DIGITAL_SIGNATURE], ['venus', 'ecdsa-sha384', AuthMethod.DIGITAL_SIGNATURE],
    ];
    for (const [k, scheme, method] of cases) {
      const auth = await signAuth(new LocalSigner(await key(k)), scheme, octets);
      assert.equal(auth.method, method, scheme);
      assert.equal(authMethodOf(scheme), method);
      assert.equal(parseAuth(auth).scheme, scheme);
      const pub = (await cert(k)).publicKey;
      assert.equal(verifyAuth(pub, auth, octets), scheme);
      assert.throws(() => verifyAuth(pub, auth, Buffer.concat([octets, Buffer.from('x')])), isCode('ERR_SIGNATURE'), scheme);
      // Someone else's key: the signature does not verify, or the scheme does not even fit.
      const other = (await cert('jupiter')).publicKey;
      assert.throws(() => verifyAuth(other, auth, octets), (e: unknown) => e instanceof AuthError && (e.code === 'ERR_SIGNATURE' || e.code === 'ERR_SIGNATURE_SCHEME'));
    }
    assert.throws(() => parseAuth({ method: AuthMethod.SHARED_KEY_MIC, data: Buffer.alloc(20) }), isCode('ERR_SIGNATURE_SCHEME'));
  });
});

describe('auth/signer: SIGNATURE_HASH_ALGORITHMS and scheme choice', () => {
  it('uses the RFC 7427 4 hash identifiers', () => {
    assert.deepEqual(SignatureHash, { SHA1: 1, SHA2_256: 2, SHA2_384: 3, SHA2_512: 4 });
    assert.deepEqual(SUPPORTED_SIGNATURE_HASHES, [2, 3, 4]);
    assert.equal(hashIdOf('rsa-sha1'), 1);
    assert.equal(hashIdOf('rsa-pss-sha512'), 4);
  });

  it('encodes and decodes the notify data', () => {
    assert.equal(encodeSignatureHashAlgorithms([2, 3, 4]).toString('hex'), '000200030004');
    assert.deepEqual(decodeSignatureHashAlgorithms(Buffer.from('0001000200050004', 'hex')), [1, 2, 5, 4]);
    assert.throws(() => decodeSignatureHashAlgorithms(Buffer.from([0, 2, 0])), (e: unknown) => e instanceof MalformedError);
  });

  it('chooses a hash the peer listed, else the legacy method', () => {
    const rsa = { keyType: 'rsa' as const, curve: undefined };
    const p256 = { keyType: 'ecdsa' as const, curve: 'P-256' };
    const p384 = { keyType: 'ecdsa' as const, curve: 'P-384' };
    assert.equal(chooseScheme(rsa, [2, 3, 4]), 'rsa-pkcs1-sha256');
    assert.equal(chooseScheme(rsa, [4]), 'rsa-pkcs1-sha512');
    assert.equal(chooseScheme(rsa, [3], { preferPss: true }), 'rsa-pss-sha384');
    assert.equal(chooseScheme(p384, [2, 3, 4]), 'ecdsa-sha384');
    assert.equal(chooseScheme(p384, [2]), 'ecdsa-sha256');
    assert.equal(chooseScheme(p256, [4, 3]), 'ecdsa-sha384');
    assert.equal(chooseScheme(rsa, undefined), 'rsa-sha1');
    assert.equal(chooseScheme(rsa, [1]), 'rsa-sha1');
    assert.equal(chooseScheme(p256, []), 'ecdsa-p256-sha256');
    assert.equal(chooseScheme({ keyType: 'ecdsa', curve: 'P-521' }, undefined), 'ecdsa-p521-sha512');
    assert.throws(() => chooseScheme({ keyType: 'ecdsa', curve: 'brainpoolP256r1' }, undefined), isCode('ERR_SIGNATURE_SCHEME'));
  });
});
