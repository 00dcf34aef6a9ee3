/**
 * XFRM netlink messages (linux/xfrm.h, linux/netlink.h): the requests the
 * kernel data plane sends and typed decoders for what the kernel sends back.
 * Netlink integers are in host byte order (little-endian on every machine
 * styx runs on); addresses, SPIs and ports are in network order, as in the
 * packets. Struct sizes are those of the x86_64/arm64 ABI (64-bit aligned
 * u64 members), checked against the kernel in test/unit/dataplane/xfrm.
 */
import { isIPv4 } from 'node:net';
import { MalformedError } from '../../../util/errors.js';

export const NETLINK_XFRM = 6;
/** Multicast groups (XFRMNLGRP_*), as the bind() bitmask wants them. */
export const XFRMGRP_ACQUIRE = 1 << 0;
export const XFRMGRP_EXPIRE = 1 << 1;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const XfrmMsg = {
  NEWSA: 0x10, DELSA: 0x11, GETSA: 0x12, NEWPOLICY: 0x13, DELPOLICY: 0x14, GETPOLICY: 0x15,
  ALLOCSPI: 0x16, ACQUIRE: 0x17, EXPIRE: 0x18, UPDPOLICY: 0x19, UPDSA: 0x1a, POLEXPIRE: 0x1b,
} as const;

const XFRMA = {
  ALG_AUTH: 1, ALG_CRYPT: 2, ENCAP: 4, TMPL: 5, LTIME_VAL: 9, REPLAY_VAL: 10, SRCADDR: 13, ALG_AEAD: 18, ALG_AUTH_TRUNC: 20, REPLAY_ESN_VAL: 23,
} as const;

export const IPPROTO_ESP = 50;
const AF_INET = 2, AF_INET6 = 10;
const XFRM_MODE_TRANSPORT = 0, XFRM_MODE_TUNNEL = 1;
const XFRM_STATE_ESN = 128;
export const XFRM_POLICY_IN = 0, XFRM_POLICY_OUT = 1, XFRM_POLICY_FWD = 2;
const XFRM_POLICY_ALLOW = 0;
/** RFC 3948: ESP in UDP with the non-ESP marker for IKE. */
const UDP_ENCAP_ESPINUDP = 2;
/** "No limit" in xfrm_lifetime_cfg. */
const XFRM_INF = 0xffffffffffffffffn;

const SIZE = { nlmsghdr: 16, selector: 56, lifetimeCfg: 64, lifetimeCur: 32, usersaInfo: 224, usersaId: 24, userpolicyInfo: 168, userpolicyId: 64, userTmpl: 64, encapTmpl: 24, userExpire: 232, userAcquire: 280 } as const;

export interface XfrmSelector {
  family: 4 | 6;
  /** Network prefixes: the kernel matches selectors by prefix, not by range. */
  src: Buffer; srcPrefix: number;
  dst: Buffer; dstPrefix: number;
  proto: number;
  /** 0: any port. */
  sport: number; dport: number;
}

export interface XfrmLifetime { softBytes?: bigint; hardBytes?: bigint; softPackets?: bigint; hardPackets?: bigint; softSeconds?: number; hardSeconds?: number }

export interface XfrmSa {
  family: 4 | 6;
  src: string; dst: string;
  spi: number;
  mode: 'tunnel' | 'transport';
  reqid: number;
  /** Linux crypto API names: "rfc4106(gcm(aes))", "cbc(aes)", "hmac(sha256)". */
  aead?: { name: string; key: Buffer; icvBits: number };
  crypt?: { name: string; key: Buffer };
  auth?: { name: string; key: Buffer; truncBits: number };
  encap: { sport: number; dport: number } | null;
  esn: boolean;
  replayWindow: number;
  lifetime: XfrmLifetime;
  /** The sequence numbers to start from (an SA re-added with new addresses keeps its counters). */
  replay?: { oseq: bigint; seq: bigint };
}

export interface XfrmTemplate { family: 4 | 6; src: string; dst: string; mode: 'tunnel' | 'transport'; reqid: number }

export interface XfrmPolicy {
  sel: XfrmSelector;
  dir: typeof XFRM_POLICY_IN | typeof XFRM_POLICY_OUT | typeof XFRM_POLICY_FWD;
  priority: number;
  tmpl: XfrmTemplate;
}

/** An SA as GETSA (or an EXPIRE) reports it. */
export interface XfrmSaState {
  family: 4 | 6;
  dst: Buffer;
  spi: number;
  proto: number;
  curBytes: bigint; curPackets: bigint; addTime: bigint; useTime: bigint;
  replayDrops: number; integrityFailures: number;
  replay: { oseq: bigint; seq: bigint } | null;
}

export interface NetlinkMessage { type: number; flags: number; seq: number; pid: number; body: Buffer }

// ---------------------------------------------------------------------------
// Encoding

export function addrBytes(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  const b = Buffer.alloc(16);
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, ''];
  const h = head ? head.split(':') : [], t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** xfrm_address_t: 16 bytes, an IPv4 address in the first four. */
function writeAddr(buf: Buffer, off: number, a: Buffer): void {
  buf.fill(0, off, off + 16);
  a.copy(buf, off);
}

/** A null selector stays all zero ("any", the kernel fills in the SA's family), as iproute2 sends it. */
function writeSelector(buf: Buffer, off: number, s: XfrmSelector | null): void {
  buf.fill(0, off, off + SIZE.selector);
  if (!s) return;
  buf.writeUInt16LE(s.family === 4 ? AF_INET : AF_INET6, off + 40);
  writeAddr(buf, off, s.dst);
  writeAddr(buf, off + 16, s.src);
  buf.writeUInt16BE(s.dport, off + 32);
  buf.writeUInt16BE(s.dport ? 0xffff : 0, off + 34);
  buf.writeUInt16BE(s.sport, off + 36);
  buf.writeUInt16BE(s.sport ? 0xffff : 0, off + 38);
  buf.writeUInt8(s.dstPrefix, off + 42);
  buf.writeUInt8(s.srcPrefix, off + 43);
  buf.writeUInt8(s.proto, off + 44);
}

function writeLifetime(buf: Buffer, off: number, l: XfrmLifetime): void {
  const v = [l.softBytes, l.hardBytes, l.softPackets, l.hardPackets].map((x) => x ?? XFRM_INF);
  v.forEach((x, i) => buf.writeBigUInt64LE(x, off + i * 8));
  buf.writeBigUInt64LE(BigInt(l.softSeconds ?? 0), off + 32);
  buf.writeBigUInt64LE(BigInt(l.hardSeconds ?? 0), off + 40);
  // use_expires: unused (IKE keeps idle time itself).
  buf.writeBigUInt64LE(0n, off + 48);
  buf.writeBigUInt64LE(0n, off + 56);
}

function attr(type: number, data: Buffer): Buffer {
  const len = 4 + data.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  data.copy(out, 4);
  return out;
}

function algName(name: string): Buffer {
  const b = Buffer.alloc(64);
  if (Buffer.byteLength(name) >= 64) throw new MalformedError('XFRM algorithm', `name ${name} is too long`);
  b.write(name, 'utf8');
  return b;
}

/**
 * xfrm_algo (name, key bits, key) or, with `bits`, xfrm_algo_aead /
 * xfrm_algo_auth, which put the ICV or truncation length before the key.
 */
function algorithm(name: string, key: Buffer, bits?: number): Buffer {
  const head = bits === undefined ? 68 : 72;
  const a = Buffer.alloc(head + key.length);
  algName(name).copy(a, 0);
  a.writeUInt32LE(key.length * 8, 64);
  if (bits !== undefined) a.writeUInt32LE(bits, 68);
  key.copy(a, head);
  return a;
}

export function message(type: number, flags: number, seq: number, parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const hdr = Buffer.alloc(SIZE.nlmsghdr);
  hdr.writeUInt32LE(SIZE.nlmsghdr + body.length, 0);
  hdr.writeUInt16LE(type, 4);
  hdr.writeUInt16LE(flags, 6);
  hdr.writeUInt32LE(seq, 8);
  hdr.writeUInt32LE(0, 12);
  return Buffer.concat([hdr, body]);
}

/** XFRM_MSG_NEWSA / UPDSA body: xfrm_usersa_info and the algorithm, encapsulation and replay attributes. */
export function saBody(sa: XfrmSa): Buffer[] {
  const info = Buffer.alloc(SIZE.usersaInfo);
  // The SA's own selector stays "any": tunnel-mode SAs are chosen by the policy's template (reqid).
  writeSelector(info, 0, null);
  writeAddr(info, 56, addrBytes(sa.dst));
  info.writeUInt32BE(sa.spi >>> 0, 72);
  info.writeUInt8(IPPROTO_ESP, 76);
  writeAddr(info, 80, addrBytes(sa.src));
  writeLifetime(info, 96, sa.lifetime);
  info.writeUInt32LE(sa.reqid, 208);
  info.writeUInt16LE(sa.family === 4 ? AF_INET : AF_INET6, 212);
  info.writeUInt8(sa.mode === 'tunnel' ? XFRM_MODE_TUNNEL : XFRM_MODE_TRANSPORT, 214);
  // With XFRMA_REPLAY_ESN_VAL the window lives there and this one must be 0.
  info.writeUInt8(0, 215);
  info.writeUInt8(sa.esn ? XFRM_STATE_ESN : 0, 216);
  const parts: Buffer[] = [info];
  if (sa.aead) parts.push(attr(XFRMA.ALG_AEAD, algorithm(sa.aead.name, sa.aead.key, sa.aead.icvBits)));
  if (sa.crypt) parts.push(attr(XFRMA.ALG_CRYPT, algorithm(sa.crypt.name, sa.crypt.key)));
  if (sa.auth) parts.push(attr(XFRMA.ALG_AUTH_TRUNC, algorithm(sa.auth.name, sa.auth.key, sa.auth.truncBits)));
  if (sa.encap) {
    const e = Buffer.alloc(SIZE.encapTmpl);
    e.writeUInt16LE(UDP_ENCAP_ESPINUDP, 0);
    e.writeUInt16BE(sa.encap.sport, 2);
    e.writeUInt16BE(sa.encap.dport, 4);
    parts.push(attr(XFRMA.ENCAP, e));
  }
  // xfrm_replay_state_esn: larger windows than the legacy 32 and ESN both need it.
  // An ESN SA needs a window even when it only sends.
  const window = sa.esn ? Math.max(sa.replayWindow, 32) : sa.replayWindow;
  const words = Math.max(1, Math.ceil(window / 32));
  const r = Buffer.alloc(24 + words * 4);
  r.writeUInt32LE(words, 0);
  const oseq = sa.replay?.oseq ?? 0n, seq = sa.replay?.seq ?? 0n;
  r.writeUInt32LE(Number(oseq & 0xffffffffn), 4);
  r.writeUInt32LE(Number(seq & 0xffffffffn), 8);
  r.writeUInt32LE(Number(oseq >> 32n), 12);
  r.writeUInt32LE(Number(seq >> 32n), 16);
  r.writeUInt32LE(window, 20);
  parts.push(attr(XFRMA.REPLAY_ESN_VAL, r));
  return parts;
}

/** xfrm_usersa_id, for GETSA and DELSA. */
export function saIdBody(family: 4 | 6, dst: string, spi: number): Buffer[] {
  const id = Buffer.alloc(SIZE.usersaId);
  writeAddr(id, 0, addrBytes(dst));
  id.writeUInt32BE(spi >>> 0, 16);
  id.writeUInt16LE(family === 4 ? AF_INET : AF_INET6, 20);
  id.writeUInt8(IPPROTO_ESP, 22);
  return [id];
}

/** XFRM_MSG_NEWPOLICY / UPDPOLICY body: xfrm_userpolicy_info and one ESP template. */
export function policyBody(p: XfrmPolicy): Buffer[] {
  const info = Buffer.alloc(SIZE.userpolicyInfo);
  writeSelector(info, 0, p.sel);
  writeLifetime(info, 56, {});
  info.writeUInt32LE(p.priority, 152);
  info.writeUInt8(p.dir, 160);
  info.writeUInt8(XFRM_POLICY_ALLOW, 161);
  const t = Buffer.alloc(SIZE.userTmpl);
  writeAddr(t, 0, p.tmpl.mode === 'tunnel' ? addrBytes(p.tmpl.dst) : Buffer.alloc(0));
  t.writeUInt8(IPPROTO_ESP, 20);
  t.writeUInt16LE(p.tmpl.family === 4 ? AF_INET : AF_INET6, 24);
  writeAddr(t, 28, p.tmpl.mode === 'tunnel' ? addrBytes(p.tmpl.src) : Buffer.alloc(0));
  t.writeUInt32LE(p.tmpl.reqid, 44);
  t.writeUInt8(p.tmpl.mode === 'tunnel' ? XFRM_MODE_TUNNEL : XFRM_MODE_TRANSPORT, 48);
  // Any algorithm: the SA the reqid names was negotiated by IKE.
  t.writeUInt32LE(0xffffffff, 52);
  t.writeUInt32LE(0xffffffff, 56);
  t.writeUInt32LE(0xffffffff, 60);
  return [info, attr(XFRMA.TMPL, t)];
}

/** xfrm_userpolicy_id, for DELPOLICY: found by selector and direction. */
export function policyIdBody(sel: XfrmSelector, dir: number): Buffer[] {
  const id = Buffer.alloc(SIZE.userpolicyId);
  writeSelector(id, 0, sel);
  id.writeUInt8(dir, 60);
  return [id];
}

// ---------------------------------------------------------------------------
// Decoding

/** Splits a netlink datagram into messages; a truncated or inconsistent one is an error, not skipped. */
export function parseMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < SIZE.nlmsghdr) throw new MalformedError('netlink message', `${buf.length - off} bytes left where a header needs 16`);
    const len = buf.readUInt32LE(off);
    if (len < SIZE.nlmsghdr || off + len > buf.length) throw new MalformedError('netlink message', `length ${len} at offset ${off} of ${buf.length}`);
    out.push({ type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), pid: buf.readUInt32LE(off + 12), body: buf.subarray(off + SIZE.nlmsghdr, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}

/** NLMSG_ERROR: the (negative) errno, 0 for an acknowledgement, and the sequence number it answers. */
export function parseError(m: NetlinkMessage): { errno: number } {
  if (m.body.length < 4) throw new MalformedError('netlink error', `${m.body.length} bytes`);
  const e = m.body.readInt32LE(0);
  return { errno: e === 0 ? 0 : -e };
}

function attrs(buf: Buffer, off: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off), type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > buf.length) throw new MalformedError('netlink attribute', `length ${len} at offset ${off} of ${buf.length}`);
    out.set(type, buf.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

const familyOf = (af: number, what: string): 4 | 6 => {
  if (af === AF_INET) return 4;
  if (af === AF_INET6) return 6;
  throw new MalformedError(what, `address family ${af}`);
};

function readSaInfo(b: Buffer, off: number, what: string): Omit<XfrmSaState, 'replay'> {
  if (b.length < off + SIZE.usersaInfo) throw new MalformedError(what, `${b.length - off} bytes where xfrm_usersa_info needs ${SIZE.usersaInfo}`);
  const family = familyOf(b.readUInt16LE(off + 212), what);
  return {
    family,
    dst: Buffer.from(b.subarray(off + 56, off + 56 + (family === 4 ? 4 : 16))),
    spi: b.readUInt32BE(off + 72),
    proto: b.readUInt8(off + 76),
    curBytes: b.readBigUInt64LE(off + 160), curPackets: b.readBigUInt64LE(off + 168),
    addTime: b.readBigUInt64LE(off + 176), useTime: b.readBigUInt64LE(off + 184),
    replayDrops: b.readUInt32LE(off + 196), integrityFailures: b.readUInt32LE(off + 200),
  };
}

/** A NEWSA message (the answer to GETSA). */
export function parseSa(m: NetlinkMessage): XfrmSaState {
  const base = readSaInfo(m.body, 0, 'XFRM SA');
  const a = attrs(m.body, SIZE.usersaInfo);
  const esn = a.get(XFRMA.REPLAY_ESN_VAL);
  let replay: XfrmSaState['replay'] = null;
  if (esn && esn.length >= 24) {
    replay = {
      oseq: (BigInt(esn.readUInt32LE(12)) << 32n) | BigInt(esn.readUInt32LE(4)),
      seq: (BigInt(esn.readUInt32LE(16)) << 32n) | BigInt(esn.readUInt32LE(8)),
    };
  }
  return { ...base, replay };
}

/** XFRM_MSG_EXPIRE: xfrm_user_expire, the SA and whether the hard limit was reached. */
export function parseExpire(m: NetlinkMessage): { sa: Omit<XfrmSaState, 'replay'>; hard: boolean } {
  if (m.body.length < SIZE.userExpire) throw new MalformedError('XFRM expire', `${m.body.length} bytes where ${SIZE.userExpire} are needed`);
  return { sa: readSaInfo(m.body, 0, 'XFRM expire'), hard: m.body.readUInt8(SIZE.usersaInfo) !== 0 };
}

/** XFRM_MSG_ACQUIRE: xfrm_user_acquire; the selector of the packet that found no SA. */
export function parseAcquire(m: NetlinkMessage): { family: 4 | 6; src: Buffer; dst: Buffer; proto: number; sport: number; dport: number } {
  const b = m.body;
  if (b.length < SIZE.userAcquire) throw new MalformedError('XFRM acquire', `${b.length} bytes where ${SIZE.userAcquire} are needed`);
  const off = 40;
  const family = familyOf(b.readUInt16LE(off + 40), 'XFRM acquire selector');
  const n = family === 4 ? 4 : 16;
  return {
    family,
    dst: Buffer.from(b.subarray(off, off + n)), src: Buffer.from(b.subarray(off + 16, off + 16 + n)),
    dport: b.readUInt16BE(off + 32), sport: b.readUInt16BE(off + 36), proto: b.readUInt8(off + 44),
  };
}
