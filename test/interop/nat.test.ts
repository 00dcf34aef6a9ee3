/**
 * IKEv2 NAT traversal (RFC 7296 2.23, RFC 3948) through a real NAT: a Linux
 * router in its own namespace masquerades host A's private network
 * (10.0.0.0/24) to 198.51.100.1, source ports 20000-20099; host B sits
 * outside at 198.51.100.2 (lib/nat-topology.ts, `netns.sh nat-up`).
 *
 * styxd runs with the userspace data plane (TUN + ESP in UDP), charon with
 * kernel-libipsec, each on A or B depending on the block. Both send a
 * NAT_DETECTION_SOURCE_IP that cannot match, whatever the configuration
 * says: styx because its data plane carries ESP only in UDP (the daemon
 * forces `encap` on every connection), charon because kernel-libipsec has no
 * raw ESP either (it hashes a made-up address and logs nothing about it). So
 * each side always believes the *other* is behind a NAT (nat.remote); only
 * the "local" verdict, from the destination hash, tells where the NAT really
 * is, and that is what the tests assert.
 *
 * The last block has no NAT at all: styx with `encap: true` on the two-host
 * topology, to show what forced encapsulation puts on the wire.
 *
 * Each describe block has its own topology and daemons; its tests run in
 * order and the later ones use the SA the first one set up.
 *
 * The IKEv1 blocks at the end (RFC 3947) take the same paths with
 * `version: 1`: styx behind the NAT in Main Mode, strongSwan behind it in
 * Aggressive Mode, and the NAT forgetting its mappings with either side
 * behind it.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, ping, pskSwanctlConf, requireInterop, run, sleep, startCharon, startStyxd, summarizeSa, waitFor,
  type CharonHandle, type CharonOptions, type IkeSaInfo, type ParsedSa, type StyxdHandle,
} from './harness.js';
import { iperfTcp } from './lib/iperf.js';
import {
  createNatTopology, inRange, INITIAL_NAT_PORTS, natTKind,
  type NatTopology, type PortRange, type UdpMapping,
} from './lib/nat-topology.js';
import { startCapture, type Capture, type CapturedUdp } from './lib/pcap.js';

const PSK = 'styx NAT traversal psk, not a secret';
const STYX_CONN = 'peer';
const CHARON_CONN = 'styx';
const CHILD = 'net';
const IKE_PORT = 500;
const NAT_T_PORT = 4500;
const ID_A = 'a.nat.styx.test';
const ID_B = 'b.nat.styx.test';
/** The range the router moves to when a test makes it forget its mappings. */
const REMAPPED_PORTS: PortRange = { from: 30000, to: 30099 };
const IPERF_SECONDS = 2;
/**
 * How long the tunnel may take to move after the NAT forgets its mapping:
 * the side behind the NAT sends a keepalive within 2 s and a DPD request
 * within 3 s; five DPD intervals leave room for a lost datagram and a slow
 * machine. A bound for waiting, not a measurement.
 */
const RECOVERY_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------
// Configuration

interface StyxSide {
  /** Our address and the peer's ('%any' for a responder that takes whoever comes). */
  local: string;
  remote: string;
  localId: string;
  remoteId: string;
  localNet: string;
  remoteNet: string;
  keepalive?: string;
  dpdDelay?: string;
  encap?: boolean;
  version?: 1 | 2;
  aggressive?: boolean;
}

function styxYaml(o: StyxSide): string {
  return `daemon:
  listen: [${o.local}]
  dataplane: userspace
${o.keepalive ? `  keepalive: ${o.keepalive}\n` : ''}connections:
  ${STYX_CONN}:
    version: ${o.version ?? 2}
${o.aggressive ? '    aggressive: yes\n' : ''}    local_addrs: [${o.local}]
    remote_addrs: ["${o.remote}"]
    proposals: [aes128-sha256-modp2048]
    local: { auth: psk, id: ${o.localId} }
    remote: { auth: psk, id: ${o.remoteId} }
    start_action: none
${o.dpdDelay ? `    dpd_delay: ${o.dpdDelay}\n` : ''}${o.encap !== undefined ? `    encap: ${o.encap}\n` : ''}    children:
      ${CHILD}:
        local_ts: [${o.localNet}]
        remote_ts: [${o.remoteNet}]
        esp_proposals: [aes128gcm16]
        start_action: none
secrets:
  - ids: [${o.localId}, ${o.remoteId}]
    psk: "${PSK}"
`;
}

interface CharonSide {
  local: string;
  remote: string;
  localId: string;
  remoteId: string;
  localNet: string;
  remoteNet: string;
  /** strongswan.conf charon.keep_alive: NAT keepalives when charon is behind the NAT (default 20s). */
  keepAlive?: string;
  dpdDelay?: string;
  version?: 1 | 2;
  aggressive?: boolean;
}

function charonOptions(o: CharonSide): CharonOptions {
  return {
    swanctl: pskSwanctlConf({
      name: CHARON_CONN, child: CHILD, version: o.version ?? 2,
      localAddr: o.local, remoteAddr: o.remote, localId: o.localId, remoteId: o.remoteId,
      localTs: o.localNet, remoteTs: o.remoteNet, psk: PSK,
      proposals: 'aes128-sha256-modp2048', espProposals: 'aes128gcm16',
      // Needed nowhere in this file: through the NAT encapsulation follows from
      // detection, and without one kernel-libipsec fakes NAT detection anyway.
      encap: false,
      extra: { ...(o.dpdDelay ? { dpd_delay: o.dpdDelay } : {}), ...(o.aggressive ? { aggressive: true } : {}) },
    }),
    ...(o.keepAlive ? { charon: { keep_alive: o.keepAlive } } : {}),
    logLevels: { ike: 2, chd: 1, net: 2, enc: 1, knl: 1 },
  };
}

/** styx on one host of the NAT topology, charon on the other. */
class NatPeers {
  topo: NatTopology | undefined;
  styxd: StyxdHandle | undefined;
  charond: CharonHandle | undefined;
  captures: Capture[] = [];
  get styx(): StyxdHandle { assert.ok(this.styxd, 'styxd was not started'); return this.styxd; }
  get charon(): CharonHandle { assert.ok(this.charond, 'charon was not started'); return this.charond; }
  get t(): NatTopology { assert.ok(this.topo, 'no topology'); return this.topo; }

  /** A capture stopped with the block, whatever the tests did. */
  async capture(ns: string, iface: string, filter: string, name: string): Promise<Capture> {
    const c = await startCapture(ns, iface, filter, join(this.t.dir('captures'), `${name}.pcap`));
    this.captures.push(c);
    return c;
  }
}

/**
 * Registers the block's hooks. `styxBehindNat` puts styx on A (private side)
 * and charon on B, otherwise the other way round; the host behind the NAT is
 * the one that initiates, as it must: B cannot reach A before A made a mapping.
 */
function useNatPeers(tag: string, styxBehindNat: boolean, extra: { styx?: Partial<StyxSide>; charon?: Partial<CharonSide> } = {}): NatPeers {
  const p = new NatPeers();
  before(async function () {
    requireInterop(this, { charon: true, styxd: true });
    const missing = ['nft', 'conntrack', 'tcpdump', 'iperf3'].filter((c) => !onPath(c));
    if (missing.length) {
      const msg = `NAT tests need ${missing.join(', ')} (scripts/lib/deps.sh installs them)`;
      if (process.env.CI === 'true') throw new Error(msg);
      console.log(`      skipping: ${msg}`);
      this.skip();
    }
    const topo = await createNatTopology(tag);
    p.topo = topo;
    const { a, b } = topo;
    const [styxHost, charonHost] = styxBehindNat ? [a, b] : [b, a];
    const dir = topo.dir('styxd');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml({
      local: styxHost.addr4, remote: styxBehindNat ? b.addr4 : '%any',
      localId: styxBehindNat ? ID_A : ID_B, remoteId: styxBehindNat ? ID_B : ID_A,
      localNet: styxHost.innerNet4, remoteNet: charonHost.innerNet4,
      ...extra.styx,
    }));
    const [sd, cd] = await Promise.allSettled([
      startStyxd(styxHost.ns, conf, { dir, logLevel: 'ike=debug,net=debug' }),
      startCharon(charonHost.ns, topo.dir('charon'), charonOptions({
        local: charonHost.addr4, remote: styxBehindNat ? '%any' : b.addr4,
        localId: styxBehindNat ? ID_B : ID_A, remoteId: styxBehindNat ? ID_A : ID_B,
        localNet: charonHost.innerNet4, remoteNet: styxHost.innerNet4,
        ...extra.charon,
      })),
    ]);
    if (sd.status === 'fulfilled') p.styxd = sd.value;
    if (cd.status === 'fulfilled') p.charond = cd.value;
    if (sd.status === 'rejected') throw sd.reason;
    if (cd.status === 'rejected') throw cd.reason;
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && p.topo) {
      const m = await p.topo.udpMappings().catch((e: Error) => e.message);
      console.log(`\n----- router mappings -----\n${JSON.stringify(m, null, 1)}`);
    }
    dumpLogsOnFailure(this, { styxd: p.styxd?.logPath, charon: p.charond?.logPath }, 150);
  });
  after(async function () {
    await Promise.all(p.captures.map((c) => c.stop()));
    await Promise.all([p.styxd?.stop(), p.charond?.stop()]);
    await p.topo?.teardown();
  });
  return p;
}

/** Whether a command is installed; sbin directories count even when PATH leaves them out. */
function onPath(cmd: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'];
  return dirs.some((d) => d !== '' && existsSync(join(d, cmd)));
}

// ---------------------------------------------------------------------------
// Reading both sides

function styxUp(sa: IkeSaInfo | undefined): boolean {
  return sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
}

function charonUp(sa: ParsedSa | undefined): boolean {
  return sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
}

interface Pair { styx: StyxdHandle; charon: CharonHandle }

async function bothUp(p: Pair): Promise<{ sa: IkeSaInfo; csa: ParsedSa }> {
  const [[sa], [csa]] = await Promise.all([
    p.styx.waitForSas((s) => s.length === 1 && styxUp(s[0])),
    p.charon.waitForSas((s) => s.length === 1 && charonUp(s[0])),
  ]);
  return { sa: sa!, csa: csa! };
}

async function styxInitiate(p: Pair): Promise<void> {
  const r = await p.styx.styxRun(['initiate', STYX_CONN]);
  assert.equal(r.code, 0, `styx initiate failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
  assert.match(r.stdout, /established/, `styx initiate printed: ${JSON.stringify(r.stdout)}`);
}

async function styxStats(p: Pair): Promise<Record<string, number>> {
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

/** swanctl --list-sas prints nat-local, nat-remote, nat-fake as 'yes' when set and leaves them out otherwise. */
function charonFlag(sa: ParsedSa, key: 'nat-local' | 'nat-remote' | 'nat-fake' | 'nat-any'): boolean {
  return sa.raw[key] === 'yes';
}

const view = (sa: IkeSaInfo, csa: ParsedSa): string =>
  `styx: ${JSON.stringify({ nat: sa.nat, local: sa.local, remote: sa.remote })}\ncharon: ${summarizeSa(csa)} ` +
  `${csa.localHost}[${csa.localPort}] -> ${csa.remoteHost}[${csa.remotePort}] nat-local=${String(csa.raw['nat-local'])} nat-remote=${String(csa.raw['nat-remote'])} nat-fake=${String(csa.raw['nat-fake'])}`;

interface Hosts { a: { ns: string; inner4: string }; b: { ns: string; inner4: string } }

/** Pings between the inner networks, both ways; every packet must come back. */
async function pingBoth(h: Hosts, what: string): Promise<void> {
  const ab = await ping(h.a.ns, h.b.inner4, { from: h.a.inner4, count: 5 });
  assert.equal(ab.received, ab.sent, `${what}: ping ${h.a.inner4} -> ${h.b.inner4}:\n${ab.output}`);
  const ba = await ping(h.b.ns, h.a.inner4, { from: h.b.inner4, count: 5 });
  assert.equal(ba.received, ba.sent, `${what}: ping ${h.b.inner4} -> ${h.a.inner4}:\n${ba.output}`);
}

/** The router's mapping of A's NAT-T socket toward B's. */
function natTMapping(ms: UdpMapping[], t: NatTopology): UdpMapping | undefined {
  return ms.find((m) => m.inside.address === t.a.addr4 && m.inside.port === NAT_T_PORT && m.peer.address === t.b.addr4 && m.peer.port === NAT_T_PORT);
}

const fromTo = (d: CapturedUdp): string => `${d.src}:${d.srcPort} -> ${d.dst}:${d.dstPort} ${natTKind(d.payload)}`;

/**
 * The capture once `pred` holds for it. tcpdump hands packets to the file
 * in blocks, up to about a second after they crossed the wire, so what a
 * test just caused is waited for rather than read at once.
 */
async function captured(c: Capture, what: string, pred: (seen: CapturedUdp[]) => boolean, timeoutMs = 5000): Promise<CapturedUdp[]> {
  let last: CapturedUdp[] = [];
  try {
    return await waitFor(what, timeoutMs, () => { last = c.read(); return pred(last) ? last : undefined; }, 100);
  } catch (e) {
    throw new Error(`${(e as Error).message}; the capture holds:\n${last.map(fromTo).join('\n')}`);
  }
}

/**
 * Source ports the router used toward B, in capture order, split where they
 * leave `before` for `after`; fails unless every port is in one of the two
 * ranges and none from `before` follows one from `after`.
 */
function portsAcrossRemap(seen: CapturedUdp[], router: string, before: (port: number) => boolean, after: PortRange): void {
  const ports = seen.filter((d) => d.src === router).map((d) => d.srcPort);
  const firstNew = ports.findIndex((port) => inRange(port, after));
  const text = ports.join(' ');
  assert.ok(firstNew > 0, `no datagram from the old mapping, then the new one: ${text}`);
  assert.ok(ports.slice(0, firstNew).every(before), `before the remap: ${text}`);
  assert.ok(ports.slice(firstNew).every((port) => inRange(port, after)), `an old port came back after the remap: ${text}`);
}

// ---------------------------------------------------------------------------
// 1 and 4. styx behind the NAT, initiating

describe('IKEv2 NAT-T: styx behind the NAT initiates to strongSwan outside', function () {
  // Keepalives every second, so the keepalive test sees several in a few seconds.
  const p = useNatPeers('styxbehind', true, { styx: { keepalive: '1s' } });
  let atA: Capture | undefined;
  let atB: Capture | undefined;
  let mappedPort = 0;

  it('sees the NAT on its own side, floats IKE to 4500 and carries ping and TCP between the inner networks', async function () {
    const { a, b, router } = p.t;
    // From before the first packet: what styx sends (before the NAT) and what B gets (after it).
    atA = await p.capture(a.ns, a.iface, `udp port ${IKE_PORT} or udp port ${NAT_T_PORT}`, 'a');
    atB = await p.capture(b.ns, b.iface, `udp port ${IKE_PORT} or udp port ${NAT_T_PORT}`, 'b');
    await styxInitiate(p);
    const { sa, csa } = await bothUp(p);
    const v = view(sa, csa);

    // charon's NAT_DETECTION_DESTINATION_IP hashes 198.51.100.1 and a port of
    // the router's, not what styx bound: styx is behind a NAT.
    assert.equal(sa.nat.local, true, v);
    assert.equal(sa.initiator, true, v);
    assert.deepEqual([sa.local.address, sa.local.port], [a.addr4, NAT_T_PORT], v);
    assert.deepEqual([sa.remote.address, sa.remote.port], [b.addr4, NAT_T_PORT], v);
    assert.equal(sa.children[0]!.encap, true, v);
    // charon sees A as the router's public address and a port from its range,
    // and knows it is not behind a NAT itself.
    assert.equal(csa.remoteHost, router.outside4, v);
    assert.ok(inRange(csa.remotePort, INITIAL_NAT_PORTS), v);
    assert.equal(csa.localPort, NAT_T_PORT, v);
    assert.equal(charonFlag(csa, 'nat-remote'), true, v);
    assert.equal(charonFlag(csa, 'nat-local'), false, v);
    assert.equal(csa.children[0]!.encap, true, v);
    mappedPort = csa.remotePort;

    const m = natTMapping(await p.t.udpMappings(), p.t);
    assert.ok(m, `the router has no mapping for ${a.addr4}:${NAT_T_PORT} -> ${b.addr4}:${NAT_T_PORT}: ${JSON.stringify(await p.t.udpMappings())}`);
    assert.deepEqual(m.outside, { address: router.outside4, port: mappedPort });
    assert.equal(m.replied, true);

    await pingBoth(p.t, 'through the NAT');
    const r = await iperfTcp({ serverNs: b.ns, serverAddr: b.inner4, clientNs: a.ns, clientAddr: a.inner4, seconds: IPERF_SECONDS });
    assert.ok(r.receivedBytes > 100_000, `iperf3 ${a.inner4} -> ${b.inner4} moved only ${r.receivedBytes} octets`);
    const [after] = await p.styx.listJson();
    const child = after!.children[0]!;
    assert.ok(BigInt(child.bytesOut) >= BigInt(r.receivedBytes), `styx's outbound SA counted ${child.bytesOut} octets, iperf3 received ${r.receivedBytes}`);

    // On the wire at B: IKE_SA_INIT on 500, everything after it on 4500,
    // all from the router's address; IKE, ESP (and keepalives) from styx
    // share the one mapping charon lists.
    const seenB = await captured(atB, 'ESP both ways at B', (seen) =>
      seen.some((d) => d.src === router.outside4 && natTKind(d.payload) === 'esp') &&
      seen.some((d) => d.dst === router.outside4 && natTKind(d.payload) === 'esp'));
    const fromA = seenB.filter((d) => d.src === router.outside4);
    assert.ok(fromA.length > 0, 'B saw nothing from the router');
    assert.equal(fromA[0]!.dstPort, IKE_PORT, `first datagram at B: ${fromTo(fromA[0]!)}`);
    assert.ok(inRange(fromA[0]!.srcPort, INITIAL_NAT_PORTS), fromTo(fromA[0]!));
    const lastOn500 = seenB.map((d) => d.dstPort === IKE_PORT || d.srcPort === IKE_PORT).lastIndexOf(true);
    const firstOn4500 = seenB.findIndex((d) => d.dstPort === NAT_T_PORT || d.srcPort === NAT_T_PORT);
    assert.ok(firstOn4500 > lastOn500, `port 500 used after the float:\n${seenB.map(fromTo).join('\n')}`);
    const natT = fromA.filter((d) => d.dstPort === NAT_T_PORT);
    assert.ok(natT.every((d) => d.srcPort === mappedPort), `datagrams to 4500 from more than one mapping:\n${natT.map(fromTo).join('\n')}`);
    const kinds = new Set(natT.map((d) => natTKind(d.payload)));
    assert.ok(kinds.has('ike') && kinds.has('esp'), `B got ${[...kinds].join(', ')} from the router on 4500`);
    const toA = seenB.filter((d) => d.dst === router.outside4 && d.srcPort === NAT_T_PORT);
    assert.ok(toA.some((d) => natTKind(d.payload) === 'esp' && d.dstPort === mappedPort), 'no ESP from B to the mapped port');
    // Before the NAT, styx sends everything after IKE_SA_INIT from 4500 to 4500.
    const seenA = await captured(atA, 'ESP from styx at A', (seen) => seen.some((d) => d.src === a.addr4 && natTKind(d.payload) === 'esp'));
    const fromStyx = seenA.filter((d) => d.src === a.addr4 && d.srcPort === NAT_T_PORT);
    assert.ok(fromStyx.length > 0 && fromStyx.every((d) => d.dst === b.addr4 && d.dstPort === NAT_T_PORT), fromStyx.map(fromTo).join('\n'));
  });

  it('sends a NAT keepalive to B every second (keepalive: 1s), each one counted in styx stats', async function () {
    assert.ok(atA && atB, 'no captures from the previous test');
    const { a, b, router } = p.t;
    const keepalives = (c: CapturedUdp[]): CapturedUdp[] => c.filter((d) =>
      d.src === a.addr4 && d.srcPort === NAT_T_PORT && d.dst === b.addr4 && d.dstPort === NAT_T_PORT && natTKind(d.payload) === 'keepalive');
    const n0 = keepalives(atA.read()).length;
    const t0 = performance.now();
    await sleep(5000);
    const n1 = keepalives(atA.read()).length;
    const windowS = (performance.now() - t0) / 1000;
    // One a second, give or take one at each edge of the window and one for
    // the capture's own delay in handing packets over (see captured()).
    const count = n1 - n0, lo = Math.floor(windowS) - 2, hi = Math.ceil(windowS) + 2;
    assert.ok(count >= lo && count <= hi, `${count} keepalives in ${windowS.toFixed(1)} s with keepalive: 1s (expected ${lo}..${hi})`);

    // The capture began before the SA existed, so it holds every keepalive
    // styx ever sent: the counter read before it must not exceed what is on
    // the wire, and what is on the wire must not exceed the counter read after.
    const k = stat(await styxStats(p), 'net.keepalivesSent');
    await waitFor(`${k} keepalives on the wire`, 5000, () => (keepalives(atA!.read()).length >= k ? true : undefined));
    const seen = keepalives(atA.read()).length;
    const k2 = stat(await styxStats(p), 'net.keepalivesSent');
    assert.ok(k <= seen && seen <= k2, `styx counted ${k} then ${k2} keepalives, the wire carried ${seen}`);

    // They cross the NAT on the same mapping as IKE and ESP, so they keep that one alive.
    const atBKeepalives = (await captured(atB, `${seen} keepalives at B`, (c) => c.filter((d) => natTKind(d.payload) === 'keepalive').length >= seen))
      .filter((d) => natTKind(d.payload) === 'keepalive');
    assert.ok(atBKeepalives.every((d) => d.src === router.outside4 && d.srcPort === mappedPort && d.dstPort === NAT_T_PORT),
      atBKeepalives.map(fromTo).join('\n'));
    // charon, outside the NAT, sends none.
    assert.equal(atB.read().filter((d) => d.src === b.addr4 && natTKind(d.payload) === 'keepalive').length, 0);
  });
});

// ---------------------------------------------------------------------------
// 2 and 3. strongSwan behind the NAT, initiating to styx

describe('IKEv2 NAT-T: strongSwan behind the NAT initiates to styx outside', function () {
  // charon keeps its mapping alive every 2 s and checks liveness after 3 s of silence.
  const p = useNatPeers('charonbehind', false, { charon: { keepAlive: '2s', dpdDelay: '3s' } });

  it('styx sees the NAT on the peer\'s side only, answers to the mapped port on 4500 and carries traffic', async function () {
    const { a, b, router } = p.t;
    await p.charon.initiate(CHILD, CHARON_CONN, 20);
    const { sa, csa } = await bothUp(p);
    const v = view(sa, csa);
    assert.equal(sa.initiator, false, v);
    assert.equal(sa.nat.remote, true, v);
    // charon's destination hash names B's own address and port: no NAT on styx's side.
    assert.equal(sa.nat.local, false, v);
    assert.deepEqual([sa.local.address, sa.local.port], [b.addr4, NAT_T_PORT], v);
    assert.equal(sa.remote.address, router.outside4, v);
    assert.ok(inRange(sa.remote.port, INITIAL_NAT_PORTS), v);
    assert.equal(sa.children[0]!.encap, true, v);
    assert.equal(charonFlag(csa, 'nat-local'), true, v);
    assert.deepEqual([csa.localHost, csa.localPort, csa.remoteHost, csa.remotePort], [a.addr4, NAT_T_PORT, b.addr4, NAT_T_PORT], v);
    const m = natTMapping(await p.t.udpMappings(), p.t);
    assert.ok(m, 'the router has no mapping for charon\'s NAT-T socket');
    assert.deepEqual(m.outside, { address: router.outside4, port: sa.remote.port });

    await pingBoth(p.t, 'through the NAT');
    // The bulk flows from styx's side: every ESP packet goes to the mapped port.
    const r = await iperfTcp({ serverNs: a.ns, serverAddr: a.inner4, clientNs: b.ns, clientAddr: b.inner4, seconds: IPERF_SECONDS });
    assert.ok(r.receivedBytes > 100_000, `iperf3 ${b.inner4} -> ${a.inner4} moved only ${r.receivedBytes} octets`);
    // Not behind a NAT, styx keeps no mapping alive.
    assert.equal(stat(await styxStats(p), 'net.keepalivesSent'), 0);
  });

  /*
   * The router forgets every mapping and masquerades to 30000-30099 from now
   * on. Nothing from B can re-create a mapping: B's datagrams to the old port
   * hit the router itself and die there. The first datagram charon sends
   * after the flush makes the new one: a keepalive (every 2 s), an ESP
   * packet, or a DPD request (after 3 s with nothing received, which is the
   * case once styx's ESP stops arriving). Keepalives and ESP prove nothing
   * about who sent them, so styx must not move on them (RFC 7296 2.23); the
   * DPD request is an authenticated IKE message from a new address and port,
   * and on it styx's manager moves the IKE SA (`follow`) and points the
   * CHILD_SA's outbound ESP SA at the new port through the data plane's
   * updateSa. Inbound ESP needs no change: styx finds its SA by SPI whatever
   * the source.
   */
  it('follows charon to its new mapping when the NAT forgets the old one, keeping the same SAs', async function () {
    const { a, b, router } = p.t;
    const [before] = await p.styx.waitForSas((s) => s.length === 1 && styxUp(s[0]));
    const oldPort = before!.remote.port;
    const wire = await p.capture(b.ns, b.iface, `udp port ${NAT_T_PORT} and host ${router.outside4}`, 'b-remap');
    // A datagram through the old mapping first, so the capture shows both.
    await waitFor('a datagram from the old mapping', 10_000, () => (wire.read().some((d) => d.srcPort === oldPort) ? true : undefined));
    const mark = p.styx.logMark();
    await p.t.remap(REMAPPED_PORTS);

    const [moved] = await p.styx.waitForSas((s) => s.length === 1 && s[0]!.remote.port !== oldPort, RECOVERY_TIMEOUT_MS);
    const v = JSON.stringify(moved);
    assert.equal(moved!.remote.address, router.outside4, v);
    assert.ok(inRange(moved!.remote.port, REMAPPED_PORTS), v);
    const logged = await p.styx.waitForLog(/peer now at (\S+) \(was (\S+)\)/, 1000, mark);
    assert.equal(logged[1], `${router.outside4}:${moved!.remote.port}`);
    assert.equal(logged[2], `${router.outside4}:${oldPort}`);

    // Same IKE SA, same CHILD_SA: the NAT change cost no rekey.
    assert.deepEqual([moved!.spiI, moved!.spiR, moved!.state], [before!.spiI, before!.spiR, 'ESTABLISHED']);
    assert.deepEqual(moved!.children.map((c) => [c.spiIn, c.spiOut, c.state]), before!.children.map((c) => [c.spiIn, c.spiOut, 'INSTALLED']));

    const m = natTMapping(await p.t.udpMappings(), p.t);
    assert.ok(m, 'no new mapping at the router');
    assert.equal(m.outside.port, moved!.remote.port);

    // On the wire at B: the old source port, then only the new one.
    const seen = await captured(wire, 'a datagram from the new mapping', (c) => c.some((d) => d.srcPort === moved!.remote.port));
    portsAcrossRemap(seen, router.outside4, (port) => port === oldPort, REMAPPED_PORTS);

    await pingBoth({ a, b }, 'after the mapping changed');
    const r = await iperfTcp({ serverNs: a.ns, serverAddr: a.inner4, clientNs: b.ns, clientAddr: b.inner4, seconds: IPERF_SECONDS });
    assert.ok(r.receivedBytes > 100_000, `iperf3 after the remap moved only ${r.receivedBytes} octets`);
    // Once moved, styx's ESP goes to the new port only.
    const after = await captured(wire, 'ESP from styx to the new port', (c) => c.some((d) => d.src === b.addr4 && natTKind(d.payload) === 'esp' && d.dstPort === moved!.remote.port));
    const esp = after.filter((d) => d.src === b.addr4 && natTKind(d.payload) === 'esp');
    const firstNew = esp.findIndex((d) => d.dstPort === moved!.remote.port);
    assert.ok(esp.slice(firstNew).every((d) => d.dstPort === moved!.remote.port), esp.map(fromTo).join('\n'));
    // charon's keepalives (sent when it has been quiet for 2 s) are known as such, not taken for ESP.
    const keepalives = after.filter((d) => d.src === router.outside4 && natTKind(d.payload) === 'keepalive').length;
    const st = await styxStats(p);
    assert.ok(stat(st, 'net.keepalives') >= keepalives, `the wire carried ${keepalives} keepalives to styx: ${JSON.stringify(st)}`);
  });
});

// ---------------------------------------------------------------------------
// 3, the other way round: styx behind the NAT

describe('IKEv2 NAT-T: styx behind the NAT when the NAT forgets its mapping', function () {
  const p = useNatPeers('styxremap', true, { styx: { keepalive: '2s', dpdDelay: '3s' } });

  it('establishes through the NAT', async function () {
    await styxInitiate(p);
    const { sa } = await bothUp(p);
    assert.equal(sa.nat.local, true);
    await pingBoth(p.t, 'through the NAT');
  });

  /*
   * Here styx is the one whose datagrams make the new mapping: its keepalive
   * (every 2 s), its ESP, or its DPD request (every 3 s), whichever leaves
   * first after the flush. charon moves on the first authenticated IKE
   * message from the new port, which is styx's DPD request at the latest.
   * kernel-libipsec cannot move an installed SA, so charon then rekeys the
   * CHILD_SA to get one with the new addresses; styx answers that rekey
   * like any other. styx itself sees no change: its peer is where it was.
   */
  it('re-creates the mapping with its own datagrams; charon follows; traffic flows again on the same SAs', async function () {
    const { a, b, router } = p.t;
    const [csa0] = await p.charon.waitForSas((s) => s.length === 1 && charonUp(s[0]));
    const [sa0] = await p.styx.listJson();
    const oldPort = csa0!.remotePort;
    const wire = await p.capture(b.ns, b.iface, `udp port ${NAT_T_PORT} and host ${router.outside4}`, 'b-remap');
    await waitFor('a datagram from the old mapping', 10_000, () => (wire.read().some((d) => d.srcPort === oldPort) ? true : undefined));
    await p.t.remap(REMAPPED_PORTS);

    const [moved] = await p.charon.waitForSas((s) => s.length === 1 && s[0]!.remotePort !== oldPort, RECOVERY_TIMEOUT_MS);
    assert.equal(moved!.remoteHost, router.outside4);
    assert.ok(inRange(moved!.remotePort, REMAPPED_PORTS), summarizeSa(moved!) + ` port ${moved!.remotePort}`);
    // Traffic first: it must flow as soon as charon has moved, rekey or not.
    await pingBoth({ a, b }, 'after the mapping changed');
    // The same IKE SA on both sides; one CHILD_SA each, and the same one (charon's rekey done, if it made one).
    const { sa, csa } = await bothUp(p);
    assert.deepEqual([csa.initiatorSpi, csa.responderSpi], [csa0!.initiatorSpi, csa0!.responderSpi]);
    assert.deepEqual([sa.spiI, sa.spiR], [sa0!.spiI, sa0!.spiR]);
    assert.deepEqual([sa.children[0]!.spiIn, sa.children[0]!.spiOut], [csa.children[0]!.spiOut, csa.children[0]!.spiIn], view(sa, csa));
    assert.deepEqual([sa.remote.address, sa.remote.port, sa.local.port], [b.addr4, NAT_T_PORT, NAT_T_PORT]);

    const seen = await captured(wire, 'a datagram from the new mapping', (c) => c.some((d) => d.srcPort === csa.remotePort));
    portsAcrossRemap(seen, router.outside4, (port) => port === oldPort, REMAPPED_PORTS);
    const m = natTMapping(await p.t.udpMappings(), p.t);
    assert.equal(m?.outside.port, csa.remotePort);
    await pingBoth({ a, b }, 'on the CHILD_SA charon settled on');
  });
});

// ---------------------------------------------------------------------------
// 5. Forced encapsulation, no NAT

describe('IKEv2: styx forces UDP encapsulation (encap: true) with no NAT in the path', function () {
  const pair: { styxd?: StyxdHandle; charond?: CharonHandle; teardown?: () => Promise<void>; capture?: Capture; raw?: Capture } = {};
  let left = { ns: '', outer4: '', inner4: '', innerNet4: '' };
  let right = { ns: '', outer4: '', inner4: '', innerNet4: '' };

  before(async function () {
    requireInterop(this, { charon: true, styxd: true });
    const topo = await createTopology('encap');
    pair.teardown = () => topo.teardown();
    ({ left, right } = topo);
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml({
      local: left.outer4, remote: right.outer4, localId: ID_A, remoteId: ID_B,
      localNet: left.innerNet4, remoteNet: right.innerNet4, encap: true,
    }));
    const [sd, cd] = await Promise.allSettled([
      startStyxd(left.ns, conf, { dir, logLevel: 'ike=debug' }),
      startCharon(right.ns, topo.dir('charon-r'), charonOptions({
        local: right.outer4, remote: left.outer4, localId: ID_B, remoteId: ID_A,
        localNet: right.innerNet4, remoteNet: left.innerNet4,
      })),
    ]);
    if (sd.status === 'fulfilled') pair.styxd = sd.value;
    if (cd.status === 'fulfilled') pair.charond = cd.value;
    if (sd.status === 'rejected') throw sd.reason;
    if (cd.status === 'rejected') throw cd.reason;
    const caps = topo.dir('captures');
    pair.capture = await startCapture(left.ns, 'out0', `udp port ${IKE_PORT} or udp port ${NAT_T_PORT}`, join(caps, 'udp.pcap'));
    // ESP as IP protocol 50, which neither side may send here.
    pair.raw = await startCapture(left.ns, 'out0', 'ip proto 50', join(caps, 'esp.pcap'));
  });
  afterEach(function () {
    dumpLogsOnFailure(this, { styxd: pair.styxd?.logPath, charon: pair.charond?.logPath }, 150);
  });
  after(async function () {
    await Promise.all([pair.capture?.stop(), pair.raw?.stop()]);
    await Promise.all([pair.styxd?.stop(), pair.charond?.stop()]);
    await pair.teardown?.();
  });

  it('floats to 4500 and both sides send ESP in UDP, none as IP protocol 50', async function () {
    assert.ok(pair.styxd && pair.charond && pair.capture && pair.raw);
    const p: Pair = { styx: pair.styxd, charon: pair.charond };
    await styxInitiate(p);
    const { sa, csa } = await bothUp(p);
    const v = view(sa, csa);
    // No NAT: charon's destination hash matches what styx bound.
    assert.equal(sa.nat.local, false, v);
    assert.deepEqual([sa.local.port, sa.remote.port], [NAT_T_PORT, NAT_T_PORT], v);
    assert.equal(sa.children[0]!.encap, true, v);
    // With no NAT in the path, only styx's random NAT_DETECTION_SOURCE_IP
    // (what encap: true sends) can make charon believe styx is behind one,
    // and so encapsulate too. charon in turn hashes a made-up source address
    // because kernel-libipsec needs encapsulation, whatever `encap = no`
    // says, so styx sees a "remote" NAT as well; swanctl shows no nat-fake,
    // as charon sets that only when both hashes matched. Neither side
    // believes itself behind a NAT.
    assert.equal(charonFlag(csa, 'nat-remote'), true, v);
    assert.equal(charonFlag(csa, 'nat-local'), false, v);
    assert.equal(csa.children[0]!.encap, true, v);
    assert.match(p.charon.logText(), /remote host is behind NAT/);
    assert.equal(sa.nat.remote, true, v);

    await pingBoth({ a: { ns: left.ns, inner4: left.inner4 }, b: { ns: right.ns, inner4: right.inner4 } }, 'encapsulated, no NAT');
    const esp = (c: CapturedUdp[], from: string, to: string): CapturedUdp[] => c.filter((d) =>
      natTKind(d.payload) === 'esp' && d.src === from && d.srcPort === NAT_T_PORT && d.dst === to && d.dstPort === NAT_T_PORT);
    // The two pings put ten ESP packets on the wire each way (five requests, five replies).
    await captured(pair.capture, 'ten ESP-in-UDP packets each way', (c) =>
      esp(c, left.outer4, right.outer4).length >= 10 && esp(c, right.outer4, left.outer4).length >= 10);
    // Encapsulation alone is no reason for keepalives: styx is behind no NAT.
    assert.equal(stat(await styxStats(p), 'net.keepalivesSent'), 0);
    await pair.raw.stop();
    const rawEsp = await run(['tcpdump', '-r', pair.raw.file, '-n'], { allowFailure: true });
    assert.equal(rawEsp.stdout.trim(), '', `IP protocol 50 on the wire:\n${rawEsp.stdout}`);
  });
});

// ---------------------------------------------------------------------------
// 6. IKEv1 (RFC 3947): styx behind the NAT, Main Mode

describe('IKEv1 NAT-T: styx behind the NAT initiates Main Mode to strongSwan outside', function () {
  const p = useNatPeers('v1styxbehind', true, { styx: { version: 1, keepalive: '2s', dpdDelay: '3s' }, charon: { version: 1 } });

  it('sees the NAT on its own side, floats to 4500 at MM5 and carries ping and TCP between the inner networks', async function () {
    const { a, b, router } = p.t;
    await styxInitiate(p);
    const { sa, csa } = await bothUp(p);
    const v = view(sa, csa);
    assert.equal(sa.version, 1, v);
    assert.equal(sa.nat.local, true, v);
    assert.deepEqual([sa.local.address, sa.local.port, sa.remote.address, sa.remote.port], [a.addr4, NAT_T_PORT, b.addr4, NAT_T_PORT], v);
    assert.equal(sa.children[0]!.encap, true, v);
    // charon sees the router's address and a port of its range, and no NAT on its own side.
    assert.equal(csa.remoteHost, router.outside4, v);
    assert.ok(inRange(csa.remotePort, INITIAL_NAT_PORTS), v);
    assert.equal(csa.localPort, NAT_T_PORT, v);
    assert.equal(charonFlag(csa, 'nat-remote'), true, v);
    assert.equal(charonFlag(csa, 'nat-local'), false, v);
    assert.equal(natTMapping(await p.t.udpMappings(), p.t)?.outside.port, csa.remotePort);
    await pingBoth(p.t, 'through the NAT');
    const r = await iperfTcp({ serverNs: b.ns, serverAddr: b.inner4, clientNs: a.ns, clientAddr: a.inner4, seconds: IPERF_SECONDS });
    assert.ok(r.receivedBytes > 100_000, `iperf3 ${a.inner4} -> ${b.inner4} moved only ${r.receivedBytes} octets`);
    // Behind the NAT, styx keeps its mapping alive.
    assert.ok(stat(await styxStats(p), 'net.keepalivesSent') > 0);
  });

  /*
   * styx's keepalive, ESP or DPD R-U-THERE makes the new mapping; charon
   * moves the ISAKMP SA on the first authenticated message from it. styx,
   * behind the NAT, keeps its peer where it was (nothing for it to follow).
   */
  it('re-creates the mapping after the NAT forgets it; charon follows and traffic flows again', async function () {
    const { a, b, router } = p.t;
    const [csa0] = await p.charon.waitForSas((s) => s.length === 1 && charonUp(s[0]));
    const [sa0] = await p.styx.listJson();
    await p.t.remap(REMAPPED_PORTS);
    const [moved] = await p.charon.waitForSas((s) => s.length === 1 && s[0]!.remotePort !== csa0!.remotePort, RECOVERY_TIMEOUT_MS);
    assert.equal(moved!.remoteHost, router.outside4);
    assert.ok(inRange(moved!.remotePort, REMAPPED_PORTS), `${summarizeSa(moved!)} port ${moved!.remotePort}`);
    await waitFor('ping through the new mapping', RECOVERY_TIMEOUT_MS, async () => ((await ping(a.ns, b.inner4, { from: a.inner4, count: 1 })).received === 1 ? true : undefined), 500);
    await pingBoth({ a, b }, 'after the mapping changed');
    const { sa, csa } = await bothUp(p);
    assert.deepEqual([sa.spiI, sa.spiR], [sa0!.spiI, sa0!.spiR]);
    assert.deepEqual([csa.initiatorSpi, csa.responderSpi], [csa0!.initiatorSpi, csa0!.responderSpi]);
    assert.deepEqual([sa.remote.address, sa.remote.port, sa.local.port], [b.addr4, NAT_T_PORT, NAT_T_PORT]);
    assert.deepEqual([sa.children[0]!.spiIn, sa.children[0]!.spiOut], [csa.children[0]!.spiOut, csa.children[0]!.spiIn], view(sa, csa));
  });
});

// ---------------------------------------------------------------------------
// 7. IKEv1: strongSwan behind the NAT, Aggressive Mode; styx follows its new mapping

describe('IKEv1 NAT-T: strongSwan behind the NAT initiates Aggressive Mode to styx outside', function () {
  const p = useNatPeers('v1charonbehind', false, {
    styx: { version: 1, aggressive: true },
    charon: { version: 1, aggressive: true, keepAlive: '2s', dpdDelay: '3s' },
  });

  it('styx sees the NAT on the peer\'s side only, answers to the mapped port on 4500 and carries traffic', async function () {
    const { b, router } = p.t;
    await p.charon.initiate(CHILD, CHARON_CONN, 20);
    const { sa, csa } = await bothUp(p);
    const v = view(sa, csa);
    assert.deepEqual([sa.version, sa.initiator, sa.nat.remote, sa.nat.local], [1, false, true, false], v);
    assert.deepEqual([sa.local.address, sa.local.port, sa.remote.address], [b.addr4, NAT_T_PORT, router.outside4], v);
    assert.ok(inRange(sa.remote.port, INITIAL_NAT_PORTS), v);
    assert.equal(sa.children[0]!.encap, true, v);
    assert.equal(charonFlag(csa, 'nat-local'), true, v);
    assert.equal(natTMapping(await p.t.udpMappings(), p.t)?.outside.port, sa.remote.port);
    await pingBoth(p.t, 'through the NAT');
    assert.equal(stat(await styxStats(p), 'net.keepalivesSent'), 0);
  });

  /*
   * As in the IKEv2 block: after the flush only charon can make a mapping,
   * and its DPD R-U-THERE is the first authenticated message from it. styx
   * moves the ISAKMP SA and the IPsec SA there (updateSa), and answers the
   * R-U-THERE at the new port, not the dead one.
   */
  it('follows charon\'s DPD R-U-THERE to its new mapping, keeping the same SAs', async function () {
    const { a, b, router } = p.t;
    const [before] = await p.styx.waitForSas((s) => s.length === 1 && styxUp(s[0]));
    const oldPort = before!.remote.port;
    const wire = await p.capture(b.ns, b.iface, `udp port ${NAT_T_PORT} and host ${router.outside4}`, 'v1-b-remap');
    await waitFor('a datagram from the old mapping', 10_000, () => (wire.read().some((d) => d.srcPort === oldPort) ? true : undefined));
    const mark = p.styx.logMark();
    await p.t.remap(REMAPPED_PORTS);
    const [moved] = await p.styx.waitForSas((s) => s.length === 1 && s[0]!.remote.port !== oldPort, RECOVERY_TIMEOUT_MS);
    const v = JSON.stringify(moved);
    assert.equal(moved!.remote.address, router.outside4, v);
    assert.ok(inRange(moved!.remote.port, REMAPPED_PORTS), v);
    const logged = await p.styx.waitForLog(/peer now at (\S+) \(was (\S+)\)/, 1000, mark);
    assert.deepEqual([logged[1], logged[2]], [`${router.outside4}:${moved!.remote.port}`, `${router.outside4}:${oldPort}`]);
    assert.deepEqual([moved!.spiI, moved!.spiR, moved!.state], [before!.spiI, before!.spiR, 'ESTABLISHED']);
    assert.deepEqual(moved!.children.map((c) => [c.spiIn, c.spiOut, c.state]), before!.children.map((c) => [c.spiIn, c.spiOut, 'INSTALLED']));
    await pingBoth({ a, b }, 'after the mapping changed');
    // The R-U-THERE-ACK and then ESP went to the new port, and nothing from styx to the old one after.
    const seen = await captured(wire, 'IKE and ESP from styx to the new port', (c) =>
      ['ike', 'esp'].every((k) => c.some((d) => d.src === b.addr4 && d.dstPort === moved!.remote.port && natTKind(d.payload) === k)), 10_000);
    const fromStyx = seen.filter((d) => d.src === b.addr4 && natTKind(d.payload) !== 'keepalive');
    const firstNew = fromStyx.findIndex((d) => d.dstPort === moved!.remote.port);
    assert.ok(firstNew >= 0 && fromStyx.slice(firstNew).every((d) => d.dstPort === moved!.remote.port), fromStyx.map(fromTo).join('\n'));
  });
});
