/**
 * Soak: N tunnels between two styxd, rekeying for a while, with SA counts
 * and memory at the start and at the end. Not a test: it prints numbers and
 * asserts nothing (it exits 1 only when it cannot run at all).
 *
 *   npm run soak                                   (100 tunnels, 5 minutes)
 *   node dist/bench/soak.js --tunnels=100 --duration=120 --child-rekey=20 --ike-rekey=60 --sample=30
 *
 * Two namespaces joined by a veth (scripts/lib/netns.sh), one styxd in each
 * with the memory data plane: the left one has N connections that start at
 * once, the right one the N matching connections as responder. Connection n
 * has its own identities and the CHILD_SA 10.1.n.0/24 <-> 10.2.n.0/24 (the
 * second octet grows past 250 tunnels). Both sides have the same rekey
 * times, so both start rekeys (with styx's 10% jitter deciding who is first).
 *
 * At the end every tunnel is terminated and, 3 s later (past the 2 s an
 * old inbound SA lingers), both daemons are read once more: the data plane
 * and the SA tables should then be empty, and the heap back near its start.
 *
 * Memory: VmRSS and VmHWM from /proc/PID/status, and the JS heap after a
 * full GC, which each styxd reports on SIGUSR2 through a preloaded hook
 * (NODE_OPTIONS=--expose-gc --require; styx itself has no such command).
 * Root is needed for the namespaces.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IkeSaInfo } from '../src/control/protocol.js';
import { sleep, waitFor } from '../test/interop/lib/exec.js';
import { startStyxd, type StyxdHandle } from '../test/interop/lib/styxd.js';
import { createTopology, type Topology } from '../test/interop/lib/topology.js';

interface Options { tunnels: number; duration: number; childRekey: number; ikeRekey: number; sample: number; keep: boolean }

function options(argv: string[]): Options {
  const o: Options = { tunnels: 100, duration: 300, childRekey: 20, ikeRekey: 60, sample: 30, keep: false };
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}`);
    const [, k, v] = m as unknown as [string, string, string | undefined];
    if (k === 'keep') { o.keep = true; continue; }
    const n = v === undefined ? NaN : durationOrNumber(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k} needs a positive number, got ${v ?? 'nothing'}`);
    switch (k) {
      case 'tunnels': o.tunnels = Math.floor(n); break;
      case 'duration': o.duration = n; break;
      case 'child-rekey': o.childRekey = n; break;
      case 'ike-rekey': o.ikeRekey = n; break;
      case 'sample': o.sample = n; break;
      default: throw new Error(`unknown option --${k}`);
    }
  }
  if (o.tunnels > 250 * 60) throw new Error('at most 15000 tunnels (address plan)');
  return o;
}

/** 90, 90s, 5m, 1h. */
function durationOrNumber(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(v);
  if (!m) return NaN;
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'] ?? 1);
}

/** Tunnel n's two inner prefixes: 10.1.n.0/24 and 10.2.n.0/24 for n < 250, then 10.3/10.4 and so on. */
function nets(n: number): [string, string] {
  const hi = Math.floor(n / 250), lo = n % 250 + 1;
  return [`10.${1 + 2 * hi}.${lo}.0/24`, `10.${2 + 2 * hi}.${lo}.0/24`];
}

const PSK = 'styx soak psk, not a secret';

function yaml(t: Topology, o: Options, side: 'left' | 'right'): string {
  const me = side === 'left' ? t.left : t.right, peer = side === 'left' ? t.right : t.left;
  const lines = [
    'daemon:',
    `  listen: [${me.outer4}]`,
    '  dataplane: memory',
    // Every initiation of the left side lands at once; cookies would only add round trips here.
    `  cookie_threshold: ${o.tunnels + 10}`,
    '  log: { default: info }',
    'connections:',
  ];
  for (let n = 0; n < o.tunnels; n++) {
    const [l, r] = nets(n);
    const [mine, theirs] = side === 'left' ? [l, r] : [r, l];
    lines.push(
      `  t${n}:`,
      `    local_addrs: [${me.outer4}]`,
      `    remote_addrs: [${peer.outer4}]`,
      '    proposals: [aes128-sha256-x25519]',
      `    local: { auth: psk, id: "${side}-${n}@soak.styx" }`,
      `    remote: { auth: psk, id: "${side === 'left' ? 'right' : 'left'}-${n}@soak.styx" }`,
      `    start_action: ${side === 'left' ? 'start' : 'none'}`,
      `    rekey_time: ${o.ikeRekey}s`,
      // Room for a rekey that waits out a TEMPORARY_FAILURE or two before the hard expiry.
      `    lifetime: ${Math.round(o.ikeRekey * 2)}s`,
      '    children:',
      '      net:',
      `        local_ts: [${mine}]`,
      `        remote_ts: [${theirs}]`,
      '        esp_proposals: [aes128gcm16]',
      `        start_action: ${side === 'left' ? 'start' : 'none'}`,
      `        rekey_time: ${o.childRekey}s`,
      `        lifetime: ${Math.round(o.childRekey * 2)}s`,
    );
  }
  lines.push('secrets:', `  - psk: "${PSK}"`, '');
  return lines.join('\n');
}

/** Runs inside each styxd: on SIGUSR2, a full GC and then process.memoryUsage() into a file. */
const MEM_HOOK = `'use strict';
const fs = require('node:fs');
const file = process.env.STYX_SOAK_MEMFILE;
if (file) process.on('SIGUSR2', () => {
  if (typeof global.gc === 'function') global.gc();
  fs.writeFileSync(file + '.tmp', JSON.stringify({ at: Date.now(), ...process.memoryUsage() }));
  fs.renameSync(file + '.tmp', file);
});
`;

interface Mem { rssKiB: number; hwmKiB: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number }

function procStatus(pid: number): { rssKiB: number; hwmKiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
}

async function memory(d: StyxdHandle, memFile: string): Promise<Mem> {
  const before = Date.now();
  process.kill(d.pid, 'SIGUSR2');
  const heap = await waitFor('styxd heap report', 10_000, () => {
    try {
      const v = JSON.parse(readFileSync(memFile, 'utf8')) as { at: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
      return v.at >= before ? v : undefined;
    } catch { return undefined; }
  }, 50);
  return { ...procStatus(d.pid), heapUsed: heap.heapUsed, heapTotal: heap.heapTotal, external: heap.external, arrayBuffers: heap.arrayBuffers };
}

interface Sample {
  t: number;
  ike: number; ikeUp: number; children: number; childrenInstalled: number;
  /** Connections with exactly one established IKE SA carrying one installed CHILD_SA. */
  healthy: number;
  mem: Mem;
  stats: Record<string, number>;
}

function tally(sas: IkeSaInfo[], tunnels: number): Omit<Sample, 't' | 'mem' | 'stats'> {
  const per = new Map<string, IkeSaInfo[]>();
  for (const s of sas) per.set(s.name, [...(per.get(s.name) ?? []), s]);
  let healthy = 0;
  for (let n = 0; n < tunnels; n++) {
    const l = per.get(`t${n}`) ?? [];
    if (l.length === 1 && l[0]!.state === 'ESTABLISHED' && l[0]!.children.length === 1 && l[0]!.children[0]!.state === 'INSTALLED') healthy++;
  }
  const kids = sas.flatMap((s) => s.children);
  return {
    ike: sas.length, ikeUp: sas.filter((s) => s.state === 'ESTABLISHED').length,
    children: kids.length, childrenInstalled: kids.filter((c) => c.state === 'INSTALLED').length, healthy,
  };
}

async function sample(d: StyxdHandle, memFile: string, t0: number, tunnels: number): Promise<Sample> {
  const [sas, statsText, mem] = await Promise.all([d.listJson(), d.styx(['stats', '--json']), memory(d, memFile)]);
  return { t: (Date.now() - t0) / 1000, ...tally(sas, tunnels), mem, stats: JSON.parse(statsText) as Record<string, number> };
}

/** What the log says happened, counted by kind of line. */
function logCounts(text: string): Record<string, number> {
  const c = (re: RegExp): number => (text.match(re) ?? []).length;
  return {
    'CHILD_SA rekeys started': c(/: rekeying CHILD_SA /g),
    'CHILD_SA rekeys answered': c(/ rekeyed by peer into /g),
    'IKE SA rekeys started': c(/: rekeying IKE SA, new SPI /g),
    'IKE SA rekeys done': c(/: IKE SA rekeyed into /g),
    'CHILD_SA collisions': c(/: CHILD_SA rekey collision on /g),
    'IKE SA collisions': c(/: IKE rekey collision: /g),
    'TEMPORARY_FAILURE': c(/TEMPORARY_FAILURE/g),
    'lifetime expiries': c(/reached its lifetime/g),
    'retransmits': c(/: retransmit \d+ of /g),
    'WARN lines': c(/^\S+ WARN /gm),
    'ERROR lines': c(/^\S+ ERROR /gm),
  };
}

const mib = (kib: number): string => (kib / 1024).toFixed(1);
const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')).join('\n');
}

function sampleRow(side: string, s: Sample): string[] {
  return [side, s.t.toFixed(0), String(s.ike), String(s.ikeUp), String(s.children), String(s.childrenInstalled), String(s.healthy),
    String(s.stats['dataplane.sas'] ?? '-'), String(s.stats['dataplane.policies'] ?? '-'),
    mib(s.mem.rssKiB), mib(s.mem.hwmKiB), mb(s.mem.heapUsed), mb(s.mem.heapTotal), mb(s.mem.external)];
}
/** dp SAs/policies: what the data plane holds; two per CHILD_SA, plus replaced inbound SAs lingering 2 s. */
const SAMPLE_HEAD = ['side', 't/s', 'IKE SAs', 'estab.', 'CHILD_SAs', 'installed', 'healthy', 'dp SAs', 'dp pol.', 'RSS MiB', 'HWM MiB', 'heap MiB', 'heapTot MiB', 'ext MiB'];

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces)');
  console.log(`soak: ${o.tunnels} tunnels, ${o.duration} s, CHILD_SA rekey ${o.childRekey} s, IKE SA rekey ${o.ikeRekey} s, both sides; sample every ${o.sample} s`);
  const topo = await createTopology('soak');
  const daemons: StyxdHandle[] = [];
  try {
    const hook = join(topo.dir('hook'), 'mem-hook.cjs');
    writeFileSync(hook, MEM_HOOK);
    const start = async (side: 'left' | 'right'): Promise<{ d: StyxdHandle; memFile: string }> => {
      const dir = topo.dir(`styxd-${side}`);
      const conf = join(dir, 'styx.yaml');
      writeFileSync(conf, yaml(topo, o, side));
      const memFile = join(dir, 'mem.json');
      const d = await startStyxd(topo[side].ns, conf, {
        dir, env: { NODE_OPTIONS: `--expose-gc --require ${hook}`, STYX_SOAK_MEMFILE: memFile }, startTimeoutMs: 60_000,
      });
      daemons.push(d);
      return { d, memFile };
    };
    // The responder first, so the initiator's first IKE_SA_INIT finds it.
    const right = await start('right');
    const setupAt = Date.now();
    const left = await start('left');
    const sides = [['left', left], ['right', right]] as const;

    await waitFor(`all ${o.tunnels} tunnels up on both sides`, Math.max(120_000, o.tunnels * 1000), async () => {
      const [a, b] = await Promise.all([left.d.listJson(), right.d.listJson()]);
      return tally(a, o.tunnels).healthy === o.tunnels && tally(b, o.tunnels).healthy === o.tunnels ? true : undefined;
    }, 500);
    console.log(`all ${o.tunnels} tunnels up after ${((Date.now() - setupAt) / 1000).toFixed(1)} s`);

    const t0 = Date.now();
    const marks = sides.map(([, s]) => s.d.logMark());
    const series: [string, Sample][] = [];
    const take = async (): Promise<Sample[]> => {
      const got = await Promise.all(sides.map(([, s]) => sample(s.d, s.memFile, t0, o.tunnels)));
      got.forEach((g, i) => series.push([sides[i]![0], g]));
      console.log(table([SAMPLE_HEAD, ...got.map((g, i) => sampleRow(sides[i]![0], g))]).split('\n').slice(series.length > 2 ? 1 : 0).join('\n'));
      return got;
    };
    const first = await take();
    const end = t0 + o.duration * 1000;
    while (Date.now() < end) {
      await sleep(Math.min(o.sample * 1000, end - Date.now()));
      for (const [, s] of sides) if (!s.d.running()) throw new Error(`styxd ${s.d.ns} exited; see ${s.d.logPath}`);
      await take();
    }
    const last = series.slice(-2).map(([, s]) => s);

    // With every tunnel terminated and the lingering inbound SAs gone, whatever
    // the data plane or the SA tables still hold was leaked on the way.
    const logAtEnd = sides.map(([, s]) => s.d.logMark());
    for (let n = 0; n < o.tunnels; n += 10) {
      await Promise.all(Array.from({ length: Math.min(10, o.tunnels - n) }, (_, i) => left.d.styxRun(['terminate', `t${n + i}`])));
    }
    await waitFor('both sides to list no SA', 60_000, async () => {
      const [a, b] = await Promise.all([left.d.listJson(), right.d.listJson()]);
      return a.length === 0 && b.length === 0 ? true : undefined;
    }, 500);
    await sleep(3000);
    const after = await Promise.all(sides.map(([, s]) => sample(s.d, s.memFile, t0, o.tunnels)));

    console.log('\nstart, end, and after terminating every tunnel (3 s later)');
    const rows: string[][] = [['', 'left start', 'left end', 'left after', 'right start', 'right end', 'right after']];
    const both = (f: (s: Sample) => string): string[] => [f(first[0]!), f(last[0]!), f(after[0]!), f(first[1]!), f(last[1]!), f(after[1]!)];
    rows.push(['seconds', ...both((s) => s.t.toFixed(0))]);
    rows.push(['IKE SAs (established)', ...both((s) => `${s.ike} (${s.ikeUp})`)]);
    rows.push(['CHILD_SAs (installed)', ...both((s) => `${s.children} (${s.childrenInstalled})`)]);
    rows.push(['healthy tunnels', ...both((s) => String(s.healthy))]);
    rows.push(['VmRSS MiB', ...both((s) => mib(s.mem.rssKiB))]);
    rows.push(['VmHWM MiB', ...both((s) => mib(s.mem.hwmKiB))]);
    rows.push(['heap used after GC MiB', ...both((s) => mb(s.mem.heapUsed))]);
    rows.push(['heap total MiB', ...both((s) => mb(s.mem.heapTotal))]);
    rows.push(['external MiB', ...both((s) => mb(s.mem.external))]);
    const statKeys = [...new Set([...Object.keys(first[0]!.stats), ...Object.keys(first[1]!.stats)])].sort();
    // Counters that stayed 0 on both sides (IKEv1, NAT, ESP with the memory data plane) are left out.
    for (const k of statKeys) {
      if ([first[0]!, last[0]!, after[0]!, first[1]!, last[1]!, after[1]!].every((s) => !s.stats[k])) continue;
      rows.push([`stats ${k}`, ...both((s) => String(s.stats[k] ?? '-'))]);
    }
    console.log(table(rows));

    console.log(`\nlog lines over the ${o.duration} s`);
    const counts = sides.map(([, s], i) => logCounts(Buffer.from(s.d.logText()).subarray(marks[i], logAtEnd[i]).toString('utf8')));
    console.log(table([['', 'left', 'right'], ...Object.keys(counts[0]!).map((k) => [k, String(counts[0]![k]), String(counts[1]![k])])]));
    const sum = (k: string): number => counts.reduce((n, c) => n + c[k]!, 0);
    console.log(`\nrekeys started by either side: ${sum('CHILD_SA rekeys started')} of CHILD_SAs (${(sum('CHILD_SA rekeys started') / o.tunnels).toFixed(1)} per tunnel), `
      + `${sum('IKE SA rekeys started')} of IKE SAs (${(sum('IKE SA rekeys started') / o.tunnels).toFixed(1)} per tunnel) in ${o.duration} s`);
    const warns = sides.map(([name, s], i) => Buffer.from(s.d.logText()).subarray(marks[i], logAtEnd[i]).toString('utf8')
      .split('\n').filter((l) => / (WARN|ERROR) /.test(l)).slice(0, 5).map((l) => `  ${name}: ${l}`)).flat();
    if (warns.length) console.log(`first warnings and errors:\n${warns.join('\n')}`);
    if (o.keep) console.log(`logs kept in ${join(topo.dir('.'))}`);
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    if (o.keep) process.env.STYX_KEEP_LOGS = '1';
    await topo.teardown();
  }
}

main().catch((e: unknown) => {
  console.error(`soak: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
