/**
 * Addresses, traffic selectors and identities as written in the config file.
 * Parsers throw ValueError with a user-facing reason; the loader adds file,
 * line and key.
 */
import { isIP } from 'node:net';
import type { IdentityConfig, TrafficSelectorConfig } from './model.js';

export class ValueError extends Error {}

/** 4 or 16 bytes for a literal address; throws for anything else. */
export function ipToBuffer(text: string): Buffer {
  const fam = isIP(text);
  if (fam === 4) return Buffer.from(text.split('.').map(Number));
  if (fam !== 6 || text.includes('%')) throw new ValueError(`'${text}' is not an IP address`);
  let s = text;
  // An embedded IPv4 tail ('::ffff:192.0.2.1') is rewritten as the two hex groups it stands for.
  const v4 = /:(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, v4.index)}:${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = s.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  let groups: number[];
  if (halves.length === 2) {
    const head = parse(halves[0]!);
    const rest = parse(halves[1]!);
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    groups = parse(s);
  }
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

export function bufferToIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length !== 16) return b.toString('hex');
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  // RFC 5952: compress the longest run (of two or more) of zero groups, the first one on a tie.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hexes = g.map((x) => x.toString(16));
  if (best < 0) return hexes.join(':');
  return `${hexes.slice(0, best).join(':')}::${hexes.slice(best + bestLen).join(':')}`;
}

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51, icmpv6: 58, 'ipv6-icmp': 58, sctp: 132, udplite: 136 };
const PORTED = new Set([6, 17, 132, 136]);
const ICMP = new Set([1, 58]);

function protocolNumber(text: string): number {
  const t = text.toLowerCase();
  if (t === '' || t === '%any' || t === 'any') return 0;
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n > 255) throw new ValueError(`protocol ${n} is out of range 0..255`);
    return n;
  }
  const n = PROTOCOLS[t];
  if (n === undefined) throw new ValueError(`unknown protocol '${text}' (use tcp, udp, icmp, icmpv6, sctp or a number)`);
  return n;
}

function portNumber(text: string, what = 'port'): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535) throw new ValueError(`invalid ${what} '${text}'`);
  return Number(text);
}

/** Parses the '[proto/port]' part; returns protocol and port range. */
function parseProtoPort(spec: string): { protocol: number; startPort: number; endPort: number } {
  const slash = spec.indexOf('/');
  const proto = protocolNumber(slash < 0 ? spec : spec.slice(0, slash));
  const port = slash < 0 ? '' : spec.slice(slash + 1).toLowerCase();
  if (port === '' || port === '%any' || port === 'any') return { protocol: proto, startPort: 0, endPort: 65535 };
  if (proto === 0) throw new ValueError(`a port needs a protocol, e.g. [tcp/${port}]`);
  // RFC 4301 4.4.1.1: OPAQUE is encoded as the empty range 65535..0.
  if (port === 'opaque') return { protocol: proto, startPort: 65535, endPort: 0 };
  if (ICMP.has(proto)) {
    // RFC 7296 3.13.1: for ICMP the "port" is type (high octet) and code (low octet).
    const m = /^(\d+)(?:\/(\d+))?$/.exec(port);
    if (!m || Number(m[1]) > 255 || (m[2] !== undefined && Number(m[2]) > 255)) throw new ValueError(`invalid ICMP type/code '${port}'`);
    const type = Number(m[1]) << 8;
    return m[2] === undefined
      ? { protocol: proto, startPort: type, endPort: type | 0xff }
      : { protocol: proto, startPort: type | Number(m[2]), endPort: type | Number(m[2]) };
  }
  if (!PORTED.has(proto)) throw new ValueError(`protocol ${proto} has no ports`);
  const dash = port.indexOf('-');
  if (dash < 0) { const p = portNumber(port); return { protocol: proto, startPort: p, endPort: p }; }
  const a = portNumber(port.slice(0, dash)), b = portNumber(port.slice(dash + 1));
  if (a > b) throw new ValueError(`port range ${a}-${b} is reversed`);
  return { protocol: proto, startPort: a, endPort: b };
}

function prefixRange(addr: Buffer, bits: number, text: string): { start: Buffer; end: Buffer } {
  const mask = Buffer.from([...addr].map((_, i) => (0xff << (8 - Math.max(0, Math.min(8, bits - i * 8)))) & 0xff));
  const start = Buffer.from(addr.map((b, i) => b & mask[i]!));
  const end = Buffer.from(addr.map((b, i) => (b & mask[i]!) | (~mask[i]! & 0xff)));
  // A prefix with host bits set is usually a typo for a host or a different network: ask rather than guess.
  if (!start.equals(addr)) throw new ValueError(`'${text}' has host bits set; did you mean ${bufferToIp(start)}/${bits}?`);
  return { start, end };
}

/**
 * A traffic selector: 'dynamic', an address, a CIDR prefix or an 'a-b'
 * range, optionally followed by '[proto/port]'. A bare '[proto/port]'
 * means dynamic. `dynamicFamily` is the family assumed for 'dynamic'
 * (the tunnel address replaces it at run time).
 */
export function parseTrafficSelector(text: string, dynamicFamily: 4 | 6): TrafficSelectorConfig {
  const m = /^([^[\]]*)(?:\[([^[\]]*)\])?$/.exec(text.trim());
  if (!m) throw new ValueError(`invalid traffic selector '${text}'`);
  const net = m[1]!.trim();
  const pp = m[2] !== undefined ? parseProtoPort(m[2].trim()) : { protocol: 0, startPort: 0, endPort: 65535 };
  const base = { text: text.trim(), ...pp };
  if (net === '' || net === 'dynamic') {
    if (net === '' && m[2] === undefined) throw new ValueError('empty traffic selector');
    const len = dynamicFamily === 4 ? 4 : 16;
    return { ...base, dynamic: true, family: dynamicFamily, startAddr: Buffer.alloc(len), endAddr: Buffer.alloc(len, 0xff) };
  }
  let start: Buffer, end: Buffer;
  const slash = net.indexOf('/');
  const dash = net.indexOf('-');
  if (slash >= 0) {
    const addr = net.slice(0, slash), bitsText = net.slice(slash + 1);
    const fam = isIP(addr);
    if (fam === 0 || addr.includes('%')) throw new ValueError(`'${addr}' in '${net}' is not an IP address`);
    const max = fam === 4 ? 32 : 128;
    if (!/^\d+$/.test(bitsText) || Number(bitsText) > max) throw new ValueError(`invalid prefix length '/${bitsText}' in '${net}' (0..${max})`);
    ({ start, end } = prefixRange(ipToBuffer(addr), Number(bitsText), net));
  } else if (dash >= 0) {
    const a = net.slice(0, dash).trim(), b = net.slice(dash + 1).trim();
    if (isIP(a) === 0 || isIP(b) === 0) throw new ValueError(`invalid address range '${net}'`);
    if (isIP(a) !== isIP(b)) throw new ValueError(`address range '${net}' mixes IPv4 and IPv6`);
    start = ipToBuffer(a); end = ipToBuffer(b);
    if (Buffer.compare(start, end) > 0) throw new ValueError(`address range '${net}' is reversed`);
  } else {
    if (isIP(net) === 0) throw new ValueError(`'${net}' is not an address, prefix or range`);
    start = ipToBuffer(net); end = Buffer.from(start);
  }
  return { ...base, dynamic: false, family: start.length === 4 ? 4 : 6, startAddr: start, endAddr: end };
}

/** The prefix length if start..end is exactly one CIDR block, else null. */
function prefixLength(start: Buffer, end: Buffer): number | null {
  let bits = 0, i = 0;
  for (; i < start.length; i++) {
    const x = start[i]! ^ end[i]!;
    if (x === 0) { bits += 8; continue; }
    const host = x;
    if (((host + 1) & host) !== 0) return null;          // not of the form 0..01..1
    if ((start[i]! & host) !== 0 || (end[i]! & host) !== host) return null;
    bits += 8 - Math.log2(host + 1);
    break;
  }
  for (i++; i < start.length; i++) if (start[i] !== 0 || end[i] !== 0xff) return null;
  return bits;
}

const PROTO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(PROTOCOLS).filter(([k]) => k !== 'ipv6-icmp').map(([k, v]) => [v, k]));

/** Compact text for any selector-like value: '10.1.0.0/24', '10.1.0.1-10.1.0.9[tcp/80]'. */
export function formatTrafficSelector(ts: {
  startAddr: Buffer; endAddr: Buffer; protocol: number; startPort: number; endPort: number;
}): string {
  const bits = prefixLength(ts.startAddr, ts.endAddr);
  const net = bits === null ? `${bufferToIp(ts.startAddr)}-${bufferToIp(ts.endAddr)}` : `${bufferToIp(ts.startAddr)}/${bits}`;
  const anyPorts = ts.startPort === 0 && ts.endPort === 65535;
  if (ts.protocol === 0 && anyPorts) return net;
  const proto = PROTO_NAMES[ts.protocol] ?? String(ts.protocol);
  if (anyPorts) return `${net}[${proto}]`;
  let ports: string;
  if (ts.startPort === 65535 && ts.endPort === 0) ports = 'opaque';
  else if (ICMP.has(ts.protocol)) {
    const t = ts.startPort >> 8;
    ports = ts.endPort === (ts.startPort | 0xff) && (ts.startPort & 0xff) === 0 ? `${t}` : `${t}/${ts.startPort & 0xff}`;
  } else ports = ts.startPort === ts.endPort ? `${ts.startPort}` : `${ts.startPort}-${ts.endPort}`;
  return `${net}[${proto}/${ports}]`;
}

const FQDN = /^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** RFC 3696 2: a top-level label is never all-numeric, so '192.0.2.300' is a bad address, not a name. */
export function isHostname(text: string): boolean {
  return FQDN.test(text) && !/^\d+$/.test(text.replace(/\.$/, '').split('.').pop() ?? '');
}

/**
 * An identity: '%any', an IP address, 'user@host' (RFC 822), a DN
 * ('C=CH, O=styx, CN=moon'), 'keyid:<hex>', or an FQDN ('@name' forces FQDN).
 */
export function parseIdentity(text: string): IdentityConfig {
  const t = text.trim();
  if (t === '') throw new ValueError('identity must not be empty');
  if (t === '%any') return { type: 'any', value: t };
  const fam = isIP(t);
  if (fam === 4) return { type: 'ipv4', value: t };
  if (fam === 6) return { type: 'ipv6', value: bufferToIp(ipToBuffer(t)) };
  if (/^keyid:/i.test(t)) {
    const hexText = t.slice(6);
    if (!/^([0-9a-fA-F]{2})+$/.test(hexText)) throw new ValueError(`invalid key ID '${t}' (expected keyid:<hex>)`);
    return { type: 'keyid', value: hexText.toLowerCase() };
  }
  if (t.includes('=')) {
    const rdns = t.split(/\s*[,/]\s*/).filter((r) => r !== '');
    for (const r of rdns) {
      if (!/^[A-Za-z][A-Za-z0-9.-]*\s*=\s*\S/.test(r)) throw new ValueError(`invalid distinguished name '${t}' near '${r}'`);
    }
    return { type: 'dn', value: t };
  }
  if (t.startsWith('@')) {
    const name = t.slice(1);
    if (!isHostname(name)) throw new ValueError(`invalid FQDN identity '${t}'`);
    return { type: 'fqdn', value: name };
  }
  const at = t.indexOf('@');
  if (at > 0) {
    if (!isHostname(t.slice(at + 1)) || /\s/.test(t)) throw new ValueError(`invalid email identity '${t}'`);
    return { type: 'email', value: t };
  }
  if (!isHostname(t)) throw new ValueError(`'${t}' is not a valid identity (IP address, FQDN, user@host, DN or %any)`);
  return { type: 'fqdn', value: t };
}

/** Whether two identities name the same peer (FQDN and email compare case-insensitively). */
export function sameIdentity(a: IdentityConfig, b: IdentityConfig): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'fqdn' || a.type === 'email') return a.value.replace(/\.$/, '').toLowerCase() === b.value.replace(/\.$/, '').toLowerCase();
  if (a.type === 'dn') return normaliseDn(a.value) === normaliseDn(b.value);
  if (a.type === 'ipv4' || a.type === 'ipv6') return ipToBuffer(a.value).equals(ipToBuffer(b.value));
  return a.value === b.value;
}

function normaliseDn(dn: string): string {
  return dn.split(/\s*[,/]\s*/).filter((r) => r !== '')
    .map((r) => { const i = r.indexOf('='); return `${r.slice(0, i).trim().toUpperCase()}=${r.slice(i + 1).trim()}`; }).join(',');
}
