/**
 * The IKEv1 core of styxd against strongSwan's charon (`version = 1`) with
 * pre-shared keys: Main Mode and Aggressive Mode in both roles, Quick Mode
 * with and without PFS (same cookies, same ESP SPIs, and the CHILD_SA keys
 * equal to charon's chd=4 dump), deletes from either side, a wrong PSK in
 * both roles, and DPD noticing a charon that stopped.
 *
 * charon's kernel-libipsec moves ESP only inside UDP, so it runs with
 * encap = yes and fakes its NAT-D hashes: styx sees a NAT, floats to 4500
 * and negotiates the UDP-encapsulated modes (RFC 3947 5.1).
 *
 * styxd runs in the left namespace with the memory data plane, charon in the
 * right one; the tests of a describe block share its daemons and run in order.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, pskSwanctlConf, repoRoot, requireInterop, startCharon, startStyxd, summarizeSa, waitFor,
  type CharonHandle, type ConfSection, type IkeSaInfo, type ParsedSa, type StyxdHandle, type Topology,
} from './harness.js';
import { styxChildKeysFromLogText } from './lib/styx-keys.js';

const PSK = 'styx ikev1 interop psk, not a secret';
const STYX_CONN = 'peer';
const CHARON_CONN = 'styx';
const CHILD = 'net';

interface Setup {
  tag: string;
  aggressive?: boolean;
  esp?: string;
  styxPsk?: string;
  charonPsk?: string;
  /** Extra lines for styx's connection, four-space indented. */
  styxExtra?: string;
  charonExtra?: ConfSection;
}

function styxYaml(t: Topology, s: Setup): string {
  return `daemon:
  listen: [${t.left.outer4}]
  dataplane: memory
connections:
  ${STYX_CONN}:
    version: 1
    aggressive: ${s.aggressive ? 'yes' : 'no'}
    local_addrs: [${t.left.outer4}]
    remote_addrs: [${t.right.outer4}]
    proposals: [aes128-sha256-modp2048]
    local: { auth: psk, id: ${t.left.outer4} }
    remote: { auth: psk, id: ${t.right.outer4} }
    retransmit: { timeout: 2, tries: 2, base: 1.5 }
${s.styxExtra ?? ''}    children:
      ${CHILD}:
        local_ts: [${t.left.innerNet4}]
        remote_ts: [${t.right.innerNet4}]
        esp_proposals: [${s.esp ?? 'aes128-sha256'}]
secrets:
  - ids: [${t.left.outer4}, ${t.right.outer4}]
    psk: "${s.styxPsk ?? PSK}"
`;
}

class Peers {
  topo: Topology | undefined;
  styxd: StyxdHandle | undefined;
  charond: CharonHandle | undefined;
  get styx(): StyxdHandle { assert.ok(this.styxd, 'styxd was not started'); return this.styxd; }
  get charon(): CharonHandle { assert.ok(this.charond, 'charon was not started'); return this.charond; }
}

function usePeers(s: Setup): Peers {
  const p = new Peers();
  before(async function () {
    requireInterop(this, { charon: true, styxd: true });
    // styxd routes ISAKMP 1.x to IkeV1Manager only once the daemon wires it; until then there is nothing to test.
    if (!readFileSync(join(repoRoot(), 'dist', 'src', 'daemon', 'daemon.js'), 'utf8').includes('IkeV1Manager')) {
      console.log('      skipping: this styxd does not route IKEv1 to IkeV1Manager yet');
      this.skip();
    }
    const topo = await createTopology(`v1${s.tag}`);
    p.topo = topo;
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml(topo, s));
    const charonConf = pskSwanctlConf({
      name: CHARON_CONN, child: CHILD, version: 1,
      localAddr: topo.right.outer4, remoteAddr: topo.left.outer4,
      localTs: topo.right.innerNet4, remoteTs: topo.left.innerNet4,
      psk: s.charonPsk ?? PSK,
      proposals: 'aes128-sha256-modp2048', espProposals: s.esp ?? 'aes128-sha256',
      encap: true,
      extra: { ...(s.aggressive ? { aggressive: 'yes' } : {}), ...s.charonExtra },
    });
    const [a, b] = await Promise.allSettled([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=secret' }),
      // charon refuses to answer Aggressive Mode with PSK unless told the offline-attack risk is accepted.
      startCharon(topo.right.ns, topo.dir('charon-r'), { swanctl: charonConf, ...(s.aggressive ? { charon: { i_dont_care_about_security_and_use_aggressive_mode_psk: 'yes' } } : {}) }),
    ]);
    if (a.status === 'fulfilled') p.styxd = a.value;
    if (b.status === 'fulfilled') p.charond = b.value;
    if (a.status === 'rejected') throw a.reason;
    if (b.status === 'rejected') throw b.reason;
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

const isUp = (sa: IkeSaInfo | undefined): boolean => sa?.version === 1 && sa.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
const charonUp = (sa: ParsedSa | undefined): boolean => sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';

async function bothUp(p: Peers): Promise<{ sa: IkeSaInfo; csa: ParsedSa }> {
  const [[sa], [csa]] = await Promise.all([
    p.styx.waitForSas((s) => s.length === 1 && isUp(s[0])),
    p.charon.waitForSas((s) => s.length === 1 && charonUp(s[0])),
  ]);
  return { sa: sa!, csa: csa! };
}

async function bothDown(p: Peers, timeoutMs = 15_000): Promise<void> {
  await Promise.all([p.styx.waitForSas((s) => s.length === 0, timeoutMs), p.charon.waitForSas((s) => s.length === 0, timeoutMs)]);
}

async function reset(p: Peers): Promise<void> {
  if ((await p.styx.listJson()).length > 0) await p.styx.styx(['terminate', STYX_CONN]);
  if ((await p.charon.listSas()).length > 0) await p.charon.terminate(CHARON_CONN).catch(() => undefined);
  await bothDown(p);
}

async function styxInitiate(p: Peers): Promise<void> {
  const r = await p.styx.styxRun(['initiate', STYX_CONN]);
  assert.equal(r.code, 0, `styx initiate failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
  assert.match(r.stdout, /established/, `styx initiate printed: ${JSON.stringify(r.stdout)}`);
}

/**
 * Both sides agree: roles, cookies (charon lists them as initiator/responder
 * SPI), ESP SPIs mirrored, UDP encapsulation, and the CHILD_SA keys. styx's
 * `_i` keys are the Quick Mode initiator's sending direction, which is what
 * charon's keymat_v1 dumps as "encryption initiator key" (KEYMAT over the
 * responder's SPI).
 */
function assertAgreement(p: Peers, sa: IkeSaInfo, csa: ParsedSa, styxInitiated: boolean, keyBytes: { encr: number; integ: number }, pfs: string | null): void {
  const view = `styx: ${JSON.stringify(sa)}\ncharon: ${summarizeSa(csa)}`;
  assert.equal(csa.version, 1, view);
  assert.equal(sa.initiator, styxInitiated, view);
  assert.equal(csa.initiator, !styxInitiated, view);
  assert.equal(sa.spiI, csa.initiatorSpi, view);
  assert.equal(sa.spiR, csa.responderSpi, view);
  assert.deepEqual(sa.nat, { local: false, remote: true }, `charon fakes its NAT-D source hash: ${view}`);
  assert.equal(sa.local.port, 4500, view);
  const child = sa.children[0]!, cchild = csa.children[0]!;
  assert.equal(child.spiIn, cchild.spiOut, view);
  assert.equal(child.spiOut, cchild.spiIn, view);
  assert.equal(child.encap, true, view);
  assert.equal(cchild.encap, true, view);
  assert.equal(cchild.encrAlg, 'AES_CBC', view);
  assert.equal(cchild.integAlg, 'HMAC_SHA2_256_128', view);
  assert.equal(cchild.dhGroup, pfs ?? undefined, view);
  assert.equal(child.algorithms.dh, pfs, view);

  const sk = styxChildKeysFromLogText(p.styx.logText()).filter((k) => k.spiI === sa.spiI && k.spiR === sa.spiR && k.child === CHILD);
  assert.equal(sk.length, 1, `styxd logged ${sk.length} CHILD_SA key lines for ${sa.spiI}_i ${sa.spiR}_r`);
  const ck = p.charon.childKeysFromLog().filter((k) => k.spiIn === child.spiOut && k.spiOut === child.spiIn);
  assert.equal(ck.length, 1, `charon logged ${ck.length} key sets for SPIs ${child.spiOut}/${child.spiIn}`);
  const s = sk[0]!, c = ck[0]!;
  assert.equal(s.encrI.length, keyBytes.encr * 2);
  assert.equal(s.integI.length, keyBytes.integ * 2);
  assert.notEqual(s.encrI, s.encrR);
  assert.equal(s.encrI, c.encInitiator, 'encryption key, QM initiator to responder');
  assert.equal(s.encrR, c.encResponder, 'encryption key, QM responder to initiator');
  assert.equal(s.integI, c.integInitiator ?? '', 'integrity key, QM initiator to responder');
  assert.equal(s.integR, c.integResponder ?? '', 'integrity key, QM responder to initiator');
}

const CBC_SHA256 = { encr: 16, integ: 32 };

for (const mode of ['Main', 'Aggressive'] as const) {
  for (const pfs of [false, true]) {
    describe(`IKEv1 PSK with strongSwan: ${mode} Mode, Quick Mode ${pfs ? 'with PFS (MODP_2048)' : 'without PFS'}`, function () {
      const p = usePeers({ tag: `${mode === 'Main' ? 'mm' : 'am'}${pfs ? 'pfs' : ''}`, aggressive: mode === 'Aggressive', esp: pfs ? 'aes128-sha256-modp2048' : 'aes128-sha256' });
      const group = pfs ? 'MODP_2048' : null;

      it('styx initiates: same cookies, mirrored ESP SPIs and the same CHILD_SA keys', async function () {
        await styxInitiate(p);
        const { sa, csa } = await bothUp(p);
        assertAgreement(p, sa, csa, true, CBC_SHA256, group);
        assert.match(p.charon.logText(), mode === 'Main' ? /parsed ID_PROT request 0 \[ SA V V \]/ : /parsed AGGRESSIVE request 0 \[ SA KE No ID V V \]/);
      });

      it('charon initiates: same cookies, mirrored ESP SPIs and the same CHILD_SA keys', async function () {
        await reset(p);
        await p.charon.initiate(CHILD, CHARON_CONN, 20);
        const { sa, csa } = await bothUp(p);
        assertAgreement(p, sa, csa, false, CBC_SHA256, group);
      });
    });
  }
}

describe('IKEv1 PSK with strongSwan: deleting from either side', function () {
  const p = usePeers({ tag: 'del' });

  it('styx terminate removes the ISAKMP and IPsec SAs on charon too', async function () {
    await styxInitiate(p);
    const { sa } = await bothUp(p);
    const mark = p.charon.logMark();
    await p.styx.styx(['terminate', STYX_CONN]);
    await bothDown(p);
    await p.charon.waitForLog(/received DELETE for (IKE_SA|ESP CHILD_SA)/, 5_000, mark);
    assert.match(p.styx.logText(), new RegExp(`${sa.spiI}_i ${sa.spiR}_r: ISAKMP SA destroyed: terminated by user`));
  });

  it('swanctl --terminate --ike on charon makes styx drop everything', async function () {
    await reset(p);
    await p.charon.initiate(CHILD, CHARON_CONN, 20);
    const { sa } = await bothUp(p);
    const mark = p.styx.logMark();
    await p.charon.terminate(CHARON_CONN);
    await bothDown(p);
    await p.styx.waitForLog(new RegExp(`${sa.spiI}_i ${sa.spiR}_r: peer deleted the ISAKMP SA`), 5_000, mark);
  });

  it('swanctl --terminate --child on charon removes only the IPsec SA on styx', async function () {
    await reset(p);
    await styxInitiate(p);
    const { sa } = await bothUp(p);
    const mark = p.styx.logMark();
    await p.charon.swanctl(['--terminate', '--child', CHILD, '--timeout', '20'], { timeoutMs: 30_000 });
    const [after] = await p.styx.waitForSas((s) => s.length === 1 && s[0]!.children.length === 0);
    assert.equal(after!.state, 'ESTABLISHED');
    assert.equal(after!.spiI, sa.spiI);
    await p.styx.waitForLog(new RegExp(`peer deleted CHILD_SA ${CHILD}\\{\\d+\\} ${sa.children[0]!.spiIn}_i ${sa.children[0]!.spiOut}_o`), 5_000, mark);
  });
});

describe('IKEv1 PSK with strongSwan: the two sides hold different PSKs', function () {
  const p = usePeers({ tag: 'badpsk', charonPsk: 'not the key styx holds' });

  it('styx initiates Main Mode: charon cannot read MM5, styx gives up naming the PSK', async function () {
    const r = await p.styx.styxRun(['initiate', STYX_CONN], { timeoutMs: 90_000 });
    assert.equal(r.code, 1, `styx initiate should fail: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /wrong PSK\?/);
    await p.styx.waitForSas((s) => s.length === 0);
  });

  it('charon initiates Main Mode: styx says MM5 does not verify, wrong PSK?, and keeps no SA', async function () {
    const mark = p.styx.logMark();
    const c = p.charon.initiate(CHILD, CHARON_CONN, 15);
    await p.styx.waitForLog(/ERROR \[ike\] .*MM5 from 192\.0\.2\.2 does not verify: wrong PSK\?/, 20_000, mark);
    await p.styx.waitForSas((s) => s.length === 0);
    await assert.rejects(c);
  });
});

describe('IKEv1 PSK with strongSwan: DPD notices a charon that stopped', function () {
  const p = usePeers({ tag: 'dpd', styxExtra: '    dpd_delay: 2s\n    dpd_timeout: 6s\n    dpd_action: clear\n' });

  it('answers charon, then declares it dead after dpd_timeout and clears the SAs', async function () {
    await styxInitiate(p);
    await bothUp(p);
    // R-U-THERE goes out only when idle, and charon answers it.
    await p.styx.waitForLog(/DPD: R-U-THERE-ACK \d+|DPD: sending R-U-THERE/, 10_000);
    const mark = p.styx.logMark();
    // SIGKILL: a clean stop would send DELETEs, and the point is a peer that just goes silent.
    process.kill(p.charon.pid, 'SIGKILL');
    await waitFor('charon to die', 5_000, () => (p.charon.running() ? undefined : true));
    await p.styx.waitForLog(/DPD: 192\.0\.2\.2 silent for \d+s after \d+ R-U-THERE: dead, dpd_action clear/, 30_000, mark);
    await p.styx.waitForSas((s) => s.length === 0);
  });
});
