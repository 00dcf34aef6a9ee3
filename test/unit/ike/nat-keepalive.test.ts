import assert from 'node:assert/strict';
import { NatKeepalive, type KeepaliveTarget } from '../../../src/ike/nat-keepalive.js';
import { LogManager } from '../../../src/util/log.js';
import { ManualClock } from '../../../src/util/timers.js';

describe('ike NAT keepalives (RFC 3948 2.3)', () => {
  const sa = (natLocal: boolean, port: number, state = 'ESTABLISHED'): KeepaliveTarget => ({
    tag: `sa-${natLocal}-${port}`, nat: { local: natLocal }, local: { address: '10.0.0.2', port }, remote: { address: '192.0.2.2', port: 4500 }, state,
  });

  it('sends one 0xFF octet per interval, only from SAs behind a NAT on the NAT-T port', () => {
    const clock = new ManualClock();
    const sent: { data: Buffer; from: number }[] = [];
    const sas = [sa(true, 4500), sa(false, 4500), sa(true, 500), sa(true, 4500, 'DESTROYED')];
    const k = new NatKeepalive(() => sas, (data, local) => sent.push({ data, from: local.port }), 4500, clock, new LogManager(() => undefined).for('net'));
    k.start(20);
    clock.advance(19_999);
    assert.equal(sent.length, 0);
    clock.advance(1);
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0], { data: Buffer.from([0xff]), from: 4500 });
    clock.advance(40_000);
    assert.equal(sent.length, 3);
    assert.equal(k.sent, 3);
    k.stop();
    clock.advance(100_000);
    assert.equal(sent.length, 3);
  });

  it('is off with an interval of 0', () => {
    const clock = new ManualClock();
    let n = 0;
    const k = new NatKeepalive(() => [sa(true, 4500)], () => { n++; }, 4500, clock, new LogManager(() => undefined).for('net'));
    k.start(0);
    clock.advance(1_000_000);
    assert.equal(n, 0);
    assert.equal(clock.pending, 0);
  });
});
