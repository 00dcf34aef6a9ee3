import assert from 'node:assert/strict';
import { decodeIsakmpHeader } from '../../../src/wire/ikev1/index.js';
import { V1Peers } from './two-peers.js';

describe('ike/v1 exchanges between two in-process peers', function () {
  it('Main Mode + Quick Mode: both sides agree on cookies, keys and SPIs', async function () {
    const p = new V1Peers();
    await p.establish();
    const [l] = p.left.sas, [r] = p.right.sas;
    assert.ok(l && r, p.dump());
    assert.equal(l.state, 'ESTABLISHED');
    assert.equal(r.state, 'ESTABLISHED');
    assert.ok(l.cookieI.equals(r.cookieI) && l.cookieR.equals(r.cookieR));
    assert.deepEqual(l.keys, r.keys);
    const [lc] = l.children, [rc] = r.children;
    assert.ok(lc && rc, p.dump());
    assert.equal(lc.spiIn, rc.spiOut);
    assert.equal(lc.spiOut, rc.spiIn);
    assert.deepEqual(lc.keys, rc.keys);
    const lin = p.dpL.sas.get(`in:${lc.spiIn}`), rout = p.dpR.sas.get(`out:${rc.spiOut}`);
    assert.ok(lin && rout);
    assert.ok(lin.encr.key.equals(rout.encr.key));
    assert.ok(lin.integ && rout.integ && lin.integ.key.equals(rout.integ.key));
    assert.equal(lin.encr.key.length, 16);
    assert.equal(lin.integ.key.length, 32);
    const exchanges = p.wire.map((w) => decodeIsakmpHeader(w.data).exchangeType);
    assert.deepEqual(exchanges, [2, 2, 2, 2, 2, 2, 32, 32, 32]);
  });
});
