/** IKEv1 key material and message protection (RFC 2409 5, 5.5, 5.7, appendix B). */
export {
  type V1CipherInfo, type V1HashInfo,
  V1_DH_GROUPS, createV1KeyExchange, v1Cipher, v1Digest, v1HashInfo, v1Prf, v1SupportedHashes,
} from './algorithms.js';
export {
  type V1Phase1KeyInput, type V1Phase1Keys, type V1Phase1Transcript, type V1SkeyidAuth, type V1Skeyids,
  v1DerivePhase1Keys, v1DeriveSkeyids, v1EncryptionKey, v1HashI, v1HashR, v1Skeyid, v1SkeyidPsk, v1SkeyidSig,
} from './phase1.js';
export {
  type V1KeymatInput,
  v1CheckHash, v1EspKeyLengths, v1InformationalHash, v1QuickHash1, v1QuickHash2, v1QuickHash3, v1QuickKeymat,
} from './phase2.js';
export {
  type V1Decrypted, type V1Encrypted,
  V1IvChain, v1Decrypt, v1Encrypt, v1Phase1Iv, v1Phase2Iv,
} from './cbc.js';
