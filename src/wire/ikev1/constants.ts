/**
 * ISAKMP / IKEv1 numbers: RFC 2408 (ISAKMP), RFC 2407 (IPsec DOI), RFC 2409
 * appendix A (IKE attributes), RFC 3947 (NAT-T), RFC 3706 (DPD), RFC 4304
 * (ESN). Names follow the RFCs so code reads like the spec. The tables are
 * plain objects so nameOf() can print any of them.
 */

/** RFC 2408 3.1: exchange types; 32 and up are DOI-specific (RFC 2409 5.5, 5.6). */
export const V1ExchangeType = {
  NONE: 0,
  BASE: 1,
  IDENTITY_PROTECTION: 2, // Main Mode
  AUTHENTICATION_ONLY: 3,
  AGGRESSIVE: 4,
  INFORMATIONAL: 5,
  TRANSACTION: 6, // draft-ietf-ipsec-isakmp-mode-cfg; named for logs only
  QUICK: 32,
  NEW_GROUP: 33,
} as const;
export type V1ExchangeType = (typeof V1ExchangeType)[keyof typeof V1ExchangeType];

/** RFC 2408 3.1: header flag bits. */
export const V1HeaderFlag = {
  ENCRYPTION: 0x01,
  COMMIT: 0x02,
  AUTHENTICATION_ONLY: 0x04,
} as const;

/** RFC 2408 3.1 next payload types; 20/21 from RFC 3947 3.2 and 5.2. */
export const V1PayloadType = {
  NONE: 0,
  SA: 1,
  PROPOSAL: 2,
  TRANSFORM: 3,
  KE: 4,
  ID: 5,
  CERT: 6,
  CR: 7,
  HASH: 8,
  SIG: 9,
  NONCE: 10,
  N: 11,
  D: 12,
  VID: 13,
  NAT_D: 20,
  NAT_OA: 21,
} as const;
export type V1PayloadType = (typeof V1PayloadType)[keyof typeof V1PayloadType];

/**
 * draft-ietf-ipsec-nat-t-ike-02/03 used private-range numbers for NAT-D and
 * NAT-OA before RFC 3947 assigned 20/21; peers that only announce the draft
 * vendor IDs still send these.
 */
export const V1DraftPayloadType = { NAT_D_DRAFT: 130, NAT_OA_DRAFT: 131 } as const;

/** RFC 2407 2.1 / IANA: Domain of Interpretation. */
export const Doi = { ISAKMP: 0, IPSEC: 1 } as const;

/** RFC 2407 4.6.1: IPsec situation bitmap. Only identity-only is supported. */
export const Situation = { SIT_IDENTITY_ONLY: 0x01, SIT_SECRECY: 0x02, SIT_INTEGRITY: 0x04 } as const;

/** RFC 2407 4.4.1: protocol IDs in proposals, notifications and deletes. */
export const V1ProtocolId = { ISAKMP: 1, IPSEC_AH: 2, IPSEC_ESP: 3, IPCOMP: 4 } as const;
export type V1ProtocolId = (typeof V1ProtocolId)[keyof typeof V1ProtocolId];

/** RFC 2407 4.4.2: the one ISAKMP transform ID. */
export const IsakmpTransformId = { KEY_IKE: 1 } as const;

/** RFC 2407 4.4.3: AH transform IDs (RFC 4868 2.4 for SHA-2). */
export const AhTransformId = { AH_MD5: 2, AH_SHA: 3, AH_SHA2_256: 5, AH_SHA2_384: 6, AH_SHA2_512: 7 } as const;

/** RFC 2407 4.4.4 and IANA: ESP transform IDs (RFC 3602 AES-CBC, RFC 3686 CTR, RFC 4106 GCM). */
export const EspTransformId = {
  ESP_DES: 2,
  ESP_3DES: 3,
  ESP_NULL: 11,
  ESP_AES: 12,
  ESP_AES_CTR: 13,
  ESP_AES_CCM_8: 14,
  ESP_AES_CCM_12: 15,
  ESP_AES_CCM_16: 16,
  ESP_AES_GCM_8: 18,
  ESP_AES_GCM_12: 19,
  ESP_AES_GCM_16: 20,
  ESP_NULL_AUTH_AES_GMAC: 23,
} as const;

/** RFC 2409 appendix A: phase 1 (ISAKMP SA) attribute classes. B = basic (TV only), V = variable. */
export const Phase1Attr = {
  ENCRYPTION_ALGORITHM: 1, // B
  HASH_ALGORITHM: 2, // B
  AUTHENTICATION_METHOD: 3, // B
  GROUP_DESCRIPTION: 4, // B
  GROUP_TYPE: 5, // B
  GROUP_PRIME: 6, // V
  GROUP_GENERATOR_ONE: 7, // V
  GROUP_GENERATOR_TWO: 8, // V
  GROUP_CURVE_A: 9, // V
  GROUP_CURVE_B: 10, // V
  LIFE_TYPE: 11, // B
  LIFE_DURATION: 12, // V
  PRF: 13, // B
  KEY_LENGTH: 14, // B
  FIELD_SIZE: 15, // B
  GROUP_ORDER: 16, // V
} as const;

/** RFC 2409 appendix A: encryption algorithm values; 7 from RFC 3602. */
export const V1EncryptionAlg = {
  DES_CBC: 1,
  IDEA_CBC: 2,
  BLOWFISH_CBC: 3,
  RC5_R16_B64_CBC: 4,
  TRIPLE_DES_CBC: 5,
  CAST_CBC: 6,
  AES_CBC: 7,
} as const;

/** RFC 2409 appendix A: hash algorithm values; 4-6 from the IANA registry (RFC 4868 era). */
export const V1HashAlg = { MD5: 1, SHA: 2, TIGER: 3, SHA2_256: 4, SHA2_384: 5, SHA2_512: 6 } as const;

/** RFC 2409 appendix A: authentication methods; 9-11 from RFC 4754; 65001+ are XAuth (draft, logs only). */
export const V1AuthMethod = {
  PRE_SHARED_KEY: 1,
  DSS_SIGNATURES: 2,
  RSA_SIGNATURES: 3,
  RSA_ENCRYPTION: 4,
  REVISED_RSA_ENCRYPTION: 5,
  ECDSA_SHA256_P256: 9,
  ECDSA_SHA384_P384: 10,
  ECDSA_SHA512_P521: 11,
  XAUTH_INIT_PSK: 65001,
  XAUTH_RESP_PSK: 65002,
  XAUTH_INIT_RSA: 65005,
  XAUTH_RESP_RSA: 65006,
} as const;

/** RFC 2409 6 and appendix A, RFC 3526, RFC 5903: group descriptions (same numbers as the IKEv2 DH registry). */
export const V1Group = {
  MODP_768: 1,
  MODP_1024: 2,
  MODP_1536: 5,
  MODP_2048: 14,
  MODP_3072: 15,
  MODP_4096: 16,
  MODP_6144: 17,
  MODP_8192: 18,
  ECP_256: 19,
  ECP_384: 20,
  ECP_521: 21,
} as const;

/** RFC 2409 appendix A (phase 1) and RFC 2407 4.5 (IPsec): life types. */
export const LifeType = { SECONDS: 1, KILOBYTES: 2 } as const;

/** RFC 2407 4.5: IPsec SA attributes; 11 from RFC 4304 2. */
export const IpsecAttr = {
  SA_LIFE_TYPE: 1,
  SA_LIFE_DURATION: 2, // variable
  GROUP_DESCRIPTION: 3,
  ENCAPSULATION_MODE: 4,
  AUTHENTICATION_ALGORITHM: 5,
  KEY_LENGTH: 6,
  KEY_ROUNDS: 7,
  COMPRESS_DICTIONARY_SIZE: 8,
  COMPRESS_PRIVATE_ALGORITHM: 9, // variable
  EXTENDED_SEQUENCE_NUMBER: 11,
} as const;

/**
 * RFC 2407 4.5 encapsulation modes; 3/4 from RFC 3947 5.1. The draft NAT-T
 * versions used 61443/61444 for the UDP-encapsulated modes.
 */
export const EncapsulationMode = {
  TUNNEL: 1,
  TRANSPORT: 2,
  UDP_ENCAPSULATED_TUNNEL: 3,
  UDP_ENCAPSULATED_TRANSPORT: 4,
  UDP_ENCAPSULATED_TUNNEL_DRAFT: 61443,
  UDP_ENCAPSULATED_TRANSPORT_DRAFT: 61444,
} as const;

/** RFC 2407 4.5 authentication algorithm values; 5-7 from RFC 4868 2.4. */
export const IpsecAuthAlg = {
  HMAC_MD5: 1,
  HMAC_SHA: 2,
  HMAC_SHA2_256: 5,
  HMAC_SHA2_384: 6,
  HMAC_SHA2_512: 7,
} as const;

/** RFC 4304 2: ESN attribute value. */
export const EsnValue = { ESN: 1 } as const;

/** RFC 2407 4.6.2.1: identification types. */
export const V1IdType = {
  ID_IPV4_ADDR: 1,
  ID_FQDN: 2,
  ID_USER_FQDN: 3,
  ID_IPV4_ADDR_SUBNET: 4,
  ID_IPV6_ADDR: 5,
  ID_IPV6_ADDR_SUBNET: 6,
  ID_IPV4_ADDR_RANGE: 7,
  ID_IPV6_ADDR_RANGE: 8,
  ID_DER_ASN1_DN: 9,
  ID_DER_ASN1_GN: 10,
  ID_KEY_ID: 11,
} as const;
export type V1IdType = (typeof V1IdType)[keyof typeof V1IdType];

/** RFC 2408 3.9: certificate encodings (also the CR certificate type). */
export const V1CertEncoding = {
  NONE: 0,
  PKCS7_WRAPPED_X509: 1,
  PGP: 2,
  DNS_SIGNED_KEY: 3,
  X509_SIGNATURE: 4,
  X509_KEY_EXCHANGE: 5,
  KERBEROS_TOKENS: 6,
  CRL: 7,
  ARL: 8,
  SPKI: 9,
  X509_ATTRIBUTE: 10,
} as const;

/**
 * RFC 2408 3.14.1: notify message types (errors 1-8191, status 16384+);
 * 24576-24578 from RFC 2407 4.6.3, 36136/36137 from RFC 3706 5.
 */
export const V1NotifyType = {
  INVALID_PAYLOAD_TYPE: 1,
  DOI_NOT_SUPPORTED: 2,
  SITUATION_NOT_SUPPORTED: 3,
  INVALID_COOKIE: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_MINOR_VERSION: 6,
  INVALID_EXCHANGE_TYPE: 7,
  INVALID_FLAGS: 8,
  INVALID_MESSAGE_ID: 9,
  INVALID_PROTOCOL_ID: 10,
  INVALID_SPI: 11,
  INVALID_TRANSFORM_ID: 12,
  ATTRIBUTES_NOT_SUPPORTED: 13,
  NO_PROPOSAL_CHOSEN: 14,
  BAD_PROPOSAL_SYNTAX: 15,
  PAYLOAD_MALFORMED: 16,
  INVALID_KEY_INFORMATION: 17,
  INVALID_ID_INFORMATION: 18,
  INVALID_CERT_ENCODING: 19,
  INVALID_CERTIFICATE: 20,
  CERT_TYPE_UNSUPPORTED: 21,
  INVALID_CERT_AUTHORITY: 22,
  INVALID_HASH_INFORMATION: 23,
  AUTHENTICATION_FAILED: 24,
  INVALID_SIGNATURE: 25,
  ADDRESS_NOTIFICATION: 26,
  NOTIFY_SA_LIFETIME: 27,
  CERTIFICATE_UNAVAILABLE: 28,
  UNSUPPORTED_EXCHANGE_TYPE: 29,
  UNEQUAL_PAYLOAD_LENGTHS: 30,
  CONNECTED: 16384,
  RESPONDER_LIFETIME: 24576,
  REPLAY_STATUS: 24577,
  INITIAL_CONTACT: 24578,
  R_U_THERE: 36136,
  R_U_THERE_ACK: 36137,
} as const;

/** RFC 2408 3.14.1: error types end here; status types start at 16384. */
export const V1_NOTIFY_ERROR_MAX = 16383;

/**
 * Vendor IDs worth recognising. Most are MD5 of a string (noted; the unit
 * test recomputes them), some with trailing version octets.
 */
export const V1VendorId = {
  /** RFC 3947 3.1: MD5("RFC 3947"). */
  NAT_T_RFC3947: '4a131c81070358455c5728f20e95452f',
  /** MD5("draft-ietf-ipsec-nat-t-ike-02"). */
  NAT_T_DRAFT_02: 'cd60464335df21f87cfdb2fc68b6a448',
  /** MD5("draft-ietf-ipsec-nat-t-ike-02\n"), a variant real peers sent. */
  NAT_T_DRAFT_02N: '90cb80913ebb696e086381b5ec427b1f',
  /** MD5("draft-ietf-ipsec-nat-t-ike-03"). */
  NAT_T_DRAFT_03: '7d9419a65310ca6f2c179d9215529d56',
  /** RFC 3706 5: DPD, version 1.0 in the last two octets. */
  DPD: 'afcad71368a1f1c96b8696fc77570100',
  /** The first 8 octets of MD5("draft-ietf-ipsra-isakmp-xauth-06.txt"). */
  XAUTH: '09002689dfd6b712',
  /** MD5("FRAGMENTATION"); peers may append 4 capability octets. */
  IKE_FRAGMENTATION: '4048b7d56ebce88525e7de7f00d6c2d3',
  /** MD5("CISCO-UNITY") with the last two octets replaced by the version. */
  CISCO_UNITY: '12f5f28c457168a9702d9fe274cc',
} as const;

/**
 * The name of a vendor ID for logs: exact match, or a known prefix for the
 * entries that carry version or capability octets after it.
 */
export function vendorIdName(data: Buffer): string | undefined {
  const h = data.toString('hex');
  for (const [name, v] of Object.entries(V1VendorId)) {
    if (h === v) return name;
  }
  const prefixed: (keyof typeof V1VendorId)[] = ['IKE_FRAGMENTATION', 'CISCO_UNITY', 'XAUTH'];
  for (const name of prefixed) {
    if (h.startsWith(V1VendorId[name])) return name;
  }
  return undefined;
}

/** Reverse lookup for logs: the RFC name of a number in one of the tables above. */
export function nameOf(table: Record<string, number>, value: number): string {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return String(value);
}
