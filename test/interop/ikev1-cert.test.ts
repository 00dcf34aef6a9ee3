/**
 * IKEv1 certificate authentication between styxd and strongSwan's charon
 * (`version = 1`), both holding the committed test PKI (certs/pki): styx
 * trusts only the root and holds the intermediate's CRL, charon trusts root
 * and intermediate. charon's own RSA-3072 and ECDSA P-384 certificates are
 * issued by the intermediate at test time with strongSwan's pki, since the
 * committed PKI has one valid RSA host (moon, styx's here).
 *
 * - Main Mode with RSA signatures (method 3), styx initiator and responder,
 *   CR and CERT both ways, charon verifying styx's RSA_EMSA_PKCS1_NULL
 *   signature, the CHILD_SA keys equal to charon's chd=4 dump.
 * - Aggressive Mode with RSA signatures, both roles.
 * - Main Mode with ECDSA P-384 (method 10) under a SHA-256 transform: HASH_I
 *   and HASH_R are made with SHA-384 as the method says, both roles.
 * - A revoked certificate (mars) and one for another identity (jupiter
 *   presented as sun) from charon, refused by styx with the reason in its
 *   log, whichever side initiates, and no SA left on either side.
 * - charon refusing styx's revoked certificate: styx reads charon's
 *   protected AUTHENTICATION-FAILED and ends the phase 1 at once, naming it.
 *
 * styxd runs in the left namespace (userspace data plane), charon in the right.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, ping, repoRoot, requireInterop, run, startCharon, startStyxd, summarizeSa,
  type CharonHandle, type IkeSaInfo, type ParsedSa, type StyxdHandle, type Topology,
} from './harness.js';
import { styxChildKeysFromLogText } from './lib/styx-keys.js';

const STYX_CONN = 'peer';
const CHARON_CONN = 'styx';
const CHILD = 'net';
const PROPOSAL = 'aes128-sha256-modp2048';
const ESP = 'aes128-sha256';
const DN = (cn: string): string => `C=CH, O=styx, CN=${cn}.styx.example`;

const pkiFile = (f: string): string => join(repoRoot(), 'certs', 'pki', f);
const pki = (f: string): Buffer => readFileSync(pkiFile(f));

/** charon's certificate: a committed one, or one issued now by the intermediate with this key type. */
type CharonCert = { file: string } | { issue: 'rsa' | 'ecdsa-384'; cn: string };

interface Setup {
  tag: string;
  aggressive?: boolean;
  /** styx's certificate (a .chain.pem carries the intermediate) and key. */
  styxCert: string;
  styxKey: string;
  /** The identity styx expects of charon. */
  styxRemoteId: string;
  charonCert: CharonCert;
  charonId: string;
}

function styxYaml(t: Topology, s: Setup): string {
  return `daemon:
  listen: [${t.left.outer4}]
  dataplane: userspace
connections:
  ${STYX_CONN}:
    version: 1
    aggressive: ${s.aggressive ? 'yes' : 'no'}
    local_addrs: [${t.left.outer4}]
    remote_addrs: [${t.right.outer4}]
    proposals: [${PROPOSAL}]
    local: { auth: pubkey, cert: ${pkiFile(s.styxCert)}, key: ${pkiFile(s.styxKey)} }
    remote:
      auth: pubkey
      id: "${s.styxRemoteId}"
      cacerts: [${pkiFile('root-ca.pem')}]
      crls: [${pkiFile('intermediate-ca.crl.pem')}]
    retransmit: { timeout: 2, tries: 2, base: 1.5 }
    children:
      ${CHILD}:
        local_ts: [${t.left.innerNet4}]
        remote_ts: [${t.right.innerNet4}]
        esp_proposals: [${ESP}]
`;
}

/** Identities are quoted: a DN holds commas. */
function charonSwanctl(t: Topology, s: Setup, certFile: string): string {
  return `connections {
  ${CHARON_CONN} {
    version = 1
    aggressive = ${s.aggressive ? 'yes' : 'no'}
    local_addrs = ${t.right.outer4}
    remote_addrs = ${t.left.outer4}
    proposals = ${PROPOSAL}
    encap = yes
    keyingtries = 1
    local {
      auth = pubkey
      certs = ${certFile}
      id = "${s.charonId}"
    }
    remote {
      auth = pubkey
      id = "${DN(s.styxCert.split('.')[0]!)}"
    }
    children {
      ${CHILD} {
        local_ts = ${t.right.innerNet4}
        remote_ts = ${t.left.innerNet4}
        esp_proposals = ${ESP}
        mode = tunnel
      }
    }
  }
}
`;
}

/** A key and a certificate for `cn` from the intermediate CA, made by strongSwan's pki. */
async function issue(dir: string, type: 'rsa' | 'ecdsa-384', cn: string): Promise<{ key: string; cert: string }> {
  const keyPath = join(dir, `${cn}.key.pem`);
  const gen = type === 'rsa' ? ['--type', 'rsa', '--size', '3072'] : ['--type', 'ecdsa', '--size', '384'];
  const key = (await run(['pki', '--gen', ...gen, '--outform', 'pem'], { timeoutMs: 120_000 })).stdout;
  writeFileSync(keyPath, key);
  const cert = (await run([
    'pki', '--issue', '--in', keyPath, '--type', 'priv', '--cacert', pkiFile('intermediate-ca.pem'), '--cakey', pkiFile('intermediate-ca.key.pem'),
    '--dn', DN(cn), '--san', `${cn}.styx.example`, '--lifetime', '30', '--digest', 'sha256', '--outform', 'pem',
  ])).stdout;
  assert.match(cert, /BEGIN CERTIFICATE/);
  return { key, cert };
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
    const topo = await createTopology(`v1c${s.tag}`);
    p.topo = topo;
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml(topo, s));
    let files: Record<string, string | Buffer>;
    let certFile: string;
    if ('file' in s.charonCert) {
      certFile = s.charonCert.file;
      files = { [`x509/${certFile}`]: pki(certFile), [`private/${certFile.replace(/\.pem$/, '.key.pem')}`]: pki(certFile.replace(/\.pem$/, '.key.pem')) };
    } else {
      const issued = await issue(topo.dir('pki'), s.charonCert.issue, s.charonCert.cn);
      certFile = `${s.charonCert.cn}.pem`;
      files = { [`x509/${certFile}`]: issued.cert, [`private/${s.charonCert.cn}.key.pem`]: issued.key };
    }
    const [st, ch] = await Promise.allSettled([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=secret' }),
      startCharon(topo.right.ns, topo.dir('charon-r'), {
        swanctl: charonSwanctl(topo, s, certFile),
        files: {
          ...files,
          'x509ca/root-ca.pem': pki('root-ca.pem'),
          'x509ca/intermediate-ca.pem': pki('intermediate-ca.pem'),
          'x509crl/intermediate-ca.crl.pem': pki('intermediate-ca.crl.pem'),
        },
      }),
    ]);
    if (st.status === 'fulfilled') p.styxd = st.value;
    if (ch.status === 'fulfilled') p.charond = ch.value;
    if (st.status === 'rejected') throw st.reason;
    if (ch.status === 'rejected') throw ch.reason;
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

const since = (text: string, mark: number): string => Buffer.from(text).subarray(mark).toString('utf8');
const re = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Traffic crosses the tunnel both ways through styx's userspace ESP and charon's libipsec. */
async function assertTraffic(p: Peers): Promise<void> {
  const t = p.topo!;
  const there = await ping(t.left.ns, t.right.inner4, { from: t.left.inner4, count: 3 });
  assert.equal(there.received, 3, there.output);
  const back = await ping(t.right.ns, t.left.inner4, { from: t.right.inner4, count: 3 });
  assert.equal(back.received, 3, back.output);
}

/**
 * Roles, cookies (charon lists them as the IKE SPIs), mirrored ESP SPIs
 * and the CHILD_SA keys: styx's `_i` keys are the Quick Mode initiator's
 * sending direction, charon's "encryption initiator key".
 */
function assertAgreement(p: Peers, sa: IkeSaInfo, csa: ParsedSa, styxInitiated: boolean): void {
  const view = `styx: ${JSON.stringify(sa)}\ncharon: ${summarizeSa(csa)}`;
  assert.equal(csa.version, 1, view);
  assert.equal(sa.initiator, styxInitiated, view);
  assert.equal(sa.spiI, csa.initiatorSpi, view);
  assert.equal(sa.spiR, csa.responderSpi, view);
  const child = sa.children[0]!;
  assert.equal(child.spiIn, csa.children[0]!.spiOut, view);
  assert.equal(child.spiOut, csa.children[0]!.spiIn, view);
  const sk = styxChildKeysFromLogText(p.styx.logText()).filter((k) => k.spiI === sa.spiI && k.spiR === sa.spiR && k.child === CHILD);
  assert.equal(sk.length, 1, `styxd logged ${sk.length} CHILD_SA key lines for ${sa.spiI}_i ${sa.spiR}_r`);
  const ck = p.charon.childKeysFromLog().filter((k) => k.spiIn === child.spiOut && k.spiOut === child.spiIn);
  assert.equal(ck.length, 1, `charon logged ${ck.length} key sets for SPIs ${child.spiOut}/${child.spiIn}`);
  assert.equal(sk[0]!.encrI, ck[0]!.encInitiator, 'encryption key, QM initiator to responder');
  assert.equal(sk[0]!.encrR, ck[0]!.encResponder, 'encryption key, QM responder to initiator');
  assert.equal(sk[0]!.integI, ck[0]!.integInitiator ?? '', 'integrity key, QM initiator to responder');
  assert.equal(sk[0]!.integR, ck[0]!.integResponder ?? '', 'integrity key, QM responder to initiator');
}

interface GoodCase {
  tag: string;
  title: string;
  aggressive?: boolean;
  styx: string;
  styxCertFile: string;
  charon: { issue: 'rsa' | 'ecdsa-384'; cn: string };
  /** How charon names the scheme it verified styx's SIG with, and styx's words for the method. */
  charonScheme: string;
  styxMethod: string;
}

const GOOD: GoodCase[] = [
  {
    tag: 'rsa', title: 'Main Mode with RSA signatures (method 3)', styx: 'moon', styxCertFile: 'moon.chain.pem',
    charon: { issue: 'rsa', cn: 'titania' }, charonScheme: 'RSA_EMSA_PKCS1_NULL', styxMethod: 'RSA signatures',
  },
  {
    tag: 'amrsa', title: 'Aggressive Mode with RSA signatures', aggressive: true, styx: 'moon', styxCertFile: 'moon.chain.pem',
    charon: { issue: 'rsa', cn: 'titania' }, charonScheme: 'RSA_EMSA_PKCS1_NULL', styxMethod: 'RSA signatures',
  },
  {
    // venus is P-384: HASH_I/HASH_R with HMAC-SHA-384 under a SHA-256 transform, which only agreeing with charon can show.
    tag: 'ec384', title: 'Main Mode with ECDSA P-384 (method 10) under a SHA-256 transform', styx: 'venus', styxCertFile: 'venus.pem',
    charon: { issue: 'ecdsa-384', cn: 'oberon' }, charonScheme: 'ECDSA_WITH_NULL', styxMethod: 'ECDSA P-384 signatures',
  },
];

for (const g of GOOD) {
  describe(`IKEv1 certificates with strongSwan: ${g.title}`, function () {
    const p = usePeers({
      tag: g.tag, ...(g.aggressive ? { aggressive: true } : {}),
      styxCert: g.styxCertFile, styxKey: `${g.styx}.key.pem`, styxRemoteId: `${g.charon.cn}.styx.example`,
      charonCert: g.charon, charonId: `${g.charon.cn}.styx.example`,
    });
    const exchange = g.aggressive ? 'AGGRESSIVE' : 'ID_PROT';

    it('styx initiates: both verify the other\'s certificate and signature, cookies, ESP SPIs and CHILD_SA keys agree', async function () {
      const r = await p.styx.styxRun(['initiate', STYX_CONN]);
      assert.equal(r.code, 0, `styx initiate failed: ${r.stderr}${r.stdout}`);
      const { sa, csa } = await bothUp(p);
      assertAgreement(p, sa, csa, true);
      await assertTraffic(p);
      assert.equal(sa.local.id, DN(g.styx), 'styx sends its certificate subject as ID_DER_ASN1_DN by default');
      assert.equal(sa.remote.id, `${g.charon.cn}.styx.example`);
      const c = p.charon.logText();
      // charon read styx's CR (the root it trusts; its IKEv1 code quotes it with '') and its certificates, and checked its signature over the bare HASH.
      assert.match(c, /received cert request for 'C=CH, O=styx, CN=styx Root CA'/);
      assert.match(c, new RegExp(`received end entity cert "${re(DN(g.styx))}"`));
      assert.match(c, new RegExp(`authentication of '${re(DN(g.styx))}' with ${g.charonScheme} successful`));
      const s = p.styx.logText();
      assert.match(s, new RegExp(`peer '${re(g.charon.cn)}\\.styx\\.example' proved by certificate "${re(DN(g.charon.cn))}" .* via "C=CH, O=styx, CN=styx Intermediate CA" -> "C=CH, O=styx, CN=styx Root CA", ${g.styxMethod}`));
      assert.match(s, new RegExp(`CONNECTING -> ESTABLISHED \\(${g.aggressive ? 'Aggressive' : 'Main'} Mode, .* with ${g.styxMethod}`));
      assert.match(c, new RegExp(`parsed ${exchange} (request|response) 0 \\[ .*CERT.* SIG`));
    });

    it('charon initiates: the same, with styx as responder', async function () {
      await reset(p);
      const mark = p.charon.logMark();
      await p.charon.initiate(CHILD, CHARON_CONN, 20);
      const { sa, csa } = await bothUp(p);
      assertAgreement(p, sa, csa, false);
      await assertTraffic(p);
      const c = since(p.charon.logText(), mark);
      assert.match(c, /received cert request for 'C=CH, O=styx, CN=styx Root CA'/);
      assert.match(c, new RegExp(`authentication of '${re(DN(g.styx))}' with ${g.charonScheme} successful`));
      assert.match(c, new RegExp(`authentication of '${re(g.charon.cn)}\\.styx\\.example' \\(myself\\) successful`));
    });
  });
}

interface RefusalCase { tag: string; what: string; charonCert: string; charonId: string; styxRemoteId: string; log: RegExp }
const REFUSALS: RefusalCase[] = [
  {
    tag: 'revoked', what: 'a revoked certificate (mars, on the intermediate CA\'s CRL)',
    charonCert: 'mars.pem', charonId: DN('mars'), styxRemoteId: '%any',
    log: /ERROR \[ike\] .*AUTHENTICATION_FAILED: peer 'C=CH, O=styx, CN=mars\.styx\.example': certificate revoked: certificate "C=CH, O=styx, CN=mars\.styx\.example" \(serial [0-9a-f]+\): revoked .*reason keyCompromise/,
  },
  {
    // charon's IKEv1 finds its private key by the ID it sends, so it cannot be made to claim sun with jupiter's
    // certificate (the two-peer tests cover that binding check); here it is jupiter, valid, where sun is expected.
    tag: 'wrongid', what: 'a valid certificate of another identity (jupiter where sun is expected)',
    charonCert: 'jupiter.pem', charonId: DN('jupiter'), styxRemoteId: 'sun.styx.example',
    log: /ERROR \[ike\] .*AUTHENTICATION_FAILED: peer identity 'C=CH, O=styx, CN=jupiter\.styx\.example' is not the configured 'sun\.styx\.example'/,
  },
];

for (const rc of REFUSALS) {
  describe(`IKEv1 certificates with strongSwan: styx refuses ${rc.what}`, function () {
    // Both P-256: ECDSA method 9, so charon checks styx's ECDSA signature before sending its own.
    const p = usePeers({
      tag: rc.tag, styxCert: 'sun.pem', styxKey: 'sun.key.pem', styxRemoteId: rc.styxRemoteId,
      charonCert: { file: rc.charonCert }, charonId: rc.charonId,
    });

    it('styx initiates: it refuses MM6 with the reason, tells charon, and neither side keeps an SA', async function () {
      const r = await p.styx.styxRun(['initiate', STYX_CONN], { timeoutMs: 60_000 });
      assert.equal(r.code, 1, `styx initiate should fail: ${r.stdout}${r.stderr}`);
      await p.styx.waitForLog(new RegExp(`${rc.log.source}.* \\(MM6\\)$`, 'm'));
      // charon accepted styx's ECDSA signature and counted itself established, then took styx's AUTHENTICATION-FAILED and Delete.
      assert.match(p.charon.logText(), new RegExp(`authentication of '${re(DN('sun'))}' with ECDSA_WITH_NULL successful`));
      await bothDown(p);
      // charon only logs an error notify for an SA it counts as established; the Delete that follows removes it.
      await p.charon.waitForLog(/received DELETE for IKE_SA styx\[\d+\]/);
    });

    it('charon initiates: styx refuses MM5 with the reason, and neither side keeps an SA', async function () {
      await reset(p);
      const styxMark = p.styx.logMark(), charonMark = p.charon.logMark();
      const c = p.charon.initiate(CHILD, CHARON_CONN, 15);
      await p.styx.waitForLog(new RegExp(`${rc.log.source}.* \\(MM5\\)$`, 'm'), 20_000, styxMark);
      await assert.rejects(c);
      // The notify and the Delete travel separately and charon may take them in either order: whichever it reads first ends its SA.
      await p.charon.waitForLog(/received AUTHENTICATION_FAILED error notify|received DELETE for IKE_SA/, 10_000, charonMark);
      await bothDown(p);
    });
  });
}

describe('IKEv1 certificates with strongSwan: charon refuses styx\'s revoked certificate (mars)', function () {
  const p = usePeers({
    tag: 'ourrevoked', styxCert: 'mars.pem', styxKey: 'mars.key.pem', styxRemoteId: 'sun.styx.example',
    charonCert: { file: 'sun.pem' }, charonId: 'sun.styx.example',
  });

  it('styx initiates: charon finds mars on its CRL and answers AUTHENTICATION-FAILED; styx ends the phase 1 at once naming it, no SA anywhere', async function () {
    const r = await p.styx.styxRun(['initiate', STYX_CONN], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, `styx initiate should fail: ${r.stdout}${r.stderr}`);
    assert.match(`${r.stdout}${r.stderr}`, /peer refused phase 1: AUTHENTICATION_FAILED/);
    assert.match(p.charon.logText(), /certificate was revoked on .*, reason: key compromise/);
    assert.match(p.styx.logText(), /peer reports AUTHENTICATION_FAILED/);
    await bothDown(p);
  });
});
