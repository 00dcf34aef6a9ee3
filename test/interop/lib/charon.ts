/**
 * strongSwan's charon as an interop peer, one per network namespace.
 *
 * Each instance gets its own strongswan.conf (passed through STRONGSWAN_CONF),
 * a private vici socket and a private /run: charon insists on /run/charon.pid
 * and refuses to start when that file names a live process, so two charons on
 * one host need separate mount namespaces (`unshare -m` + tmpfs on /run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CHARON_BIN, run, sleep, waitFor } from './exec.js';
import {
  childKeysFromLogText, ikeKeysFromLogText, parseListSas,
  type ChildKeys, type IkeKeys, type ParsedSa,
} from './charon-log.js';

export type ConfScalar = string | number | boolean;
export type ConfValue = ConfScalar | ConfScalar[] | ConfSection;
export interface ConfSection { [key: string]: ConfValue | undefined }

/**
 * Plugins for a PSK/certificate peer with a userspace ESP data plane. The
 * kernel here has no esp4, so kernel-libipsec (a TUN device plus ESP in UDP)
 * carries the traffic; openssl or gcm is needed for AES-GCM in libipsec.
 */
export const DEFAULT_PLUGINS = [
  'random', 'nonce', 'openssl', 'aes', 'sha1', 'sha2', 'hmac', 'gcm', 'pem', 'pkcs1', 'pkcs8', 'x509',
  'revocation', 'constraints', 'pubkey', 'gmp', 'curve25519', 'kdf', 'kernel-libipsec', 'kernel-netlink',
  'socket-default', 'vici', 'updown',
];

/** ike/chd at 4 make charon print SKEYSEED, SK_* and the CHILD_SA keys as hex. */
export const DEFAULT_LOG_LEVELS: Record<string, number> = { default: 1, ike: 4, chd: 4, cfg: 2, net: 2, enc: 1 };

const BARE_VALUE_RE = /^[A-Za-z0-9_.:/@%,+*=\- ]*$/;

function renderScalar(v: ConfScalar): string {
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return String(v);
  // A value with characters the settings parser treats specially (#, braces,
  // quotes) or with outer whitespace must be quoted to survive intact.
  if (v !== '' && BARE_VALUE_RE.test(v) && v.trim() === v) return v;
  return '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

/** strongswan.conf / swanctl.conf syntax from a nested object; undefined entries are left out. */
export function renderConf(section: ConfSection, indent = 0): string {
  const pad = '  '.repeat(indent);
  let out = '';
  for (const [k, v] of Object.entries(section)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) out += `${pad}${k} = ${v.map(renderScalar).join(', ')}\n`;
    else if (typeof v === 'object') out += `${pad}${k} {\n${renderConf(v, indent + 1)}${pad}}\n`;
    else out += `${pad}${k} = ${renderScalar(v)}\n`;
  }
  return out;
}

export interface PskConnOptions {
  /** Connection (IKE SA config) name; 'styx' by default. */
  name?: string;
  /** CHILD_SA config name; 'net' by default. */
  child?: string;
  localAddr: string;
  remoteAddr: string;
  localId?: string;
  remoteId?: string;
  localTs: string | string[];
  remoteTs: string | string[];
  psk: string;
  version?: 1 | 2;
  proposals?: string;
  espProposals?: string;
  /**
   * libipsec sends ESP only inside UDP, so a data-plane test needs encap;
   * key negotiation alone works either way. Default true.
   */
  encap?: boolean;
  startAction?: 'none' | 'trap' | 'start';
  /** Merged into the connection section (e.g. { dpd_delay: '5s' }). */
  extra?: ConfSection;
  /** Merged into the child section. */
  childExtra?: ConfSection;
}

/** A swanctl.conf for one PSK connection with one tunnel-mode CHILD_SA. */
export function pskSwanctlConf(o: PskConnOptions): ConfSection {
  const childName = o.child ?? 'net';
  return {
    connections: {
      [o.name ?? 'styx']: {
        version: o.version ?? 2,
        local_addrs: o.localAddr,
        remote_addrs: o.remoteAddr,
        proposals: o.proposals ?? 'aes128-sha256-modp2048',
        encap: o.encap ?? true,
        // One attempt only: a test wants a failure reported, not retried for minutes.
        keyingtries: 1,
        local: { auth: 'psk', id: o.localId ?? o.localAddr },
        remote: { auth: 'psk', id: o.remoteId ?? o.remoteAddr },
        children: {
          [childName]: {
            local_ts: Array.isArray(o.localTs) ? o.localTs : [o.localTs],
            remote_ts: Array.isArray(o.remoteTs) ? o.remoteTs : [o.remoteTs],
            esp_proposals: o.espProposals ?? 'aes128gcm16',
            mode: 'tunnel',
            start_action: o.startAction,
            ...o.childExtra,
          },
        },
        ...o.extra,
      },
    },
    secrets: {
      'ike-styx': { secret: o.psk },
    },
  };
}

export interface CharonOptions {
  /** swanctl.conf as an object (rendered) or as raw text. */
  swanctl: ConfSection | string;
  plugins?: string[];
  /** Overrides merged over DEFAULT_LOG_LEVELS (charon's 0..4 scale, -1 silent). */
  logLevels?: Record<string, number>;
  /** Extra settings for the `charon { }` section of strongswan.conf. */
  charon?: ConfSection;
  /** Files to place beside swanctl.conf, e.g. { 'x509/peer.pem': pem, 'private/key.pem': key }. */
  files?: Record<string, string | Buffer>;
  /** Run `swanctl --load-all` once the daemon is up (default true). */
  loadAll?: boolean;
  startTimeoutMs?: number;
}

export interface CharonHandle {
  ns: string;
  dir: string;
  /** vici URI for swanctl --uri. */
  uri: string;
  pid: number;
  logPath: string;
  swanctlConfPath: string;
  /** Runs swanctl against this charon; args[0] is the command, e.g. ['--list-sas']. */
  swanctl(args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  loadAll(): Promise<string>;
  listSas(): Promise<ParsedSa[]>;
  /** Blocks until the CHILD_SA is up; rejects when charon reports failure. */
  initiate(child: string, ike?: string, timeoutS?: number): Promise<string>;
  terminate(ike: string): Promise<string>;
  logText(): string;
  /** Current log size: pass to waitForLog to match only lines written after now. */
  logMark(): number;
  waitForLog(re: RegExp, timeoutMs?: number, since?: number): Promise<RegExpExecArray>;
  /** Polls listSas until `pred` holds; returns that listing. */
  waitForSas(pred: (sas: ParsedSa[]) => boolean, timeoutMs?: number): Promise<ParsedSa[]>;
  childKeysFromLog(): ChildKeys[];
  ikeKeysFromLog(): IkeKeys[];
  /** Whether the process is still running. */
  running(): boolean;
  stop(): Promise<void>;
}

const SWANCTL_SUBDIRS = ['x509', 'x509ca', 'x509ocsp', 'x509aa', 'x509ac', 'x509crl', 'pubkey', 'private', 'rsa', 'ecdsa', 'bliss', 'pkcs8', 'pkcs12'];

function strongswanConf(dir: string, opts: CharonOptions): string {
  const levels = { ...DEFAULT_LOG_LEVELS, ...opts.logLevels };
  const conf: ConfSection = {
    charon: {
      load: (opts.plugins ?? DEFAULT_PLUGINS).join(' '),
      install_routes: true,
      plugins: {
        vici: { socket: `unix://${join(dir, 'charon.vici')}` },
      },
      filelog: {
        styx: {
          path: join(dir, 'charon.log'),
          time_format: '%H:%M:%S',
          // Without flush_line charon buffers and the file stays empty for long.
          flush_line: true,
          append: false,
          ...levels,
        },
      },
      ...opts.charon,
    },
  };
  return renderConf(conf);
}

function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

export async function startCharon(ns: string, dir: string, opts: CharonOptions): Promise<CharonHandle> {
  mkdirSync(dir, { recursive: true });
  const confPath = join(dir, 'strongswan.conf');
  const swDir = join(dir, 'swanctl');
  const swanctlConfPath = join(swDir, 'swanctl.conf');
  const logPath = join(dir, 'charon.log');
  const outPath = join(dir, 'charon.out');
  const socketPath = join(dir, 'charon.vici');
  const uri = `unix://${socketPath}`;
  for (const sub of SWANCTL_SUBDIRS) mkdirSync(join(swDir, sub), { recursive: true });
  writeFileSync(confPath, strongswanConf(dir, opts));
  writeFileSync(swanctlConfPath, typeof opts.swanctl === 'string' ? opts.swanctl : renderConf(opts.swanctl));
  for (const [rel, content] of Object.entries(opts.files ?? {})) {
    const p = join(swDir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  writeFileSync(logPath, '');

  const outFd = openSync(outPath, 'w');
  // `ip netns exec` and `unshare` both exec in place, so the pid we get is
  // charon's own and signals reach it directly.
  const proc: ChildProcess = spawn('ip', [
    'netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
    `mount -t tmpfs -o mode=0755 styx-run /run && exec ${CHARON_BIN}`,
  ], { stdio: ['ignore', outFd, outFd], env: { ...process.env, STRONGSWAN_CONF: confPath } });
  closeSync(outFd);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((res) => {
    proc.on('exit', (code, signal) => { exited = { code, signal }; res(); });
    proc.on('error', (err) => { exited = { code: -1, signal: null }; writeFileSync(outPath, String(err)); res(); });
  });

  const stop = async (): Promise<void> => {
    if (exited) return;
    proc.kill('SIGTERM');
    const killed = await Promise.race([exitPromise.then(() => true), sleep(5000).then(() => false)]);
    if (!killed) {
      proc.kill('SIGKILL');
      await exitPromise;
    }
  };

  try {
    await waitFor('charon vici socket ' + socketPath, opts.startTimeoutMs ?? 15_000, () => {
      if (exited) throw new Error(`charon in ${ns} exited (${exited.code ?? exited.signal}) before opening vici:\n${tail(outPath)}\n${tail(logPath)}`);
      return existsSync(socketPath) ? true : undefined;
    });
  } catch (e) {
    await stop();
    throw e;
  }

  const swanctl = async (args: string[], o: { timeoutMs?: number } = {}): Promise<string> => {
    // swanctl takes --uri as an option of the command, so it must follow it.
    const [cmd, ...rest] = args;
    if (!cmd) throw new Error('swanctl: no command');
    return (await run(['swanctl', cmd, '--uri', uri, ...rest], { timeoutMs: o.timeoutMs ?? 60_000 })).stdout;
  };
  const logText = (): string => {
    try { return readFileSync(logPath, 'utf8'); } catch { return ''; }
  };
  const listSas = async (): Promise<ParsedSa[]> => parseListSas(await swanctl(['--list-sas', '--pretty']));

  const handle: CharonHandle = {
    ns, dir, uri, pid: proc.pid ?? -1, logPath, swanctlConfPath,
    swanctl,
    loadAll: () => swanctl(['--load-all', '--file', swanctlConfPath]),
    listSas,
    initiate: (child, ike, timeoutS = 30) =>
      swanctl(['--initiate', '--child', child, ...(ike ? ['--ike', ike] : []), '--timeout', String(timeoutS)],
        { timeoutMs: (timeoutS + 10) * 1000 }),
    terminate: (ike) => swanctl(['--terminate', '--ike', ike, '--timeout', '20'], { timeoutMs: 30_000 }),
    logText,
    logMark: () => Buffer.byteLength(logText()),
    waitForLog: (re, timeoutMs = 10_000, since = 0) =>
      waitFor(`log line ${re} in ${logPath}`, timeoutMs, () => {
        const text = since > 0 ? Buffer.from(logText()).subarray(since).toString('utf8') : logText();
        return re.exec(text) ?? undefined;
      }),
    waitForSas: async (pred, timeoutMs = 15_000) => {
      let last: ParsedSa[] = [];
      try {
        return await waitFor('SA state in ' + ns, timeoutMs, async () => {
          last = await listSas();
          return pred(last) ? last : undefined;
        }, 250);
      } catch (e) {
        throw new Error(`${(e as Error).message}; last listing: ${JSON.stringify(last.map(summarizeSa))}`);
      }
    },
    childKeysFromLog: () => childKeysFromLogText(logText()),
    ikeKeysFromLog: () => ikeKeysFromLogText(logText()),
    running: () => exited === undefined,
    stop,
  };

  if (opts.loadAll !== false) {
    try {
      await handle.loadAll();
    } catch (e) {
      await stop();
      throw e;
    }
  }
  return handle;
}

/** A compact one-line view of an SA for assertion messages. */
export function summarizeSa(sa: ParsedSa): string {
  const kids = sa.children.map((c) => `${c.name}:${c.state}:${c.spiIn}/${c.spiOut}`).join(',');
  return `${sa.name}#${sa.uniqueId}:${sa.state}:${sa.initiatorSpi}/${sa.responderSpi}[${kids}]`;
}
