/**
 * Protection of the SK payload body (RFC 7296 3.14, RFC 5282, RFC 7634) for
 * one direction of an IKE SA. AES and ChaCha20-Poly1305 come from OpenSSL.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import type { SkCipher } from './api.js';
import { encrCipherKeyBits, encrInfo, encrKeyBytes, integInfo, type EncrInfo, type IntegInfo } from './registry.js';
import { IntegrityError, MalformedError, UnsupportedError } from '../util/errors.js';
import { safeEqual } from '../util/bytes.js';
import { IntegId } from '../wire/ikev2/constants.js';

/** Supplies IV octets; tests inject a fixed one to reproduce known answers. */
export type IvSource = (length: number) => Buffer;

type AeadName = 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

interface AeadParams { name: AeadName; info: EncrInfo; key: Buffer; salt: Buffer }

function aeadParams(encrId: number, keyWithSalt: Buffer): AeadParams {
  const info = encrInfo(encrId);
  let name: AeadName;
  if (info.mode === 'gcm') {
    const bits = (keyWithSalt.length - info.saltBytes) * 8;
    if (bits !== 128 && bits !== 192 && bits !== 256) throw new MalformedError('AEAD key', `${keyWithSalt.length} octets`);
    name = bits === 128 ? 'aes-128-gcm' : bits === 192 ? 'aes-192-gcm' : 'aes-256-gcm';
  } else if (info.mode === 'chacha20-poly1305') {
    if (keyWithSalt.length !== 36) throw new MalformedError('AEAD key', `${keyWithSalt.length} octets`);
    name = 'chacha20-poly1305';
  } else {
    throw new UnsupportedError(`AEAD use of encryption algorithm ${encrId}`);
  }
  const cut = keyWithSalt.length - info.saltBytes;
  return { name, info, key: keyWithSalt.subarray(0, cut), salt: keyWithSalt.subarray(cut) };
}

/**
 * AEAD encryption as RFC 4106 3 / RFC 5282 3 / RFC 7634 2 frame it:
 * nonce = salt(4) || IV(8), the salt being the last 4 octets of the key
 * material. Returns ciphertext || tag. Shared with ESP, which uses the same
 * construction with a different AAD.
 */
export function aeadSeal(encrId: number, keyWithSalt: Buffer, iv: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const p = aeadParams(encrId, keyWithSalt);
  if (iv.length !== p.info.ivBytes) throw new MalformedError('AEAD IV', `${iv.length} octets`);
  const nonce = Buffer.concat([p.salt, iv]);
  const opts = { authTagLength: p.info.tagBytes };
  const c = p.name === 'chacha20-poly1305'
    ? createCipheriv(p.name, p.key, nonce, opts)
    : createCipheriv(p.name, p.key, nonce, opts);
  c.setAAD(aad, { plaintextLength: plaintext.length });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** Inverse of aeadSeal; throws IntegrityError when the tag does not verify. */
export function aeadOpen(encrId: number, keyWithSalt: Buffer, iv: Buffer, aad: Buffer, sealed: Buffer): Buffer {
  const p = aeadParams(encrId, keyWithSalt);
  if (iv.length !== p.info.ivBytes) throw new MalformedError('AEAD IV', `${iv.length} octets`);
  if (sealed.length < p.info.tagBytes) throw new MalformedError('AEAD ciphertext', `${sealed.length} octets is shorter than the tag`);
  const nonce = Buffer.concat([p.salt, iv]);
  const opts = { authTagLength: p.info.tagBytes };
  const d = p.name === 'chacha20-poly1305'
    ? createDecipheriv(p.name, p.key, nonce, opts)
    : createDecipheriv(p.name, p.key, nonce, opts);
  const tagAt = sealed.length - p.info.tagBytes;
  d.setAuthTag(sealed.subarray(tagAt));
  d.setAAD(aad, { plaintextLength: sealed.length - p.info.tagBytes });
  const body = d.update(sealed.subarray(0, tagAt));
  try {
    // The plaintext is only released once final() has checked the tag.
    return Buffer.concat([body, d.final()]);
  } catch {
    throw new IntegrityError('AEAD tag');
  }
}

/**
 * RFC 7296 3.14: after decryption the last octet is the Pad Length; it must
 * leave room for itself.
 */
function stripPadding(padded: Buffer): Buffer {
  if (padded.length < 1) throw new MalformedError('SK payload', 'no pad length octet');
  const padLen = padded[padded.length - 1]!;
  if (padLen > padded.length - 1) throw new MalformedError('SK payload', `pad length ${padLen} exceeds ${padded.length - 1} octets`);
  return Buffer.from(padded.subarray(0, padded.length - 1 - padLen));
}

/** RFC 7296 3.14 with AES-CBC (RFC 3602) and a truncated-HMAC ICV. */
class CbcSkCipher implements SkCipher {
  private readonly cipher: string;
  constructor(
    private readonly info: EncrInfo,
    keyBits: number,
    private readonly key: Buffer,
    private readonly integ: IntegInfo,
    private readonly integKey: Buffer,
    private readonly ivSource: IvSource,
  ) {
    this.cipher = `aes-${keyBits}-cbc`;
  }

  private paddedLength(plainLength: number): number {
    const b = this.info.blockBytes;
    return Math.ceil((plainLength + 1) / b) * b;
  }

  sealedLength(plainLength: number): number {
    return this.info.ivBytes + this.paddedLength(plainLength) + this.integ.icvBytes;
  }

  private icv(aad: Buffer, ivAndCiphertext: Buffer): Buffer {
    // RFC 7296 3.14: the checksum covers the IKE header through the encrypted data.
    return createHmac(this.integ.hash, this.integKey).update(aad).update(ivAndCiphertext).digest().subarray(0, this.integ.icvBytes);
  }

  seal(aad: Buffer, plaintext: Buffer): Buffer {
    // RFC 7296 3.14: the IV must be unpredictable, so a fresh random block per message, never chained.
    const iv = this.ivSource(this.info.ivBytes);
    if (iv.length !== this.info.ivBytes) throw new MalformedError('SK IV', `${iv.length} octets`);
    const padLen = this.paddedLength(plaintext.length) - plaintext.length - 1;
    const c = createCipheriv(this.cipher, this.key, iv);
    c.setAutoPadding(false);
    // Padding content is arbitrary (3.14); zeros keep it deterministic.
    const ct = Buffer.concat([c.update(plaintext), c.update(Buffer.alloc(padLen)), c.update(Buffer.from([padLen])), c.final()]);
    const ivCt = Buffer.concat([iv, ct]);
    return Buffer.concat([ivCt, this.icv(aad, ivCt)]);
  }

  open(aad: Buffer, body: Buffer): Buffer {
    const { ivBytes, blockBytes } = this.info;
    const icvBytes = this.integ.icvBytes;
    const ctLen = body.length - ivBytes - icvBytes;
    if (ctLen < blockBytes || ctLen % blockBytes !== 0) {
      throw new MalformedError('SK payload', `body of ${body.length} octets does not hold IV, whole blocks and ICV`);
    }
    const ivCt = body.subarray(0, ivBytes + ctLen);
    // Authenticate before decrypting, so no padding or plaintext oracle is ever exposed.
    if (!safeEqual(this.icv(aad, ivCt), body.subarray(ivBytes + ctLen))) throw new IntegrityError('SK payload ICV');
    const d = createDecipheriv(this.cipher, this.key, body.subarray(0, ivBytes));
    d.setAutoPadding(false);
    return stripPadding(Buffer.concat([d.update(body.subarray(ivBytes, ivBytes + ctLen)), d.final()]));
  }
}

const COUNTER_MASK = (1n << 64n) - 1n;

/**
 * RFC 5282 / RFC 7634 SK payload. IV policy: a 64-bit counter that starts at
 * a random value per SkCipher (i.e. per key and direction) and increments per
 * message. RFC 4106 3.1 (followed by RFC 5282) only forbids repeating an IV under a key;
 * a counter guarantees that, where random IVs would only make it likely, and
 * the random start keeps the IV from revealing the message count. The
 * message ID is not used because retransmissions and INFORMATIONAL
 * exchanges would need care to keep it unique across both directions.
 */
class AeadSkCipher implements SkCipher {
  private counter: bigint;
  private readonly start: bigint;
  private exhausted = false;

  constructor(
    private readonly info: EncrInfo,
    private readonly keyWithSalt: Buffer,
    private readonly ivSource: IvSource | undefined,
  ) {
    this.start = randomBytes(8).readBigUInt64BE();
    this.counter = this.start;
  }

  private nextIv(): Buffer {
    if (this.ivSource) {
      const iv = this.ivSource(this.info.ivBytes);
      if (iv.length !== this.info.ivBytes) throw new MalformedError('SK IV', `${iv.length} octets`);
      return iv;
    }
    if (this.exhausted) throw new UnsupportedError('more than 2^64 messages under one SK key');
    const iv = Buffer.alloc(8);
    iv.writeBigUInt64BE(this.counter);
    this.counter = (this.counter + 1n) & COUNTER_MASK;
    if (this.counter === this.start) this.exhausted = true;
    return iv;
  }

  sealedLength(plainLength: number): number {
    // RFC 5282: no alignment needed, so no padding; the Pad Length octet is always there.
    return this.info.ivBytes + plainLength + 1 + this.info.tagBytes;
  }

  seal(aad: Buffer, plaintext: Buffer): Buffer {
    const iv = this.nextIv();
    const sealed = aeadSeal(this.info.id, this.keyWithSalt, iv, aad, Buffer.concat([plaintext, Buffer.from([0])]));
    return Buffer.concat([iv, sealed]);
  }

  open(aad: Buffer, body: Buffer): Buffer {
    const { ivBytes, tagBytes } = this.info;
    if (body.length < ivBytes + 1 + tagBytes) {
      throw new MalformedError('SK payload', `body of ${body.length} octets does not hold IV, pad length and ICV`);
    }
    return stripPadding(aeadOpen(this.info.id, this.keyWithSalt, body.subarray(0, ivBytes), aad, body.subarray(ivBytes)));
  }
}

/**
 * One direction's SK payload protection. For CBC, `integId` and `integKey`
 * give the ICV; for AEAD ciphers `integId` must be NONE (RFC 5282) and
 * `integKey` null or empty. `encrKey` includes the AEAD salt. `ivSource` is
 * for known-answer tests only.
 */
export function createSkCipher(
  encr: { id: number; keyLength: number },
  integId: number,
  encrKey: Buffer,
  integKey: Buffer | null,
  ivSource?: IvSource,
): SkCipher {
  const info = encrInfo(encr.id);
  const keyBits = encrCipherKeyBits(encr.id, encr.keyLength);
  const want = encrKeyBytes(encr.id, encr.keyLength);
  if (encrKey.length !== want) throw new MalformedError('SK_e', `${encrKey.length} octets, ${want} needed`);
  if (info.mode === 'cbc') {
    if (integId === IntegId.NONE) throw new UnsupportedError('AES_CBC without an integrity algorithm');
    const integ = integInfo(integId);
    if (!integKey || integKey.length !== integ.keyBytes) {
      throw new MalformedError('SK_a', `${integKey?.length ?? 0} octets, ${integ.keyBytes} needed`);
    }
    return new CbcSkCipher(info, keyBits, encrKey, integ, integKey, ivSource ?? randomBytes);
  }
  if (integId !== IntegId.NONE) throw new UnsupportedError(`integrity algorithm ${integId} together with an AEAD cipher`);
  if (integKey && integKey.length !== 0) throw new MalformedError('SK_a', 'AEAD ciphers take no integrity key');
  return new AeadSkCipher(info, encrKey, ivSource);
}
