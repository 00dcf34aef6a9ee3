/**
 * The decoded IKEv2 message model (RFC 7296 section 3). Codecs in this folder
 * turn bytes into these values and back; nothing here touches crypto.
 */
import type { ExchangeType, IdType, PayloadType, ProtocolId, TransformType, TsType } from './constants.js';

/** RFC 7296 3.1: the fixed 28-octet header. SPIs are 8-byte Buffers. */
export interface IkeHeader {
  spiI: Buffer;
  spiR: Buffer;
  nextPayload: number;
  majorVersion: number; // 2
  minorVersion: number; // 0
  exchangeType: ExchangeType | number;
  flags: { initiator: boolean; response: boolean; version: boolean };
  messageId: number;
  length: number; // total message length from the header
}

/** RFC 7296 3.3.5: a transform attribute (only KEY_LENGTH is TV in practice). */
export interface TransformAttribute { type: number; value: number | Buffer }

/** RFC 7296 3.3.2. */
export interface Transform {
  type: TransformType | number;
  id: number;
  keyLength?: number; // from the KEY_LENGTH attribute, if present
  attributes?: TransformAttribute[]; // any others, kept opaque
}

/** RFC 7296 3.3.1. */
export interface Proposal {
  num: number;
  protocol: ProtocolId | number;
  spi: Buffer; // empty for IKE in IKE_SA_INIT, 8 bytes for IKE rekey, 4 for ESP/AH
  transforms: Transform[];
}

/** RFC 7296 3.3. */
export interface SaPayload { type: typeof PayloadType.SA; critical: boolean; proposals: Proposal[] }
/** RFC 7296 3.4. */
export interface KePayload { type: typeof PayloadType.KE; critical: boolean; group: number; data: Buffer }
/** RFC 7296 3.5: IDi and IDr share a layout. */
export interface IdPayload { type: typeof PayloadType.IDi | typeof PayloadType.IDr; critical: boolean; idType: IdType | number; data: Buffer }
/** RFC 7296 3.6. */
export interface CertPayload { type: typeof PayloadType.CERT; critical: boolean; encoding: number; data: Buffer }
/** RFC 7296 3.7. */
export interface CertReqPayload { type: typeof PayloadType.CERTREQ; critical: boolean; encoding: number; data: Buffer }
/** RFC 7296 3.8. */
export interface AuthPayload { type: typeof PayloadType.AUTH; critical: boolean; method: number; data: Buffer }
/** RFC 7296 3.9. */
export interface NoncePayload { type: typeof PayloadType.NONCE; critical: boolean; data: Buffer }
/** RFC 7296 3.10. */
export interface NotifyPayload { type: typeof PayloadType.NOTIFY; critical: boolean; protocol: number; spi: Buffer; notifyType: number; data: Buffer }
/** RFC 7296 3.11: SPIs are 4 bytes each for ESP/AH; none for IKE. */
export interface DeletePayload { type: typeof PayloadType.DELETE; critical: boolean; protocol: number; spiSize: number; spis: Buffer[] }
/** RFC 7296 3.12. */
export interface VendorIdPayload { type: typeof PayloadType.VENDOR_ID; critical: boolean; data: Buffer }

/** RFC 7296 3.13.1: one selector; addresses are 4 or 16 bytes. */
export interface TrafficSelector {
  tsType: TsType | number;
  ipProtocol: number; // 0 = any
  startPort: number;
  endPort: number;
  startAddr: Buffer;
  endAddr: Buffer;
}
/** RFC 7296 3.13. */
export interface TsPayload { type: typeof PayloadType.TSi | typeof PayloadType.TSr; critical: boolean; selectors: TrafficSelector[] }

/**
 * RFC 7296 3.14: the SK payload as found on the wire. `body` is IV || ciphertext || ICV,
 * opaque to the codec; crypto/ opens it. `innerFirst` is the Next Payload field, the
 * type of the first payload inside.
 */
export interface SkPayload {
  type: typeof PayloadType.SK; critical: boolean; innerFirst: number; body: Buffer;
  /** Set by the decoder: the message bytes from the IKE header up to the start of `body` (the AAD / MAC prefix). */
  aad?: Buffer;
}
/** RFC 7383 2.5: an encrypted fragment. */
export interface SkfPayload {
  type: typeof PayloadType.SKF; critical: boolean; innerFirst: number; fragmentNumber: number; totalFragments: number; body: Buffer;
  aad?: Buffer;
}

/** RFC 7296 3.15. */
export interface CpAttribute { type: number; value: Buffer }
export interface CpPayload { type: typeof PayloadType.CP; critical: boolean; cfgType: number; attributes: CpAttribute[] }
/** RFC 7296 3.16: EAP is carried opaque. */
export interface EapPayload { type: typeof PayloadType.EAP; critical: boolean; data: Buffer }

/** A payload of a type styx does not know: kept so the critical bit can be honoured (2.5). */
export interface UnknownPayload { type: 'unknown'; rawType: number; critical: boolean; data: Buffer }

export type Payload =
  | SaPayload | KePayload | IdPayload | CertPayload | CertReqPayload | AuthPayload | NoncePayload
  | NotifyPayload | DeletePayload | VendorIdPayload | TsPayload | SkPayload | SkfPayload | CpPayload
  | EapPayload | UnknownPayload;

/** A whole message: header plus the chain of payloads outside any SK payload. */
export interface IkeMessage { header: IkeHeader; payloads: Payload[] }

/** What the caller supplies to build a header; version, next payload and length are filled in by the encoder. */
export type HeaderInit = Omit<IkeHeader, 'length' | 'nextPayload' | 'majorVersion' | 'minorVersion'>;
