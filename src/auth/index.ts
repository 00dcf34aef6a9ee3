/** Certificate authentication for IKE: X.509 parsing, path validation, identities, signatures, CERTREQ. */
export * from './errors.js';
export { Cert, Crl, EkuOid, ExtOid, KEY_USAGE_BITS, REASONS, serialHex } from './x509.js';
export type { AltName, BasicConstraints, KeyUsageName, RawExtension, RevokedEntry } from './x509.js';
export { keyInfo, verifySignedData } from './algs.js';
export type { KeyInfo, AlgorithmId } from './algs.js';
export * from './load.js';
export * from './chain.js';
export * from './identity.js';
export * from './signer.js';
export * from './certreq.js';
export * from './store.js';
