/**
 * IKEv1 phase 1 with certificates between two in-process peers, using the
 * committed test PKI (certs/pki, see certs/README.md): Main Mode and
 * Aggressive Mode with RSA (method 3) and ECDSA on the three curves
 * (methods 9-11), CR and CERT payloads on the wire, and every failure case
 * of the PKI refused with its reason in one log line and no SA left on
 * either side, whichever side presents the bad certificate.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { derToDnText } from '../../../src/auth/index.js';
import { identityText } from '../../../src/ike/identity.js';
import {
  V1AuthMethod, V1ExchangeType, V1PayloadType, decodeIsakmp, phase1Attributes, type IsakmpPlainMessage,
} from '../../../src/wire/ikev1/index.js';
import { LEFT, RIGHT, V1Peers } from './two-peers.js';

const PKI = fileURLToPath(new URL('../../../../certs/pki/', import.meta.url));
const pki = (f: string): string => join(PKI, f);
const DN = (cn: string): string => `C=CH, O=styx, CN=${cn}.styx.example`;

/** Our side: `name`.pem (or `cert`) with `name`.key.pem, the id optional (the subject DN by default). */
const localSide = (name: string, id?: string, cert?: string): string =>
  `{ auth: pubkey, cert: ${pki(cert ?? `${name}.pem`)}, key: ${pki(`${name}.key.pem`)}${id ? `, id: "${id}"` : ''} }`;
/** Whom we trust: both CAs (or those given) and both CRLs, the peer's identity optional (%any by default). */
const remoteSide = (id?: string, cacerts = ['ca-bundle.pem']): string =>
  `{ auth: pubkey${id ? `, id: "${id}"` : ''}, cacerts: [${cacerts.map(pki).join(', ')}], crls: [${pki('intermediate-ca.crl.pem')}, ${pki('root-ca.crl.pem')}] }`;

interface Side { local: string; remote: string }

function config(side: 'left' | 'right', s: Side, aggressive: boolean): string {
  const me = side === 'left' ? LEFT : RIGHT, peer = side === 'left' ? RIGHT : LEFT;
  const myNet = side === 'left' ? '10.1.0.0/24' : '10.2.0.0/24', peerNet = side === 'left' ? '10.2.0.0/24' : '10.1.0.0/24';
  return `
daemon:
  listen: [${me.address}]
connections:
  demo:
    version: 1
    aggressive: ${aggressive ? 'yes' : 'no'}
    local_addrs: [${me.address}]
    remote_addrs: [${peer.address}]
    proposals: [aes128-sha256-modp2048]
    local: ${s.local}
    remote: ${s.remote}
    retransmit: { timeout: 1, tries: 3, base: 2 }
    children:
      net:
        local_ts: [${myNet}]
        remote_ts: [${peerNet}]
        esp_proposals: [aes128-sha256]
secrets:
  - { ids: [left.example], psk: "only for the PSK side of the mixed case" }
`;
}

const peers = (left: Side, right: Side, aggressive = false): V1Peers => new V1Peers(config('left', left, aggressive), config('right', right, aggressive));

/** Polls the real clock: certificate files load and chains validate off the in-memory network. */
async function until(p: V1Peers, what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`${what} did not happen within ${ms} ms\n${p.dump()}`);
    await p.settle();
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Initiates from the left and waits until the responder has installed its side of the Quick Mode as well. */
async function establish(p: V1Peers): Promise<void> {
  await p.establish();
  await until(p, 'the responder\'s IPsec SA', () => p.right.sas[0]?.children.length === 1);
}

/** Both sides up with one IPsec SA pair whose keys mirror each other. */
function assertUp(p: V1Peers): void {
  const [l] = p.left.sas, [r] = p.right.sas;
  assert.ok(l && r, p.dump());
  assert.equal(l.state, 'ESTABLISHED');
  assert.equal(r.state, 'ESTABLISHED');
  assert.deepEqual(l.keys, r.keys);
  const [lc] = l.children, [rc] = r.children;
  assert.ok(lc && rc, p.dump());
  assert.equal(lc.spiIn, rc.spiOut);
  assert.deepEqual(lc.keys, rc.keys);
}

/** The plaintext messages on the wire, in order. */
const plainMessages = (p: V1Peers): IsakmpPlainMessage[] =>
  p.wire.map((w) => decodeIsakmp(w.data)).filter((m): m is IsakmpPlainMessage => !m.encrypted);

describe('ike/v1 certificate authentication between two in-process peers', function () {
  this.timeout(30_000);

  it('Main Mode with RSA signatures (method 3): each side validates the other\'s chain, identity and SIG; Quick Mode follows', async () => {
    // The left side trusts only the root: its CR names just that, so the right one sends the intermediate along.
    const p = peers(
      { local: localSide('moon'), remote: remoteSide('moon.styx.example', ['root-ca.pem']) },
      { local: localSide('moon', 'moon.styx.example', 'moon.chain.pem'), remote: remoteSide(DN('moon')) },
    );
    await establish(p);
    assertUp(p);
    const l = p.left.sas[0]!, r = p.right.sas[0]!;
    assert.equal(l.attrs!.authMethod, V1AuthMethod.RSA_SIGNATURES);
    // The left side's id defaulted to its certificate's subject (ID_DER_ASN1_DN); the right one sent the FQDN it was given.
    assert.equal(identityText(r.remoteId!), DN('moon'));
    assert.equal(identityText(l.remoteId!), 'moon.styx.example');
    assert.ok(p.lines.some((x) => x.includes(`peer '${DN('moon')}' proved by certificate "${DN('moon')}"`) && x.includes('via "C=CH, O=styx, CN=styx Intermediate CA", RSA signatures')), p.dump());
    assert.ok(p.lines.some((x) => x.includes('peer \'moon.styx.example\' proved by certificate') && x.includes('via "C=CH, O=styx, CN=styx Intermediate CA" -> "C=CH, O=styx, CN=styx Root CA", RSA signatures')));
    assert.ok(p.lines.some((x) => /CONNECTING -> ESTABLISHED \(Main Mode, .* with RSA signatures, AES_CBC_128\/SHA2_256\/14/.test(x)), p.dump());
    // MM1 offers method 3; MM3 and MM4 each carry a CR per trusted CA with its DER subject.
    const plain = plainMessages(p);
    const sa = plain[0]!.payloads.find((x) => x.type === V1PayloadType.SA);
    assert.ok(sa && sa.type === V1PayloadType.SA);
    assert.equal(phase1Attributes(sa.proposals[0]!.transforms[0]!).authMethod, V1AuthMethod.RSA_SIGNATURES);
    const crs = (m: IsakmpPlainMessage): string[] => m.payloads.flatMap((x) => (x.type === V1PayloadType.CR && x.encoding === 4 ? [derToDnText(x.authority)] : []));
    assert.deepEqual(crs(plain[2]!), ['C=CH, O=styx, CN=styx Root CA']);
    assert.deepEqual(crs(plain[3]!), ['C=CH, O=styx, CN=styx Root CA', 'C=CH, O=styx, CN=styx Intermediate CA']);
  });

  for (const [name, method, curve] of [['sun', V1AuthMethod.ECDSA_SHA256_P256, 'P-256'], ['venus', V1AuthMethod.ECDSA_SHA384_P384, 'P-384'], ['mercury', V1AuthMethod.ECDSA_SHA512_P521, 'P-521']] as const) {
    it(`Main Mode with ECDSA ${curve} (method ${method})`, async () => {
      const p = peers({ local: localSide(name), remote: remoteSide() }, { local: localSide(name), remote: remoteSide() });
      await establish(p);
      assertUp(p);
      assert.equal(p.left.sas[0]!.attrs!.authMethod, method);
      assert.equal(p.lines.filter((x) => x.includes(`proved by certificate "${DN(name)}"`) && x.includes(`ECDSA ${curve} signatures`)).length, 2, p.dump());
    });
  }

  it('IDs from the certificate\'s subjectAltName: an e-mail address one way, an IPv4 address the other (RFC 4945 3.1)', async () => {
    const p = peers(
      { local: localSide('sun', 'sun@styx.example'), remote: remoteSide('192.0.2.2') },
      { local: localSide('sun', '192.0.2.2'), remote: remoteSide('sun@styx.example') },
    );
    await establish(p);
    assertUp(p);
    assert.equal(identityText(p.right.sas[0]!.remoteId!), 'sun@styx.example');
    assert.equal(identityText(p.left.sas[0]!.remoteId!), '192.0.2.2');
  });

  it('Aggressive Mode with RSA signatures: CR in AM1 and AM2, CERT and SIG_R in AM2, SIG_I in AM3', async () => {
    const p = peers(
      { local: localSide('moon'), remote: remoteSide() },
      { local: localSide('moon', 'moon.styx.example'), remote: remoteSide() },
      true,
    );
    await establish(p);
    assertUp(p);
    assert.equal(p.left.sas[0]!.aggressive, true);
    const [am1, am2] = plainMessages(p);
    assert.equal(am1!.header.exchangeType, V1ExchangeType.AGGRESSIVE);
    assert.ok(am1!.payloads.some((x) => x.type === V1PayloadType.CR));
    const types = am2!.payloads.map((x) => x.type);
    for (const t of [V1PayloadType.CERT, V1PayloadType.SIG, V1PayloadType.CR]) assert.ok(types.includes(t), `AM2 carries ${t}: ${types.join(' ')}`);
    assert.ok(!types.includes(V1PayloadType.HASH));
    assert.ok(p.lines.some((x) => /CONNECTING -> ESTABLISHED \(Aggressive Mode, .* with RSA signatures/.test(x)));
  });

  it('Aggressive Mode with ECDSA P-256', async () => {
    const p = peers({ local: localSide('sun'), remote: remoteSide() }, { local: localSide('sun'), remote: remoteSide() }, true);
    await establish(p);
    assertUp(p);
  });

  it('an RSA initiator and an ECDSA responder share no method: NO_PROPOSAL_CHOSEN, nothing set up', async () => {
    const p = peers({ local: localSide('moon'), remote: remoteSide() }, { local: localSide('sun'), remote: remoteSide() });
    await assert.rejects(p.establish(), /NO_PROPOSAL_CHOSEN/);
    assert.equal(p.right.sas.length, 0);
  });

  it('a connection that mixes PSK and certificates cannot start', () => {
    const p = peers({ local: '{ auth: psk, id: left.example }', remote: remoteSide() }, { local: localSide('sun'), remote: remoteSide() });
    assert.throws(() => p.left.initiate('demo'), /local psk with remote pubkey cannot be expressed/);
  });

  interface Refusal { bad: string; id?: string; expect?: string; log: RegExp }
  const REFUSALS: Refusal[] = [
    { bad: 'mars', log: /certificate revoked: certificate "C=CH, O=styx, CN=mars\.styx\.example" \(serial [0-9a-f]+\): revoked .*reason keyCompromise/ },
    { bad: 'pluto', log: /certificate expired: certificate "C=CH, O=styx, CN=pluto\.styx\.example" \(serial [0-9a-f]+\): .*2021-01-01/ },
    // jupiter's certificate presented under sun's name: the ID is not bound to the certificate.
    { bad: 'jupiter', id: 'sun.styx.example', expect: 'sun.styx.example', log: /identity not in certificate: identity "sun\.styx\.example" is not bound to certificate "C=CH, O=styx, CN=jupiter\.styx\.example"/ },
    { bad: 'rogue-moon', log: /unknown CA: certificate "C=CH, O=styx, CN=moon\.styx\.example" \(serial [0-9a-f]+\): no path to a trusted CA \(issuer "C=CH, O=rogue, CN=rogue Root CA"\)/ },
    { bad: 'saturn', log: /certificate key usage: certificate "C=CH, O=styx, CN=saturn\.styx\.example" .*digitalSignature/ },
  ];

  for (const rc of REFUSALS) {
    for (const [mode, badSide] of [['Main', 'left'], ['Main', 'right'], ['Aggressive', 'left'], ['Aggressive', 'right']] as const) {
      const what = `${mode === 'Main' ? badSide === 'left' ? 'MM5' : 'MM6' : badSide === 'left' ? 'AM3' : 'AM2'}`;
      it(`${rc.bad}: the ${badSide === 'left' ? 'initiator' : 'responder'}'s certificate is refused in ${what} with the reason, and no SA is left on either side`, async () => {
        const bad: Side = { local: localSide(rc.bad, rc.id), remote: remoteSide() };
        const good: Side = { local: localSide('sun'), remote: remoteSide(rc.expect) };
        const p = badSide === 'left' ? peers(bad, good, mode === 'Aggressive') : peers(good, bad, mode === 'Aggressive');
        const up = p.left.initiateAndWait('demo', 60_000);
        up.catch(() => undefined);
        const refusal = (x: string): boolean => x.includes('AUTHENTICATION_FAILED: peer') && rc.log.test(x) && x.endsWith(`(${what})`);
        await until(p, 'the refusal', () => p.lines.some(refusal));
        await until(p, 'both sides to drop their SAs', () => p.left.sas.length === 0 && p.right.sas.length === 0);
        await assert.rejects(up);
        assert.equal(p.lines.filter(refusal).length, 1, p.dump());
        assert.ok(p.lines.some((x) => /ERROR \[ike\]/.test(x) && refusal(x)), p.dump());
        assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0, 'no IPsec SA was installed');
        assert.ok(!p.lines.some((x) => /-> ESTABLISHED .*Quick|CHILD_SA net\{\d+\} .* installed/.test(x)));
        // The refusing side said so in a protected Informational; the other side dropped its SA on its
        // AUTHENTICATION-FAILED or its Delete, whichever it read first.
        assert.ok(p.lines.some((x) => /peer deleted the ISAKMP SA|ISAKMP SA destroyed: deleted by peer|peer refused phase 1: AUTHENTICATION_FAILED/.test(x)), p.dump());
      });
    }
  }

  it('Main Mode responder with two connections for the same addresses: the initiator\'s MM5 identity moves the SA to the one that names it', async () => {
    // The right side's first connection (picked at MM1: same addresses, same transform) expects venus;
    // sun's identity arrives in MM5 and belongs to the second, whose child the Quick Mode then uses.
    const conn = (name: string, remoteId: string, net: string): string => `
  ${name}:
    version: 1
    local_addrs: [${RIGHT.address}]
    remote_addrs: [${LEFT.address}]
    proposals: [aes128-sha256-modp2048]
    local: ${localSide('sun')}
    remote: ${remoteSide(remoteId)}
    children:
      ${name}-net:
        local_ts: [${net}]
        remote_ts: [10.1.0.0/24]
        esp_proposals: [aes128-sha256]
`;
    const right = `
daemon:
  listen: [${RIGHT.address}]
connections:${conn('venus-only', DN('venus'), '10.3.0.0/24')}${conn('sun-group', DN('sun'), '10.2.0.0/24')}`;
    const p = new V1Peers(config('left', { local: localSide('sun'), remote: remoteSide() }, false), right);
    await establish(p);
    assertUp(p);
    const r = p.right.sas[0]!;
    assert.equal(r.conn.name, 'sun-group');
    assert.equal(r.children[0]!.config.name, 'sun-group-net');
    assert.ok(p.lines.some((x) => /venus-only\[\d+\] .*-> MAIN_R1/.test(x)), p.dump());
    assert.ok(p.lines.some((x) => x.includes(`peer identity '${DN('sun')}' belongs to connection sun-group, not venus-only: switching to it`)), p.dump());
  });

  it('Main Mode responder: no connection names the initiator\'s identity, so the one picked at MM1 refuses it', async () => {
    const p = peers({ local: localSide('sun'), remote: remoteSide() }, { local: localSide('sun'), remote: remoteSide(DN('venus')) });
    const up = p.left.initiateAndWait('demo', 60_000);
    up.catch(() => undefined);
    await until(p, 'both sides to drop their SAs', () => p.left.sas.length === 0 && p.right.sas.length === 0);
    await assert.rejects(up);
    assert.ok(!p.lines.some((x) => x.includes('switching to it')), p.dump());
  });

  for (const [mode, badSide] of [['Main', 'left'], ['Main', 'right'], ['Aggressive', 'left'], ['Aggressive', 'right']] as const) {
    const what = mode === 'Main' ? badSide === 'left' ? 'MM5' : 'MM6' : 'AM2';
    it(`${mode} Mode: a peer whose ID is not the configured one is refused in ${what} before its certificate is looked at`, async () => {
      // The side expecting venus refuses sun; in Aggressive Mode a responder never picks a connection for a wrong ID at all.
      const expectVenus: Side = { local: localSide('sun'), remote: remoteSide(DN('venus')) }, open: Side = { local: localSide('sun'), remote: remoteSide() };
      const aggr = mode === 'Aggressive';
      const p = badSide === 'left' ? peers(open, expectVenus, aggr) : peers(expectVenus, open, aggr);
      const up = p.left.initiateAndWait('demo', 60_000);
      up.catch(() => undefined);
      await until(p, 'both sides to drop their SAs', () => p.left.sas.length === 0 && p.right.sas.length === 0 && p.lines.some((x) => /ISAKMP SA destroyed|INVALID_ID_INFORMATION/.test(x)));
      await assert.rejects(up);
      if (aggr && badSide === 'left') {
        assert.ok(p.lines.some((x) => x.includes(`Aggressive Mode from 192.0.2.1 as '${DN('sun')}': no IKEv1 connection for this peer and identity`)), p.dump());
        return;
      }
      assert.ok(p.lines.some((x) => x.includes(`AUTHENTICATION_FAILED: peer identity '${DN('sun')}' is not the configured '${DN('venus')}' (${what})`)), p.dump());
      // Only the responder that sent MM6 had validated a certificate (the initiator's, in MM5); the refusing side never did.
      assert.equal(p.lines.filter((x) => /proved by certificate/.test(x)).length, what === 'MM6' ? 1 : 0, p.dump());
      assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
    });
  }
});
