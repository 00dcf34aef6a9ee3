/**
 * The TUN device contract of styx's userspace ESP data plane.
 *
 * Batch-shaped on purpose: per-packet crossings between JS and the kernel
 * (and between JS and native code) are what limits a userspace engine, so a
 * device hands over every packet it could read in one wake-up and takes many
 * packets per write call.
 */

/** Packets per onPackets batch unless a device is told otherwise. */
export const DEFAULT_BATCH = 64;

export interface TunDevice {
  /** The interface name the kernel gave the device (tun0, styx0, ...). */
  readonly name: string;
  readonly mtu: number;
  /**
   * Sets the one consumer of packets read from the device; a later call
   * replaces it. Each call of `cb` gets one batch (1..batchSize packets).
   *
   * Ownership: the Buffers, and the array, may be views into a pool that the
   * next batch overwrites. They stay valid while `cb` runs and through the
   * microtasks it queues, not across I/O: copy (`Buffer.from(p)`) whatever
   * must outlive that. The ESP engine encrypts into fresh buffers anyway.
   */
  onPackets(cb: (pkts: Buffer[]) => void): void;
  /**
   * Writes IP packets (no framing, IPv4 or IPv6 by the version nibble) to the
   * kernel side and returns how many it took. A short count means the kernel
   * queue was full; the rest were not written (drop them, as a router would).
   * A packet the kernel rejects as malformed is skipped and not counted.
   */
  write(pkts: readonly Buffer[]): number;
  /** Stops reading and releases the device; idempotent. */
  close(): Promise<void>;
}

/** Errors while reading (device removed, fd failure) after which no more packets arrive. */
export interface TunErrorSource {
  onError(cb: (err: Error) => void): void;
}
