/**
 * TUN throughput of styx's Linux TUN (the styx_tun addon): packets/s read and
 * written at 64 and 1400 bytes. Not a test: it prints figures.
 *
 *   node dist/bench/tun.js [--sizes 64,1400] [--packets 200000] [--runs 3]
 *
 * Needs root: it re-runs itself in a fresh network namespace (unshare --net)
 * so no host interface or route is touched.
 *
 * write (local): UDP packets to a local address where nothing listens, 64
 *   per write() call; the figure includes the kernel's own receive path,
 *   which is most of the cost.
 * write (forward): the same into a TUN whose packets the kernel forwards to
 *   another TUN (a gateway's path); timed while filling the read test.
 * read: packets written into a second TUN are forwarded by the kernel into
 *   the measured TUN's queue while nobody reads it; then reading starts and
 *   the drain is timed, so the generator does not compete for the CPU.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openTun, type LinuxTun } from '../src/tun/index.js';

const NS_FLAG = 'STYX_BENCH_TUN_NETNS';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

function ipv4Udp(src: number[], dst: number[], sport: number, total: number): Buffer {
  const b = Buffer.alloc(total);
  b[0] = 0x45;
  b.writeUInt16BE(total, 2);
  b[8] = 64;
  b[9] = 17;
  Buffer.from(src).copy(b, 12);
  Buffer.from(dst).copy(b, 16);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += b.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  b.writeUInt16BE(~s & 0xffff, 10);
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(9, 22);
  b.writeUInt16BE(total - 20, 24);
  return b;
}

interface Figure { pps: number; cpu: number; batch?: number }

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function cpuShare(c: NodeJS.CpuUsage, seconds: number): number {
  return (c.user + c.system) / 1e6 / seconds;
}

async function benchWrite(size: number, packets: number): Promise<Figure> {
  const tun = await openTun({ name: 'styxbw0', mtu: 1500, addresses: ['10.99.1.1/24'] });
  try {
    const batch = Array.from({ length: 64 }, (_, i) => ipv4Udp([10, 99, 1, 2], [10, 99, 1, 1], 40000 + i, size));
    tun.write(batch); // warm-up
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    let done = 0;
    while (done < packets) {
      const n = tun.write(batch);
      if (n === 0) throw new Error('the kernel took no packets');
      done += n;
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    return { pps: done / s, cpu: cpuShare(process.cpuUsage(c0), s) };
  } finally {
    await tun.close();
  }
}

/** The read figure, and the write figure of the fill (packets the kernel forwards instead of delivering). */
async function benchRead(size: number, packets: number): Promise<{ read: Figure; fwd: Figure }> {
  const src = await openTun({ name: 'styxbs0', mtu: 1500, addresses: ['10.99.1.1/24'] });
  const dst: LinuxTun = await openTun({ name: 'styxbr0', mtu: 1500, addresses: ['10.99.2.1/24'] });
  try {
    // Room for the whole burst in the reader's queue (the default is 500).
    ip('link', 'set', 'dev', dst.name, 'txqueuelen', String(packets + 1000));
    const batch = Array.from({ length: 64 }, (_, i) => ipv4Udp([10, 99, 1, 2], [10, 99, 2, 2], 40000 + i, size));
    let queued = 0;
    const f0 = process.hrtime.bigint();
    const fc = process.cpuUsage();
    while (queued < packets) queued += src.write(packets - queued >= 64 ? batch : batch.slice(0, packets - queued));
    const fs = Number(process.hrtime.bigint() - f0) / 1e9;
    const fwd: Figure = { pps: queued / fs, cpu: cpuShare(process.cpuUsage(fc), fs) };

    const read = await new Promise<Figure>((resolve, reject) => {
      let got = 0;
      let t0 = 0n;
      let c0 = process.cpuUsage();
      let last = 0n;
      let idle: NodeJS.Timeout | undefined;
      const finish = (): void => {
        clearInterval(idle);
        if (got === 0) return reject(new Error('nothing was forwarded into the reading TUN'));
        const s = Number(last - t0) / 1e9;
        resolve({ pps: got / s, cpu: cpuShare(process.cpuUsage(c0), s), batch: got / dst.stats.rxBatches });
      };
      t0 = process.hrtime.bigint();
      c0 = process.cpuUsage();
      dst.onPackets((pkts) => {
        got += pkts.length;
        last = process.hrtime.bigint();
        if (got >= packets) finish();
      });
      // Some packets may have been dropped on the way: stop after 200 ms of quiet.
      idle = setInterval(() => {
        if (process.hrtime.bigint() - (last || t0) > 200_000_000n) finish();
      }, 50);
    });
    return { read, fwd };
  } finally {
    await dst.close();
    await src.close();
  }
}

async function main(): Promise<void> {
  const sizes = arg('sizes', '64,1400').split(',').map(Number);
  const packets = Number(arg('packets', '200000'));
  const runs = Number(arg('runs', '3'));
  ip('link', 'set', 'lo', 'up');
  execFileSync('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);

  console.log(`styx TUN bench: styx_tun addon (uv_poll, batches of 64), ${packets} packets per run, median of ${runs}`);
  for (const size of sizes) {
    const w: Figure[] = [];
    const r: Figure[] = [];
    const f: Figure[] = [];
    for (let i = 0; i < runs; i++) {
      w.push(await benchWrite(size, packets));
      const rf = await benchRead(size, packets);
      r.push(rf.read);
      f.push(rf.fwd);
    }
    for (const [what, figs] of [['read           ', r], ['write (local)  ', w], ['write (forward)', f]] as const) {
      const pps = median(figs.map((f) => f.pps));
      const gbit = (pps * size * 8) / 1e9;
      const cpu = median(figs.map((f) => f.cpu));
      const batch = figs[0]?.batch !== undefined ? `, ${median(figs.map((f) => f.batch ?? 0)).toFixed(1)} pkt/wake-up` : '';
      // CPU time per packet varies far less than wall-clock rates on a shared machine.
      const usPerPkt = median(figs.map((f) => (f.cpu / f.pps) * 1e6));
      console.log(`  ${what} ${String(size).padStart(4)} B: ${(pps / 1e3).toFixed(0).padStart(5)}k pkt/s  ${gbit.toFixed(2).padStart(5)} Gbit/s  ` +
        `cpu ${(cpu * 100).toFixed(0)}% = ${usPerPkt.toFixed(2)} us/pkt${batch}  (runs: ${figs.map((f) => (f.pps / 1e3).toFixed(0) + 'k').join(' ')})`);
    }
  }
}

if (process.env[NS_FLAG] === '1') {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
} else {
  if (process.getuid?.() !== 0) {
    console.error('bench/tun needs root: it opens TUN devices in a network namespace of its own');
    process.exit(1);
  }
  const r = spawnSync('unshare', ['--net', process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [NS_FLAG]: '1' },
  });
  process.exit(r.status ?? 1);
}
