/**
 * styxd as an interop peer: the daemon runs inside a namespace, its CLI talks
 * to it over the control socket from outside (a UNIX socket is reached through
 * the file system, whatever the network namespace).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { IkeSaInfo } from '../../../src/control/protocol.js';
import { controlRequest } from '../../../src/control/client.js';
import { repoRoot, run, sleep, waitFor, type RunResult } from './exec.js';

export interface StyxdOptions {
  /** Where styx.sock and styxd.log go. */
  dir: string;
  /** Passed as --log-level, e.g. 'ike=debug,enc=secret'. */
  logLevel?: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  startTimeoutMs?: number;
}

export interface StyxdHandle {
  ns: string;
  dir: string;
  configPath: string;
  socketPath: string;
  logPath: string;
  pid: number;
  /** `styx --socket SOCK ...args`; rejects on a non-zero exit. */
  styx(args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  /** Same, but resolves with exit code and both streams whatever the outcome. */
  styxRun(args: string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** `styx list --json`, parsed; the shape is the control protocol's `list` result. */
  listJson(): Promise<IkeSaInfo[]>;
  /** Polls listJson until `pred` holds; returns that listing. */
  waitForSas(pred: (sas: IkeSaInfo[]) => boolean, timeoutMs?: number): Promise<IkeSaInfo[]>;
  logText(): string;
  logMark(): number;
  waitForLog(re: RegExp, timeoutMs?: number, since?: number): Promise<RegExpExecArray>;
  running(): boolean;
  /** SIGTERM (clean shutdown sends DELETEs), SIGKILL after 5 s. */
  stop(): Promise<void>;
}

function isSocket(p: string): boolean {
  try { return statSync(p).isSocket(); } catch { return false; }
}

function tail(path: string, lines = 40): string {
  try { return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return '(no output)'; }
}

export async function startStyxd(ns: string, configPath: string, opts: StyxdOptions): Promise<StyxdHandle> {
  const root = repoRoot();
  const dir = opts.dir;
  mkdirSync(dir, { recursive: true });
  const socketPath = join(dir, 'styx.sock');
  const logPath = join(dir, 'styxd.log');
  const daemonJs = join(root, 'dist', 'src', 'bin', 'styxd.js');
  const cliJs = join(root, 'dist', 'src', 'bin', 'styx.js');
  const args = [daemonJs, '--config', configPath, '--socket', socketPath];
  if (opts.logLevel) args.push('--log-level', opts.logLevel);
  args.push(...(opts.extraArgs ?? []));

  const fd = openSync(logPath, 'w');
  // `ip netns exec` execs in place, so the pid is node's and SIGTERM reaches styxd itself.
  const proc: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], {
    stdio: ['ignore', fd, fd], env: { ...process.env, ...opts.env }, cwd: root,
  });
  closeSync(fd);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((res) => {
    proc.on('exit', (code, signal) => { exited = { code, signal }; res(); });
    proc.on('error', () => { exited = { code: -1, signal: null }; res(); });
  });
  const stop = async (): Promise<void> => {
    if (exited) return;
    proc.kill('SIGTERM');
    const done = await Promise.race([exitPromise.then(() => true), sleep(5000).then(() => false)]);
    if (!done) { proc.kill('SIGKILL'); await exitPromise; }
  };

  try {
    await waitFor('styxd control socket ' + socketPath, opts.startTimeoutMs ?? 20_000, () => {
      if (exited) throw new Error(`styxd in ${ns} exited (${exited.code ?? exited.signal}) before opening its socket:\n${tail(logPath)}`);
      return isSocket(socketPath) ? true : undefined;
    });
  } catch (e) {
    await stop();
    throw e;
  }

  const styxRun = (a: string[], o: { timeoutMs?: number } = {}): Promise<RunResult> =>
    run([process.execPath, cliJs, '--socket', socketPath, ...a], { timeoutMs: o.timeoutMs ?? 60_000, allowFailure: true, cwd: root });
  const logText = (): string => {
    try { return readFileSync(logPath, 'utf8'); } catch { return ''; }
  };
  // Straight to the control socket, as the CLI does, without a node start per poll (slow in an emulated VM).
  const listJson = async (): Promise<IkeSaInfo[]> => {
    const v: unknown = await controlRequest(socketPath, 'list', {}, 30_000);
    // Checked only as far as the harness relies on it; the CLI's own tests own the rest.
    if (!Array.isArray(v)) throw new Error(`styx list: expected an array, got ${JSON.stringify(v).slice(0, 200)}`);
    return v as IkeSaInfo[];
  };

  return {
    ns, dir, configPath, socketPath, logPath, pid: proc.pid ?? -1,
    styxRun,
    async styx(a, o) {
      const r = await styxRun(a, o);
      if (r.code !== 0) throw new Error(`styx ${a.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()} ${r.stdout.trim()}`.trim());
      return r.stdout;
    },
    listJson,
    async waitForSas(pred, timeoutMs = 15_000) {
      let last: IkeSaInfo[] = [];
      try {
        return await waitFor('styx SA state in ' + ns, timeoutMs, async () => {
          last = await listJson();
          return pred(last) ? last : undefined;
        }, 250);
      } catch (e) {
        throw new Error(`${(e as Error).message}; last listing: ${JSON.stringify(last)}`);
      }
    },
    logText,
    logMark: () => Buffer.byteLength(logText()),
    waitForLog: (re, timeoutMs = 10_000, since = 0) =>
      waitFor(`log line ${re} in ${logPath}`, timeoutMs, () => {
        const text = since > 0 ? Buffer.from(logText()).subarray(since).toString('utf8') : logText();
        return re.exec(text) ?? undefined;
      }),
    running: () => exited === undefined,
    stop,
  };
}
