/**
 * In-memory TUN devices for tests: createTunPair() returns two devices wired
 * back to back, so what one side writes arrives as packets on the other. One
 * end stands for "the kernel" and the other for the engine, or two engines
 * can be joined directly.
 *
 * Delivery is asynchronous (one macrotask later, as from a real fd) and
 * batched: everything written to a side before delivery runs arrives as
 * batches of at most `batchSize` packets. Packets are copied on write, so the
 * caller may reuse its buffers at once, as with a real TUN.
 */
import { StyxError } from '../util/errors.js';
import { DEFAULT_BATCH, type TunDevice } from './api.js';

export interface MemoryTunOptions {
  mtu?: number;
  batchSize?: number;
  /** Packets queued unread before further writes are refused (short write count), like a txqueuelen. */
  queueLimit?: number;
  names?: [string, string];
}

export class MemoryTun implements TunDevice {
  readonly name: string;
  readonly mtu: number;
  peer: MemoryTun | null = null;
  /** Copies of every packet written to this side, oldest first; tests may clear it. */
  readonly written: Buffer[] = [];
  /** Packets written by the peer that the consumer has not been given yet. */
  private readonly inbox: Buffer[] = [];
  private consumer: ((pkts: Buffer[]) => void) | null = null;
  private scheduled = false;
  private closed = false;

  constructor(name: string, mtu: number, private readonly batchSize: number, private readonly queueLimit: number) {
    this.name = name;
    this.mtu = mtu;
  }

  onPackets(cb: (pkts: Buffer[]) => void): void {
    this.consumer = cb;
    this.schedule();
  }

  /**
   * Sends to the peer. A packet over the MTU is skipped, as the kernel
   * would reject it; a full peer queue ends the batch early.
   */
  write(pkts: readonly Buffer[]): number {
    if (this.closed) throw new StyxError('ERR_TUN_CLOSED', `TUN ${this.name} is closed`);
    const peer = this.peer;
    let n = 0;
    for (const p of pkts) {
      if (p.length === 0 || p.length > this.mtu) continue;
      if (peer && !peer.closed) {
        if (peer.inbox.length >= peer.queueLimit) break;
        peer.inbox.push(Buffer.from(p));
      }
      this.written.push(Buffer.from(p));
      n++;
    }
    peer?.schedule();
    return n;
  }

  /** Puts packets in this side's inbox as if the peer had written them. */
  inject(pkts: readonly Buffer[]): void {
    for (const p of pkts) this.inbox.push(Buffer.from(p));
    this.schedule();
  }

  /** Packets waiting for a consumer. */
  get pending(): number { return this.inbox.length; }

  private schedule(): void {
    if (this.scheduled || this.closed || !this.consumer || this.inbox.length === 0) return;
    this.scheduled = true;
    setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.scheduled = false;
    while (!this.closed && this.consumer && this.inbox.length > 0) {
      this.consumer(this.inbox.splice(0, this.batchSize));
    }
  }

  close(): Promise<void> {
    this.closed = true;
    this.inbox.length = 0;
    this.consumer = null;
    return Promise.resolve();
  }
}

export function createTunPair(opts: MemoryTunOptions = {}): [MemoryTun, MemoryTun] {
  const mtu = opts.mtu ?? 1400;
  const batch = opts.batchSize ?? DEFAULT_BATCH;
  const limit = opts.queueLimit ?? 4096;
  const [na, nb] = opts.names ?? ['mtun0', 'mtun1'];
  const a = new MemoryTun(na, mtu, batch, limit);
  const b = new MemoryTun(nb, mtu, batch, limit);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
