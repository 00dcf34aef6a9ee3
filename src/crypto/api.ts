/**
 * The crypto layer's public contract. Everything is backed by node:crypto
 * (OpenSSL); nothing here hand-rolls a primitive.
 */

/** A PRF as negotiated by transform type 2 (RFC 7296 3.3.2). */
export interface Prf {
  readonly id: number;
  readonly name: string;          // e.g. 'prfsha256'
  readonly keyLength: number;     // preferred key size in bytes (output size of the hash)
  readonly outputLength: number;
  compute(key: Buffer, data: Buffer): Buffer;
  /** RFC 7296 2.13: prf+ (key, seed) truncated to `length` bytes. */
  plus(key: Buffer, seed: Buffer, length: number): Buffer;
}

/** A Diffie-Hellman / ECDH / X25519 key exchange for one SA (RFC 7296 2.14, RFC 5903, RFC 8031). */
export interface KeyExchange {
  readonly group: number;
  /** The KE payload data: MODP g^x padded to the prime length; ECP x||y; X25519 32 bytes. */
  readonly publicValue: Buffer;
  /** Throws a StyxError (MalformedError) when the peer's value is invalid for the group. */
  computeSecret(peerPublic: Buffer): Buffer;
}

/** RFC 7296 2.14: the seven IKE SA keys. */
export interface IkeKeys {
  skD: Buffer; skAi: Buffer; skAr: Buffer; skEi: Buffer; skEr: Buffer; skPi: Buffer; skPr: Buffer;
}

/**
 * RFC 7296 3.14 / RFC 5282: protection of the SK payload body for one
 * direction. `aad` is the IKE header plus the SK payload's generic header,
 * as it will appear on the wire (lengths already final).
 */
export interface SkCipher {
  /** Body length (IV || ciphertext incl. padding and pad-length octet || ICV) for a plaintext length. */
  sealedLength(plainLength: number): number;
  seal(aad: Buffer, plaintext: Buffer): Buffer;
  /** Throws IntegrityError on a bad ICV/tag, MalformedError on bad length or padding. */
  open(aad: Buffer, body: Buffer): Buffer;
}

/** The algorithms of a negotiated IKE SA, resolved from transform IDs. */
export interface IkeSuite {
  encr: { id: number; keyLength: number /* bits */ };
  integ: number;   // IntegId; 0 (NONE) with an AEAD cipher
  prf: number;     // PrfId
  dh: number;      // DhId
}

/** RFC 7296 2.17: CHILD_SA keys, in the order KEYMAT is taken. */
export interface ChildKeys {
  encrI: Buffer; integI: Buffer; // initiator -> responder
  encrR: Buffer; integR: Buffer; // responder -> initiator
}
