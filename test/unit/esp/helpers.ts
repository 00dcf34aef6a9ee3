/**
 * Shared pieces for the ESP tests: fixture loading (test/fixtures/esp, see
 * its README), inner packet builders written independently of src/esp, and
 * a pair of engines with mirrored SAs.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { PolicyParams, SaLimits, SaParams, Selector } from '../../../src/dataplane/api.js';
import { EspEngine, type EspSaOptions } from '../../../src/esp/index.js';
import { encrKeyBytes, integKeyBytes } from '../../../src/crypto/registry.js';
import { IntegId } from '../../../src/wire/ikev2/constants.js';

/** Tests run from dist/test/unit/esp/; the fixtures stay in the source tree. */
const DIR = new URL('../../../../test/fixtures/esp/', import.meta.url);

export type Rec = Record<string, unknown>;

export function fixture(name: string): Rec[] {
  const v = JSON.parse(readFileSync(new URL(name, DIR), 'utf8')) as unknown;
  const list = Array.isArray(v) ? v : (v as Rec)['samples'];
  if (!Array.isArray(list)) throw new Error(`fixture ${name}: no list`);
  return list.map((x, i) => {
    if (typeof x !== 'object' || x === null) throw new Error(`fixture ${name}[${i}] is not an object`);
    return x as Rec;
  });
}

export function s(r: Rec, k: string): string {
  const v = r[k];
  if (typeof v !== 'string') throw new Error(`fixture field ${k} is not a string`);
  return v;
}
export function n(r: Rec, k: string): number {
  const v = r[k];
  if (typeof v !== 'number') throw new Error(`fixture field ${k} is not a number`);
  return v;
}
export const hx = (r: Rec, k: string): Buffer => Buffer.from(s(r, k), 'hex');

// ------------------------------------------------------------ inner packets

/** RFC 1071 checksum, written here separately from src/esp/ip.ts. */
function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

export function v4(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

export function v6(a: string): Buffer {
  // Only the forms the tests use: full groups or one '::'.
  const [head, tail] = a.includes('::') ? a.split('::') as [string, string] : [a, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** An IPv4 UDP datagram with a valid header checksum. */
export function ipv4Udp(src: string, dst: string, sport: number, dport: number, data: Buffer, id = 1): Buffer {
  const udp = Buffer.alloc(8 + data.length);
  udp.writeUInt16BE(sport, 0); udp.writeUInt16BE(dport, 2); udp.writeUInt16BE(udp.length, 4);
  data.copy(udp, 8);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip.writeUInt16BE(20 + udp.length, 2); ip.writeUInt16BE(id, 4); ip[8] = 64; ip[9] = 17;
  v4(src).copy(ip, 12); v4(dst).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, udp]);
}

/** An IPv4 ICMP echo request. */
export function ipv4Icmp(src: string, dst: string, data: Buffer): Buffer {
  const icmp = Buffer.alloc(8 + data.length);
  icmp[0] = 8; icmp.writeUInt16BE(0x1234, 4); icmp.writeUInt16BE(1, 6); data.copy(icmp, 8);
  icmp.writeUInt16BE(checksum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip.writeUInt16BE(20 + icmp.length, 2); ip[8] = 64; ip[9] = 1;
  v4(src).copy(ip, 12); v4(dst).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, icmp]);
}

/** An IPv6 UDP datagram (UDP checksum left 0: nothing here checks it). */
export function ipv6Udp(src: string, dst: string, sport: number, dport: number, data: Buffer): Buffer {
  const udp = Buffer.alloc(8 + data.length);
  udp.writeUInt16BE(sport, 0); udp.writeUInt16BE(dport, 2); udp.writeUInt16BE(udp.length, 4);
  data.copy(udp, 8);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60; ip.writeUInt16BE(udp.length, 4); ip[6] = 17; ip[7] = 64;
  v6(src).copy(ip, 8); v6(dst).copy(ip, 24);
  return Buffer.concat([ip, udp]);
}

export function ipv4HeaderOk(p: Buffer): boolean {
  return checksum(p.subarray(0, (p[0]! & 15) * 4)) === 0;
}

// ------------------------------------------------------------ selectors and SAs

export function sel4(start: string, end: string, protocol = 0, startPort = 0, endPort = 65535): Selector {
  return { family: 4, startAddr: v4(start), endAddr: v4(end), protocol, startPort, endPort };
}
export function sel6(start: string, end: string, protocol = 0, startPort = 0, endPort = 65535): Selector {
  return { family: 6, startAddr: v6(start), endAddr: v6(end), protocol, startPort, endPort };
}
export const ANY4 = sel4('0.0.0.0', '255.255.255.255');
export const ANY6 = sel6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');

export interface Suite { name: string; encr: { id: number; keyLength: number }; integ: number }

export function saParams(over: Partial<SaParams> & Pick<SaParams, 'spi' | 'direction'>): SaParams {
  return {
    protocol: 'esp', src: { address: '192.0.2.1', port: 4500 }, dst: { address: '192.0.2.2', port: 4500 }, mode: 'tunnel',
    encr: { id: 20, key: Buffer.alloc(20, 1), keyLength: 128 }, integ: null, esn: false, replayWindow: 64, encap: true,
    selectors: { local: [ANY4, ANY6], remote: [ANY4, ANY6] }, tag: 'test', ...over,
  };
}

/**
 * Two engines with mirrored SAs for one suite: `a` sends on SPI 0x1000
 * (which `b` receives), `b` sends on 0x2000. Site A is 10.1.0.0/16 and
 * 2001:db8:1::/48, site B 10.2.0.0/16 and 2001:db8:2::/48.
 */
export interface Pair {
  a: EspEngine; b: EspEngine;
  aToB: SaParams; bToA: SaParams;
  clock: { t: number };
}

export interface PairOptions {
  mode?: 'tunnel' | 'transport';
  esn?: boolean;
  replayWindow?: number;
  limits?: SaLimits;
  aOut?: EspSaOptions; bIn?: EspSaOptions;
  /** Selectors B's inbound SA accepts (default: site A to site B). */
  bInSelectors?: SaParams['selectors'];
}

const SITE_A = [sel4('10.1.0.0', '10.1.255.255'), sel6('2001:db8:1::', '2001:db8:1:ffff:ffff:ffff:ffff:ffff')];
const SITE_B = [sel4('10.2.0.0', '10.2.255.255'), sel6('2001:db8:2::', '2001:db8:2:ffff:ffff:ffff:ffff:ffff')];

export function makePair(suite: Suite, o: PairOptions = {}): Pair {
  const clock = { t: 1_000_000 };
  const now = (): number => clock.t;
  const a = new EspEngine({ now });
  const b = new EspEngine({ now });
  const mode = o.mode ?? 'tunnel';
  const keys = () => ({
    encr: { id: suite.encr.id, key: randomBytes(encrKeyBytes(suite.encr.id, suite.encr.keyLength)), keyLength: suite.encr.keyLength },
    integ: suite.integ === IntegId.NONE ? null : { id: suite.integ, key: randomBytes(integKeyBytes(suite.integ)) },
  });
  const epA = { address: '198.51.100.1', port: 4500 };
  const epB = { address: '203.0.113.2', port: 4500 };
  const transportSel = (x: string, y: string) => ({ local: [sel4(x, x)], remote: [sel4(y, y)] });
  const selAB = mode === 'transport' ? transportSel(epA.address, epB.address) : { local: SITE_A, remote: SITE_B };
  const selBA = mode === 'transport' ? transportSel(epB.address, epA.address) : { local: SITE_B, remote: SITE_A };
  const common = { mode, esn: o.esn ?? false, replayWindow: o.replayWindow ?? 64, ...(o.limits ? { limits: o.limits } : {}) };
  const k1 = keys();
  const k2 = keys();
  const aToB = saParams({ ...common, ...k1, spi: 0x1000, direction: 'out', src: epA, dst: epB, selectors: selAB });
  const bFromA = saParams({ ...common, ...k1, spi: 0x1000, direction: 'in', src: epA, dst: epB, selectors: o.bInSelectors ?? selBA });
  const bToA = saParams({ ...common, ...k2, spi: 0x2000, direction: 'out', src: epB, dst: epA, selectors: selBA });
  const aFromB = saParams({ ...common, ...k2, spi: 0x2000, direction: 'in', src: epB, dst: epA, selectors: selAB });
  a.addSa(aToB, o.aOut); a.addSa(aFromB);
  b.addSa(bToA); b.addSa(bFromA, o.bIn);
  const pol = (p: SaParams): PolicyParams[] => {
    const out: PolicyParams[] = [];
    p.selectors.local.forEach((l, i) => {
      const r = p.selectors.remote[i] ?? p.selectors.remote[0]!;
      out.push({ direction: p.direction, local: l, remote: r, mode, spi: p.spi, tunnel: mode === 'tunnel' ? { src: p.src.address, dst: p.dst.address } : null, tag: 'test' });
    });
    return out;
  };
  for (const p of pol(aToB)) a.addPolicy(p);
  for (const p of pol(bToA)) b.addPolicy(p);
  return { a, b, aToB, bToA, clock };
}

/** A sends `packets` to B; returns what B's TUN gets. */
export function send(p: Pair, packets: Buffer[]): Buffer[] {
  const dgrams = p.a.encapsulate(packets);
  return p.b.decapsulate(dgrams.map((d) => ({ data: d.data, from: d.src })));
}
