/**
 * The `styx` command line, kept apart from src/bin/styx.ts so that tests can
 * run it in-process against a real socket and check output and exit codes.
 */
import { DEFAULT_CONTROL_SOCKET } from '../config/load.js';
import { parseDuration } from '../config/yaml.js';
import { LEVELS, SUBSYSTEMS } from '../util/log.js';
import { ControlCommandError, ControlConnectError, controlRequest } from './client.js';
import { formatCerts, formatConns, formatIkeSas, formatStats } from './format.js';
import { DEFAULT_INITIATE_TIMEOUT_MS } from './protocol.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  /** Used for ages and countdowns in `list`; defaults to Date.now. */
  now?: () => number;
}

export const USAGE = `usage: styx [--socket PATH] [--json] COMMAND [ARGS]

commands:
  list                          show IKE SAs and their CHILD SAs
  list-conns                    show configured connections
  list-certs                    show loaded certificates and CRLs with their
                                validity and status
  initiate NAME [--timeout T]   bring connection NAME up and wait until it is
                                established (T: seconds or e.g. 1m; default 30s)
  terminate NAME                tear down the SAs of connection NAME
  rekey NAME[/CHILD]            rekey the IKE SAs of connection NAME now, or
                                with /CHILD its CHILD SAs of that name
  reload                        re-read the configuration file
  log SUBSYSTEM LEVEL           change a log level while running
                                SUBSYSTEM: default ${SUBSYSTEMS.join(' ')}
                                LEVEL: ${LEVELS.join(' ')}
  stats                         show the daemon's counters

options:
  --socket PATH   control socket (default: $STYX_SOCKET, else ${DEFAULT_CONTROL_SOCKET})
  --json          print the daemon's answer as JSON
  -h, --help      show this text

exit status: 0 success, 1 the command failed, 2 usage error
`;

/** Time allowed for commands that only read or change daemon state. */
const COMMAND_TIMEOUT_MS = 30_000;
/** initiate waits for the daemon's own deadline; this is slack for the answer to arrive. */
const INITIATE_SLACK_MS = 5_000;

class UsageError extends Error {}

interface Parsed {
  socket: string;
  json: boolean;
  help: boolean;
  timeoutMs: number | null;
  words: string[];
}

function parseArgs(argv: string[], env: CliIo['env']): Parsed {
  const p: Parsed = { socket: env['STYX_SOCKET'] || DEFAULT_CONTROL_SOCKET, json: false, help: false, timeoutMs: null, words: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '--') { p.words.push(...argv.slice(i + 1)); break; }
    else if (flag === '-h' || flag === '--help') p.help = true;
    else if (flag === '--json') p.json = true;
    else if (flag === '--socket' || flag === '-s') {
      p.socket = value();
      if (p.socket === '') throw new UsageError('--socket needs a path');
    } else if (flag === '--timeout' || flag === '-t') {
      const t = value();
      const secs = parseDuration(t);
      if (secs === null || secs <= 0) throw new UsageError(`invalid timeout '${t}'`);
      p.timeoutMs = secs * 1000;
    } else if (flag.startsWith('-') && flag.length > 1) throw new UsageError(`unknown option '${flag}'`);
    else p.words.push(a);
  }
  return p;
}

function expectArgs(words: string[], n: number, form: string): void {
  if (words.length - 1 !== n) throw new UsageError(`usage: styx ${form}`);
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let p: Parsed;
  try {
    p = parseArgs(argv, io.env);
    if (p.help) { io.out(USAGE); return EXIT_OK; }
    if (p.words.length === 0) throw new UsageError('no command given');
    if (p.timeoutMs !== null && p.words[0] !== 'initiate') throw new UsageError('--timeout is only used with initiate');
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`styx: ${e.message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }

  const { socket, words } = p;
  const show = (human: string, raw: unknown): void => {
    io.out((p.json ? JSON.stringify(raw, null, 2) : human) + '\n');
  };
  try {
    const cmd = words[0]!;
    switch (cmd) {
      case 'list': {
        expectArgs(words, 0, 'list');
        const r = await controlRequest(socket, 'list', {}, COMMAND_TIMEOUT_MS);
        show(formatIkeSas(r, (io.now ?? Date.now)()), r);
        break;
      }
      case 'list-conns': {
        expectArgs(words, 0, 'list-conns');
        const r = await controlRequest(socket, 'list-conns', {}, COMMAND_TIMEOUT_MS);
        show(formatConns(r), r);
        break;
      }
      case 'list-certs': {
        expectArgs(words, 0, 'list-certs');
        const r = await controlRequest(socket, 'list-certs', {}, COMMAND_TIMEOUT_MS);
        show(formatCerts(r), r);
        break;
      }
      case 'initiate': {
        expectArgs(words, 1, 'initiate NAME [--timeout T]');
        const timeoutMs = p.timeoutMs ?? DEFAULT_INITIATE_TIMEOUT_MS;
        const r = await controlRequest(socket, 'initiate', { name: words[1]!, timeoutMs }, timeoutMs + INITIATE_SLACK_MS);
        show(r, r);
        break;
      }
      case 'terminate': {
        expectArgs(words, 1, 'terminate NAME');
        const r = await controlRequest(socket, 'terminate', { name: words[1]! }, COMMAND_TIMEOUT_MS);
        show(r, r);
        break;
      }
      case 'rekey': {
        expectArgs(words, 1, 'rekey NAME[/CHILD]');
        const r = await controlRequest(socket, 'rekey', { name: words[1]! }, COMMAND_TIMEOUT_MS);
        show(r, r);
        break;
      }
      case 'reload': {
        expectArgs(words, 0, 'reload');
        const r = await controlRequest(socket, 'reload', {}, COMMAND_TIMEOUT_MS);
        show(r, r);
        break;
      }
      case 'log': {
        expectArgs(words, 2, 'log SUBSYSTEM LEVEL');
        const [, subsystem, level] = words as [string, string, string];
        if (subsystem !== 'default' && !(SUBSYSTEMS as readonly string[]).includes(subsystem)) {
          throw new UsageError(`unknown subsystem '${subsystem}' (default, ${SUBSYSTEMS.join(', ')})`);
        }
        if (!(LEVELS as readonly string[]).includes(level)) throw new UsageError(`unknown level '${level}' (${LEVELS.join(', ')})`);
        const r = await controlRequest(socket, 'log-level', { subsystem, level }, COMMAND_TIMEOUT_MS);
        show(r, r);
        break;
      }
      case 'stats': {
        expectArgs(words, 0, 'stats');
        const r = await controlRequest(socket, 'stats', {}, COMMAND_TIMEOUT_MS);
        show(formatStats(r), r);
        break;
      }
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
    return EXIT_OK;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`styx: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof ControlCommandError || e instanceof ControlConnectError) {
      io.err(`styx: ${e.message}\n`);
      return EXIT_FAILED;
    }
    throw e;
  }
}
