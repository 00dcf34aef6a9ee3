/**
 * Traffic selectors: resolving configured ones ('dynamic' = our tunnel
 * endpoint) and narrowing as RFC 7296 2.9 describes: the responder answers
 * with the intersection of what the initiator proposed and its own policy.
 */
import { isIPv4 } from 'node:net';
import type { TrafficSelectorConfig } from '../config/model.js';
import { TsType } from '../wire/ikev2/constants.js';
import type { TrafficSelector } from '../wire/ikev2/types.js';

export function addrBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map((x) => Number(x)));
  // Expand IPv6 (with :: and an optional embedded IPv4 tail) into 16 bytes.
  let a = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) { const b = addrBytes(v4[1]!); a = a.slice(0, -v4[1]!.length) + `${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`; }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail !== undefined ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}

export function addrText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i; while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function fromConfig(ts: TrafficSelectorConfig, endpoint: string): TrafficSelector {
  const start = ts.dynamic ? addrBytes(endpoint) : ts.startAddr;
  const end = ts.dynamic ? addrBytes(endpoint) : ts.endAddr;
  return {
    tsType: start.length === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE,
    ipProtocol: ts.protocol,
    startPort: ts.startPort,
    endPort: ts.endPort,
    startAddr: Buffer.from(start),
    endAddr: Buffer.from(end),
  };
}

const max = (a: Buffer, b: Buffer): Buffer => (Buffer.compare(a, b) >= 0 ? a : b);
const min = (a: Buffer, b: Buffer): Buffer => (Buffer.compare(a, b) <= 0 ? a : b);

/** The intersection of two selectors, or null when they do not overlap. */
export function intersect(a: TrafficSelector, b: TrafficSelector): TrafficSelector | null {
  if (a.tsType !== b.tsType || a.startAddr.length !== b.startAddr.length) return null;
  if (a.ipProtocol !== 0 && b.ipProtocol !== 0 && a.ipProtocol !== b.ipProtocol) return null;
  const startAddr = max(a.startAddr, b.startAddr), endAddr = min(a.endAddr, b.endAddr);
  if (Buffer.compare(startAddr, endAddr) > 0) return null;
  // RFC 4301 4.4.1: OPAQUE ports (start 65535, end 0) only match each other; treat as no overlap otherwise.
  const startPort = Math.max(a.startPort, b.startPort), endPort = Math.min(a.endPort, b.endPort);
  if (startPort > endPort) return null;
  return { tsType: a.tsType, ipProtocol: a.ipProtocol || b.ipProtocol, startPort, endPort, startAddr: Buffer.from(startAddr), endAddr: Buffer.from(endAddr) };
}

/** 2.9: every proposed selector intersected with every configured one; duplicates dropped. */
export function narrow(proposed: TrafficSelector[], configured: TrafficSelector[]): TrafficSelector[] {
  const out: TrafficSelector[] = [];
  for (const c of configured) for (const p of proposed) {
    const x = intersect(p, c);
    if (x && !out.some((o) => equalTs(o, x))) out.push(x);
  }
  return out;
}

export function equalTs(a: TrafficSelector, b: TrafficSelector): boolean {
  return a.tsType === b.tsType && a.ipProtocol === b.ipProtocol && a.startPort === b.startPort && a.endPort === b.endPort && a.startAddr.equals(b.startAddr) && a.endAddr.equals(b.endAddr);
}

/** Whether `inner` lies wholly within `outer` (used to check a responder's narrowed answer). */
export function contains(outer: TrafficSelector, inner: TrafficSelector): boolean {
  const x = intersect(outer, inner);
  return x !== null && equalTs(x, { ...inner, ipProtocol: inner.ipProtocol || outer.ipProtocol }) && (outer.ipProtocol === 0 || inner.ipProtocol === outer.ipProtocol);
}

const PROTO: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'ipv6-icmp' };

/** Text like strongSwan prints: 10.1.0.0/24, 10.1.0.5/32[tcp/80], or a range when not a prefix. */
export function tsText(ts: TrafficSelector): string {
  const bits = ts.startAddr.length * 8;
  let prefix = -1;
  for (let p = 0; p <= bits; p++) {
    const s = Buffer.from(ts.startAddr), e = Buffer.from(ts.startAddr);
    for (let i = p; i < bits; i++) { const byte = i >> 3, bit = 7 - (i & 7); s[byte] = s[byte]! & ~(1 << bit); e[byte] = e[byte]! | (1 << bit); }
    if (s.equals(ts.startAddr) && e.equals(ts.endAddr)) { prefix = p; break; }
  }
  const net = prefix >= 0 ? `${addrText(ts.startAddr)}/${prefix}` : `${addrText(ts.startAddr)}..${addrText(ts.endAddr)}`;
  const anyPort = ts.startPort === 0 && ts.endPort === 65535;
  if (ts.ipProtocol === 0 && anyPort) return net;
  const proto = PROTO[ts.ipProtocol] ?? String(ts.ipProtocol);
  const port = anyPort ? '' : ts.startPort === ts.endPort ? `/${ts.startPort}` : `/${ts.startPort}-${ts.endPort}`;
  return `${net}[${proto}${port}]`;
}
