/**
 * Proves the harness against strongSwan alone: two charons in two namespaces
 * negotiate IKEv2 with a PSK, both sides agree on SPIs and keys as the harness
 * reads them, and traffic crosses the kernel-libipsec tunnel. Every later
 * styx-vs-strongSwan test stands on what this one checks.
 */
import assert from 'node:assert/strict';
import {
  createTopology, dumpLogsOnFailure, ping, pskSwanctlConf, requireInterop, startCharon, summarizeSa,
  type CharonHandle, type ChildKeys, type ParsedChildSa, type ParsedSa, type Topology,
} from './harness.js';

const PSK = 'styx interop test key, not secret';

async function pair(topo: Topology, espProposals: string, proposals = 'aes128-sha256-modp2048'): Promise<[CharonHandle, CharonHandle]> {
  const { left, right } = topo;
  return Promise.all([
    startCharon(left.ns, topo.dir('charon-l'), {
      swanctl: pskSwanctlConf({
        localAddr: left.outer4, remoteAddr: right.outer4, localTs: left.innerNet4, remoteTs: right.innerNet4,
        psk: PSK, proposals, espProposals,
      }),
    }),
    startCharon(right.ns, topo.dir('charon-r'), {
      swanctl: pskSwanctlConf({
        localAddr: right.outer4, remoteAddr: left.outer4, localTs: right.innerNet4, remoteTs: left.innerNet4,
        psk: PSK, proposals, espProposals,
      }),
    }),
  ]);
}

function onlySa(sas: ParsedSa[], who: string): ParsedSa {
  assert.equal(sas.length, 1, `${who}: expected one IKE SA, got ${JSON.stringify(sas.map(summarizeSa))}`);
  return sas[0]!;
}

/** The newest keys each side logged for the CHILD_SA whose SPIs pair up. */
function matchingKeys(l: CharonHandle, r: CharonHandle, spiOutLeft: string): [ChildKeys, ChildKeys] {
  const lk = l.childKeysFromLog().filter((k) => k.spiOut === spiOutLeft);
  const rk = r.childKeysFromLog().filter((k) => k.spiIn === spiOutLeft);
  assert.equal(lk.length, 1, `left logged keys for SPI ${spiOutLeft}: ${JSON.stringify(l.childKeysFromLog())}`);
  assert.equal(rk.length, 1, `right logged keys for SPI ${spiOutLeft}: ${JSON.stringify(r.childKeysFromLog())}`);
  return [lk[0]!, rk[0]!];
}

describe('interop harness: strongSwan <-> strongSwan, AES-GCM ESP', function () {
  let topo: Topology | undefined;
  let l: CharonHandle | undefined;
  let r: CharonHandle | undefined;

  before(async function () {
    requireInterop(this);
    topo = await createTopology('gcm');
    [l, r] = await pair(topo, 'aes128gcm16');
  });
  afterEach(function () {
    dumpLogsOnFailure(this, { 'left charon': l?.logPath, 'right charon': r?.logPath });
  });
  after(async function () {
    await Promise.all([l?.stop(), r?.stop()]);
    await topo?.teardown();
  });

  it('establishes the IKE SA and CHILD_SA with the same SPIs on both sides', async function () {
    await l!.initiate('net', 'styx');
    const ls = onlySa(await l!.listSas(), 'left');
    const rs = onlySa((await r!.waitForSas((s) => s[0]?.children[0]?.state === 'INSTALLED')), 'right');
    assert.equal(ls.state, 'ESTABLISHED');
    assert.equal(rs.state, 'ESTABLISHED');
    assert.equal(ls.initiator, true);
    assert.equal(rs.initiator, false);
    assert.equal(ls.initiatorSpi, rs.initiatorSpi);
    assert.equal(ls.responderSpi, rs.responderSpi);
    assert.match(ls.initiatorSpi, /^[0-9a-f]{16}$/);
    assert.equal(ls.dhGroup, 'MODP_2048');
    assert.equal(ls.children.length, 1);
    assert.equal(rs.children.length, 1);
    const [lc, rc] = [ls.children[0]!, rs.children[0]!];
    assert.equal(lc.name, 'net');
    assert.equal(lc.state, 'INSTALLED');
    assert.equal(rc.state, 'INSTALLED');
    assert.equal(lc.encrAlg, 'AES_GCM_16');
    assert.equal(lc.encap, true);
    assert.match(lc.spiIn, /^[0-9a-f]{8}$/);
    assert.equal(lc.spiIn, rc.spiOut);
    assert.equal(lc.spiOut, rc.spiIn);
    assert.deepEqual(lc.localTs, ['10.1.0.0/24']);
    assert.deepEqual(lc.remoteTs, ['10.2.0.0/24']);
  });

  it('reads the same CHILD_SA keys from both logs, in and out swapped', async function () {
    const lc = onlySa(await l!.listSas(), 'left').children[0]!;
    const [lk, rk] = matchingKeys(l!, r!, lc.spiOut);
    assert.equal(lk.role, 'initiator');
    assert.equal(rk.role, 'responder');
    assert.equal(lk.spiIn, lc.spiIn);
    // AES-GCM-128: 16 bytes of key and 4 of salt per direction.
    assert.match(lk.encOut, /^[0-9a-f]{40}$/);
    assert.notEqual(lk.encIn, lk.encOut);
    assert.equal(lk.encOut, rk.encIn);
    assert.equal(lk.encIn, rk.encOut);
    assert.equal(lk.encInitiator, rk.encInitiator);
    assert.equal(lk.integOut, undefined, 'an AEAD has no integrity key');
  });

  it('reads the same IKE SA keys from both logs', function () {
    const lk = l!.ikeKeysFromLog();
    const rk = r!.ikeKeysFromLog();
    assert.equal(lk.length, 1);
    assert.equal(rk.length, 1);
    assert.match(lk[0]!.skeyseed, /^[0-9a-f]{64}$/);
    assert.deepEqual({ ...lk[0]!, thread: 0 }, { ...rk[0]!, thread: 0 });
    assert.match(lk[0]!.skEi ?? '', /^[0-9a-f]{32}$/);
  });

  it('carries a ping between the inner networks through the libipsec tunnel', async function () {
    const res = await ping(topo!.left.ns, topo!.right.inner4, { from: topo!.left.inner4, count: 3 });
    assert.equal(res.received, res.sent, res.output);
    const lc = onlySa(await l!.listSas(), 'left').children[0]!;
    assert.ok(lc.packetsOut >= 3 && lc.packetsIn >= 3, `ESP counters: ${JSON.stringify(lc.raw)}`);
  });

  it('terminates the IKE SA on both sides', async function () {
    await l!.terminate('styx');
    assert.deepEqual(await l!.listSas(), []);
    await r!.waitForSas((s) => s.length === 0);
  });
});

describe('interop harness: strongSwan <-> strongSwan, AES-CBC + HMAC ESP and CHILD_SA rekey', function () {
  let topo: Topology | undefined;
  let l: CharonHandle | undefined;
  let r: CharonHandle | undefined;

  before(async function () {
    requireInterop(this);
    topo = await createTopology('cbc');
    [l, r] = await pair(topo, 'aes256-sha256', 'aes256-sha256-curve25519');
  });
  afterEach(function () {
    dumpLogsOnFailure(this, { 'left charon': l?.logPath, 'right charon': r?.logPath });
  });
  after(async function () {
    await Promise.all([l?.stop(), r?.stop()]);
    await topo?.teardown();
  });

  it('matches encryption and integrity keys on both sides', async function () {
    await l!.initiate('net', 'styx');
    const lc = onlySa(await l!.listSas(), 'left').children[0]!;
    assert.equal(lc.encrAlg, 'AES_CBC');
    assert.equal(lc.integAlg, 'HMAC_SHA2_256_128');
    const [lk, rk] = matchingKeys(l!, r!, lc.spiOut);
    assert.match(lk.encOut, /^[0-9a-f]{64}$/);
    assert.match(lk.integOut ?? '', /^[0-9a-f]{64}$/);
    assert.equal(lk.encOut, rk.encIn);
    assert.equal(lk.encIn, rk.encOut);
    assert.equal(lk.integOut, rk.integIn);
    assert.equal(lk.integIn, rk.integOut);
  });

  it('follows a CHILD_SA rekey started by the responder: keys still pair up with roles swapped', async function () {
    const before = onlySa(await r!.listSas(), 'right').children[0]!;
    await r!.swanctl(['--rekey', '--child', 'net']);
    // The replaced CHILD_SA stays listed (DELETED) for a few seconds after a
    // rekey, so look only at installed ones.
    const installed = (sa: ParsedSa | undefined): ParsedChildSa[] => sa?.children.filter((c) => c.state === 'INSTALLED') ?? [];
    const rs = onlySa(await r!.waitForSas((s) => installed(s[0]).length === 1 && installed(s[0])[0]!.spiIn !== before.spiIn), 'right');
    const newIn = installed(rs)[0]!.spiIn;
    const ls = onlySa(await l!.waitForSas((s) => installed(s[0]).length === 1 && installed(s[0])[0]!.spiOut === newIn), 'left');
    assert.equal(installed(ls)[0]!.spiOut, newIn);
    const [lk, rk] = matchingKeys(l!, r!, newIn);
    assert.equal(lk.role, 'responder');
    assert.equal(rk.role, 'initiator');
    assert.equal(lk.encOut, rk.encIn);
    assert.equal(lk.integIn, rk.integOut);
    const res = await ping(topo!.right.ns, topo!.left.inner4, { from: topo!.right.inner4, count: 2 });
    assert.equal(res.received, res.sent, res.output);
  });
});
