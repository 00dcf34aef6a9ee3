/**
 * Linux TUN devices for the userspace ESP data plane, through the styx_tun
 * addon (native/styx_tun.c).
 *
 * Opening, MTU and link state are ioctls in the addon. Addresses and routes
 * go through the `ip` command (iproute2) via execFile: they change only when
 * a CHILD_SA comes or goes, where ~2 ms per spawn does not matter, and `ip`
 * already knows every address family and route attribute.
 */
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { StyxError } from '../util/errors.js';
import { DEFAULT_BATCH, type TunDevice, type TunErrorSource } from './api.js';
import { loadAddon, type NativePoller, type TunAddon } from './native.js';

export interface OpenTunOptions {
  /** Interface name (at most 15 bytes); omitted: the kernel picks tunN. */
  name?: string;
  mtu: number;
  /** Addresses in CIDR form (10.99.0.1/24, fd00::1/64) assigned to the device. */
  addresses?: string[];
  /** Bring the link up (default true). */
  up?: boolean;
  /** Most packets handed to onPackets per wake-up (default 64). */
  batchSize?: number;
}

const MAX_BATCH = 1024;

/** Errors of opening or driving a TUN, with advice for the usual causes. */
export class TunError extends StyxError {
  readonly errno: string | undefined;
  constructor(code: string, message: string, errno?: string) {
    super(code, message);
    this.errno = errno;
  }
}

interface SystemError extends Error { code?: string; syscall?: string }

function sysCode(e: unknown): string | undefined {
  return e instanceof Error ? (e as SystemError).code : undefined;
}

/** Turns an addon error from open()/TUNSETIFF into one that says what to do. */
export function explainOpenError(e: unknown, name: string): TunError {
  const code = sysCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  const dev = name ? `TUN device ${name}` : 'a TUN device';
  switch (code) {
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return new TunError('ERR_TUN_MISSING',
        `cannot open ${dev}: /dev/net/tun is missing (${msg}). Load the tun module ` +
        '(modprobe tun), or give the container the device (e.g. --device /dev/net/tun)', code);
    case 'EPERM':
    case 'EACCES':
      return new TunError('ERR_TUN_PERMISSION',
        `cannot open ${dev}: not permitted (${msg}). Creating a TUN needs CAP_NET_ADMIN: ` +
        'run styxd as root or grant it cap_net_admin', code);
    case 'EBUSY':
      return new TunError('ERR_TUN_BUSY', `cannot open ${dev}: it exists and is in use by another process (${msg})`, code);
    case 'EINVAL':
      return new TunError('ERR_TUN_INVALID',
        `cannot open ${dev}: an interface of that name exists and is not a TUN without packet info (${msg})`, code);
    default:
      return new TunError('ERR_TUN_OPEN', `cannot open ${dev}: ${msg}`, code);
  }
}

/** Parses "addr/len"; throws a TunError naming the bad value. */
export function parseCidr(cidr: string): { address: string; prefix: number; family: 4 | 6 } {
  const slash = cidr.lastIndexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(address);
  if (family !== 4 && family !== 6) throw new TunError('ERR_TUN_CIDR', `not an IP address in CIDR form: ${JSON.stringify(cidr)}`);
  const max = family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : cidr.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw new TunError('ERR_TUN_CIDR', `bad prefix length in ${JSON.stringify(cidr)}`);
  return { address, prefix, family };
}

/** Runs `ip ARGS`; rejects with a TunError carrying ip's own complaint. */
export function runIp(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      if (sysCode(err) === 'ENOENT') {
        return reject(new TunError('ERR_TUN_IP', 'the `ip` command (iproute2) is not installed; styx uses it to set TUN addresses and routes', 'ENOENT'));
      }
      const why = String(stderr).trim() || err.message;
      reject(new TunError('ERR_TUN_IP', `ip ${args.join(' ')}: ${why}`));
    });
  });
}

function checkMtu(mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new TunError('ERR_TUN_MTU', `TUN MTU must be an integer from 68 to 65535, not ${mtu}`);
  }
}

export class LinuxTun implements TunDevice, TunErrorSource {
  readonly name: string;
  readonly mtu: number;
  readonly batchSize: number;
  /** Packets read, packets written, read wake-ups (rxPackets / rxBatches = mean batch). */
  readonly stats = { rxPackets: 0, txPackets: 0, rxBatches: 0 };

  private fd: number;
  private readonly addon: TunAddon;
  /** Read slots are MTU-sized: the kernel never hands a TUN without offloads a larger packet. */
  private readonly slot: number;
  private arena: Buffer | null = null;
  private lens: Uint32Array | null = null;
  private poller: NativePoller | null = null;
  private consumer: ((pkts: Buffer[]) => void) | null = null;
  private errorCb: ((err: Error) => void) | null = null;
  private referenced = true;
  private closed = false;

  /** Use openTun(); this takes an fd the addon opened. */
  constructor(addon: TunAddon, fd: number, name: string, mtu: number, batchSize: number) {
    this.addon = addon;
    this.fd = fd;
    this.name = name;
    this.mtu = mtu;
    this.batchSize = batchSize;
    this.slot = Math.ceil(mtu / 64) * 64;
  }

  onPackets(cb: (pkts: Buffer[]) => void): void {
    this.consumer = cb;
    if (this.poller || this.closed) return;
    this.arena ??= Buffer.allocUnsafeSlow(this.slot * this.batchSize);
    this.lens ??= new Uint32Array(this.batchSize);
    this.poller = this.addon.pollStart(this.fd, this.arena, this.lens, this.slot, this.batchSize, this.onBatch);
    if (!this.referenced) this.addon.pollRef(this.poller, false);
  }

  /** Read failures (device deleted under us, fd error); without a callback they are thrown. */
  onError(cb: (err: Error) => void): void {
    this.errorCb = cb;
  }

  private readonly onBatch = (n: number, err: number): void => {
    if (err < 0) return this.readFailed(err);
    const arena = this.arena;
    const lens = this.lens;
    const consumer = this.consumer;
    if (!arena || !lens || !consumer) return;
    const slot = this.slot;
    const pkts = new Array<Buffer>(n);
    for (let i = 0; i < n; i++) {
      const off = i * slot;
      pkts[i] = arena.subarray(off, off + lens[i]!);
    }
    this.stats.rxPackets += n;
    this.stats.rxBatches++;
    consumer(pkts);
  };

  private readFailed(err: number): void {
    this.stopReading();
    const e = new TunError('ERR_TUN_READ', `reading TUN ${this.name} failed (errno ${-err}); no more packets will be read`);
    if (this.errorCb) this.errorCb(e);
    else throw e;
  }

  write(pkts: readonly Buffer[]): number {
    if (this.closed) throw new TunError('ERR_TUN_CLOSED', `TUN ${this.name} is closed`);
    if (pkts.length === 0) return 0;
    let n: number;
    try {
      n = this.addon.write(this.fd, pkts);
    } catch (e) {
      throw new TunError('ERR_TUN_WRITE', `writing TUN ${this.name} failed: ${(e as Error).message}`, sysCode(e));
    }
    this.stats.txPackets += n;
    return n;
  }

  /**
   * Whether a reading TUN by itself keeps the event loop (and the process)
   * alive, as a listening socket does; unref() lets tests and tools end once
   * everything else is done.
   */
  ref(): void { this.setRef(true); }
  unref(): void { this.setRef(false); }
  private setRef(ref: boolean): void {
    this.referenced = ref;
    if (this.poller) this.addon.pollRef(this.poller, ref);
  }

  /** Adds an address in CIDR form to the device. */
  addAddress(cidr: string): Promise<void> {
    const c = parseCidr(cidr);
    return runIp([`-${c.family}`, 'addr', 'add', `${c.address}/${c.prefix}`, 'dev', this.name]);
  }

  delAddress(cidr: string): Promise<void> {
    const c = parseCidr(cidr);
    return runIp([`-${c.family}`, 'addr', 'del', `${c.address}/${c.prefix}`, 'dev', this.name]);
  }

  /**
   * Routes a remote traffic selector's network through this device.
   * `replace` makes a repeated add (rekey, re-established SA) succeed.
   */
  addRoute(cidr: string, opts: { metric?: number; table?: number | string; src?: string } = {}): Promise<void> {
    const c = parseCidr(cidr);
    return runIp([`-${c.family}`, 'route', 'replace', `${c.address}/${c.prefix}`, 'dev', this.name, ...routeExtras(opts)]);
  }

  /** Removes such a route; a route already gone is not an error. */
  async delRoute(cidr: string, opts: { metric?: number; table?: number | string } = {}): Promise<void> {
    const c = parseCidr(cidr);
    try {
      await runIp([`-${c.family}`, 'route', 'del', `${c.address}/${c.prefix}`, 'dev', this.name, ...routeExtras(opts)]);
    } catch (e) {
      // iproute2 reports a missing route as ESRCH ("No such process").
      if (e instanceof TunError && /No such process|Cannot find device/.test(e.message)) return;
      throw e;
    }
  }

  private stopReading(): void {
    if (!this.poller) return;
    this.addon.pollStop(this.poller);
    this.poller = null;
  }

  /** Stops the reader and closes the fd; the kernel then deletes the interface and its routes. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    // The poller must let go of the fd before it is closed (libuv's rule for uv_poll).
    this.stopReading();
    const fd = this.fd;
    this.fd = -1;
    try {
      this.addon.close(fd);
    } catch (e) {
      return Promise.reject(new TunError('ERR_TUN_CLOSE', `closing TUN ${this.name}: ${(e as Error).message}`, sysCode(e)));
    }
    return Promise.resolve();
  }
}

function routeExtras(opts: { metric?: number; table?: number | string; src?: string }): string[] {
  const out: string[] = [];
  // A preferred source inside the local selector, so locally sent packets match the policy.
  if (opts.src !== undefined) out.push('src', opts.src);
  if (opts.metric !== undefined) out.push('metric', String(opts.metric));
  if (opts.table !== undefined) out.push('table', String(opts.table));
  return out;
}

/**
 * Opens a TUN (IFF_TUN | IFF_NO_PI, non-blocking), sets its MTU, adds the
 * addresses and brings it up. The interface lives as long as the device: it
 * is not persistent, so a crashed styxd leaves no interface behind.
 */
export async function openTun(opts: OpenTunOptions): Promise<LinuxTun> {
  checkMtu(opts.mtu);
  const batch = opts.batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH) {
    throw new TunError('ERR_TUN_BATCH', `batchSize must be an integer from 1 to ${MAX_BATCH}, not ${batch}`);
  }
  const wanted = opts.name ?? '';
  if (Buffer.byteLength(wanted) > 15 || /[\s/:]/.test(wanted)) {
    throw new TunError('ERR_TUN_NAME', `bad interface name ${JSON.stringify(wanted)}: at most 15 bytes, no spaces, '/' or ':'`);
  }
  const addresses = (opts.addresses ?? []).map((a) => ({ text: a, ...parseCidr(a) }));
  const addon = loadAddon();

  let fd: number;
  let name: string;
  try {
    [fd, name] = addon.open(wanted, false);
  } catch (e) {
    throw explainOpenError(e, wanted);
  }
  const tun = new LinuxTun(addon, fd, name, opts.mtu, batch);
  try {
    try {
      addon.setMtu(name, opts.mtu);
    } catch (e) {
      throw new TunError('ERR_TUN_MTU', `setting MTU ${opts.mtu} on ${name}: ${(e as Error).message}`, sysCode(e));
    }
    for (const a of addresses) await tun.addAddress(`${a.address}/${a.prefix}`);
    if (opts.up ?? true) {
      try {
        addon.setUp(name, true);
      } catch (e) {
        throw new TunError('ERR_TUN_UP', `bringing ${name} up: ${(e as Error).message}`, sysCode(e));
      }
    }
  } catch (e) {
    await tun.close().catch(() => undefined);
    throw e;
  }
  return tun;
}
