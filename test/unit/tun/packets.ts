/**
 * Just enough IPv4/IPv6, UDP and ICMP to talk to the kernel through a TUN in
 * tests: correct IPv4 header checksums (the kernel drops bad ones), UDP
 * checksums left zero where IPv4 allows it.
 */
import { isIPv4 } from 'node:net';

function v4(addr: string): number[] {
  if (!isIPv4(addr)) throw new Error(`not IPv4: ${addr}`);
  return addr.split('.').map(Number);
}

function sum16(b: Buffer, start: number, end: number, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

export function checksum(b: Buffer, start = 0, end = b.length, init = 0): number {
  return ~sum16(b, start, end, init) & 0xffff;
}

function ipv4Header(b: Buffer, proto: number, src: string, dst: string, id = 0): void {
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(id, 4);
  b[8] = 64;
  b[9] = proto;
  Buffer.from(v4(src)).copy(b, 12);
  Buffer.from(v4(dst)).copy(b, 16);
  b.writeUInt16BE(0, 10);
  b.writeUInt16BE(checksum(b, 0, 20), 10);
}

export function udp4(src: string, sport: number, dst: string, dport: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(28 + payload.length);
  ipv4Header(b, 17, src, dst);
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(dport, 22);
  b.writeUInt16BE(8 + payload.length, 24);
  payload.copy(b, 28);
  return b;
}

export function icmp4Echo(src: string, dst: string, type: 0 | 8, id: number, seq: number, data: Buffer): Buffer {
  const b = Buffer.alloc(28 + data.length);
  ipv4Header(b, 1, src, dst);
  b[20] = type;
  b.writeUInt16BE(id, 24);
  b.writeUInt16BE(seq, 26);
  data.copy(b, 28);
  b.writeUInt16BE(checksum(b, 20), 22);
  return b;
}

export interface ParsedIp {
  version: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  /** The transport header and payload. */
  l4: Buffer;
}

function v6text(b: Buffer): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
  // The WHATWG URL parser prints IPv6 hosts in RFC 5952 form.
  return new URL(`http://[${parts.join(':')}]/`).hostname.slice(1, -1);
}

export function parseIp(p: Buffer): ParsedIp | null {
  const ver = p[0]! >> 4;
  if (ver === 4 && p.length >= 20) {
    const ihl = (p[0]! & 0x0f) * 4;
    return { version: 4, proto: p[9]!, src: [...p.subarray(12, 16)].join('.'), dst: [...p.subarray(16, 20)].join('.'), l4: p.subarray(ihl, p.readUInt16BE(2)) };
  }
  if (ver === 6 && p.length >= 40) {
    return { version: 6, proto: p[6]!, src: v6text(p.subarray(8, 24)), dst: v6text(p.subarray(24, 40)), l4: p.subarray(40, 40 + p.readUInt16BE(4)) };
  }
  return null;
}

/** The echo reply a host would send to an IPv4 echo request, or null if `p` is not one. */
export function echoReplyFor(p: Buffer): Buffer | null {
  const ip = parseIp(p);
  if (!ip || ip.version !== 4 || ip.proto !== 1 || ip.l4[0] !== 8) return null;
  return icmp4Echo(ip.dst, ip.src, 0, ip.l4.readUInt16BE(4), ip.l4.readUInt16BE(6), ip.l4.subarray(8));
}
