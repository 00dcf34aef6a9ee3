/**
 * Typed failures of certificate authentication. Each carries a stable code
 * so the IKE layer can map it to a notify (AUTHENTICATION_FAILED) and the
 * logs can say which certificate failed and why without parsing text.
 */
import { StyxError } from '../util/errors.js';

export type AuthErrorCode =
  | 'ERR_CERT_REVOKED'            // listed on a CRL of its issuer (RFC 5280 6.3)
  | 'ERR_CERT_EXPIRED'            // now is after notAfter
  | 'ERR_CERT_NOT_YET_VALID'      // now is before notBefore
  | 'ERR_CERT_UNKNOWN_CA'         // no path to a configured trust anchor
  | 'ERR_CERT_KEY_USAGE'          // keyUsage / extKeyUsage forbid this use
  | 'ERR_CERT_NOT_CA'             // an issuer lacks basicConstraints cA
  | 'ERR_CERT_PATH_LENGTH'        // pathLenConstraint exceeded
  | 'ERR_CERT_CRITICAL_EXTENSION' // a critical extension styx does not process
  | 'ERR_CERT_REVOCATION_UNKNOWN' // CRLs required but none current for an issuer
  | 'ERR_CERT_PARSE'              // not a well-formed X.509 certificate
  | 'ERR_CRL_PARSE'               // not a well-formed CRL
  | 'ERR_KEY_PARSE'               // not a usable private or public key
  | 'ERR_LOAD'                    // file could not be read
  | 'ERR_KEY_MISMATCH'            // private key does not belong to the certificate
  | 'ERR_ID_MISMATCH'             // IKE identity not bound to the certificate
  | 'ERR_SIGNATURE'               // a signature does not verify
  | 'ERR_SIGNATURE_SCHEME'        // scheme unknown or unusable with this key
  | 'ERR_DN_SYNTAX';              // textual distinguished name does not parse

export interface AuthErrorDetail {
  /** Subject (text form) of the certificate concerned. */
  cert?: string;
  /** Serial number of that certificate, lowercase hex. */
  serial?: string;
  /** File the failure came from. */
  file?: string;
}

export class AuthError extends StyxError {
  declare readonly code: AuthErrorCode;
  readonly cert: string | undefined;
  readonly serial: string | undefined;
  readonly file: string | undefined;
  constructor(code: AuthErrorCode, message: string, detail: AuthErrorDetail = {}) {
    super(code, message);
    this.cert = detail.cert;
    this.serial = detail.serial;
    this.file = detail.file;
  }
}

export const isAuthError = (e: unknown, code?: AuthErrorCode): e is AuthError =>
  e instanceof AuthError && (code === undefined || e.code === code);
