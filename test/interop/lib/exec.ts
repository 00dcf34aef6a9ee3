/**
 * Process helpers for the interop harness: run a command (optionally inside a
 * network namespace), find the repository, check prerequisites.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * How many times longer than usual every wait of the harness lasts: 1, or
 * STYX_TEST_SLOW where the machine is that much slower (scripts/vm.sh sets it
 * when the VM's CPU is emulated). Only time limits stretch; what a test checks
 * does not change.
 */
export const SLOW = Math.max(1, Number(process.env['STYX_TEST_SLOW'] ?? '1') || 1);

/** A time limit in ms, stretched by SLOW. */
export const slow = (ms: number): number => ms * SLOW;

export interface RunOptions {
  /** Network namespace to run in (via `ip netns exec`). */
  ns?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Resolve with the output instead of rejecting when the exit code is non-zero. */
  allowFailure?: boolean;
  cwd?: string;
}

export interface RunResult { code: number; stdout: string; stderr: string }

export class CommandError extends Error {
  constructor(readonly argv: string[], readonly result: RunResult) {
    super(`command failed (exit ${result.code}): ${argv.join(' ')}\n${result.stderr.trim()}\n${result.stdout.trim()}`.trim());
    this.name = 'CommandError';
  }
}

/** argv prefixed so that it runs inside `ns` when one is given. */
export function nsArgv(ns: string | undefined, argv: string[]): string[] {
  return ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
}

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = nsArgv(opts.ns, argv);
  return new Promise((resolvePromise, reject) => {
    execFile(full[0]!, full.slice(1), {
      timeout: slow(opts.timeoutMs ?? 60_000),
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      maxBuffer: 64 * 1024 * 1024,
      encoding: 'utf8',
    }, (err, stdout, stderr) => {
      let code = 0;
      if (err) {
        // execFile reports a numeric exit code, or a signal/timeout with code null.
        const c = (err as NodeJS.ErrnoException & { code?: unknown }).code;
        code = typeof c === 'number' ? c : -1;
        if (code === -1 && typeof c === 'string') stderr = `${stderr}\n${c}: ${err.message}`;
      }
      const result: RunResult = { code, stdout, stderr };
      if (code !== 0 && !opts.allowFailure) reject(new CommandError(full, result));
      else resolvePromise(result);
    });
  });
}

/** stdout of a command that must succeed. */
export async function sh(argv: string[], opts: RunOptions = {}): Promise<string> {
  return (await run(argv, opts)).stdout;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `probe` until it returns a value other than undefined, or fail after timeoutMs. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>,
  intervalMs = 100): Promise<T> {
  const limit = slow(timeoutMs), deadline = Date.now() + limit;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${limit} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * The repository root. The harness runs compiled from dist/test/interop/lib,
 * but may also be loaded from elsewhere, so walk up to the package.json named styx.
 */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        const name: unknown = (JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name;
        if (name === 'styx') return dir;
      } catch { /* not ours: keep walking */ }
    }
    dir = resolve(dir, '..');
  }
  throw new Error('cannot find the styx repository root above ' + fileURLToPath(import.meta.url));
}

export const CHARON_BIN = '/usr/lib/ipsec/charon';
export const PLUGIN_DIR = '/usr/lib/ipsec/plugins';

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** What is missing for tests that need namespaces and strongSwan; empty when all is there. */
export function missingPrerequisites(opts: { charon?: boolean; styxd?: boolean } = {}): string[] {
  const missing: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('root (network namespaces need CAP_NET_ADMIN)');
  for (const cmd of ['ip', 'unshare', 'ping']) if (!onPath(cmd)) missing.push(`the '${cmd}' command`);
  if (opts.charon !== false) {
    if (!existsSync(CHARON_BIN)) missing.push(`strongSwan charon (${CHARON_BIN})`);
    if (!onPath('swanctl')) missing.push('swanctl');
    for (const p of ['kernel-libipsec', 'vici', 'openssl']) {
      if (!existsSync(join(PLUGIN_DIR, `libstrongswan-${p}.so`))) missing.push(`strongSwan plugin ${p}`);
    }
  }
  if (opts.styxd) {
    const root = safeRoot();
    for (const f of ['dist/src/bin/styxd.js', 'dist/src/bin/styx.js']) {
      if (!root || !existsSync(join(root, f))) missing.push(f + ' (run npm run build)');
    }
  }
  return missing;
}

function safeRoot(): string | undefined {
  try { return repoRoot(); } catch { return undefined; }
}

/**
 * Skip the calling suite (call from a `before` hook) when prerequisites are
 * missing -- except in CI (CI=true), where a missing prerequisite means the
 * test script failed to install something, which must not pass silently.
 */
export function requireInterop(ctx: Mocha.Context, opts: { charon?: boolean; styxd?: boolean } = {}): void {
  const missing = missingPrerequisites(opts);
  if (missing.length === 0) return;
  const msg = `interop prerequisites missing: ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: failing instead of skipping)`);
  console.log(`      skipping: ${msg}`);
  ctx.skip();
}
