/**
 * The decoded ISAKMP / IKEv1 message model (RFC 2408 section 3, RFC 2407
 * 4.6, RFC 3947). Codecs in this folder turn bytes into these values and
 * back; nothing here touches crypto.
 */
import type { V1PayloadType } from './constants.js';

/** RFC 2408 3.1: the fixed 28-octet header. Cookies are 8-byte Buffers. */
export interface IsakmpHeader {
  cookieI: Buffer;
  cookieR: Buffer;
  nextPayload: number;
  majorVersion: number; // 1
  minorVersion: number; // 0
  exchangeType: number;
  flags: IsakmpFlags;
  messageId: number;
  length: number; // total message length from the header
}

/** RFC 2408 3.1: E(ncryption), C(ommit), A(uthentication only). */
export interface IsakmpFlags { encryption: boolean; commit: boolean; authOnly: boolean }

/** What the caller supplies to build a header; version, next payload and length are filled in by the encoder. */
export type IsakmpHeaderInit = Omit<IsakmpHeader, 'length' | 'nextPayload' | 'majorVersion' | 'minorVersion'>;

/**
 * RFC 2408 3.3: a data attribute. A number is the TV form (AF=1, 16-bit
 * value); a Buffer is the TLV form (AF=0). Keeping the form lets a decoded
 * SA payload re-encode to the very bytes that went into SAi_b.
 */
export interface V1Attribute { type: number; value: number | Buffer }

/** RFC 2408 3.6. `id` is the Transform-Id (KEY_IKE, ESP_AES, ...). */
export interface V1Transform { num: number; id: number; attributes: V1Attribute[] }

/** RFC 2408 3.5. Proposals sharing a number are ANDed (a bundle), different numbers are ORed (4.2). */
export interface V1Proposal { num: number; protocol: number; spi: Buffer; transforms: V1Transform[] }

/** RFC 2408 3.4 with the RFC 2407 4.6.1 IPsec situation (a 32-bit bitmap). */
export interface V1SaPayload { type: typeof V1PayloadType.SA; doi: number; situation: number; proposals: V1Proposal[] }
/** RFC 2408 3.7: the DH public value alone; the group comes from the SA. */
export interface V1KePayload { type: typeof V1PayloadType.KE; data: Buffer }
/** RFC 2408 3.8 with the RFC 2407 4.6.2 DOI-specific protocol and port. */
export interface V1IdPayload { type: typeof V1PayloadType.ID; idType: number; protocol: number; port: number; data: Buffer }
/** RFC 2408 3.9. */
export interface V1CertPayload { type: typeof V1PayloadType.CERT; encoding: number; data: Buffer }
/** RFC 2408 3.10: an empty authority means "any CA". */
export interface V1CertReqPayload { type: typeof V1PayloadType.CR; encoding: number; authority: Buffer }
/** RFC 2408 3.11. */
export interface V1HashPayload { type: typeof V1PayloadType.HASH; data: Buffer }
/** RFC 2408 3.12. */
export interface V1SigPayload { type: typeof V1PayloadType.SIG; data: Buffer }
/** RFC 2408 3.13. */
export interface V1NoncePayload { type: typeof V1PayloadType.NONCE; data: Buffer }
/** RFC 2408 3.14. */
export interface V1NotifyPayload {
  type: typeof V1PayloadType.N; doi: number; protocol: number; spi: Buffer; notifyType: number; data: Buffer;
}
/** RFC 2408 3.15. */
export interface V1DeletePayload { type: typeof V1PayloadType.D; doi: number; protocol: number; spiSize: number; spis: Buffer[] }
/** RFC 2408 3.16. */
export interface V1VendorIdPayload { type: typeof V1PayloadType.VID; data: Buffer }
/** RFC 3947 3.2. `draft` marks the pre-RFC number 130, kept so a reply can use the peer's numbering. */
export interface V1NatDPayload { type: typeof V1PayloadType.NAT_D; draft: boolean; data: Buffer }
/** RFC 3947 5.2: the original address, 4 or 16 octets by ID type. `draft` marks number 131. */
export interface V1NatOaPayload { type: typeof V1PayloadType.NAT_OA; draft: boolean; idType: number; address: Buffer }
/**
 * A payload of a type styx does not know (mode-config attributes, IKE
 * fragments, ...). IKEv1 has no critical bit; the rules decide whether an
 * unknown payload is tolerable (RFC 2408 5.3: INVALID-PAYLOAD-TYPE).
 */
export interface V1UnknownPayload { type: 'unknown'; rawType: number; data: Buffer }

export type V1Payload =
  | V1SaPayload | V1KePayload | V1IdPayload | V1CertPayload | V1CertReqPayload | V1HashPayload | V1SigPayload
  | V1NoncePayload | V1NotifyPayload | V1DeletePayload | V1VendorIdPayload | V1NatDPayload | V1NatOaPayload
  | V1UnknownPayload;

/** A message whose payloads are in the clear (E flag not set). */
export interface IsakmpPlainMessage { header: IsakmpHeader; encrypted: false; payloads: V1Payload[] }

/**
 * RFC 2408 3.1: with the E flag set everything after the header is
 * ciphertext. The header's Next Payload names the first payload inside;
 * crypto/ikev1 decrypts `ciphertext` and decodeV1PayloadChain reads it.
 */
export interface IsakmpEncryptedMessage { header: IsakmpHeader; encrypted: true; firstPayload: number; ciphertext: Buffer }

export type IsakmpMessage = IsakmpPlainMessage | IsakmpEncryptedMessage;

/**
 * One payload as found in a chain, before its body is decoded: the raw body
 * (without the 4-octet generic header) is what RFC 2409 hashes as SAi_b,
 * IDii_b and so on, and `start`/`end` locate the whole payload in the chain
 * so Quick Mode and Informational hashes can take "the rest of the message".
 */
export interface RawV1Payload { type: number; body: Buffer; start: number; end: number }
