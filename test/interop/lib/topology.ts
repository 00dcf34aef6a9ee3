/**
 * Two namespaces joined by a veth pair. The topology itself lives in
 * scripts/lib/netns.sh so that the demo and the tests cannot drift apart;
 * this module names, creates and removes instances of it.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, run, sh, slow } from './exec.js';

/** Namespace names carry the pid so `netns.sh reap` can tell leftovers of dead runs. */
export const NS_PATTERN = 'styxt';

export interface Side {
  ns: string;
  outer4: string;          // address on the shared link
  outer6: string;
  inner4: string;          // address of the protected LAN behind this side
  innerNet4: string;       // that LAN as a prefix
}

export interface Topology {
  prefix: string;
  left: Side;
  right: Side;
  /** Per-run scratch directory for one component (config, logs, sockets). */
  dir(name: string): string;
  teardown(): Promise<void>;
}

let counter = 0;

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Scratch directories of runs that died without tearing down, found by the pid in their name. */
function reapStaleDirs(root: string): void {
  let names: string[];
  try { names = readdirSync(root); } catch { return; }
  for (const n of names) {
    const m = new RegExp(`^${NS_PATTERN}(\\d+)x`).exec(n);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) rmSync(join(root, n), { recursive: true, force: true });
  }
}

function netnsScript(): string {
  return join(repoRoot(), 'scripts', 'lib', 'netns.sh');
}

/**
 * `tag` makes the names readable; uniqueness comes from the pid and a
 * per-process counter, so tests and concurrent runs never share a namespace.
 */
export async function createTopology(tag = 't'): Promise<Topology> {
  const cleanTag = tag.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 12) || 't';
  const prefix = `${NS_PATTERN}${process.pid}x${++counter}-${cleanTag}`;
  const script = netnsScript();
  await run(['bash', script, 'reap', NS_PATTERN], { allowFailure: true });
  try {
    await sh(['bash', script, 'up', prefix], { timeoutMs: 30_000 });
  } catch (e) {
    await run(['bash', script, 'down', prefix], { allowFailure: true });
    throw e;
  }
  if (process.env.STYX_KEEP_LOGS !== '1') reapStaleDirs(join(tmpdir(), 'styx-interop'));
  const base = join(tmpdir(), 'styx-interop', prefix);
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  let down = false;
  return {
    prefix,
    left: { ns: `${prefix}-l`, outer4: '192.0.2.1', outer6: '2001:db8::1', inner4: '10.1.0.1', innerNet4: '10.1.0.0/24' },
    right: { ns: `${prefix}-r`, outer4: '192.0.2.2', outer6: '2001:db8::2', inner4: '10.2.0.1', innerNet4: '10.2.0.0/24' },
    dir(name: string): string {
      const d = join(base, name);
      mkdirSync(d, { recursive: true });
      return d;
    },
    async teardown(): Promise<void> {
      if (down) return;
      down = true;
      await run(['bash', script, 'down', prefix], { allowFailure: true, timeoutMs: 30_000 });
      // Logs are what one needs after a failure, so they stay when asked to.
      if (process.env.STYX_KEEP_LOGS !== '1') rmSync(base, { recursive: true, force: true });
    },
  };
}

export interface PingResult { sent: number; received: number; output: string }

/**
 * ping from inside `ns`; never throws for lost packets, only reports them.
 * With a deadline (-w) rather than -W, ping waits for `count` replies however
 * late the last one is (-W gives up about two round trips after the last
 * request), sending another request for each one lost, so `sent` exceeds
 * `count` exactly when something was lost; with no reply at all it gives up
 * after the requests' time plus `timeoutS`.
 */
export async function ping(ns: string, to: string, opts: { from?: string; count?: number; timeoutS?: number; /** More ping options, e.g. -s SIZE. */ extra?: string[] } = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const deadlineS = Math.ceil(slow((count * 0.2 + (opts.timeoutS ?? 2)) * 1000) / 1000);
  const argv = ['ping', '-n', '-c', String(count), '-i', '0.2', '-w', String(deadlineS), ...(opts.extra ?? [])];
  if (opts.from) argv.push('-I', opts.from);
  argv.push(to);
  const r = await run(argv, { ns, allowFailure: true, timeoutMs: (count + 5) * 3000 });
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  return { sent: m ? Number(m[1]) : count, received: m ? Number(m[2]) : 0, output: r.stdout + r.stderr };
}
