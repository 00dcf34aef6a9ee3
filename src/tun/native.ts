/**
 * Loads native/build/Release/styx_tun.node, the small N-API addon through
 * which styx reaches /dev/net/tun (see native/styx_tun.c for why an addon and
 * not fs.read or an FFI package).
 *
 * Loaded lazily, on the first openTun(): the rest of styx, and the in-memory
 * TUN used by tests, run without the addon being built.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StyxError } from '../util/errors.js';

/** An opaque handle to a running batch reader. */
export interface NativePoller { readonly __styxTunPoller: unique symbol }

export interface TunAddon {
  /** Opens /dev/net/tun non-blocking with IFF_TUN|IFF_NO_PI; '' lets the kernel name it. */
  open(name: string, multiQueue: boolean): [fd: number, name: string];
  setMtu(name: string, mtu: number): void;
  setUp(name: string, up: boolean): void;
  write(fd: number, pkts: readonly Uint8Array[]): number;
  close(fd: number): void;
  /** cb(n, 0): packets 0..n-1 at arena[i*slot], lengths in lens; cb(0, -errno): read failed. */
  pollStart(fd: number, arena: Buffer, lens: Uint32Array, slot: number, max: number,
    cb: (n: number, err: number) => void): NativePoller;
  pollStop(p: NativePoller): void;
  pollRef(p: NativePoller, ref: boolean): void;
}

export const ADDON_FILE = 'styx_tun.node';
const FUNCTIONS = ['open', 'setMtu', 'setUp', 'write', 'close', 'pollStart', 'pollStop', 'pollRef'] as const;

/**
 * Where the addon is looked for: $STYX_TUN_ADDON if set, else
 * native/build/Release/ of the package this module belongs to (the nearest
 * ancestor with a package.json: the same from dist/src/tun/ and src/tun/).
 */
export function addonCandidates(): string[] {
  const env = process.env.STYX_TUN_ADDON;
  if (env) return [env];
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return [join(dir, 'native', 'build', 'Release', ADDON_FILE)];
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // No package.json above: an unusual layout; try the usual relative places.
  return [join(here, '..', '..', '..', 'native', 'build', 'Release', ADDON_FILE), join(here, '..', '..', 'native', 'build', 'Release', ADDON_FILE)];
}

function isAddon(m: unknown): m is TunAddon {
  if (typeof m !== 'object' || m === null) return false;
  const rec = m as Record<string, unknown>;
  return FUNCTIONS.every((f) => typeof rec[f] === 'function');
}

/** Loads the addon from an explicit path; exported for tests of the error text. */
export function loadAddonFrom(candidates: readonly string[]): TunAddon {
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new StyxError('ERR_TUN_ADDON_MISSING',
      `the styx TUN addon is not built: ${candidates.join(' or ')} does not exist. ` +
      'Build it with `node native/build.mjs` (npm install runs it; it needs g++, make, python3 ' +
      'and the Node headers), or point STYX_TUN_ADDON at a built styx_tun.node');
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(found);
  } catch (e) {
    throw new StyxError('ERR_TUN_ADDON_LOAD',
      `the styx TUN addon at ${found} could not be loaded (rebuild it with \`node native/build.mjs\` ` +
      `for this Node ${process.version}): ${(e as Error).message}`);
  }
  if (!isAddon(mod)) {
    throw new StyxError('ERR_TUN_ADDON_LOAD', `${found} is not the styx TUN addon (missing functions); rebuild it`);
  }
  return mod;
}

let cached: TunAddon | null = null;

export function loadAddon(): TunAddon {
  if (process.platform !== 'linux') {
    throw new StyxError('ERR_TUN_UNSUPPORTED', `TUN devices are supported on Linux only, not ${process.platform}`);
  }
  cached ??= loadAddonFrom(addonCandidates());
  return cached;
}
