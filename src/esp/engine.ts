/**
 * The userspace ESP engine: SA tables, the policy table, and batch
 * encapsulation/decapsulation between a TUN device and a UDP socket
 * (ESP-in-UDP, RFC 3948). It knows nothing of IKE; the userspace data-plane
 * backend drives it and forwards its `expire` events.
 *
 * Outbound pipeline (encapsulate), per IP packet read from the TUN:
 *   1. decode the inner header's selector fields      (ip.ts)
 *   2. look up the outbound policy, most specific first (RFC 4301 5.1)
 *   3. find the policy's SA by SPI; refuse a dead one  (RFC 4301 4.4.2.1)
 *   4. tunnel: the whole packet is the payload (Next Header 4 or 41);
 *      transport: the IPv4 payload, Next Header = its protocol (RFC 4303 3.1)
 *   5. take the next sequence number, never cycling    (RFC 4303 3.3.3)
 *   6. seal: header, IV, padding, encrypt, ICV         (packet.ts, sa.ts)
 *   7. count and check soft/hard limits; queue expire events
 *   8. hand back { data, src, dst } for the UDP socket
 *
 * Inbound pipeline (decapsulate), per UDP payload from port 4500:
 *   1. NAT keepalive (one 0xFF octet, RFC 3948 2.3): drop quietly
 *   2. decode SPI | seq; SPI 0 is the non-ESP marker  (RFC 3948 2.2)
 *   3. find the SA by SPI                             (RFC 4303 3.4.2)
 *   4. replay check on the 32 bits sent, inferring ESN high bits (RFC 4303 3.4.3, A2)
 *   5. verify ICV and decrypt, check padding          (RFC 4303 3.4.4, 2.4)
 *   6. only now slide the replay window               (RFC 4303 3.4.3)
 *   7. Next Header 59: dummy packet, drop             (RFC 4303 2.6)
 *   8. tunnel: decode the inner packet, cut TFC padding (RFC 4303 2.7);
 *      transport: rebuild an IPv4 header
 *   9. the inner packet must match the SA's selectors (RFC 4301 5.2)
 *  10. count and check limits; hand the packet back for the TUN
 *
 * Every bad input is dropped and counted, never thrown: decapsulate and
 * encapsulate do not throw on anything the network or the TUN sends.
 * Expire events are emitted after the whole batch, so a listener that
 * deletes an SA does not change the tables mid-batch.
 */
import { EventEmitter } from 'node:events';
import type { DataplaneEvents, Direction, Endpoint, PolicyParams, SaParams } from '../dataplane/api.js';
import { IntegrityError, MalformedError, TruncatedError, UnsupportedError, type StyxError } from '../util/errors.js';
import {
  IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_NONE, decodeInnerPacket, rebuildTransportIPv4, type InnerPacket,
} from './ip.js';
import { ESP_HEADER_BYTES, PaddingError, openEsp, sealEsp } from './packet.js';
import { EXPIRE_HARD, EXPIRE_SOFT, EspSa, type EspSaCounters, type EspSaOptions } from './sa.js';
import { PolicyTable, matchesInbound, type CompiledPolicy } from './selector.js';

/** How often one trap policy may ask for an SA. */
const ACQUIRE_INTERVAL_MS = 2000;

/** RFC 3948 1: the UDP port ESP-in-UDP goes to. */
export const NAT_T_PORT = 4500;

/** One ESP packet to send: the UDP payload and where it goes. */
export interface EspDatagram {
  readonly data: Buffer;
  readonly dst: Endpoint;
  readonly src: Endpoint;
}

/** One UDP payload received on the ESP-in-UDP socket. */
export interface ReceivedDatagram {
  readonly data: Buffer;
  readonly from: Endpoint;
}

/** Drops and events not tied to one SA (per-SA ones are in EspSaCounters). */
export interface EspEngineCounters {
  /** Too short: ESP header, IV/trailer/ICV, or an inner IP header. */
  truncated: number;
  /** No inbound SA with that SPI (including deleted SAs), RFC 4303 3.4.2. */
  unknownSpi: number;
  /** Outbound packet matching no policy (RFC 4301 5.1: discard). */
  noPolicy: number;
  /** A policy matched but its SA is not installed. */
  noSa: number;
  /** Decapsulated packet outside the SA's selectors (RFC 4301 5.2). */
  selectorMismatch: number;
  /** Well-framed but wrong: ciphertext not whole blocks, bad inner header, wrong Next Header for the mode. */
  malformed: number;
  /** Something this engine does not do (IPv6 transport mode, fragments in transport mode). */
  unsupported: number;
  /** Packets for an SA past a hard limit or out of sequence numbers. */
  expired: number;
  /** RFC 4303 2.6 dummy packets (Next Header 59) received. */
  dummy: number;
  /** RFC 3948 2.3 NAT keepalives received. */
  keepalive: number;
  /** Datagrams starting with the non-ESP marker (IKE on port 4500; the demux should have taken them). */
  nonEsp: number;
  /** Unexpected exceptions (bugs); the packet is dropped. */
  internalErrors: number;
  packetsOut: number;
  packetsIn: number;
}

export interface EspEngineOptions {
  /** Milliseconds clock for lastUsed and time limits (tests pass a fake one). */
  now?: () => number;
}

type ExpireEvent = DataplaneEvents['expire'][0];

const saKey = (spi: number): number => spi >>> 0;

export class EspEngine {
  readonly events = new EventEmitter<DataplaneEvents>();
  private readonly inbound = new Map<number, EspSa>();
  private readonly outbound = new Map<number, EspSa>();
  private readonly policiesOut = new PolicyTable();
  private readonly policiesIn = new PolicyTable();
  private readonly now: () => number;
  private readonly pending: ExpireEvent[] = [];
  private readonly pendingAcquires: DataplaneEvents['acquire'][0][] = [];
  private readonly lastAcquire = new WeakMap<CompiledPolicy, number>();
  /** The last unexpected exception, for debugging (counted in internalErrors). */
  lastInternalError: unknown = null;
  private readonly c: EspEngineCounters = {
    truncated: 0, unknownSpi: 0, noPolicy: 0, noSa: 0, selectorMismatch: 0, malformed: 0, unsupported: 0,
    expired: 0, dummy: 0, keepalive: 0, nonEsp: 0, internalErrors: 0, packetsOut: 0, packetsIn: 0,
  };

  constructor(opts: EspEngineOptions = {}) {
    this.now = opts.now ?? Date.now;
  }

  /** A snapshot of the global counters. */
  counters(): EspEngineCounters {
    return { ...this.c };
  }

  // ---------------------------------------------------------------- tables

  private table(direction: Direction): Map<number, EspSa> {
    return direction === 'in' ? this.inbound : this.outbound;
  }

  /**
   * Installs an SA. Throws (UnsupportedError, MalformedError) for algorithms
   * or keys it cannot use, and MalformedError if the SPI is taken.
   */
  addSa(p: SaParams, options: EspSaOptions = {}): void {
    const t = this.table(p.direction);
    if (t.has(saKey(p.spi))) throw new MalformedError('SA', `${p.direction} SPI ${(p.spi >>> 0).toString(16)} exists`);
    // The engine never runs encryption-only CBC (RFC 8221 5), whatever the caller asks.
    const sa = new EspSa(p, { ...options, allowEncryptionOnly: false, now: options.now ?? this.now() });
    t.set(saKey(p.spi), sa);
  }

  /** Changes an SA's endpoints or encapsulation (NAT mapping change, RFC 7296 2.23); false if there is no such SA. */
  updateSa(spi: number, direction: Direction, changes: { src?: Endpoint; dst?: Endpoint; encap?: boolean }): boolean {
    const sa = this.table(direction).get(saKey(spi));
    if (!sa) return false;
    sa.update(changes);
    return true;
  }

  /** Removes an SA; packets for it then count as unknownSpi (in) or noSa (out). */
  deleteSa(spi: number, direction: Direction): boolean {
    const sa = this.table(direction).get(saKey(spi));
    if (sa) this.retire(sa);
    return this.table(direction).delete(saKey(spi));
  }

  /** Drops counted per SA, kept after the SA goes so totals cover the daemon's whole life. */
  private readonly retired = { replayDrops: 0, authFailures: 0, paddingErrors: 0, expiredDrops: 0 };

  private retire(sa: EspSa): void {
    this.retired.replayDrops += sa.replayDrops;
    this.retired.authFailures += sa.authFailures;
    this.retired.paddingErrors += sa.paddingErrors;
    this.retired.expiredDrops += sa.expiredDrops;
  }

  /** Per-SA drops summed over every SA there is or was. */
  saDropTotals(): { replayDrops: number; authFailures: number; paddingErrors: number; expiredDrops: number } {
    const t = { ...this.retired };
    for (const table of [this.inbound, this.outbound]) for (const sa of table.values()) {
      t.replayDrops += sa.replayDrops; t.authFailures += sa.authFailures; t.paddingErrors += sa.paddingErrors; t.expiredDrops += sa.expiredDrops;
    }
    return t;
  }

  querySa(spi: number, direction: Direction): EspSaCounters | null {
    return this.table(direction).get(saKey(spi))?.counters() ?? null;
  }

  /** The SA object itself, for the backend's diagnostics and tests. */
  getSa(spi: number, direction: Direction): EspSa | null {
    return this.table(direction).get(saKey(spi)) ?? null;
  }

  /**
   * Outbound policies select the SA for a packet; inbound ones widen what an
   * inbound SA accepts beyond its own selectors (both are checked in 5.2).
   * The outer addresses always come from the SA (its src/dst, which IKE sets
   * to the policy's tunnel endpoints), so `tunnel` is not consulted.
   */
  addPolicy(p: PolicyParams): void {
    (p.direction === 'out' ? this.policiesOut : this.policiesIn).add(p);
  }

  deletePolicy(p: PolicyParams): boolean {
    return (p.direction === 'out' ? this.policiesOut : this.policiesIn).delete(p);
  }

  // ---------------------------------------------------------------- events

  private crossed(sa: EspSa, flags: number): void {
    if (flags & EXPIRE_HARD) this.pending.push({ spi: sa.spi, direction: sa.direction, hard: true });
    else if (flags & EXPIRE_SOFT) this.pending.push({ spi: sa.spi, direction: sa.direction, hard: false });
  }

  private flushEvents(): void {
    while (this.pending.length > 0) this.events.emit('expire', this.pending.shift()!);
    while (this.pendingAcquires.length > 0) this.events.emit('acquire', this.pendingAcquires.shift()!);
  }

  /**
   * A packet matched a policy without an SA (a trap policy, SPI 0): ask IKE
   * for one, at most once per policy every ACQUIRE_INTERVAL_MS, as a kernel
   * does with its acquire messages (RFC 4301 5.1.1: the packet is dropped).
   */
  private acquire(policy: CompiledPolicy, now: number): void {
    const last = this.lastAcquire.get(policy) ?? -Infinity;
    if (now - last < ACQUIRE_INTERVAL_MS) return;
    this.lastAcquire.set(policy, now);
    this.pendingAcquires.push({ selector: { local: policy.params.local, remote: policy.params.remote } });
  }

  /**
   * Checks time limits (SaLimits.softSeconds/hardSeconds); the backend calls
   * this from its own timer, about once a second. The engine runs no timers.
   */
  tick(now: number = this.now()): void {
    for (const t of [this.inbound, this.outbound]) for (const sa of t.values()) this.crossed(sa, sa.checkTime(now));
    this.flushEvents();
  }

  // ---------------------------------------------------------------- outbound

  /** The UDP destination: the peer, on 4500 when encapsulating (RFC 3948 1) unless NAT moved it elsewhere. */
  private static udpDst(sa: EspSa): Endpoint {
    if (sa.encap && (sa.dst.port === 0 || sa.dst.port === 500)) return { address: sa.dst.address, port: NAT_T_PORT };
    return sa.dst;
  }

  /** IP packets from the TUN to ESP packets for the UDP socket. Packets that cannot go are counted and left out. */
  encapsulate(packets: readonly Buffer[]): EspDatagram[] {
    const out: EspDatagram[] = [];
    const now = this.now();
    for (const pkt of packets) {
      try {
        const d = this.encapsulateOne(pkt, now);
        if (d) out.push(d);
      } catch (e) {
        this.c.internalErrors++;
        this.lastInternalError = e;
      }
    }
    this.flushEvents();
    return out;
  }

  private encapsulateOne(pkt: Buffer, now: number): EspDatagram | null {
    const decoded = decodeInnerPacket(pkt);
    if (!decoded.ok) { this.countError(decoded.error, null); return null; }
    const inner = decoded.value;
    const policy = this.policiesOut.lookupOutbound(pkt, inner);
    if (!policy) { this.c.noPolicy++; return null; }
    const sa = this.outbound.get(saKey(policy.params.spi));
    if (!sa) { this.c.noSa++; this.acquire(policy, now); return null; }
    if (sa.dead) { sa.expiredDrops++; this.c.expired++; return null; }

    let payload: Buffer;
    let nextHeader: number;
    if (sa.mode === 'tunnel') {
      // RFC 4303 3.1.2: the whole inner datagram is protected.
      payload = inner.totalLength === pkt.length ? pkt : pkt.subarray(0, inner.totalLength);
      nextHeader = inner.family === 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
    } else {
      // RFC 4303 3.1.1 / 3.3: transport mode protects the upper layer of whole IPv4 datagrams only.
      if (inner.family !== 4 || inner.fragment) { this.c.unsupported++; return null; }
      payload = pkt.subarray(inner.headerLength, inner.totalLength);
      nextHeader = inner.protocol;
    }
    if (!sa.nextSeq()) {
      sa.expiredDrops++;
      this.c.expired++;
      this.crossed(sa, sa.exhaust());
      return null;
    }
    const data = sealEsp(sa.transform, sa.spi, sa.outboundSeqHigh, sa.outboundSeqLow, payload, nextHeader);
    this.crossed(sa, sa.account(payload.length, now));
    this.c.packetsOut++;
    return { data, dst: EspEngine.udpDst(sa), src: sa.src };
  }

  // ---------------------------------------------------------------- inbound

  /** UDP payloads from port 4500 to IP packets for the TUN. Anything that does not verify is counted and left out. */
  decapsulate(datagrams: readonly ReceivedDatagram[]): Buffer[] {
    const out: Buffer[] = [];
    const now = this.now();
    for (const d of datagrams) {
      try {
        const p = this.decapsulateOne(d.data, now);
        if (p) out.push(p);
      } catch (e) {
        this.c.internalErrors++;
        this.lastInternalError = e;
      }
    }
    this.flushEvents();
    return out;
  }

  private countError(e: StyxError, sa: EspSa | null): void {
    if (e instanceof IntegrityError) { if (sa) sa.authFailures++; else this.c.malformed++; }
    else if (e instanceof PaddingError) { if (sa) sa.paddingErrors++; else this.c.malformed++; }
    else if (e instanceof TruncatedError) this.c.truncated++;
    else if (e instanceof UnsupportedError) this.c.unsupported++;
    else this.c.malformed++;
  }

  private decapsulateOne(data: Buffer, now: number): Buffer | null {
    if (data.length === 1 && data[0] === 0xff) { this.c.keepalive++; return null; }
    // Hot path: the header is read here with an explicit length check (decodeEspHeader's checks, no allocation).
    if (data.length < ESP_HEADER_BYTES) { this.c.truncated++; return null; }
    const spi = data.readUInt32BE(0);
    if (spi === 0) { this.c.nonEsp++; return null; }
    const sa = this.inbound.get(spi);
    if (!sa) { this.c.unknownSpi++; return null; }
    if (sa.dead) { sa.expiredDrops++; this.c.expired++; return null; }

    // RFC 4303 3.4.3: the cheap duplicate check comes before the ICV; the window moves only after it.
    const replay = sa.replay!.check(data.readUInt32BE(4));
    if (!replay.ok) { sa.replayDrops++; return null; }
    const opened = openEsp(sa.transform, data, replay.seqHigh, sa.checkPadding);
    if (!opened.ok) { this.countError(opened.error, sa); return null; }
    sa.replay!.updateParts(replay.seqHigh, replay.seqLow);

    const { payload, nextHeader } = opened.value;
    if (nextHeader === IPPROTO_NONE) {
      // RFC 4303 2.6: dummy packets (traffic flow confidentiality) are discarded without notice.
      this.c.dummy++;
      this.crossed(sa, sa.account(0, now));
      return null;
    }

    let packet: Buffer;
    if (sa.mode === 'tunnel') {
      if (nextHeader !== IPPROTO_IPIP && nextHeader !== IPPROTO_IPV6) { this.c.malformed++; return null; }
      const inner = decodeInnerPacket(payload, nextHeader === IPPROTO_IPIP ? 4 : 6);
      if (!inner.ok) { this.countError(inner.error, null); return null; }
      // RFC 4303 2.7: anything after the inner datagram's own length is TFC padding.
      packet = inner.value.totalLength === payload.length ? payload : payload.subarray(0, inner.value.totalLength);
      if (!this.selectorsAccept(sa, packet, inner.value)) { this.c.selectorMismatch++; return null; }
    } else {
      if (!sa.srcV4 || !sa.dstV4) { this.c.unsupported++; return null; }
      // The outer header went with the UDP socket; give the payload back an IPv4 header with the SA's addresses.
      const rebuilt = rebuildTransportIPv4(sa.srcV4, sa.dstV4, nextHeader, payload);
      if (!rebuilt.ok) { this.countError(rebuilt.error, null); return null; }
      packet = rebuilt.value;
      const inner = decodeInnerPacket(packet, 4);
      if (!inner.ok) { this.countError(inner.error, null); return null; }
      if (!this.selectorsAccept(sa, packet, inner.value)) { this.c.selectorMismatch++; return null; }
    }
    // Bytes count the ESP payload as outbound does: the inner datagram (tunnel) or upper layer (transport).
    this.crossed(sa, sa.account(sa.mode === 'tunnel' ? packet.length : payload.length, now));
    this.c.packetsIn++;
    return packet;
  }

  /** RFC 4301 5.2: the SA's own selectors, or an inbound policy naming this SA. */
  private selectorsAccept(sa: EspSa, pkt: Buffer, inner: InnerPacket): boolean {
    if (matchesInbound(sa.local, sa.remote, pkt, inner)) return true;
    if (this.policiesIn.size === 0) return false;
    for (const p of this.policiesIn.all) {
      if ((p.params.spi >>> 0) === sa.spi && matchesInbound([p.local], [p.remote], pkt, inner)) return true;
    }
    return false;
  }
}
