/**
 * IKEv1 message encryption (RFC 2408 3.1 E flag, RFC 2409 appendix B):
 * CBC over everything after the header, with IVs that are derived and then
 * chained from message to message rather than sent. There is no MAC; the
 * HASH/SIG payloads inside authenticate the exchange.
 *
 * Padding policy. Encryption pads with zero octets to the block size and adds
 * nothing when the body is already aligned (RFC 2408's zero padding; the
 * last octet is NOT a pad length in IKEv1). Decryption strips nothing: it
 * returns every decrypted block, and decodeV1PayloadChain in wire/ikev1
 * ignores up to V1_MAX_TRAILING_PADDING octets after the last payload,
 * whatever they hold, because senders disagree on the padding's content
 * (zeros, RFC 2409 5.3's count octet, or arbitrary bytes).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { MalformedError } from '../../util/errors.js';
import { v1Digest } from './algorithms.js';
import type { V1CipherInfo } from './algorithms.js';

function mid(messageId: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(messageId >>> 0);
  return b;
}

/**
 * RFC 2409 appendix B: the first phase 1 IV is hash(g^xi | g^xr) with the
 * negotiated hash (not the prf), truncated to the cipher's block size.
 */
export function v1Phase1Iv(hashId: number, gxi: Buffer, gxr: Buffer, blockBytes: number): Buffer {
  return v1Digest(hashId, gxi, gxr).subarray(0, blockBytes);
}

/**
 * RFC 2409 appendix B: a phase 2 (Quick Mode) or Informational exchange
 * starts from hash(last phase 1 CBC output block | M-ID), truncated to the
 * block size; M-ID is the 4-octet message ID of that exchange.
 */
export function v1Phase2Iv(hashId: number, lastPhase1Block: Buffer, messageId: number, blockBytes: number): Buffer {
  return v1Digest(hashId, lastPhase1Block, mid(messageId)).subarray(0, blockBytes);
}

function checkKeyIv(c: V1CipherInfo, key: Buffer, iv: Buffer): void {
  if (key.length !== c.keyBytes) throw new MalformedError(`${c.name} key`, `${key.length} octets, ${c.keyBytes} needed`);
  if (iv.length !== c.blockBytes) throw new MalformedError(`${c.name} IV`, `${iv.length} octets, ${c.blockBytes} needed`);
}

/** Result of one CBC operation: `nextIv` is the last ciphertext block, the IV of the next message in the chain. */
export interface V1Encrypted { ciphertext: Buffer; nextIv: Buffer }
export interface V1Decrypted { plaintext: Buffer; nextIv: Buffer }

/** Encrypts a message body (the encoded payload chain) with zero padding to the block size. */
export function v1Encrypt(c: V1CipherInfo, key: Buffer, iv: Buffer, plaintext: Buffer): V1Encrypted {
  checkKeyIv(c, key, iv);
  const padded = Math.max(c.blockBytes, Math.ceil(plaintext.length / c.blockBytes) * c.blockBytes);
  const cipher = createCipheriv(c.node, key, iv);
  cipher.setAutoPadding(false);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.update(Buffer.alloc(padded - plaintext.length)), cipher.final()]);
  return { ciphertext, nextIv: Buffer.from(ciphertext.subarray(ciphertext.length - c.blockBytes)) };
}

/**
 * Decrypts a message body. The ciphertext must be whole blocks; the
 * plaintext keeps its padding (see the policy above).
 */
export function v1Decrypt(c: V1CipherInfo, key: Buffer, iv: Buffer, ciphertext: Buffer): V1Decrypted {
  checkKeyIv(c, key, iv);
  if (ciphertext.length === 0 || ciphertext.length % c.blockBytes !== 0) {
    throw new MalformedError('encrypted ISAKMP body', `${ciphertext.length} octets is not a whole number of ${c.blockBytes}-octet blocks`);
  }
  const d = createDecipheriv(c.node, key, iv);
  d.setAutoPadding(false);
  const plaintext = Buffer.concat([d.update(ciphertext), d.final()]);
  return { plaintext, nextIv: Buffer.from(ciphertext.subarray(ciphertext.length - c.blockBytes)) };
}

/**
 * The IV state of one ISAKMP SA (RFC 2409 appendix B). Message ID 0 is
 * phase 1: its IV starts at hash(g^xi | g^xr) and each encrypted phase 1
 * message continues from the previous one's last block. Every other message
 * ID is its own exchange: it starts from hash(phase 1 IV | M-ID), where the
 * phase 1 IV is by then the last CBC block of phase 1 (or the initial IV
 * when no phase 1 message was encrypted, as in Aggressive Mode with a clear
 * third message), and then chains within the exchange.
 *
 * Call advance() only for a message that was sent, or received and
 * authenticated: a forged or garbled message must not move the chain.
 */
export class V1IvChain {
  private phase1: Buffer;
  private readonly exchanges = new Map<number, Buffer>();

  constructor(private readonly hashId: number, private readonly blockBytes: number, gxi: Buffer, gxr: Buffer) {
    this.phase1 = v1Phase1Iv(hashId, gxi, gxr, blockBytes);
  }

  /** The IV for the next message with this message ID. */
  iv(messageId: number): Buffer {
    if (messageId === 0) return Buffer.from(this.phase1);
    const iv = this.exchanges.get(messageId) ?? v1Phase2Iv(this.hashId, this.phase1, messageId, this.blockBytes);
    return Buffer.from(iv);
  }

  /** Records a message's last ciphertext block as the IV of the next message with the same ID. */
  advance(messageId: number, ciphertext: Buffer): void {
    if (ciphertext.length < this.blockBytes) throw new MalformedError('encrypted ISAKMP body', `${ciphertext.length} octets, shorter than a block`);
    const last = Buffer.from(ciphertext.subarray(ciphertext.length - this.blockBytes));
    if (messageId === 0) this.phase1 = last;
    else this.exchanges.set(messageId, last);
  }

  /** Drops a finished exchange's state; a later exchange reusing the ID starts afresh. */
  forget(messageId: number): void {
    this.exchanges.delete(messageId);
  }
}
