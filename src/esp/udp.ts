/**
 * ESP-in-UDP sending in batches: one sendmmsg per batch of datagrams instead
 * of one dgram send (one libuv request, one callback, one system call) per
 * packet, which the profiles put at over 40% of styxd's CPU when sending.
 *
 * sendmmsg needs the socket's fd, which Node's dgram does not expose. So the
 * styx_esp addon opens and binds the NAT-T socket and net/ hands the same fd
 * to dgram (bind({ fd }), public API): dgram keeps receiving everything (IKE,
 * keepalives, ESP) and sending IKE, while ESP leaves through sendmmsg from
 * the same address and port, as RFC 3948 needs. No second socket shares the
 * port, so the kernel never splits received datagrams between sockets.
 *
 * Batches form by themselves: queue() collects the datagrams sent during one
 * run of JS (the engine's output for one TUN read) and a microtask sends them
 * before the event loop goes on.
 */
import { getSystemErrorName } from 'node:util';
import type { Endpoint } from '../dataplane/api.js';
import { espAddon, type EspAddon } from './native.js';

/** Sends what the batch could not: dgram's own send, which waits for a full socket buffer to drain. */
export type FallbackSend = (data: Buffer, remote: Endpoint) => void;

/** Most datagrams per addon call (the addon splits them into sendmmsg calls itself). */
const MAX_BATCH = 256;

export class FastUdpSocket {
  /** Datagrams sent by sendmmsg, batches (addon calls), and datagrams left to dgram because the buffer was full. */
  readonly stats = { sent: 0, batches: 0, fallback: 0 };
  private readonly result = new Int32Array(2);
  private bufs: Buffer[] = [];
  private remotes: Endpoint[] = [];
  private flushQueued = false;
  private closed = false;
  private fallback: FallbackSend | null = null;
  private refused: (e: Error) => void = () => undefined;

  private constructor(private readonly addon: EspAddon, readonly fd: number) {}

  /**
   * A bound UDP socket from the addon, or null without the addon (net/ then
   * binds a plain dgram socket). Throws the bind error (EADDRINUSE, ...) as
   * dgram would. `bufferBytes` may go past net.core.rmem_max/wmem_max where
   * the process is allowed to (CAP_NET_ADMIN), so a burst of ESP waits in the
   * kernel rather than being dropped.
   */
  static open(address: string, port: number, bufferBytes: number, addon: EspAddon | null = espAddon()): FastUdpSocket | null {
    // Scoped IPv6 (fe80::1%eth0) is left to dgram, which knows interface names.
    if (!addon || address.includes('%')) return null;
    return new FastUdpSocket(addon, addon.udpOpen(address, port, bufferBytes, bufferBytes));
  }

  /** The receive and send buffer sizes the kernel granted (it doubles what is asked). */
  bufferSizes(): [number, number] { return this.addon.udpBufferSizes(this.fd); }

  /**
   * Connects the batch to the dgram socket that wraps this fd: `fallback`
   * takes what sendmmsg could not send (a full socket buffer), `refused`
   * hears of datagrams the kernel would not send (no route, filtered).
   */
  attach(fallback: FallbackSend, refused: (e: Error) => void): void {
    this.fallback = fallback;
    this.refused = refused;
  }

  /** Sends `data` to `remote` together with the rest of this turn's datagrams. */
  queue(data: Buffer, remote: Endpoint): void {
    if (!this.fallback) throw new Error('FastUdpSocket: queue() before attach()');
    // Closing: dgram reports the send on a closed socket as it always has.
    if (this.closed) { this.fallback(data, remote); return; }
    this.bufs.push(data);
    this.remotes.push(remote);
    if (this.bufs.length >= MAX_BATCH) { this.flush(); return; }
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.onMicrotask);
  }

  private readonly onMicrotask = (): void => { this.flushQueued = false; this.flush(); };

  /** Stops batching before dgram closes the fd; what is still queued goes out through dgram. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  private flush(): void {
    const fallback = this.fallback, refused = this.refused;
    if (!fallback) return;
    const bufs = this.bufs, remotes = this.remotes;
    this.bufs = []; this.remotes = [];
    let i = 0;
    while (i < bufs.length) {
      // One destination per addon call: the run of datagrams to the same peer (usually the whole batch).
      const r = remotes[i]!;
      let j = i + 1;
      while (j < bufs.length && remotes[j]!.port === r.port && remotes[j]!.address === r.address) j++;
      const run = i === 0 && j === bufs.length ? bufs : bufs.slice(i, j);
      let done = 0;
      this.result[0] = 0;
      try {
        done = this.addon.udpSend(this.fd, run, 0, run.length, r.address, r.port, this.result);
      } catch {
        // A dead fd (EBADF): dgram gets the datagrams and reports on them as it would have.
        done = 0;
        this.result[0] = 0;
      }
      this.stats.batches++;
      this.stats.sent += done - this.result[0]!;
      for (let k = 0; k < this.result[0]!; k++) refused(new Error(`send ${getSystemErrorName(-this.result[1]!)} ${r.address}:${r.port}`));
      for (let k = done; k < run.length; k++) { this.stats.fallback++; fallback(run[k]!, r); }
      i = j;
    }
  }
}
