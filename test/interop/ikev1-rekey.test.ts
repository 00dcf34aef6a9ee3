/**
 * IKEv1 rekeying against strongSwan with traffic running: styxd with the
 * userspace ESP data plane in the left namespace, charon (`version = 1`,
 * kernel-libipsec, encap = yes) in the right one, a ping every 50 ms each
 * way between the inner networks for about 70 s.
 *
 * 1. styx has the short times (Quick Mode rekey ~10 s, phase 1 rekey ~30 s)
 *    and starts every rekey: new Quick Modes that replace the pair
 *    (make-before-break, the old pair deleted after the new one carries
 *    traffic) and new Main Modes whose ISAKMP SA adopts the IPsec SAs
 *    before styx deletes the old ISAKMP SA.
 * 2. charon has them: its Quick Mode rekeys (styx answers, installs inbound
 *    before QM2 and switches outbound after a grace, then deletes the
 *    replaced pair, which charon itself would keep until it expires) and its
 *    IKEv1 reauthentication (a new Main Mode; styx adopts the IPsec SAs into
 *    the new ISAKMP SA and drops the old one on charon's delete).
 *
 * 3. styx has volume limits only (rekey_bytes/life_bytes): the userspace
 *    data plane's soft expiry starts each Quick Mode rekey.
 *
 * In all, over several Quick Mode rekeys (and >= 1 phase 1 rekey in 1 and 2)
 * no ping is lost, and afterwards `styx list` and `swanctl --list-sas` show
 * the same ISAKMP cookies and the same live ESP SPIs (in/out swapped).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, pskSwanctlConf, requireInterop, startCharon, startStyxd, summarizeSa, waitFor,
  type CharonHandle, type ConfSection, type IkeSaInfo, type ParsedSa, type StyxdHandle, type Topology,
} from './harness.js';
import { assertNoLoss, startFlood } from './lib/flood.js';

const PSK = 'styx IKEv1 rekey interop psk, not a secret';
const STYX_CONN = 'peer';
const CHARON_CONN = 'styx';
const CHILD = 'net';
const IKE_PROPOSAL = 'aes128-sha256-modp2048';
const ESP_PROPOSAL = 'aes128-sha256';
/** Requests each way; at -i 0.05 ping sends 16-20 a second here, so about 70-85 s. */
const PINGS = Number(process.env.STYX_V1_REKEY_PINGS ?? 1400);

interface Times { childRekey: number; childLife: number; ikeRekey: number; ikeLife: number; rekeyBytes?: number; lifeBytes?: number }
const SHORT: Times = { childRekey: 10, childLife: 20, ikeRekey: 30, ikeLife: 45 };
const LONG: Times = { childRekey: 300, childLife: 400, ikeRekey: 600, ikeLife: 900 };

function styxYaml(t: Topology, o: Times): string {
  const { left, right } = t;
  return `daemon:
  listen: [${left.outer4}]
  dataplane: userspace
connections:
  ${STYX_CONN}:
    version: 1
    local_addrs: [${left.outer4}]
    remote_addrs: [${right.outer4}]
    proposals: [${IKE_PROPOSAL}]
    local: { auth: psk, id: ${left.outer4} }
    remote: { auth: psk, id: ${right.outer4} }
    start_action: none
    rekey_time: ${o.ikeRekey}s
    lifetime: ${o.ikeLife}s
    children:
      ${CHILD}:
        local_ts: [${left.innerNet4}]
        remote_ts: [${right.innerNet4}]
        esp_proposals: [${ESP_PROPOSAL}]
        start_action: none
        rekey_time: ${o.childRekey}s
        lifetime: ${o.childLife}s
${o.rekeyBytes ? `        rekey_bytes: ${o.rekeyBytes}\n` : ''}${o.lifeBytes ? `        life_bytes: ${o.lifeBytes}\n` : ''}secrets:
  - ids: [${left.outer4}, ${right.outer4}]
    psk: "${PSK}"
`;
}

/** charon's IKEv1 "rekey" of the ISAKMP SA is a reauthentication: a new Main Mode (reauth_time). */
function charonSwanctl(t: Topology, o: Times): ConfSection {
  return pskSwanctlConf({
    name: CHARON_CONN, child: CHILD, version: 1,
    localAddr: t.right.outer4, remoteAddr: t.left.outer4,
    localTs: t.right.innerNet4, remoteTs: t.left.innerNet4,
    psk: PSK, proposals: IKE_PROPOSAL, espProposals: ESP_PROPOSAL, encap: true,
    extra: { rekey_time: `${o.ikeRekey}s`, reauth_time: `${o.ikeRekey}s`, over_time: `${o.ikeLife - o.ikeRekey}s`, rand_time: '2s' },
    childExtra: { rekey_time: `${o.childRekey}s`, life_time: `${o.childLife}s`, rand_time: '1s' },
  });
}

class Peers {
  topo: Topology | undefined;
  styxd: StyxdHandle | undefined;
  charond: CharonHandle | undefined;
  get styx(): StyxdHandle { assert.ok(this.styxd, 'styxd was not started'); return this.styxd; }
  get charon(): CharonHandle { assert.ok(this.charond, 'charon was not started'); return this.charond; }
  get t(): Topology { assert.ok(this.topo, 'no topology'); return this.topo; }
}

function usePeers(tag: string, styxTimes: Times, charonTimes: Times): Peers {
  const p = new Peers();
  before(async function () {
    requireInterop(this, { charon: true, styxd: true });
    const topo = await createTopology(tag);
    p.topo = topo;
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml(topo, styxTimes));
    const [sd, cd] = await Promise.allSettled([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=debug' }),
      startCharon(topo.right.ns, topo.dir('charon-r'), { swanctl: charonSwanctl(topo, charonTimes), logLevels: { ike: 2, chd: 2, cfg: 1, net: 1, enc: 1 } }),
    ]);
    if (sd.status === 'fulfilled') p.styxd = sd.value;
    if (cd.status === 'fulfilled') p.charond = cd.value;
    if (sd.status === 'rejected') throw sd.reason;
    if (cd.status === 'rejected') throw cd.reason;
  });
  afterEach(function () { dumpLogsOnFailure(this, { styxd: p.styxd?.logPath, charon: p.charond?.logPath }, 200); });
  after(async function () {
    await Promise.all([p.styxd?.stop(), p.charond?.stop()]);
    await p.topo?.teardown();
  });
  return p;
}

// ---------------------------------------------------------------------------
// Reading both sides

const live = <T extends { state: string }>(children: T[]): T[] => children.filter((c) => c.state === 'INSTALLED');
const styxView = (s: IkeSaInfo[]): string =>
  JSON.stringify(s.map((x) => `${x.state} ${x.spiI}/${x.spiR} [${x.children.map((c) => `${c.state} ${c.spiIn}/${c.spiOut}`).join(', ')}]`));

/**
 * Waits until each side lists one established ISAKMP SA with one live IPsec
 * SA pair, and both agree on the cookies and the SPIs. A listing can fall in
 * the middle of a rekey (two pairs, or two ISAKMP SAs), hence the polling.
 */
async function bothAgree(p: Peers, timeoutMs = 20_000): Promise<{ sa: IkeSaInfo; csa: ParsedSa }> {
  let last = '';
  try {
    return await waitFor('styx and charon to list the same ISAKMP SA and IPsec SA pair', timeoutMs, async () => {
      const [s, c] = await Promise.all([p.styx.listJson(), p.charon.listSas()]);
      last = `styx: ${styxView(s)}\ncharon: ${JSON.stringify(c.map(summarizeSa))}`;
      const ss = s.filter((x) => x.state === 'ESTABLISHED'), cs = c.filter((x) => x.state === 'ESTABLISHED');
      if (s.length !== 1 || cs.length !== 1 || ss.length !== 1) return undefined;
      const sa = ss[0]!, csa = cs[0]!;
      const [mine, theirs] = [live(sa.children), live(csa.children)];
      if (mine.length !== 1 || theirs.length !== 1) return undefined;
      if (sa.spiI !== csa.initiatorSpi || sa.spiR !== csa.responderSpi) return undefined;
      if (mine[0]!.spiIn !== theirs[0]!.spiOut || mine[0]!.spiOut !== theirs[0]!.spiIn) return undefined;
      return { sa, csa };
    }, 200);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nlast listings:\n${last}`);
  }
}

const count = (text: string, re: RegExp): number => (text.match(new RegExp(re.source, 'g')) ?? []).length;
const since = (text: string, mark: number): string => Buffer.from(text).subarray(mark).toString('utf8');

// ---------------------------------------------------------------------------
// Traffic

async function pingThroughRekeys(p: Peers, requests = PINGS, size = 56): Promise<void> {
  const { left, right } = p.t;
  const o = { requests, intervalS: 0.05, size };
  await assertNoLoss([startFlood(left.ns, left.inner4, right.inner4, o), startFlood(right.ns, right.inner4, left.inner4, o)]);
}

// ---------------------------------------------------------------------------

describe('IKEv1 rekeying with strongSwan under traffic: styx starts every rekey', function () {
  const p = usePeers('v1rkstyx', SHORT, LONG);

  it('>= 5 Quick Mode rekeys and >= 1 new Main Mode lose no ping; afterwards both list the same cookies and SPIs', async function () {
    const r = await p.styx.styxRun(['initiate', STYX_CONN]);
    assert.equal(r.code, 0, `styx initiate: ${r.stderr}${r.stdout}`);
    const first = await bothAgree(p);
    const mark = p.styx.logMark(), cmark = p.charon.logMark();
    await pingThroughRekeys(p);
    const log = since(p.styx.logText(), mark);
    const quick = count(log, /: Quick Mode \S+: rekeying net\{/), mainModes = count(log, /: rekeying ISAKMP SA: new phase 1 /);
    const done = count(log, /: ISAKMP SA rekeyed into /);
    console.log(`      styx: ${quick} Quick Mode rekeys, ${mainModes} phase 1 rekeys (${done} completed); charon: ${count(since(p.charon.logText(), cmark), /CHILD_SA net\{\d+\} established/)} CHILD_SAs established`);
    assert.ok(quick >= 5, `only ${quick} Quick Mode rekeys`);
    assert.ok(done >= 1, `no phase 1 rekey completed (${mainModes} started)`);
    // styx never answered a rekey: charon's times are far longer.
    assert.equal(count(log, /which the peer started/), 0);
    const now = await bothAgree(p);
    assert.notEqual(now.sa.spiI, first.sa.spiI, 'the ISAKMP SA was never replaced');
    assert.notEqual(now.sa.children[0]!.spiIn, first.sa.children[0]!.spiIn);
    assert.equal(count(log, /peer deleted unknown IPsec SA|failed/), 0, 'unexpected failures in the styx log');
  });
});

describe('IKEv1 rekeying with strongSwan under traffic: charon starts every rekey', function () {
  const p = usePeers('v1rkcharon', LONG, SHORT);

  it('>= 5 of charon\'s Quick Mode rekeys and >= 1 of its reauthentications lose no ping; afterwards both list the same cookies and SPIs', async function () {
    await p.charon.initiate(CHILD, CHARON_CONN, 30);
    const first = await bothAgree(p);
    const mark = p.styx.logMark();
    await pingThroughRekeys(p);
    const log = since(p.styx.logText(), mark);
    const answered = count(log, /established with SPIs .*, replaces \{\d+\}\)/), adopted = count(log, /which the peer started/);
    console.log(`      styx answered ${answered} Quick Mode rekeys and ${adopted} new phase 1s from charon`);
    assert.ok(answered >= 5, `only ${answered} Quick Mode rekeys answered`);
    assert.ok(adopted >= 1, 'charon never reauthenticated');
    // styx started nothing: its times are far longer.
    assert.equal(count(log, /: rekeying ISAKMP SA|: Quick Mode \S+: rekeying /), 0);
    const now = await bothAgree(p);
    assert.notEqual(now.sa.spiI, first.sa.spiI, 'the ISAKMP SA was never replaced');
    assert.notEqual(now.sa.children[0]!.spiIn, first.sa.children[0]!.spiIn);
  });
});

/**
 * Volume limits only (times far off): 1200-byte pings both ways, about
 * 25 kB/s per SA, cross styx's rekey_bytes every few seconds. The data
 * plane's soft expiry makes styx renew the pair with a Quick Mode, which
 * carries life_bytes to charon as a kilobytes life (RFC 2407 4.5).
 */
const VOLUME: Times = { ...LONG, rekeyBytes: 150_000, lifeBytes: 300_000 };
const VOLUME_PINGS = Number(process.env.STYX_V1_VOLUME_PINGS ?? 700);

describe('IKEv1 rekeying with strongSwan under traffic: styx renews pairs at their volume limit, and on request', function () {
  const p = usePeers('v1rkvol', VOLUME, LONG);

  it('>= 3 Quick Mode rekeys started by the soft byte limit lose no ping; afterwards both list the same SPIs', async function () {
    const r = await p.styx.styxRun(['initiate', STYX_CONN]);
    assert.equal(r.code, 0, `styx initiate: ${r.stderr}${r.stdout}`);
    const first = await bothAgree(p);
    const mark = p.styx.logMark(), cmark = p.charon.logMark();
    await pingThroughRekeys(p, VOLUME_PINGS, 1200);
    const log = since(p.styx.logText(), mark);
    const clog = since(p.charon.logText(), cmark);
    const soft = count(log, /reached a soft volume limit: rekeying/), quick = count(log, /: Quick Mode \S+: rekeying net\{/);
    console.log(`      styx: ${soft} soft volume limits, ${quick} Quick Mode rekeys; charon: ${count(clog, /CHILD_SA net\{\d+\} established/)} CHILD_SAs established`);
    assert.ok(soft >= 3, `only ${soft} soft volume limits reached`);
    assert.equal(quick, soft, 'each soft limit should start exactly one Quick Mode');
    assert.equal(count(log, /hard volume limit/), 0, 'a pair reached its hard limit before it was renewed');
    assert.equal(count(log, /peer deleted unknown IPsec SA|failed/), 0, 'unexpected failures in the styx log');
    const now = await bothAgree(p);
    assert.notEqual(now.sa.children[0]!.spiIn, first.sa.children[0]!.spiIn);
  });

  it('`styx rekey peer/net` renews the pair by Quick Mode and `styx rekey peer` the ISAKMP SA by Main Mode now, charon agreeing, no ping lost', async function () {
    const { left, right } = p.t;
    const before = await bothAgree(p);
    const o = { requests: 300, intervalS: 0.05 };
    const floods = [startFlood(left.ns, left.inner4, right.inner4, o), startFlood(right.ns, right.inner4, left.inner4, o)];
    const pair = await p.styx.styxRun(['rekey', `${STYX_CONN}/${CHILD}`]);
    assert.equal(pair.code, 0, `styx rekey: ${pair.stderr}${pair.stdout}`);
    const afterPair = await waitFor('a new pair that both list', 20_000, async () => {
      const a = await bothAgree(p);
      return a.sa.children[0]!.spiIn !== before.sa.children[0]!.spiIn ? a : undefined;
    }, 250);
    const isakmp = await p.styx.styxRun(['rekey', STYX_CONN]);
    assert.equal(isakmp.code, 0, `styx rekey: ${isakmp.stderr}${isakmp.stdout}`);
    assert.match(isakmp.stdout, /rekeying 1 ISAKMP SA\(s\) of peer/);
    const afterIsakmp = await waitFor('a new ISAKMP SA that both list', 30_000, async () => {
      const a = await bothAgree(p);
      return a.sa.spiI !== before.sa.spiI ? a : undefined;
    }, 250);
    // The pair moved to the new ISAKMP SA unchanged.
    assert.equal(afterIsakmp.sa.children[0]!.spiIn, afterPair.sa.children[0]!.spiIn);
    assert.ok(floods.every((x) => x.running()), 'the pings ended before both rekeys were done; they prove nothing about them');
    await assertNoLoss(floods);
  });
});
