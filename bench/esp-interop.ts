/**
 * Throughput of styx's userspace ESP data plane against strongSwan, end to
 * end through two network namespaces. Not a test: it prints figures.
 *
 *   npm run bench:esp
 *   BENCH_IPERF_SECONDS=10 BENCH_ROUNDS=3 BENCH_ESP=aes128gcm16,chacha20poly1305 BENCH_PROFILE=0 node dist/bench/esp-interop.js
 *
 * For each ESP transform (aes128gcm16 unless BENCH_ESP says otherwise), one
 * iperf3 TCP stream (BENCH_IPERF_SECONDS, 10 s) each way between 10.1.0.1 and
 * 10.2.0.1:
 *   (a) styxd (dataplane: userspace) left  <->  charon (kernel-libipsec) right
 *   (b) charon (kernel-libipsec) left      <->  charon (kernel-libipsec) right
 * and their ratio. The machine is shared, so BENCH_ROUNDS (3) rounds alternate
 * (a) and (b) and the medians are compared. Each transfer prints what each
 * side spent: daemon CPU (from /proc), ESP packets sent by one SA and
 * received by its peer (the difference was lost on the way), UDP
 * receive-buffer drops and TUN drops per namespace.
 *
 * Then, unless BENCH_PROFILE=0, styxd runs once more per direction under
 * `node --cpu-prof` and the functions with the most self time are listed,
 * grouped by stage. Last, bench/esp-engine.js (the engine on its own, no
 * sockets, no TUN) prints its packets per CPU-second; BENCH_ENGINE=0 skips it.
 *
 * Needs root, strongSwan with kernel-libipsec, iperf3, and a built tree.
 * Everything runs on this machine's cores at once (iperf3 at both ends and
 * both daemons), so the figures say how the two data planes compare here,
 * not what either does on a machine of its own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createTopology, missingPrerequisites, pskSwanctlConf, repoRoot, run, startCharon, startStyxd, waitFor,
  type CharonHandle, type IkeSaInfo, type RunResult, type StyxdHandle, type Topology,
} from '../test/interop/harness.js';
import { iperfTcp, type IperfResult } from '../test/interop/lib/iperf.js';

const SECONDS = Number(process.env['BENCH_IPERF_SECONDS'] ?? '10');
const PROFILE_SECONDS = Number(process.env['BENCH_PROFILE_SECONDS'] ?? '5');
const ESPS = (process.env['BENCH_ESP'] ?? 'aes128gcm16').split(',').map((s) => s.trim()).filter(Boolean);
const PROFILE = process.env['BENCH_PROFILE'] !== '0';
/** The machine is shared: rounds alternate (a) and (b), and the medians are compared. */
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? '3');
const ENGINE = process.env['BENCH_ENGINE'] !== '0';
const IKE = 'aes128-sha256-x25519';
const PSK = 'styx bench psk, not a secret';
const CHILD = 'net';
const CLK_TCK = 100;

// ------------------------------------------------------------------ peers

/** One side of the tunnel, whichever daemon runs it. */
interface Peer {
  kind: 'styx' | 'charon';
  ns: string;
  pid: number;
  /** ESP packets and octets the CHILD_SA has carried, as this daemon counts them. */
  esp(): Promise<{ pktsIn: number; pktsOut: number }>;
  tun: string;
  stop(): Promise<void>;
}

function styxYaml(t: Topology, esp: string): string {
  const { left, right } = t;
  return `daemon:
  listen: [${left.outer4}]
  dataplane: userspace
  log: { default: warn }
connections:
  bench:
    version: 2
    local_addrs: [${left.outer4}]
    remote_addrs: [${right.outer4}]
    proposals: [${IKE}]
    local: { auth: psk, id: ${left.outer4} }
    remote: { auth: psk, id: ${right.outer4} }
    start_action: none
    children:
      ${CHILD}:
        local_ts: [${left.innerNet4}]
        remote_ts: [${right.innerNet4}]
        esp_proposals: [${esp}]
        start_action: none
secrets:
  - ids: [${left.outer4}, ${right.outer4}]
    psk: "${PSK}"
`;
}

/** charon at its quietest: per-packet logging would measure the log, not ESP. */
const QUIET = { default: 0, ike: 0, chd: 0, cfg: 0, net: 0, enc: 0, esp: 0, knl: 0 };

async function charonPeer(t: Topology, side: 'left' | 'right', esp: string): Promise<{ peer: Peer; handle: CharonHandle }> {
  const me = t[side], other = t[side === 'left' ? 'right' : 'left'];
  const handle = await startCharon(me.ns, t.dir(`charon-${side}`), {
    swanctl: pskSwanctlConf({
      name: 'bench', child: CHILD, localAddr: me.outer4, remoteAddr: other.outer4,
      localTs: me.innerNet4, remoteTs: other.innerNet4, psk: PSK, proposals: IKE, espProposals: esp, encap: true,
    }),
    logLevels: QUIET,
  });
  return {
    handle,
    peer: {
      kind: 'charon', ns: me.ns, pid: handle.pid, tun: 'ipsec0', stop: () => handle.stop(),
      async esp() {
        const c = (await handle.listSas())[0]?.children[0];
        return { pktsIn: c?.packetsIn ?? 0, pktsOut: c?.packetsOut ?? 0 };
      },
    },
  };
}

async function styxPeer(t: Topology, esp: string): Promise<{ peer: Peer; handle: StyxdHandle }> {
  const dir = t.dir('styxd-left');
  const conf = join(dir, 'styx.yaml');
  writeFileSync(conf, styxYaml(t, esp));
  const handle = await startStyxd(t.left.ns, conf, { dir });
  return {
    handle,
    peer: {
      kind: 'styx', ns: t.left.ns, pid: handle.pid, tun: 'styx0', stop: () => handle.stop(),
      async esp() {
        const c = (await handle.listJson())[0]?.children[0];
        return { pktsIn: Number(c?.packetsIn ?? 0), pktsOut: Number(c?.packetsOut ?? 0) };
      },
    },
  };
}

/** The tunnel up on both sides: each lists an IKE SA with an installed CHILD_SA. */
async function established(left: Peer, right: Peer): Promise<void> {
  await waitFor('CHILD_SA on both sides', 20_000, async () => {
    const [l, r] = await Promise.all([left.esp().catch(() => null), right.esp().catch(() => null)]);
    return l && r ? true : undefined;
  }, 200);
}

// ------------------------------------------------------------------ what each side spent

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may itself hold spaces and parentheses.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Udp: RcvbufErrors from /proc/net/snmp of a namespace: datagrams the kernel dropped for a full socket buffer. */
async function udpRcvbufErrors(ns: string): Promise<number> {
  const text = (await run(['cat', '/proc/net/snmp'], { ns })).stdout;
  const lines = text.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [], values = lines[1]?.split(/\s+/) ?? [];
  const i = names.indexOf('RcvbufErrors');
  return i > 0 ? Number(values[i]) : 0;
}

/** Packets the kernel dropped on a TUN device: tx towards the reading daemon, rx from it. */
async function tunDrops(ns: string, dev: string): Promise<{ tx: number; rx: number }> {
  const r = await run(['ip', '-s', '-j', 'link', 'show', 'dev', dev], { ns, allowFailure: true });
  if (r.code !== 0) return { tx: 0, rx: 0 };
  const j = JSON.parse(r.stdout) as { stats64?: { rx?: { dropped?: number }; tx?: { dropped?: number } } }[];
  return { tx: j[0]?.stats64?.tx?.dropped ?? 0, rx: j[0]?.stats64?.rx?.dropped ?? 0 };
}

interface Snapshot { at: number; cpu: [number, number]; esp: [{ pktsIn: number; pktsOut: number }, { pktsIn: number; pktsOut: number }]; udp: [number, number]; tun: [{ tx: number; rx: number }, { tx: number; rx: number }] }

async function snapshot(l: Peer, r: Peer): Promise<Snapshot> {
  const [el, er, ul, ur, tl, tr] = await Promise.all([l.esp(), r.esp(), udpRcvbufErrors(l.ns), udpRcvbufErrors(r.ns), tunDrops(l.ns, l.tun), tunDrops(r.ns, r.tun)]);
  return { at: Date.now(), cpu: [cpuSeconds(l.pid), cpuSeconds(r.pid)], esp: [el, er], udp: [ul, ur], tun: [tl, tr] };
}

/** `window`: the transfer's start and end on CLOCK_MONOTONIC in microseconds, the clock V8 stamps profiles with. */
interface Transfer { from: 'left' | 'right'; iperf: IperfResult; lines: string[]; window: [number, number] }

const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

async function transfer(t: Topology, l: Peer, r: Peer, from: 'left' | 'right', seconds: number): Promise<Transfer> {
  const s0 = await snapshot(l, r);
  const [c, s] = from === 'left' ? [t.left, t.right] : [t.right, t.left];
  const m0 = monoUs();
  const iperf = await iperfTcp({ clientNs: c.ns, clientAddr: c.inner4, serverNs: s.ns, serverAddr: s.inner4, seconds });
  const m1 = monoUs();
  const s1 = await snapshot(l, r);
  const wall = (s1.at - s0.at) / 1000;
  const [snd, rcv] = from === 'left' ? [0, 1] as const : [1, 0] as const;
  const peers = [l, r];
  const sent = s1.esp[snd].pktsOut - s0.esp[snd].pktsOut, got = s1.esp[rcv].pktsIn - s0.esp[rcv].pktsIn;
  const lines = [
    `${from === 'left' ? 'left -> right' : 'right -> left'}: ${(iperf.receivedBitsPerSecond / 1e6).toFixed(0)} Mbit/s, ${iperf.retransmits} TCP retransmits`,
    `  ESP data packets: ${sent} sent by ${peers[snd]!.kind} (${from}), ${got} received by ${peers[rcv]!.kind}, ${sent > 0 ? (((sent - got) / sent) * 100).toFixed(1) : '0'}% lost on the way`,
  ];
  for (const i of [0, 1] as const) {
    const p = peers[i]!;
    const cpu = s1.cpu[i] - s0.cpu[i];
    const pkts = s1.esp[i].pktsIn - s0.esp[i].pktsIn + s1.esp[i].pktsOut - s0.esp[i].pktsOut;
    lines.push(`  ${(i === 0 ? 'left ' : 'right')} ${p.kind.padEnd(6)} CPU ${((cpu / wall) * 100).toFixed(0).padStart(3)}% of a core, `
      + `${pkts > 0 ? ((cpu * 1e6) / pkts).toFixed(1) : '-'} us CPU per ESP packet (${pkts} in+out); `
      + `UDP rcvbuf drops ${s1.udp[i] - s0.udp[i]}, ${p.tun} drops tx ${s1.tun[i].tx - s0.tun[i].tx} rx ${s1.tun[i].rx - s0.tun[i].rx}`);
  }
  return { from, iperf, lines, window: [m0, m1] };
}

// ------------------------------------------------------------------ the two set-ups

async function withPair<T>(tag: string, make: (t: Topology) => Promise<[Peer, Peer]>, body: (t: Topology, l: Peer, r: Peer) => Promise<T>): Promise<T> {
  const t = await createTopology(tag);
  let peers: Peer[] = [];
  try {
    const [l, r] = await make(t);
    peers = [l, r];
    await established(l, r);
    return await body(t, l, r);
  } finally {
    await Promise.all(peers.map((p) => p.stop()));
    await t.teardown();
  }
}

async function styxVsCharon(esp: string, seconds: number): Promise<{ lr: Transfer; rl: Transfer }> {
  return withPair('besps', async (t) => {
    const [s, c] = await Promise.all([styxPeer(t, esp), charonPeer(t, 'right', esp)]);
    const r = await s.handle.styxRun(['initiate', 'bench']);
    if (r.code !== 0) throw new Error(`styx initiate: ${r.stderr}${r.stdout}`);
    return [s.peer, c.peer];
  }, async (t, l, r) => ({ lr: await transfer(t, l, r, 'left', seconds), rl: await transfer(t, l, r, 'right', seconds) }));
}

async function charonVsCharon(esp: string, seconds: number): Promise<{ lr: Transfer; rl: Transfer }> {
  return withPair('bespc', async (t) => {
    const [l, r] = await Promise.all([charonPeer(t, 'left', esp), charonPeer(t, 'right', esp)]);
    await l.handle.initiate(CHILD, 'bench', 20);
    return [l.peer, r.peer];
  }, async (t, l, r) => ({ lr: await transfer(t, l, r, 'left', seconds), rl: await transfer(t, l, r, 'right', seconds) }));
}

// ------------------------------------------------------------------ the profile

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }

/** Which stage of the data path a function belongs to, from where it lives. */
function stage(fn: string, url: string): string {
  if (fn === '(idle)') return 'idle (waiting in epoll)';
  if (fn === '(garbage collector)') return 'garbage collection';
  if (fn === '(program)') return 'native outside JS (libuv, syscalls, the addon)';
  if (/\/src\/esp\//.test(url)) return 'styx ESP engine (JS)';
  if (/\/src\/tun\//.test(url)) return 'styx TUN (JS side)';
  if (/\/src\/dataplane\//.test(url)) return 'styx userspace backend (JS)';
  if (/\/src\/net\//.test(url)) return 'styx UDP demux (JS)';
  if (/internal\/crypto|^node:crypto/.test(url)) return 'Node crypto (JS wrappers)';
  if (/dgram/.test(url)) return 'Node dgram (JS)';
  if (/internal\/buffer|^node:buffer/.test(url)) return 'Node Buffer (JS)';
  if (/internal\/timers|internal\/process\/task_queues|^node:events|internal\/events/.test(url)) return 'event loop, timers, emitters (JS)';
  if (url === '') return `native call: ${fn || '(anonymous)'}`;
  return 'other JS';
}

/**
 * Self time per function and per stage, counting only samples taken inside
 * `window` (start-up, IKE and shutdown are not the data path).
 */
function summarizeProfile(p: CpuProfile, window: [number, number], top = 18): string[] {
  const samples = p.samples ?? [], deltas = p.timeDeltas ?? [];
  const self = new Map<number, number>();
  let t = p.startTime, total = 0;
  // timeDeltas[i] is the time before sample i, so the time spent in sample i is the next delta.
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    if (t < window[0] || t > window[1]) continue;
    const us = deltas[i + 1] ?? 0;
    total += us;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + us);
  }
  if (total === 0) return [`  profile: no samples inside the transfer (profile ${p.startTime}-${p.endTime} us, transfer ${window[0]}-${window[1]} us: not the same clock?)`];
  const byFn = new Map<string, number>(), byStage = new Map<string, number>();
  let idle = 0;
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0;
    if (us === 0) continue;
    const { functionName: fn, url, lineNumber } = n.callFrame;
    if (fn === '(idle)') idle += us;
    const file = url.replace(/^file:\/\/.*?\/dist\//, '').replace(/^node:/, '');
    const name = `${fn || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
    byFn.set(name, (byFn.get(name) ?? 0) + us);
    const st = stage(fn, url);
    byStage.set(st, (byStage.get(st) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number, of: number): string => `${((us / of) * 100).toFixed(1).padStart(5)}%`;
  // The sampler runs on wall-clock time: a sample lands on JS code even while the thread waits for a CPU, so busy is not CPU time.
  const out = [`  profile of the transfer: ${(total / 1e6).toFixed(1)} s, main thread not idle (running or waiting for a CPU) ${pct(busy, total)}; shares below are of that time`];
  out.push('  by stage:');
  for (const [k, v] of [...byStage].filter(([k]) => !k.startsWith('idle')).sort((a, b) => b[1] - a[1]).slice(0, 12)) out.push(`    ${pct(v, busy)}  ${k}`);
  out.push(`  top ${top} functions by self time:`);
  for (const [k, v] of [...byFn].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`    ${pct(v, busy)}  ${k}`);
  return out;
}

/**
 * styxd under `node --cpu-prof`, started here rather than by the harness:
 * node refuses --cpu-prof in NODE_OPTIONS, and the harness runs styxd with
 * no node flags of its own.
 */
async function profiledStyxPeer(t: Topology, esp: string, profDir: string): Promise<Peer> {
  const root = repoRoot();
  const dir = t.dir('styxd-prof');
  const conf = join(dir, 'styx.yaml'), sock = join(dir, 'styx.sock');
  writeFileSync(conf, styxYaml(t, esp));
  const out = openSync(join(dir, 'styxd.log'), 'w');
  const proc: ChildProcess = spawn('ip', ['netns', 'exec', t.left.ns, process.execPath, '--cpu-prof', `--cpu-prof-dir=${profDir}`,
    join(root, 'dist', 'src', 'bin', 'styxd.js'), '--config', conf, '--socket', sock], { stdio: ['ignore', out, out], cwd: root });
  closeSync(out);
  const exited = new Promise<void>((res) => proc.on('exit', () => res()));
  const cli = (args: string[]): Promise<RunResult> => run([process.execPath, join(root, 'dist', 'src', 'bin', 'styx.js'), '--socket', sock, ...args], { allowFailure: true });
  await waitFor('profiled styxd control socket', 20_000, () => (existsSync(sock) ? true : undefined));
  const r = await cli(['initiate', 'bench']);
  if (r.code !== 0) throw new Error(`styx initiate: ${r.stderr}${r.stdout}`);
  return {
    kind: 'styx', ns: t.left.ns, pid: proc.pid ?? -1, tun: 'styx0',
    async esp() {
      const l = await cli(['list', '--json']);
      const c = (JSON.parse(l.stdout) as IkeSaInfo[])[0]?.children[0];
      return { pktsIn: Number(c?.packetsIn ?? 0), pktsOut: Number(c?.packetsOut ?? 0) };
    },
    // SIGTERM: styxd exits through process.exit, which is when node writes the profile.
    async stop() { proc.kill('SIGTERM'); await exited; },
  };
}

async function profiled(esp: string, from: 'left' | 'right'): Promise<string[]> {
  const profDir = mkdtempSync(join(tmpdir(), 'styx-bench-prof-'));
  const x = await withPair(`bprof${from[0]}`, async (t) => {
    const [s, c] = await Promise.all([profiledStyxPeer(t, esp, profDir), charonPeer(t, 'right', esp)]);
    return [s, c.peer];
  }, (t, l, r) => transfer(t, l, r, from, PROFILE_SECONDS));
  const files = await waitFor('the .cpuprofile of styxd', 10_000, () => {
    const f = readdirSync(profDir).filter((n) => n.endsWith('.cpuprofile'));
    return f.length > 0 ? f : undefined;
  });
  const path = join(profDir, files[0]!);
  const prof = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  return [`styx ${from === 'left' ? 'sending (left -> right)' : 'receiving (right -> left)'}, ${esp}, under --cpu-prof (${path}):`,
    `  ${x.lines[0]}`, ...summarizeProfile(prof, x.window)];
}

// ------------------------------------------------------------------ main

const median = (xs: number[]): number => { const s = [...xs].sort((p, q) => p - q); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

async function main(): Promise<void> {
  const missing = missingPrerequisites({ charon: true, styxd: true });
  for (const cmd of ['iperf3', 'nft']) if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) missing.push(cmd);
  if (missing.length) { console.error(`bench:esp cannot run: ${missing.join(', ')}`); process.exit(1); }
  console.log(`styx userspace ESP vs strongSwan kernel-libipsec: node ${process.version}, iperf3 TCP, 1 stream, ${SECONDS} s each way, IKE ${IKE}`);
  console.log('left 10.1.0.1 (192.0.2.1) <-> right 10.2.0.1 (192.0.2.2); all processes share this machine\'s cores\n');
  const summary: string[] = [];
  const mbit = (x: number): string => (x / 1e6).toFixed(0);
  for (const esp of ESPS) {
    console.log(`=== ESP ${esp}, ${ROUNDS} round(s)`);
    const a: { lr: number[]; rl: number[] } = { lr: [], rl: [] }, b: { lr: number[]; rl: number[] } = { lr: [], rl: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      const x = await styxVsCharon(esp, SECONDS);
      console.log(`round ${round} (a) styx (left, userspace) <-> charon (right, kernel-libipsec)`);
      for (const tr of [x.lr, x.rl]) console.log(tr.lines.join('\n'));
      a.lr.push(x.lr.iperf.receivedBitsPerSecond); a.rl.push(x.rl.iperf.receivedBitsPerSecond);
      const y = await charonVsCharon(esp, SECONDS);
      console.log(`round ${round} (b) charon (left, kernel-libipsec) <-> charon (right, kernel-libipsec)`);
      for (const tr of [y.lr, y.rl]) console.log(tr.lines.join('\n'));
      b.lr.push(y.lr.iperf.receivedBitsPerSecond); b.rl.push(y.rl.iperf.receivedBitsPerSecond);
    }
    const line = (name: string, xa: number[], xb: number[]): string =>
      `${esp} ${name}: (a) styx<->strongSwan ${mbit(median(xa))} Mbit/s [${xa.map(mbit).join(' ')}], `
      + `(b) strongSwan<->strongSwan ${mbit(median(xb))} Mbit/s [${xb.map(mbit).join(' ')}], ratio a/b ${(median(xa) / median(xb)).toFixed(2)}`;
    summary.push(line('left->right', a.lr, b.lr), line('right->left', a.rl, b.rl));
    console.log(`${summary.slice(-2).join('\n')}\n`);
  }
  if (PROFILE) {
    console.log(`=== where styxd's time goes (${ESPS[0]}, ${PROFILE_SECONDS} s per direction)`);
    for (const from of ['left', 'right'] as const) console.log((await profiled(ESPS[0]!, from)).join('\n') + '\n');
  }
  if (ENGINE) {
    console.log('=== the ESP engine alone (bench/esp-engine.js)');
    const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'bench', 'esp-engine.js')], {
      stdio: 'inherit', env: { BENCH_RUNS: '2', BENCH_SECONDS: '1', ...process.env },
    });
    if (r.status !== 0) console.log(`esp-engine.js exited with ${r.status ?? r.signal}`);
    console.log();
  }
  console.log('=== summary: medians, iperf3 receiver side, left is styx in (a)');
  for (const l of summary) console.log(l);
}

main().catch((e: Error) => { console.error(e.stack ?? e.message); process.exit(1); });
