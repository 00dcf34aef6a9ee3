/**
 * IKEv2 certificate authentication between styxd and strongSwan's charon,
 * both holding the committed test PKI (certs/pki): an RSA-3072 and an ECDSA
 * P-256 end entity under the intermediate CA, each side trusting only the
 * root (so the intermediate travels in CERT payloads) and holding the
 * intermediate's CRL. Both roles, with equal CHILD_SA keys on both sides;
 * then a revoked certificate and a certificate for another identity
 * presented by charon, refused by styx with a log line saying why, and no
 * SA left on either side. `styx list-certs` is checked against the loaded
 * files on the way.
 *
 * styxd runs in the left namespace (memory data plane), charon in the right.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, ping, repoRoot, requireInterop, startCharon, startStyxd, summarizeSa,
  type CharonHandle, type IkeSaInfo, type ParsedSa, type StyxdHandle, type Topology,
} from './harness.js';
import { styxChildKeysFromLogText } from './lib/styx-keys.js';

const STYX_CONN = 'peer';
const CHARON_CONN = 'styx';
const CHILD = 'net';
const PROPOSAL = 'aes128gcm16-prfsha256-x25519';
const ESP = 'aes128gcm16';
const DN = (cn: string): string => `C=CH, O=styx, CN=${cn}.styx.example`;

const pkiFile = (f: string): string => join(repoRoot(), 'certs', 'pki', f);
const pki = (f: string): Buffer => readFileSync(pkiFile(f));

interface Setup {
  tag: string;
  /** styx's certificate file (a .chain.pem carries the intermediate) and key. */
  styxCert: string;
  styxKey: string;
  /** The identity styx expects of charon. */
  styxRemoteId: string;
  /** charon's end-entity certificate, key, and the identity it sends. */
  charonCert: string;
  charonKey: string;
  charonId: string;
}

function styxYaml(t: Topology, s: Setup): string {
  return `daemon:
  listen: [${t.left.outer4}]
  dataplane: userspace
connections:
  ${STYX_CONN}:
    local_addrs: [${t.left.outer4}]
    remote_addrs: [${t.right.outer4}]
    proposals: [${PROPOSAL}]
    local: { auth: pubkey, cert: ${pkiFile(s.styxCert)}, key: ${pkiFile(s.styxKey)} }
    remote:
      auth: pubkey
      id: "${s.styxRemoteId}"
      cacerts: [${pkiFile('root-ca.pem')}]
      crls: [${pkiFile('intermediate-ca.crl.pem')}]
    children:
      ${CHILD}:
        local_ts: [${t.left.innerNet4}]
        remote_ts: [${t.right.innerNet4}]
        esp_proposals: [${ESP}]
`;
}

/**
 * charon trusts the root, knows the intermediate (so it can send it along
 * with its own certificate) and holds the intermediate's CRL. Identities are
 * quoted: a DN holds commas.
 */
function charonSwanctl(t: Topology, s: Setup): string {
  return `connections {
  ${CHARON_CONN} {
    version = 2
    local_addrs = ${t.right.outer4}
    remote_addrs = ${t.left.outer4}
    proposals = ${PROPOSAL}
    encap = yes
    keyingtries = 1
    local {
      auth = pubkey
      certs = ${s.charonCert}
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
    const topo = await createTopology(s.tag);
    p.topo = topo;
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml(topo, s));
    const [st, ch] = await Promise.allSettled([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=secret' }),
      startCharon(topo.right.ns, topo.dir('charon-r'), {
        swanctl: charonSwanctl(topo, s),
        files: {
          [`x509/${s.charonCert}`]: pki(s.charonCert),
          [`private/${s.charonKey}`]: pki(s.charonKey),
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

const isUp = (sa: IkeSaInfo | undefined): boolean => sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
const charonUp = (sa: ParsedSa | undefined): boolean => sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';

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

async function reset(p: Peers): Promise<void> {
  if ((await p.styx.listJson()).length > 0) await p.styx.styx(['terminate', STYX_CONN]);
  if ((await p.charon.listSas()).length > 0) await p.charon.terminate(CHARON_CONN).catch(() => undefined);
  await bothDown(p);
}

const since = (text: string, mark: number): string => Buffer.from(text).subarray(mark).toString('utf8');

/** Traffic crosses the tunnel both ways through styx's userspace ESP and charon's libipsec. */
async function assertTraffic(p: Peers): Promise<void> {
  const t = p.topo!;
  const there = await ping(t.left.ns, t.right.inner4, { from: t.left.inner4, count: 3 });
  assert.equal(there.received, 3, there.output);
  const back = await ping(t.right.ns, t.left.inner4, { from: t.right.inner4, count: 3 });
  assert.equal(back.received, 3, back.output);
}

/** SPIs and the CHILD_SA keys each side derived agree. */
function assertSameKeys(p: Peers, sa: IkeSaInfo, csa: ParsedSa, styxInitiated: boolean): void {
  const view = `styx: ${JSON.stringify(sa)}\ncharon: ${summarizeSa(csa)}`;
  assert.equal(sa.initiator, styxInitiated, view);
  assert.equal(sa.spiI, csa.initiatorSpi, view);
  assert.equal(sa.spiR, csa.responderSpi, view);
  const child = sa.children[0]!;
  assert.equal(child.spiIn, csa.children[0]!.spiOut, view);
  const sk = styxChildKeysFromLogText(p.styx.logText()).filter((k) => k.spiI === sa.spiI && k.spiR === sa.spiR && k.child === CHILD);
  assert.equal(sk.length, 1, 'styxd logged the CHILD_SA keys once');
  const ck = p.charon.childKeysFromLog().filter((k) => k.spiIn === child.spiOut && k.spiOut === child.spiIn);
  assert.equal(ck.length, 1, `charon logged ${ck.length} key sets for SPIs ${child.spiOut}/${child.spiIn}`);
  assert.equal(sk[0]!.encrI, ck[0]!.encInitiator, 'encryption key, initiator to responder');
  assert.equal(sk[0]!.encrR, ck[0]!.encResponder, 'encryption key, responder to initiator');
}

interface KeyCase { tag: string; styx: string; charon: string; styxScheme: RegExp; charonScheme: RegExp }
const KEY_CASES: KeyCase[] = [
  {
    tag: 'rsa-ec', styx: 'moon', charon: 'sun',
    // charon names RFC 7427 schemes by the signature encoding it verified or made.
    styxScheme: /RSA_EMSA_PKCS1_SHA2_256/, charonScheme: /ECDSA_WITH_SHA256_DER/,
  },
  { tag: 'ec-rsa', styx: 'sun', charon: 'moon', styxScheme: /ECDSA_WITH_SHA256_DER/, charonScheme: /RSA_EMSA_PKCS1_SHA2_256/ },
];

for (const kc of KEY_CASES) {
  describe(`IKEv2 certificates with strongSwan: styx ${kc.styx === 'moon' ? 'RSA-3072' : 'ECDSA P-256'} (${kc.styx}), charon ${kc.charon === 'moon' ? 'RSA-3072' : 'ECDSA P-256'} (${kc.charon})`, function () {
    const p = usePeers({
      tag: kc.tag,
      // moon's PEM file carries the intermediate after the certificate, so styx sends both.
      styxCert: kc.styx === 'moon' ? 'moon.chain.pem' : 'sun.pem', styxKey: `${kc.styx}.key.pem`,
      styxRemoteId: `${kc.charon}.styx.example`,
      charonCert: `${kc.charon}.pem`, charonKey: `${kc.charon}.key.pem`, charonId: `${kc.charon}.styx.example`,
    });

    it('styx initiates: both verify the other\'s certificate and signature, SPIs and CHILD_SA keys agree', async function () {
      const r = await p.styx.styxRun(['initiate', STYX_CONN]);
      assert.equal(r.code, 0, `styx initiate failed: ${r.stderr}${r.stdout}`);
      const { sa, csa } = await bothUp(p);
      assertSameKeys(p, sa, csa, true);
      await assertTraffic(p);
      assert.equal(sa.local.id, DN(kc.styx), 'styx sends its certificate subject as ID_DER_ASN1_DN by default');
      assert.equal(sa.remote.id, `${kc.charon}.styx.example`);
      const c = p.charon.logText();
      // charon read our CERTREQ (the root's key hash) and our certificates, and checked our signature.
      assert.match(c, /received cert request for "C=CH, O=styx, CN=styx Root CA"/);
      assert.match(c, new RegExp(`received end entity cert "${DN(kc.styx)}"`));
      assert.match(c, new RegExp(`authentication of '${DN(kc.styx)}' with ${kc.styxScheme.source} successful`));
      assert.match(p.styx.logText(), new RegExp(`peer '${kc.charon}\\.styx\\.example' proved by certificate "${DN(kc.charon)}" .* via "C=CH, O=styx, CN=styx Intermediate CA" -> "C=CH, O=styx, CN=styx Root CA"`));
    });

    it('charon initiates: the same, with styx as responder', async function () {
      await reset(p);
      const mark = p.charon.logMark();
      await p.charon.initiate(CHILD, CHARON_CONN, 20);
      const { sa, csa } = await bothUp(p);
      assertSameKeys(p, sa, csa, false);
      await assertTraffic(p);
      const c = since(p.charon.logText(), mark);
      assert.match(c, /received cert request for "C=CH, O=styx, CN=styx Root CA"/);
      assert.match(c, new RegExp(`authentication of '${DN(kc.styx)}' with ${kc.styxScheme.source} successful`));
      assert.match(c, new RegExp(`authentication of '${kc.charon}\\.styx\\.example' \\(myself\\) with ${kc.charonScheme.source} successful`));
    });

    it('styx list-certs shows its certificate, the trusted root and the CRL with their status', async function () {
      const out = await p.styx.styx(['list-certs']);
      // sun.pem holds no intermediate, so styx itself cannot chain its own certificate to the root it trusts (charon can: it has the intermediate).
      const ownStatus = kc.styx === 'moon' ? 'valid' : 'untrusted';
      assert.match(out, new RegExp(`local +"${DN(kc.styx)}" +${ownStatus.toUpperCase()}${ownStatus === 'valid' ? '\n' : ': .*no path to a trusted CA'}`));
      if (kc.styx === 'moon') assert.match(out, /intermediate +"C=CH, O=styx, CN=styx Intermediate CA" +VALID/);
      assert.match(out, /ca +"C=CH, O=styx, CN=styx Root CA" +VALID/);
      assert.match(out, /crl +"C=CH, O=styx, CN=styx Intermediate CA" +CURRENT, 1 revoked/);
      const json = JSON.parse(await p.styx.styx(['list-certs', '--json'])) as { certs: { role: string; subject: string; status: string; notAfter: string }[] };
      const local = json.certs.find((x) => x.role === 'local');
      assert.deepEqual([local?.subject, local?.status, local?.notAfter], [DN(kc.styx), ownStatus, '2045-01-01T00:00:00.000Z']);
    });
  });
}

interface RefusalCase { tag: string; what: string; charonCert: string; charonId: string; styxRemoteId: string; log: RegExp; responderLog: RegExp }
const REFUSALS: RefusalCase[] = [
  {
    tag: 'revoked', what: 'a revoked certificate (mars, on the intermediate CA\'s CRL)',
    charonCert: 'mars', charonId: DN('mars'), styxRemoteId: '%any',
    log: /AUTHENTICATION_FAILED: peer 'C=CH, O=styx, CN=mars\.styx\.example': certificate revoked: certificate "C=CH, O=styx, CN=mars\.styx\.example" \(serial [0-9a-f]+\): revoked .*reason keyCompromise/,
    responderLog: /AUTHENTICATION_FAILED: peer 'C=CH, O=styx, CN=mars\.styx\.example': certificate revoked: .*keyCompromise/,
  },
  {
    tag: 'wrongid', what: 'a valid certificate for another identity (jupiter where sun is expected)',
    charonCert: 'jupiter', charonId: 'sun.styx.example', styxRemoteId: 'sun.styx.example',
    // charon sends the ID it is told to with whatever certificate it holds; the binding check catches it.
    log: /AUTHENTICATION_FAILED: peer 'sun\.styx\.example': identity not in certificate: identity "sun\.styx\.example" is not bound to certificate "C=CH, O=styx, CN=jupiter\.styx\.example"/,
    responderLog: /AUTHENTICATION_FAILED: peer 'sun\.styx\.example': identity not in certificate: identity "sun\.styx\.example" is not bound to certificate "C=CH, O=styx, CN=jupiter\.styx\.example"/,
  },
];

for (const rc of REFUSALS) {
  describe(`IKEv2 certificates with strongSwan: styx refuses ${rc.what}`, function () {
    const p = usePeers({
      tag: rc.tag, styxCert: 'moon.chain.pem', styxKey: 'moon.key.pem', styxRemoteId: rc.styxRemoteId,
      charonCert: `${rc.charonCert}.pem`, charonKey: `${rc.charonCert}.key.pem`, charonId: rc.charonId,
    });

    it('styx initiates: it refuses charon\'s AUTH with the reason, and neither side keeps an SA', async function () {
      const r = await p.styx.styxRun(['initiate', STYX_CONN]);
      assert.equal(r.code, 1, `styx initiate should fail: ${r.stdout}${r.stderr}`);
      await p.styx.waitForLog(rc.log);
      assert.match(p.styx.logText(), /ERROR \[ike\] .*AUTHENTICATION_FAILED/);
      // The responder had installed its side; styx's INFORMATIONAL AUTHENTICATION_FAILED (RFC 7296 2.21.2) removes it.
      await bothDown(p);
      await p.charon.waitForLog(/parsed INFORMATIONAL request \d+ \[ N\(AUTH_FAILED\) \]/);
    });

    it('charon initiates: styx answers AUTHENTICATION_FAILED with the reason in its log, and neither side keeps an SA', async function () {
      await reset(p);
      const styxMark = p.styx.logMark(), charonMark = p.charon.logMark();
      await assert.rejects(p.charon.initiate(CHILD, CHARON_CONN, 15));
      await p.styx.waitForLog(rc.responderLog, 10_000, styxMark);
      await p.charon.waitForLog(/received AUTHENTICATION_FAILED notify error/, 10_000, charonMark);
      await bothDown(p);
    });
  });
}
