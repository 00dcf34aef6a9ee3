/**
 * Distinguished names: the text form config files use ("C=CH, O=styx,
 * CN=moon", attributes in the order they appear in the DER, which is how
 * IPsec configurations conventionally write them, not the reversed RFC 4514
 * order) to and from the DER Name that ID_DER_ASN1_DN carries (RFC 7296 3.5)
 * and certificates hold (RFC 5280 4.1.2.4).
 */
import { AuthError } from './errors.js';
import { children, oidDer, oidText, readOne, Tag, tlv, type Tlv } from './der.js';

type Encoding = 'printable' | 'ia5' | 'utf8';
interface AttrDef { oid: string; names: string[]; enc: Encoding }

/*
 * Keywords accepted in text; the first name is the one printed. C, serial
 * number and dnQualifier are PrintableString by their ASN.1 definitions
 * (RFC 5280 appendix A), e-mail and DC are IA5String, and everything else is
 * a DirectoryString for which RFC 5280 4.1.2.4 asks for UTF8String.
 */
const ATTRS: AttrDef[] = [
  { oid: '2.5.4.6', names: ['C'], enc: 'printable' },
  { oid: '2.5.4.8', names: ['ST', 'stateOrProvinceName'], enc: 'utf8' },
  { oid: '2.5.4.7', names: ['L', 'localityName'], enc: 'utf8' },
  { oid: '2.5.4.10', names: ['O', 'organizationName'], enc: 'utf8' },
  { oid: '2.5.4.11', names: ['OU', 'organizationalUnitName'], enc: 'utf8' },
  { oid: '2.5.4.3', names: ['CN', 'commonName'], enc: 'utf8' },
  { oid: '1.2.840.113549.1.9.1', names: ['E', 'emailAddress', 'Email'], enc: 'ia5' },
  { oid: '2.5.4.4', names: ['SN', 'surname'], enc: 'utf8' },
  { oid: '2.5.4.5', names: ['serialNumber'], enc: 'printable' },
  { oid: '0.9.2342.19200300.100.1.25', names: ['DC', 'domainComponent'], enc: 'ia5' },
  { oid: '0.9.2342.19200300.100.1.1', names: ['UID', 'userId'], enc: 'utf8' },
  { oid: '2.5.4.12', names: ['T', 'title'], enc: 'utf8' },
  { oid: '2.5.4.42', names: ['G', 'GN', 'givenName'], enc: 'utf8' },
  { oid: '2.5.4.43', names: ['I', 'initials'], enc: 'utf8' },
  { oid: '2.5.4.41', names: ['N', 'name'], enc: 'utf8' },
  { oid: '2.5.4.9', names: ['street', 'streetAddress'], enc: 'utf8' },
  { oid: '2.5.4.17', names: ['postalCode'], enc: 'utf8' },
  { oid: '2.5.4.13', names: ['description'], enc: 'utf8' },
  { oid: '2.5.4.46', names: ['dnQualifier'], enc: 'printable' },
  { oid: '2.5.4.65', names: ['pseudonym'], enc: 'utf8' },
];
const BY_NAME = new Map<string, AttrDef>();
for (const a of ATTRS) for (const n of a.names) BY_NAME.set(n.toLowerCase(), a);
const BY_OID = new Map(ATTRS.map((a) => [a.oid, a]));

/** One attribute of a parsed Name: its type, the value's tag and the value element as encoded. */
export interface DnAttribute { oid: string; tag: number; value: Buffer; text: string | undefined }
export type Rdn = DnAttribute[];

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function synErr(text: string, why: string): AuthError {
  return new AuthError('ERR_DN_SYNTAX', `distinguished name "${text}": ${why}`);
}

/** Splits on unescaped, unquoted separators. */
function splitTop(s: string, seps: string, full: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') {
      if (i + 1 >= s.length) throw synErr(full, 'trailing backslash');
      cur += c + s[++i];
    } else if (c === '"') { quoted = !quoted; cur += c; } else if (!quoted && seps.includes(c)) { out.push(cur); cur = ''; } else cur += c;
  }
  if (quoted) throw synErr(full, 'unterminated quote');
  out.push(cur);
  return out;
}

/** Undoes RFC 4514-style escapes ("\,", "\2C") and quoting; keeps UTF-8 from hex escapes intact. */
function unescapeValue(raw: string, full: string): string {
  let v = raw.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
  const bytes: number[] = [];
  const pushStr = (s: string): void => { for (const b of Buffer.from(s, 'utf8')) bytes.push(b); };
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c !== '\\') { pushStr(c); continue; }
    const n = v.slice(i + 1, i + 3);
    if (/^[0-9a-fA-F]{2}$/.test(n)) { bytes.push(parseInt(n, 16)); i += 2; } else if (i + 1 < v.length) { pushStr(v[i + 1]!); i += 1; } else throw synErr(full, 'trailing backslash');
  }
  return Buffer.from(bytes).toString('utf8');
}

function encodeValue(def: AttrDef | undefined, value: string, full: string): Buffer {
  const enc = def?.enc ?? 'utf8';
  if (enc === 'printable') {
    if (!PRINTABLE.test(value)) throw synErr(full, `"${value}" is not a PrintableString`);
    return tlv(Tag.PrintableString, Buffer.from(value, 'latin1'));
  }
  if (enc === 'ia5') {
    if (!/^[\x00-\x7f]*$/.test(value)) throw synErr(full, `"${value}" is not an IA5String`);
    return tlv(Tag.IA5String, Buffer.from(value, 'latin1'));
  }
  return tlv(Tag.UTF8String, Buffer.from(value, 'utf8'));
}

/** Encodes one attribute "type=value" to the DER of its AttributeTypeAndValue. */
function encodeAtv(part: string, full: string): Buffer {
  const eq = part.indexOf('=');
  if (eq <= 0) throw synErr(full, `"${part.trim()}" is not type=value`);
  const type = part.slice(0, eq).trim();
  const rawValue = part.slice(eq + 1).trim();
  let oid: string;
  let def: AttrDef | undefined;
  const dotted = type.replace(/^oid\./i, '');
  if (/^\d+(\.\d+)+$/.test(dotted)) { oid = dotted; def = BY_OID.get(oid); } else {
    def = BY_NAME.get(type.toLowerCase());
    if (!def) throw synErr(full, `unknown attribute type "${type}"`);
    oid = def.oid;
  }
  let value: Buffer;
  if (rawValue.startsWith('#')) {
    // RFC 4514 2.4: '#' then the hex of the BER value, for values that have no string form.
    const hexs = rawValue.slice(1);
    if (!/^([0-9a-fA-F]{2})+$/.test(hexs)) throw synErr(full, `bad hex value for ${type}`);
    value = Buffer.from(hexs, 'hex');
    try { readOne(value, 'DN value'); } catch { throw synErr(full, `hex value for ${type} is not one DER element`); }
  } else value = encodeValue(def, unescapeValue(rawValue, full), full);
  return tlv(Tag.SEQUENCE, Buffer.concat([oidDer(oid), value]));
}

/**
 * Text DN to DER Name. RDNs are separated by ',' (or ';', or '/' when the
 * text starts with '/'), multi-valued RDNs by '+'. An empty string is the
 * empty Name.
 */
export function dnToDer(text: string): Buffer {
  let body = text.trim();
  let seps = ',;';
  if (body.startsWith('/')) { body = body.slice(1); seps = '/'; }
  if (body === '') return tlv(Tag.SEQUENCE, Buffer.alloc(0));
  const rdns = splitTop(body, seps, text).map((rdnText) => {
    if (rdnText.trim() === '') throw synErr(text, 'empty RDN');
    const atvs = splitTop(rdnText, '+', text).map((p) => encodeAtv(p, text));
    // X.690 11.6: a DER SET OF is sorted by the encodings of its elements.
    atvs.sort(Buffer.compare);
    return tlv(Tag.SET, Buffer.concat(atvs));
  });
  return tlv(Tag.SEQUENCE, Buffer.concat(rdns));
}

/** Contents of a string element as text, or undefined for types without a text form. */
function stringValue(t: Tlv): string | undefined {
  switch (t.tag) {
    case Tag.UTF8String: return t.contents.toString('utf8');
    case Tag.PrintableString: case Tag.IA5String: case Tag.VisibleString: case Tag.NumericString:
    case Tag.TeletexString: return t.contents.toString('latin1');
    case Tag.BMPString: {
      if (t.contents.length % 2) return undefined;
      const sw = Buffer.from(t.contents);
      sw.swap16();
      return sw.toString('utf16le');
    }
    case Tag.UniversalString: {
      if (t.contents.length % 4) return undefined;
      let s = '';
      for (let i = 0; i < t.contents.length; i += 4) s += String.fromCodePoint(t.contents.readUInt32BE(i));
      return s;
    }
    default: return undefined;
  }
}

/** Parses a DER Name into its RDNs. */
export function parseDn(der: Buffer): Rdn[] {
  let top: Tlv;
  try { top = readOne(der, 'Name'); } catch (e) { throw new AuthError('ERR_DN_SYNTAX', `Name is not DER: ${(e as Error).message}`); }
  if (top.tag !== Tag.SEQUENCE) throw new AuthError('ERR_DN_SYNTAX', 'Name is not a SEQUENCE');
  return children(top, 'Name').map((set) => {
    if (set.tag !== Tag.SET) throw new AuthError('ERR_DN_SYNTAX', 'RDN is not a SET');
    const atvs = children(set, 'RDN');
    if (atvs.length === 0) throw new AuthError('ERR_DN_SYNTAX', 'empty RDN');
    return atvs.map((atv) => {
      const parts = children(atv, 'AttributeTypeAndValue');
      if (atv.tag !== Tag.SEQUENCE || parts.length !== 2 || parts[0]!.tag !== Tag.OID) throw new AuthError('ERR_DN_SYNTAX', 'bad AttributeTypeAndValue');
      const value = parts[1]!;
      return { oid: oidText(parts[0]!.contents), tag: value.tag, value: Buffer.from(value.raw), text: stringValue(value) };
    });
  });
}

/** Escapes a value for the text form (RFC 4514 2.4 specials). */
function escapeValue(v: string): string {
  let s = v.replace(/[\\,+"<>;]/g, (c) => `\\${c}`);
  if (s.startsWith(' ') || s.startsWith('#')) s = `\\${s}`;
  if (s.endsWith(' ') && s.length > 1) s = `${s.slice(0, -1)}\\ `;
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** DER Name to text, in DER order, e.g. "C=CH, O=styx, CN=moon". */
export function derToDnText(der: Buffer): string {
  return parseDn(der).map((rdn) => rdn.map((a) => {
    const type = BY_OID.get(a.oid)?.names[0] ?? a.oid;
    return `${type}=${a.text !== undefined ? escapeValue(a.text) : `#${a.value.toString('hex')}`}`;
  }).join(' + ')).join(', ');
}

/** RFC 5280 7.1 / RFC 4518 in the small: case-fold, Unicode-normalise and squeeze spaces. */
function prepString(s: string): string {
  return s.normalize('NFKC').toLowerCase().trim().replace(/\s+/g, ' ');
}

function atvEqual(a: DnAttribute, b: DnAttribute): boolean {
  if (a.oid !== b.oid) return false;
  if (a.value.equals(b.value)) return true;
  // Two string values match regardless of string type; anything else only byte for byte.
  return a.text !== undefined && b.text !== undefined && prepString(a.text) === prepString(b.text);
}

/**
 * Name comparison per RFC 5280 7.1: same number of RDNs, each RDN the same
 * set of attributes, string values compared after case folding and space
 * squeezing. DER-equal names always match.
 */
export function dnEquals(a: Buffer, b: Buffer): boolean {
  if (a.equals(b)) return true;
  let ra: Rdn[];
  let rb: Rdn[];
  try { ra = parseDn(a); rb = parseDn(b); } catch { return false; }
  if (ra.length !== rb.length) return false;
  return ra.every((rdnA, i) => {
    const rdnB = rb[i]!;
    return rdnA.length === rdnB.length && rdnA.every((x) => rdnB.some((y) => atvEqual(x, y)));
  });
}
