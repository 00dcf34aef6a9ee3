/**
 * IKEv2 fragmentation (RFC 7383): the splitter and the reassembler on their
 * own with real SK ciphers, then two in-process peers with a small fragment
 * size and RSA-3072 certificates so IKE_AUTH must split: fragments on the
 * wire, a lost fragment retransmitted, forged fragments dropped without
 * disturbing what was stored, a retransmitted request answered once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSkCipher } from '../../../src/crypto/index.js';
import { encrKeyBytes, integInfo } from '../../../src/crypto/registry.js';
import type { SkCipher } from '../../../src/crypto/api.js';
import { encodeFragments, FragmentError, fragmentCapacity, maxMessageSize, Reassembler } from '../../../src/ike/v2/fragments.js';
import { IntegrityError } from '../../../src/util/errors.js';
import { decodeMessage, EncrId, ExchangeType, IntegId, PayloadType } from '../../../src/wire/ikev2/index.js';
import type { HeaderInit, IkeMessage, SkfPayload } from '../../../src/wire/ikev2/index.js';
import { TwoPeers, peerConfig, type Tap } from './two-peers.js';

const PKI = fileURLToPath(new URL('../../../../certs/pki/', import.meta.url));
const pki = (f: string): string => join(PKI, f);

/** Sealing and opening ends of one direction. */
function cipherPair(encr: { id: number; keyLength: number }, integ: number): { out: SkCipher; in: SkCipher } {
  const ek = randomBytes(encrKeyBytes(encr.id, encr.keyLength));
  const ik = integ ? randomBytes(integInfo(integ).keyBytes) : null;
  return { out: createSkCipher(encr, integ, ek, ik), in: createSkCipher(encr, integ, ek, ik) };
}

const SUITES = [
  { name: 'AES-CBC-128/HMAC-SHA2-256', encr: { id: EncrId.ENCR_AES_CBC, keyLength: 128 }, integ: IntegId.AUTH_HMAC_SHA2_256_128 },
  { name: 'AES-GCM-16-256', encr: { id: EncrId.ENCR_AES_GCM_16, keyLength: 256 }, integ: IntegId.NONE },
  { name: 'ChaCha20-Poly1305', encr: { id: EncrId.ENCR_CHACHA20_POLY1305, keyLength: 0 }, integ: IntegId.NONE },
];

const HDR: HeaderInit = {
  spiI: Buffer.from('0102030405060708', 'hex'), spiR: Buffer.from('1112131415161718', 'hex'),
  exchangeType: ExchangeType.IKE_AUTH, flags: { initiator: true, response: false, version: false }, messageId: 1,
};

const skfOf = (m: IkeMessage): SkfPayload => {
  const f = m.payloads.find((p): p is SkfPayload => p.type === PayloadType.SKF);
  assert.ok(f, 'an SKF payload');
  return f;
};

describe('ike/v2 fragments: splitting and reassembly (RFC 7383 2.5, 2.6)', () => {
  for (const s of SUITES) {
    it(`${s.name}: every fragment fits, only the first names the inner payload, any order reassembles the original`, () => {
      const { out, in: inn } = cipherPair(s.encr, s.integ);
      for (const size of [256, 576, 1280]) {
        const max = maxMessageSize(size, false);
        const inner = { firstType: PayloadType.IDi, bytes: randomBytes(5000) };
        const frags = encodeFragments(HDR, inner, out, max);
        assert.equal(frags.length, Math.ceil(5000 / fragmentCapacity(out, max)));
        const msgs = frags.map((f) => decodeMessage(f));
        frags.forEach((f, i) => {
          assert.ok(f.length <= max, `fragment ${i + 1} is ${f.length} > ${max}`);
          assert.equal(skfOf(msgs[i]!).fragmentNumber, i + 1);
          assert.equal(skfOf(msgs[i]!).totalFragments, frags.length);
          assert.equal(skfOf(msgs[i]!).innerFirst, i === 0 ? PayloadType.IDi : 0);
          assert.equal(msgs[i]!.header.messageId, 1);
        });
        // The datagram size the fragment size names: IPv4 + UDP + non-ESP marker around each message.
        assert.equal(max, size - 20 - 8 - 4);
        const r = new Reassembler();
        const order = [...msgs.keys()].reverse();
        let done;
        for (const i of order) done = r.add(false, 1, skfOf(msgs[i]!), frags[i]!, inn, 0);
        assert.ok(done && done.kind === 'complete');
        assert.equal(done.firstType, PayloadType.IDi);
        assert.ok(done.plain.equals(inner.bytes));
        assert.deepEqual(done.packets, frags);
      }
    });
  }

  it('authenticates each fragment before keeping it: a forged one throws and leaves the stored fragments alone', () => {
    const { out, in: inn } = cipherPair(SUITES[0]!.encr, SUITES[0]!.integ);
    const frags = encodeFragments(HDR, { firstType: PayloadType.IDi, bytes: randomBytes(2000) }, out, 400);
    assert.ok(frags.length >= 5);
    const r = new Reassembler();
    assert.deepEqual(r.add(false, 1, skfOf(decodeMessage(frags[0]!)), frags[0]!, inn, 0), { kind: 'partial', have: 1, total: frags.length });
    // Flipped ciphertext, and a Total Fragments raised by one (which, if believed, would throw away fragment 1).
    const flipped = Buffer.from(frags[1]!); flipped[flipped.length - 30]! ^= 0x01;
    const moreTotal = Buffer.from(frags[1]!); moreTotal.writeUInt16BE(frags.length + 1, 34);
    for (const forged of [flipped, moreTotal]) {
      assert.throws(() => r.add(false, 1, skfOf(decodeMessage(forged)), forged, inn, 0), IntegrityError);
      assert.deepEqual(r.pending(false), { messageId: 1, have: 1, total: frags.length });
    }
    assert.deepEqual(r.add(false, 1, skfOf(decodeMessage(frags[0]!)), frags[0]!, inn, 0), { kind: 'duplicate' });
  });

  it('starts over when the sender re-fragments into more pieces, and ignores leftovers of the earlier transmission', () => {
    const { out, in: inn } = cipherPair(SUITES[1]!.encr, SUITES[1]!.integ);
    const bytes = randomBytes(3000);
    const big = encodeFragments(HDR, { firstType: PayloadType.IDi, bytes }, out, 1200);
    const small = encodeFragments(HDR, { firstType: PayloadType.IDi, bytes }, out, 500);
    assert.ok(small.length > big.length);
    const r = new Reassembler();
    r.add(false, 1, skfOf(decodeMessage(big[0]!)), big[0]!, inn, 0);
    let res = r.add(false, 1, skfOf(decodeMessage(small[0]!)), small[0]!, inn, 0);
    assert.deepEqual(res, { kind: 'partial', have: 1, total: small.length });
    assert.deepEqual(r.add(false, 1, skfOf(decodeMessage(big[1]!)), big[1]!, inn, 0), { kind: 'stale', total: big.length });
    for (const f of small.slice(1)) res = r.add(false, 1, skfOf(decodeMessage(f)), f, inn, 0);
    assert.ok(res.kind === 'complete' && res.plain.equals(bytes));
  });

  it('limits the number of fragments, the reassembled size and the time a message may stay incomplete', () => {
    const { out, in: inn } = cipherPair(SUITES[2]!.encr, SUITES[2]!.integ);
    const frags = encodeFragments(HDR, { firstType: PayloadType.IDi, bytes: randomBytes(3000) }, out, 300);
    const first = (): [SkfPayload, Buffer] => [skfOf(decodeMessage(frags[0]!)), frags[0]!];
    assert.throws(() => new Reassembler({ maxFragments: frags.length - 1, maxBytes: 1 << 20, timeoutMs: 1000 }).add(false, 1, ...first(), inn, 0), FragmentError);
    const small = new Reassembler({ maxFragments: 64, maxBytes: 1000, timeoutMs: 1000 });
    assert.throws(() => { for (const f of frags) small.add(false, 1, skfOf(decodeMessage(f)), f, inn, 0); }, /exceed 1000 octets/);
    assert.equal(small.pending(false), null, 'the oversized message is dropped');
    const slow = new Reassembler({ maxFragments: 64, maxBytes: 1 << 20, timeoutMs: 1000 });
    slow.add(false, 1, ...first(), inn, 0);
    slow.add(false, 1, skfOf(decodeMessage(frags[1]!)), frags[1]!, inn, 500);
    // Past the deadline the old pieces are gone: fragment 3 starts a new set rather than joining them.
    assert.deepEqual(slow.add(false, 1, skfOf(decodeMessage(frags[2]!)), frags[2]!, inn, 1501), { kind: 'partial', have: 1, total: frags.length });
  });
});

// ---------------------------------------------------------------------------

const certSide = (name: string, cert = `${name}.pem`): string => `{ auth: pubkey, cert: ${pki(cert)}, key: ${pki(`${name}.key.pem`)} }`;
const trusting = `{ auth: pubkey, cacerts: [${pki('root-ca.pem')}], crls: [${pki('intermediate-ca.crl.pem')}] }`;
/** RSA-3072 with its intermediate on both sides and the root alone trusted: two certificates in every IKE_AUTH message. */
function fragPeers(leftSize: number | null, rightSize: number | null, leftFrag = true): TwoPeers {
  const extra = (size: number | null, on: boolean): string => `${size !== null ? `    fragment_size: ${size}\n` : ''}${on ? '' : '    fragmentation: no\n'}`;
  return new TwoPeers(
    peerConfig('left', { local: certSide('moon', 'moon.chain.pem'), remote: trusting, extra: extra(leftSize, leftFrag) }),
    peerConfig('right', { local: certSide('moon', 'moon.chain.pem'), remote: trusting, extra: extra(rightSize, true) }),
  );
}

interface OnWire { fragment: number; total: number; length: number; response: boolean }
function authOnWire(p: TwoPeers): OnWire[] {
  return p.wire.map((w) => ({ w, m: decodeMessage(w.data) })).filter(({ m }) => m.header.exchangeType === ExchangeType.IKE_AUTH).map(({ w, m }) => {
    const f = m.payloads.find((x): x is SkfPayload => x.type === PayloadType.SKF);
    return { fragment: f?.fragmentNumber ?? 0, total: f?.totalFragments ?? 0, length: w.data.length, response: m.header.flags.response };
  });
}

/** A tap acting once on the IKE_AUTH fragment number `n` in one direction. */
function onceOnFragment(response: boolean, n: number, act: (d: Buffer) => Buffer | null): Tap & { fired: boolean } {
  const tap = Object.assign((d: Buffer): Buffer | null => {
    const m = decodeMessage(d);
    const f = m.payloads.find((x): x is SkfPayload => x.type === PayloadType.SKF);
    if (tap.fired || m.header.exchangeType !== ExchangeType.IKE_AUTH || m.header.flags.response !== response || f?.fragmentNumber !== n) return d;
    tap.fired = true;
    return act(d);
  }, { fired: false });
  return tap;
}

/** Certificates load and RSA signs off the event loop, so the network can be quiet before a step is done: wait for the state itself. */
async function until(p: TwoPeers, what: string, pred: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    await p.settle();
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

function assertUp(p: TwoPeers): void {
  const [l] = p.left.sas, [r] = p.right.sas;
  assert.ok(l && r && l.state === 'ESTABLISHED' && r.state === 'ESTABLISHED', p.lines.slice(-15).join('\n'));
  assert.deepEqual(l.children[0]!.keys, r.children[0]!.keys);
}

describe('ike/v2 fragmentation between two in-process peers', function () {
  this.timeout(20_000);

  it('splits IKE_AUTH in both directions at a small fragment size and reassembles it', async () => {
    const p = fragPeers(576, 576);
    const up = p.left.initiateAndWait('demo', 30_000);
    await p.settle();
    await up;
    assertUp(p);
    const seen = authOnWire(p);
    const req = seen.filter((x) => !x.response), resp = seen.filter((x) => x.response);
    assert.ok(req.length >= 4 && resp.length >= 4, JSON.stringify(seen));
    for (const x of seen) {
      assert.ok(x.fragment >= 1 && x.total === (x.response ? resp : req).length, JSON.stringify(x));
      assert.ok(x.length <= maxMessageSize(576, false), `${x.length} octets`);
    }
    assert.ok(p.lines.some((x) => new RegExp(`IKE_AUTH request 1 \\(\\d+ octets\\) split into ${req.length} fragments of at most 544 octets`).test(x)));
    assert.ok(p.lines.some((x) => new RegExp(`reassembled IKE_AUTH response 1 from ${resp.length} fragments`).test(x)));
  });

  it('retransmits every fragment when one is lost, and the receiver ignores the copies it already holds', async () => {
    const p = fragPeers(576, 576);
    const tap = p.tap = onceOnFragment(false, 2, () => null);
    const up = p.left.initiateAndWait('demo', 30_000);
    const total = (): number => authOnWire(p).filter((x) => !x.response).length;
    await until(p, 'all but one fragment at the responder', () => tap.fired && p.right.sas[0]?.reassembly.pending(false)?.have === total() - 1);
    await p.advance(1500);
    await up;
    assertUp(p);
    const req = authOnWire(p).filter((x) => !x.response);
    assert.equal(req.length % 2, 0, 'the request went out twice, whole');
    assert.ok(p.lines.some((x) => /retransmit 1 of IKE_AUTH request 1/.test(x)));
    assert.ok(p.lines.some((x) => /ignored duplicate fragment 1\/\d+ of IKE_AUTH request 1/.test(x)));
  });

  it('drops a forged fragment (integrity check) and completes with the genuine one', async () => {
    const p = fragPeers(576, 576);
    p.tap = onceOnFragment(false, 2, (d) => { const f = Buffer.from(d); f[f.length - 40]! ^= 0x80; return f; });
    const up = p.left.initiateAndWait('demo', 30_000);
    await until(p, 'the forged fragment', () => p.right.counters.integrityFailures > 0 && authOnWire(p).length > 3);
    assert.equal(p.right.counters.integrityFailures, 1);
    const total = authOnWire(p).filter((x) => !x.response).length;
    assert.deepEqual(p.right.sas[0]!.reassembly.pending(false), { messageId: 1, have: total - 1, total }, 'the forged fragment was not kept');
    assert.ok(p.lines.some((x) => /dropped fragment 2\/\d+ of IKE_AUTH request 1: integrity check failed/.test(x)), p.lines.join('\n'));
    assert.equal(p.right.sas[0]!.state, 'CONNECTING');
    await p.advance(1500);
    await up;
    assertUp(p);
  });

  it('answers a retransmitted fragmented request once, with every fragment of the cached response', async () => {
    const p = fragPeers(576, 576);
    // The first fragment of the response is lost: the initiator retransmits its whole request.
    let respTotal = 0;
    const tap = p.tap = onceOnFragment(true, 1, (d) => { respTotal = decodeMessage(d).payloads.find((x): x is SkfPayload => x.type === PayloadType.SKF)!.totalFragments; return null; });
    const up = p.left.initiateAndWait('demo', 30_000);
    await until(p, 'the rest of the response at the initiator', () => tap.fired && p.left.sas[0]?.reassembly.pending(true)?.have === respTotal - 1);
    assert.equal(p.left.sas[0]!.state, 'CONNECTING');
    await p.advance(1500);
    await up;
    assertUp(p);
    assert.equal(p.right.counters.retransmitsAnswered, 1, 'once per retransmitted message, not once per fragment');
    assert.equal(authOnWire(p).filter((x) => x.response).length, 2 * respTotal);
  });

  it('sends whole messages when the peer did not announce fragmentation', async () => {
    const p = fragPeers(576, 576, false);
    const up = p.left.initiateAndWait('demo', 30_000);
    await p.settle();
    await up;
    assertUp(p);
    assert.ok(authOnWire(p).every((x) => x.fragment === 0 && x.length > maxMessageSize(576, false)));
    assert.deepEqual([p.left.sas[0]!.fragmentation, p.right.sas[0]!.fragmentation], [{ ours: false, peer: true }, { ours: true, peer: false }]);
  });
});
