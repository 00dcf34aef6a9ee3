import assert from 'node:assert/strict';
import { TwoPeers, peerConfig } from './two-peers.js';
import { decodeHeader } from '../../../src/wire/ikev2/index.js';
import { ExchangeType } from '../../../src/wire/ikev2/constants.js';

/** Starts an initiation whose rejection the test will assert later, without an unhandled-rejection warning. */
function attempt(p: TwoPeers, name = 'demo', timeout = 30_000): Promise<unknown> {
  const up = p.left.initiateAndWait(name, timeout);
  up.catch(() => undefined);
  return up;
}

async function establish(p: TwoPeers, name = 'demo'): Promise<void> {
  const up = p.left.initiateAndWait(name, 30_000);
  await p.settle();
  await up;
}

describe('ike/v2 exchanges between two in-process peers', () => {
  it('establishes an IKE SA and a CHILD_SA with PSK, both sides agreeing on SPIs and keys', async () => {
    const p = new TwoPeers();
    await establish(p);
    const [l] = p.left.sas, [r] = p.right.sas;
    assert.ok(l && r);
    assert.equal(l.state, 'ESTABLISHED');
    assert.equal(r.state, 'ESTABLISHED');
    assert.ok(l.spiI.equals(r.spiI) && l.spiR.equals(r.spiR));
    // 2.23: no NAT between the peers, and neither side may think there is one.
    assert.deepEqual([l.nat, r.nat], [{ local: false, remote: false }, { local: false, remote: false }]);
    assert.deepEqual(l.keys, r.keys);
    const [lc] = l.children, [rc] = r.children;
    assert.ok(lc && rc);
    assert.equal(lc.spiIn, rc.spiOut);
    assert.equal(lc.spiOut, rc.spiIn);
    assert.deepEqual(lc.keys, rc.keys);
    // The data plane got in and out SAs with mirrored keys.
    const lin = p.dpL.sas.get(`in:${lc.spiIn}`), rout = p.dpR.sas.get(`out:${rc.spiOut}`);
    assert.ok(lin && rout);
    assert.ok(lin.encr.key.equals(rout.encr.key));
    assert.equal(lin.encr.key.length, 20); // AES-128-GCM key plus 4-byte salt
    assert.equal(p.dpL.policies.length, 2);
  });

  for (const [ike, esp] of [['aes256gcm16-prfsha384-ecp384', 'aes256gcm16'], ['chacha20poly1305-prfsha256-x25519', 'chacha20poly1305'], ['aes128-sha256-modp2048', 'aes128-sha256']] as const) {
    it(`negotiates ${ike} with ${esp}`, async () => {
      const p = new TwoPeers(peerConfig('left', { proposals: ike, esp }), peerConfig('right', { proposals: ike, esp }));
      await establish(p);
      assert.equal(p.right.sas[0]!.children.length, 1);
    });
  }

  it('retries with the group the responder asks for (INVALID_KE_PAYLOAD)', async () => {
    const p = new TwoPeers(peerConfig('left', { proposals: 'aes128-sha256-x25519-modp2048' }), peerConfig('right', { proposals: 'aes128-sha256-modp2048' }));
    await establish(p);
    assert.equal(p.left.sas[0]!.selection!.dh, 14);
    assert.ok(p.lines.some((l) => /INVALID_KE_PAYLOAD/.test(l)));
  });

  it('answers a COOKIE request above the half-open threshold', async () => {
    const p = new TwoPeers(peerConfig('left'), peerConfig('right', { cookieThreshold: 0 }));
    await establish(p);
    assert.equal(p.right.counters.cookiesSent, 1);
    assert.equal(p.right.sas[0]!.state, 'ESTABLISHED');
  });

  it('fails with AUTHENTICATION_FAILED on both sides when the PSKs differ', async () => {
    const p = new TwoPeers(peerConfig('left'), peerConfig('right', { psk: 'a different secret' }));
    const up = attempt(p);
    await p.settle();
    await assert.rejects(up, /AUTHENTICATION_FAILED/);
    assert.equal(p.left.sas.length, 0);
    assert.equal(p.right.sas.length, 0);
    assert.equal(p.right.counters.authFailures, 1);
    assert.ok(p.lines.some((l) => /ERROR.*AUTH payload from 'left.example' does not verify/.test(l)));
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
  });

  it('keeps the IKE SA but refuses the CHILD_SA when traffic selectors do not match', async () => {
    const p = new TwoPeers(peerConfig('left', { remoteTs: '10.9.0.0/24' }), peerConfig('right'));
    const up = attempt(p);
    await p.settle();
    await assert.rejects(up, /TS_UNACCEPTABLE/);
    assert.equal(p.left.sas[0]!.state, 'ESTABLISHED');
    assert.equal(p.left.sas[0]!.children.length, 0);
    assert.equal(p.dpL.sas.size, 0);
  });

  it('narrows the initiator\'s selectors to the responder\'s policy', async () => {
    const p = new TwoPeers(peerConfig('left', { localTs: '10.1.0.0/16' }), peerConfig('right'));
    await establish(p);
    const c = p.left.sas[0]!.children[0]!;
    assert.equal(c.localTs[0]!.startAddr.toString('hex'), '0a010000');
    assert.equal(c.localTs[0]!.endAddr.toString('hex'), '0a0100ff');
  });

  it('sends NO_PROPOSAL_CHOSEN when no IKE proposal matches', async () => {
    const p = new TwoPeers(peerConfig('left', { proposals: 'aes128-sha256-x25519' }), peerConfig('right', { proposals: 'aes256-sha512-ecp521' }));
    const up = attempt(p);
    await p.settle();
    await assert.rejects(up, /NO_PROPOSAL_CHOSEN/);
  });

  it('retransmits a lost request and answers a repeated request from its cache', async () => {
    const p = new TwoPeers();
    let dropped = 0;
    // Lose the first IKE_AUTH response: the initiator must retransmit, the responder must not process twice.
    p.tap = (d, from) => {
      const h = decodeHeader(d);
      if (from.address === '192.0.2.2' && h.exchangeType === ExchangeType.IKE_AUTH && dropped === 0) { dropped++; return null; }
      return d;
    };
    const up = p.left.initiateAndWait('demo', 30_000);
    await p.settle();
    await p.advance(1500);
    await up;
    assert.equal(p.right.counters.retransmitsAnswered, 1);
    assert.equal(p.right.sas[0]!.children.length, 1);
  });

  it('gives up after the configured retransmissions when the peer is silent', async () => {
    const p = new TwoPeers();
    p.tap = () => null;
    const up = attempt(p, 'demo', 60_000);
    await p.settle();
    await p.advance(20_000, 500);
    await assert.rejects(up, /did not answer/);
    // 1 + 3 retransmits
    assert.equal(p.wire.length, 4);
  });

  it('deletes the IKE SA and its CHILD_SAs on both sides, from either side', async () => {
    for (const side of ['left', 'right'] as const) {
      const p = new TwoPeers();
      await establish(p);
      const mgr = side === 'left' ? p.left : p.right;
      const done = mgr.terminate('demo');
      await p.settle();
      assert.equal(await done, 1);
      assert.equal(p.left.sas.length, 0);
      assert.equal(p.right.sas.length, 0);
      assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
      assert.equal(p.dpL.policies.length + p.dpR.policies.length, 0);
    }
  });

  it('forces UDP encapsulation when asked, floating IKE to port 4500 (2.23)', async () => {
    const p = new TwoPeers(peerConfig('left', { extra: '    encap: true\n' }), peerConfig('right'));
    await establish(p);
    const l = p.left.sas[0]!, r = p.right.sas[0]!;
    assert.equal(r.nat.remote, true);
    assert.equal(l.remote.port, 4500);
    assert.equal(r.remote.port, 4500);
    assert.ok(l.children[0]!.encap && r.children[0]!.encap);
    const auth = p.wire.find((w) => decodeHeader(w.data).exchangeType === ExchangeType.IKE_AUTH)!;
    assert.equal(auth.to.port, 4500);
    assert.ok(p.dpR.sas.get(`in:${r.children[0]!.spiIn}`)!.encap);
  });

  it('forgets a responder SA that floated to port 4500 once it is gone (no half-open leak)', async () => {
    const p = new TwoPeers(peerConfig('left', { extra: '    encap: true\n' }), peerConfig('right'));
    await establish(p);
    const halfOpen = (p.right as unknown as { halfOpen: Map<string, unknown> }).halfOpen;
    assert.equal(halfOpen.size, 0);
    await establish(p);
    const done = p.left.terminate('demo');
    await p.settle();
    await done;
    assert.equal(halfOpen.size, 0);
    assert.equal(p.right.sas.length, 0);
  });

  it('drops malformed and tampered messages with a counter and leaves the SA alone', async () => {
    const p = new TwoPeers();
    await establish(p);
    const sa = p.right.sas[0]!;
    p.right.receive(Buffer.from('not ike at all'), { address: '192.0.2.2', port: 500 }, { address: '192.0.2.1', port: 500 });
    // A copy of the last IKE_AUTH request with one ciphertext bit flipped.
    const auth = p.wire.filter((w) => w.from.address === '192.0.2.1').at(-1)!.data;
    const bad = Buffer.from(auth); bad[bad.length - 20]! ^= 1;
    const h = decodeHeader(bad);
    assert.equal(h.exchangeType, ExchangeType.IKE_AUTH);
    p.right.receive(bad, { address: '192.0.2.2', port: 500 }, { address: '192.0.2.1', port: 500 });
    await p.settle();
    assert.equal(p.right.counters.malformed, 1);
    assert.equal(p.right.counters.integrityFailures, 1);
    assert.ok(p.lines.some((l) => /dropped message from 192\.0\.2\.1:500: (malformed|truncated)/.test(l)));
    assert.equal(sa.state, 'ESTABLISHED');
    assert.equal(sa.children.length, 1);
    // A liveness check still works afterwards.
    const info = new Promise<void>((resolve) => p.left.sas[0]!.request(ExchangeType.INFORMATIONAL, [], async () => resolve()));
    await p.settle();
    await info;
  });
});
