/**
 * IKEv2 fragmentation (RFC 7383) between styxd and strongSwan's charon: both
 * announce IKEV2_FRAGMENTATION_SUPPORTED, both send IP datagrams of at most
 * 600 octets (charon.fragment_size, styx's fragment_size), and both present
 * RSA-3072 certificates, so each IKE_AUTH message is several times that size
 * and must be split (charon adds the intermediate CA, which styx's CERTREQ
 * does not name; styx sends its certificate alone, as charon's CERTREQ names
 * the intermediate: about 2.9 and 1.9 kB). In both roles, the test
 * reads from each side's log how many fragments the other sent and how many
 * it reassembled, and checks that the SA came up with equal CHILD_SA keys.
 *
 * charon's RSA-3072 certificate is issued at test time by the test PKI's
 * intermediate CA with strongSwan's own pki tool (the committed PKI has one
 * RSA end entity, moon, which styx uses).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, repoRoot, requireInterop, run, startCharon, startStyxd,
  type CharonHandle, type IkeSaInfo, type ParsedSa, type StyxdHandle, type Topology,
} from './harness.js';
import { styxChildKeysFromLogText } from './lib/styx-keys.js';

const STYX_CONN = 'peer';
const CHARON_CONN = 'styx';
const CHILD = 'net';
const PROPOSAL = 'aes128-sha256-x25519';
const ESP = 'aes128gcm16';
/** The largest IP datagram either side may send an IKE fragment in. */
const FRAGMENT_SIZE = 600;
/** What is left for UDP payload under an IPv4 header: every IKE datagram must fit it. */
const MAX_UDP_PAYLOAD = FRAGMENT_SIZE - 20 - 8;
const DN = (cn: string): string => `C=CH, O=styx, CN=${cn}.styx.example`;
const pkiFile = (f: string): string => join(repoRoot(), 'certs', 'pki', f);

function styxYaml(t: Topology): string {
  return `daemon:
  listen: [${t.left.outer4}]
  dataplane: memory
connections:
  ${STYX_CONN}:
    local_addrs: [${t.left.outer4}]
    remote_addrs: [${t.right.outer4}]
    proposals: [${PROPOSAL}]
    fragment_size: ${FRAGMENT_SIZE}
    local: { auth: pubkey, cert: ${pkiFile('moon.chain.pem')}, key: ${pkiFile('moon.key.pem')} }
    remote: { auth: pubkey, id: sun.styx.example, cacerts: [${pkiFile('root-ca.pem')}], crls: [${pkiFile('intermediate-ca.crl.pem')}] }
    children:
      ${CHILD}:
        local_ts: [${t.left.innerNet4}]
        remote_ts: [${t.right.innerNet4}]
        esp_proposals: [${ESP}]
`;
}

function charonSwanctl(t: Topology): string {
  return `connections {
  ${CHARON_CONN} {
    version = 2
    local_addrs = ${t.right.outer4}
    remote_addrs = ${t.left.outer4}
    proposals = ${PROPOSAL}
    fragmentation = yes
    encap = no
    keyingtries = 1
    local {
      auth = pubkey
      certs = sun-rsa.pem
      id = sun.styx.example
    }
    remote {
      auth = pubkey
      id = "${DN('moon')}"
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

/** An RSA-3072 key and a certificate for sun.styx.example from the intermediate CA, made by strongSwan's pki. */
async function issueCharonCert(dir: string): Promise<{ key: string; cert: string }> {
  const keyPath = join(dir, 'sun-rsa.key.pem');
  const key = (await run(['pki', '--gen', '--type', 'rsa', '--size', '3072', '--outform', 'pem'], { timeoutMs: 120_000 })).stdout;
  writeFileSync(keyPath, key);
  const cert = (await run([
    'pki', '--issue', '--in', keyPath, '--type', 'priv', '--cacert', pkiFile('intermediate-ca.pem'), '--cakey', pkiFile('intermediate-ca.key.pem'),
    '--dn', DN('sun'), '--san', 'sun.styx.example', '--lifetime', '30', '--digest', 'sha256', '--outform', 'pem',
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

const isUp = (sa: IkeSaInfo | undefined): boolean => sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
const charonUp = (sa: ParsedSa | undefined): boolean => sa?.state === 'ESTABLISHED' && sa.children.length === 1 && sa.children[0]!.state === 'INSTALLED';
const since = (text: string, mark: number): string => Buffer.from(text).subarray(mark).toString('utf8');

async function bothUp(p: Peers): Promise<{ sa: IkeSaInfo; csa: ParsedSa }> {
  const [[sa], [csa]] = await Promise.all([
    p.styx.waitForSas((s) => s.length === 1 && isUp(s[0])),
    p.charon.waitForSas((s) => s.length === 1 && charonUp(s[0])),
  ]);
  return { sa: sa!, csa: csa! };
}

function assertSameChildKeys(p: Peers, sa: IkeSaInfo): void {
  const child = sa.children[0]!;
  const sk = styxChildKeysFromLogText(p.styx.logText()).filter((k) => k.spiI === sa.spiI && k.spiR === sa.spiR);
  const ck = p.charon.childKeysFromLog().filter((k) => k.spiIn === child.spiOut && k.spiOut === child.spiIn);
  assert.equal(sk.length, 1);
  assert.equal(ck.length, 1);
  assert.deepEqual([sk[0]!.encrI, sk[0]!.encrR], [ck[0]!.encInitiator, ck[0]!.encResponder]);
}

/** All matches of a regex's first group, as numbers. */
const counts = (text: string, re: RegExp): number[] => [...text.matchAll(new RegExp(re.source, 'g'))].map((m) => Number(m[1]));

/**
 * What each side's log says about IKE_AUTH: charon's own splitting and
 * reassembly lines, styx's, and the sizes of the datagrams each received.
 */
function assertFragmented(styxLog: string, charonLog: string, styxInitiated: boolean): void {
  const styxDir = styxInitiated ? 'request' : 'response';
  const charonDir = styxInitiated ? 'response' : 'request';
  // styx: "IKE_AUTH request 1 (3034 octets) split into 6 fragments of at most 568 octets"
  const styxSplit = counts(styxLog, new RegExp(`IKE_AUTH ${styxDir} 1 \\(\\d+ octets\\) split into (\\d+) fragments of at most ${FRAGMENT_SIZE - 32} octets`));
  assert.equal(styxSplit.length, 1, `styx split its IKE_AUTH ${styxDir} once`);
  assert.ok(styxSplit[0]! >= 3, `styx sent ${styxSplit[0]} fragments`);
  // charon: "received fragment #6 of 6, reassembled fragmented IKE message (2977 bytes)"
  const charonGot = counts(charonLog, /received fragment #\d+ of (\d+), reassembled fragmented IKE message/);
  assert.deepEqual(charonGot, [styxSplit[0]], 'charon reassembled exactly the fragments styx sent');
  assert.equal(counts(charonLog, /received fragment #\d+ of (\d+), waiting for complete IKE message/).length, styxSplit[0]! - 1);
  // charon: "splitting IKE message (3090 bytes) into 6 fragments"; styx reassembles the same number.
  const charonSplit = counts(charonLog, /splitting IKE message \(\d+ bytes\) into (\d+) fragments/);
  assert.equal(charonSplit.length, 1, 'charon split its IKE_AUTH message once');
  assert.ok(charonSplit[0]! >= 3);
  assert.deepEqual(counts(styxLog, new RegExp(`reassembled IKE_AUTH ${charonDir} 1 from (\\d+) fragments`)), [charonSplit[0]]);
  assert.match(charonLog, new RegExp(`generating IKE_AUTH ${charonDir} 1 \\[ EF\\(1/${charonSplit[0]}\\) \\]`));
  // Every IKE_AUTH datagram on the wire fits the fragment size, in both directions.
  const styxSizes = counts(styxLog, /received IKE_AUTH \w+ 1 \[ SKF\(\d+\/\d+\) \] from \S+ \((\d+) bytes\)/);
  const charonSizes = counts(charonLog, /received packet: from \S+ to \S+ \((\d+) bytes\)/);
  assert.equal(styxSizes.length, charonSplit[0]);
  for (const n of styxSizes) assert.ok(n <= MAX_UDP_PAYLOAD, `styx received a ${n}-octet IKE message`);
  for (const n of charonSizes) assert.ok(n <= MAX_UDP_PAYLOAD, `charon received a ${n}-octet datagram`);
}

describe('IKEv2 fragmentation with strongSwan: RSA-3072 chains at a 600-octet fragment size', function () {
  const p = new Peers();
  before(async function () {
    requireInterop(this, { charon: true, styxd: true });
    const topo = await createTopology('frag');
    p.topo = topo;
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml(topo));
    const issued = await issueCharonCert(topo.dir('pki'));
    const [st, ch] = await Promise.allSettled([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=secret' }),
      startCharon(topo.right.ns, topo.dir('charon-r'), {
        swanctl: charonSwanctl(topo),
        charon: { fragment_size: FRAGMENT_SIZE },
        // enc at 2 shows fragment reassembly, net at 2 the size of every datagram.
        logLevels: { enc: 2, net: 2 },
        files: {
          'x509/sun-rsa.pem': issued.cert,
          'private/sun-rsa.key.pem': issued.key,
          'x509ca/root-ca.pem': readFileSync(pkiFile('root-ca.pem')),
          'x509ca/intermediate-ca.pem': readFileSync(pkiFile('intermediate-ca.pem')),
          'x509crl/intermediate-ca.crl.pem': readFileSync(pkiFile('intermediate-ca.crl.pem')),
        },
      }),
    ]);
    if (st.status === 'fulfilled') p.styxd = st.value;
    if (ch.status === 'fulfilled') p.charond = ch.value;
    if (st.status === 'rejected') throw st.reason;
    if (ch.status === 'rejected') throw ch.reason;
  });
  afterEach(function () {
    dumpLogsOnFailure(this, { styxd: p.styxd?.logPath, charon: p.charond?.logPath }, 150);
  });
  after(async function () {
    await Promise.all([p.styxd?.stop(), p.charond?.stop()]);
    await p.topo?.teardown();
  });

  it('styx initiates: its IKE_AUTH request and charon\'s response both travel in fragments and the SA comes up', async function () {
    const r = await p.styx.styxRun(['initiate', STYX_CONN]);
    assert.equal(r.code, 0, `styx initiate failed: ${r.stderr}${r.stdout}`);
    const { sa } = await bothUp(p);
    assertSameChildKeys(p, sa);
    assertFragmented(p.styx.logText(), p.charon.logText(), true);
    // Both announced support in IKE_SA_INIT (RFC 7383 2.3).
    assert.match(p.styx.logText(), /received IKE_SA_INIT response 0 \[ .*N\(FRAGMENTATION\)/);
    assert.match(p.charon.logText(), /parsed IKE_SA_INIT request 0 \[ .*N\(FRAG_SUP\)/);
  });

  it('charon initiates: the same with the roles swapped', async function () {
    await p.styx.styx(['terminate', STYX_CONN]);
    await Promise.all([p.styx.waitForSas((s) => s.length === 0), p.charon.waitForSas((s) => s.length === 0)]);
    const sm = p.styx.logMark(), cm = p.charon.logMark();
    await p.charon.initiate(CHILD, CHARON_CONN, 30);
    const { sa } = await bothUp(p);
    assertSameChildKeys(p, sa);
    assertFragmented(since(p.styx.logText(), sm), since(p.charon.logText(), cm), false);
  });
});
