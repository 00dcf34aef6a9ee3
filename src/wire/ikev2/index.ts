/** The IKEv2 wire codec: the public surface for the IKE layer. */
export * from './constants.js';
export type * from './types.js';
export { HEADER_LENGTH, IKE_MAJOR_VERSION, IKE_MINOR_VERSION, VersionError, decodeHeader } from './header.js';
export {
  GENERIC_HEADER_LENGTH, decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain, encodeSkPrefix, encodeSkfPrefix,
} from './message.js';
export { NONCE_MAX, NONCE_MIN, payloadName, wireType } from './payloads.js';
export {
  describe, describe as describeMessage, findNotifies, findNotify, findPayload, findPayloads, isErrorNotify, notify, payloadToken, unsupportedCritical,
} from './helpers.js';
export type { PayloadOf } from './helpers.js';
export { ALWAYS_ALLOWED, EXCHANGE_RULES, checkExchangePayloads, exchangeRule } from './rules.js';
export type { ExchangeRule, PayloadRule } from './rules.js';
