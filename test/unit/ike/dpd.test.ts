/**
 * Dead-peer handling (RFC 7296 2.4): liveness checks every dpd_delay, a
 * peer silent for dpd_timeout is dead, and dpd_action decides what follows.
 */
import assert from 'node:assert/strict';
import { TwoPeers, peerConfig } from './two-peers.js';

const dpd = (action: string): string => `    dpd_delay: 10s\n    dpd_timeout: 30s\n    dpd_action: ${action}\n`;

async function up(p: TwoPeers): Promise<void> {
  const done = p.left.initiateAndWait('demo', 30_000);
  await p.settle();
  await done;
}

describe('ike/v2 dead peer detection', () => {
  it('sends liveness checks while the peer answers, and keeps the SA', async () => {
    const p = new TwoPeers(peerConfig('left', { extra: dpd('clear') }), peerConfig('right'));
    await up(p);
    const before = p.wire.length;
    await p.advance(65_000, 1000);
    assert.equal(p.left.sas[0]!.state, 'ESTABLISHED');
    // Six checks and six answers in 65 s.
    assert.equal(p.wire.length - before, 12);
  });

  it('sends no check of its own while the peer is heard from anyway', async () => {
    // The right side checks every 4 s; the left one, at 10 s, always has fresh word from its peer.
    const p = new TwoPeers(peerConfig('left', { extra: dpd('clear') }), peerConfig('right', { extra: '    dpd_delay: 4s\n' }));
    await up(p);
    const before = p.wire.length;
    await p.advance(60_000, 1000);
    const leftRequests = p.wire.slice(before).filter((w) => w.from.address === '192.0.2.1' && (w.data.readUInt8(19) & 0x20) === 0);
    assert.equal(leftRequests.length, 0);
    assert.ok(p.wire.length - before >= 28, 'the right side kept checking');
  });

  it('clears the SA and its CHILD_SAs within dpd_delay + dpd_timeout of the peer going silent', async () => {
    const p = new TwoPeers(peerConfig('left', { extra: dpd('clear') }), peerConfig('right'));
    await up(p);
    p.tap = (d, from) => (from.address === '192.0.2.2' ? null : d);
    await p.advance(10_000, 1000);
    assert.equal(p.left.sas.length, 1);
    // Whichever ends first, the retransmissions of the check (1+2+4+8 s here) or dpd_timeout.
    await p.advance(31_000, 1000);
    assert.equal(p.left.sas.length, 0);
    assert.equal(p.dpL.sas.size, 0);
    assert.ok(p.lines.some((l) => /peer 192\.0\.2\.2 is dead: .*; dpd_action clear/.test(l)));
    // clear: nothing comes back by itself.
    await p.advance(60_000, 5000);
    assert.equal(p.left.sas.length, 0);
  });

  it('restarts the connection with dpd_action restart, and keeps trying until the peer is back', async () => {
    const p = new TwoPeers(peerConfig('left', { extra: dpd('restart') }), peerConfig('right'));
    await up(p);
    const first = p.left.sas[0]!;
    // The peer vanishes (a restart loses its SAs, so it stays silent for this one too).
    p.tap = (d, from) => (from.address === '192.0.2.2' ? null : d);
    await p.advance(41_000, 1000);
    assert.equal(first.state, 'DESTROYED');
    // Several attempts fail while the peer is away.
    await p.advance(60_000, 1000);
    assert.ok(p.lines.filter((l) => /restarting \(dpd_action restart\)/.test(l)).length >= 2);
    p.tap = (d) => d;
    await p.advance(30_000, 1000);
    const now = p.left.sas.filter((s) => s.state === 'ESTABLISHED');
    assert.equal(now.length, 1);
    assert.notEqual(now[0], first);
    assert.equal(now[0]!.children.length, 1);
  });

  it('stops restarting once the connection is terminated', async () => {
    const p = new TwoPeers(peerConfig('left', { extra: dpd('restart') }), peerConfig('right'));
    await up(p);
    p.tap = () => null;
    await p.advance(41_000, 1000);
    await p.left.terminate('demo');
    await p.advance(120_000, 2000);
    p.tap = (d) => d;
    await p.advance(30_000, 2000);
    assert.equal(p.left.sas.filter((s) => s.state === 'ESTABLISHED').length, 0);
  });
});
