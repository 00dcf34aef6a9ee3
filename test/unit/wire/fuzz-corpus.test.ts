/**
 * The whole OpenIKED parser fuzz corpus (test/fixtures/openiked-corpus/):
 * every input gives a decoded message or a StyxError, never another exception.
 */
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage } from '../../../src/wire/ikev2/index.js';
import { StyxError, attempt } from '../../../src/util/index.js';
import { CORPUS_SIZE, corpus } from '../corpus.js';

/** The harness ignores version and length; set them so the payload parser is reached too. */
function normalised(buf: Buffer): Buffer | undefined {
  if (buf.length < 28) return undefined;
  const b = Buffer.from(buf);
  b[17] = 0x20;
  b.writeUInt32BE(b.length, 24);
  return b;
}

describe('wire/ikev2 OpenIKED fuzz corpus', function () {
  // 31,524 decodes: about 1.5 s on an idle machine, several times that on a busy one.
  this.timeout(60_000);
  const files = corpus();

  it('holds the whole corpus', () => {
    assert.equal(files.length, CORPUS_SIZE);
  });

  it('every input decodes or fails with a StyxError, as-is and with a normalised header', () => {
    const outcomes = new Map<string, number>();
    for (const { name: f, data: raw } of files) {
      for (const buf of [raw, normalised(raw)]) {
        if (buf === undefined) continue;
        let r;
        try {
          r = attempt(() => decodeMessage(buf));
        } catch (e) {
          assert.fail(`${f}: ${String(e)}`); // attempt() rethrows anything that is not a StyxError
        }
        if (r.ok) {
          // Whatever decodes must encode again.
          encodeMessage(r.value.header, r.value.payloads);
          outcomes.set('ok', (outcomes.get('ok') ?? 0) + 1);
        } else {
          assert.ok(r.error instanceof StyxError);
          outcomes.set(r.error.code, (outcomes.get(r.error.code) ?? 0) + 1);
        }
      }
    }
    // The corpus exercises all three outcomes; if one vanished the decoder changed behaviour wholesale.
    assert.ok((outcomes.get('ok') ?? 0) > 0, 'some inputs decode');
    assert.ok((outcomes.get('ERR_MALFORMED') ?? 0) > 1000, 'most normalised inputs are malformed');
    assert.ok((outcomes.get('ERR_VERSION') ?? 0) > 1000, 'most raw inputs fail the version check');
  });
});
