/**
 * IKEv1 failure paths between two in-process peers: wrong PSK in both modes
 * and roles, lost datagrams and retransmission, deletes both ways, DPD on a
 * silent peer, and garbage that must be counted and dropped without
 * touching the established SAs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeIsakmpHeader, V1ExchangeType } from '../../../src/wire/ikev1/index.js';
import { deleteChildV1 } from '../../../src/ike/v1/info.js';
import { LEFT, RIGHT, V1Peers, v1Config } from './two-peers.js';

const kind = (d: Buffer): { x: number; enc: boolean; mid: number } => { const h = decodeIsakmpHeader(d); return { x: h.exchangeType, enc: h.flags.encryption, mid: h.messageId }; };

function attempt(p: V1Peers): Promise<unknown> {
  const up = p.left.initiateAndWait('demo', 120_000);
  up.catch(() => undefined);
  return up;
}

describe('ike/v1 failure paths between two in-process peers', function () {
  it('Main Mode with different PSKs: the responder says MM5 does not verify, the initiator gives up naming the PSK', async function () {
    const p = new V1Peers(v1Config('left'), v1Config('right', { psk: 'another secret' }));
    const up = attempt(p);
    await p.settle();
    assert.ok(p.lines.some((l) => /ERROR \[ike\] demo\[\d+\] \S+_i \S+_r: MM5 from 192\.0\.2\.1 does not verify: wrong PSK\?/.test(l)), p.dump());
    assert.equal(p.right.sas.length, 0);
    assert.equal(p.right.counters.authFailures, 1);
    // The initiator retransmits MM5 into the void (1+2+4+8 s), then fails.
    await p.advance(20_000, 500);
    await assert.rejects(up, /did not answer MM5: wrong PSK\?/);
    assert.equal(p.left.sas.length, 0);
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
  });

  it('Aggressive Mode with different PSKs: AM2 does not verify at the initiator', async function () {
    const p = new V1Peers(v1Config('left', { aggressive: true, psk: 'another secret' }), v1Config('right', { aggressive: true }));
    const up = attempt(p);
    await p.settle();
    await assert.rejects(up, /AM2 from 192\.0\.2\.2 does not verify: wrong PSK\?/);
    assert.equal(p.left.counters.authFailures, 1);
    // The responder keeps retransmitting AM2 for a while, then drops its half-open SA.
    await p.advance(20_000, 500);
    assert.equal(p.right.sas.length, 0, p.dump());
  });

  it('Main Mode: a lost MM4 is retransmitted for and not processed twice', async function () {
    const p = new V1Peers();
    let dropped = 0;
    p.tap = (d, from) => (from.address === RIGHT.address && kind(d).x === V1ExchangeType.IDENTITY_PROTECTION && p.wire.length === 4 && dropped++ === 0 ? null : d);
    const up = attempt(p);
    await p.settle();
    await p.advance(1500);
    await up;
    assert.equal(dropped, 1);
    assert.equal(p.right.counters.retransmitsAnswered, 1);
    assert.ok(p.lines.some((l) => /retransmit 1 of MM3/.test(l)));
    assert.deepEqual(p.left.sas[0]!.keys, p.right.sas[0]!.keys);
  });

  it('Main Mode: a lost MM6 makes the initiator repeat MM5 and the responder answer from its cache', async function () {
    const p = new V1Peers();
    let dropped = 0;
    p.tap = (d, from) => (from.address === RIGHT.address && kind(d).x === V1ExchangeType.IDENTITY_PROTECTION && kind(d).enc && dropped++ === 0 ? null : d);
    const up = attempt(p);
    await p.settle();
    await p.advance(1500);
    await up;
    assert.equal(p.right.counters.retransmitsAnswered, 1);
    assert.equal(p.right.sas.length, 1);
    assert.equal(p.right.counters.ikeEstablished, 1);
  });

  it('Quick Mode: a lost QM3 makes the responder repeat QM2 and the initiator repeat QM3; installed once', async function () {
    const p = new V1Peers();
    let dropped = 0;
    p.tap = (d, from) => (from.address === LEFT.address && kind(d).x === V1ExchangeType.QUICK && p.wire.filter((w) => kind(w.data).x === V1ExchangeType.QUICK).length === 3 && dropped++ === 0 ? null : d);
    const up = attempt(p);
    await p.settle();
    await up;
    assert.equal(p.right.sas[0]!.children.length, 0);
    await p.advance(1500);
    assert.equal(dropped, 1);
    assert.equal(p.left.counters.retransmitsAnswered, 1);
    assert.equal(p.right.sas[0]!.children.length, 1, p.dump());
    assert.equal(p.left.sas[0]!.children.length, 1);
    assert.equal(p.dpR.sas.size, 2);
  });

  it('gives up after the configured retransmissions when nobody answers', async function () {
    const p = new V1Peers();
    p.tap = (_d, _f, to) => (to.address === RIGHT.address ? null : _d);
    const up = attempt(p);
    await p.advance(20_000, 500);
    await assert.rejects(up, /192\.0\.2\.2 did not answer MM1/);
    assert.equal(p.wire.length, 4, 'MM1 and three retransmits');
    assert.equal(p.left.sas.length, 0);
  });

  it('terminate from the initiator deletes IPsec and ISAKMP SAs on both sides', async function () {
    const p = new V1Peers();
    await p.establish();
    assert.equal(await p.left.terminate('demo'), 1);
    await p.settle();
    assert.equal(p.left.sas.length, 0);
    assert.equal(p.right.sas.length, 0, p.dump());
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
    assert.equal(p.dpL.policies.length + p.dpR.policies.length, 0);
    assert.ok(p.lines.some((l) => /peer deleted CHILD_SA net\{\d+\}/.test(l)));
    assert.ok(p.lines.some((l) => /peer deleted the ISAKMP SA/.test(l)));
  });

  it('terminate from the responder works the same way', async function () {
    const p = new V1Peers();
    await p.establish();
    await p.right.terminate('demo');
    await p.settle();
    assert.equal(p.left.sas.length + p.right.sas.length, 0);
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
  });

  it('deleting only the IPsec SA keeps the ISAKMP SA on both sides', async function () {
    const p = new V1Peers();
    await p.establish();
    const r = p.right.sas[0]!;
    await deleteChildV1(p.right, r, r.children[0]!, 'test');
    await p.settle();
    assert.equal(p.left.sas[0]!.state, 'ESTABLISHED');
    assert.equal(p.left.sas[0]!.children.length, 0);
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
  });

  it('answers R-U-THERE and stays up while the peer answers', async function () {
    const extra = '    dpd_delay: 5s\n    dpd_timeout: 15s\n';
    const p = new V1Peers(v1Config('left', { extra }), v1Config('right', { extra }));
    await p.establish();
    await p.advance(60_000, 1000);
    assert.ok(p.left.counters.dpdSent >= 5, `sent ${p.left.counters.dpdSent}`);
    assert.equal(p.left.sas[0]!.state, 'ESTABLISHED');
    assert.equal(p.left.sas[0]!.dpd.outstanding, 0);
  });

  it('DPD clear: a silent peer is declared dead after dpd_timeout and everything is removed', async function () {
    const extra = '    dpd_delay: 5s\n    dpd_timeout: 15s\n    dpd_action: clear\n';
    const p = new V1Peers(v1Config('left', { extra }), v1Config('right'));
    await p.establish();
    p.tap = () => null;
    await p.advance(30_000, 1000);
    assert.equal(p.left.sas.length, 0, p.dump());
    assert.equal(p.dpL.sas.size, 0);
    assert.ok(p.lines.some((l) => /DPD: 192\.0\.2\.2 silent for \d+s after \d+ R-U-THERE: dead, dpd_action clear/.test(l)));
    assert.ok(p.lines.some((l) => /ISAKMP SA destroyed: DPD: peer is dead/.test(l)));
  });

  it('DPD restart: after declaring the peer dead it initiates again and comes back up when the peer does', async function () {
    const extra = '    dpd_delay: 5s\n    dpd_timeout: 15s\n    dpd_action: restart\n';
    const p = new V1Peers(v1Config('left', { extra }), v1Config('right'));
    await p.establish();
    const old = p.left.sas[0]!.cookieI.toString('hex');
    p.tap = () => null;
    // Dead at 15 s (5 s idle, two unanswered R-U-THERE); the new MM1 goes out then and is retransmitted at 16 and 18 s.
    await p.advance(17_000, 500);
    assert.ok(p.lines.some((l) => /restarting after the peer was lost/.test(l)), p.dump());
    p.tap = (d) => d;
    await p.advance(10_000, 500);
    const [l] = p.left.sas;
    assert.ok(l, p.dump());
    assert.equal(l.state, 'ESTABLISHED');
    assert.notEqual(l.cookieI.toString('hex'), old);
    assert.equal(l.children.length, 1);
    // INITIAL-CONTACT in MM5 made the responder drop its stale SA.
    assert.equal(p.right.sas.length, 1);
    assert.ok(p.lines.some((x) => /INITIAL-CONTACT: removing the older ISAKMP SA/.test(x)));
  });

  it('counts and drops garbage, truncated and forged datagrams; the SAs stay up and still work', async function () {
    const p = new V1Peers();
    await p.establish();
    const l = p.left.sas[0]!;
    const before = { ...p.left.counters };
    const from = RIGHT;
    // Too short for a header, a header promising more than arrived, and random bytes.
    p.left.receive(randomBytes(10), LEFT, from);
    const mm = p.wire[0]!.data;
    p.left.receive(mm.subarray(0, mm.length - 5), LEFT, from);
    for (let i = 0; i < 5; i++) p.left.receive(randomBytes(28 + 17 * i), LEFT, from);
    // The SA's cookies with a random encrypted body: a Quick Mode and an Informational that cannot verify.
    const forged = (exchange: number, mid: number, body: Buffer): Buffer => {
      const h = Buffer.alloc(28);
      l.cookieI.copy(h, 0); l.cookieR.copy(h, 8);
      h[16] = 8; h[17] = 0x10; h[18] = exchange; h[19] = 1;
      h.writeUInt32BE(mid, 20); h.writeUInt32BE(28 + body.length, 24);
      return Buffer.concat([h, body]);
    };
    p.left.receive(forged(V1ExchangeType.QUICK, 0x1234, randomBytes(64)), LEFT, from);
    p.left.receive(forged(V1ExchangeType.INFORMATIONAL, 0x4321, randomBytes(48)), LEFT, from);
    p.left.receive(forged(V1ExchangeType.INFORMATIONAL, 0x4322, randomBytes(50)), LEFT, from);
    await p.settle();
    const d = (k: keyof typeof before): number => p.left.counters[k] - before[k];
    assert.ok(d('malformed') >= 3, JSON.stringify(p.left.counters));
    assert.ok(d('malformed') + d('integrityFailures') + d('unknownSpi') >= 10, JSON.stringify(p.left.counters));
    assert.ok(!p.lines.some((x) => /decoder bug|TypeError|RangeError/.test(x)));
    assert.equal(l.state, 'ESTABLISHED');
    assert.equal(l.children.length, 1);
    // The IV chain and state survived: a delete still goes through.
    await p.left.terminate('demo');
    await p.settle();
    assert.equal(p.right.sas.length, 0);
  });

  it('a flipped bit in QM2 fails HASH(2); the retransmitted QM1 is answered and the exchange completes', async function () {
    const p = new V1Peers();
    let flipped = 0;
    p.tap = (d, f) => {
      if (f.address !== RIGHT.address || kind(d).x !== V1ExchangeType.QUICK || flipped++ > 0) return d;
      const c = Buffer.from(d); c[c.length - 20]! ^= 0x01; return c;
    };
    const up = attempt(p);
    await p.settle();
    await p.advance(1500);
    await up;
    assert.ok(p.left.counters.integrityFailures + p.left.counters.malformed >= 1);
    // QM1 again is answered with QM2; a second QM3 (answering the responder's own QM2 retransmission) is answered by nothing.
    assert.ok(p.right.counters.retransmitsAnswered >= 1 && p.right.counters.retransmitsAnswered <= 2, JSON.stringify(p.right.counters));
    const qm = p.wire.filter((w) => kind(w.data).x === V1ExchangeType.QUICK).length;
    assert.ok(qm <= 8, `${qm} Quick Mode datagrams`);
    assert.deepEqual(p.left.sas[0]!.children[0]!.keys, p.right.sas[0]!.children[0]!.keys);
  });
});
