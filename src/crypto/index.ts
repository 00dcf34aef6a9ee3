/** The crypto layer's public surface: the contracts in api.ts and their implementations. */
export type { Prf, KeyExchange, IkeKeys, SkCipher, IkeSuite, ChildKeys } from './api.js';
export {
  type EncrMode, type EncrInfo, type IntegInfo, type DhKind, type DhInfo, type AlgorithmListing,
  encrInfo, isAead, encrCipherKeyBits, encrKeyBytes, encrName,
  integInfo, integKeyBytes, integIcvBytes, integIcv, integName,
  getPrf, prfName,
  supportedDhGroups, dhInfo, dhName, createKeyExchange,
  listAlgorithms,
} from './registry.js';
export { prfPlus } from './prf.js';
export {
  type DerivedIkeKeys,
  ikeKeymatLength, deriveIkeKeys, deriveRekeyedIkeKeys, deriveChildKeys,
  signedOctets, pskAuth, verifyPskAuth,
} from './keymat.js';
export { type IvSource, createSkCipher, aeadSeal, aeadOpen } from './sk.js';
