#!/usr/bin/env node
// Builds native/build/Release/styx_tun.node (TUN access, required for the
// userspace data plane) and styx_esp.node (AEAD crypto on node's own OpenSSL
// and sendmmsg: the fast ESP path, optional) with node-gyp (npm's bundled
// copy) against the headers of the Node that runs this script, so the build
// needs no network: node-gyp would otherwise try to download headers when
// npm's `nodedir` is not configured. styx_esp needs the OpenSSL headers Node
// installs with its own (<prefix>/include/node/openssl); if it does not
// build, the TUN addon is built alone and ESP runs on node:crypto.
//
//   STYX_SKIP_NATIVE=1      do nothing (a machine that never opens a TUN)
//   STYX_NATIVE_OPTIONAL=1  a failed build warns instead of failing the install
//   STYX_SKIP_ESP_ADDON=1   build the TUN addon only
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const log = (m) => process.stderr.write(`styx native: ${m}\n`);

if (process.env.STYX_SKIP_NATIVE === '1') {
  log('STYX_SKIP_NATIVE=1: not building the addons');
  process.exit(0);
}
if (process.platform !== 'linux') {
  log(`${process.platform}: the addons are Linux-only; not building them`);
  process.exit(0);
}

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    // npm ships node-gyp beside itself; from /usr/bin/node that is /usr/lib/node_modules/npm.
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(here, '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((p) => p && existsSync(p));
}

// The running Node's own headers: <prefix>/include/node/node_api.h.
function findNodeDir() {
  const configured = process.env.npm_config_nodedir;
  if (configured && existsSync(join(configured, 'include', 'node', 'node_api.h'))) return configured;
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return configured || undefined;
}

const gyp = findNodeGyp();
if (!gyp) fail('node-gyp was not found (it ships with npm)');
const nodedir = findNodeDir();
const args = [gyp, 'rebuild', '--directory', here];
if (nodedir) args.push(`--nodedir=${nodedir}`);
else log('no local Node headers found: node-gyp may try to download them');
if (nodedir && !existsSync(join(nodedir, 'include', 'node', 'openssl', 'evp.h'))) {
  log(`${join(nodedir, 'include', 'node', 'openssl')} has no OpenSSL headers: styx_esp may not build`);
}

const gypRun = (extra) => spawnSync(process.execPath, [...args, ...extra], { stdio: 'inherit' }).status;
const skipEsp = process.env.STYX_SKIP_ESP_ADDON === '1';
let status = gypRun(skipEsp ? ['--', '-Dstyx_skip_esp=1'] : []);
let espBuilt = !skipEsp && status === 0;
if (status !== 0 && !skipEsp) {
  log('building both addons failed; building the TUN addon alone (ESP will use node:crypto and one send per packet)');
  status = gypRun(['--', '-Dstyx_skip_esp=1']);
  espBuilt = false;
}
if (status !== 0) fail(`node-gyp exited with ${status} (needs g++, make, python3 and Node's headers)`);
log(`built ${join(here, 'build', 'Release', 'styx_tun.node')}`);
if (espBuilt) log(`built ${join(here, 'build', 'Release', 'styx_esp.node')}`);
else log(`not built: ${join(here, 'build', 'Release', 'styx_esp.node')} (${skipEsp ? 'STYX_SKIP_ESP_ADDON=1' : 'see the errors above'})`);

function fail(why) {
  log(`building the TUN addon failed: ${why}`);
  if (process.env.STYX_NATIVE_OPTIONAL === '1') {
    log('STYX_NATIVE_OPTIONAL=1: continuing without it; openTun() will report the missing addon');
    process.exit(0);
  }
  process.exit(1);
}
