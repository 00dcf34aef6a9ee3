/**
 * IKEv1 phase 1 rekeying and peers that move, between two in-process peers
 * on a manual clock: a new Main Mode before the ISAKMP SA expires adopts
 * the IPsec SAs and the old ISAKMP SA is deleted on both sides; Quick Mode
 * rekeys keep working across it; an authenticated message from a new NAT
 * mapping moves the SA and its IPsec SAs (updateSa), except on the side
 * behind the NAT; dpd_action trap and Quick Mode over an established SA.
 */
import assert from 'node:assert/strict';
import type { Direction, Endpoint } from '../../../src/dataplane/api.js';
import type { MemoryBackend } from '../../../src/dataplane/backends/memory/index.js';
import { initiateQuick } from '../../../src/ike/v1/quick.js';
import { rekeyIsakmp } from '../../../src/ike/v1/rekey.js';
import { decodeIsakmpHeader, V1ExchangeType } from '../../../src/wire/ikev1/index.js';
import { LEFT, PortNat, RIGHT, V1Peers, onePairNoLeak, v1Config } from './two-peers.js';

const IKE_LEFT_SHORT = '    rekey_time: 100s\n    lifetime: 150s\n';
const IKE_LONG = '    rekey_time: 1000s\n    lifetime: 1200s\n';

const count = (p: V1Peers, re: RegExp): number => p.lines.filter((l) => re.test(l)).length;

/** Records the data plane's updateSa calls, still applying them. */
function spyUpdates(dp: MemoryBackend): { spi: number; dir: Direction; src?: Endpoint; dst?: Endpoint }[] {
  const calls: { spi: number; dir: Direction; src?: Endpoint; dst?: Endpoint }[] = [];
  const orig = dp.updateSa.bind(dp);
  dp.updateSa = (spi, dir, changes) => { calls.push({ spi, dir, ...changes }); return orig(spi, dir, changes); };
  return calls;
}

describe('ike/v1 phase 1 rekey and moving peers', function () {
  it('a new Main Mode at rekey_time adopts the IPsec SAs and deletes the old ISAKMP SA on both sides, leaking nothing', async function () {
    const p = new V1Peers(v1Config('left', { extra: IKE_LEFT_SHORT }), v1Config('right', { extra: IKE_LONG }));
    await p.establish();
    const before = onePairNoLeak(p);
    const spis = [before.l.children[0]!.spiIn, before.l.children[0]!.spiOut];
    // Left rekeys within the last 10% before 100 s; the right's (135 s, 90% of the 150 s it accepted) never comes.
    assert.ok(before.l.rekeyAt! - before.l.establishedAt! >= 90_000 && before.l.rekeyAt! - before.l.establishedAt! <= 100_000, String(before.l.rekeyAt));
    await p.advance(110_000, 1000);
    const { l } = onePairNoLeak(p);
    assert.notEqual(l, before.l);
    assert.ok(!l.cookieI.equals(before.l.cookieI));
    assert.equal(before.l.state, 'DESTROYED');
    assert.equal(before.r.state, 'DESTROYED');
    // The same IPsec SAs, now owned by the new ISAKMP SA.
    assert.deepEqual([l.children[0]!.spiIn, l.children[0]!.spiOut], spis);
    assert.equal(count(p, /: rekeying ISAKMP SA: new phase 1 /), 1, p.dump());
    assert.equal(count(p, /ISAKMP SA rekeyed into /), 1);
    assert.equal(count(p, /peer deleted the ISAKMP SA; its IPsec SAs stay with /), 1, p.dump());
    // The rekey's MM5 claims no INITIAL-CONTACT (RFC 2407 4.6.3.3), so nothing was torn down.
    assert.equal(count(p, /INITIAL-CONTACT: removing/), 0, p.dump());
    assert.equal(count(p, /CHILD_SA .* deleted/), 0, p.dump());
    assert.equal(p.left.counters.ikeEstablished, 2);
  });

  it('renews on request (`styx rekey`): the pair of a child name by Quick Mode, then the ISAKMP SA by a new Main Mode; nothing up, nothing started', async function () {
    const p = new V1Peers(v1Config('left', { extra: IKE_LONG }), v1Config('right', { extra: IKE_LONG }));
    await p.establish();
    const first = onePairNoLeak(p);
    const pair = first.l.children[0]!;
    assert.equal(p.left.rekey('demo', 'nosuchchild'), 0);
    assert.equal(p.left.rekey('other'), 0);
    assert.equal(p.left.rekey('demo', 'net'), 1);
    await p.advance(5_000, 500);
    const second = onePairNoLeak(p);
    assert.equal(second.l, first.l);
    assert.notEqual(second.l.children[0]!.spiIn, pair.spiIn);
    // The responder of the first Main Mode asks for the new phase 1; the pair moves to it.
    const spis = [second.l.children[0]!.spiIn, second.l.children[0]!.spiOut];
    assert.equal(p.right.rekey('demo'), 1);
    await p.advance(5_000, 500);
    const third = onePairNoLeak(p);
    assert.notEqual(third.l, first.l);
    assert.equal(first.l.state, 'DESTROYED');
    assert.deepEqual([third.l.children[0]!.spiIn, third.l.children[0]!.spiOut], spis);
  });

  it('Quick Mode rekeys keep working across phase 1 rekeys started by the responder side, which honours its own shorter lifetime', async function () {
    const child = '        rekey_time: 100s\n        lifetime: 130s\n';
    // The right (the responder) has the short ISAKMP times and says so with RESPONDER-LIFETIME.
    const p = new V1Peers(v1Config('left', { extra: IKE_LONG, child }), v1Config('right', { extra: '    rekey_time: 60s\n    lifetime: 90s\n', child }));
    await p.establish();
    const first = onePairNoLeak(p);
    assert.equal(first.l.lifetime, 90);
    assert.equal(first.r.lifetime, 90);
    // The left's rekey comes before 90% of the 90 s the peer allowed, not at its configured 1000 s.
    assert.ok(first.l.rekeyAt! - first.l.establishedAt! <= 81_000, String(first.l.rekeyAt! - first.l.establishedAt!));
    const spi0 = first.l.children[0]!.spiIn;
    await p.advance(250_000, 1000);
    const { l } = onePairNoLeak(p);
    assert.notEqual(l.children[0]!.spiIn, spi0);
    assert.ok(count(p, /: rekeying ISAKMP SA: new phase 1 /) >= 3, p.dump());
    assert.ok(count(p, /: Quick Mode \S+: rekeying net\{/) >= 2, p.dump());
    // Each Quick Mode rekey went over the ISAKMP SA that was newest then, and nothing failed.
    assert.equal(count(p, /Quick Mode \S+ for net failed/), 0, p.dump());
    assert.equal(count(p, /peer deleted unknown IPsec SA/), 0, p.dump());
  });

  it('when the old ISAKMP SA\'s delete is lost, the peer drops it as superseded at its own rekey time and keeps the IPsec SAs', async function () {
    const p = new V1Peers(v1Config('left', { extra: IKE_LEFT_SHORT }), v1Config('right', { extra: IKE_LONG }));
    await p.establish();
    p.tap = (d, from) => (from.address === LEFT.address && decodeIsakmpHeader(d).exchangeType === V1ExchangeType.INFORMATIONAL ? null : d);
    await p.advance(110_000, 1000);
    assert.equal(p.right.sas.length, 2, p.dump());
    const [oldR, newR] = [...p.right.sas].sort((a, b) => a.establishedAt! - b.establishedAt!);
    assert.equal(oldR!.children.length, 0);
    assert.equal(newR!.children.length, 1);
    await p.advance(30_000, 1000);
    onePairNoLeak(p);
    assert.equal(count(p, /ISAKMP SA destroyed: superseded by /), 1, p.dump());
  });

  it('both sides starting a phase 1 rekey at once: the new SA with the higher cookies keeps the pair, the other goes, on both sides alike', async function () {
    const p = new V1Peers(v1Config('left', { extra: IKE_LEFT_SHORT }), v1Config('right', { extra: IKE_LEFT_SHORT }));
    await p.establish();
    const { l, r } = onePairNoLeak(p);
    void l.enqueue(() => rekeyIsakmp(p.left, l));
    void r.enqueue(() => rekeyIsakmp(p.right, r));
    await p.settle();
    await p.advance(2000, 250);
    const now = onePairNoLeak(p);
    assert.notEqual(now.l, l);
    // Of the two new ISAKMP SAs, the survivor has the higher cookies (both sides compare the same bytes).
    const news = p.lines.filter((x) => /phase 1 rekey collision with /.test(x));
    assert.equal(news.length, 2, p.dump());
    const loser = /\] ([0-9a-f]{16})_i ([0-9a-f]{16})_r: phase 1 rekey collision/.exec(news[0]!)!;
    assert.ok(Buffer.compare(Buffer.from(loser[1]! + loser[2]!, 'hex'), now.l.cookies) < 0);
    assert.equal(count(p, /deleting ours/), 1, p.dump());
    // Later rekeys, even at the same moment on both sides, settle the same way.
    await p.advance(120_000, 1000);
    onePairNoLeak(p);
  });

  it('a Quick Mode rekey still running over the old ISAKMP SA finishes before that SA is deleted, and its pair moves to the new one', async function () {
    const p = new V1Peers();
    await p.establish();
    const { l } = onePairNoLeak(p);
    const old = l.children[0]!;
    // The responder's first QM2 is lost, so the Quick Mode outlasts the new Main Mode.
    let dropped = 0;
    p.tap = (d, from) => (from.address === RIGHT.address && decodeIsakmpHeader(d).exchangeType === V1ExchangeType.QUICK && dropped++ === 0 ? null : d);
    void l.enqueue(() => initiateQuick(p.left, l, old.config, old));
    void l.enqueue(() => rekeyIsakmp(p.left, l));
    await p.settle();
    assert.equal(p.left.sas.length, 2, p.dump());
    assert.ok(count(p, /waiting for 1 Quick Mode\(s\) before deleting it/) === 1, p.dump());
    await p.advance(6000, 250);
    const now = onePairNoLeak(p);
    assert.notEqual(now.l, l);
    assert.notEqual(now.l.children[0]!.spiIn, old.spiIn);
    assert.equal(old.state, 'DELETED');
  });

  it('a Quick Mode rekey due while a phase 1 rekey is under way waits and runs over the new ISAKMP SA, not the one about to be deleted', async function () {
    const p = new V1Peers();
    await p.establish();
    const { l } = onePairNoLeak(p);
    const old = l.children[0]!;
    void l.enqueue(() => rekeyIsakmp(p.left, l));
    void l.enqueue(() => initiateQuick(p.left, l, old.config, old));
    await p.settle();
    await p.advance(6000, 250);
    const now = onePairNoLeak(p);
    assert.notEqual(now.l, l);
    assert.equal(l.state, 'DESTROYED');
    assert.notEqual(now.l.children[0]!.spiIn, old.spiIn, p.dump());
    assert.equal(old.state, 'DELETED');
    const quick = p.lines.filter((x) => /Quick Mode [0-9a-f]+: rekeying net/.test(x));
    assert.equal(quick.length, 1, p.dump());
    assert.ok(quick[0]!.includes(now.l.tag), `the rekey went over ${quick[0]}, not ${now.l.tag}`);
  });

  it('behind a NAT, a phase 1 rekey from the outside goes to the peer\'s mapped NAT-T port and the IPsec SAs carry over', async function () {
    const p = new V1Peers(v1Config('left', { extra: IKE_LONG }), v1Config('right', { extra: '    rekey_time: 60s\n    lifetime: 90s\n' }));
    p.nat = new PortNat(LEFT.address, 20000);
    await p.establish();
    const first = onePairNoLeak(p);
    const spis = [first.l.children[0]!.spiIn, first.l.children[0]!.spiOut];
    const mapped = p.nat.mapped(4500)!;
    await p.advance(70_000, 1000);
    const { l, r } = onePairNoLeak(p);
    assert.notEqual(r, first.r);
    // The right started it, from its NAT-T port to the left's mapping, the only way through the NAT.
    assert.equal(r.initiator, true);
    assert.deepEqual([r.local.port, r.remote.port], [4500, mapped]);
    assert.deepEqual([l.local.port, l.remote.port, l.nat.local], [4500, 4500, true]);
    assert.deepEqual([l.children[0]!.spiIn, l.children[0]!.spiOut], spis);
  });

  it('a Quick Mode responder that installed its inbound SA before QM2 leaks nothing when the ISAKMP SA goes before QM3', async function () {
    const p = new V1Peers();
    await p.establish();
    const { l } = onePairNoLeak(p);
    p.tap = (d, from) => (from.address === LEFT.address && decodeIsakmpHeader(d).exchangeType === V1ExchangeType.QUICK && decodeIsakmpHeader(d).length < 100 ? null : d);
    void l.enqueue(() => initiateQuick(p.left, l, l.children[0]!.config));
    await p.settle();
    // QM1 and QM2 crossed, QM3 (the short one) did not: the right holds a second inbound SA.
    assert.equal(p.dpR.sas.size, 3, p.dump());
    await p.left.terminate('demo');
    await p.settle();
    assert.equal(p.right.sas.length, 0);
    assert.equal(p.dpR.sas.size + p.dpR.policies.length + p.dpR.reserved.size, 0, JSON.stringify([...p.dpR.sas.keys()]));
    assert.equal(p.dpL.sas.size + p.dpL.policies.length + p.dpL.reserved.size, 0);
  });

  it('a Quick Mode rekey that gets no answer is tried again before the pair expires', async function () {
    const child = '        rekey_time: 100s\n        lifetime: 140s\n';
    const p = new V1Peers(v1Config('left', { child }), v1Config('right', { child }));
    await p.establish();
    const spi0 = p.left.sas[0]!.children[0]!.spiIn;
    // Every Quick Mode answer is lost until after the first rekey (at 90-100 s) ran out of retransmissions (1+2+4+8 s).
    let deaf = true;
    p.tap = (d, from) => (deaf && from.address === RIGHT.address && decodeIsakmpHeader(d).exchangeType === V1ExchangeType.QUICK ? null : d);
    await p.advance(118_000, 500);
    assert.equal(p.left.sas[0]!.children[0]!.spiIn, spi0);
    deaf = false;
    await p.advance(20_000, 500);
    const { l } = onePairNoLeak(p);
    assert.notEqual(l.children[0]!.spiIn, spi0);
    assert.ok(count(p, /rekeying CHILD_SA net\{\d+\} again in 2s \(try 2 of 3\)/) >= 1, p.dump());
  });

  it('follows a peer behind a NAT to its new mapping on its DPD R-U-THERE: updateSa both ways, the answer and the listing use the new port', async function () {
    const p = new V1Peers(v1Config('left', { extra: '    dpd_delay: 10s\n' }), v1Config('right'));
    p.nat = new PortNat(LEFT.address, 20000);
    await p.establish();
    const { l, r } = onePairNoLeak(p);
    assert.equal(l.nat.local, true);
    const mapped = p.nat.mapped(4500)!;
    assert.deepEqual(r.remote, { address: LEFT.address, port: mapped });
    const updates = spyUpdates(p.dpR);
    p.nat.remap(30000);
    await p.advance(12_000, 500);
    // The left's R-U-THERE from 4500 made the NAT's new mapping 30000.
    assert.deepEqual(r.remote, { address: LEFT.address, port: 30000 }, p.dump());
    const rc = r.children[0]!;
    assert.deepEqual(updates.map((u) => [u.spi, u.dir, u.src?.port, u.dst?.port]).sort(), [[rc.spiIn, 'in', 30000, 4500], [rc.spiOut, 'out', 4500, 30000]].sort());
    assert.equal(p.dpR.sas.get(`out:${rc.spiOut}`)!.dst.port, 30000);
    assert.equal(p.dpR.sas.get(`in:${rc.spiIn}`)!.src.port, 30000);
    assert.equal(count(p, new RegExp(`peer now at ${LEFT.address}:30000 \\(was ${LEFT.address}:${mapped}\\)`)), 1, p.dump());
    // The R-U-THERE-ACK went to the new mapping and got through.
    assert.ok(p.wire.some((w) => w.from.address === RIGHT.address && w.to.port === 30000 && decodeIsakmpHeader(w.data).exchangeType === V1ExchangeType.INFORMATIONAL));
    assert.equal(l.dpd.outstanding, 0, p.dump());
    const listed = await p.right.describe(r);
    assert.equal(listed.remote.port, 30000);
    // And Quick Mode reaches the left there.
    const again = p.left.initiateAndWait('demo/net', 30_000);
    again.catch(() => undefined);
    await p.settle();
    await again;
    await p.advance(5000, 500);
    onePairNoLeak(p);
  });

  it('the side behind the NAT does not move when its peer\'s messages arrive from another port', async function () {
    const p = new V1Peers(v1Config('left'), v1Config('right', { extra: '    dpd_delay: 10s\n' }));
    p.nat = new PortNat(LEFT.address, 20000);
    await p.establish();
    const { l, r } = onePairNoLeak(p);
    assert.equal(l.nat.local, true);
    assert.equal(r.nat.local, false);
    const updates = spyUpdates(p.dpL);
    // Something on the way rewrites the right's source port; the left, behind its own NAT, keeps the peer's fixed address.
    p.source = (from) => (from.address === RIGHT.address ? { address: from.address, port: 4600 } : from);
    await p.advance(12_000, 500);
    assert.ok(p.right.counters.dpdSent >= 1, p.dump());
    assert.deepEqual(l.remote, { address: RIGHT.address, port: 4500 });
    assert.equal(updates.length, 0);
    assert.ok(count(p, /192\.0\.2\.2:4600 ignored for address updates: we are behind a NAT/) >= 1, p.dump());
    // The left answered the R-U-THERE where the right really is, so the right is not left waiting.
    assert.equal(r.dpd.outstanding, 0, p.dump());
  });

  it('dpd_action trap: a dead peer\'s SAs go and the manager asks for trap policies', async function () {
    const p = new V1Peers(v1Config('left', { extra: '    dpd_delay: 5s\n    dpd_timeout: 15s\n    dpd_action: trap\n' }), v1Config('right'));
    const trapped: string[] = [];
    p.left.onTrap = (conn) => { trapped.push(conn.name); };
    await p.establish();
    p.tap = (d, from) => (from.address === RIGHT.address ? null : d);
    await p.advance(40_000, 1000);
    assert.deepEqual(trapped, ['demo'], p.dump());
    assert.equal(p.left.sas.length, 0);
    assert.equal(p.dpL.sas.size + p.dpL.policies.length + p.dpL.reserved.size, 0);
  });

  it('initiate conn/child with an ISAKMP SA up runs only Quick Mode over it; the responder takes the new pair as the replacement of the old', async function () {
    const p = new V1Peers();
    await p.establish();
    const first = onePairNoLeak(p);
    const old = first.l.children[0]!;
    const sa = await (async () => { const up = p.left.initiateAndWait('demo/net', 30_000); up.catch(() => undefined); await p.settle(); return up; })();
    assert.equal(sa, first.l);
    assert.equal(p.left.counters.ikeEstablished, 1);
    await p.advance(5000, 500);
    const { l } = onePairNoLeak(p);
    assert.notEqual(l.children[0]!.spiIn, old.spiIn);
    assert.equal(old.state, 'DELETED');
  });
});
