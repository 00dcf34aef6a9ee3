/**
 * CREATE_CHILD_SA between two in-process peers: CHILD_SA and IKE SA rekeys
 * driven by lifetimes on a manual clock, extra CHILD_SAs, and the collision
 * rules of RFC 7296 2.8.1 / 2.25 with fixed nonces deciding each outcome.
 */
import assert from 'node:assert/strict';
import { TwoPeers, peerConfig } from './two-peers.js';
import { initiateChild, initiateIkeRekey } from '../../../src/ike/v2/create-child.js';
import { deleteChild } from '../../../src/ike/v2/rekey-collisions.js';
import type { IkeV2Manager } from '../../../src/ike/v2/manager.js';
import type { MemoryBackend } from '../../../src/dataplane/backends/memory/index.js';
import { ExchangeType } from '../../../src/wire/ikev2/constants.js';

const SHORT = { child: '        rekey_time: 10s\n        lifetime: 20s\n', extra: '    rekey_time: 30s\n    lifetime: 60s\n' };
const LONG = { child: '        rekey_time: 1h\n        lifetime: 2h\n', extra: '    rekey_time: 4h\n    lifetime: 5h\n' };

async function up(p: TwoPeers): Promise<void> {
  const done = p.left.initiateAndWait('demo', 30_000);
  await p.settle();
  await done;
}

/** Exactly one IKE SA and one installed CHILD_SA pair per side, mirrored, and nothing else in either data plane. */
function assertOnePair(p: TwoPeers): void {
  const live = (m: IkeV2Manager) => m.sas.filter((s) => s.state === 'ESTABLISHED');
  assert.equal(live(p.left).length, 1, 'left IKE SAs');
  assert.equal(live(p.right).length, 1, 'right IKE SAs');
  const l = live(p.left)[0]!, r = live(p.right)[0]!;
  assert.ok(l.spiI.equals(r.spiI) && l.spiR.equals(r.spiR));
  assert.equal(l.children.length, 1, `left children: ${l.children.map((c) => c.state)}`);
  assert.equal(r.children.length, 1, `right children: ${r.children.map((c) => c.state)}`);
  const lc = l.children[0]!, rc = r.children[0]!;
  assert.equal(lc.state, 'INSTALLED'); assert.equal(rc.state, 'INSTALLED');
  assert.equal(lc.spiIn, rc.spiOut); assert.equal(lc.spiOut, rc.spiIn);
  for (const [dp, c] of [[p.dpL, lc], [p.dpR, rc]] as [MemoryBackend, typeof lc][]) {
    assert.deepEqual([...dp.sas.keys()].sort(), [`in:${c.spiIn}`, `out:${c.spiOut}`].sort());
    assert.ok(dp.policies.every((pol) => pol.spi === c.spiIn || pol.spi === c.spiOut));
  }
  const lin = p.dpL.sas.get(`in:${lc.spiIn}`)!, rout = p.dpR.sas.get(`out:${rc.spiOut}`)!;
  assert.ok(lin.encr.key.equals(rout.encr.key));
}

/** Nonces in the order a side draws them: the first for its own request, later ones for its responses. */
/** True when assertOnePair holds (no exchange or lingering SA in between). */
function quiet(p: TwoPeers): boolean {
  try { assertOnePair(p); return true; } catch { return false; }
}

const fixed = (first: number, rest = 0x80) => { let n = 0; return () => Buffer.alloc(32, n++ === 0 ? first : rest); };

describe('ike/v2 CREATE_CHILD_SA: rekeying and collisions', () => {
  it('rekeys the CHILD_SA before its lifetime and deletes the old one on both sides', async () => {
    const p = new TwoPeers(peerConfig('left', SHORT), peerConfig('right', LONG));
    await up(p);
    const before = p.left.sas[0]!.children[0]!;
    await p.advance(14_000);
    assertOnePair(p);
    const after = p.left.sas[0]!.children[0]!;
    assert.notEqual(after.spiIn, before.spiIn);
    assert.notDeepEqual(after.keys, before.keys);
    assert.equal(before.state, 'DELETED');
  });

  it('switches traffic make-before-break: the responder sends on the new SA only after the old one is deleted, and old inbound SAs linger', async () => {
    const p = new TwoPeers(peerConfig('left', LONG), peerConfig('right', LONG));
    await up(p);
    const l = p.left.sas[0]!, r = p.right.sas[0]!;
    const oldL = l.children[0]!, oldR = r.children[0]!;
    // Hold back the initiator's DELETE of the old SA, to look at the moment in between.
    const held: { deliver: (() => void) | null } = { deliver: null };
    p.tap = (d, from, to) => {
      if (from.address === '192.0.2.1' && d.readUInt8(18) === ExchangeType.INFORMATIONAL && !held.deliver && (d.readUInt8(19) & 0x20) === 0) {
        held.deliver = () => p.right.receive(d, to, from);
        return null;
      }
      return d;
    };
    await initiateChild(p.left, l, oldL.config, oldL);
    await p.settle();
    const newR = r.children.find((c) => c !== oldR)!;
    assert.ok(newR && held.deliver, 'rekey done, delete held back');
    // The responder receives on both and still sends on the old SA.
    assert.ok(p.dpR.sas.has(`in:${newR.spiIn}`) && p.dpR.sas.has(`in:${oldR.spiIn}`));
    assert.ok(!p.dpR.sas.has(`out:${newR.spiOut}`) && p.dpR.sas.has(`out:${oldR.spiOut}`));
    // The initiator already sends on the new SA: it was installed on the responder first.
    const newL = l.children.find((c) => c !== oldL)!;
    assert.ok(p.dpL.sas.has(`out:${newL.spiOut}`));
    p.tap = (d) => d;
    held.deliver!();
    await p.settle();
    assert.ok(p.dpR.sas.has(`out:${newR.spiOut}`) && !p.dpR.sas.has(`out:${oldR.spiOut}`));
    // The old inbound SAs outlive the delete briefly, for packets in flight, then go.
    assert.ok(p.dpR.sas.has(`in:${oldR.spiIn}`) && p.dpL.sas.has(`in:${oldL.spiIn}`));
    await p.advance(2_500);
    assertOnePair(p);
  });

  it('rekeys on the data plane\'s soft volume limit and deletes on its hard one (RFC 4301 4.4.2.1)', async () => {
    const vol = { child: '        rekey_bytes: 1000000\n        life_bytes: 2000000\n' };
    const p = new TwoPeers(peerConfig('left', { ...LONG, ...vol }), peerConfig('right', LONG));
    await up(p);
    const l = p.left.sas[0]!;
    const first = l.children[0]!;
    const installed = p.dpL.sas.get(`out:${first.spiOut}`)!;
    assert.equal(installed.limits?.softBytes, 1000000n);
    assert.equal(installed.limits?.hardBytes, 2000000n);
    // What the userspace engine raises when the outbound SA crosses rekey_bytes.
    p.dpL.events.emit('expire', { spi: first.spiOut, direction: 'out', hard: false });
    await p.settle();
    await p.advance(3_000);
    assertOnePair(p);
    const second = p.left.sas[0]!.children[0]!;
    assert.notEqual(second, first);
    // A hard limit deletes the CHILD_SA on both sides.
    p.dpL.events.emit('expire', { spi: second.spiIn, direction: 'in', hard: true });
    await p.settle();
    assert.equal(p.left.sas[0]!.children.length, 0);
    assert.equal(p.right.sas[0]!.children.length, 0);
  });

  it('starts one rekey when both SAs of a pair and the rekey timer report at once (the kernel raises a soft expire per SA)', async () => {
    const vol = { child: '        rekey_time: 10s\n        lifetime: 1h\n        rekey_bytes: 1000000\n        life_bytes: 2000000\n' };
    const p = new TwoPeers(peerConfig('left', { ...LONG, ...vol }), peerConfig('right', LONG));
    await up(p);
    const first = p.left.sas[0]!.children[0]!;
    // Both events and the timer queue a rekey before the first of them has run.
    p.dpL.events.emit('expire', { spi: first.spiOut, direction: 'out', hard: false });
    p.dpL.events.emit('expire', { spi: first.spiIn, direction: 'in', hard: false });
    p.clock.advance(11_000);
    await p.settle();
    await p.advance(3_000);
    assert.equal(p.lines.filter((x) => /: rekeying CHILD_SA /.test(x)).length, 1, p.lines.filter((x) => /rekeying CHILD_SA/.test(x)).join('\n'));
    assertOnePair(p);
  });

  it('rekeys with PFS when the ESP proposal names a group', async () => {
    const esp = 'aes128gcm16-x25519';
    const p = new TwoPeers(peerConfig('left', { ...SHORT, esp }), peerConfig('right', { ...LONG, esp }));
    await up(p);
    await p.advance(14_000);
    assertOnePair(p);
    assert.equal(p.left.sas[0]!.children[0]!.selection.dh, 31);
    assert.equal(p.left.sas[0]!.children[0]!.selection.dh, p.right.sas[0]!.children[0]!.selection.dh);
  });

  it('keeps rekeying across many lifetimes without leaking SAs', async () => {
    const p = new TwoPeers(peerConfig('left', SHORT), peerConfig('right', SHORT));
    await up(p);
    await p.advance(125_000, 500);
    // Rekeys run all the time now, so look at a moment between two of them: at most ~10 s away.
    for (let i = 0; i < 40 && !quiet(p); i++) await p.advance(500, 500);
    assertOnePair(p);
  });

  it('rekeys the IKE SA, carrying the CHILD_SA over, and deletes the old IKE SA', async () => {
    const p = new TwoPeers(peerConfig('left', { extra: SHORT.extra, child: LONG.child }), peerConfig('right', LONG));
    await up(p);
    const old = p.left.sas[0]!;
    const child = old.children[0]!;
    await p.advance(31_000);
    await p.advance(3_000);
    assertOnePair(p);
    const next = p.left.sas.find((s) => s.state === 'ESTABLISHED')!;
    assert.notEqual(next, old);
    assert.equal(old.state, 'DESTROYED');
    assert.ok(!next.spiI.equals(old.spiI));
    assert.equal(next.children[0], child);
    assert.notDeepEqual(next.keys, old.keys);
    assert.deepEqual(next.fragmentation, old.fragmentation);
    assert.ok(next.fragmentation.ours && next.fragmentation.peer);
    // The new IKE SA carries traffic: a CHILD_SA rekey on it works.
    await new Promise<void>((resolve) => { void next.enqueue(async () => { await initiateChild(p.left, next, child.config, child); resolve(); }); });
    await p.settle();
    await p.advance(3_000);
    assertOnePair(p);
  });

  it('rekeys on request (`styx rekey`): the CHILD_SAs of a child name, then the IKE SA; a name with nothing up starts nothing', async () => {
    const p = new TwoPeers(peerConfig('left', LONG), peerConfig('right', LONG));
    await up(p);
    const old = p.left.sas[0]!, child = old.children[0]!;
    assert.equal(p.left.rekey('demo', 'nosuchchild'), 0);
    assert.equal(p.left.rekey('other'), 0);
    assert.equal(p.left.rekey('demo', child.config.name), 1);
    await p.settle();
    await p.advance(3_000);
    assertOnePair(p);
    const fresh = p.left.sas[0]!.children[0]!;
    assert.notEqual(fresh, child);
    assert.equal(child.state, 'DELETED');
    // The right side asks for the IKE SA: the responder of the first exchange can rekey it too (1.3.2).
    assert.equal(p.right.rekey('demo'), 1);
    await p.settle();
    await p.advance(3_000);
    assertOnePair(p);
    const next = p.left.sas.find((s) => s.state === 'ESTABLISHED')!;
    assert.notEqual(next, old);
    assert.equal(old.state, 'DESTROYED');
    assert.equal(next.children[0], fresh);
  });

  it('creates a second configured CHILD_SA with CREATE_CHILD_SA on the same IKE SA', async () => {
    const second = '      web:\n        local_ts: [10.1.1.0/24]\n        remote_ts: [10.2.1.0/24]\n        start_action: start\n';
    const secondR = '      web:\n        local_ts: [10.2.1.0/24]\n        remote_ts: [10.1.1.0/24]\n';
    const p = new TwoPeers(peerConfig('left', { children: second }), peerConfig('right', { children: secondR }));
    await up(p);
    await p.settle();
    assert.equal(p.left.sas.length, 1);
    assert.deepEqual(p.left.sas[0]!.children.map((c) => c.config.name).sort(), ['net', 'web']);
    assert.deepEqual(p.right.sas[0]!.children.map((c) => c.config.name).sort(), ['net', 'web']);
    assert.ok(p.wire.some((w) => w.data.readUInt8(18) === ExchangeType.CREATE_CHILD_SA));
  });

  it('initiating a child of a connection that is up creates it on the existing IKE SA', async () => {
    const web = '      web:\n        local_ts: [10.1.1.0/24]\n        remote_ts: [10.2.1.0/24]\n';
    const webR = '      web:\n        local_ts: [10.2.1.0/24]\n        remote_ts: [10.1.1.0/24]\n';
    const p = new TwoPeers(peerConfig('left', { children: web }), peerConfig('right', { children: webR }));
    await up(p);
    const sa = p.left.sas[0]!;
    const done = p.left.initiateAndWait('demo/web', 30_000);
    await p.settle();
    assert.equal(await done, sa);
    assert.equal(p.left.sas.length, 1);
    assert.deepEqual(sa.children.map((c) => c.config.name).sort(), ['net', 'web']);
  });

  it('reauthenticates make-before-break: a new IKE SA with the CHILD_SAs, then the old one goes, on both sides', async () => {
    const p = new TwoPeers(peerConfig('left', { extra: '    reauth_time: 20s\n' }), peerConfig('right'));
    await up(p);
    const old = p.left.sas[0]!;
    await p.advance(25_000);
    assertOnePair(p);
    const next = p.left.sas[0]!;
    assert.notEqual(next, old);
    assert.equal(old.state, 'DESTROYED');
    assert.ok(!next.spiI.equals(old.spiI));
    // A reauthentication must not ask the peer to drop the SA it replaces before it is done.
    assert.ok(!p.lines.some((l) => /INITIAL_CONTACT/.test(l)));
    assert.ok(p.lines.some((l) => /reauthenticating \(reauth_time 20s\)/.test(l)));
  });

  it('drops older SAs with a peer that sends INITIAL_CONTACT after it restarted', async () => {
    const p = new TwoPeers();
    await up(p);
    // The left side loses its state without telling the right one, then connects again.
    const stale = p.right.sas[0]!;
    p.tap = (d, from) => (from.address === '192.0.2.1' ? d : null);
    await p.left.destroy(p.left.sas[0]!, 'simulated crash');
    p.tap = (d) => d;
    await up(p);
    assert.equal(stale.state, 'DESTROYED');
    assertOnePair(p);
  });

  for (const [name, lnonce, rnonce, survivorCreatedBy] of [
    ['the left side holds the lowest nonce: the right side\'s new SA survives', 0x01, 0xee, 'right'],
    ['the right side holds the lowest nonce: the left side\'s new SA survives', 0xee, 0x01, 'left'],
  ] as const) {
    it(`resolves a simultaneous CHILD_SA rekey (2.8.1) when ${name}`, async () => {
      const p = new TwoPeers(peerConfig('left', LONG), peerConfig('right', LONG));
      await up(p);
      p.left.nonceSource = fixed(lnonce);
      p.right.nonceSource = fixed(rnonce, 0x90);
      const l = p.left.sas[0]!, r = p.right.sas[0]!;
      const lc = l.children[0]!, rc = r.children[0]!;
      // Both requests leave before either is answered.
      await Promise.all([initiateChild(p.left, l, lc.config, lc), initiateChild(p.right, r, rc.config, rc)]);
      await p.settle();
      await p.advance(3_000);
      assertOnePair(p);
      const survivor = p.left.sas[0]!.children[0]!;
      assert.equal(survivor.createdByUs, survivorCreatedBy === 'left');
      assert.ok(p.lines.some((x) => /rekey collision/.test(x)));
    });
  }

  it('lets a delete win over a simultaneous rekey of the same CHILD_SA (2.25.1)', async () => {
    const p = new TwoPeers(peerConfig('left', LONG), peerConfig('right', LONG));
    await up(p);
    const l = p.left.sas[0]!, r = p.right.sas[0]!;
    await initiateChild(p.left, l, l.children[0]!.config, l.children[0]!);
    deleteChild(p.right, r, r.children[0]!, 'deleted by the test');
    await p.settle();
    // 2.25.1: the side closing the SA answers the rekey with TEMPORARY_FAILURE; the delete wins
    // and no CHILD_SA, old or new, is left anywhere, while the IKE SA stays up.
    assert.ok(p.lines.some((x) => /TEMPORARY_FAILURE/.test(x)));
    assert.equal(l.state, 'ESTABLISHED');
    assert.equal(r.state, 'ESTABLISHED');
    assert.equal(l.children.length + r.children.length, 0);
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
    assert.equal(p.dpL.policies.length + p.dpR.policies.length, 0);
    await p.advance(6_000);
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
  });

  it('answers TEMPORARY_FAILURE to a CHILD_SA rekey during its own IKE rekey, and the CHILD_SA rekey succeeds later', async () => {
    const p = new TwoPeers(peerConfig('left', LONG), peerConfig('right', LONG));
    await up(p);
    const l = p.left.sas[0]!, r = p.right.sas[0]!;
    initiateIkeRekey(p.left, l);
    await initiateChild(p.right, r, r.children[0]!.config, r.children[0]!);
    await p.settle();
    assert.ok(p.lines.some((x) => /TEMPORARY_FAILURE/.test(x)));
    // Both refused attempts are retried after a random 2-5 s; a retry may collide again, so give it time.
    await p.advance(30_000);
    assertOnePair(p);
    assert.equal(l.state, 'DESTROYED');
    assert.notEqual(p.left.sas[0]!.children[0]!.spiIn, l.children[0]?.spiIn);
  });

  for (const [name, lnonce, rnonce] of [['left lowest', 0x01, 0xee], ['right lowest', 0xee, 0x01]] as const) {
    it(`resolves a simultaneous IKE SA rekey (${name}) into one IKE SA`, async () => {
      const p = new TwoPeers(peerConfig('left', LONG), peerConfig('right', LONG));
      await up(p);
      p.left.nonceSource = fixed(lnonce);
      p.right.nonceSource = fixed(rnonce, 0x90);
      const l = p.left.sas[0]!, r = p.right.sas[0]!;
      initiateIkeRekey(p.left, l);
      initiateIkeRekey(p.right, r);
      await p.settle();
      await p.advance(2_000);
      assertOnePair(p);
      assert.equal(p.left.sas.length, 1);
      assert.equal(p.right.sas.length, 1);
      assert.equal(l.state, 'DESTROYED');
      assert.equal(r.state, 'DESTROYED');
    });
  }
  it('keeps the CHILD_SAs when the peer wins an IKE rekey collision and deletes the old IKE SA before our own rekey is answered', async () => {
    const p = new TwoPeers(peerConfig('left', LONG), peerConfig('right', LONG));
    await up(p);
    // The left side's nonce is the lowest, so the right side's new IKE SA survives and the right side deletes the old one.
    p.left.nonceSource = fixed(0x01);
    p.right.nonceSource = fixed(0xee, 0x90);
    const l = p.left.sas[0]!, r = p.right.sas[0]!;
    const childSpis = [l.children[0]!.spiIn, l.children[0]!.spiOut];
    // The right side's answer to the left side's rekey is lost, so the left side never learns of its own new SA
    // before the right side's DELETE of the old one arrives.
    const isCreateChildResponse = (d: Buffer): boolean => {
      const h = d.length >= 4 && d.readUInt32BE(0) === 0 ? d.subarray(4) : d;
      return h.length >= 28 && h[18] === ExchangeType.CREATE_CHILD_SA && (h[19]! & 0x20) !== 0;
    };
    p.tap = (d, from) => (from.address !== '192.0.2.1' && isCreateChildResponse(d) ? null : d);
    initiateIkeRekey(p.left, l);
    initiateIkeRekey(p.right, r);
    await p.settle();
    assert.equal(l.state, 'DESTROYED', 'the right side deleted the old IKE SA');
    p.tap = (d) => d;
    await p.advance(10_000);
    assertOnePair(p);
    assert.equal(p.left.sas.length, 1);
    assert.equal(p.right.sas.length, 1);
    assert.equal(r.state, 'DESTROYED');
    // The CHILD_SA moved to the surviving IKE SA unchanged: no packet needed a new SA.
    assert.deepEqual([p.left.sas[0]!.children[0]!.spiIn, p.left.sas[0]!.children[0]!.spiOut], childSpis);
  });
});
