import assert from 'node:assert/strict';
import { createTunPair, type TunDevice } from '../../../src/tun/index.js';
import { udp4 } from './packets.js';

function nextBatch(dev: TunDevice): Promise<Buffer[]> {
  return new Promise((resolve) => dev.onPackets(resolve));
}

const pkt = (i: number, size = 64): Buffer => udp4('10.99.0.2', 40000, '10.99.0.1', 9, Buffer.alloc(size - 28, i));

describe('tun/memory: in-memory TUN pair', () => {
  it('what one side writes arrives on the other, asynchronously, as one batch', async () => {
    const [a, b] = createTunPair();
    let inWrite = true;
    let deliveredInWrite = false;
    const batch = new Promise<Buffer[]>((res) => b.onPackets((pkts) => { deliveredInWrite = inWrite; res(pkts); }));
    assert.equal(a.write([pkt(1), pkt(2), pkt(3)]), 3);
    inWrite = false;
    assert.deepEqual(await batch, [pkt(1), pkt(2), pkt(3)]);
    assert.equal(deliveredInWrite, false);
    assert.equal(a.written.length, 3);
  });

  it('works both ways and keeps the order', async () => {
    const [a, b] = createTunPair();
    const toA = nextBatch(a);
    const toB = nextBatch(b);
    b.write([pkt(9)]);
    a.write([pkt(7), pkt(8)]);
    assert.deepEqual(await toA, [pkt(9)]);
    assert.deepEqual(await toB, [pkt(7), pkt(8)]);
  });

  it('caps batches at batchSize', async () => {
    const [a, b] = createTunPair({ batchSize: 4 });
    const sizes: number[] = [];
    const seen: number[] = [];
    const done = new Promise<void>((res) => b.onPackets((pkts) => {
      sizes.push(pkts.length);
      for (const p of pkts) seen.push(p[28]!);
      if (seen.length === 10) res();
    }));
    a.write(Array.from({ length: 10 }, (_, i) => pkt(i)));
    await done;
    assert.deepEqual(sizes, [4, 4, 2]);
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('copies on write, so the writer may reuse its buffer', async () => {
    const [a, b] = createTunPair();
    const buf = pkt(1);
    const got = nextBatch(b);
    a.write([buf]);
    buf.fill(0xee);
    const [p] = await got;
    assert.deepEqual(p, pkt(1));
  });

  it('holds packets until a consumer is set', async () => {
    const [a, b] = createTunPair();
    a.write([pkt(1)]);
    await new Promise((r) => setImmediate(r));
    assert.equal(b.pending, 1);
    assert.deepEqual(await nextBatch(b), [pkt(1)]);
    assert.equal(b.pending, 0);
  });

  it('skips packets over the MTU and gives a short count when the peer queue is full', () => {
    const [a, b] = createTunPair({ mtu: 100, queueLimit: 2 });
    assert.equal(a.write([pkt(1, 101), pkt(2), pkt(3), pkt(4)]), 2);
    assert.equal(b.pending, 2);
    assert.equal(a.mtu, 100);
  });

  it('inject() feeds a device directly', async () => {
    const [, b] = createTunPair();
    const got = nextBatch(b);
    b.inject([pkt(5)]);
    assert.deepEqual(await got, [pkt(5)]);
  });

  it('after close, writes throw and nothing more is delivered', async () => {
    const [a, b] = createTunPair({ names: ['left', 'right'] });
    assert.equal(a.name, 'left');
    let delivered = 0;
    b.onPackets(() => delivered++);
    a.write([pkt(1)]);
    await b.close();
    await new Promise((r) => setImmediate(r));
    assert.equal(delivered, 0);
    await a.close();
    assert.throws(() => a.write([pkt(2)]), /closed/);
  });
});
