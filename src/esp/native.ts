/**
 * Loads native/build/Release/styx_esp.node, the addon that does the ESP
 * data plane's bulk work below the JS boundary (see native/styx_esp.c):
 * AEAD seal/open with a keyed OpenSSL context per SA, and sendmmsg.
 *
 * Optional by design: when it is not built (or STYX_ESP_FAST=0), the pure-JS
 * engine on node:crypto carries the traffic as before, and tryLoadEspAddon
 * says why, for the log.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An SA's keyed AEAD contexts inside the addon. */
export interface NativeAeadHandle { readonly __styxEspAead: unique symbol }

export const AEAD_AES_GCM = 0;
export const AEAD_CHACHA20_POLY1305 = 1;

export interface EspAddon {
  /** `key` without the salt; `salt` the 4 octets RFC 4106 / RFC 7634 put after it. */
  aeadNew(kind: number, key: Buffer, salt: Buffer, icvBytes: number, esn: boolean): NativeAeadHandle;
  /** Cleanses the keys now; later use of the handle throws. */
  aeadFree(h: NativeAeadHandle): void;
  /** Encrypts out[ptAt, ptAt+ptLen) in place and writes the ICV after it; out[0..16) holds SPI | seq | IV. */
  aeadSeal(h: NativeAeadHandle, out: Buffer, ptAt: number, ptLen: number, seqHigh: number): void;
  /** Verifies and decrypts packet[16, len-ICV) into out; false if not authentic (out is then zeroed). */
  aeadOpen(h: NativeAeadHandle, packet: Buffer, out: Buffer, seqHigh: number): boolean;
  /** A bound, non-blocking UDP socket; buffer sizes past the sysctl limits when permitted. */
  udpOpen(address: string, port: number, rcvbuf: number, sndbuf: number): number;
  udpBufferSizes(fd: number): [rcvbuf: number, sndbuf: number];
  /**
   * sendmmsg of bufs[start, start+count) to one destination; returns how many
   * were dealt with (sent, or refused and counted in result[0] with the errno
   * in result[1]). Fewer than count: the socket buffer is full.
   */
  udpSend(fd: number, bufs: readonly Buffer[], start: number, count: number, address: string, port: number, result: Int32Array): number;
  openssl(): string;
}

export const ESP_ADDON_FILE = 'styx_esp.node';
const FUNCTIONS = ['aeadNew', 'aeadFree', 'aeadSeal', 'aeadOpen', 'udpOpen', 'udpBufferSizes', 'udpSend', 'openssl'] as const;

/** $STYX_ESP_ADDON, else native/build/Release/ of the package this module belongs to. */
export function espAddonPath(): string {
  const env = process.env['STYX_ESP_ADDON'];
  if (env) return env;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'native', 'build', 'Release', ESP_ADDON_FILE);
    const up = dirname(dir);
    if (up === dir) return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'build', 'Release', ESP_ADDON_FILE);
    dir = up;
  }
}

function isAddon(m: unknown): m is EspAddon {
  if (typeof m !== 'object' || m === null) return false;
  const rec = m as Record<string, unknown>;
  return FUNCTIONS.every((f) => typeof rec[f] === 'function');
}

export type AddonLoad = { ok: true; addon: EspAddon } | { ok: false; reason: string };

let cached: AddonLoad | null = null;

/** The addon, or why not; tried once per process. */
export function tryLoadEspAddon(): AddonLoad {
  cached ??= load();
  return cached;
}

/** The addon or null: for callers that only need to know whether to take the fast path. */
export function espAddon(): EspAddon | null {
  const r = tryLoadEspAddon();
  return r.ok ? r.addon : null;
}

function load(): AddonLoad {
  if (process.env['STYX_ESP_FAST'] === '0') return { ok: false, reason: 'STYX_ESP_FAST=0' };
  if (process.platform !== 'linux') return { ok: false, reason: `the ESP addon is Linux-only, not ${process.platform}` };
  const path = espAddonPath();
  if (!existsSync(path)) return { ok: false, reason: `${path} is not built (node native/build.mjs)` };
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(path);
  } catch (e) {
    return { ok: false, reason: `${path} does not load in Node ${process.version} (rebuild it): ${(e as Error).message}` };
  }
  if (!isAddon(mod)) return { ok: false, reason: `${path} is not the styx ESP addon (missing functions); rebuild it` };
  return { ok: true, addon: mod };
}
