/**
 * IKEv1 exchanges between two in-process peers: Main and Aggressive Mode,
 * Quick Mode with and without PFS, lifetimes, selectors, NAT-T, listings.
 * Failure paths (wrong PSK, loss, DPD, garbage) are in robustness.test.ts.
 */
import assert from 'node:assert/strict';
import { decodeIsakmpHeader, V1ExchangeType } from '../../../src/wire/ikev1/index.js';
import { LEFT, V1Peers, v1Config } from './two-peers.js';

const exchangesOnWire = (p: V1Peers): number[] => p.wire.map((w) => decodeIsakmpHeader(w.data).exchangeType);

/** Both sides hold one ISAKMP SA with one IPsec SA pair whose SPIs and keys mirror each other. */
function assertPair(p: V1Peers): void {
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
  const lout = p.dpL.sas.get(`out:${lc.spiOut}`), rin = p.dpR.sas.get(`in:${rc.spiIn}`);
  assert.ok(lin && rout && lout && rin);
  // What one side sends with, the other receives with.
  assert.ok(lin.encr.key.equals(rout.encr.key) && lout.encr.key.equals(rin.encr.key));
  assert.ok(!lin.encr.key.equals(lout.encr.key));
}

describe('ike/v1 exchanges between two in-process peers', function () {
  it('Main Mode + Quick Mode: both sides agree on cookies, keys and SPIs', async function () {
    const p = new V1Peers();
    await p.establish();
    assertPair(p);
    const lc = p.left.sas[0]!.children[0]!;
    const lin = p.dpL.sas.get(`in:${lc.spiIn}`)!;
    assert.equal(lin.encr.key.length, 16);
    assert.equal(lin.integ?.key.length, 32);
    assert.equal(lin.encap, false);
    assert.equal(lin.mode, 'tunnel');
    assert.deepEqual(exchangesOnWire(p), [2, 2, 2, 2, 2, 2, 32, 32, 32]);
    // The responder installs only after QM3: both sides have two SAs and two policies.
    assert.equal(p.dpL.sas.size, 2);
    assert.equal(p.dpR.sas.size, 2);
    assert.equal(p.dpR.policies.length, 2);
    assert.ok(p.lines.some((l) => /CHILD_SA net keys encr_i [0-9a-f]{32} integ_i [0-9a-f]{64} encr_r/.test(l)));
  });

  it('Aggressive Mode + Quick Mode in three plus three messages', async function () {
    const p = new V1Peers(v1Config('left', { aggressive: true }), v1Config('right', { aggressive: true }));
    await p.establish();
    assertPair(p);
    assert.deepEqual(exchangesOnWire(p), [4, 4, 4, 32, 32, 32]);
    assert.equal(p.left.sas[0]!.aggressive, true);
    // AM3 goes encrypted, as deployed peers expect.
    assert.equal(decodeIsakmpHeader(p.wire[2]!.data).flags.encryption, true);
  });

  it('refuses Aggressive Mode where the responder does not allow it', async function () {
    const p = new V1Peers(v1Config('left', { aggressive: true }), v1Config('right'));
    const up = p.left.initiateAndWait('demo', 30_000);
    up.catch(() => undefined);
    await p.settle();
    await assert.rejects(up, /peer sent NO_PROPOSAL_CHOSEN/);
    assert.equal(p.right.sas.length, 0);
  });

  it('Quick Mode with PFS: a KE of the child\'s group, and both sides derive the same keys from it', async function () {
    const esp = 'aes128-sha256-modp2048';
    const p = new V1Peers(v1Config('left', { esp }), v1Config('right', { esp }));
    await p.establish();
    assertPair(p);
    assert.equal(p.left.sas[0]!.children[0]!.selection.dh, 14);
    assert.equal(p.right.sas[0]!.children[0]!.selection.dh, 14);
    // The PFS KE makes QM1 and QM2 far longer than without.
    const qm = p.wire.filter((w) => decodeIsakmpHeader(w.data).exchangeType === V1ExchangeType.QUICK);
    assert.ok(qm[0]!.data.length > 256 + 100 && qm[1]!.data.length > 256 + 100, `QM sizes ${qm.map((w) => w.data.length)}`);
  });

  it('refuses Quick Mode without PFS when the responder requires it: NO_PROPOSAL_CHOSEN, ISAKMP SA kept', async function () {
    const p = new V1Peers(v1Config('left'), v1Config('right', { esp: 'aes128-sha256-modp2048' }));
    const up = p.left.initiateAndWait('demo', 30_000);
    up.catch(() => undefined);
    await p.settle();
    await assert.rejects(up, /Quick Mode failed: peer refused: NO_PROPOSAL_CHOSEN/);
    assert.equal(p.left.sas[0]!.state, 'ESTABLISHED');
    assert.equal(p.left.sas[0]!.children.length, 0);
    assert.equal(p.dpL.sas.size + p.dpR.sas.size, 0);
  });

  for (const [esp, encrBytes, integBytes] of [['aes256gcm16', 36, 0], ['aes256-sha512', 32, 64], ['aes128-sha1', 16, 20]] as const) {
    it(`ESP ${esp}: ${encrBytes}+${integBytes} bytes of KEYMAT per direction`, async function () {
      const p = new V1Peers(v1Config('left', { esp, proposals: 'aes256-sha384-ecp384' }), v1Config('right', { esp, proposals: 'aes256-sha384-ecp384' }));
      await p.establish();
      assertPair(p);
      const c = p.left.sas[0]!.children[0]!;
      assert.equal(c.keys.encrI.length, encrBytes);
      assert.equal(c.keys.integI.length, integBytes);
      assert.equal(p.left.sas[0]!.attrs!.group, 20);
    });
  }

  it('takes the first transform of the offer the responder accepts', async function () {
    const p = new V1Peers(v1Config('left', { proposals: 'aes256-sha512-ecp521, aes128-sha256-modp2048' }), v1Config('right', { proposals: 'aes128-sha256-modp2048, aes256-sha512-ecp521' }));
    await p.establish();
    assert.equal(p.right.sas[0]!.attrs!.group, 21);
    assert.equal(p.left.sas[0]!.attrs!.keyLength, 256);
  });

  it('answers MM1 with NO_PROPOSAL_CHOSEN when no transform fits', async function () {
    const p = new V1Peers(v1Config('left', { proposals: 'aes128-sha1-modp2048' }), v1Config('right', { proposals: 'aes256-sha512-ecp384' }));
    const up = p.left.initiateAndWait('demo', 30_000);
    up.catch(() => undefined);
    await p.settle();
    await assert.rejects(up, /NO_PROPOSAL_CHOSEN/);
    assert.equal(p.right.sas.length, 0);
  });

  it('honours a shorter responder lifetime for phase 1 and Quick Mode (RESPONDER-LIFETIME)', async function () {
    const p = new V1Peers(v1Config('left'), v1Config('right', { extra: '    lifetime: 2000s\n    rekey_time: 1800s\n', child: '        lifetime: 1000s\n        rekey_time: 900s\n' }));
    await p.establish();
    assert.equal(p.left.sas[0]!.lifetime, 2000);
    assert.equal(p.right.sas[0]!.lifetime, 2000);
    assert.equal(p.left.sas[0]!.children[0]!.config.lifetime, 1000);
    assert.equal(p.right.sas[0]!.children[0]!.config.lifetime, 1000);
    assert.ok(p.lines.some((l) => /peer shortens CHILD_SA net lifetime to 1000s \(RESPONDER-LIFETIME\)/.test(l)), p.dump());
    assert.ok(p.lines.some((l) => /peer shortens the ISAKMP SA lifetime to 2000s/.test(l)), p.dump());
  });

  it('Quick Mode at the child\'s lifetime replaces the pair and deletes the old one on both sides', async function () {
    const child = '        lifetime: 120s\n        rekey_time: 100s\n';
    const p = new V1Peers(v1Config('left', { child }), v1Config('right', { child }));
    await p.establish();
    const old = p.left.sas[0]!.children[0]!;
    await p.advance(105_000, 1000);
    const [l] = p.left.sas, [r] = p.right.sas;
    assert.equal(l!.children.length, 1, p.dump());
    assert.notEqual(l!.children[0]!.spiIn, old.spiIn);
    assert.equal(r!.children.length, 1);
    assert.equal(r!.children[0]!.spiOut, l!.children[0]!.spiIn);
    assert.equal(p.dpL.sas.size, 2);
    assert.equal(p.dpR.sas.size, 2);
  });

  it('narrows the initiator\'s client IDs to the responder\'s selectors', async function () {
    const p = new V1Peers(v1Config('left', { localTs: '10.1.0.0/16' }), v1Config('right'));
    await p.establish();
    const c = p.left.sas[0]!.children[0]!;
    assert.equal(c.localTs[0]!.startAddr.toString('hex'), '0a010000');
    assert.equal(c.localTs[0]!.endAddr.toString('hex'), '0a0100ff');
  });

  it('refuses client IDs outside every child with INVALID_ID_INFORMATION; the ISAKMP SA stays', async function () {
    const p = new V1Peers(v1Config('left', { remoteTs: '10.9.0.0/24' }), v1Config('right'));
    const up = p.left.initiateAndWait('demo', 30_000);
    up.catch(() => undefined);
    await p.settle();
    await assert.rejects(up, /INVALID_ID_INFORMATION/);
    assert.equal(p.left.sas[0]!.state, 'ESTABLISHED');
    assert.equal(p.right.sas[0]!.children.length, 0);
  });

  it('with forced encapsulation both sides see a NAT, float to 4500 and use UDP-encapsulated tunnel mode', async function () {
    const p = new V1Peers(v1Config('left', { extra: '    encap: yes\n' }), v1Config('right'));
    await p.establish();
    assertPair(p);
    const [l] = p.left.sas, [r] = p.right.sas;
    assert.deepEqual(r!.nat, { local: false, remote: true });
    assert.equal(l!.local.port, 4500);
    assert.equal(r!.local.port, 4500);
    assert.equal(r!.remote.port, 4500);
    assert.equal(l!.children[0]!.encap, true);
    assert.equal(r!.children[0]!.encap, true);
    assert.equal(p.dpR.sas.get(`in:${r!.children[0]!.spiIn}`)!.encap, true);
    // MM5 on went to 4500.
    assert.deepEqual(p.wire.slice(4).map((w) => w.to.port), Array(p.wire.length - 4).fill(4500));
  });

  it('lists phase 1 and phase 2 state for `styx list`', async function () {
    const p = new V1Peers();
    // Nothing answers: the listing shows where phase 1 stands.
    p.tap = () => null;
    const up = p.left.initiateAndWait('demo', 60_000);
    up.catch(() => undefined);
    await p.settle();
    const connecting = await p.left.describe(p.left.sas[0]!);
    assert.equal(connecting.state, 'MAIN_I1');
    assert.equal(connecting.version, 1);
    assert.equal(connecting.spiR, '0000000000000000');
    p.tap = (d) => d;
    await p.advance(1500);
    await up;
    const info = await p.left.describe(p.left.sas[0]!);
    assert.equal(info.state, 'ESTABLISHED');
    assert.equal(info.spiI, p.left.sas[0]!.cookieI.toString('hex'));
    assert.deepEqual(info.algorithms, { encr: 'AES_CBC_128', integ: null, prf: 'PRF_HMAC_SHA2_256', dh: 'MODP_2048' });
    assert.equal(info.local.id, 'left.example');
    assert.equal(info.remote.id, 'right.example');
    assert.equal(info.children.length, 1);
    assert.equal(info.children[0]!.state, 'INSTALLED');
    assert.deepEqual(info.children[0]!.localTs, ['10.1.0.0/24']);
    assert.equal(info.children[0]!.algorithms.integ, 'HMAC_SHA2_256_128');
    const rinfo = await p.right.describe(p.right.sas[0]!);
    assert.equal(rinfo.initiator, false);
    assert.equal(rinfo.children[0]!.spiIn, info.children[0]!.spiOut);
  });

  it('a QM responder waiting for QM3 lists the pair as QUICK_R1', async function () {
    const p = new V1Peers();
    let qm = 0;
    p.tap = (d, from) => (from.address === LEFT.address && decodeIsakmpHeader(d).exchangeType === V1ExchangeType.QUICK && ++qm === 2 ? null : d);
    const up = p.left.initiateAndWait('demo', 60_000);
    up.catch(() => undefined);
    await p.settle();
    const r = await p.right.describe(p.right.sas[0]!);
    assert.equal(r.children.length, 1);
    assert.equal(r.children[0]!.state, 'QUICK_R1');
    await up;
  });
});
