#!/usr/bin/env node
/**
 * `styx`: talks to a running styxd over its control socket. The logic lives
 * in src/control/cli.ts so it can be tested without spawning processes.
 */
import { runCli } from '../control/cli.js';

runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
}).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    // Only bugs get here; every expected failure is already a message and an exit code.
    process.stderr.write(`styx: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
