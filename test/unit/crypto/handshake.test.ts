/**
 * The whole IKEv2 key chain against a handshake recorded with a real
 * responder (see test/fixtures/crypto/README.md): DH with the recorded
 * private key, SKEYSEED and SK_*, opening and re-sealing the IKE_AUTH SK
 * payloads, both PSK AUTH values, and the first CHILD_SA's KEYMAT.
 */
import assert from 'node:assert/strict';
import {
  createKeyExchange, createSkCipher, deriveChildKeys, deriveIkeKeys, pskAuth, signedOctets, verifyPskAuth, type IkeSuite,
} from '../../../src/crypto/index.js';
import { IntegId, PayloadType, TransformAttr, TransformType } from '../../../src/wire/ikev2/constants.js';
import { asRecord, fixtureJson, hexField, str } from './fixtures.js';

interface Payload { type: number; body: Buffer }

/** Just enough of RFC 7296 3.2 to find payloads; the real codec lives in wire/. */
function walk(first: number, buf: Buffer): Payload[] {
  const out: Payload[] = [];
  let type = first;
  let off = 0;
  while (type !== PayloadType.NONE) {
    const len = buf.readUInt16BE(off + 2);
    assert.ok(len >= 4 && off + len <= buf.length, 'payload length');
    out.push({ type, body: buf.subarray(off + 4, off + len) });
    if (type === PayloadType.SK) break; // SK is last; its Next Payload names the first inner payload
    type = buf[off]!;
    off += len;
  }
  return out;
}

const messagePayloads = (msg: Buffer): Payload[] => walk(msg[16]!, msg.subarray(28));

function find(ps: Payload[], type: number): Buffer {
  const p = ps.find((x) => x.type === type);
  if (!p) throw new Error(`payload ${type} not found`);
  return p.body;
}

/** RFC 7296 3.3: the transforms of the single proposal in an SA payload, keyed by type. */
function chosenTransforms(sa: Buffer): Map<number, { id: number; keyLength: number }> {
  const spiSize = sa[6]!;
  const count = sa[7]!;
  const out = new Map<number, { id: number; keyLength: number }>();
  let off = 8 + spiSize;
  for (let i = 0; i < count; i++) {
    const len = sa.readUInt16BE(off + 2);
    const type = sa[off + 4]!;
    const id = sa.readUInt16BE(off + 6);
    let keyLength = 0;
    // RFC 7296 3.3.5: TV-format attribute (AF bit set) for Key Length.
    if (len >= 12 && sa.readUInt16BE(off + 8) === (0x8000 | TransformAttr.KEY_LENGTH)) keyLength = sa.readUInt16BE(off + 10);
    out.set(type, { id, keyLength });
    off += len;
  }
  return out;
}

function transform(t: Map<number, { id: number; keyLength: number }>, type: number): { id: number; keyLength: number } {
  const v = t.get(type);
  if (!v) throw new Error(`transform type ${type} missing`);
  return v;
}

describe('crypto: recorded IKEv2 PSK handshake (AES-CBC-128, HMAC-SHA1-96, PRF-HMAC-SHA1, MODP-1024)', () => {
  const f = asRecord(fixtureJson('ikev2-recorded-handshake-psk-aes128-sha1-modp1024.json'));
  const m1 = hexField(f, 'm1_ike_sa_init_req');
  const m2 = hexField(f, 'm2_ike_sa_init_resp');
  const m3 = hexField(f, 'm3_ike_auth_req');
  const m4 = hexField(f, 'm4_ike_auth_resp');
  const p1 = messagePayloads(m1);
  const p2 = messagePayloads(m2);
  // KE payload body: DH group (2), reserved (2), then the key exchange data.
  const gi = find(p1, PayloadType.KE).subarray(4);
  const gr = find(p2, PayloadType.KE).subarray(4);
  const ni = find(p1, PayloadType.NONCE);
  const nr = find(p2, PayloadType.NONCE);
  const spiI = m1.subarray(0, 8);
  const spiR = m2.subarray(8, 16);

  const t = chosenTransforms(find(p2, PayloadType.SA));
  const suite: IkeSuite = {
    encr: transform(t, TransformType.ENCR),
    integ: transform(t, TransformType.INTEG).id,
    prf: transform(t, TransformType.PRF).id,
    dh: transform(t, TransformType.DH).id,
  };

  it('the messages agree with the recorded values', () => {
    assert.deepEqual(gi, hexField(f, 'g_i'));
    assert.deepEqual(gr, hexField(f, 'g_r'));
    assert.deepEqual(ni, hexField(f, 'Ni'));
    assert.deepEqual(nr, hexField(f, 'Nr'));
    assert.deepEqual(spiI, hexField(f, 'SPIi'));
    assert.deepEqual(spiR, hexField(f, 'SPIr'));
    assert.deepEqual(suite, { encr: { id: 12, keyLength: 128 }, integ: 2, prf: 2, dh: 2 });
  });

  it('g^ir from the recorded private key (MODP-1024)', () => {
    const ke = createKeyExchange(suite.dh, hexField(f, 'initiator_dh_private_x'));
    assert.deepEqual(ke.publicValue, gi, 'recomputed g^i equals the KE payload sent');
    assert.equal(ke.computeSecret(gr).toString('hex'), str(f, 'g_ir'));
  });

  const gir = hexField(f, 'g_ir');
  const { skeyseed, keys } = deriveIkeKeys(suite, ni, nr, gir, spiI, spiR);

  it('SKEYSEED and all seven SK_* keys', () => {
    assert.equal(skeyseed.toString('hex'), str(f, 'SKEYSEED'));
    assert.equal(keys.skD.toString('hex'), str(f, 'SK_d'));
    assert.equal(keys.skAi.toString('hex'), str(f, 'SK_ai'));
    assert.equal(keys.skAr.toString('hex'), str(f, 'SK_ar'));
    assert.equal(keys.skEi.toString('hex'), str(f, 'SK_ei'));
    assert.equal(keys.skEr.toString('hex'), str(f, 'SK_er'));
    assert.equal(keys.skPi.toString('hex'), str(f, 'SK_pi'));
    assert.equal(keys.skPr.toString('hex'), str(f, 'SK_pr'));
  });

  const toResponder = createSkCipher(suite.encr, suite.integ, keys.skEi, keys.skAi);
  const toInitiator = createSkCipher(suite.encr, suite.integ, keys.skEr, keys.skAr);

  /** Opens the SK payload of an IKE_AUTH message and returns the inner payloads. */
  function openAuth(msg: Buffer, cipher: typeof toResponder, recordedPadded: Buffer): Payload[] {
    assert.equal(msg.readUInt32BE(24), msg.length, 'IKE header length');
    assert.equal(msg[16], PayloadType.SK);
    const plain = cipher.open(msg.subarray(0, 32), msg.subarray(32));
    const padLen = recordedPadded[recordedPadded.length - 1]!;
    assert.deepEqual(plain, recordedPadded.subarray(0, recordedPadded.length - 1 - padLen));
    return walk(msg[28]!, plain);
  }

  it('IKE_AUTH request: ICV verifies with SK_ai, decrypts with SK_ei', () => {
    openAuth(m3, toResponder, hexField(f, 'm3_decrypted'));
  });

  it('IKE_AUTH response: ICV verifies with SK_ar, decrypts with SK_er', () => {
    openAuth(m4, toInitiator, hexField(f, 'm4_decrypted'));
  });

  it('the wrong direction\'s keys fail the ICV', () => {
    assert.throws(() => toInitiator.open(m3.subarray(0, 32), m3.subarray(32)), { code: 'ERR_INTEGRITY' });
  });

  it('re-sealing with the recorded IV reproduces the peer\'s ciphertext up to its random padding', () => {
    const padded = hexField(f, 'm3_decrypted');
    const plain = padded.subarray(0, padded.length - 1 - padded[padded.length - 1]!);
    const iv = m3.subarray(32, 48);
    const again = createSkCipher(suite.encr, suite.integ, keys.skEi, keys.skAi, () => Buffer.from(iv));
    const body = again.seal(m3.subarray(0, 32), plain);
    const recorded = m3.subarray(32);
    assert.equal(body.length, recorded.length);
    // Every CBC block before the one holding the padding depends only on the payload.
    const fixedPrefix = 16 + Math.floor(plain.length / 16) * 16;
    assert.deepEqual(body.subarray(0, fixedPrefix), recorded.subarray(0, fixedPrefix));
    assert.deepEqual(toResponder.open(m3.subarray(0, 32), body), plain);
  });

  const psk = hexField(f, 'psk_hex');
  const inner3 = walk(m3[28]!, toResponder.open(m3.subarray(0, 32), m3.subarray(32)));
  const inner4 = walk(m4[28]!, toInitiator.open(m4.subarray(0, 32), m4.subarray(32)));

  it('initiator AUTH = prf(prf(PSK, "Key Pad for IKEv2"), m1 | Nr | prf(SK_pi, IDi\'))', () => {
    const auth = find(inner3, PayloadType.AUTH);
    assert.equal(auth[0], 2, 'Shared Key Message Integrity Code');
    const so = signedOctets(m1, nr, suite.prf, keys.skPi, find(inner3, PayloadType.IDi));
    assert.deepEqual(pskAuth(suite.prf, psk, so), auth.subarray(4));
    assert.ok(!verifyPskAuth(suite.prf, Buffer.from('AAAB'), so, auth.subarray(4)));
  });

  it('responder AUTH = prf(prf(PSK, "Key Pad for IKEv2"), m2 | Ni | prf(SK_pr, IDr\'))', () => {
    const auth = find(inner4, PayloadType.AUTH);
    assert.equal(auth[0], 2);
    const so = signedOctets(m2, ni, suite.prf, keys.skPr, find(inner4, PayloadType.IDr));
    assert.ok(verifyPskAuth(suite.prf, psk, so, auth.subarray(4)));
    // Signing with the other side's SK_p must not verify.
    assert.ok(!verifyPskAuth(suite.prf, psk, signedOctets(m2, ni, suite.prf, keys.skPi, find(inner4, PayloadType.IDr)), auth.subarray(4)));
  });

  it('CHILD_SA KEYMAT for the negotiated ESP transforms (collector-derived, not confirmed by traffic)', () => {
    const esp = chosenTransforms(find(inner4, PayloadType.SA));
    const encr = transform(esp, TransformType.ENCR);
    const integ = transform(esp, TransformType.INTEG).id;
    assert.deepEqual([encr, integ], [{ id: 12, keyLength: 128 }, IntegId.AUTH_HMAC_SHA1_96]);
    const k = deriveChildKeys(suite.prf, keys.skD, ni, nr, encr, integ);
    const split = asRecord(f.child_sa_keymat_split);
    assert.equal(k.encrI.toString('hex'), str(split, 'encr_i'));
    assert.equal(k.integI.toString('hex'), str(split, 'integ_i'));
    assert.equal(k.encrR.toString('hex'), str(split, 'encr_r'));
    assert.equal(k.integR.toString('hex'), str(split, 'integ_r'));
  });
});
