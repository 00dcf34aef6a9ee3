/**
 * The userspace data plane: styx's own ESP engine between a TUN device and
 * the IKE daemon's UDP 4500 sockets, so tunnels carry traffic on any Linux
 * host without kernel IPsec.
 *
 * Pipeline, outbound: TUN read (a batch per wake-up) -> EspEngine.encapsulate
 * (policy lookup, ESP) -> UDP send from the NAT-T socket (RFC 3948 ESP-in-UDP).
 * Inbound: UDP 4500 datagrams that are not IKE (net/ tells them apart by the
 * non-ESP marker) are gathered for one turn of the event loop ->
 * EspEngine.decapsulate -> TUN write (a batch per call).
 *
 * Only UDP-encapsulated ESP is carried: Node has no raw IP sockets for
 * protocol 50, so the daemon forces encapsulation on every connection.
 *
 * Fast path, when the styx_esp addon is built (native/styx_esp.c): AEAD SAs
 * seal and open through a keyed OpenSSL context each (esp/fast.ts) instead
 * of a new node:crypto cipher per packet, and net/ sends each turn's ESP in
 * one sendmmsg (esp/udp.ts). The engine's logic is the same either way; CBC
 * SAs, and every SA without the addon or with STYX_ESP_FAST=0, use the JS
 * transforms.
 */
import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import os from 'node:os';
import { EspEngine } from '../../../esp/engine.js';
import { releaseFastCrypto, useFastCrypto } from '../../../esp/fast.js';
import { tryLoadEspAddon, type EspAddon } from '../../../esp/native.js';
import type { TunDevice } from '../../../tun/api.js';
import type { Logger } from '../../../util/log.js';
import type { DataplaneBackend, DataplaneEvents, Direction, Endpoint, PolicyParams, SaCounters, SaParams, Selector } from '../../api.js';

/** How the backend reaches the IKE sockets on the NAT-T port. */
export interface EspTransport {
  /** Receives every ESP-in-UDP datagram (after net/ removed nothing: it starts with the SPI). */
  setEspReceiver(cb: (data: Buffer, local: Endpoint, remote: Endpoint) => void): void;
  /** Sends an ESP-in-UDP datagram from the bound socket `local` (no non-ESP marker). */
  sendEsp(data: Buffer, local: Endpoint, remote: Endpoint): void;
}

/** What the backend needs of a TUN beyond the batch interface: routes for the remote selectors. */
export interface RoutedTun extends TunDevice {
  addRoute(cidr: string, opts?: { src?: string }): Promise<void>;
  delRoute(cidr: string): Promise<void>;
}

export interface UserspaceOptions {
  natPort: number;
  log: Logger;
  /** How often time-based SA limits are checked. */
  tickMs?: number;
  /** The ESP addon for AEAD crypto; default: loaded if built. null: the JS transforms only. */
  addon?: EspAddon | null;
}

const key = (spi: number, dir: Direction): string => `${dir}:${spi >>> 0}`;

/** A selector's address range as a prefix (start address, length) when it is one; null for odd ranges. */
export function selectorPrefix(s: Selector): { addr: Buffer; prefix: number } | null {
  const bits = s.startAddr.length * 8;
  for (let p = 0; p <= bits; p++) {
    const lo = Buffer.from(s.startAddr), hi = Buffer.from(s.startAddr);
    for (let i = p; i < bits; i++) { const b = i >> 3, m = 0x80 >> (i & 7); lo[b] = lo[b]! & ~m; hi[b] = hi[b]! | m; }
    if (lo.equals(s.startAddr) && hi.equals(s.endAddr)) return { addr: s.startAddr, prefix: p };
  }
  return null;
}

/** A selector as a CIDR prefix when it is one (routes need prefixes); null for odd ranges. */
export function selectorCidr(s: Selector): string | null {
  const p = selectorPrefix(s);
  return p ? `${addrText(p.addr)}/${p.prefix}` : null;
}

function addrText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i).toString(16));
  return g.join(':');
}

/** A local interface address inside the selector, so locally sent packets take it as their source. */
export function localSourceIn(s: Selector): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      const fam = a.family === 'IPv4' ? 4 : 6;
      if (fam !== s.family || a.internal) continue;
      const b = fam === 4 ? Buffer.from(a.address.split('.').map(Number)) : null;
      if (b && Buffer.compare(b, s.startAddr) >= 0 && Buffer.compare(b, s.endAddr) <= 0) return a.address;
    }
  }
  return undefined;
}

export class UserspaceBackend implements DataplaneBackend {
  readonly name = 'userspace';
  readonly events = new EventEmitter<DataplaneEvents>();
  readonly engine: EspEngine;
  private readonly reserved = new Set<number>();
  private readonly routes = new Map<string, number>();
  private inbox: { data: Buffer; from: Endpoint }[] = [];
  private flushQueued = false;
  private readonly ticker: NodeJS.Timeout;
  private closed = false;
  private tunShortWrites = 0;
  private readonly addon: EspAddon | null;
  /** SAs installed with the addon's crypto and with node:crypto's. */
  private fastSas = 0;
  private jsSas = 0;

  constructor(private readonly tun: RoutedTun, private readonly transport: EspTransport, private readonly opts: UserspaceOptions) {
    this.engine = new EspEngine();
    if (opts.addon !== undefined) this.addon = opts.addon;
    else {
      const load = tryLoadEspAddon();
      this.addon = load.ok ? load.addon : null;
      opts.log.info(load.ok ? `ESP crypto: AES-GCM and ChaCha20-Poly1305 in the styx_esp addon (${load.addon.openssl()})` : `ESP crypto: node:crypto only (${load.reason})`);
    }
    this.engine.events.on('expire', (e) => this.events.emit('expire', e));
    this.engine.events.on('acquire', (e) => this.events.emit('acquire', e));
    tun.onPackets((pkts) => this.outbound(pkts));
    transport.setEspReceiver((data, _local, remote) => this.receive(data, remote));
    this.ticker = setInterval(() => this.engine.tick(), opts.tickMs ?? 1000);
    this.ticker.unref();
  }

  private outbound(pkts: Buffer[]): void {
    for (const d of this.engine.encapsulate(pkts)) this.transport.sendEsp(d.data, this.natT(d.src), d.dst);
  }

  /** ESP leaves from the NAT-T socket even when the SA was made over port 500. */
  private natT(e: Endpoint): Endpoint { return e.port === this.opts.natPort ? e : { address: e.address, port: this.opts.natPort }; }

  /** Datagrams arrive one event each; decapsulate them in one batch per event-loop turn. */
  private receive(data: Buffer, from: Endpoint): void {
    this.inbox.push({ data, from });
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      const batch = this.inbox;
      this.inbox = [];
      const pkts = this.engine.decapsulate(batch);
      // A short write means the kernel queue was full: those packets are dropped, as a router would.
      if (pkts.length && !this.closed) this.tunShortWrites += pkts.length - this.tun.write(pkts);
    });
  }

  async allocateSpi(): Promise<number> {
    for (;;) {
      // RFC 4303 2.1: 0 is reserved and 1-255 are set aside by IANA.
      const spi = randomInt(256, 0xffffffff);
      if (!this.reserved.has(spi) && !this.engine.getSa(spi, 'in')) { this.reserved.add(spi); return spi; }
    }
  }

  async addSa(sa: SaParams): Promise<void> {
    if (!sa.encap) this.opts.log.debug(`${sa.tag}: SA ${key(sa.spi, sa.direction)} sent in UDP although not negotiated as such: the userspace data plane has no raw ESP`);
    this.engine.addSa({ ...sa, encap: true });
    let fast = false;
    try {
      fast = useFastCrypto(this.engine.getSa(sa.spi, sa.direction)!, sa, this.addon);
    } catch (e) {
      // The SA works as installed, on node:crypto.
      this.opts.log.warn(`${sa.tag}: ESP addon refused the SA's keys, using node:crypto: ${(e as Error).message}`);
    }
    if (fast) this.fastSas++;
    else this.jsSas++;
    this.opts.log.info(`${sa.tag}: installed ${sa.direction === 'in' ? 'inbound' : 'outbound'} ESP SA ${(sa.spi >>> 0).toString(16).padStart(8, '0')} ${sa.src.address} -> ${sa.dst.address}`);
  }

  async updateSa(spi: number, direction: Direction, changes: { src?: Endpoint; dst?: Endpoint; encap?: boolean }): Promise<void> {
    if (!this.engine.updateSa(spi, direction, { ...changes, encap: true })) throw new Error(`no SA ${key(spi, direction)}`);
  }

  async deleteSa(spi: number, direction: Direction): Promise<void> {
    const sa = this.engine.getSa(spi, direction);
    this.engine.deleteSa(spi, direction);
    if (sa) releaseFastCrypto(sa);
    if (direction === 'in') this.reserved.delete(spi >>> 0);
  }

  async querySa(spi: number, direction: Direction): Promise<SaCounters | null> {
    return this.engine.querySa(spi, direction);
  }

  /** Outbound policies also route their remote selector into the TUN (shared routes are counted). */
  async addPolicy(p: PolicyParams): Promise<void> {
    this.engine.addPolicy(p);
    if (p.direction !== 'out') return;
    const cidr = selectorCidr(p.remote);
    if (!cidr) { this.opts.log.warn(`${p.tag}: remote selector is not a prefix; no route added for it`); return; }
    const n = this.routes.get(cidr) ?? 0;
    this.routes.set(cidr, n + 1);
    if (n === 0) {
      const src = localSourceIn(p.local);
      await this.tun.addRoute(cidr, src ? { src } : {});
      this.opts.log.info(`${p.tag}: route ${cidr} via ${this.tun.name}${src ? ` src ${src}` : ''}`);
    }
  }

  async deletePolicy(p: PolicyParams): Promise<void> {
    if (!this.engine.deletePolicy(p) || p.direction !== 'out') return;
    const cidr = selectorCidr(p.remote);
    if (!cidr) return;
    const n = (this.routes.get(cidr) ?? 1) - 1;
    if (n > 0) { this.routes.set(cidr, n); return; }
    this.routes.delete(cidr);
    await this.tun.delRoute(cidr).catch((e: Error) => this.opts.log.warn(`removing route ${cidr}: ${e.message}`));
  }

  stats(): Record<string, number> {
    return { ...this.engine.counters(), ...this.engine.saDropTotals(), tunWriteShort: this.tunShortWrites, fastCryptoSas: this.fastSas, jsCryptoSas: this.jsSas };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.ticker);
    await this.tun.close();
  }
}
