import assert from 'node:assert/strict';
import { ByteReader, ByteWriter, TruncatedError, fromHex } from '../../../src/util/index.js';

describe('util/bytes', () => {
  it('reads big-endian integers and bytes', () => {
    const r = new ByteReader(fromHex('01 0203 04050607 0809'));
    assert.equal(r.u8(), 1);
    assert.equal(r.u16(), 0x0203);
    assert.equal(r.u32(), 0x04050607);
    assert.deepEqual(r.bytes(2), Buffer.from([8, 9]));
    assert.ok(r.atEnd);
  });
  it('throws TruncatedError instead of returning a short slice', () => {
    const r = new ByteReader(fromHex('0102'));
    assert.throws(() => r.u32(), TruncatedError);
    assert.throws(() => r.bytes(3), TruncatedError);
    assert.equal(r.u16(), 0x0102);
  });
  it('sub-readers are bounded', () => {
    const r = new ByteReader(fromHex('0102030405'));
    const s = r.sub(2);
    assert.equal(s.u16(), 0x0102);
    assert.throws(() => s.u8(), TruncatedError);
    assert.equal(r.u8(), 3);
  });
  it('writer back-patches lengths', () => {
    const w = new ByteWriter(2);
    const at = w.mark16();
    w.bytes(Buffer.alloc(300, 7));
    w.patch16(at, w.length);
    const out = w.finish();
    assert.equal(out.length, 302);
    assert.equal(out.readUInt16BE(0), 302);
  });
});
