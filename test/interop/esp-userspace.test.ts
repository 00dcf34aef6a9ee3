/**
 * styx's userspace ESP data plane against strongSwan's kernel-libipsec: real
 * traffic between the two inner networks (10.1.0.1 <-> 10.2.0.1) through
 * ESP in UDP, for AES-GCM-16, ChaCha20-Poly1305 and AES-CBC + HMAC-SHA2-256,
 * with styx as initiator and as responder; then real ESP packets charon sent,
 * captured and resent tampered, replayed, truncated and with an unknown SPI.
 *
 * styxd (dataplane: userspace, TUN styx0) runs in the left namespace,
 * charon (kernel-libipsec, TUN ipsec0, encap = yes) in the right one. Each
 * describe block has its own topology and daemons; its tests run in order
 * and the later ones use the SA the one before left up.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, ping, pskSwanctlConf, requireInterop, run, sleep, startCharon, startStyxd, summarizeSa, waitFor,
  type CharonHandle, type ChildSaInfo, type IkeSaInfo, type ParsedSa, type StyxdHandle, type Topology,
} from './harness.js';
import type { ParsedChildSa } from './lib/charon-log.js';
import { iperfTcp, type IperfResult } from './lib/iperf.js';
import { startCapture, udpFromPcap, type CapturedUdp } from './lib/pcap.js';

const PSK = 'styx userspace ESP interop psk, not a secret';
const STYX_CONN = 'peer';
const CHARON_CONN = 'styx';
const CHILD = 'net';
const NAT_T_PORT = 4500;
/** Short transfers: enough to fill the pipe and cross many packets, few enough to keep the suite quick. */
const IPERF_SECONDS = 2;
/** styx's default TUN MTU; libipsec's ipsec0 defaults to the same 1400. */
const TUN_MTU = 1400;

/**
 * styx stats keys for the ESP engine's drop counters. The engine keeps them
 * (EspEngine.counters(), EspSa.replayDrops/authFailures); the daemon must
 * expose them for this suite to see them.
 */
const ESP_STAT = {
  replayDrops: 'esp.replayDrops',
  authFailures: 'esp.authFailures',
  truncated: 'esp.truncated',
  unknownSpi: 'esp.unknownSpi',
  internalErrors: 'esp.internalErrors',
} as const;

// ---------------------------------------------------------------------------
// Setup

interface EspSuite {
  tag: string;
  ike: string;
  esp: string;
  /** What charon lists for the CHILD_SA. */
  charonEncr: string;
  charonInteg?: string;
}

const SUITES: EspSuite[] = [
  { tag: 'gcm', ike: 'aes128-sha256-x25519', esp: 'aes128gcm16', charonEncr: 'AES_GCM_16' },
  { tag: 'chacha', ike: 'aes128-sha256-x25519', esp: 'chacha20poly1305', charonEncr: 'CHACHA20_POLY1305' },
  { tag: 'cbc', ike: 'aes128-sha256-x25519', esp: 'aes128-sha256', charonEncr: 'AES_CBC', charonInteg: 'HMAC_SHA2_256_128' },
];

function styxYaml(t: Topology, s: EspSuite): string {
  const { left, right } = t;
  return `daemon:
  listen: [${left.outer4}]
  dataplane: userspace
connections:
  ${STYX_CONN}:
    version: 2
    local_addrs: [${left.outer4}]
    remote_addrs: [${right.outer4}]
    proposals: [${s.ike}]
    local: { auth: psk, id: ${left.outer4} }
    remote: { auth: psk, id: ${right.outer4} }
    start_action: none
    children:
      ${CHILD}:
        local_ts: [${left.innerNet4}]
        remote_ts: [${right.innerNet4}]
        esp_proposals: [${s.esp}]
        start_action: none
secrets:
  - ids: [${left.outer4}, ${right.outer4}]
    psk: "${PSK}"
`;
}

class Peers {
  topo: Topology | undefined;
  styxd: StyxdHandle | undefined;
  charond: CharonHandle | undefined;
  get styx(): StyxdHandle { assert.ok(this.styxd, 'styxd was not started'); return this.styxd; }
  get charon(): CharonHandle { assert.ok(this.charond, 'charon was not started'); return this.charond; }
  get t(): Topology { assert.ok(this.topo, 'no topology'); return this.topo; }
}

function usePeers(s: EspSuite): Peers {
  const p = new Peers();
  before(async function () {
    requireInterop(this, { charon: true, styxd: true });
    const topo = await createTopology(`esp${s.tag}`);
    p.topo = topo;
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml(topo, s));
    const charonConf = pskSwanctlConf({
      name: CHARON_CONN, child: CHILD,
      localAddr: topo.right.outer4, remoteAddr: topo.left.outer4,
      localTs: topo.right.innerNet4, remoteTs: topo.left.innerNet4,
      psk: PSK, proposals: s.ike, espProposals: s.esp,
      // libipsec carries ESP only in UDP; styx's userspace plane forces it too.
      encap: true,
    });
    const [sd, cd] = await Promise.allSettled([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=info' }),
      // Key dumps are of no use here and slow charon down on every CHILD_SA.
      startCharon(topo.right.ns, topo.dir('charon-r'), { swanctl: charonConf, logLevels: { ike: 1, chd: 1, net: 1 } }),
    ]);
    if (sd.status === 'fulfilled') p.styxd = sd.value;
    if (cd.status === 'fulfilled') p.charond = cd.value;
    if (sd.status === 'rejected') throw sd.reason;
    if (cd.status === 'rejected') throw cd.reason;
  });
  afterEach(function () {
    dumpLogsOnFailure(this, { styxd: p.styxd?.logPath, charon: p.charond?.logPath }, 120);
  });
  after(async function () {
    await Promise.all([p.styxd?.stop(), p.charond?.stop()]);
    await p.topo?.teardown();
  });
  return p;
}

// ---------------------------------------------------------------------------
// Reading both sides

function styxUp(sa: IkeSaInfo | undefined): boolean {
  return sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
}

function charonUp(sa: ParsedSa | undefined): boolean {
  return sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
}

async function bothUp(p: Peers): Promise<{ sa: IkeSaInfo; csa: ParsedSa }> {
  const [[sa], [csa]] = await Promise.all([
    p.styx.waitForSas((s) => s.length === 1 && styxUp(s[0])),
    p.charon.waitForSas((s) => s.length === 1 && charonUp(s[0])),
  ]);
  return { sa: sa!, csa: csa! };
}

async function reset(p: Peers): Promise<void> {
  if ((await p.styx.listJson()).length > 0) await p.styx.styx(['terminate', STYX_CONN]);
  if ((await p.charon.listSas()).length > 0) await p.charon.terminate(CHARON_CONN).catch(() => undefined);
  await Promise.all([p.styx.waitForSas((s) => s.length === 0), p.charon.waitForSas((s) => s.length === 0)]);
}

async function styxChild(p: Peers): Promise<ChildSaInfo> {
  const [sa] = await p.styx.waitForSas((s) => s.length === 1 && styxUp(s[0]));
  return sa!.children[0]!;
}

async function charonChild(p: Peers): Promise<ParsedChildSa> {
  const [sa] = await p.charon.waitForSas((s) => s.length === 1 && charonUp(s[0]));
  return sa!.children[0]!;
}

async function styxStats(p: Peers): Promise<Record<string, number>> {
  const out = await p.styx.styx(['stats', '--json']);
  const v: unknown = JSON.parse(out);
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `styx stats --json: ${out}`);
  return v as Record<string, number>;
}

function stat(s: Record<string, number>, key: string): number {
  const v = s[key];
  assert.equal(typeof v, 'number', `styx stats has no counter ${key}: ${JSON.stringify(s)}`);
  return v!;
}

/** Per-SA traffic as both daemons count it, in the direction each one names. */
interface Counts { styxBytesIn: number; styxBytesOut: number; styxPktsIn: number; styxPktsOut: number; charonBytesIn: number; charonBytesOut: number; charonPktsIn: number; charonPktsOut: number }

async function counts(p: Peers): Promise<Counts> {
  const [s, c] = await Promise.all([styxChild(p), charonChild(p)]);
  return {
    styxBytesIn: Number(s.bytesIn), styxBytesOut: Number(s.bytesOut), styxPktsIn: Number(s.packetsIn), styxPktsOut: Number(s.packetsOut),
    charonBytesIn: c.bytesIn, charonBytesOut: c.bytesOut, charonPktsIn: c.packetsIn, charonPktsOut: c.packetsOut,
  };
}

function delta(a: Counts, b: Counts): Counts {
  const out = { ...b };
  for (const k of Object.keys(out) as (keyof Counts)[]) out[k] = b[k] - a[k];
  return out;
}

// ---------------------------------------------------------------------------
// Traffic

async function pingBothWays(p: Peers): Promise<void> {
  const { left, right } = p.t;
  const lr = await ping(left.ns, right.inner4, { from: left.inner4, count: 3 });
  assert.equal(lr.received, lr.sent, `ping ${left.inner4} -> ${right.inner4} through the tunnel:\n${lr.output}`);
  const rl = await ping(right.ns, left.inner4, { from: right.inner4, count: 3 });
  assert.equal(rl.received, rl.sent, `ping ${right.inner4} -> ${left.inner4} through the tunnel:\n${rl.output}`);
}

/**
 * Pings whose inner packets fill the TUN MTU exactly (with DF) and pings
 * whose inner packets are IP fragments, each way: the outer ESP-in-UDP
 * datagram of a full-MTU packet must still fit the link, and fragments
 * (no ports to match) must pass the SA's selectors.
 */
async function bigPingsBothWays(p: Peers): Promise<void> {
  const { left, right } = p.t;
  const cases: [string, string[]][] = [['full TUN MTU, DF set', ['-s', String(TUN_MTU - 28), '-M', 'do']], ['fragmented inner packets', ['-s', '3000']]];
  for (const [what, opts] of cases) {
    for (const [from, to] of [[left, right], [right, left]] as const) {
      const r = await ping(from.ns, to.inner4, { from: from.inner4, count: 2, extra: opts });
      assert.ok(r.received === 2 && r.sent === 2, `ping ${from.inner4} -> ${to.inner4}, ${what}:\n${r.output}`);
    }
  }
}

const mbit = (r: IperfResult): string => `${(r.receivedBitsPerSecond / 1e6).toFixed(0)} Mbit/s`;

/**
 * Pings and a TCP transfer each way, then checks that every octet iperf3
 * moved was counted by the SA that carried it, on both daemons.
 */
async function trafficBothWays(p: Peers, label: string): Promise<void> {
  const { left, right } = p.t;
  const c0 = await counts(p);
  await pingBothWays(p);
  await bigPingsBothWays(p);
  const lr = await iperfTcp({ clientNs: left.ns, clientAddr: left.inner4, serverNs: right.ns, serverAddr: right.inner4, seconds: IPERF_SECONDS });
  const rl = await iperfTcp({ clientNs: right.ns, clientAddr: right.inner4, serverNs: left.ns, serverAddr: left.inner4, seconds: IPERF_SECONDS });
  const d = delta(c0, await counts(p));
  console.log(`      ${label}: styx->charon ${mbit(lr)} (${lr.retransmits} retransmits), charon->styx ${mbit(rl)} (${rl.retransmits} retransmits); `
    + `ESP packets styx out/charon in ${d.styxPktsOut}/${d.charonPktsIn}, charon out/styx in ${d.charonPktsOut}/${d.styxPktsIn}`);

  assert.ok(lr.receivedBytes > 0, `iperf3 ${left.inner4} -> ${right.inner4} moved nothing: ${JSON.stringify(lr)}`);
  assert.ok(rl.receivedBytes > 0, `iperf3 ${right.inner4} -> ${left.inner4} moved nothing: ${JSON.stringify(rl)}`);
  const view = JSON.stringify({ counters: d, lr, rl });
  // Inner datagrams carry the TCP payload plus headers, so each SA counted at least what iperf3 received.
  assert.ok(d.styxBytesOut >= lr.receivedBytes, `styx's outbound SA counted fewer octets than crossed to charon: ${view}`);
  assert.ok(d.charonBytesIn >= lr.receivedBytes, `charon's inbound SA counted fewer octets than it received from styx: ${view}`);
  assert.ok(d.charonBytesOut >= rl.receivedBytes, `charon's outbound SA counted fewer octets than crossed to styx: ${view}`);
  assert.ok(d.styxBytesIn >= rl.receivedBytes, `styx's inbound SA counted fewer octets than it received from charon: ${view}`);
  // Six pings plus the transfers, each way: every one a packet on both SAs.
  for (const k of ['styxPktsIn', 'styxPktsOut', 'charonPktsIn', 'charonPktsOut'] as const) {
    assert.ok(d[k] > 6, `${k} rose by ${d[k]} only: ${view}`);
  }
}

function assertNegotiated(sa: IkeSaInfo, csa: ParsedSa, s: EspSuite, styxInitiated: boolean): void {
  const view = `styx: ${JSON.stringify(sa)}\ncharon: ${summarizeSa(csa)}`;
  assert.equal(sa.initiator, styxInitiated, view);
  const child = sa.children[0]!, cchild = csa.children[0]!;
  assert.equal(child.spiIn, cchild.spiOut, view);
  assert.equal(child.spiOut, cchild.spiIn, view);
  assert.equal(cchild.encrAlg, s.charonEncr, view);
  assert.equal(cchild.integAlg, s.charonInteg, view);
  assert.equal(cchild.encap, true, `charon must send ESP in UDP to styx: ${view}`);
  assert.equal(csa.remotePort, NAT_T_PORT, view);
}

// ---------------------------------------------------------------------------
// Forged ESP

/** Sends hex datagrams from inside a namespace, from `bindAddr` and an ephemeral port, one at a time. */
const SENDER = `
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
const [file, bindAddr, host, port] = process.argv.slice(1);
const list = JSON.parse(readFileSync(file, 'utf8'));
const sock = dgram.createSocket('udp4');
await new Promise((res) => sock.bind(0, bindAddr, res));
for (const hex of list) {
  await new Promise((res, rej) => sock.send(Buffer.from(hex, 'hex'), Number(port), host, (e) => (e ? rej(e) : res())));
  await new Promise((res) => setTimeout(res, 20));
}
console.log('sent ' + list.length + ' from port ' + sock.address().port);
sock.close();
`;

const HOLD_TABLE = 'styx_esp_hold';

/**
 * Makes the left namespace drop ESP-in-UDP from `from` before styxd reads
 * it, so packets can be captured that styx has never seen (fresh sequence
 * numbers). tcpdump sees them anyway: it taps the device, before netfilter.
 */
async function holdEsp(ns: string, from: string, dir: string): Promise<void> {
  const rules = `table inet ${HOLD_TABLE} {
  chain input {
    type filter hook input priority -10; policy accept;
    ip saddr ${from} udp dport ${NAT_T_PORT} @th,64,32 != 0 drop
  }
}
`;
  const file = join(dir, `${HOLD_TABLE}.nft`);
  writeFileSync(file, rules);
  await run(['nft', '-f', file], { ns });
}

async function releaseEsp(ns: string): Promise<void> {
  await run(['nft', 'delete', 'table', 'inet', HOLD_TABLE], { ns, allowFailure: true });
}

/** The ESP packets charon sent to styx's inbound SA, oldest first. */
function espFor(caps: CapturedUdp[], spiIn: string): Buffer[] {
  return caps.map((c) => c.payload).filter((b) => b.length >= 8 && b.readUInt32BE(0).toString(16).padStart(8, '0') === spiIn);
}

// ---------------------------------------------------------------------------
// 0. The pcap reader the forged-packet tests rely on, on hand-built files

describe('pcap reader for ESP captures (no daemons)', function () {
  function pcap(linkType: number, frames: Buffer[], bigEndian = false): Buffer {
    const h = Buffer.alloc(24);
    const w = (b: Buffer, v: number, at: number): void => { if (bigEndian) b.writeUInt32BE(v, at); else b.writeUInt32LE(v, at); };
    w(h, 0xa1b2c3d4, 0);
    if (bigEndian) { h.writeUInt16BE(2, 4); h.writeUInt16BE(4, 6); } else { h.writeUInt16LE(2, 4); h.writeUInt16LE(4, 6); }
    w(h, 262144, 16);
    w(h, linkType, 20);
    const recs = frames.map((f) => { const r = Buffer.alloc(16); w(r, 1, 0); w(r, f.length, 8); w(r, f.length, 12); return Buffer.concat([r, f]); });
    return Buffer.concat([h, ...recs]);
  }
  function ipv4Udp(payload: Buffer, o: { fragOff?: number; options?: number } = {}): Buffer {
    const ihl = 20 + (o.options ?? 0);
    const ip = Buffer.alloc(ihl + 8 + payload.length);
    ip[0] = 0x40 | (ihl / 4); ip.writeUInt16BE(ip.length, 2); ip.writeUInt16BE(o.fragOff ?? 0, 6); ip[8] = 64; ip[9] = 17;
    Buffer.from([192, 0, 2, 2]).copy(ip, 12); Buffer.from([192, 0, 2, 1]).copy(ip, 16);
    ip.writeUInt16BE(4500, ihl); ip.writeUInt16BE(4500, ihl + 2); ip.writeUInt16BE(8 + payload.length, ihl + 4);
    payload.copy(ip, ihl + 8);
    return ip;
  }
  const eth = (ip: Buffer): Buffer => Buffer.concat([Buffer.alloc(12, 0xaa), Buffer.from([0x08, 0x00]), ip]);
  const esp = Buffer.from('c0ffee0100000007' + '11'.repeat(40), 'hex');

  it('takes UDP payloads out of Ethernet frames, with and without IP options, in either byte order', function () {
    for (const be of [false, true]) {
      const got = udpFromPcap(pcap(1, [eth(ipv4Udp(esp)), eth(ipv4Udp(Buffer.from([0xff]), { options: 4 }))], be));
      assert.deepEqual(got.map((g) => [g.src, g.dst, g.srcPort, g.dstPort, g.payload.toString('hex')]), [
        ['192.0.2.2', '192.0.2.1', 4500, 4500, esp.toString('hex')],
        ['192.0.2.2', '192.0.2.1', 4500, 4500, 'ff'],
      ]);
    }
  });

  it('reads Linux cooked captures and leaves out fragments, non-IP frames and cut records', function () {
    const sll = Buffer.concat([Buffer.alloc(14), Buffer.from([0x08, 0x00]), ipv4Udp(esp)]);
    assert.equal(udpFromPcap(pcap(113, [sll]))[0]!.payload.toString('hex'), esp.toString('hex'));
    const arp = Buffer.concat([Buffer.alloc(12), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]);
    const frag = eth(ipv4Udp(esp, { fragOff: 0x2000 }));
    const whole = pcap(1, [arp, frag, eth(ipv4Udp(esp))]);
    assert.equal(udpFromPcap(whole).length, 1);
    assert.equal(udpFromPcap(whole.subarray(0, whole.length - 3)).length, 0);
    assert.throws(() => udpFromPcap(Buffer.alloc(24)), /bad magic/);
  });
});

// ---------------------------------------------------------------------------
// 1. Traffic, three ESP transforms, both roles; forged packets per transform

for (const s of SUITES) {
  describe(`userspace ESP with strongSwan kernel-libipsec: ${s.esp}`, function () {
    const p = usePeers(s);

    it('styx initiates: ping and a TCP transfer cross the tunnel both ways, both daemons count them', async function () {
      const r = await p.styx.styxRun(['initiate', STYX_CONN]);
      assert.equal(r.code, 0, `styx initiate failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
      const { sa, csa } = await bothUp(p);
      assertNegotiated(sa, csa, s, true);
      await trafficBothWays(p, `${s.esp}, styx initiator`);
    });

    it('charon initiates: ping and a TCP transfer cross the tunnel both ways, both daemons count them', async function () {
      await reset(p);
      await p.charon.initiate(CHILD, CHARON_CONN, 20);
      const { sa, csa } = await bothUp(p);
      assertNegotiated(sa, csa, s, false);
      await trafficBothWays(p, `${s.esp}, styx responder`);
    });

    it('drops and counts tampered, replayed, truncated and unknown-SPI ESP packets; traffic keeps flowing', async function () {
      const { left, right } = p.t;
      const [sa] = await p.styx.waitForSas((x) => x.length === 1 && styxUp(x[0]));
      const child = sa!.children[0]!;
      const stats0 = await styxStats(p);
      const c0 = await counts(p);

      // Real packets charon sealed for styx's inbound SA, which styx has not seen.
      const pcapFile = join(p.t.dir('capture'), `esp-${s.tag}.pcap`);
      await holdEsp(left.ns, right.outer4, p.t.dir('capture'));
      let caps: CapturedUdp[];
      try {
        const cap = await startCapture(left.ns, 'out0', `src host ${right.outer4} and udp dst port ${NAT_T_PORT} and udp[8:4] != 0`, pcapFile, { count: 4 });
        const held = await ping(right.ns, left.inner4, { from: right.inner4, count: 4, timeoutS: 1 });
        assert.equal(held.received, 0, `ESP from charon should have been held back:\n${held.output}`);
        const outcome = await Promise.race([cap.done.then(() => 'done' as const), sleep(10_000).then(() => 'timeout' as const)]);
        if (outcome === 'timeout') await cap.stop();
        caps = cap.read();
      } finally {
        await releaseEsp(left.ns);
      }
      const pkts = espFor(caps, child.spiIn);
      assert.equal(pkts.length, 4, `captured ${caps.length} datagrams, ${pkts.length} for SPI ${child.spiIn}`);
      const seqs = pkts.map((b) => b.readUInt32BE(4));
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `sequence numbers ${seqs.join(',')}`);

      const [p0, p1, p2, p3] = pkts as [Buffer, Buffer, Buffer, Buffer];
      const tampered = Buffer.from(p0);
      // A ciphertext octet well inside the packet: past header and IV, before the ICV.
      const at = Math.floor(tampered.length / 2);
      tampered[at] = tampered[at]! ^ 0x01;
      const truncated = p2.subarray(0, 12);
      const unknown = Buffer.from(p3);
      unknown.writeUInt32BE((unknown.readUInt32BE(0) ^ 0x5a5a5a5a) >>> 0 || 0x12345678, 0);
      const burst = [
        tampered,   // fresh sequence number, bad ICV: an authentication failure, and the window must not move
        p1,         // genuine and fresh: accepted
        p1,         // the same again: a replay
        p0,         // genuine, older than p1 but inside the window and never accepted: accepted
        truncated,  // SPI and a fresh sequence number, then too short for IV and ICV
        unknown,    // a SPI styx never gave out
      ];
      const file = join(p.t.dir('capture'), `burst-${s.tag}.json`);
      writeFileSync(file, JSON.stringify(burst.map((b) => b.toString('hex'))));
      const sent = await run([process.execPath, '--input-type=module', '-e', SENDER, file, right.outer4, left.outer4, String(NAT_T_PORT)],
        { ns: right.ns, timeoutMs: 30_000 });
      assert.match(sent.stdout, new RegExp(`sent ${burst.length} from port \\d+`));

      let stats1 = stats0;
      await waitFor('styxd to receive the forged ESP', 10_000, async () => {
        stats1 = await styxStats(p);
        return stat(stats1, 'net.esp') - stat(stats0, 'net.esp') >= burst.length ? true : undefined;
      }, 100);
      assert.ok(p.styx.running(), 'styxd exited');
      const c1 = await counts(p);
      // p1 and p0 reached the TUN, nothing else did (the source port did not matter).
      assert.equal(c1.styxPktsIn - c0.styxPktsIn, 2, `inbound SA packets before ${JSON.stringify(c0)} after ${JSON.stringify(c1)}`);

      // The SA survives, and no forged packet moved its endpoint.
      const [now] = await p.styx.waitForSas((x) => x.length === 1 && styxUp(x[0]));
      assert.deepEqual(now!.remote, sa!.remote);
      assert.deepEqual([now!.children[0]!.spiIn, now!.children[0]!.spiOut], [child.spiIn, child.spiOut]);
      assert.doesNotMatch(p.styx.logText(), /TypeError|RangeError|uncaught|internal error/i);

      const d = (k: string): number => stat(stats1, k) - stat(stats0, k);
      const view = JSON.stringify(stats1);
      assert.ok(d(ESP_STAT.authFailures) >= 1, `${ESP_STAT.authFailures} rose by ${d(ESP_STAT.authFailures)}: ${view}`);
      assert.ok(d(ESP_STAT.replayDrops) >= 1, `${ESP_STAT.replayDrops} rose by ${d(ESP_STAT.replayDrops)}: ${view}`);
      assert.ok(d(ESP_STAT.truncated) >= 1, `${ESP_STAT.truncated} rose by ${d(ESP_STAT.truncated)}: ${view}`);
      assert.ok(d(ESP_STAT.unknownSpi) >= 1, `${ESP_STAT.unknownSpi} rose by ${d(ESP_STAT.unknownSpi)}: ${view}`);
      assert.equal(d(ESP_STAT.internalErrors), 0, view);

      await pingBothWays(p);
    });
  });
}
