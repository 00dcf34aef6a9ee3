/**
 * UDP sockets for IKE on ports 500 and 4500 (RFC 7296 2.11, RFC 3948).
 *
 * Node's dgram cannot report a datagram's destination address, and IKE needs
 * it (for NAT detection and for the SA's endpoints), so styx binds one socket
 * per local address and port instead of one wildcard socket.
 *
 * Receive path on 4500 (RFC 3948 2.2/2.3): a leading four-zero-octet non-ESP
 * marker means IKE; a single 0xFF octet is a NAT keepalive; anything else is
 * ESP, handed to the data plane's hook.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import os from 'node:os';
import type { Logger } from '../util/log.js';
import type { Endpoint } from '../dataplane/api.js';
import { FastUdpSocket } from '../esp/udp.js';

export const IKE_PORT = 500;
export const NAT_T_PORT = 4500;
const NON_ESP_MARKER = Buffer.alloc(4);
const RECV_BUFFER_BYTES = 4 * 1024 * 1024;

export type IkeReceiver = (data: Buffer, local: Endpoint, remote: Endpoint) => void;
export type EspReceiver = (data: Buffer, local: Endpoint, remote: Endpoint) => void;

export interface Sender {
  send(data: Buffer, local: Endpoint, remote: Endpoint): void;
}

export interface SocketCounters { received: number; sent: number; sentRaw: number; keepalives: number; esp: number; dropped: number; sendErrors: number }

/** `fast`: the NAT-T socket came from the styx_esp addon, which sends ESP in batches (sendmmsg) on its fd. */
interface Bound { sock: dgram.Socket; local: Endpoint; natT: boolean; fast: FastUdpSocket | null }

/** Addresses on this host's interfaces, for binding when no listen list is given. */
export function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      // Link-local IPv6 needs a scope id on every send; IKE peers are not reached that way.
      if (a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80')) continue;
      out.push(a.address);
    }
  }
  return out;
}

/** Makes a bound UDP socket for IKE and returns its fd (natT: the NAT-T port). */
export type SocketOpener = (family: 4 | 6, address: string, port: number, natT: boolean) => number;

export class IkeSockets implements Sender {
  private bound: Bound[] = [];
  private opener: SocketOpener | null = null;
  readonly counters: SocketCounters = { received: 0, sent: 0, sentRaw: 0, keepalives: 0, esp: 0, dropped: 0, sendErrors: 0 };
  espReceiver: EspReceiver | null = null;

  constructor(private readonly log: Logger, private readonly onIke: IkeReceiver) {}

  /**
   * Binds every address on `port` (plain IKE) and `natPort` (with the
   * non-ESP marker). `opener`, when given, makes each socket (bound, as an
   * fd) instead: the kernel data plane needs socket options dgram lacks.
   */
  async bind(addresses: string[], port: number, natPort: number, opener?: SocketOpener): Promise<void> {
    this.opener = opener ?? null;
    for (const address of addresses) {
      for (const [p, natT] of [[port, false], [natPort, true]] as const) {
        if (p === 0 && natT) continue;
        try {
          this.bound.push(await this.open(address, p, natT));
        } catch (e) {
          this.log.warn(`cannot bind ${fmt({ address, port: p })}: ${(e as Error).message}`);
        }
      }
    }
    if (this.bound.length === 0) throw new Error('no IKE socket could be bound');
  }

  get endpoints(): Endpoint[] { return this.bound.map((b) => b.local); }

  private open(address: string, port: number, natT: boolean): Promise<Bound> {
    return new Promise((resolve, reject) => {
      // NAT-T: with the styx_esp addon built, it opens and binds the socket (with the buffer sizes below) and
      // dgram wraps its fd, so ESP can leave in sendmmsg batches from the same socket (see esp/udp.ts).
      let fast: FastUdpSocket | null = null;
      let fd: number | null = null;
      try {
        if (this.opener) fd = this.opener(isIPv6(address) ? 6 : 4, address, port, natT);
        else fast = natT ? FastUdpSocket.open(address, port, RECV_BUFFER_BYTES) : null;
      } catch (e) {
        reject(e);
        return;
      }
      const sock = isIPv6(address) ? dgram.createSocket({ type: 'udp6', ipv6Only: true }) : dgram.createSocket({ type: 'udp4' });
      const onError = (e: Error): void => { sock.close(); reject(e); };
      sock.once('error', onError);
      sock.bind(fast ? { fd: fast.fd } : fd !== null ? { fd } : { address, port, exclusive: true }, () => {
        sock.off('error', onError);
        const local = { address, port: sock.address().port };
        // ESP-in-UDP arrives in bursts; a larger receive buffer (capped by the kernel's rmem_max) drops less.
        if (natT && !fast && fd === null) { try { sock.setRecvBufferSize(RECV_BUFFER_BYTES); sock.setSendBufferSize(RECV_BUFFER_BYTES); } catch { /* keep the default */ } }
        const b: Bound = { sock, local, natT, fast };
        fast?.attach((d, r) => sock.send(d, r.port, r.address, this.onRawSent), this.onRawSent);
        sock.on('error', (e) => this.log.warn(`socket ${fmt(local)}: ${e.message}`));
        sock.on('message', (msg, rinfo) => this.receive(b, msg, { address: rinfo.address, port: rinfo.port }));
        this.log.debug(`listening on ${fmt(local)}${natT ? (fast ? ' (NAT-T, ESP sent with sendmmsg)' : ' (NAT-T)') : ''}`);
        resolve(b);
      });
    });
  }

  private receive(b: Bound, msg: Buffer, remote: Endpoint): void {
    this.counters.received++;
    if (!b.natT) { this.onIke(msg, b.local, remote); return; }
    // RFC 3948 2.3: a one-octet 0xFF payload is a NAT-keepalive.
    if (msg.length === 1 && msg[0] === 0xff) { this.counters.keepalives++; return; }
    if (msg.length >= 4 && msg.subarray(0, 4).equals(NON_ESP_MARKER)) {
      this.onIke(msg.subarray(4), b.local, remote);
      return;
    }
    // RFC 3948 2.2: a nonzero SPI where the marker would be is ESP.
    if (msg.length >= 8 && this.espReceiver) { this.counters.esp++; this.espReceiver(msg, b.local, remote); return; }
    this.counters.dropped++;
    this.log.debug(`dropped ${msg.length}-byte datagram on ${fmt(b.local)} from ${fmt(remote)}: not IKE and no ESP receiver`);
  }

  private find(local: Endpoint): Bound | undefined {
    return this.bound.find((b) => b.local.address === local.address && b.local.port === local.port);
  }

  /** Whether `local` is a NAT-T (4500) socket, so callers know the marker is added. */
  isNatT(local: Endpoint): boolean { return this.find(local)?.natT ?? false; }

  /** Picks the bound socket for a peer when no local address is pinned. */
  localFor(remoteAddress: string, port: number, preferred?: string): Endpoint | undefined {
    const v6 = isIPv6(remoteAddress);
    const cands = this.bound.filter((b) => b.local.port === port && isIPv6(b.local.address) === v6);
    const hit = preferred ? cands.find((b) => b.local.address === preferred) : undefined;
    if (hit) return hit.local;
    // Prefer a non-loopback address unless the peer is on loopback.
    const loop = (a: string): boolean => a.startsWith('127.') || a === '::1';
    return (cands.find((b) => loop(b.local.address) === loop(remoteAddress)) ?? cands[0])?.local;
  }

  send(data: Buffer, local: Endpoint, remote: Endpoint): void {
    const b = this.find(local);
    if (!b) { this.counters.sendErrors++; this.log.warn(`no socket bound to ${fmt(local)} to reach ${fmt(remote)}`); return; }
    const out = b.natT ? Buffer.concat([NON_ESP_MARKER, data]) : data;
    b.sock.send(out, remote.port, remote.address, (e) => {
      if (e) { this.counters.sendErrors++; this.log.warn(`send to ${fmt(remote)} failed: ${e.message}`); }
    });
    this.counters.sent++;
  }

  /** Raw send on the 4500 socket without a marker: ESP-in-UDP and keepalives. */
  sendRaw(data: Buffer, local: Endpoint, remote: Endpoint): void {
    const b = this.find(local);
    if (!b) { this.counters.sendErrors++; return; }
    if (b.fast) b.fast.queue(data, remote);
    else b.sock.send(data, remote.port, remote.address, this.onRawSent);
    this.counters.sentRaw++;
  }

  /** One callback for every raw send: a failing route must not log once per packet. */
  private readonly onRawSent = (e: Error | null): void => {
    if (!e) return;
    this.counters.sendErrors++;
    const now = Date.now();
    if (now - this.lastRawErrorLog > 10_000) { this.lastRawErrorLog = now; this.log.warn(`sending ESP-in-UDP failed: ${e.message} (${this.counters.sendErrors} send errors so far)`); }
  };
  private lastRawErrorLog = 0;

  async close(): Promise<void> {
    await Promise.all(this.bound.map((b) => new Promise<void>((r) => { b.fast?.close(); b.sock.close(() => r()); })));
    this.bound = [];
  }
}

export const fmt = (e: Endpoint): string => (isIPv6(e.address) ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);
