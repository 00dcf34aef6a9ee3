/**
 * A minimal DER reader used to slice exact byte ranges out of certificates
 * and names (subject DER for ID matching, SubjectPublicKeyInfo for CERTREQ
 * hashes). Semantic decoding stays with pkijs/asn1js; this only walks TLVs,
 * so the bytes we compare and hash are the ones that were signed, not a
 * re-encoding.
 */
import { MalformedError } from '../util/errors.js';

export interface Tlv {
  /** The identifier octet (single-byte tags only; X.509 needs no others). */
  tag: number;
  constructed: boolean;
  /** The whole element: identifier, length and contents. */
  raw: Buffer;
  contents: Buffer;
}

export const Tag = {
  BOOLEAN: 0x01, INTEGER: 0x02, BIT_STRING: 0x03, OCTET_STRING: 0x04, NULL: 0x05, OID: 0x06,
  UTF8String: 0x0c, PrintableString: 0x13, TeletexString: 0x14, IA5String: 0x16,
  UTCTime: 0x17, GeneralizedTime: 0x18, VisibleString: 0x1a, UniversalString: 0x1c, BMPString: 0x1e,
  NumericString: 0x12, SEQUENCE: 0x30, SET: 0x31,
} as const;

/** Reads one DER element at `off`; indefinite and non-minimal lengths are refused, as DER requires. */
export function readTlv(buf: Buffer, off = 0, what = 'DER'): Tlv & { end: number } {
  if (off + 2 > buf.length) throw new MalformedError(what, 'truncated header');
  const tag = buf[off]!;
  if ((tag & 0x1f) === 0x1f) throw new MalformedError(what, 'multi-byte tag');
  let p = off + 1;
  let len = buf[p++]!;
  if (len === 0x80) throw new MalformedError(what, 'indefinite length');
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 4 || p + n > buf.length) throw new MalformedError(what, 'bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
    if (len < 0x80 || (n > 1 && buf[p - n] === 0)) throw new MalformedError(what, 'non-minimal length');
  }
  const end = p + len;
  if (end > buf.length) throw new MalformedError(what, 'length beyond input');
  return { tag, constructed: (tag & 0x20) !== 0, raw: buf.subarray(off, end), contents: buf.subarray(p, end), end };
}

/** Reads a buffer that must hold exactly one element. */
export function readOne(buf: Buffer, what = 'DER'): Tlv {
  const t = readTlv(buf, 0, what);
  if (t.end !== buf.length) throw new MalformedError(what, 'trailing data');
  return t;
}

/** The elements inside a constructed element. */
export function children(t: Tlv, what = 'DER'): Tlv[] {
  if (!t.constructed) throw new MalformedError(what, 'primitive where constructed expected');
  const out: Tlv[] = [];
  let off = 0;
  while (off < t.contents.length) {
    const c = readTlv(t.contents, off, what);
    out.push(c);
    off = c.end;
  }
  return out;
}

/** Dotted text of an OBJECT IDENTIFIER's contents (X.690 8.19). */
export function oidText(contents: Buffer): string {
  if (contents.length === 0) throw new MalformedError('OID', 'empty');
  const arcs: bigint[] = [];
  let v = 0n;
  for (let i = 0; i < contents.length; i++) {
    const b = contents[i]!;
    if (v === 0n && b === 0x80) throw new MalformedError('OID', 'non-minimal arc');
    v = (v << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) { arcs.push(v); v = 0n; } else if (i === contents.length - 1) throw new MalformedError('OID', 'truncated arc');
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** DER encoding of an OBJECT IDENTIFIER element. */
export function oidDer(dotted: string): Buffer {
  const parts = dotted.split('.').map((s) => {
    if (!/^\d+$/.test(s)) throw new MalformedError('OID', `bad arc in ${dotted}`);
    return BigInt(s);
  });
  if (parts.length < 2 || parts[0]! > 2n || (parts[0]! < 2n && parts[1]! >= 40n)) throw new MalformedError('OID', dotted);
  const arcs = [parts[0]! * 40n + parts[1]!, ...parts.slice(2)];
  const body: number[] = [];
  for (const a of arcs) {
    const bytes = [Number(a & 0x7fn)];
    for (let x = a >> 7n; x > 0n; x >>= 7n) bytes.unshift(Number(x & 0x7fn) | 0x80);
    body.push(...bytes);
  }
  return tlv(Tag.OID, Buffer.from(body));
}

/** Wraps contents in a DER header. */
export function tlv(tag: number, contents: Uint8Array): Buffer {
  const n = contents.length;
  let hdr: number[];
  if (n < 0x80) hdr = [tag, n];
  else {
    const lb: number[] = [];
    for (let x = n; x > 0; x = Math.floor(x / 256)) lb.unshift(x & 0xff);
    hdr = [tag, 0x80 | lb.length, ...lb];
  }
  return Buffer.concat([Buffer.from(hdr), contents]);
}
