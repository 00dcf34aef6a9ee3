/**
 * Replays the RUB-NDS recorded Main Mode and Aggressive Mode PSK handshakes
 * and their Quick Modes (AES-128-CBC, SHA-1, MODP-1024, PSK "AAAA") through
 * the codec and the key schedule: every message decodes field by field and
 * re-encodes to the recorded bytes; g^xy comes from the recorded private
 * key; SKEYID*, the IV chain, every decryption and every HASH are recomputed
 * and compared with what the real responder sent.
 */
import assert from 'node:assert/strict';
import {
  V1IvChain, createV1KeyExchange, v1Cipher, v1Decrypt, v1DerivePhase1Keys, v1Encrypt, v1EspKeyLengths, v1HashI, v1HashR,
  v1QuickHash1, v1QuickHash2, v1QuickHash3, v1QuickKeymat,
} from '../../../src/crypto/ikev1/index.js';
import type { V1CipherInfo, V1Phase1Keys, V1Phase1Transcript } from '../../../src/crypto/ikev1/index.js';
import {
  EncapsulationMode, EspTransformId, IpsecAuthAlg, IsakmpTransformId, V1AuthMethod, V1EncryptionAlg, V1ExchangeType,
  V1Group, V1HashAlg, V1IdType, V1PayloadType, V1ProtocolId, checkV1Message, decodeIsakmp, decodeV1PayloadChain, encodeIsakmp,
  encodeIsakmpEncrypted, encodeV1PayloadChain, findV1Payload, findV1Payloads, ipsecAttributes, phase1Attributes, splitV1Hash,
  vendorIdName, walkV1PayloadChain,
} from '../../../src/wire/ikev1/index.js';
import type {
  IsakmpEncryptedMessage, IsakmpMessage, IsakmpPlainMessage, V1IdPayload, V1Payload, V1SaPayload,
} from '../../../src/wire/ikev1/index.js';
import { H, recorded } from './fixtures.js';
import type { RecordedHandshake } from './fixtures.js';

const PSK = Buffer.from('AAAA', 'ascii');
const SHA1 = V1HashAlg.SHA;
const hex = (b: Buffer): string => b.toString('hex');

function plain(m: IsakmpMessage): IsakmpPlainMessage {
  assert.equal(m.encrypted, false);
  return m as IsakmpPlainMessage;
}
function encrypted(m: IsakmpMessage): IsakmpEncryptedMessage {
  assert.equal(m.encrypted, true);
  return m as IsakmpEncryptedMessage;
}
function must<T>(v: T | undefined, what: string): T {
  assert.ok(v !== undefined, `missing ${what}`);
  return v;
}

/** The raw body of the first payload of `type` in a plaintext message (what RFC 2409 hashes as *_b). */
function rawBody(msg: Buffer, type: number): Buffer {
  const raw = walkV1PayloadChain(msg[16]!, msg.subarray(28));
  return must(raw.find((p) => p.type === type), `payload ${type}`).body;
}

function checkHeader(m: IsakmpMessage, hs: RecordedHandshake, exchange: number, messageId: number, responderCookie: boolean, length: number): void {
  const h = m.header;
  assert.equal(hex(h.cookieI), hs.CKY_I);
  assert.equal(hex(h.cookieR), responderCookie ? hs.CKY_R : '0000000000000000');
  assert.equal(h.majorVersion, 1);
  assert.equal(h.minorVersion, 0);
  assert.equal(h.exchangeType, exchange);
  assert.equal(h.messageId, messageId);
  assert.equal(h.length, length);
  assert.equal(h.flags.commit, false);
  assert.equal(h.flags.authOnly, false);
}

/** RFC 2409 5: the phase 1 SA the initiator offered and the responder took (transform numbers differ). */
function checkPhase1Sa(p: V1SaPayload, transformNum: number): void {
  assert.equal(p.doi, 1);
  assert.equal(p.situation, 1);
  assert.equal(p.proposals.length, 1);
  const prop = p.proposals[0]!;
  assert.deepEqual([prop.num, prop.protocol, prop.spi.length, prop.transforms.length], [0, V1ProtocolId.ISAKMP, 0, 1]);
  const t = prop.transforms[0]!;
  assert.equal(t.num, transformNum);
  assert.equal(t.id, IsakmpTransformId.KEY_IKE);
  assert.deepEqual(phase1Attributes(t), {
    encryption: V1EncryptionAlg.AES_CBC, keyLength: 128, hash: V1HashAlg.SHA, group: V1Group.MODP_1024,
    authMethod: V1AuthMethod.PRE_SHARED_KEY, life: { seconds: 28800 },
  });
}

function checkId(p: V1IdPayload | undefined, idType: number, data: string): void {
  const id = must(p, 'ID');
  assert.deepEqual([id.idType, id.protocol, id.port, hex(id.data)], [idType, 0, 0, data]);
}

/** A plaintext message re-encodes to the recorded bytes. */
function reencodes(buf: Buffer, m: IsakmpPlainMessage): void {
  assert.equal(hex(encodeIsakmp(m.header, m.payloads)), hex(buf));
}

interface Keys { keys: V1Phase1Keys; cipher: V1CipherInfo; transcript: V1Phase1Transcript; chain: V1IvChain }

/** g^xy from the recorded private key, then SKEYID*, Ka and the first IV (RFC 2409 5, appendix B). */
function phase1Keys(hs: RecordedHandshake, saiB: Buffer, gxi: Buffer, gxr: Buffer): Keys {
  const ke = createV1KeyExchange(V1Group.MODP_1024, H(hs.initiator_dh_private_x));
  assert.equal(hex(ke.publicValue), hex(gxi), 'the private key reproduces the recorded g^xi');
  const gxy = ke.computeSecret(gxr);
  assert.equal(hex(gxy), hs.g_xy);
  const cipher = v1Cipher(V1EncryptionAlg.AES_CBC, 128);
  const keys = v1DerivePhase1Keys({
    hashId: SHA1, auth: { method: 'psk', psk: PSK }, niB: H(hs.Ni_b), nrB: H(hs.Nr_b), gxy, ckyI: H(hs.CKY_I), ckyR: H(hs.CKY_R), keyBytes: cipher.keyBytes,
  });
  assert.equal(hex(keys.skeyid), hs.SKEYID);
  assert.equal(hex(keys.skeyidD), hs.SKEYID_d);
  assert.equal(hex(keys.skeyidA), hs.SKEYID_a);
  assert.equal(hex(keys.skeyidE), hs.SKEYID_e);
  assert.equal(hex(keys.encryptionKey), hs.Ka_aes128);
  const chain = new V1IvChain(SHA1, cipher.blockBytes, gxi, gxr);
  assert.equal(hex(chain.iv(0)), hs.phase1_IV0);
  return { keys, cipher, chain, transcript: { gxi, gxr, ckyI: H(hs.CKY_I), ckyR: H(hs.CKY_R), saiB } };
}

/**
 * Decrypts one recorded message with the chain's IV, checks the plaintext
 * against the recording, decodes it, checks that re-encoding and
 * re-encrypting give the recorded bytes back, then advances the chain.
 */
function openMessage(k: Keys, buf: Buffer, expectedPlain: string): { msg: IsakmpEncryptedMessage; plaintext: Buffer; payloads: V1Payload[] } {
  const msg = encrypted(decodeIsakmp(buf));
  const iv = k.chain.iv(msg.header.messageId);
  const { plaintext, nextIv } = v1Decrypt(k.cipher, k.keys.encryptionKey, iv, msg.ciphertext);
  assert.equal(hex(plaintext), expectedPlain);
  const payloads = decodeV1PayloadChain(msg.firstPayload, plaintext);
  const { firstType, bytes } = encodeV1PayloadChain(payloads);
  assert.equal(firstType, msg.firstPayload);
  assert.equal(hex(bytes), hex(plaintext.subarray(0, bytes.length)), 're-encoding gives the plaintext up to its padding');
  assert.ok(plaintext.subarray(bytes.length).every((b) => b === 0), 'the responder padded with zeros');
  const again = v1Encrypt(k.cipher, k.keys.encryptionKey, iv, bytes);
  assert.equal(hex(encodeIsakmpEncrypted(msg.header, firstType, again.ciphertext)), hex(buf), 're-encryption gives the recorded message');
  assert.deepEqual(again.nextIv, nextIv);
  k.chain.advance(msg.header.messageId, msg.ciphertext);
  return { msg, plaintext, payloads };
}

/** RFC 2409 5.5: one Quick Mode without PFS, its three hashes and KEYMAT for both SPIs. */
function replayQuickMode(hs: RecordedHandshake, k: Keys): void {
  const mid = parseInt(hs.QM_message_id, 16);
  assert.equal(hex(k.chain.iv(mid)), hs.QM_IV, 'QM IV = hash(last phase 1 CBC block | M-ID)');

  const qm1 = openMessage(k, H(hs.qm1), hs.qm1_decrypted);
  const qm2 = openMessage(k, H(hs.qm2), hs.qm2_decrypted);
  const qm3 = openMessage(k, H(hs.qm3), hs.qm3_decrypted);
  for (const [i, m] of [qm1, qm2, qm3].entries()) {
    checkHeader(m.msg, hs, V1ExchangeType.QUICK, mid, true, H([hs.qm1, hs.qm2, hs.qm3][i]!).length);
    checkV1Message(V1ExchangeType.QUICK, i + 1, true, m.payloads);
  }

  for (const [m, spi, nonce] of [[qm1, hs.QM_SPI_initiator, hs.QM_Ni_b], [qm2, hs.QM_SPI_responder, hs.QM_Nr_b]] as const) {
    const sa = must(findV1Payload(m.payloads, V1PayloadType.SA), 'SA');
    const prop = must(sa.proposals[0], 'proposal');
    assert.deepEqual([prop.protocol, hex(prop.spi), prop.transforms.length], [V1ProtocolId.IPSEC_ESP, spi, 1]);
    const t = prop.transforms[0]!;
    assert.equal(t.id, EspTransformId.ESP_AES);
    assert.deepEqual(ipsecAttributes(t), {
      encapsulation: EncapsulationMode.TUNNEL, authAlgorithm: IpsecAuthAlg.HMAC_SHA, keyLength: 128, esn: false, life: { seconds: 3600 },
    });
    assert.equal(hex(must(findV1Payload(m.payloads, V1PayloadType.NONCE), 'Nonce').data), nonce);
    assert.equal(findV1Payloads(m.payloads, V1PayloadType.ID).length, 2, 'IDci and IDcr');
    assert.equal(findV1Payload(m.payloads, V1PayloadType.KE), undefined, 'no PFS');
  }
  const [idci, idcr] = findV1Payloads(qm2.payloads, V1PayloadType.ID);
  checkId(idci, V1IdType.ID_IPV4_ADDR, '0a000301');
  checkId(idcr, V1IdType.ID_IPV4_ADDR_SUBNET, '0a010000ffffff00');

  const skeyidA = k.keys.skeyidA;
  const niB = H(hs.QM_Ni_b);
  const nrB = H(hs.QM_Nr_b);
  const s1 = splitV1Hash(qm1.msg.firstPayload, qm1.plaintext);
  assert.equal(hex(s1.hash), hs.HASH1);
  assert.equal(hex(v1QuickHash1(SHA1, skeyidA, mid, s1.rest)), hs.HASH1);
  // A sender hashes the encoding of the payloads that follow HASH(1); it must be the same bytes.
  assert.equal(hex(v1QuickHash1(SHA1, skeyidA, mid, encodeV1PayloadChain(qm1.payloads.slice(1)).bytes)), hs.HASH1);
  const s2 = splitV1Hash(qm2.msg.firstPayload, qm2.plaintext);
  assert.equal(hex(s2.hash), hs.HASH2);
  assert.equal(hex(v1QuickHash2(SHA1, skeyidA, mid, niB, s2.rest)), hs.HASH2);
  assert.notEqual(hex(v1QuickHash1(SHA1, skeyidA, mid, s2.rest)), hs.HASH2, 'HASH(2) needs Ni_b');
  const s3 = splitV1Hash(qm3.msg.firstPayload, qm3.plaintext);
  assert.equal(s3.rest.length, 0);
  assert.equal(hex(s3.hash), hs.HASH3);
  assert.equal(hex(v1QuickHash3(SHA1, skeyidA, mid, niB, nrB)), hs.HASH3);

  const { encr, integ } = v1EspKeyLengths(EspTransformId.ESP_AES, 128, IpsecAuthAlg.HMAC_SHA);
  assert.equal(encr + integ, 36);
  assert.equal(hs.QM_PFS, false);
  for (const [spi, expected] of [[hs.QM_SPI_initiator, hs.KEYMAT_for_SPI_initiator_36B], [hs.QM_SPI_responder, hs.KEYMAT_for_SPI_responder_36B]] as const) {
    const keymat = v1QuickKeymat(SHA1, k.keys.skeyidD, { protocol: hs.QM_protocol, spi: H(spi), niB, nrB }, encr + integ);
    assert.equal(hex(keymat), expected);
  }
}

describe('IKEv1 replay: RUB-NDS Main Mode PSK + Quick Mode', () => {
  const hs = recorded().main;
  const m = Object.fromEntries(Object.entries(hs.messages).map(([name, v]) => [name, H(v)])) as Record<string, Buffer>;

  it('decodes and re-encodes Main Mode messages 1-4 field by field (RFC 2409 5.4)', () => {
    const m1 = plain(decodeIsakmp(m.m1!));
    checkHeader(m1, hs, V1ExchangeType.IDENTITY_PROTECTION, 0, false, m.m1!.length);
    assert.equal(m1.header.nextPayload, V1PayloadType.SA);
    checkPhase1Sa(must(findV1Payload(m1.payloads, V1PayloadType.SA), 'SA'), 0);
    assert.equal(hex(rawBody(m.m1!, V1PayloadType.SA)), hs.SAi_b, 'SAi_b is the SA body as sent');

    const m2 = plain(decodeIsakmp(m.m2!));
    checkHeader(m2, hs, V1ExchangeType.IDENTITY_PROTECTION, 0, true, m.m2!.length);
    checkPhase1Sa(must(findV1Payload(m2.payloads, V1PayloadType.SA), 'SA'), 1);
    assert.deepEqual(findV1Payloads(m2.payloads, V1PayloadType.VID).map((v) => vendorIdName(v.data)), ['XAUTH', 'DPD']);

    const m3 = plain(decodeIsakmp(m.m3!));
    assert.equal(hex(must(findV1Payload(m3.payloads, V1PayloadType.KE), 'KE').data), hs.g_xi);
    assert.equal(hex(must(findV1Payload(m3.payloads, V1PayloadType.NONCE), 'Nonce').data), hs.Ni_b);
    const m4 = plain(decodeIsakmp(m.m4!));
    assert.equal(hex(must(findV1Payload(m4.payloads, V1PayloadType.KE), 'KE').data), hs.g_xr);
    assert.equal(hex(must(findV1Payload(m4.payloads, V1PayloadType.NONCE), 'Nonce').data), hs.Nr_b);

    for (const [i, msg] of [m1, m2, m3, m4].entries()) {
      reencodes(m[`m${i + 1}`]!, msg);
      checkV1Message(V1ExchangeType.IDENTITY_PROTECTION, i + 1, false, msg.payloads);
    }
    for (const name of ['m5', 'm6']) {
      const e = encrypted(decodeIsakmp(m[name]!));
      checkHeader(e, hs, V1ExchangeType.IDENTITY_PROTECTION, 0, true, m[name]!.length);
      assert.equal(e.firstPayload, V1PayloadType.ID);
      assert.equal(e.ciphertext.length, 48);
    }
  });

  it('recomputes the keys, decrypts messages 5 and 6, verifies HASH_I / HASH_R, then replays Quick Mode', () => {
    const saiB = rawBody(m.m1!, V1PayloadType.SA);
    const k = phase1Keys(hs, saiB, rawBody(m.m3!, V1PayloadType.KE), rawBody(m.m4!, V1PayloadType.KE));
    const m5 = openMessage(k, m.m5!, must(hs.m5_decrypted, 'm5_decrypted'));
    const m6 = openMessage(k, m.m6!, must(hs.m6_decrypted, 'm6_decrypted'));
    checkV1Message(V1ExchangeType.IDENTITY_PROTECTION, 5, true, m5.payloads);
    checkV1Message(V1ExchangeType.IDENTITY_PROTECTION, 6, true, m6.payloads);
    checkId(findV1Payload(m5.payloads, V1PayloadType.ID), V1IdType.ID_IPV4_ADDR, '0a000301');
    checkId(findV1Payload(m6.payloads, V1PayloadType.ID), V1IdType.ID_IPV4_ADDR, '0a00030a');

    const idiiB = must(walkV1PayloadChain(m5.msg.firstPayload, m5.plaintext)[0], 'IDii').body;
    const idirB = must(walkV1PayloadChain(m6.msg.firstPayload, m6.plaintext)[0], 'IDir').body;
    assert.deepEqual([hex(idiiB), hex(idirB)], [hs.IDii_b, hs.IDir_b]);
    const hashI = v1HashI(SHA1, k.keys.skeyid, k.transcript, idiiB);
    const hashR = v1HashR(SHA1, k.keys.skeyid, k.transcript, idirB);
    assert.equal(hex(hashI), hs.HASH_I);
    assert.equal(hex(hashR), hs.HASH_R);
    assert.equal(hex(must(findV1Payload(m5.payloads, V1PayloadType.HASH), 'HASH_I').data), hex(hashI));
    assert.equal(hex(must(findV1Payload(m6.payloads, V1PayloadType.HASH), 'HASH_R').data), hex(hashR));

    replayQuickMode(hs, k);
  });
});

describe('IKEv1 replay: RUB-NDS Aggressive Mode PSK + Quick Mode', () => {
  const hs = recorded().aggressive;
  const m = Object.fromEntries(Object.entries(hs.messages).map(([name, v]) => [name, H(v)])) as Record<string, Buffer>;

  it('decodes and re-encodes all three Aggressive Mode messages field by field (RFC 2409 5.4)', () => {
    const m1 = plain(decodeIsakmp(m.m1!));
    checkHeader(m1, hs, V1ExchangeType.AGGRESSIVE, 0, false, m.m1!.length);
    checkPhase1Sa(must(findV1Payload(m1.payloads, V1PayloadType.SA), 'SA'), 0);
    assert.equal(hex(must(findV1Payload(m1.payloads, V1PayloadType.KE), 'KE').data), hs.g_xi);
    assert.equal(hex(must(findV1Payload(m1.payloads, V1PayloadType.NONCE), 'Nonce').data), hs.Ni_b);
    checkId(findV1Payload(m1.payloads, V1PayloadType.ID), V1IdType.ID_IPV4_ADDR, '0a000301');
    assert.equal(hex(rawBody(m.m1!, V1PayloadType.ID)), hs.IDii_b);

    const m2 = plain(decodeIsakmp(m.m2!));
    checkHeader(m2, hs, V1ExchangeType.AGGRESSIVE, 0, true, m.m2!.length);
    checkPhase1Sa(must(findV1Payload(m2.payloads, V1PayloadType.SA), 'SA'), 1);
    assert.equal(hex(must(findV1Payload(m2.payloads, V1PayloadType.KE), 'KE').data), hs.g_xr);
    assert.equal(hex(must(findV1Payload(m2.payloads, V1PayloadType.NONCE), 'Nonce').data), hs.Nr_b);
    assert.equal(hex(rawBody(m.m2!, V1PayloadType.ID)), hs.IDir_b);
    assert.equal(hex(must(findV1Payload(m2.payloads, V1PayloadType.HASH), 'HASH_R').data), hs.HASH_R);
    assert.deepEqual(findV1Payloads(m2.payloads, V1PayloadType.VID).map((v) => vendorIdName(v.data)), ['XAUTH', 'DPD']);

    assert.equal(hs.m3_encrypted, false);
    const m3 = plain(decodeIsakmp(m.m3!));
    assert.equal(m3.header.flags.encryption, false);
    assert.deepEqual(m3.payloads.map((p) => p.type), [V1PayloadType.HASH]);
    assert.equal(hex(must(findV1Payload(m3.payloads, V1PayloadType.HASH), 'HASH_I').data), hs.HASH_I);

    for (const [i, msg] of [m1, m2, m3].entries()) {
      reencodes(m[`m${i + 1}`]!, msg);
      checkV1Message(V1ExchangeType.AGGRESSIVE, i + 1, false, msg.payloads);
    }
  });

  it('recomputes the keys and both hashes, then replays Quick Mode from the unmoved phase 1 IV', () => {
    const k = phase1Keys(hs, rawBody(m.m1!, V1PayloadType.SA), rawBody(m.m1!, V1PayloadType.KE), rawBody(m.m2!, V1PayloadType.KE));
    assert.equal(hex(v1HashR(SHA1, k.keys.skeyid, k.transcript, rawBody(m.m2!, V1PayloadType.ID))), hs.HASH_R);
    assert.equal(hex(v1HashI(SHA1, k.keys.skeyid, k.transcript, rawBody(m.m1!, V1PayloadType.ID))), hs.HASH_I);
    // Message 3 went in the clear, so no phase 1 CBC block exists and Quick Mode starts from IV0 (appendix B).
    replayQuickMode(hs, k);
  });

  it('fails the hashes with the wrong pre-shared key', () => {
    const hs2 = { ...hs };
    const k = v1DerivePhase1Keys({
      hashId: SHA1, auth: { method: 'psk', psk: Buffer.from('AAAB') }, niB: H(hs2.Ni_b), nrB: H(hs2.Nr_b), gxy: H(hs2.g_xy),
      ckyI: H(hs2.CKY_I), ckyR: H(hs2.CKY_R), keyBytes: 16,
    });
    const t = { gxi: H(hs2.g_xi), gxr: H(hs2.g_xr), ckyI: H(hs2.CKY_I), ckyR: H(hs2.CKY_R), saiB: H(hs2.SAi_b) };
    assert.notEqual(hex(v1HashR(SHA1, k.skeyid, t, H(hs2.IDir_b))), hs2.HASH_R);
    assert.equal(hex(v1HashR(SHA1, H(hs2.SKEYID), t, H(hs2.IDir_b))), hs2.HASH_R);
  });
});
