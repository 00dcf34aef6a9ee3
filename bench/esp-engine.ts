/**
 * Micro-benchmark of the userspace ESP engine on one core. Not a test: it
 * prints numbers and asserts nothing.
 *
 *   npm run bench:esp        (tsc -p bench/tsconfig.esp-engine.json && node dist/bench/esp-engine.js)
 *   BENCH_SECONDS=2 BENCH_RUNS=5 BENCH_DETAIL=1 node dist/bench/esp-engine.js
 *
 * For each suite (AES-GCM-16-128, ChaCha20-Poly1305, AES-CBC-128 +
 * HMAC-SHA2-256-128) and inner packet size (64, 1400 octets) it measures,
 * in packets per second:
 *   openssl   `openssl speed -evp <cipher> -bytes N`: OpenSSL with one cipher
 *             context reused for every block, no per-packet setup; the ceiling
 *   node      Node's crypto alone, one cipher object per packet (what every
 *             packet must pay here, since Node cannot re-IV a context)
 *   seal      packet.ts sealEsp: framing + crypto
 *   encap     EspEngine.encapsulate in batches of 64: decode, policy, SA, seal
 *   decap     EspEngine.decapsulate in batches of 64: SA, replay, open, selectors
 * and, with BENCH_DETAIL=1, the per-packet costs behind the choices in
 * src/esp/sa.ts (KeyObject vs raw key, pooled vs per-packet random IVs).
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHmac, createSecretKey, randomBytes, randomFillSync } from 'node:crypto';
import type { PolicyParams, SaParams, Selector } from '../src/dataplane/api.js';
import { EspEngine, createEspTransform, sealEsp } from '../src/esp/index.js';
import { EncrId, IntegId } from '../src/wire/ikev2/constants.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? '1');
const RUNS = Number(process.env['BENCH_RUNS'] ?? '3');
const DETAIL = process.env['BENCH_DETAIL'] === '1';
const BATCH = 64;

/**
 * Runs `fn` (which handles `per` packets per call) RUNS times for about
 * SECONDS each and returns the best rate in packets per CPU-second of this
 * process (user + system, as `openssl speed` divides by CPU time by
 * default): on a shared machine wall-clock rates mostly measure the
 * neighbours. GC helper threads count too, which is fair.
 */
function rate(fn: () => void, per = 1): number {
  const warm = process.hrtime.bigint() + 200_000_000n;
  while (process.hrtime.bigint() < warm) fn();
  let best = 0;
  for (let r = 0; r < RUNS; r++) {
    const end = process.hrtime.bigint() + BigInt(Math.round(SECONDS * 1e9));
    const cpu0 = process.cpuUsage();
    let ops = 0;
    do {
      for (let i = 0; i < 16; i++) fn();
      ops += 16;
    } while (process.hrtime.bigint() < end);
    const cpu = process.cpuUsage(cpu0);
    best = Math.max(best, (ops * per) / ((cpu.user + cpu.system) / 1e6));
  }
  return best;
}

/** `openssl speed` packets/s for one EVP cipher or HMAC at one size; null if openssl is missing or says something else. */
function opensslRate(args: string[], bytes: number): number | null {
  try {
    const out = execFileSync('openssl', ['speed', ...args, '-seconds', String(Math.max(1, Math.round(SECONDS))), '-bytes', String(bytes)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const last = out.trim().split('\n').pop() ?? '';
    const m = /([\d.]+)k\s*$/.exec(last);
    return m ? (Number(m[1]) * 1000) / bytes : null;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ fixtures

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

interface Suite {
  name: string;
  encr: { id: number; keyLength: number; keyBytes: number };
  integ: { id: number; keyBytes: number } | null;
  openssl: string[][];
  node: (size: number) => () => void;
}

const gcmKey = createSecretKey(randomBytes(16));
const chachaKey = createSecretKey(randomBytes(32));
const cbcKey = createSecretKey(randomBytes(16));
const macKey = createSecretKey(randomBytes(32));
const nonce = randomBytes(12);
const aad = randomBytes(8);

const SUITES: Suite[] = [
  {
    name: 'AES-GCM-16-128', encr: { id: EncrId.ENCR_AES_GCM_16, keyLength: 128, keyBytes: 20 }, integ: null,
    openssl: [['-evp', 'aes-128-gcm']],
    node: (size) => { const pt = randomBytes(size); return () => { const c = createCipheriv('aes-128-gcm', gcmKey, nonce); c.setAAD(aad); c.update(pt); c.final(); c.getAuthTag(); }; },
  },
  {
    name: 'CHACHA20-POLY1305', encr: { id: EncrId.ENCR_CHACHA20_POLY1305, keyLength: 0, keyBytes: 36 }, integ: null,
    openssl: [['-evp', 'chacha20-poly1305']],
    node: (size) => { const pt = randomBytes(size); return () => { const c = createCipheriv('chacha20-poly1305', chachaKey, nonce, { authTagLength: 16 }); c.setAAD(aad, { plaintextLength: size }); c.update(pt); c.final(); c.getAuthTag(); }; },
  },
  {
    name: 'AES-CBC-128/HMAC-SHA2-256-128', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128, keyBytes: 16 }, integ: { id: IntegId.AUTH_HMAC_SHA2_256_128, keyBytes: 32 },
    openssl: [['-evp', 'aes-128-cbc'], ['-hmac', 'sha256']],
    node: (size) => {
      const pt = randomBytes(Math.ceil(size / 16) * 16);
      const iv = randomBytes(16);
      return () => { const c = createCipheriv('aes-128-cbc', cbcKey, iv); c.setAutoPadding(false); c.update(pt); c.final(); createHmac('sha256', macKey).update(pt).digest(); };
    },
  },
];

function makeEngines(s: Suite): { a: EspEngine; b: EspEngine; bIn: SaParams } {
  const encr = { id: s.encr.id, key: randomBytes(s.encr.keyBytes), keyLength: s.encr.keyLength };
  const integ = s.integ ? { id: s.integ.id, key: randomBytes(s.integ.keyBytes) } : null;
  const common = {
    protocol: 'esp' as const, mode: 'tunnel' as const, encr, integ, esn: true, replayWindow: 128, encap: true, tag: 'bench',
    src: { address: '198.51.100.1', port: 4500 }, dst: { address: '203.0.113.2', port: 4500 },
  };
  const a = new EspEngine();
  const b = new EspEngine();
  a.addSa({ ...common, spi: 0x1000, direction: 'out', selectors: { local: [SITE_A], remote: [SITE_B] } });
  const pol: PolicyParams = { direction: 'out', local: SITE_A, remote: SITE_B, mode: 'tunnel', spi: 0x1000, tunnel: null, tag: 'bench' };
  a.addPolicy(pol);
  const bIn: SaParams = { ...common, spi: 0x1000, direction: 'in', selectors: { local: [SITE_B], remote: [SITE_A] } };
  b.addSa(bIn);
  return { a, b, bIn };
}

const fmt = (x: number | null): string => (x === null ? 'n/a' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(0)}k`);
const gbit = (pps: number, size: number): string => `${((pps * size * 8) / 1e9).toFixed(2)}`;

function benchSuite(s: Suite, size: number): void {
  const { a, b, bIn } = makeEngines(s);
  const batch = Array.from({ length: BATCH }, (_, i) => ipv4Udp(size, i));

  // The ceiling: OpenSSL with a reused context (for CBC+HMAC, the two passes in series).
  let secondsPerPacket: number | null = 0;
  for (const args of s.openssl) {
    const r = opensslRate(args, size);
    secondsPerPacket = r === null || secondsPerPacket === null ? null : secondsPerPacket + 1 / r;
  }
  const ossl = secondsPerPacket === null ? null : 1 / secondsPerPacket;

  const node = rate(s.node(size));

  const t = createEspTransform({ id: s.encr.id, key: randomBytes(s.encr.keyBytes), keyLength: s.encr.keyLength }, s.integ ? { id: s.integ.id, key: randomBytes(s.integ.keyBytes) } : null, true);
  let seq = 0;
  const one = batch[0]!;
  const seal = rate(() => { seq++; sealEsp(t, 0x1000, 0, seq, one, 4); });

  const encap = rate(() => { a.encapsulate(batch); }, BATCH);

  // Decap: a ring of genuine packets; the inbound SA is re-installed each lap so the replay window stays honest.
  const ring = a.encapsulate(Array.from({ length: 4096 }, (_, i) => ipv4Udp(size, i))).map((d) => ({ data: d.data, from: d.src }));
  let at = 0;
  const decap = rate(() => {
    if (at >= ring.length) { b.deleteSa(0x1000, 'in'); b.addSa(bIn); at = 0; }
    const got = b.decapsulate(ring.slice(at, at + BATCH));
    if (got.length !== BATCH) throw new Error(`decap lost packets: ${got.length}/${BATCH} (counters ${JSON.stringify(b.counters())})`);
    at += BATCH;
  }, BATCH);

  console.log(
    `${s.name.padEnd(31)} ${String(size).padStart(5)}  ${fmt(ossl).padStart(8)}  ${fmt(node).padStart(8)}  ${fmt(seal).padStart(8)}  `
    + `${fmt(encap).padStart(8)} (${gbit(encap, size).padStart(5)} Gbit/s)  ${fmt(decap).padStart(8)} (${gbit(decap, size).padStart(5)} Gbit/s)`,
  );
}

function detail(): void {
  console.log('\nPer-packet costs behind src/esp/sa.ts (ns per packet, 1400 octets unless noted):');
  const pt = randomBytes(1400);
  const raw = randomBytes(16);
  const ns = (pps: number): string => `${(1e9 / pps).toFixed(0)} ns`;
  const rows: [string, () => void][] = [
    ['AES-128-GCM, raw key Buffer per packet', () => { const c = createCipheriv('aes-128-gcm', raw, nonce); c.setAAD(aad); c.update(pt); c.final(); c.getAuthTag(); }],
    ['AES-128-GCM, KeyObject made once per SA', () => { const c = createCipheriv('aes-128-gcm', gcmKey, nonce); c.setAAD(aad); c.update(pt); c.final(); c.getAuthTag(); }],
    ['AES-128-GCM, KeyObject, 64 octets', () => { const c = createCipheriv('aes-128-gcm', gcmKey, nonce); c.setAAD(aad); c.update(pt.subarray(0, 64)); c.final(); c.getAuthTag(); }],
    ['AES-128-GCM, KeyObject, two update() calls', () => { const c = createCipheriv('aes-128-gcm', gcmKey, nonce); c.setAAD(aad); c.update(pt.subarray(0, 1396)); c.update(pt.subarray(1396)); c.final(); c.getAuthTag(); }],
    ['HMAC-SHA256, raw key Buffer', () => { createHmac('sha256', raw).update(pt).digest(); }],
    ['HMAC-SHA256, KeyObject', () => { createHmac('sha256', macKey).update(pt).digest(); }],
    ['CBC IV: randomBytes(16) per packet', () => { randomBytes(16); }],
  ];
  const pool = Buffer.allocUnsafe(4096);
  let at = pool.length;
  const out = Buffer.alloc(16);
  rows.push(['CBC IV: slice of a 4 KiB randomFillSync pool', () => { if (at + 16 > pool.length) { randomFillSync(pool); at = 0; } pool.copy(out, 0, at, at + 16); at += 16; }]);
  rows.push(['Buffer.allocUnsafe(1500)', () => { Buffer.allocUnsafe(1500); }]);
  rows.push(['Buffer copy of 1400 octets', () => { pt.copy(pool, 0, 0, 1400); }]);
  for (const [name, fn] of rows) console.log(`  ${name.padEnd(48)} ${ns(rate(fn)).padStart(9)}`);
}

console.log(`styx ESP engine micro-benchmark: node ${process.version}, one core, best of ${RUNS} x ${SECONDS}s per figure, batches of ${BATCH}, ESN on, tunnel mode`);
console.log('packets per CPU-second (Gbit/s counts inner octets)');
console.log(`${'suite'.padEnd(31)} ${'bytes'.padStart(5)}  ${'openssl'.padStart(8)}  ${'node'.padStart(8)}  ${'seal'.padStart(8)}  ${'encap'.padStart(8)}                ${'decap'.padStart(8)}`);
for (const s of SUITES) for (const size of [64, 1400]) benchSuite(s, size);
if (DETAIL) detail();
