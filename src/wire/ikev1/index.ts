/** The ISAKMP / IKEv1 wire codec: the public surface for the IKE layer. */
export * from './constants.js';
export type * from './types.js';
export {
  ISAKMP_HEADER_LENGTH, ISAKMP_MAJOR_VERSION, ISAKMP_MINOR_VERSION, IsakmpVersionError, decodeIsakmpHeader,
} from './header.js';
export {
  V1_GENERIC_HEADER_LENGTH, V1_MAX_TRAILING_PADDING, decodeIsakmp, decodeV1PayloadChain, encodeIsakmp, encodeIsakmpEncrypted,
  encodeV1PayloadChain, splitV1Hash, walkV1PayloadChain,
} from './message.js';
export { V1_NONCE_MAX, V1_NONCE_MIN, v1PayloadName, v1WireType } from './payloads.js';
export { ipsecAttributeList, ipsecAttributes, lifeAttributes, phase1AttributeList, phase1Attributes, readLifeAttributes } from './attributes.js';
export type { IpsecAttributes, Phase1Attributes, V1Life } from './attributes.js';
export {
  describeV1, findV1Notify, findV1Payload, findV1Payloads, isV1ErrorNotify, v1PayloadToken,
} from './helpers.js';
export type { V1PayloadOf } from './helpers.js';
export { V1_ALWAYS_ALLOWED, V1_MESSAGE_RULES, checkV1Message, v1ExchangeName, v1MessageRule } from './rules.js';
export type { V1Encryption, V1MessageRule, V1PayloadRule } from './rules.js';
