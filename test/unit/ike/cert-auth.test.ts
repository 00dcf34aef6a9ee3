/**
 * IKE_AUTH with certificates between two in-process peers, using the
 * committed test PKI (certs/pki, see certs/README.md): RSA and ECDSA in both
 * roles, RFC 7427 with PKCS#1 v1.5 and RSASSA-PSS, the legacy methods 1 and
 * 9-11, CERTREQ-driven choice of the certificates sent, and every failure
 * case of the PKI refused with its reason and no SA left on either side.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeMessage, describe as describeMsg, ExchangeType, PayloadType } from '../../../src/wire/ikev2/index.js';
import { identityText } from '../../../src/ike/identity.js';
import { TwoPeers, peerConfig } from './two-peers.js';

const PKI = fileURLToPath(new URL('../../../../certs/pki/', import.meta.url));
const pki = (f: string): string => join(PKI, f);

interface LocalOpts { id?: string; signature?: 'auto' | 'pss' | 'legacy'; cert?: string }
/** Our side: `name`.pem (or opts.cert) with `name`.key.pem. */
function localSide(name: string, o: LocalOpts = {}): string {
  return `{ auth: pubkey, cert: ${pki(o.cert ?? `${name}.pem`)}, key: ${pki(`${name}.key.pem`)}${o.id ? `, id: "${o.id}"` : ''}${o.signature ? `, signature: ${o.signature}` : ''} }`;
}
/** The peer's side: trusted CAs and the CRLs of both CAs. */
function remoteSide(id?: string, cacerts = ['ca-bundle.pem']): string {
  return `{ auth: pubkey${id ? `, id: "${id}"` : ''}, cacerts: [${cacerts.map(pki).join(', ')}], crls: [${pki('intermediate-ca.crl.pem')}, ${pki('root-ca.crl.pem')}] }`;
}

const DN = (cn: string): string => `C=CH, O=styx, CN=${cn}.styx.example`;

function peers(left: { local: string; remote: string }, right: { local: string; remote: string }): TwoPeers {
  return new TwoPeers(peerConfig('left', left), peerConfig('right', right));
}

async function establish(p: TwoPeers): Promise<void> {
  const up = p.left.initiateAndWait('demo', 30_000);
  await p.settle();
  await up;
}

/** Both sides up with one CHILD_SA whose keys agree. */
function assertUp(p: TwoPeers): void {
  const [l] = p.left.sas, [r] = p.right.sas;
  assert.ok(l && r, 'both sides hold an IKE SA');
  assert.equal(l.state, 'ESTABLISHED');
  assert.equal(r.state, 'ESTABLISHED');
  assert.deepEqual(l.keys, r.keys);
  const [lc] = l.children, [rc] = r.children;
  assert.ok(lc && rc);
  assert.equal(lc.spiIn, rc.spiOut);
  assert.deepEqual(lc.keys, rc.keys);
}

/** Messages on the wire of one exchange and direction, decoded (IKE_SA_INIT in the clear; the others show SK/SKF only). */
function wireMessages(p: TwoPeers, exchange: number, response: boolean): ReturnType<typeof decodeMessage>[] {
  return p.wire.map((w) => decodeMessage(w.data)).filter((m) => m.header.exchangeType === exchange && m.header.flags.response === response);
}

describe('ike/v2 certificate authentication between two in-process peers', function () {
  this.timeout(20_000);

  for (const [init, resp] of [['moon', 'sun'], ['sun', 'moon']] as const) {
    it(`${init} (${init === 'moon' ? 'RSA-3072' : 'ECDSA P-256'}) initiates to ${resp}: both verify the other's chain, identity and RFC 7427 signature`, async () => {
      const p = peers(
        { local: localSide(init), remote: remoteSide(`${resp}.styx.example`) },
        { local: localSide(resp, { id: `${resp}.styx.example` }), remote: remoteSide() },
      );
      await establish(p);
      assertUp(p);
      const l = p.left.sas[0]!, r = p.right.sas[0]!;
      // The left side's id defaulted to its certificate's subject; the right one sent the FQDN it was given.
      assert.equal(identityText(r.remoteId!), DN(init));
      assert.equal(identityText(l.remoteId!), `${resp}.styx.example`);
      const scheme = (n: string): string => (n === 'moon' ? 'RSA signature \\(rsa-pkcs1-sha256\\)' : 'ECDSA signature \\(ecdsa-sha256\\)');
      assert.ok(p.lines.some((x) => new RegExp(`peer '${DN(init)}' proved by certificate "${DN(init)}" .* via "C=CH, O=styx, CN=styx Intermediate CA", ${scheme(init)}`).test(x)), p.lines.join('\n'));
      assert.ok(p.lines.some((x) => new RegExp(`peer '${resp}.styx.example' proved by certificate "${DN(resp)}" .*${scheme(resp)}`).test(x)));
      assert.ok(p.lines.some((x) => /CONNECTING -> ESTABLISHED .*we authenticated with certificate/.test(x)));
    });
  }

  for (const [name, scheme] of [['moon', 'rsa-sha1'], ['sun', 'ecdsa-p256-sha256'], ['venus', 'ecdsa-p384-sha384'], ['mercury', 'ecdsa-p521-sha512']] as const) {
    it(`signs with the RFC 7296 method of ${name}'s key (${scheme}) under signature: legacy`, async () => {
      const p = peers(
        { local: localSide(name, { signature: 'legacy' }), remote: remoteSide(DN('sun')) },
        { local: localSide('sun', { signature: 'legacy' }), remote: remoteSide(DN(name)) },
      );
      await establish(p);
      assertUp(p);
      assert.ok(p.lines.some((x) => x.includes(`peer '${DN(name)}' proved by certificate`) && x.includes(`(${scheme})`)), p.lines.filter((x) => /proved/.test(x)).join('\n'));
      assert.ok(p.lines.some((x) => x.includes(`peer '${DN('sun')}' proved`) && x.includes('(ecdsa-p256-sha256)')));
    });
  }

  it('signs with RSASSA-PSS in the RFC 7427 method under signature: pss, in both roles', async () => {
    const p = peers(
      { local: localSide('moon', { signature: 'pss' }), remote: remoteSide() },
      { local: localSide('moon', { signature: 'pss', cert: 'moon.chain.pem' }), remote: remoteSide() },
    );
    await establish(p);
    assertUp(p);
    assert.equal(p.lines.filter((x) => /proved by certificate .*RSA signature \(rsa-pss-sha256\)/.test(x)).length, 2);
  });

  it('announces SIGNATURE_HASH_ALGORITHMS and fragmentation both ways, CERTREQ in the IKE_SA_INIT response and IKE_AUTH request', async () => {
    const p = peers({ local: localSide('sun'), remote: remoteSide() }, { local: localSide('moon'), remote: remoteSide() });
    await establish(p);
    const [req] = wireMessages(p, ExchangeType.IKE_SA_INIT, false), [resp] = wireMessages(p, ExchangeType.IKE_SA_INIT, true);
    assert.match(describeMsg(req!), /N\(SIG_HASH_ALGS\) N\(FRAGMENTATION\)/);
    assert.doesNotMatch(describeMsg(req!), /CERTREQ/);
    assert.match(describeMsg(resp!), /No CERTREQ .*N\(SIG_HASH_ALGS\) N\(FRAGMENTATION\)/);
    const certreq = resp!.payloads.find((x) => x.type === PayloadType.CERTREQ);
    // ca-bundle.pem holds two CAs: two SHA-1 key hashes.
    assert.ok(certreq && certreq.type === PayloadType.CERTREQ && certreq.encoding === 4 && certreq.data.length === 40);
    // The responder logs the decrypted IKE_AUTH request: IDi CERT CERTREQ N AUTH ... (payload type numbers).
    assert.ok(p.lines.some((x) => /IKE_AUTH request 1 \[35 37 38 41 (36 )?39 /.test(x)), p.lines.filter((x) => /IKE_AUTH request 1 \[/.test(x)).join('\n'));
  });

  it('sends the certificates below the CA named in CERTREQ: the intermediate only when the peer knows just the root', async () => {
    const count = async (rightCas: string[]): Promise<number> => {
      const p = peers({ local: localSide('moon', { cert: 'moon.chain.pem' }), remote: remoteSide() }, { local: localSide('sun'), remote: remoteSide(undefined, rightCas) });
      await establish(p);
      assertUp(p);
      const types = p.lines.map((x) => /IKE_AUTH request 1 \[([0-9 ]+)\]/.exec(x)?.[1]).find((x) => x !== undefined);
      assert.ok(types, 'the responder logged the decrypted request');
      return types.split(' ').filter((t) => t === '37').length;
    };
    assert.equal(await count(['root-ca.pem']), 2, 'moon and the intermediate');
    assert.equal(await count(['ca-bundle.pem']), 1, 'moon alone: the peer trusts the intermediate');
  });

  interface Failure { what: string; bad: string; cert?: string; claims?: string; expectId?: string; log: RegExp }
  const FAILURES: Failure[] = [
    { what: 'a revoked certificate', bad: 'mars', log: /certificate revoked: certificate "C=CH, O=styx, CN=mars\.styx\.example" \(serial [0-9a-f]+\): revoked [0-9T:.-]+Z, reason keyCompromise \(serial [0-9a-f]+, .*intermediate-ca\.crl\.pem of "C=CH, O=styx, CN=styx Intermediate CA"\)/ },
    { what: 'an expired certificate', bad: 'pluto', log: /certificate expired: certificate "C=CH, O=styx, CN=pluto\.styx\.example" \(serial [0-9a-f]+\): expired 2021-01-01/ },
    { what: 'a certificate for another identity', bad: 'jupiter', claims: 'moon.styx.example', expectId: 'moon.styx.example', log: /identity not in certificate: identity "moon\.styx\.example" is not bound to certificate "C=CH, O=styx, CN=jupiter\.styx\.example"/ },
    { what: 'a certificate of an unknown CA', bad: 'rogue-moon', claims: 'moon.styx.example', expectId: 'moon.styx.example', log: /unknown CA: certificate "C=CH, O=styx, CN=moon\.styx\.example" \(serial [0-9a-f]+\): no path to a trusted CA \(issuer "C=CH, O=rogue, CN=rogue Root CA"\)/ },
    { what: 'a certificate without digitalSignature', bad: 'saturn', log: /certificate key usage: certificate "C=CH, O=styx, CN=saturn\.styx\.example" \(serial [0-9a-f]+\): keyUsage \(keyEncipherment, keyAgreement\) allows neither digitalSignature nor nonRepudiation/ },
  ];

  for (const f of FAILURES) {
    for (const badSide of ['initiator', 'responder'] as const) {
      it(`refuses ${f.what} (${f.bad}) of the ${badSide} with AUTHENTICATION_FAILED; no SA remains on either side`, async () => {
        const bad = { local: localSide(f.bad, f.claims ? { id: f.claims } : {}), remote: remoteSide() };
        const good = { local: localSide('sun'), remote: remoteSide(f.expectId) };
        const p = badSide === 'initiator' ? peers(bad, good) : peers(good, bad);
        const up = p.left.initiateAndWait('demo', 30_000);
        up.catch(() => undefined);
        await p.settle();
        // The initiator learns of its own refusal by AUTHENTICATION_FAILED; when it refuses, its reason ends the attempt.
        await assert.rejects(up, badSide === 'initiator' ? /AUTHENTICATION_FAILED from peer/ : f.log);
        await p.settle();
        const refusing = badSide === 'initiator' ? p.right : p.left;
        assert.equal(refusing.counters.authFailures, 1);
        const line = p.lines.find((x) => /^ERROR .*AUTHENTICATION_FAILED: peer '.*': /.test(x));
        assert.ok(line, p.lines.slice(-20).join('\n'));
        assert.match(line, f.log);
        assert.equal(p.left.sas.length, 0, 'no IKE SA on the left');
        assert.equal(p.right.sas.length, 0, 'no IKE SA on the right');
        assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0, 'nothing in either data plane');
        assert.equal(p.dpL.policies.length + p.dpR.policies.length, 0);
      });
    }
  }

  it('refuses a PSK from a peer it expects to sign, and a signature where it expects a PSK', async () => {
    const p = new TwoPeers(peerConfig('left'), peerConfig('right', { remote: remoteSide() }));
    const up = p.left.initiateAndWait('demo', 30_000);
    up.catch(() => undefined);
    await p.settle();
    await assert.rejects(up, /AUTHENTICATION_FAILED/);
    assert.ok(p.lines.some((x) => /AUTHENTICATION_FAILED: peer 'left\.example' used a PSK \(AUTH method 2\); demo expects a signature/.test(x)));
    const q = new TwoPeers(peerConfig('left', { local: localSide('moon') }), peerConfig('right'));
    const up2 = q.left.initiateAndWait('demo', 30_000);
    up2.catch(() => undefined);
    await q.settle();
    await assert.rejects(up2, /AUTHENTICATION_FAILED/);
    assert.ok(q.lines.some((x) => /no connection accepts peer identity 'C=CH, O=styx, CN=moon\.styx\.example'/.test(x)));
  });
});
