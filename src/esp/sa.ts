/**
 * One ESP security association: its cipher suite, sequence numbers, replay
 * window, counters and lifetime limits.
 *
 * Cipher suites (RFC 4303 3.2 and the transform RFCs):
 * - AES-GCM with 8/12/16-octet ICV (RFC 4106) and ChaCha20-Poly1305
 *   (RFC 7634): key material = key | 4-octet salt, nonce = salt | 8-octet
 *   explicit IV, AAD = SPI | seq (RFC 4106 5), or SPI | seq-high | seq-low
 *   with ESN.
 * - AES-CBC (RFC 3602) with HMAC-SHA1-96 (RFC 2404) or HMAC-SHA2 (RFC 4868):
 *   random 16-octet IV; ICV over SPI | seq | IV | ciphertext, with the ESN
 *   high half appended for the computation only (RFC 4303 2.2.1, 3.3.2.2).
 *
 * Per-packet cost: Node gives no way to re-key or re-IV a cipher context, so
 * every packet creates one cipher and (CBC) one HMAC. What can be hoisted is:
 * the keys become KeyObjects once per SA (no key copy per packet), the AEAD
 * nonce and ESN AAD are scratch buffers filled in place, and CBC IVs come
 * from a pooled CSPRNG buffer instead of one randomBytes call each.
 */
import {
  createCipheriv, createDecipheriv, createHmac, createSecretKey, randomFillSync, timingSafeEqual, type KeyObject,
} from 'node:crypto';
import type { Direction, Endpoint, IpsecMode, SaCounters, SaParams, Selector } from '../dataplane/api.js';
import { encrCipherKeyBits, encrInfo, encrKeyBytes, integInfo, type EncrInfo } from '../crypto/registry.js';
import { IntegrityError, MalformedError, UnsupportedError, err, ok, type Result } from '../util/errors.js';
import { IntegId } from '../wire/ikev2/constants.js';
import { ReplayWindow } from './replay.js';
import { CompiledSelector } from './selector.js';
import { parseIPv4 } from './ip.js';

/** How an SA protects packets; packet.ts frames the ESP header and trailer around it. */
export interface EspTransform {
  /** Log name, e.g. AES_GCM_16_128 or AES_CBC_128/HMAC_SHA2_256_128. */
  readonly name: string;
  readonly ivBytes: number;
  readonly icvBytes: number;
  /** RFC 4303 2.4: Payload | Padding | Pad Length | Next Header ends on a multiple of this (at least 4). */
  readonly align: number;
  /** Ciphertext must be whole blocks of this (CBC); 1 for the stream-like AEADs. */
  readonly blockBytes: number;
  /** Writes a fresh IV for the packet with this sequence number at out[at..]. */
  writeIv(out: Buffer, at: number, seqHigh: number, seqLow: number): void;
  /**
   * Encrypts out[ptAt, ptAt+ptLen) in place and writes the ICV after it.
   * out[0..8) holds SPI | seq-low and out[8..ptAt) the IV already.
   */
  seal(out: Buffer, ptAt: number, ptLen: number, seqHigh: number): void;
  /** Verifies and decrypts a whole ESP packet; returns Payload | Padding | Pad Length | Next Header. */
  open(packet: Buffer, seqHigh: number): Result<Buffer, IntegrityError>;
}

/** The part of Node's AEAD cipher objects used here (GCM and ChaCha20-Poly1305 share it). */
interface AeadCipher {
  setAAD(aad: Buffer, options: { plaintextLength: number }): unknown;
  update(data: Buffer): Buffer;
  final(): Buffer;
  getAuthTag(): Buffer;
}
interface AeadDecipher {
  setAAD(aad: Buffer, options: { plaintextLength: number }): unknown;
  setAuthTag(tag: Buffer): unknown;
  update(data: Buffer): Buffer;
  final(): Buffer;
}

const ESP_HEADER = 8;

/** AES-GCM (RFC 4106) and ChaCha20-Poly1305 (RFC 7634), one direction of one SA. */
class AeadTransform implements EspTransform {
  readonly ivBytes = 8;
  readonly align = 4;
  readonly blockBytes = 1;
  readonly icvBytes: number;
  private readonly nonce: Buffer;
  private readonly aad12 = Buffer.alloc(12);
  /** Reused: Node reads it synchronously inside setAAD (the types require it for ChaCha20-Poly1305). */
  private readonly aadOpts = { plaintextLength: 0 };
  private readonly newCipher: (nonce: Buffer) => AeadCipher;
  private readonly newDecipher: (nonce: Buffer) => AeadDecipher;

  constructor(readonly name: string, info: EncrInfo, keyBits: number, keyWithSalt: Buffer, private readonly esn: boolean) {
    this.icvBytes = info.tagBytes;
    const cut = keyWithSalt.length - info.saltBytes;
    const key: KeyObject = createSecretKey(Buffer.from(keyWithSalt.subarray(0, cut)));
    // RFC 4106 4 / RFC 7634 2: the nonce is salt | explicit IV; the salt part never changes.
    this.nonce = Buffer.alloc(12);
    keyWithSalt.copy(this.nonce, 0, cut);
    const opts = { authTagLength: this.icvBytes };
    if (info.mode === 'chacha20-poly1305') {
      this.newCipher = (n) => createCipheriv('chacha20-poly1305', key, n, opts);
      this.newDecipher = (n) => createDecipheriv('chacha20-poly1305', key, n, opts);
    } else {
      const alg = keyBits === 128 ? 'aes-128-gcm' : keyBits === 192 ? 'aes-192-gcm' : 'aes-256-gcm';
      this.newCipher = (n) => createCipheriv(alg, key, n, opts);
      this.newDecipher = (n) => createDecipheriv(alg, key, n, opts);
    }
  }

  /**
   * RFC 4106 3.1 / RFC 7634 2: the IV must never repeat under a key. The
   * 64-bit sequence number never does (RFC 4303 3.3.3 forbids cycling), so it
   * is the IV, as RFC 4106 3.1 suggests.
   */
  writeIv(out: Buffer, at: number, seqHigh: number, seqLow: number): void {
    out.writeUInt32BE(seqHigh, at);
    out.writeUInt32BE(seqLow, at + 4);
  }

  /** RFC 4106 5: SPI | seq, or SPI | seq-high | seq-low with ESN (RFC 7634 2.1 likewise). */
  private aad(packet: Buffer, seqHigh: number): Buffer {
    if (!this.esn) return packet.subarray(0, ESP_HEADER);
    packet.copy(this.aad12, 0, 0, 4);
    this.aad12.writeUInt32BE(seqHigh, 4);
    packet.copy(this.aad12, 8, 4, 8);
    return this.aad12;
  }

  seal(out: Buffer, ptAt: number, ptLen: number, seqHigh: number): void {
    out.copy(this.nonce, 4, ESP_HEADER, ESP_HEADER + 8);
    const c = this.newCipher(this.nonce);
    this.aadOpts.plaintextLength = ptLen;
    c.setAAD(this.aad(out, seqHigh), this.aadOpts);
    const ct = c.update(out.subarray(ptAt, ptAt + ptLen));
    ct.copy(out, ptAt);
    const rest = c.final(); // empty for these stream-like modes; kept for correctness
    if (rest.length !== 0) rest.copy(out, ptAt + ct.length);
    c.getAuthTag().copy(out, ptAt + ptLen);
  }

  open(packet: Buffer, seqHigh: number): Result<Buffer, IntegrityError> {
    const ctAt = ESP_HEADER + 8;
    const tagAt = packet.length - this.icvBytes;
    packet.copy(this.nonce, 4, ESP_HEADER, ctAt);
    const d = this.newDecipher(this.nonce);
    d.setAuthTag(packet.subarray(tagAt));
    this.aadOpts.plaintextLength = tagAt - ctAt;
    d.setAAD(this.aad(packet, seqHigh), this.aadOpts);
    const pt = d.update(packet.subarray(ctAt, tagAt));
    try {
      // No plaintext leaves here unless final() has verified the tag.
      const rest = d.final();
      return ok(rest.length === 0 ? pt : Buffer.concat([pt, rest]));
    } catch {
      return err(new IntegrityError('ESP ICV (AEAD tag)'));
    }
  }
}

/** A pool of CSPRNG output handed out in IV-sized slices: one randomFillSync per 256 CBC packets. */
class RandomPool {
  private readonly buf = Buffer.allocUnsafe(4096);
  private at = this.buf.length;
  take(out: Buffer, outAt: number, n: number): void {
    if (this.at + n > this.buf.length) { randomFillSync(this.buf); this.at = 0; }
    this.buf.copy(out, outAt, this.at, this.at + n);
    this.at += n; // each octet is handed out once

  }
}
const ivPool = new RandomPool();

export type IvSource = (length: number) => Buffer;

/** AES-CBC (RFC 3602) with a truncated HMAC (RFC 2404, RFC 4868), or none for known-answer tests. */
class CbcTransform implements EspTransform {
  readonly ivBytes = 16;
  readonly blockBytes = 16;
  readonly align = 16;
  readonly icvBytes: number;
  private readonly alg: string;
  private readonly key: KeyObject;
  private readonly hash: string;
  private readonly integKey: KeyObject | null;
  private readonly seqHi4 = Buffer.alloc(4);

  constructor(readonly name: string, keyBits: number, key: Buffer, integ: { hash: string; icvBytes: number; key: Buffer } | null,
    private readonly esn: boolean, private readonly ivSource: IvSource | null) {
    this.alg = `aes-${keyBits}-cbc`;
    this.key = createSecretKey(Buffer.from(key));
    this.hash = integ?.hash ?? '';
    this.icvBytes = integ?.icvBytes ?? 0;
    this.integKey = integ ? createSecretKey(Buffer.from(integ.key)) : null;
  }

  /** RFC 3602 3: the IV must be unpredictable, so random per packet, never the last ciphertext block. */
  writeIv(out: Buffer, at: number): void {
    if (this.ivSource) {
      const iv = this.ivSource(16);
      if (iv.length !== 16) throw new MalformedError('CBC IV', `${iv.length} octets`);
      iv.copy(out, at);
    } else {
      ivPool.take(out, at, 16);
    }
  }

  /** RFC 4303 2.8 / 3.3.2.2: the ICV covers SPI through the ciphertext, then the ESN high half (never sent). */
  private icv(packet: Buffer, end: number, seqHigh: number): Buffer {
    const h = createHmac(this.hash, this.integKey!);
    h.update(packet.subarray(0, end));
    if (this.esn) {
      this.seqHi4.writeUInt32BE(seqHigh, 0);
      h.update(this.seqHi4);
    }
    return h.digest();
  }

  seal(out: Buffer, ptAt: number, ptLen: number, seqHigh: number): void {
    const c = createCipheriv(this.alg, this.key, out.subarray(ESP_HEADER, ptAt));
    c.setAutoPadding(false); // ESP pads itself (RFC 4303 2.4)
    const ct = c.update(out.subarray(ptAt, ptAt + ptLen));
    ct.copy(out, ptAt);
    const rest = c.final();
    if (rest.length !== 0) rest.copy(out, ptAt + ct.length);
    if (this.integKey) this.icv(out, ptAt + ptLen, seqHigh).copy(out, ptAt + ptLen, 0, this.icvBytes);
  }

  open(packet: Buffer, seqHigh: number): Result<Buffer, IntegrityError> {
    const icvAt = packet.length - this.icvBytes;
    if (this.integKey) {
      // RFC 4303 3.4.4.1: the ICV is checked before decryption, so forged packets never reach the padding check.
      const mac = this.icv(packet, icvAt, seqHigh);
      if (!timingSafeEqual(mac.subarray(0, this.icvBytes), packet.subarray(icvAt))) return err(new IntegrityError('ESP ICV (HMAC)'));
    }
    const ctAt = ESP_HEADER + 16;
    const d = createDecipheriv(this.alg, this.key, packet.subarray(ESP_HEADER, ctAt));
    d.setAutoPadding(false);
    const pt = d.update(packet.subarray(ctAt, icvAt));
    const rest = d.final();
    return ok(rest.length === 0 ? pt : Buffer.concat([pt, rest]));
  }
}

export interface EspTransformOptions {
  /**
   * Accept AES-CBC with no integrity algorithm. RFC 4303 3.2 permits
   * encryption-only ESP but RFC 8221 5 says it MUST NOT be negotiated with
   * CBC; styx uses it only to check the RFC 3602 known answers. The engine
   * never sets it.
   */
  allowEncryptionOnly?: boolean;
  /** CBC only: a fixed IV source for known-answer tests. */
  ivSource?: IvSource;
}

/** Builds the transform for an SA's ENCR/INTEG pair (IANA IKEv2 transform IDs). */
export function createEspTransform(
  encr: { id: number; key: Buffer; keyLength: number },
  integ: { id: number; key: Buffer } | null,
  esn: boolean,
  opts: EspTransformOptions = {},
): EspTransform {
  const info = encrInfo(encr.id);
  const keyBits = encrCipherKeyBits(encr.id, encr.keyLength);
  const want = encrKeyBytes(encr.id, encr.keyLength);
  if (encr.key.length !== want) throw new MalformedError('ESP encryption key', `${encr.key.length} octets, ${want} needed`);
  const integId = integ?.id ?? IntegId.NONE;
  if (info.mode === 'cbc') {
    if (integId === IntegId.NONE) {
      if (!opts.allowEncryptionOnly) throw new UnsupportedError('AES-CBC ESP without integrity (RFC 8221 5)');
      return new CbcTransform(`AES_CBC_${keyBits}/NONE`, keyBits, encr.key, null, esn, opts.ivSource ?? null);
    }
    const i = integInfo(integId);
    if (integ!.key.length !== i.keyBytes) throw new MalformedError('ESP integrity key', `${integ!.key.length} octets, ${i.keyBytes} needed`);
    return new CbcTransform(`AES_CBC_${keyBits}/${i.name}`, keyBits, encr.key, { hash: i.hash, icvBytes: i.icvBytes, key: integ!.key }, esn, opts.ivSource ?? null);
  }
  // RFC 4106 9 / RFC 7634 3: an AEAD is its own integrity check.
  if (integId !== IntegId.NONE) throw new UnsupportedError(`integrity algorithm ${integId} with an AEAD cipher`);
  const name = info.mode === 'gcm' ? `AES_GCM_${info.tagBytes}_${keyBits}` : 'CHACHA20_POLY1305';
  return new AeadTransform(name, info, keyBits, encr.key, esn);
}

// ------------------------------------------------------------------ the SA

/** SaCounters plus what only this engine counts. */
export interface EspSaCounters extends SaCounters {
  paddingErrors: bigint;
  /** Packets refused because the SA had reached a hard limit or exhausted its sequence numbers. */
  expiredDrops: bigint;
}

export interface EspSaOptions extends EspTransformOptions {
  /** RFC 4303 2.4: check the default padding is 1, 2, 3, ... (default true). */
  checkPadding?: boolean;
  /** Inbound: the highest sequence number taken as already received (see ReplayWindow). */
  replayStart?: bigint;
  /** Outbound: the last sequence number taken as already sent; the next packet gets one more. */
  outboundSeqStart?: bigint;
  /** Clock for lastUsed and time limits, in ms. */
  now?: number;
}

/** Bit flags for the lifetime limits a packet or a clock tick crossed (RFC 4301 4.4.2.1). */
export const EXPIRE_SOFT = 1;
export const EXPIRE_HARD = 2;

/** Soft-expire this many sequence numbers before the counter runs out, so IKE can rekey in time. */
const SEQ_SOFT_MARGIN = 1 << 24;

const limit = (v: bigint | undefined): number => (v === undefined ? Infinity : Number(v));
const seconds = (v: number | undefined): number => (v === undefined || v <= 0 ? Infinity : v * 1000);

export class EspSa {
  readonly spi: number;
  readonly direction: Direction;
  readonly mode: IpsecMode;
  readonly esn: boolean;
  readonly tag: string;
  readonly transform: EspTransform;
  readonly replay: ReplayWindow | null;
  readonly checkPadding: boolean;
  readonly local: readonly CompiledSelector[];
  readonly remote: readonly CompiledSelector[];
  readonly selectors: { local: Selector[]; remote: Selector[] };
  src: Endpoint;
  dst: Endpoint;
  encap: boolean;
  /** IPv4 outer addresses as octets, for rebuilding transport-mode headers; null for IPv6. */
  srcV4: Buffer | null;
  dstV4: Buffer | null;

  bytes = 0;
  packets = 0;
  replayDrops = 0;
  authFailures = 0;
  paddingErrors = 0;
  expiredDrops = 0;
  lastUsed: number | null = null;

  private seqHigh: number;
  private seqLow: number;
  private readonly created: number;
  private readonly softBytes: number;
  private readonly hardBytes: number;
  private readonly softPackets: number;
  private readonly hardPackets: number;
  private readonly softMs: number;
  private readonly hardMs: number;
  private softFired = false;
  private hardFired = false;

  constructor(p: SaParams, opts: EspSaOptions = {}) {
    if (p.protocol !== 'esp') throw new UnsupportedError(`IPsec protocol ${String(p.protocol)}`);
    // RFC 4303 2.1: SPI 0 is reserved and 1-255 are set aside by IANA.
    if (!Number.isInteger(p.spi) || p.spi < 256 || p.spi > 0xffff_ffff) throw new MalformedError('SA', `SPI ${p.spi}`);
    this.spi = p.spi >>> 0;
    this.direction = p.direction;
    this.mode = p.mode;
    this.esn = p.esn;
    this.tag = p.tag;
    this.transform = createEspTransform(p.encr, p.integ, p.esn, opts);
    this.replay = p.direction === 'in' ? new ReplayWindow(p.replayWindow, p.esn, opts.replayStart ?? 0n) : null;
    this.checkPadding = opts.checkPadding ?? true;
    this.selectors = p.selectors;
    this.local = p.selectors.local.map((s) => new CompiledSelector(s));
    this.remote = p.selectors.remote.map((s) => new CompiledSelector(s));
    this.src = { ...p.src };
    this.dst = { ...p.dst };
    this.encap = p.encap;
    this.srcV4 = parseIPv4(p.src.address);
    this.dstV4 = parseIPv4(p.dst.address);
    const start = opts.outboundSeqStart ?? 0n;
    if (start < 0n || start >= (p.esn ? 1n << 64n : 1n << 32n)) throw new MalformedError('SA', `outbound sequence start ${start}`);
    this.seqHigh = Number(start >> 32n);
    this.seqLow = Number(start & 0xffff_ffffn);
    this.created = opts.now ?? Date.now();
    const l = p.limits ?? {};
    this.softBytes = limit(l.softBytes);
    this.hardBytes = limit(l.hardBytes);
    this.softPackets = limit(l.softPackets);
    this.hardPackets = limit(l.hardPackets);
    this.softMs = seconds(l.softSeconds);
    this.hardMs = seconds(l.hardSeconds);
  }

  /** True once a hard limit was reached: RFC 4301 4.4.2.1 says the SA must no longer be used. */
  get dead(): boolean { return this.hardFired; }

  /** The last sequence number used outbound (0 before the first packet). */
  get outboundSeq(): bigint { return (BigInt(this.seqHigh) << 32n) | BigInt(this.seqLow); }
  get outboundSeqHigh(): number { return this.seqHigh; }
  get outboundSeqLow(): number { return this.seqLow; }

  /**
   * Takes the next outbound sequence number. RFC 4303 3.3.3: the counter
   * must not cycle; at 2^32-1 (2^64-1 with ESN) the SA is spent, and this
   * returns false.
   */
  nextSeq(): boolean {
    if (this.seqLow === 0xffff_ffff) {
      if (!this.esn || this.seqHigh === 0xffff_ffff) return false;
      this.seqHigh += 1;
      this.seqLow = 0;
    } else {
      this.seqLow += 1;
    }
    return true;
  }

  /** Fires the hard limit now (sequence space used up); returns the flags newly crossed. */
  exhaust(): number {
    if (this.hardFired) return 0;
    this.hardFired = this.softFired = true;
    return EXPIRE_HARD;
  }

  /**
   * Counts one packet of `bytes` inner octets and returns which limits it
   * crossed for the first time (EXPIRE_* flags). Each limit fires once.
   */
  account(bytes: number, now: number): number {
    this.bytes += bytes;
    this.packets += 1;
    this.lastUsed = now;
    if (this.hardFired) return 0;
    if (this.bytes >= this.hardBytes || this.packets >= this.hardPackets) return this.exhaust();
    if (!this.softFired) {
      const seqLeft = this.direction === 'out' && (!this.esn || this.seqHigh === 0xffff_ffff) ? 0xffff_ffff - this.seqLow : Infinity;
      if (this.bytes >= this.softBytes || this.packets >= this.softPackets || seqLeft <= SEQ_SOFT_MARGIN) {
        this.softFired = true;
        return EXPIRE_SOFT;
      }
    }
    return 0;
  }

  /** Time limits (RFC 4301 4.4.2.1), measured from when the SA was added. */
  checkTime(now: number): number {
    if (this.hardFired) return 0;
    const age = now - this.created;
    if (age >= this.hardMs) return this.exhaust();
    if (!this.softFired && age >= this.softMs) {
      this.softFired = true;
      return EXPIRE_SOFT;
    }
    return 0;
  }

  update(changes: { src?: Endpoint; dst?: Endpoint; encap?: boolean }): void {
    if (changes.src) { this.src = { ...changes.src }; this.srcV4 = parseIPv4(changes.src.address); }
    if (changes.dst) { this.dst = { ...changes.dst }; this.dstV4 = parseIPv4(changes.dst.address); }
    if (changes.encap !== undefined) this.encap = changes.encap;
  }

  counters(): EspSaCounters {
    return {
      bytes: BigInt(this.bytes), packets: BigInt(this.packets), replayDrops: BigInt(this.replayDrops),
      authFailures: BigInt(this.authFailures), lastUsed: this.lastUsed,
      paddingErrors: BigInt(this.paddingErrors), expiredDrops: BigInt(this.expiredDrops),
    };
  }
}
