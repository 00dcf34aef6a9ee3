import { TruncatedError, MalformedError } from './errors.js';

/**
 * Bounds-checked cursor over a Buffer. Every read checks the remaining
 * length first and throws TruncatedError rather than returning a short slice.
 */
export class ByteReader {
  private pos: number;
  private readonly end: number;
  constructor(private readonly buf: Buffer, start = 0, end = buf.length) {
    if (start < 0 || end > buf.length || start > end) throw new MalformedError('reader', 'bad bounds');
    this.pos = start;
    this.end = end;
  }
  get offset(): number { return this.pos; }
  get remaining(): number { return this.end - this.pos; }
  get atEnd(): boolean { return this.pos >= this.end; }

  private need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.end) throw new TruncatedError(what, n, this.end - this.pos);
  }
  u8(what = 'u8'): number { this.need(1, what); return this.buf[this.pos++]!; }
  u16(what = 'u16'): number { this.need(2, what); const v = this.buf.readUInt16BE(this.pos); this.pos += 2; return v; }
  u32(what = 'u32'): number { this.need(4, what); const v = this.buf.readUInt32BE(this.pos); this.pos += 4; return v; }
  u64(what = 'u64'): bigint { this.need(8, what); const v = this.buf.readBigUInt64BE(this.pos); this.pos += 8; return v; }
  /** Returns a copy, so decoded values never alias the receive buffer. */
  bytes(n: number, what = 'bytes'): Buffer { this.need(n, what); const v = Buffer.from(this.buf.subarray(this.pos, this.pos + n)); this.pos += n; return v; }
  rest(): Buffer { return this.bytes(this.remaining, 'rest'); }
  skip(n: number, what = 'skip'): void { this.need(n, what); this.pos += n; }
  /** A sub-reader over the next n bytes; this reader moves past them. */
  sub(n: number, what = 'sub'): ByteReader { this.need(n, what); const r = new ByteReader(this.buf, this.pos, this.pos + n); this.pos += n; return r; }
}

/**
 * Growable writer. `mark16`/`patch16` let codecs back-patch length fields
 * once the body is written.
 */
export class ByteWriter {
  private buf: Buffer;
  private len = 0;
  constructor(initial = 256) { this.buf = Buffer.alloc(initial); }
  get length(): number { return this.len; }
  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const nb = Buffer.alloc(size);
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }
  u8(v: number): this { this.grow(1); this.buf.writeUInt8(v & 0xff, this.len); this.len += 1; return this; }
  u16(v: number): this { this.grow(2); this.buf.writeUInt16BE(v & 0xffff, this.len); this.len += 2; return this; }
  u32(v: number): this { this.grow(4); this.buf.writeUInt32BE(v >>> 0, this.len); this.len += 4; return this; }
  u64(v: bigint): this { this.grow(8); this.buf.writeBigUInt64BE(v, this.len); this.len += 8; return this; }
  bytes(b: Uint8Array): this { this.grow(b.length); this.buf.set(b, this.len); this.len += b.length; return this; }
  zeros(n: number): this { this.grow(n); this.buf.fill(0, this.len, this.len + n); this.len += n; return this; }
  /** Reserve a u16 and return its offset for patch16. */
  mark16(): number { const at = this.len; this.u16(0); return at; }
  mark32(): number { const at = this.len; this.u32(0); return at; }
  patch8(at: number, v: number): void { this.buf.writeUInt8(v & 0xff, at); }
  patch16(at: number, v: number): void { this.buf.writeUInt16BE(v & 0xffff, at); }
  patch32(at: number, v: number): void { this.buf.writeUInt32BE(v >>> 0, at); }
  finish(): Buffer { return Buffer.from(this.buf.subarray(0, this.len)); }
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const fromHex = (s: string): Buffer => Buffer.from(s.replace(/[\s:]/g, ''), 'hex');

/** Constant-time comparison for MACs and AUTH values. */
import { timingSafeEqual } from 'node:crypto';
export function safeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
