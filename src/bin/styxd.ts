#!/usr/bin/env node
/**
 * styxd: the IKE daemon. `styxd --check` validates the configuration and
 * exits; otherwise it runs in the foreground until SIGTERM or SIGINT.
 */
import { loadConfig } from '../config/index.js';
import { Daemon } from '../daemon/daemon.js';
import { ConfigError, StyxError } from '../util/errors.js';
import { logs } from '../util/log.js';

const USAGE = `usage: styxd [--config FILE] [--socket PATH] [--log-level SUB=LEVEL,...] [--check]
  --config FILE     configuration (default /etc/styx/styx.yaml, or $STYX_CONFIG)
  --socket PATH     control socket (default from the configuration)
  --log-level SPEC  e.g. 'debug' or 'ike=debug,net=info'; 'secret' also logs keys
  --check           validate the configuration, print "configuration OK" or the error, and exit`;

function parseArgs(argv: string[]): { config: string; socket?: string; logLevels?: string; check: boolean } {
  const out: { config: string; socket?: string; logLevels?: string; check: boolean } = { config: process.env.STYX_CONFIG ?? '/etc/styx/styx.yaml', check: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => { const v = argv[++i]; if (v === undefined) { console.error(`${a} needs a value\n${USAGE}`); process.exit(2); } return v; };
    if (a === '--config' || a === '-c') out.config = val();
    else if (a === '--socket') out.socket = val();
    else if (a === '--log-level') out.logLevels = val();
    else if (a === '--check') out.check = true;
    else if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    else { console.error(`unknown argument '${a}'\n${USAGE}`); process.exit(2); }
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.check) {
    try {
      loadConfig(args.config);
      console.log('configuration OK');
      process.exit(0);
    } catch (e) {
      console.error(e instanceof StyxError ? e.message : String(e));
      process.exit(1);
    }
  }
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({ configPath: args.config, ...(args.socket ? { socketPath: args.socket } : {}), ...(args.logLevels ? { logLevels: args.logLevels } : {}) });
  } catch (e) {
    console.error(`styxd: ${e instanceof ConfigError || e instanceof StyxError ? e.message : (e as Error).stack}`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    logs.for('daemon').info(`received ${sig}`);
    daemon.stop().then(() => process.exit(0), (e: Error) => { console.error(e); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => { daemon.reload().catch((e: Error) => logs.for('config').error(`reload failed, keeping the running configuration: ${e.message}`)); });
  // A bug must be logged, not take every SA down with it.
  process.on('unhandledRejection', (e) => logs.for('daemon').error(`unhandled rejection: ${(e as Error)?.stack ?? String(e)}`));
}

void main();
