import assert from 'node:assert/strict';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import {
  aeadOpen, aeadSeal, createSkCipher, encrKeyBytes, encrName, integIcvBytes, integKeyBytes, isAead, listAlgorithms,
} from '../../../src/crypto/index.js';
import { IntegrityError, MalformedError, UnsupportedError } from '../../../src/util/errors.js';
import { EncrId, IntegId } from '../../../src/wire/ikev2/constants.js';
import { asArray, asRecord, fixtureJson, hexField, str } from './fixtures.js';

/** IKE header (28) + SK generic header (4), as the caller would pass it. */
const AAD = Buffer.concat([randomBytes(28), Buffer.from([0x29, 0, 0, 0])]);

interface Case { encr: { id: number; keyLength: number }; integ: number }
const CASES: Case[] = [];
for (const k of [128, 192, 256]) {
  for (const i of [IntegId.AUTH_HMAC_SHA1_96, IntegId.AUTH_HMAC_SHA2_256_128, IntegId.AUTH_HMAC_SHA2_384_192, IntegId.AUTH_HMAC_SHA2_512_256]) {
    CASES.push({ encr: { id: EncrId.ENCR_AES_CBC, keyLength: k }, integ: i });
  }
  for (const g of [EncrId.ENCR_AES_GCM_8, EncrId.ENCR_AES_GCM_12, EncrId.ENCR_AES_GCM_16]) CASES.push({ encr: { id: g, keyLength: k }, integ: IntegId.NONE });
}
CASES.push({ encr: { id: EncrId.ENCR_CHACHA20_POLY1305, keyLength: 0 }, integ: IntegId.NONE });

function make(c: Case, ivSource?: (n: number) => Buffer) {
  const ek = randomBytes(encrKeyBytes(c.encr.id, c.encr.keyLength));
  const ak = c.integ === IntegId.NONE ? null : randomBytes(integKeyBytes(c.integ));
  return { ek, ak, sk: createSkCipher(c.encr, c.integ, ek, ak, ivSource) };
}

describe('crypto/registry: ENCR descriptors', () => {
  it('key material sizes include the AEAD salt (RFC 4106 8.1, RFC 5282, RFC 7634 2)', () => {
    assert.equal(encrKeyBytes(EncrId.ENCR_AES_CBC, 128), 16);
    assert.equal(encrKeyBytes(EncrId.ENCR_AES_CBC, 256), 32);
    assert.equal(encrKeyBytes(EncrId.ENCR_AES_GCM_8, 128), 20);
    assert.equal(encrKeyBytes(EncrId.ENCR_AES_GCM_16, 192), 28);
    assert.equal(encrKeyBytes(EncrId.ENCR_AES_GCM_12, 256), 36);
    assert.equal(encrKeyBytes(EncrId.ENCR_CHACHA20_POLY1305, 0), 36);
    assert.equal(encrKeyBytes(EncrId.ENCR_CHACHA20_POLY1305, 256), 36);
  });

  it('rejects key lengths the algorithm does not have', () => {
    assert.throws(() => encrKeyBytes(EncrId.ENCR_AES_CBC, 0), UnsupportedError);
    assert.throws(() => encrKeyBytes(EncrId.ENCR_AES_GCM_16, 512), UnsupportedError);
    assert.throws(() => encrKeyBytes(EncrId.ENCR_CHACHA20_POLY1305, 128), UnsupportedError);
    assert.throws(() => encrKeyBytes(EncrId.ENCR_3DES, 0), UnsupportedError);
  });

  it('AEAD classification and names', () => {
    assert.ok(!isAead(EncrId.ENCR_AES_CBC));
    assert.ok(isAead(EncrId.ENCR_AES_GCM_8) && isAead(EncrId.ENCR_CHACHA20_POLY1305));
    assert.equal(encrName(EncrId.ENCR_AES_CBC, 128), 'AES_CBC_128');
    assert.equal(encrName(EncrId.ENCR_AES_GCM_16, 256), 'AES_GCM_16_256');
    assert.equal(encrName(EncrId.ENCR_CHACHA20_POLY1305, 0), 'CHACHA20_POLY1305');
    assert.equal(encrName(EncrId.ENCR_3DES, 192), 'ENCR_3DES');
    const l = listAlgorithms();
    assert.equal(l.encr.length, 13);
    assert.ok(l.dh.some((d) => d.name === 'CURVE_25519') && !l.dh.some((d) => d.id === 2));
  });
});

describe('crypto/sk: SK payload round trips', () => {
  for (const c of CASES) {
    const label = `${encrName(c.encr.id, c.encr.keyLength)}${c.integ ? ' + ' + c.integ : ''}`;
    it(label, () => {
      const { sk } = make(c);
      for (const n of [0, 1, 15, 16, 17, 100]) {
        const pt = randomBytes(n);
        const body = sk.seal(AAD, pt);
        assert.equal(body.length, sk.sealedLength(n), `sealedLength(${n})`);
        assert.deepEqual(sk.open(AAD, body), pt);
      }
    });
  }

  it('CBC bodies are IV | whole blocks | ICV, the pad-length octet included', () => {
    const { sk } = make({ encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 }, integ: IntegId.AUTH_HMAC_SHA1_96 });
    assert.equal(sk.sealedLength(15), 16 + 16 + 12);
    assert.equal(sk.sealedLength(16), 16 + 32 + 12);
  });

  it('AEAD bodies carry an 8-octet IV, one pad-length octet and the tag', () => {
    for (const [id, tag] of [[EncrId.ENCR_AES_GCM_8, 8], [EncrId.ENCR_AES_GCM_12, 12], [EncrId.ENCR_AES_GCM_16, 16], [EncrId.ENCR_CHACHA20_POLY1305, 16]] as const) {
      const { sk } = make({ encr: { id, keyLength: id === EncrId.ENCR_CHACHA20_POLY1305 ? 0 : 128 }, integ: IntegId.NONE });
      assert.equal(sk.sealedLength(10), 8 + 10 + 1 + tag);
    }
  });
});

describe('crypto/sk: failures', () => {
  for (const c of CASES) {
    const label = `${encrName(c.encr.id, c.encr.keyLength)}${c.integ ? ' + ' + c.integ : ''}`;
    it(`${label}: tampering is IntegrityError, truncation is MalformedError`, () => {
      const { sk } = make(c);
      const body = sk.seal(AAD, Buffer.from('payload chain'));
      for (const at of [0, 8, body.length - 1]) {
        const bad = Buffer.from(body);
        bad[at]! ^= 0x80;
        assert.throws(() => sk.open(AAD, bad), IntegrityError, `flipped octet ${at}`);
      }
      const badAad = Buffer.from(AAD);
      badAad[3]! ^= 1;
      assert.throws(() => sk.open(badAad, body), IntegrityError, 'AAD covered');
      // Shorter than the smallest possible body: rejected on length alone.
      for (const len of [0, 5, sk.sealedLength(0) - 1]) {
        assert.throws(() => sk.open(AAD, body.subarray(0, len)), MalformedError, `truncated to ${len}`);
      }
      // Long enough to parse: a length error (CBC alignment) or a failed tag, never a plaintext.
      for (const len of [20, body.length - 1]) {
        assert.throws(() => sk.open(AAD, body.subarray(0, len)), (e: unknown) => e instanceof MalformedError || e instanceof IntegrityError, `truncated to ${len}`);
      }
    });
  }

  it('CBC: a body that is not IV + whole blocks + ICV is MalformedError before any MAC check', () => {
    const { sk } = make({ encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 }, integ: IntegId.AUTH_HMAC_SHA2_256_128 });
    const body = sk.seal(AAD, Buffer.alloc(40));
    assert.throws(() => sk.open(AAD, body.subarray(0, body.length - 1)), MalformedError);
    assert.throws(() => sk.open(AAD, body.subarray(0, 16 + 16)), MalformedError);
  });

  it('CBC: an authentic message whose pad length overruns is MalformedError', () => {
    const ek = randomBytes(16);
    const ak = randomBytes(20);
    const iv = randomBytes(16);
    const c = createCipheriv('aes-128-cbc', ek, iv).setAutoPadding(false);
    const block = Buffer.alloc(16, 0);
    block[15] = 16; // claims 16 padding octets in a 16-octet plaintext
    const ct = Buffer.concat([c.update(block), c.final()]);
    const icv = createHmac('sha1', ak).update(AAD).update(iv).update(ct).digest().subarray(0, 12);
    const sk = createSkCipher({ id: EncrId.ENCR_AES_CBC, keyLength: 128 }, IntegId.AUTH_HMAC_SHA1_96, ek, ak);
    assert.throws(() => sk.open(AAD, Buffer.concat([iv, ct, icv])), MalformedError);
    block[15] = 15; // exactly fills: empty payload
    const c2 = createCipheriv('aes-128-cbc', ek, iv).setAutoPadding(false);
    const ct2 = Buffer.concat([c2.update(block), c2.final()]);
    const icv2 = createHmac('sha1', ak).update(AAD).update(iv).update(ct2).digest().subarray(0, 12);
    assert.equal(sk.open(AAD, Buffer.concat([iv, ct2, icv2])).length, 0);
  });

  it('AEAD: an authentic message whose pad length overruns is MalformedError', () => {
    const key = randomBytes(20);
    const iv = randomBytes(8);
    const sealed = aeadSeal(EncrId.ENCR_AES_GCM_16, key, iv, AAD, Buffer.from([1, 2, 3, 4]));
    const sk = createSkCipher({ id: EncrId.ENCR_AES_GCM_16, keyLength: 128 }, IntegId.NONE, key, null);
    assert.throws(() => sk.open(AAD, Buffer.concat([iv, sealed])), MalformedError);
    const exact = aeadSeal(EncrId.ENCR_AES_GCM_16, key, iv, AAD, Buffer.from([1, 2, 3, 3]));
    assert.equal(sk.open(AAD, Buffer.concat([iv, exact])).length, 0);
  });

  it('wrong key sizes and integrity combinations are refused', () => {
    assert.throws(() => createSkCipher({ id: EncrId.ENCR_AES_CBC, keyLength: 128 }, IntegId.AUTH_HMAC_SHA1_96, randomBytes(15), randomBytes(20)), MalformedError);
    assert.throws(() => createSkCipher({ id: EncrId.ENCR_AES_CBC, keyLength: 128 }, IntegId.AUTH_HMAC_SHA1_96, randomBytes(16), randomBytes(19)), MalformedError);
    assert.throws(() => createSkCipher({ id: EncrId.ENCR_AES_CBC, keyLength: 128 }, IntegId.NONE, randomBytes(16), null), UnsupportedError);
    assert.throws(() => createSkCipher({ id: EncrId.ENCR_AES_GCM_16, keyLength: 128 }, IntegId.AUTH_HMAC_SHA1_96, randomBytes(20), randomBytes(20)), UnsupportedError);
    assert.throws(() => createSkCipher({ id: EncrId.ENCR_AES_GCM_16, keyLength: 128 }, IntegId.NONE, randomBytes(16), null), MalformedError);
  });
});

describe('crypto/sk: IVs', () => {
  it('CBC uses a fresh random IV per message', () => {
    const { sk } = make({ encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 }, integ: IntegId.AUTH_HMAC_SHA1_96 });
    const a = sk.seal(AAD, Buffer.alloc(8));
    const b = sk.seal(AAD, Buffer.alloc(8));
    assert.notDeepEqual(a.subarray(0, 16), b.subarray(0, 16));
  });

  it('AEAD IVs count up from a random start, never repeating under one cipher', () => {
    const { sk } = make({ encr: { id: EncrId.ENCR_AES_GCM_16, keyLength: 128 }, integ: IntegId.NONE });
    const ivs = Array.from({ length: 5 }, () => sk.seal(AAD, Buffer.alloc(4)).readBigUInt64BE(0));
    for (let i = 1; i < ivs.length; i++) assert.equal(ivs[i], (ivs[i - 1]! + 1n) & ((1n << 64n) - 1n));
    const { sk: other } = make({ encr: { id: EncrId.ENCR_AES_GCM_16, keyLength: 128 }, integ: IntegId.NONE });
    assert.notEqual(other.seal(AAD, Buffer.alloc(4)).readBigUInt64BE(0), ivs[0]);
  });

  it('an injected IV of the wrong size is refused', () => {
    const { sk } = make({ encr: { id: EncrId.ENCR_AES_GCM_16, keyLength: 128 }, integ: IntegId.NONE }, () => Buffer.alloc(12));
    assert.throws(() => sk.seal(AAD, Buffer.alloc(4)), MalformedError);
  });
});

describe('crypto/sk: AEAD known answers', () => {
  const vectors = asArray(fixtureJson('esp-aead-gcm-chacha-vectors.json')).map((v) => asRecord(v));

  // ESP and the SK payload share the AEAD framing: nonce = salt | IV, the explicit IV on the wire, AAD given.
  for (const v of vectors.filter((x) => 'esp_packet' in x)) {
    it(`${str(v, 'id')}: seal and open the ESP payload`, () => {
      const chacha = str(v, 'transform').startsWith('ENCR_CHACHA20');
      const id = chacha ? EncrId.ENCR_CHACHA20_POLY1305 : EncrId.ENCR_AES_GCM_16;
      const key = chacha ? hexField(v, 'keymat_rfc7634') : hexField(v, 'keymat_rfc4106');
      const iv = hexField(v, 'iv');
      const aad = hexField(v, 'aad');
      const pt = hexField(v, 'esp_plaintext_with_trailer');
      const packet = hexField(v, 'esp_packet');
      // SPI(4) | seq(4) | IV(8) | ciphertext | ICV(16)
      const sealedOnWire = packet.subarray(16);
      const sealed = aeadSeal(id, key, iv, aad, pt);
      assert.equal(sealed.toString('hex'), sealedOnWire.toString('hex'));
      assert.equal(sealed.subarray(sealed.length - 16).toString('hex'), str(v, 'icv'));
      assert.deepEqual(aeadOpen(id, key, iv, aad, sealedOnWire), pt);
      const bad = Buffer.from(sealedOnWire);
      bad[0]! ^= 1;
      assert.throws(() => aeadOpen(id, key, iv, aad, bad), IntegrityError);
    });
  }

  it('RFC 7634 Appendix B: the IKEv2 SK payload, byte for byte', () => {
    const v = vectors.find((x) => str(x, 'id').startsWith('RFC 7634 Appendix B'));
    if (!v) throw new Error('missing RFC 7634 Appendix B');
    const key = hexField(v, 'keymat_rfc7634');
    const aad = hexField(v, 'aad_ike_header_plus_sk_header');
    const iv = hexField(v, 'iv');
    const sk = createSkCipher({ id: EncrId.ENCR_CHACHA20_POLY1305, keyLength: 0 }, IntegId.NONE, key, null, (n) => {
      assert.equal(n, 8);
      return iv;
    });
    // The example's plaintext has no padding: the payload and a zero pad-length octet.
    const withPad = hexField(v, 'plaintext_with_pad');
    assert.equal(withPad[withPad.length - 1], 0);
    const payload = withPad.subarray(0, withPad.length - 1);
    const body = sk.seal(aad, payload);
    assert.equal(body.toString('hex'), str(v, 'sk_payload_body'));
    assert.equal(sk.sealedLength(payload.length), body.length);
    assert.deepEqual(sk.open(aad, hexField(v, 'sk_payload_body')), payload);
  });
});

describe('crypto/sk: SK payloads from a real peer (Wireshark sample capture)', () => {
  const samples = asArray(asRecord(fixtureJson('ikev2_esp_verified_samples.json')).samples).map((s) => asRecord(s));
  const ike = samples.filter((s) => str(s, 'kind').startsWith('ike_AES-GCM') || str(s, 'kind').startsWith('ike_AES-CBC'));

  it('has the GCM and CBC IKE_AUTH requests', () => assert.equal(ike.length, 2));

  for (const s of ike) {
    it(str(s, 'kind'), () => {
      const gcm = str(s, 'kind').startsWith('ike_AES-GCM');
      const msg = hexField(s, 'ike_message');
      // Initiator's IKE_AUTH: the first payload is SK, so the AAD is header + SK header.
      assert.equal(msg[16], 46);
      const aad = msg.subarray(0, 32);
      const body = msg.subarray(32);
      const sk = gcm
        ? createSkCipher({ id: EncrId.ENCR_AES_GCM_16, keyLength: 256 }, IntegId.NONE, hexField(s, 'sk_e'), null)
        : createSkCipher({ id: EncrId.ENCR_AES_CBC, keyLength: 256 }, IntegId.AUTH_HMAC_SHA2_256_128, hexField(s, 'sk_e'), hexField(s, 'sk_a'));
      const padded = hexField(s, 'plaintext');
      const padLen = padded[padded.length - 1]!;
      assert.deepEqual(sk.open(aad, body), padded.subarray(0, padded.length - 1 - padLen));
      if (!gcm) assert.equal(integIcvBytes(IntegId.AUTH_HMAC_SHA2_256_128), 16);
      const bad = Buffer.from(body);
      bad[body.length - 1]! ^= 1;
      assert.throws(() => sk.open(aad, bad), IntegrityError);
    });
  }
});
