/**
 * Parsed X.509 certificates (RFC 5280 4) and CRLs (RFC 5280 5). pkijs checks
 * the overall structure and decodes times and serials; the exact bytes that
 * were signed, the names and the SubjectPublicKeyInfo are sliced out of the
 * original DER so that comparisons and hashes never depend on a re-encoding.
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import * as pkijs from 'pkijs';
import { AuthError } from './errors.js';
import { children, oidText, readOne, Tag, type Tlv } from './der.js';
import { derToDnText } from './dn.js';
import { keyInfo, parseAlgorithmId, type AlgorithmId, type KeyInfo } from './algs.js';

export const ExtOid = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  issuerAltName: '2.5.29.18',
  basicConstraints: '2.5.29.19',
  cRLNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
  deltaCRLIndicator: '2.5.29.27',
  issuingDistributionPoint: '2.5.29.28',
  certificateIssuer: '2.5.29.29',
  nameConstraints: '2.5.29.30',
  cRLDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
} as const;

/** RFC 5280 4.2.1.12 and RFC 4945 5.1.3.12 purposes styx looks at. */
export const EkuOid = {
  anyExtendedKeyUsage: '2.5.29.37.0',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ipsecIKE: '1.3.6.1.5.5.7.3.17',
} as const;

/** RFC 5280 4.2.1.3 bit positions. */
export const KEY_USAGE_BITS = [
  'digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement',
  'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly',
] as const;
export type KeyUsageName = (typeof KEY_USAGE_BITS)[number];

export type AltName =
  | { type: 'email'; value: string }
  | { type: 'dns'; value: string }
  | { type: 'uri'; value: string }
  | { type: 'ip'; value: Buffer }
  | { type: 'dn'; value: Buffer }
  | { type: 'other'; tag: number; value: Buffer };

export interface RawExtension { oid: string; critical: boolean; value: Buffer }

const toBuf = (v: ArrayBuffer | Uint8Array): Buffer => Buffer.from(v instanceof Uint8Array ? v : new Uint8Array(v));

/** Serial numbers compare as unsigned integers: drop DER sign padding, lowercase hex. */
export function serialHex(bytes: Uint8Array): string {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return Buffer.from(bytes.subarray(i)).toString('hex');
}

function parseExtensions(t: Tlv | undefined, what: string): RawExtension[] {
  if (!t) return [];
  const seq = children(t, what)[0];
  if (!seq || seq.tag !== Tag.SEQUENCE) throw new AuthError('ERR_CERT_PARSE', `${what}: malformed extensions`);
  const seen = new Set<string>();
  return children(seq, what).map((e) => {
    const p = children(e, what);
    if (p[0]?.tag !== Tag.OID) throw new AuthError('ERR_CERT_PARSE', `${what}: malformed extension`);
    const oid = oidText(p[0].contents);
    // RFC 5280 4.2: at most one instance of an extension.
    if (seen.has(oid)) throw new AuthError('ERR_CERT_PARSE', `${what}: duplicate extension ${oid}`);
    seen.add(oid);
    let critical = false;
    let valueTlv = p[1];
    if (valueTlv?.tag === Tag.BOOLEAN) { critical = valueTlv.contents[0] !== 0; valueTlv = p[2]; }
    if (valueTlv?.tag !== Tag.OCTET_STRING) throw new AuthError('ERR_CERT_PARSE', `${what}: extension ${oid} has no value`);
    return { oid, critical, value: Buffer.from(valueTlv.contents) };
  });
}

function decodeAltNames(value: Buffer): AltName[] {
  return children(readOne(value, 'GeneralNames'), 'GeneralNames').map((g): AltName => {
    const c = Buffer.from(g.contents);
    switch (g.tag) {
      case 0x81: return { type: 'email', value: c.toString('latin1') };
      case 0x82: return { type: 'dns', value: c.toString('latin1') };
      case 0x86: return { type: 'uri', value: c.toString('latin1') };
      case 0x87: return { type: 'ip', value: c };
      case 0xa4: return { type: 'dn', value: c };
      default: return { type: 'other', tag: g.tag, value: Buffer.from(g.raw) };
    }
  });
}

function decodeKeyUsage(value: Buffer): Set<KeyUsageName> {
  const t = readOne(value, 'keyUsage');
  if (t.tag !== Tag.BIT_STRING || t.contents.length < 1) throw new AuthError('ERR_CERT_PARSE', 'malformed keyUsage');
  const out = new Set<KeyUsageName>();
  const bits = t.contents.subarray(1);
  KEY_USAGE_BITS.forEach((name, i) => {
    const byte = bits[i >> 3];
    if (byte !== undefined && (byte & (0x80 >> (i & 7)))) out.add(name);
  });
  return out;
}

export interface BasicConstraints { ca: boolean; pathLen: number | undefined }

function decodeBasicConstraints(value: Buffer): BasicConstraints {
  const parts = children(readOne(value, 'basicConstraints'), 'basicConstraints');
  let ca = false;
  let pathLen: number | undefined;
  for (const p of parts) {
    if (p.tag === Tag.BOOLEAN) ca = p.contents[0] !== 0;
    else if (p.tag === Tag.INTEGER) {
      if (p.contents.length > 4 || (p.contents[0]! & 0x80)) throw new AuthError('ERR_CERT_PARSE', 'bad pathLenConstraint');
      pathLen = p.contents.readUIntBE(0, p.contents.length);
    }
  }
  return { ca, pathLen };
}

function decodeAki(value: Buffer): Buffer | undefined {
  const kid = children(readOne(value, 'authorityKeyIdentifier'), 'authorityKeyIdentifier').find((p) => p.tag === 0x80);
  return kid ? Buffer.from(kid.contents) : undefined;
}

/** The tbs element's fields after the optional [0] version. */
function tbsFields(tbs: Tlv, what: string): { fields: Tlv[]; version: number } {
  const all = children(tbs, what);
  const hasVersion = all[0]?.tag === 0xa0;
  return { fields: hasVersion ? all.slice(1) : all, version: hasVersion ? children(all[0]!, what)[0]!.contents[0]! + 1 : 1 };
}

export class Cert {
  readonly der: Buffer;
  /** The exact TBSCertificate bytes the issuer signed. */
  readonly tbs: Buffer;
  readonly version: number;
  readonly serial: string;
  readonly subjectDer: Buffer;
  readonly issuerDer: Buffer;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The SubjectPublicKeyInfo element as it appears in the certificate. */
  readonly spki: Buffer;
  readonly publicKey: KeyObject;
  readonly key: KeyInfo;
  readonly extensions: RawExtension[];
  readonly basicConstraints: BasicConstraints | undefined;
  readonly keyUsage: Set<KeyUsageName> | undefined;
  readonly extKeyUsage: string[] | undefined;
  readonly altNames: AltName[];
  readonly subjectKeyId: Buffer | undefined;
  readonly authorityKeyId: Buffer | undefined;
  readonly signatureAlgorithm: AlgorithmId;
  readonly signature: Buffer;
  /** Where it was loaded from, for messages. */
  readonly source: string | undefined;
  /** The pkijs view, for callers that need fields styx does not expose. */
  readonly pkijs: pkijs.Certificate;

  private constructor(der: Buffer, source: string | undefined) {
    const what = source ?? 'certificate';
    this.der = der;
    this.source = source;
    let top: Tlv;
    try {
      top = readOne(der, what);
      this.pkijs = pkijs.Certificate.fromBER(new Uint8Array(der));
    } catch (e) {
      throw new AuthError('ERR_CERT_PARSE', `${what}: not an X.509 certificate (${(e as Error).message})`, { file: source });
    }
    try {
      const [tbsT, sigAlgT, sigT] = children(top, what);
      if (!tbsT || !sigAlgT || sigT?.tag !== Tag.BIT_STRING) throw new Error('bad Certificate SEQUENCE');
      this.tbs = Buffer.from(tbsT.raw);
      const { fields, version } = tbsFields(tbsT, what);
      this.version = version;
      const [, innerSigAlg, issuer, , subject, spki, ...rest] = fields;
      if (!innerSigAlg || !issuer || !subject || !spki) throw new Error('bad TBSCertificate');
      // RFC 5280 4.1.1.2: the outer and inner algorithm identifiers must be the same.
      if (!innerSigAlg.raw.equals(sigAlgT.raw)) throw new Error('signature algorithm differs inside and outside the TBS');
      this.issuerDer = Buffer.from(issuer.raw);
      this.subjectDer = Buffer.from(subject.raw);
      this.spki = Buffer.from(spki.raw);
      this.signatureAlgorithm = parseAlgorithmId(Buffer.from(sigAlgT.raw));
      if (sigT.contents[0] !== 0) throw new Error('signature BIT STRING has unused bits');
      this.signature = Buffer.from(sigT.contents.subarray(1));
      this.extensions = parseExtensions(rest.find((f) => f.tag === 0xa3), what);
    } catch (e) {
      if (e instanceof AuthError) throw e;
      throw new AuthError('ERR_CERT_PARSE', `${what}: ${(e as Error).message}`, { file: source });
    }
    this.serial = serialHex(this.pkijs.serialNumber.valueBlock.valueHexView);
    this.notBefore = this.pkijs.notBefore.value;
    this.notAfter = this.pkijs.notAfter.value;
    this.subject = derToDnText(this.subjectDer);
    this.issuer = derToDnText(this.issuerDer);
    try {
      this.publicKey = createPublicKey({ key: this.spki, format: 'der', type: 'spki' });
    } catch (e) {
      throw new AuthError('ERR_CERT_PARSE', `${what}: unusable public key (${(e as Error).message})`, { file: source, cert: this.subject });
    }
    this.key = keyInfo(this.publicKey);
    const ext = (oid: string): Buffer | undefined => this.extensions.find((x) => x.oid === oid)?.value;
    try {
      const bc = ext(ExtOid.basicConstraints);
      this.basicConstraints = bc ? decodeBasicConstraints(bc) : undefined;
      const ku = ext(ExtOid.keyUsage);
      this.keyUsage = ku ? decodeKeyUsage(ku) : undefined;
      const eku = ext(ExtOid.extKeyUsage);
      this.extKeyUsage = eku ? children(readOne(eku, 'extKeyUsage'), 'extKeyUsage').map((o) => oidText(o.contents)) : undefined;
      const san = ext(ExtOid.subjectAltName);
      this.altNames = san ? decodeAltNames(san) : [];
      const ski = ext(ExtOid.subjectKeyIdentifier);
      this.subjectKeyId = ski ? Buffer.from(readOne(ski, 'subjectKeyIdentifier').contents) : undefined;
      const aki = ext(ExtOid.authorityKeyIdentifier);
      this.authorityKeyId = aki ? decodeAki(aki) : undefined;
    } catch (e) {
      if (e instanceof AuthError) throw e;
      throw new AuthError('ERR_CERT_PARSE', `${what}: malformed extension (${(e as Error).message})`, { file: source, cert: this.subject });
    }
  }

  static fromDer(der: Uint8Array, source?: string): Cert {
    return new Cert(Buffer.from(der), source);
  }

  static fromPem(pem: string, source?: string): Cert {
    const b64 = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem)?.[1];
    if (b64 === undefined) throw new AuthError('ERR_CERT_PARSE', `${source ?? 'PEM'}: no CERTIFICATE block`, { file: source });
    return new Cert(Buffer.from(b64.replace(/\s+/g, ''), 'base64'), source);
  }

  toPem(): string {
    return `-----BEGIN CERTIFICATE-----\n${this.der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
  }

  /** RFC 5280 6.1: a certificate whose issuer and subject names match. */
  get selfIssued(): boolean { return this.subjectDer.equals(this.issuerDer); }

  get isCa(): boolean { return this.basicConstraints?.ca === true; }

  fingerprint(hash: 'sha1' | 'sha256' = 'sha256'): string {
    return createHash(hash).update(this.der).digest('hex');
  }

  /** "CN=…, serial …" for messages. */
  describe(): string { return `"${this.subject}" (serial ${this.serial})`; }

  /** OpenSSL's view of the same bytes, for cross-checks. */
  toX509(): X509Certificate { return new X509Certificate(this.der); }

  /** The same certificate, by content. */
  equals(other: Cert): boolean { return this.der.equals(other.der); }
}

export interface RevokedEntry { serial: string; date: Date; reason: number | undefined }

export class Crl {
  readonly der: Buffer;
  readonly tbs: Buffer;
  readonly version: number;
  readonly issuerDer: Buffer;
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  readonly entries: Map<string, RevokedEntry>;
  readonly extensions: RawExtension[];
  /** Entry extensions that are critical and unknown make an entry, and so the CRL, unusable (RFC 5280 5.3). */
  readonly hasUnknownCriticalEntryExtension: boolean;
  readonly crlNumber: bigint | undefined;
  readonly authorityKeyId: Buffer | undefined;
  readonly signatureAlgorithm: AlgorithmId;
  readonly signature: Buffer;
  readonly source: string | undefined;
  readonly pkijs: pkijs.CertificateRevocationList;

  private constructor(der: Buffer, source: string | undefined) {
    const what = source ?? 'CRL';
    this.der = der;
    this.source = source;
    try {
      const top = readOne(der, what);
      this.pkijs = pkijs.CertificateRevocationList.fromBER(new Uint8Array(der));
      const [tbsT, sigAlgT, sigT] = children(top, what);
      if (!tbsT || !sigAlgT || sigT?.tag !== Tag.BIT_STRING || sigT.contents[0] !== 0) throw new Error('bad CertificateList SEQUENCE');
      this.tbs = Buffer.from(tbsT.raw);
      const f = children(tbsT, what);
      const hasVersion = f[0]?.tag === Tag.INTEGER;
      this.version = hasVersion ? f[0]!.contents[0]! + 1 : 1;
      const [innerSigAlg, issuer] = hasVersion ? f.slice(1) : f;
      if (!innerSigAlg || !issuer) throw new Error('bad TBSCertList');
      if (!innerSigAlg.raw.equals(sigAlgT.raw)) throw new Error('signature algorithm differs inside and outside the TBS');
      this.issuerDer = Buffer.from(issuer.raw);
      this.signatureAlgorithm = parseAlgorithmId(Buffer.from(sigAlgT.raw));
      this.signature = Buffer.from(sigT.contents.subarray(1));
      this.extensions = parseExtensions(f.find((x) => x.tag === 0xa0), what);
    } catch (e) {
      if (e instanceof AuthError) throw new AuthError('ERR_CRL_PARSE', e.message, { file: source });
      throw new AuthError('ERR_CRL_PARSE', `${what}: not a CRL (${(e as Error).message})`, { file: source });
    }
    this.issuer = derToDnText(this.issuerDer);
    this.thisUpdate = this.pkijs.thisUpdate.value;
    this.nextUpdate = this.pkijs.nextUpdate?.value;
    this.entries = new Map();
    let unknownCritical = false;
    for (const r of this.pkijs.revokedCertificates ?? []) {
      const serial = serialHex(r.userCertificate.valueBlock.valueHexView);
      let reason: number | undefined;
      for (const x of r.crlEntryExtensions?.extensions ?? []) {
        if (x.extnID === ExtOid.reasonCode) {
          const v = readOne(toBuf(x.extnValue.valueBlock.valueHexView), 'reasonCode');
          reason = v.contents[0];
        } else if (x.critical) unknownCritical = true;
      }
      this.entries.set(serial, { serial, date: r.revocationDate.value, reason });
    }
    this.hasUnknownCriticalEntryExtension = unknownCritical;
    const num = this.extensions.find((x) => x.oid === ExtOid.cRLNumber)?.value;
    this.crlNumber = num ? BigInt(`0x${readOne(num, 'cRLNumber').contents.toString('hex') || '0'}`) : undefined;
    const aki = this.extensions.find((x) => x.oid === ExtOid.authorityKeyIdentifier)?.value;
    this.authorityKeyId = aki ? decodeAki(aki) : undefined;
  }

  static fromDer(der: Uint8Array, source?: string): Crl {
    return new Crl(Buffer.from(der), source);
  }

  static fromPem(pem: string, source?: string): Crl {
    const b64 = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(pem)?.[1];
    if (b64 === undefined) throw new AuthError('ERR_CRL_PARSE', `${source ?? 'PEM'}: no X509 CRL block`, { file: source });
    return new Crl(Buffer.from(b64.replace(/\s+/g, ''), 'base64'), source);
  }

  toPem(): string {
    return `-----BEGIN X509 CRL-----\n${this.der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END X509 CRL-----\n`;
  }

  revoked(serial: string): RevokedEntry | undefined { return this.entries.get(serial); }
}

/** RFC 5280 5.3.1 reason codes, for messages. */
export const REASONS: Record<number, string> = {
  0: 'unspecified', 1: 'keyCompromise', 2: 'cACompromise', 3: 'affiliationChanged', 4: 'superseded',
  5: 'cessationOfOperation', 6: 'certificateHold', 8: 'removeFromCRL', 9: 'privilegeWithdrawn', 10: 'aACompromise',
};
