/**
 * Selector matching (RFC 4301 4.4.1.1) and the outbound policy table
 * (RFC 4301 4.4.1: the SPD, searched for the first entry that matches,
 * here ordered most specific first).
 *
 * Selectors are compiled once when a policy or SA is installed: IPv4 ranges
 * become u32 numbers, so the per-packet test is a few integer compares;
 * IPv6 ranges compare 16 octets in place with Buffer.compare (no copies).
 */
import type { PolicyParams, Selector } from '../dataplane/api.js';
import { MalformedError } from '../util/errors.js';
import { OPAQUE_PORT, type InnerPacket } from './ip.js';

const ANY_PORT_START = 0;
const ANY_PORT_END = 0xffff;

/** A Selector prepared for matching one side (local or remote) of a packet. */
export class CompiledSelector {
  readonly family: 4 | 6;
  readonly protocol: number;
  readonly startPort: number;
  readonly endPort: number;
  private readonly v4Start: number;
  private readonly v4End: number;
  private readonly v6Start: Buffer;
  private readonly v6End: Buffer;
  /** Number of addresses covered, for ordering by specificity. */
  readonly addressSpan: bigint;
  readonly portSpan: number;

  constructor(readonly source: Selector) {
    const len = source.family === 4 ? 4 : 16;
    if (source.family !== 4 && source.family !== 6) throw new MalformedError('selector', `family ${String(source.family)}`);
    if (source.startAddr.length !== len || source.endAddr.length !== len) throw new MalformedError('selector', `IPv${source.family} address of ${source.startAddr.length}/${source.endAddr.length} octets`);
    if (Buffer.compare(source.startAddr, source.endAddr) > 0) throw new MalformedError('selector', 'start address above end address');
    if (!(source.startPort >= 0 && source.startPort <= source.endPort && source.endPort <= 0xffff)) throw new MalformedError('selector', `port range ${source.startPort}-${source.endPort}`);
    if (!(source.protocol >= 0 && source.protocol <= 255)) throw new MalformedError('selector', `protocol ${source.protocol}`);
    this.family = source.family;
    this.protocol = source.protocol;
    this.startPort = source.startPort;
    this.endPort = source.endPort;
    this.v4Start = len === 4 ? source.startAddr.readUInt32BE(0) : 0;
    this.v4End = len === 4 ? source.endAddr.readUInt32BE(0) : 0;
    this.v6Start = Buffer.from(source.startAddr);
    this.v6End = Buffer.from(source.endAddr);
    const n = (b: Buffer): bigint => BigInt(`0x${b.toString('hex')}`);
    this.addressSpan = n(source.endAddr) - n(source.startAddr) + 1n;
    this.portSpan = source.endPort - source.startPort + 1;
  }

  /** Does the address at `at` in `pkt` fall in the range? */
  private addressMatches(pkt: Buffer, at: number): boolean {
    if (this.family === 4) {
      const a = pkt.readUInt32BE(at);
      return a >= this.v4Start && a <= this.v4End;
    }
    return this.v6Start.compare(pkt, at, at + 16) <= 0 && this.v6End.compare(pkt, at, at + 16) >= 0;
  }

  /** RFC 4301 4.4.1.1; the address and port are one side of `p` (source or destination). */
  matches(pkt: Buffer, p: InnerPacket, addrAt: number, port: number): boolean {
    if (p.family !== this.family) return false;
    if (this.protocol !== 0 && this.protocol !== p.protocol) return false;
    // OPAQUE ports (non-initial fragments, portless protocols) match only ANY (RFC 4301 4.4.1.1).
    if (port === OPAQUE_PORT) {
      if (this.startPort !== ANY_PORT_START || this.endPort !== ANY_PORT_END) return false;
    } else if (port < this.startPort || port > this.endPort) {
      return false;
    }
    return this.addressMatches(pkt, addrAt);
  }
}

/** Is an outbound packet (source = local) inside the local/remote pair? */
export function matchesOutbound(local: CompiledSelector, remote: CompiledSelector, pkt: Buffer, p: InnerPacket): boolean {
  return local.matches(pkt, p, p.srcAt, p.srcPort) && remote.matches(pkt, p, p.dstAt, p.dstPort);
}

/**
 * RFC 4301 5.2 step 4: a decapsulated packet (source = remote) must fall in
 * the SA's selectors. IKEv2 traffic selector lists are sets (RFC 7296 2.9),
 * so the SA covers any local selector crossed with any remote one.
 */
export function matchesInbound(locals: readonly CompiledSelector[], remotes: readonly CompiledSelector[], pkt: Buffer, p: InnerPacket): boolean {
  let local = false;
  for (const l of locals) if (l.matches(pkt, p, p.dstAt, p.dstPort)) { local = true; break; }
  if (!local) return false;
  for (const r of remotes) if (r.matches(pkt, p, p.srcAt, p.srcPort)) return true;
  return false;
}

export function sameSelector(a: Selector, b: Selector): boolean {
  return a.family === b.family && a.protocol === b.protocol && a.startPort === b.startPort && a.endPort === b.endPort
    && a.startAddr.equals(b.startAddr) && a.endAddr.equals(b.endAddr);
}

export function samePolicy(a: PolicyParams, b: PolicyParams): boolean {
  return a.direction === b.direction && (a.spi >>> 0) === (b.spi >>> 0) && sameSelector(a.local, b.local) && sameSelector(a.remote, b.remote);
}

export interface CompiledPolicy {
  readonly params: PolicyParams;
  readonly local: CompiledSelector;
  readonly remote: CompiledSelector;
  readonly seq: number;
}

/**
 * "Most specific first": fewer addresses covered (both sides together),
 * then a named protocol before ANY, then fewer ports; among equals the
 * newest first. A decorrelated SPD (RFC 4301 4.4.1) would not need an order at all;
 * IKEv2 narrowing can produce overlapping pairs, and then the narrower wins.
 */
function moreSpecific(a: CompiledPolicy, b: CompiledPolicy): number {
  const sa = a.local.addressSpan * a.remote.addressSpan;
  const sb = b.local.addressSpan * b.remote.addressSpan;
  if (sa !== sb) return sa < sb ? -1 : 1;
  const pa = (a.local.protocol === 0 ? 1 : 0) + (a.remote.protocol === 0 ? 1 : 0);
  const pb = (b.local.protocol === 0 ? 1 : 0) + (b.remote.protocol === 0 ? 1 : 0);
  if (pa !== pb) return pa - pb;
  const qa = a.local.portSpan * a.remote.portSpan;
  const qb = b.local.portSpan * b.remote.portSpan;
  if (qa !== qb) return qa - qb;
  // Equal selectors: the newest policy wins, so a rekeyed CHILD_SA's outbound SA takes over as soon as it is installed.
  return b.seq - a.seq;
}

/** One direction's policies. Linear search over an ordered list: fine for the tens of policies a host has. */
export class PolicyTable {
  private list: CompiledPolicy[] = [];
  private seq = 0;

  get size(): number { return this.list.length; }
  get all(): readonly CompiledPolicy[] { return this.list; }

  add(p: PolicyParams): CompiledPolicy {
    const c: CompiledPolicy = { params: p, local: new CompiledSelector(p.local), remote: new CompiledSelector(p.remote), seq: this.seq++ };
    if (c.local.family !== c.remote.family) throw new MalformedError('policy', 'local and remote selectors of different families');
    this.list = [...this.list, c].sort(moreSpecific);
    return c;
  }

  delete(p: PolicyParams): boolean {
    const i = this.list.findIndex((c) => samePolicy(c.params, p));
    if (i < 0) return false;
    this.list = this.list.filter((_, j) => j !== i);
    return true;
  }

  /** The first policy whose local side matches the source and remote side the destination. */
  lookupOutbound(pkt: Buffer, p: InnerPacket): CompiledPolicy | null {
    for (const c of this.list) if (matchesOutbound(c.local, c.remote, pkt, p)) return c;
    return null;
  }
}
