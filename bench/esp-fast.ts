/**
 * The ESP fast path against the pure-JS one, stage by stage, on one core.
 * Not a test: it prints numbers and asserts nothing.
 *
 *   node dist/bench/esp-fast.js
 *   BENCH_SECONDS=2 BENCH_RUNS=5 node dist/bench/esp-fast.js
 *
 * Packets per CPU-second of this process (user + system: on a shared
 * machine wall-clock rates mostly measure the neighbours), best of
 * BENCH_RUNS, for inner packets of 64 and 1400 octets:
 *   seal / open   sealEsp / openEsp with the JS AeadTransform (a node:crypto
 *                 cipher per packet) and with the styx_esp addon's
 *   encap / decap EspEngine.encapsulate / decapsulate, batches of 64
 *   udp send      ESP-sized datagrams to a loopback sink: dgram send per
 *                 datagram vs FastUdpSocket (sendmmsg per batch of 64); the
 *                 kernel's loopback delivery is in both
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import type { PolicyParams, SaParams, Selector } from '../src/dataplane/api.js';
import { EspEngine, createEspTransform, openEsp, sealEsp, type EspTransform } from '../src/esp/index.js';
import { createFastEspTransform, useFastCrypto } from '../src/esp/fast.js';
import { tryLoadEspAddon } from '../src/esp/native.js';
import { FastUdpSocket } from '../src/esp/udp.js';
import { EncrId } from '../src/wire/ikev2/constants.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? '1');
const RUNS = Number(process.env['BENCH_RUNS'] ?? '3');
const BATCH = 64;

/** Best packets per CPU-second over RUNS runs of about SECONDS each; `fn` handles `per` packets per call. */
async function rate(fn: () => void | Promise<void>, per = 1): Promise<number> {
  const warm = process.hrtime.bigint() + 200_000_000n;
  while (process.hrtime.bigint() < warm) await fn();
  let best = 0;
  for (let r = 0; r < RUNS; r++) {
    const end = process.hrtime.bigint() + BigInt(Math.round(SECONDS * 1e9));
    const cpu0 = process.cpuUsage();
    let ops = 0;
    do { await fn(); ops++; } while (process.hrtime.bigint() < end);
    const cpu = process.cpuUsage(cpu0);
    best = Math.max(best, (ops * per) / ((cpu.user + cpu.system) / 1e6));
  }
  return best;
}

function ipv4Udp(size: number, id: number): Buffer {
  const p = randomBytes(size);
  p[0] = 0x45; p[1] = 0; p.writeUInt16BE(size, 2); p.writeUInt16BE(id & 0xffff, 4); p.writeUInt16BE(0, 6);
  p[8] = 64; p[9] = 17;
  Buffer.from([10, 1, 0, 5]).copy(p, 12);
  Buffer.from([10, 2, 0, 9]).copy(p, 16);
  p.writeUInt16BE(40000, 20); p.writeUInt16BE(53, 22); p.writeUInt16BE(size - 20, 24);
  return p;
}

const sel = (a: number[], b: number[]): Selector => ({ family: 4, startAddr: Buffer.from(a), endAddr: Buffer.from(b), protocol: 0, startPort: 0, endPort: 65535 });
const SITE_A = sel([10, 1, 0, 0], [10, 1, 255, 255]);
const SITE_B = sel([10, 2, 0, 0], [10, 2, 255, 255]);

/** `replayWindow: 0` (anti-replay off) lets the receiver take the same batch again and again: the steady state without SA set-up. */
function engines(encr: SaParams['encr'], fast: boolean): { a: EspEngine; b: EspEngine } {
  const base = {
    spi: 0x1000, protocol: 'esp', src: { address: '192.0.2.1', port: 4500 }, dst: { address: '192.0.2.2', port: 4500 }, mode: 'tunnel',
    encr, integ: null, esn: false, replayWindow: 0, encap: true, tag: 'bench',
  } as const;
  const out: SaParams = { ...base, direction: 'out', selectors: { local: [SITE_A], remote: [SITE_B] } };
  const inn: SaParams = { ...base, direction: 'in', selectors: { local: [SITE_B], remote: [SITE_A] } };
  const a = new EspEngine(), b = new EspEngine();
  a.addSa(out);
  b.addSa(inn);
  if (fast) { useFastCrypto(a.getSa(0x1000, 'out')!, out); useFastCrypto(b.getSa(0x1000, 'in')!, inn); }
  a.addPolicy({ direction: 'out', local: SITE_A, remote: SITE_B, mode: 'tunnel', spi: 0x1000, tunnel: null, tag: 'bench' } satisfies PolicyParams);
  return { a, b };
}

const fmt = (x: number): string => `${(x / 1000).toFixed(0).padStart(6)}k`;

async function main(): Promise<void> {
  const load = tryLoadEspAddon();
  if (!load.ok) { console.log(`esp-fast: no addon (${load.reason}); nothing to compare`); return; }
  console.log(`ESP fast path vs pure JS: node ${process.version}, ${load.addon.openssl()}, packets per CPU-second, best of ${RUNS} x ${SECONDS} s`);
  console.log(`${'stage'.padEnd(36)}${'JS'.padStart(8)}${'addon'.padStart(8)}   ratio`);
  const line = (name: string, js: number, nat: number): void => console.log(`${name.padEnd(36)}${fmt(js)}${fmt(nat)}   x${(nat / js).toFixed(1)}`);

  for (const [suite, encr] of [
    ['AES-GCM-16-128', { id: EncrId.ENCR_AES_GCM_16, key: randomBytes(20), keyLength: 128 }],
    ['CHACHA20-POLY1305', { id: EncrId.ENCR_CHACHA20_POLY1305, key: randomBytes(36), keyLength: 0 }],
  ] as const) {
    const js: EspTransform = createEspTransform(encr, null, false);
    const nat: EspTransform = createFastEspTransform(encr, null, false, load.addon)!;
    for (const size of [64, 1400]) {
      const inner = ipv4Udp(size, 1);
      let seq = 0;
      const sealed = sealEsp(js, 0x1000, 0, 1, inner, 4);
      line(`${suite} ${size} B seal`, await rate(() => { sealEsp(js, 0x1000, 0, ++seq, inner, 4); }), await rate(() => { sealEsp(nat, 0x1000, 0, ++seq, inner, 4); }));
      line(`${suite} ${size} B open`, await rate(() => { openEsp(js, sealed, 0, true); }), await rate(() => { openEsp(nat, sealed, 0, true); }));
      const batch = Array.from({ length: BATCH }, (_, i) => ipv4Udp(size, i));
      const r: number[] = [];
      for (const fast of [false, true]) {
        const { a, b } = engines({ ...encr }, fast);
        r.push(await rate(() => { a.encapsulate(batch); }, BATCH));
        const wire = a.encapsulate(batch).map((d) => ({ data: d.data, from: d.src }));
        r.push(await rate(() => { b.decapsulate(wire); }, BATCH));
      }
      line(`${suite} ${size} B engine encap x64`, r[0]!, r[2]!);
      line(`${suite} ${size} B engine decap x64`, r[1]!, r[3]!);
    }
  }

  // UDP: one dgram send per datagram (what net/ did) vs one sendmmsg per batch, to a sink nobody reads:
  // the kernel delivers (on loopback, in the sender's system call) and drops once its buffer is full.
  // (dgram would read whatever it is given, so the sink is the addon's bare socket, on a port found free just before.)
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((res) => probe.bind(0, '127.0.0.1', () => res()));
  const to = { address: '127.0.0.1', port: probe.address().port };
  await new Promise<void>((res) => probe.close(() => res()));
  FastUdpSocket.open(to.address, to.port, 0, load.addon);
  const plain = dgram.createSocket('udp4');
  await new Promise<void>((res) => plain.bind(0, '127.0.0.1', () => res()));
  const fastSock = FastUdpSocket.open('127.0.0.1', 0, 4 << 20, load.addon)!;
  const wrapped = dgram.createSocket('udp4');
  await new Promise<void>((res) => wrapped.bind({ fd: fastSock.fd }, () => res()));
  fastSock.attach((d, r) => wrapped.send(d, r.port, r.address), () => undefined);
  for (const size of [100, 1450]) {
    const dgrams = Array.from({ length: BATCH }, () => randomBytes(size));
    // Each round waits for the event loop so dgram's queued sends and their callbacks are in the count.
    const turn = (): Promise<void> => new Promise((res) => setImmediate(res));
    const js = await rate(async () => { for (const d of dgrams) plain.send(d, to.port, to.address); await turn(); }, BATCH);
    const nat = await rate(async () => { for (const d of dgrams) fastSock.queue(d, to); await turn(); }, BATCH);
    line(`udp send ${size} B x64`, js, nat);
  }
  console.log(`(sendmmsg: ${fastSock.stats.sent} sent in ${fastSock.stats.batches} calls, ${fastSock.stats.fallback} left to dgram)`);
  fastSock.close();
  for (const s of [plain, wrapped]) s.close();
}

main().catch((e: Error) => { console.error(e.stack ?? e.message); process.exit(1); });
