/**
 * IKEv1 IPsec SA volume lifetimes between two in-process peers: the
 * kilobytes life of RFC 2407 4.5 is offered and honoured, a stricter
 * responder says so with RESPONDER-LIFETIME (4.6.3.1), and the data plane's
 * soft and hard expiry events renew or delete the pair, once, leaving
 * exactly one pair and nothing leaked.
 */
import assert from 'node:assert/strict';
import { V1Peers, onePairNoLeak, v1Config } from './two-peers.js';

const VOLUME = '        rekey_bytes: 1000000\n        life_bytes: 2000000\n';
const count = (p: V1Peers, re: RegExp): number => p.lines.filter((l) => re.test(l)).length;

describe('ike/v1 volume lifetimes', function () {
  it('offers life_bytes as a kilobytes life; a responder without one adopts it and renews at 90% of it', async function () {
    const p = new V1Peers(v1Config('left', { child: VOLUME }), v1Config('right'));
    await p.establish();
    const { l, r } = onePairNoLeak(p);
    const out = p.dpL.sas.get(`out:${l.children[0]!.spiOut}`)!;
    assert.equal(out.limits?.softBytes, 1_000_000n);
    assert.equal(out.limits?.hardBytes, 2_000_000n);
    const theirs = p.dpR.sas.get(`in:${r.children[0]!.spiIn}`)!;
    assert.equal(theirs.limits?.hardBytes, 2_000_000n);
    assert.equal(theirs.limits?.softBytes, 1_800_000n);
    assert.equal(count(p, /RESPONDER-LIFETIME/), 0, p.dump());
  });

  it('a responder with a smaller life_bytes sends RESPONDER-LIFETIME in kilobytes and the initiator holds the pair to it', async function () {
    const p = new V1Peers(v1Config('left', { child: VOLUME }), v1Config('right', { child: '        life_bytes: 500000\n' }));
    await p.establish();
    const { l, r } = onePairNoLeak(p);
    assert.ok(p.lines.some((x) => /peer limits CHILD_SA net to 500000 bytes \(RESPONDER-LIFETIME\)/.test(x)), p.dump());
    // The initiator renews at its rekey_bytes if that is below 90% of the agreed limit, the responder as it configured (no rekey_bytes).
    for (const [dp, c, soft] of [[p.dpL, l.children[0]!, 450_000n], [p.dpR, r.children[0]!, undefined]] as const) {
      for (const key of [`in:${c.spiIn}`, `out:${c.spiOut}`]) {
        assert.equal(dp.sas.get(key)!.limits?.hardBytes, 500_000n, key);
        assert.equal(dp.sas.get(key)!.limits?.softBytes, soft, key);
      }
    }
  });

  it('a soft limit on the side that made the pair renews it with one Quick Mode, even when both SAs of the pair report it', async function () {
    const p = new V1Peers(v1Config('left', { child: VOLUME }), v1Config('right', { child: VOLUME }));
    await p.establish();
    const before = onePairNoLeak(p).l.children[0]!;
    p.dpL.events.emit('expire', { spi: before.spiOut, direction: 'out', hard: false });
    p.dpL.events.emit('expire', { spi: before.spiIn, direction: 'in', hard: false });
    await p.settle();
    await p.advance(4_000);
    const { l, r } = onePairNoLeak(p);
    assert.notEqual(l.children[0]!.spiIn, before.spiIn);
    assert.ok(l.children[0]!.createdByUs && !r.children[0]!.createdByUs);
    assert.equal(count(p, /reached a soft volume limit: rekeying/), 1, p.dump());
    assert.equal(count(p, /Quick Mode [0-9a-f]+: rekeying net/), 1, p.dump());
    assert.equal(count(p, /deleted: rekeyed into/), 1, p.dump());
    assert.equal(count(p, /deleted: deleted by peer/), 1, p.dump());
  });

  it('a soft limit on the side that did not make the pair waits for the peer to renew it, and renews it itself if the peer does not', async function () {
    const p = new V1Peers(v1Config('left'), v1Config('right', { child: VOLUME }));
    await p.establish();
    const before = onePairNoLeak(p).r.children[0]!;
    p.dpR.events.emit('expire', { spi: before.spiIn, direction: 'in', hard: false });
    await p.settle();
    await p.advance(1_000);
    assert.equal(count(p, /Quick Mode [0-9a-f]+: rekeying/), 0, p.dump());
    await p.advance(4_000);
    const { l, r } = onePairNoLeak(p);
    assert.notEqual(r.children[0]!.spiIn, before.spiIn);
    assert.ok(r.children[0]!.createdByUs && !l.children[0]!.createdByUs, 'the new pair is the right side\'s now');
    assert.equal(count(p, /Quick Mode [0-9a-f]+: rekeying net/), 1, p.dump());
  });

  it('when both sides reach the soft limit, only the side that made the pair renews it: no duplicate pair', async function () {
    const p = new V1Peers(v1Config('left', { child: VOLUME }), v1Config('right', { child: VOLUME }));
    await p.establish();
    const { l: l0, r: r0 } = onePairNoLeak(p);
    const [lc, rc] = [l0.children[0]!, r0.children[0]!];
    p.dpR.events.emit('expire', { spi: rc.spiIn, direction: 'in', hard: false });
    p.dpL.events.emit('expire', { spi: lc.spiOut, direction: 'out', hard: false });
    await p.settle();
    await p.advance(6_000);
    const { l } = onePairNoLeak(p);
    assert.notEqual(l.children[0]!.spiIn, lc.spiIn);
    assert.equal(count(p, /Quick Mode [0-9a-f]+: rekeying net/), 1, p.dump());
    assert.ok(l.children[0]!.createdByUs, 'the side that made the old pair made the new one');
  });

  it('a hard limit deletes the pair on both sides and keeps the ISAKMP SA', async function () {
    const p = new V1Peers(v1Config('left', { child: VOLUME }), v1Config('right', { child: VOLUME }));
    await p.establish();
    const { r } = onePairNoLeak(p);
    const c = r.children[0]!;
    p.dpR.events.emit('expire', { spi: c.spiOut, direction: 'out', hard: true });
    // The other SA of the pair crossing its hard limit too changes nothing more.
    p.dpR.events.emit('expire', { spi: c.spiIn, direction: 'in', hard: true });
    await p.settle();
    await p.advance(3_000);
    assert.equal(p.left.sas.length, 1);
    assert.equal(p.right.sas.length, 1);
    assert.equal(p.left.sas[0]!.state, 'ESTABLISHED');
    assert.equal(p.left.sas[0]!.children.length, 0, p.dump());
    assert.equal(p.right.sas[0]!.children.length, 0, p.dump());
    assert.equal(count(p, /reached a hard volume limit/), 1, p.dump());
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0, p.dump());
    assert.equal(p.dpL.policies.length + p.dpR.policies.length, 0);
  });
});
