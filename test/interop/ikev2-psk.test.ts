/**
 * The IKEv2 core of styxd against strongSwan's charon, with pre-shared keys:
 * three algorithm suites in both roles (same SPIs, same derived keys on both
 * sides), INVALID_KE_PAYLOAD in both directions, a wrong PSK in both roles,
 * deletes of the IKE SA and of a CHILD_SA from either side, and garbage
 * datagrams against a daemon with an established SA.
 *
 * styxd runs in the left namespace with the memory data plane, charon in the
 * right one. Each describe block has its own topology and daemons, reused by
 * its tests in order; the tests of a block therefore depend on each other.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, pskSwanctlConf, requireInterop, run, startCharon, startStyxd, summarizeSa, waitFor,
  type CharonHandle, type IkeSaInfo, type ParsedSa, type PskConnOptions, type StyxdHandle, type Topology,
} from './harness.js';
import { styxChildKeysFromLogText, styxIkeKeysFromLogText } from './lib/styx-keys.js';

const PSK = 'styx interop psk, not a secret';
/** Names on each side; charon's swanctl.conf names its connection 'styx'. */
const STYX_CONN = 'peer';
const CHARON_CONN = 'styx';
const CHILD = 'net';

// ---------------------------------------------------------------------------
// Setup shared by every block

interface StyxConnOptions {
  proposals: string[];
  espProposals: string[];
  psk?: string;
}

type CharonConnOptions = Pick<PskConnOptions, 'proposals' | 'espProposals'> & { psk?: string };

interface PeerSetup {
  tag: string;
  styx: StyxConnOptions;
  charon: CharonConnOptions;
}

function styxYaml(t: Topology, o: StyxConnOptions): string {
  const { left, right } = t;
  return `daemon:
  listen: [${left.outer4}]
  dataplane: memory
connections:
  ${STYX_CONN}:
    version: 2
    local_addrs: [${left.outer4}]
    remote_addrs: [${right.outer4}]
    proposals: [${o.proposals.join(', ')}]
    local: { auth: psk, id: ${left.outer4} }
    remote: { auth: psk, id: ${right.outer4} }
    start_action: none
    children:
      ${CHILD}:
        local_ts: [${left.innerNet4}]
        remote_ts: [${right.innerNet4}]
        esp_proposals: [${o.espProposals.join(', ')}]
        start_action: none
secrets:
  - ids: [${left.outer4}, ${right.outer4}]
    psk: "${o.psk ?? PSK}"
`;
}

/** The daemons of one describe block; the getters fail loudly if `before` did not get that far. */
class Peers {
  topo: Topology | undefined;
  styxd: StyxdHandle | undefined;
  charond: CharonHandle | undefined;
  get styx(): StyxdHandle { assert.ok(this.styxd, 'styxd was not started'); return this.styxd; }
  get charon(): CharonHandle { assert.ok(this.charond, 'charon was not started'); return this.charond; }
  get t(): Topology { assert.ok(this.topo, 'no topology'); return this.topo; }
}

/** Registers the block's hooks: one topology, styxd on the left, charon on the right. */
function usePeers(setup: PeerSetup): Peers {
  const p = new Peers();
  before(async function () {
    requireInterop(this, { charon: true, styxd: true });
    const topo = await createTopology(setup.tag);
    p.topo = topo;
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml(topo, setup.styx));
    const charonConf = pskSwanctlConf({
      name: CHARON_CONN, child: CHILD,
      localAddr: topo.right.outer4, remoteAddr: topo.left.outer4,
      localTs: topo.right.innerNet4, remoteTs: topo.left.innerNet4,
      psk: setup.charon.psk ?? PSK,
      proposals: setup.charon.proposals, espProposals: setup.charon.espProposals,
      // encap does not matter here: kernel-libipsec needs ESP in UDP, so charon
      // fakes NAT detection payloads whatever this says, and every SA below
      // floats to port 4500 after IKE_SA_INIT with UDP-encapsulated ESP.
      encap: false,
    });
    const [s, c] = await Promise.allSettled([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=secret' }),
      startCharon(topo.right.ns, topo.dir('charon-r'), { swanctl: charonConf }),
    ]);
    if (s.status === 'fulfilled') p.styxd = s.value;
    if (c.status === 'fulfilled') p.charond = c.value;
    if (s.status === 'rejected') throw s.reason;
    if (c.status === 'rejected') throw c.reason;
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

function isUp(sa: IkeSaInfo | undefined): boolean {
  return sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
}

function charonUp(sa: ParsedSa | undefined): boolean {
  return sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
}

/** Waits until each side lists exactly one IKE SA with one installed CHILD_SA. */
async function bothUp(p: Peers): Promise<{ sa: IkeSaInfo; csa: ParsedSa }> {
  const [[sa], [csa]] = await Promise.all([
    p.styx.waitForSas((s) => s.length === 1 && isUp(s[0])),
    p.charon.waitForSas((s) => s.length === 1 && charonUp(s[0])),
  ]);
  return { sa: sa!, csa: csa! };
}

async function bothDown(p: Peers): Promise<void> {
  await Promise.all([p.styx.waitForSas((s) => s.length === 0), p.charon.waitForSas((s) => s.length === 0)]);
}

/**
 * Tears down whatever is up, from styx, so a test starts from nothing even
 * when the one before it failed half-way.
 */
async function reset(p: Peers): Promise<void> {
  if ((await p.styx.listJson()).length > 0) await p.styx.styx(['terminate', STYX_CONN]);
  // An SA only charon still holds (styx lost it half-way) would keep the next test from starting clean.
  if ((await p.charon.listSas()).length > 0) await p.charon.terminate(CHARON_CONN).catch(() => undefined);
  await bothDown(p);
}

/** `styx initiate` for the one connection; the CLI's own words on failure. */
async function styxInitiate(p: Peers): Promise<void> {
  const r = await p.styx.styxRun(['initiate', STYX_CONN]);
  assert.equal(r.code, 0, `styx initiate failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
  assert.match(r.stdout, /established/, `styx initiate printed: ${JSON.stringify(r.stdout)}`);
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

/** Log text written since `mark` (a byte offset from logMark()). */
function since(text: string, mark: number): string {
  return Buffer.from(text).subarray(mark).toString('utf8');
}

interface Suite {
  /** charon's names, which `swanctl --list-sas` prints. */
  ikeEncr: string;
  ikeKeysize?: number;
  dh: string;
  espEncr: string;
  espKeysize?: number;
  espInteg?: string;
  /** Per direction; encryption keys of AEADs include the 4-octet salt. */
  encrKeyBytes: number;
  integKeyBytes: number;
}

/**
 * The established pair agrees: roles, IKE SPIs, ESP SPIs (in/out swapped),
 * the negotiated algorithms, and the CHILD_SA and IKE SA keys each side derived.
 */
function assertAgreement(p: Peers, sa: IkeSaInfo, csa: ParsedSa, styxInitiated: boolean, suite: Suite): void {
  const view = `styx: ${JSON.stringify(sa)}\ncharon: ${summarizeSa(csa)}`;
  assert.equal(sa.initiator, styxInitiated, view);
  assert.equal(csa.initiator, !styxInitiated, view);
  assert.equal(sa.spiI, csa.initiatorSpi, view);
  assert.equal(sa.spiR, csa.responderSpi, view);
  assert.match(sa.spiR, /^[0-9a-f]{16}$/);
  assert.notEqual(sa.spiR, '0000000000000000');

  assert.equal(csa.encrAlg, suite.ikeEncr, view);
  if (suite.ikeKeysize !== undefined) assert.equal(csa.encrKeysize, suite.ikeKeysize, view);
  assert.equal(csa.dhGroup, suite.dh, view);
  assert.equal(sa.algorithms.dh, suite.dh, view);

  const child = sa.children[0]!, cchild = csa.children[0]!;
  assert.equal(child.name, CHILD);
  assert.equal(cchild.name, CHILD);
  assert.match(child.spiIn, /^[0-9a-f]{8}$/);
  assert.equal(child.spiIn, cchild.spiOut, view);
  assert.equal(child.spiOut, cchild.spiIn, view);
  assert.equal(cchild.encrAlg, suite.espEncr, view);
  if (suite.espKeysize !== undefined) assert.equal(cchild.encrKeysize, suite.espKeysize, view);
  assert.equal(cchild.integAlg, suite.espInteg, view);
  assert.equal(child.encap, cchild.encap, `UDP encapsulation of ESP: ${view}`);
  assert.equal(child.algorithms.integ === null, suite.espInteg === undefined, view);

  // CHILD_SA keys: styx tags its line with the IKE SPIs, charon's entries carry the ESP SPIs.
  const sk = styxChildKeysFromLogText(p.styx.logText()).filter((k) => k.spiI === sa.spiI && k.spiR === sa.spiR && k.child === CHILD);
  assert.equal(sk.length, 1, `styxd logged ${sk.length} CHILD_SA key lines for IKE SA ${sa.spiI}_i ${sa.spiR}_r (is ike=secret on?)`);
  const ck = p.charon.childKeysFromLog().filter((k) => k.spiIn === child.spiOut && k.spiOut === child.spiIn);
  assert.equal(ck.length, 1, `charon logged ${ck.length} key sets for SPIs ${child.spiOut}/${child.spiIn}`);
  const s = sk[0]!, c = ck[0]!;
  assert.equal(c.role, styxInitiated ? 'responder' : 'initiator');
  assert.equal(s.encrI.length, suite.encrKeyBytes * 2, `styx encr_i ${s.encrI}`);
  assert.equal(s.integI.length, suite.integKeyBytes * 2, `styx integ_i ${s.integI}`);
  assert.notEqual(s.encrI, s.encrR, 'the two directions must have different keys');
  assert.equal(s.encrI, c.encInitiator, 'encryption key, initiator to responder');
  assert.equal(s.encrR, c.encResponder, 'encryption key, responder to initiator');
  assert.equal(s.integI, c.integInitiator ?? '', 'integrity key, initiator to responder');
  assert.equal(s.integR, c.integResponder ?? '', 'integrity key, responder to initiator');
  // What styx sends is what charon receives with, and the other way round.
  assert.equal(styxInitiated ? s.encrI : s.encrR, c.encIn);
  assert.equal(styxInitiated ? s.encrR : s.encrI, c.encOut);

  // IKE SA keys: charon's dumps carry no SPIs, so find its derivation by SKEYSEED.
  const si = styxIkeKeysFromLogText(p.styx.logText()).filter((k) => k.spiI === sa.spiI && k.spiR === sa.spiR);
  assert.equal(si.length, 1, `styxd logged ${si.length} SKEYSEED lines for IKE SA ${sa.spiI}_i ${sa.spiR}_r`);
  const ik = si[0]!;
  const ci = p.charon.ikeKeysFromLog().filter((k) => k.skeyseed === ik.skeyseed);
  assert.equal(ci.length, 1, `charon logged no SKEYSEED equal to styx's ${ik.skeyseed}`);
  const k = ci[0]!;
  assert.deepEqual(
    { d: ik.skD, ai: ik.skAi, ar: ik.skAr, ei: ik.skEi, er: ik.skEr, pi: ik.skPi, pr: ik.skPr },
    { d: k.skD, ai: k.skAi ?? '', ar: k.skAr ?? '', ei: k.skEi, er: k.skEr, pi: k.skPi, pr: k.skPr },
  );
}

// ---------------------------------------------------------------------------
// 0. The parser the suites below rely on, on hand-written styxd lines

describe('styxd key-line parser (no daemons)', function () {
  const TAG = 'peer[3] 0011223344556677_i 8899aabbccddeeff_r: ';
  const LOG = [
    `2024-01-01T00:00:00.000Z INFO  [ike] ${TAG}CONNECTING -> ESTABLISHED`,
    `2024-01-01T00:00:00.001Z SECRET [ike] ${TAG}SKEYSEED aa SK_d bb SK_ai  SK_ar  SK_ei cc SK_er dd SK_pi ee SK_pr ff`,
    `2024-01-01T00:00:00.002Z SECRET [ike] ${TAG}CHILD_SA net keys encr_i 0102 integ_i  encr_r 0304 integ_r `,
    `2024-01-01T00:00:00.003Z SECRET [ike] other[4] 0000000000000001_i 0000000000000002_r: CHILD_SA lan keys encr_i 05 integ_i 06 encr_r 07 integ_r 08`,
  ].join('\n');

  it('reads CHILD_SA keys with empty AEAD integrity keys and the IKE SA they belong to', function () {
    const ks = styxChildKeysFromLogText(LOG);
    assert.deepEqual(ks[0], { conn: 'peer', uniqueId: 3, spiI: '0011223344556677', spiR: '8899aabbccddeeff', child: 'net', encrI: '0102', integI: '', encrR: '0304', integR: '' });
    assert.deepEqual(ks[1], { conn: 'other', uniqueId: 4, spiI: '0000000000000001', spiR: '0000000000000002', child: 'lan', encrI: '05', integI: '06', encrR: '07', integR: '08' });
    assert.equal(ks.length, 2);
  });

  it('reads the IKE SA key line', function () {
    assert.deepEqual(styxIkeKeysFromLogText(LOG), [{
      conn: 'peer', uniqueId: 3, spiI: '0011223344556677', spiR: '8899aabbccddeeff',
      skeyseed: 'aa', skD: 'bb', skAi: '', skAr: '', skEi: 'cc', skEr: 'dd', skPi: 'ee', skPr: 'ff',
    }]);
  });
});

// ---------------------------------------------------------------------------
// 1. Algorithm suites, both roles

interface SuiteCase {
  ike: string;
  esp: string;
  tag: string;
  expect: Suite;
}

const SUITES: SuiteCase[] = [
  {
    ike: 'aes128-sha256-modp2048', esp: 'aes128-sha256', tag: 'cbc',
    expect: {
      ikeEncr: 'AES_CBC', ikeKeysize: 128, dh: 'MODP_2048',
      espEncr: 'AES_CBC', espKeysize: 128, espInteg: 'HMAC_SHA2_256_128', encrKeyBytes: 16, integKeyBytes: 32,
    },
  },
  {
    ike: 'aes256gcm16-prfsha384-ecp384', esp: 'aes256gcm16', tag: 'gcm',
    expect: { ikeEncr: 'AES_GCM_16', ikeKeysize: 256, dh: 'ECP_384', espEncr: 'AES_GCM_16', espKeysize: 256, encrKeyBytes: 36, integKeyBytes: 0 },
  },
  {
    ike: 'chacha20poly1305-prfsha256-x25519', esp: 'chacha20poly1305', tag: 'chacha',
    expect: { ikeEncr: 'CHACHA20_POLY1305', dh: 'CURVE_25519', espEncr: 'CHACHA20_POLY1305', encrKeyBytes: 36, integKeyBytes: 0 },
  },
];

for (const sc of SUITES) {
  describe(`IKEv2 PSK with strongSwan: IKE ${sc.ike}, ESP ${sc.esp}`, function () {
    const p = usePeers({ tag: sc.tag, styx: { proposals: [sc.ike], espProposals: [sc.esp] }, charon: { proposals: sc.ike, espProposals: sc.esp } });

    it('styx initiates: both sides list the same IKE and ESP SPIs and derived the same keys', async function () {
      await styxInitiate(p);
      const { sa, csa } = await bothUp(p);
      assertAgreement(p, sa, csa, true, sc.expect);
    });

    it('charon initiates: both sides list the same IKE and ESP SPIs and derived the same keys', async function () {
      await reset(p);
      await p.charon.initiate(CHILD, CHARON_CONN, 20);
      const { sa, csa } = await bothUp(p);
      assertAgreement(p, sa, csa, false, sc.expect);
    });
  });
}

// ---------------------------------------------------------------------------
// 2. INVALID_KE_PAYLOAD (RFC 7296 1.2)

describe('IKEv2 PSK with strongSwan: styx retries after INVALID_KE_PAYLOAD', function () {
  // styx guesses x25519 for its first KE; charon only takes MODP_2048.
  const p = usePeers({
    tag: 'kei',
    styx: { proposals: ['aes128-sha256-x25519-modp2048'], espProposals: ['aes128gcm16'] },
    charon: { proposals: 'aes128-sha256-modp2048', espProposals: 'aes128gcm16' },
  });

  it('sends a KE for x25519, gets INVALID_KE_PAYLOAD naming MODP_2048, and establishes with MODP_2048', async function () {
    await styxInitiate(p);
    const { sa, csa } = await bothUp(p);
    assert.equal(sa.algorithms.dh, 'MODP_2048');
    assert.match(p.styx.logText(), /INVALID_KE_PAYLOAD/);
    // DH group 14 is MODP_2048, 31 is Curve25519.
    assert.match(p.styx.logText(), /responder wants DH group 14 instead of 31/);
    assert.match(p.charon.logText(), /generating IKE_SA_INIT response 0 \[ N\(INVAL_KE\) \]/);
    assertAgreement(p, sa, csa, true, {
      ikeEncr: 'AES_CBC', ikeKeysize: 128, dh: 'MODP_2048', espEncr: 'AES_GCM_16', espKeysize: 128, encrKeyBytes: 20, integKeyBytes: 0,
    });
  });
});

describe('IKEv2 PSK with strongSwan: styx answers a KE for a group it does not select with INVALID_KE_PAYLOAD', function () {
  // charon sends its KE for ecp256, which styx does not offer; both have MODP_2048.
  const p = usePeers({
    tag: 'ker',
    styx: { proposals: ['aes128-sha256-modp2048'], espProposals: ['aes128gcm16'] },
    charon: { proposals: 'aes128-sha256-ecp256-modp2048', espProposals: 'aes128gcm16' },
  });

  it('asks charon for MODP_2048; charon retries and both establish with MODP_2048', async function () {
    await p.charon.initiate(CHILD, CHARON_CONN, 20);
    const { sa, csa } = await bothUp(p);
    assert.equal(sa.algorithms.dh, 'MODP_2048');
    assert.match(p.styx.logText(), /sent KE for group 19, we selected 14: sending INVALID_KE_PAYLOAD/);
    assert.match(p.charon.logText(), /parsed IKE_SA_INIT response 0 \[ N\(INVAL_KE\) \]/);
    assert.match(p.charon.logText(), /peer didn't accept DH group ECP_256, it requested MODP_2048/);
    assertAgreement(p, sa, csa, false, {
      ikeEncr: 'AES_CBC', ikeKeysize: 128, dh: 'MODP_2048', espEncr: 'AES_GCM_16', espKeysize: 128, encrKeyBytes: 20, integKeyBytes: 0,
    });
  });
});

// ---------------------------------------------------------------------------
// 3. A wrong PSK, both roles

describe('IKEv2 PSK with strongSwan: the two sides hold different PSKs', function () {
  const p = usePeers({
    tag: 'badpsk',
    styx: { proposals: ['aes128-sha256-modp2048'], espProposals: ['aes128gcm16'] },
    charon: { proposals: 'aes128-sha256-modp2048', espProposals: 'aes128gcm16', psk: 'not the key styx holds' },
  });

  it('styx initiates: charon rejects the AUTH, styx reports AUTHENTICATION_FAILED, no SA remains', async function () {
    const r = await p.styx.styxRun(['initiate', STYX_CONN]);
    assert.equal(r.code, 1, `styx initiate should fail: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /AUTHENTICATION_FAILED/);
    await p.styx.waitForLog(/ERROR \[ike\] .*peer rejected our authentication \(AUTHENTICATION_FAILED\)/);
    await p.charon.waitForLog(/but MAC mismatched/);
    await p.charon.waitForLog(/generating IKE_AUTH response 1 \[ N\(AUTH_FAILED\) \]/);
    await bothDown(p);
  });

  it('charon initiates: styx finds the PSK differs, answers AUTHENTICATION_FAILED and counts it', async function () {
    const before = stat(await styxStats(p), 'ike.authFailures');
    const styxMark = p.styx.logMark(), charonMark = p.charon.logMark();
    await assert.rejects(p.charon.initiate(CHILD, CHARON_CONN, 15));
    await p.styx.waitForLog(/ERROR \[ike\] .*AUTHENTICATION_FAILED: AUTH payload from '192\.0\.2\.2' does not verify: the PSK differs/, 10_000, styxMark);
    await p.charon.waitForLog(/received AUTHENTICATION_FAILED notify error/, 10_000, charonMark);
    const after = stat(await styxStats(p), 'ike.authFailures');
    assert.ok(after >= 1 && after > before, `ike.authFailures went from ${before} to ${after}`);
    await bothDown(p);
  });
});

// ---------------------------------------------------------------------------
// 4. Deletes (RFC 7296 1.4.1)

describe('IKEv2 PSK with strongSwan: deleting SAs from either side', function () {
  const p = usePeers({
    tag: 'del',
    styx: { proposals: ['aes128-sha256-modp2048'], espProposals: ['aes128gcm16'] },
    charon: { proposals: 'aes128-sha256-modp2048', espProposals: 'aes128gcm16' },
  });

  it('styx terminate deletes the IKE SA on charon too', async function () {
    await styxInitiate(p);
    const { sa } = await bothUp(p);
    const mark = p.charon.logMark();
    const out = await p.styx.styx(['terminate', STYX_CONN]);
    assert.match(out, /deleted 1 IKE SA/);
    await bothDown(p);
    await p.charon.waitForLog(/received DELETE for IKE_SA/, 5_000, mark);
    assert.match(p.styx.logText(), new RegExp(`${sa.spiI}_i ${sa.spiR}_r: IKE SA destroyed: terminated by user`));
  });

  it('swanctl --terminate --ike on charon makes styx drop the IKE SA', async function () {
    await reset(p);
    await p.charon.initiate(CHILD, CHARON_CONN, 20);
    const { sa } = await bothUp(p);
    const mark = p.styx.logMark();
    await p.charon.terminate(CHARON_CONN);
    await bothDown(p);
    await p.styx.waitForLog(new RegExp(`${sa.spiI}_i ${sa.spiR}_r: peer deleted the IKE SA`), 5_000, mark);
  });

  it('swanctl --terminate --child on charon removes only the CHILD_SA; styx keeps the IKE SA', async function () {
    await reset(p);
    await styxInitiate(p);
    const { sa, csa } = await bothUp(p);
    const mark = p.styx.logMark();
    await p.charon.swanctl(['--terminate', '--child', CHILD, '--timeout', '20'], { timeoutMs: 30_000 });
    const [after] = await p.styx.waitForSas((s) => s.length === 1 && s[0]!.children.length === 0);
    assert.equal(after!.state, 'ESTABLISHED');
    assert.equal(after!.spiI, sa.spiI);
    assert.equal(after!.spiR, sa.spiR);
    const [cafter] = await p.charon.waitForSas((s) => s.length === 1 && s[0]!.children.length === 0);
    assert.equal(cafter!.state, 'ESTABLISHED');
    assert.equal(cafter!.initiatorSpi, csa.initiatorSpi);
    await p.styx.waitForLog(new RegExp(`peer deleted CHILD_SA ${CHILD}\\{\\d+\\} ${sa.children[0]!.spiIn}_i ${sa.children[0]!.spiOut}_o`), 5_000, mark);
  });
});

// ---------------------------------------------------------------------------
// 5. Garbage against a daemon with an established SA

const IKE_VERSION_2 = 0x20;
const EXCHANGE_IKE_SA_INIT = 34;
const EXCHANGE_INFORMATIONAL = 37;
const PAYLOAD_SA = 33;
const PAYLOAD_DELETE = 42;
const PAYLOAD_SK = 46;
const FLAG_INITIATOR = 0x08;
const NON_ESP_MARKER = Buffer.alloc(4);

function ikeHeader(o: { spiI: Buffer; spiR: Buffer; next: number; exchange: number; flags: number; messageId: number; length: number }): Buffer {
  const h = Buffer.alloc(28);
  o.spiI.copy(h, 0);
  o.spiR.copy(h, 8);
  h[16] = o.next;
  h[17] = IKE_VERSION_2;
  h[18] = o.exchange;
  h[19] = o.flags;
  h.writeUInt32BE(o.messageId, 20);
  h.writeUInt32BE(o.length, 24);
  return h;
}

/** A request as if from the IKE SA's responder, with an SK payload whose body is random. */
function forgedSkRequest(spiI: Buffer, spiR: Buffer, messageId: number, bodyLength: number): Buffer {
  const body = randomBytes(bodyLength);
  const sk = Buffer.alloc(4);
  sk[0] = PAYLOAD_DELETE;
  sk.writeUInt16BE(4 + body.length, 2);
  const h = ikeHeader({ spiI, spiR, next: PAYLOAD_SK, exchange: EXCHANGE_INFORMATIONAL, flags: 0, messageId, length: 28 + 4 + body.length });
  return Buffer.concat([h, sk, body]);
}

interface Datagram { port: number; hex: string; what: string }

/**
 * The burst. Counts of what must reach styx's IKE decoder as malformed and
 * what must fail the SK integrity check are returned with it.
 */
function garbage(spiI: Buffer, spiR: Buffer): { datagrams: Datagram[]; malformedAtLeast: number; integrityAtLeast: number } {
  const d: Datagram[] = [];
  let malformed = 0, integrity = 0;
  const add = (port: number, what: string, b: Buffer): void => { d.push({ port, what, hex: b.toString('hex') }); };
  const to500And4500 = (what: string, b: Buffer): void => {
    add(500, what, b);
    add(4500, what + ' (NAT-T)', Buffer.concat([NON_ESP_MARKER, b]));
  };

  // Too short to hold an IKE header, so certainly rejected by the decoder.
  for (let i = 0; i < 10; i++) { to500And4500('random short', randomBytes(1 + (i * 3) % 27)); malformed += 2; }
  // Longer random datagrams: rejected somewhere, which is all that is asserted of them.
  for (let i = 0; i < 10; i++) to500And4500('random', randomBytes(28 + 37 * i));
  // Raw random bytes on 4500 look like ESP to the NAT-T demultiplexer.
  for (let i = 0; i < 5; i++) add(4500, 'random, ESP-like', Buffer.concat([Buffer.from([0, 0, 0, 1 + i]), randomBytes(40)]));

  const initHeader = ikeHeader({ spiI: randomBytes(8), spiR: Buffer.alloc(8), next: PAYLOAD_SA, exchange: EXCHANGE_IKE_SA_INIT, flags: FLAG_INITIATOR, messageId: 0, length: 300 });
  to500And4500('truncated IKE header', initHeader.subarray(0, 20)); malformed += 2;
  to500And4500('header longer than the datagram', initHeader); malformed += 2;
  const bogusInit = Buffer.concat([initHeader, randomBytes(272)]);
  bogusInit.writeUInt32BE(bogusInit.length, 24);
  // A payload chain of random bytes: the SA payload header's length is random too.
  bogusInit.writeUInt16BE(0xffff, 28 + 2);
  to500And4500('IKE_SA_INIT with a broken payload chain', bogusInit); malformed += 2;

  // The established SA's SPIs with a corrupted body. Only the message ID styx
  // expects next reaches the integrity check (0: charon has sent no request yet);
  // the others are dropped as out of window, which is also right.
  for (let id = 0; id < 4; id++) to500And4500(`SK request, corrupted body, message ${id}`, forgedSkRequest(spiI, spiR, id, 16 + 32 + 16));
  integrity += 2;
  to500And4500('SK request, body not whole blocks', forgedSkRequest(spiI, spiR, 0, 50)); malformed += 2;
  return { datagrams: d, malformedAtLeast: malformed, integrityAtLeast: integrity };
}

/** Sends the datagrams from inside `ns`, one at a time, from an ephemeral port. */
const SENDER = `
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
const [file, host] = process.argv.slice(1);
const list = JSON.parse(readFileSync(file, 'utf8'));
const sock = dgram.createSocket('udp4');
for (const d of list) {
  await new Promise((res, rej) => sock.send(Buffer.from(d.hex, 'hex'), d.port, host, (e) => (e ? rej(e) : res())));
  await new Promise((res) => setTimeout(res, 2));
}
sock.close();
console.log('sent ' + list.length);
`;

describe('IKEv2 PSK with strongSwan: garbage datagrams against an established SA', function () {
  const p = usePeers({
    tag: 'junk',
    styx: { proposals: ['aes128-sha256-modp2048'], espProposals: ['aes128gcm16'] },
    charon: { proposals: 'aes128-sha256-modp2048', espProposals: 'aes128gcm16' },
  });
  let established: IkeSaInfo | undefined;

  it('establishes the SA the garbage will name', async function () {
    await styxInitiate(p);
    established = (await bothUp(p)).sa;
  });

  it('counts malformed and unauthenticated datagrams, keeps running and keeps the SA', async function () {
    assert.ok(established, 'no SA from the previous test');
    const sa = established;
    const before = await styxStats(p);
    const mark = p.styx.logMark();
    const burst = garbage(Buffer.from(sa.spiI, 'hex'), Buffer.from(sa.spiR, 'hex'));
    const file = join(p.t.dir('junk'), 'burst.json');
    writeFileSync(file, JSON.stringify(burst.datagrams));
    const sent = await run([process.execPath, '--input-type=module', '-e', SENDER, file, p.t.left.outer4], { ns: p.t.right.ns, timeoutMs: 30_000 });
    assert.match(sent.stdout, new RegExp(`sent ${burst.datagrams.length}`));

    // UDP: wait until styx has seen them all rather than sleeping.
    let after = before;
    await waitFor('styx to receive the burst', 10_000, async () => {
      after = await styxStats(p);
      return stat(after, 'net.received') - stat(before, 'net.received') >= burst.datagrams.length ? true : undefined;
    }, 200);
    assert.ok(p.styx.running(), 'styxd exited');
    const delta = (k: string): number => stat(after, k) - stat(before, k);
    assert.ok(delta('ike.malformed') >= burst.malformedAtLeast,
      `ike.malformed rose by ${delta('ike.malformed')}, expected at least ${burst.malformedAtLeast}: ${JSON.stringify(after)}`);
    assert.ok(delta('ike.integrityFailures') >= burst.integrityAtLeast,
      `ike.integrityFailures rose by ${delta('ike.integrityFailures')}, expected at least ${burst.integrityAtLeast}: ${JSON.stringify(after)}`);
    const log = since(p.styx.logText(), mark);
    assert.doesNotMatch(log, /decoder bug|TypeError|RangeError|uncaught/i);

    const [now] = await p.styx.waitForSas((s) => s.length === 1);
    assert.equal(now!.state, 'ESTABLISHED');
    assert.equal(now!.spiI, sa.spiI);
    assert.equal(now!.spiR, sa.spiR);
    assert.deepEqual(now!.children.map((c) => [c.spiIn, c.spiOut, c.state]), sa.children.map((c) => [c.spiIn, c.spiOut, 'INSTALLED']));
    // The forged messages came from the peer's address but another port; an unauthenticated one must not move the SA.
    assert.deepEqual(now!.remote, sa.remote);
    const [csa] = await p.charon.waitForSas((s) => s.length === 1);
    assert.ok(charonUp(csa), summarizeSa(csa!));
  });

  it('still completes an exchange afterwards: styx terminate reaches charon', async function () {
    const mark = p.charon.logMark();
    await p.styx.styx(['terminate', STYX_CONN]);
    await bothDown(p);
    await p.charon.waitForLog(/received DELETE for IKE_SA/, 5_000, mark);
    assert.ok(p.styx.running(), 'styxd exited');
  });
});
