/** RFC 7296 3.1 header decoding, the version error, and the SK/SKF AAD prefixes. */
import assert from 'node:assert/strict';
import {
  ExchangeType, PayloadType, VersionError, decodeHeader, decodeMessage, encodeMessage, encodeSkPrefix, encodeSkfPrefix, notify,
} from '../../../src/wire/ikev2/index.js';
import type { HeaderInit } from '../../../src/wire/ikev2/index.js';
import { MalformedError, StyxError, TruncatedError, attempt, fromHex } from '../../../src/util/index.js';

const h: HeaderInit = {
  spiI: fromHex('a1a2a3a4a5a6a7a8'), spiR: fromHex('b1b2b3b4b5b6b7b8'), exchangeType: ExchangeType.IKE_AUTH,
  flags: { initiator: true, response: false, version: false }, messageId: 0x01020304,
};
// Written from the 3.1 diagram: SPIs, next 46, version 0x20, exchange 35, flags 0x08, message ID, length 32 + body.
const handHeader = (len: number): string => `a1a2a3a4a5a6a7a8 b1b2b3b4b5b6b7b8 2e 20 23 08 01020304 ${len.toString(16).padStart(8, '0')}`;

describe('wire/ikev2 header', () => {
  it('decodes every field', () => {
    const buf = fromHex('a1a2a3a4a5a6a7a8 b1b2b3b4b5b6b7b8 21 2f 22 38 fffffffe 0000001c');
    assert.deepEqual(decodeHeader(buf), {
      spiI: fromHex('a1a2a3a4a5a6a7a8'), spiR: fromHex('b1b2b3b4b5b6b7b8'), nextPayload: 33, majorVersion: 2, minorVersion: 15,
      exchangeType: 34, flags: { initiator: true, response: true, version: true }, messageId: 0xfffffffe, length: 28,
    });
  });

  it('length field must equal the datagram length', () => {
    const ok = fromHex('0000000000000001 0000000000000000 00 20 25 08 00000000 0000001c');
    assert.equal(decodeHeader(ok).length, 28);
    assert.throws(() => decodeHeader(Buffer.concat([ok, Buffer.alloc(1)])), /malformed IKE header: length field 28 but 29 bytes received/);
    const long = Buffer.from(ok);
    long.writeUInt32BE(29, 24);
    assert.throws(() => decodeHeader(long), TruncatedError);
    const short = Buffer.from(ok);
    short.writeUInt32BE(27, 24);
    assert.throws(() => decodeHeader(short), /length field 27 < 28/);
    assert.throws(() => decodeHeader(ok.subarray(0, 27)), TruncatedError);
  });

  it('a major version other than 2 is a VersionError carrying what a reply needs', () => {
    const v3 = fromHex('a1a2a3a4a5a6a7a8 0000000000000000 21 30 22 08 00000000 00000000'); // length is not even checked
    const r = attempt(() => decodeMessage(v3));
    assert.ok(!r.ok);
    const e = r.error;
    assert.ok(e instanceof VersionError && e instanceof MalformedError && e instanceof StyxError);
    assert.equal(e.code, 'ERR_VERSION');
    assert.deepEqual([e.major, e.minor, e.exchangeType, e.messageId, e.response], [3, 0, 34, 0, false]);
    assert.deepEqual(e.spiI, fromHex('a1a2a3a4a5a6a7a8'));
    const v1 = Buffer.from(v3);
    v1[17] = 0x10;
    assert.throws(() => decodeHeader(v1), (x: unknown) => x instanceof VersionError && x.major === 1);
  });

  it('encodeMessage fills version, next payload and length', () => {
    const msg = encodeMessage({ ...h, flags: { initiator: false, response: true, version: true } }, [notify(16384)]);
    assert.deepEqual(msg.subarray(16, 28), fromHex('29 20 23 30 01020304 00000024'));
    assert.equal(encodeMessage(h, []).toString('hex'), fromHex('a1a2a3a4a5a6a7a8 b1b2b3b4b5b6b7b8 00 20 23 08 01020304 0000001c').toString('hex'));
    assert.throws(() => encodeMessage({ ...h, spiI: fromHex('01') }, []), /initiator SPI must be 8 bytes/);
    assert.throws(() => encodeMessage({ ...h, messageId: 2 ** 32 }, []), /message ID 4294967296 does not fit/);
    assert.throws(() => encodeMessage({ ...h, exchangeType: 256 }, []), /exchange type 256 does not fit/);
  });

  it('encodeSkPrefix is the 32-byte AAD of a message whose only payload is SK', () => {
    const pre = encodeSkPrefix(h, PayloadType.IDi, 100);
    assert.deepEqual(pre, fromHex(`${handHeader(132)} 23 00 0068`));
    // Appending a body gives a message the decoder accepts, with aad equal to the prefix.
    const body = Buffer.alloc(100, 0x5a);
    const m = decodeMessage(Buffer.concat([pre, body]));
    assert.deepEqual(m.payloads, [{ type: PayloadType.SK, critical: false, innerFirst: PayloadType.IDi, body, aad: pre }]);
    assert.throws(() => encodeSkPrefix(h, 0, 0), MalformedError);
    assert.throws(() => encodeSkPrefix(h, 0, 65532), /does not fit/);
  });

  it('encodeSkfPrefix (RFC 7383 2.5)', () => {
    const pre = encodeSkfPrefix(h, PayloadType.IDi, 1, 3, 50);
    assert.deepEqual(pre, fromHex('a1a2a3a4a5a6a7a8 b1b2b3b4b5b6b7b8 35 20 23 08 01020304 00000056 23 00 003a 0001 0003'));
    const body = Buffer.alloc(50, 1);
    const m = decodeMessage(Buffer.concat([pre, body]));
    assert.deepEqual(m.payloads, [{ type: PayloadType.SKF, critical: false, innerFirst: 35, fragmentNumber: 1, totalFragments: 3, body, aad: pre }]);
    assert.throws(() => encodeSkfPrefix(h, PayloadType.IDi, 2, 3, 50), /only fragment 1/);
    assert.throws(() => encodeSkfPrefix(h, 0, 4, 3, 50), /fragment 4 of 3/);
    assert.throws(() => encodeSkfPrefix(h, 0, 0, 3, 50), /fragment 0 of 3/);
  });
});
