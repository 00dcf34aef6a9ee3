/**
 * Three namespaces for NAT traversal tests: host A on a private network,
 * a masquerading router, host B outside. The namespaces themselves are made
 * by `netns.sh nat-up` (one definition for the tests and for debugging by
 * hand); this module names them, reads and changes the router's mappings,
 * and tells apart what crosses the NAT-T port in a capture.
 *
 *   A (PREFIX-a)              router (PREFIX-nat)                 B (PREFIX-b)
 *   inner 10.1.0.1/24                                             inner 10.2.0.1/24
 *   out0 10.0.0.2 ------- in0 10.0.0.1   out0 198.51.100.1 ------ out0 198.51.100.2
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, run, sh } from './exec.js';
import { NS_PATTERN } from './topology.js';

export interface Endpoint { address: string; port: number }

export interface NatHost {
  ns: string;
  /** The interface toward the router (A) or the outside link (B). */
  iface: string;
  addr4: string;
  /** Address of the protected LAN behind this host, and that LAN as a prefix. */
  inner4: string;
  innerNet4: string;
}

export interface NatRouter {
  ns: string;
  insideIface: string;
  outsideIface: string;
  inside4: string;
  /** The one public address every mapping uses. */
  outside4: string;
}

/** One UDP flow the router translated, as conntrack lists it. */
export interface UdpMapping {
  /** The private side: A's address and port. */
  inside: Endpoint;
  /** Where A sent it. */
  peer: Endpoint;
  /** What the peer sees as the source: the router's outside address and the port it chose. */
  outside: Endpoint;
  /** Whether anything came back on this mapping yet. */
  replied: boolean;
}

export interface NatTopology {
  prefix: string;
  a: NatHost;
  router: NatRouter;
  b: NatHost;
  /** Per-run scratch directory for one component (config, logs, sockets, captures). */
  dir(name: string): string;
  /** The router's UDP mappings now. */
  udpMappings(): Promise<UdpMapping[]>;
  /**
   * Makes the router forget every mapping and masquerade to `ports` from now
   * on, as a NAT does after a reboot or a timeout: the next datagram from A
   * gets a new outside port, which B sees as a new source.
   */
  remap(ports: PortRange): Promise<void>;
  teardown(): Promise<void>;
}

export interface PortRange { from: number; to: number }

/** The range `netns.sh nat-up` masquerades to; keep the two in step. */
export const INITIAL_NAT_PORTS: PortRange = { from: 20000, to: 20099 };

export const inRange = (port: number, r: PortRange): boolean => port >= r.from && port <= r.to;

let counter = 0;

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Scratch directories of runs that died without tearing down (named like their namespaces, pid first). */
function reapStaleDirs(root: string): void {
  let names: string[];
  try { names = readdirSync(root); } catch { return; }
  for (const n of names) {
    const m = new RegExp(`^${NS_PATTERN}(\\d+)x`).exec(n);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) rmSync(join(root, n), { recursive: true, force: true });
  }
}

const CONNTRACK_UDP_RE = /src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) (\[UNREPLIED\] )?.*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)/;

/** `conntrack -L -p udp` output to mappings; lines that translated nothing (router-local traffic) are left out. */
export function parseConntrackUdp(text: string): UdpMapping[] {
  const out: UdpMapping[] = [];
  for (const line of text.split('\n')) {
    const m = CONNTRACK_UDP_RE.exec(line);
    if (!m) continue;
    const inside = { address: m[1]!, port: Number(m[3]) };
    const peer = { address: m[2]!, port: Number(m[4]) };
    // The reply tuple names the translated source as its destination.
    const outside = { address: m[7]!, port: Number(m[9]) };
    if (inside.address === outside.address && inside.port === outside.port) continue;
    out.push({ inside, peer, outside, replied: m[5] === undefined });
  }
  return out;
}

/**
 * `tag` makes the names readable; the pid and a per-process counter make them
 * unique, and the `styxt<pid>x` form lets `netns.sh reap` remove what a dead
 * run left behind. The 'n' after the x keeps these apart from topology.ts's
 * names, which use the same pid and their own counter.
 */
export async function createNatTopology(tag = 'nat'): Promise<NatTopology> {
  const cleanTag = tag.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 12) || 'nat';
  const prefix = `${NS_PATTERN}${process.pid}xn${++counter}-${cleanTag}`;
  const script = join(repoRoot(), 'scripts', 'lib', 'netns.sh');
  await run(['bash', script, 'reap', NS_PATTERN], { allowFailure: true });
  try {
    await sh(['bash', script, 'nat-up', prefix], { timeoutMs: 30_000 });
  } catch (e) {
    await run(['bash', script, 'down', prefix], { allowFailure: true });
    throw e;
  }
  if (process.env.STYX_KEEP_LOGS !== '1') reapStaleDirs(join(tmpdir(), 'styx-interop'));
  const base = join(tmpdir(), 'styx-interop', prefix);
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  const router: NatRouter = { ns: `${prefix}-nat`, insideIface: 'in0', outsideIface: 'out0', inside4: '10.0.0.1', outside4: '198.51.100.1' };
  let down = false;
  return {
    prefix,
    a: { ns: `${prefix}-a`, iface: 'out0', addr4: '10.0.0.2', inner4: '10.1.0.1', innerNet4: '10.1.0.0/24' },
    router,
    b: { ns: `${prefix}-b`, iface: 'out0', addr4: '198.51.100.2', inner4: '10.2.0.1', innerNet4: '10.2.0.0/24' },
    dir(name: string): string {
      const d = join(base, name);
      mkdirSync(d, { recursive: true });
      return d;
    },
    async udpMappings(): Promise<UdpMapping[]> {
      const r = await run(['conntrack', '-L', '-p', 'udp'], { ns: router.ns, allowFailure: true });
      if (r.code !== 0) throw new Error(`conntrack -L in ${router.ns} failed (exit ${r.code}): ${r.stderr.trim()}`);
      return parseConntrackUdp(r.stdout);
    },
    async remap(ports: PortRange): Promise<void> {
      // The rule changes first (one nft transaction) and the flush follows:
      // in the other order a datagram between the two would get a fresh
      // mapping in the old range that nothing removes.
      const rules = [
        'flush chain ip styx_nat postrouting',
        `add rule ip styx_nat postrouting oifname "${router.outsideIface}" meta l4proto { tcp, udp } masquerade to :${ports.from}-${ports.to}`,
        `add rule ip styx_nat postrouting oifname "${router.outsideIface}" masquerade`,
      ].join('\n') + '\n';
      await runWithInput(['nft', '-f', '-'], rules, router.ns);
      // Changing the rule alone moves nothing: NAT is decided once per flow
      // and kept in the conntrack entry. Dropping the entries is what a NAT
      // reboot or a mapping timeout does.
      await sh(['conntrack', '-F'], { ns: router.ns });
    },
    async teardown(): Promise<void> {
      if (down) return;
      down = true;
      await run(['bash', script, 'down', prefix], { allowFailure: true, timeoutMs: 30_000 });
      if (process.env.STYX_KEEP_LOGS !== '1') rmSync(base, { recursive: true, force: true });
    },
  };
}

function runWithInput(argv: string[], input: string, ns: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => { err += d.toString('utf8'); });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')} in ${ns} failed (exit ${code}): ${err.trim()}`))));
    p.stdin!.end(input);
  });
}

// ---------------------------------------------------------------------------
// Reading captures (lib/pcap.ts) of the NAT-T port

export type NatTKind = 'keepalive' | 'ike' | 'esp' | 'other';

/**
 * What a UDP payload on port 4500 is, by its first octets (RFC 3948 2.2,
 * 2.3): one 0xFF octet is a NAT keepalive, four zero octets are the non-ESP
 * marker before IKE, anything else long enough starts with an ESP SPI.
 */
export function natTKind(payload: Buffer): NatTKind {
  if (payload.length === 1 && payload[0] === 0xff) return 'keepalive';
  if (payload.length >= 4 + 28 && payload.readUInt32BE(0) === 0) return 'ike';
  if (payload.length >= 8 && payload.readUInt32BE(0) !== 0) return 'esp';
  return 'other';
}
