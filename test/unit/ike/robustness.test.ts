/**
 * Bad input against a running responder: every message of the OpenIKED fuzz
 * corpus, and mutations of real messages, must be dropped or answered without
 * an exception, an unhandled rejection, or harm to an established SA.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TwoPeers, LEFT, RIGHT } from './two-peers.js';
import { ExchangeType } from '../../../src/wire/ikev2/constants.js';
import { CORPUS_SIZE, corpus } from '../corpus.js';

async function established(): Promise<TwoPeers> {
  const p = new TwoPeers();
  const up = p.left.initiateAndWait('demo', 30_000);
  await p.settle();
  await up;
  return p;
}

/** Rejections that escape the code under test would otherwise only print a warning. */
function trackRejections(): { stop(): unknown[] } {
  const seen: unknown[] = [];
  const on = (e: unknown): void => { seen.push(e); };
  process.on('unhandledRejection', on);
  return { stop: () => { process.off('unhandledRejection', on); return seen; } };
}

async function stillAlive(p: TwoPeers): Promise<void> {
  const l = p.left.sas[0]!, r = p.right.sas.find((s) => s.spiI.equals(l.spiI))!;
  assert.equal(r.state, 'ESTABLISHED');
  assert.equal(r.children.length, 1);
  const answered = new Promise<void>((resolve) => l.request(ExchangeType.INFORMATIONAL, [], async () => resolve()));
  await p.settle();
  await answered;
}

describe('ike/v2 responder robustness', function () {
  this.timeout(300_000);

  it('survives every message of the OpenIKED fuzz corpus, as sent and aimed at an established SA', async () => {
    const p = await established();
    const sa = p.right.sas[0]!;
    const rej = trackRejections();
    let n = 0;
    for (const f of corpus()) {
      n++;
      p.right.receive(Buffer.from(f.data), RIGHT, LEFT);
      // The same bytes with the established SA's SPIs, so they reach decryption and message-ID checks.
      if (f.data.length >= 28) {
        const aimed = Buffer.from(f.data);
        sa.spiI.copy(aimed, 0); sa.spiR.copy(aimed, 8);
        aimed[19] = (aimed[19]! | 0x08) & ~0x20;
        p.right.receive(aimed, RIGHT, LEFT);
      }
      if (n % 500 === 0) await p.settle();
    }
    await p.settle();
    assert.equal(n, CORPUS_SIZE);
    assert.deepEqual(rej.stop(), []);
    assert.ok(p.right.counters.malformed > 0);
    assert.ok(p.lines.some((l) => /dropped message from 192\.0\.2\.1:500: malformed/.test(l)));
    await stillAlive(p);
  });

  it('survives mutated real messages (property test)', async () => {
    const p = await established();
    const real = p.wire.map((w) => w.data);
    const rej = trackRejections();
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: real.length - 1 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'set', 'cut', 'insert', 'len')), { minLength: 1, maxLength: 6 }),
      async (which, edits) => {
        let m = Buffer.from(real[which]!);
        for (const [pos, val, op] of edits) {
          const at = m.length ? pos % m.length : 0;
          if (op === 'flip' && m.length) m[at]! ^= 1 << (val & 7);
          else if (op === 'set' && m.length) m[at] = val;
          else if (op === 'cut') m = m.subarray(0, at);
          else if (op === 'insert') m = Buffer.concat([m.subarray(0, at), Buffer.from([val]), m.subarray(at)]);
          else if (op === 'len' && m.length >= 28) m.writeUInt32BE((m.readUInt32BE(24) + val - 128) >>> 0, 24);
        }
        p.right.receive(m, RIGHT, LEFT);
        p.left.receive(m, LEFT, RIGHT);
        await p.settle();
      }), { numRuns: 1500, seed: 0x57 });
    assert.deepEqual(rej.stop(), []);
    await stillAlive(p);
  });
});
