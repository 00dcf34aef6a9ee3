import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CompiledSelector, OPAQUE_PORT, PolicyTable, buildTransportIPv4, decodeInnerPacket, ipv4HeaderChecksum, matchesOutbound,
} from '../../../src/esp/index.js';
import { MalformedError, TruncatedError } from '../../../src/util/errors.js';
import { ANY4, ipv4HeaderOk, ipv4Icmp, ipv4Udp, ipv6Udp, sel4, sel6, v4, v6 } from './helpers.js';

describe('esp/ip: inner packet selector fields (RFC 4301 4.4.1.1)', () => {
  it('IPv4 UDP: addresses, protocol, ports, length', () => {
    const p = ipv4Udp('10.1.2.3', '10.4.5.6', 1111, 2222, Buffer.alloc(10));
    const r = decodeInnerPacket(Buffer.concat([p, Buffer.alloc(5)]));
    assert.ok(r.ok);
    const x = r.value;
    assert.deepEqual([x.family, x.protocol, x.srcPort, x.dstPort, x.totalLength, x.headerLength, x.fragment], [4, 17, 1111, 2222, 38, 20, false]);
    assert.deepEqual(p.subarray(x.srcAt, x.srcAt + 4), v4('10.1.2.3'));
    assert.deepEqual(p.subarray(x.dstAt, x.dstAt + 4), v4('10.4.5.6'));
  });

  it('ICMP type and code stand in for the ports', () => {
    const r = decodeInnerPacket(ipv4Icmp('10.0.0.1', '10.0.0.2', Buffer.alloc(4)));
    assert.ok(r.ok);
    assert.equal(r.value.srcPort, 8 << 8);
    assert.equal(r.value.dstPort, 8 << 8);
  });

  it('non-initial IPv4 fragments have OPAQUE ports', () => {
    const p = ipv4Udp('10.0.0.1', '10.0.0.2', 1, 2, Buffer.alloc(16));
    p.writeUInt16BE(0x0002, 6); // offset 16 octets
    const r = decodeInnerPacket(p);
    assert.ok(r.ok);
    assert.equal(r.value.srcPort, OPAQUE_PORT);
    assert.equal(r.value.fragment, true);
  });

  it('IPv6: walks extension headers to the upper layer; a later fragment hides the ports', () => {
    const base = ipv6Udp('2001:db8::1', '2001:db8::2', 7, 9, Buffer.alloc(4));
    const udp = base.subarray(40);
    const hop = Buffer.from([44, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop, next = fragment
    const frag = Buffer.from([17, 0, 0, 0, 0, 0, 0, 1]); // offset 0
    const hdr = Buffer.from(base.subarray(0, 40));
    hdr[6] = 0;
    hdr.writeUInt16BE(hop.length + frag.length + udp.length, 4);
    const r = decodeInnerPacket(Buffer.concat([hdr, hop, frag, udp]), 6);
    assert.ok(r.ok);
    assert.deepEqual([r.value.protocol, r.value.srcPort, r.value.dstPort, r.value.headerLength, r.value.fragment], [17, 7, 9, 56, true]);
    frag.writeUInt16BE(8 << 3, 2);
    const later = decodeInnerPacket(Buffer.concat([hdr, hop, frag, udp]), 6);
    assert.ok(later.ok);
    assert.equal(later.value.srcPort, OPAQUE_PORT);
  });

  it('refuses short, inconsistent and mislabelled packets with typed errors', () => {
    const p = ipv4Udp('10.0.0.1', '10.0.0.2', 1, 2, Buffer.alloc(8));
    const cases: [Buffer, typeof TruncatedError | typeof MalformedError][] = [
      [Buffer.alloc(0), TruncatedError],
      [p.subarray(0, 19), TruncatedError],
      [p.subarray(0, p.length - 1), TruncatedError],
      [Buffer.concat([Buffer.from([0x44]), p.subarray(1)]), MalformedError],
      [Buffer.concat([Buffer.from([0x4f]), p.subarray(1)]), TruncatedError],
      [Buffer.concat([Buffer.from([0x55]), p.subarray(1)]), MalformedError],
      [Buffer.concat([Buffer.from([0x75]), p.subarray(1)]), MalformedError],
      [ipv6Udp('::1', '::2', 1, 2, Buffer.alloc(8)).subarray(0, 50), TruncatedError],
    ];
    for (const [b, E] of cases) {
      const r = decodeInnerPacket(b);
      assert.ok(!r.ok && r.error instanceof E, b.toString('hex'));
    }
    const jumbo = ipv6Udp('::1', '::2', 1, 2, Buffer.alloc(8));
    jumbo.writeUInt16BE(0, 4);
    const j = decodeInnerPacket(jumbo);
    assert.ok(!j.ok && j.error instanceof MalformedError);
    const wrongFamily = decodeInnerPacket(p, 6);
    assert.ok(!wrongFamily.ok && wrongFamily.error instanceof MalformedError);
  });

  it('never throws on random input', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), (a) => { decodeInnerPacket(Buffer.from(a)); }), { numRuns: 1000 });
  });

  it('transport mode header: protocol 50, new length and a valid checksum, options kept', () => {
    const inner = ipv4Udp('10.0.0.1', '10.0.0.2', 1, 2, Buffer.alloc(8));
    const esp = Buffer.alloc(50, 7);
    const r = buildTransportIPv4(inner.subarray(0, 20), esp);
    assert.ok(r.ok);
    assert.equal(r.value[9], 50);
    assert.equal(r.value.readUInt16BE(2), 70);
    assert.ok(ipv4HeaderOk(r.value));
    assert.equal(ipv4HeaderChecksum(r.value, 0, 20), 0);
    assert.ok(!buildTransportIPv4(Buffer.alloc(19), esp).ok);
  });
});

describe('esp/selector: matching and policy order', () => {
  it('matches address, protocol and port ranges on the right side', () => {
    const local = new CompiledSelector(sel4('10.1.0.0', '10.1.0.255', 17, 1000, 2000));
    const remote = new CompiledSelector(sel4('10.2.0.7', '10.2.0.7'));
    const p = (src: string, dst: string, sp: number) => {
      const b = ipv4Udp(src, dst, sp, 53, Buffer.alloc(4));
      const r = decodeInnerPacket(b);
      assert.ok(r.ok);
      return matchesOutbound(local, remote, b, r.value);
    };
    assert.equal(p('10.1.0.9', '10.2.0.7', 1500), true);
    assert.equal(p('10.1.1.9', '10.2.0.7', 1500), false);
    assert.equal(p('10.1.0.9', '10.2.0.8', 1500), false);
    assert.equal(p('10.1.0.9', '10.2.0.7', 999), false);
    assert.equal(p('10.2.0.7', '10.1.0.9', 1500), false);
  });

  it('IPv6 ranges compare all 16 octets', () => {
    const s = new CompiledSelector(sel6('2001:db8::100', '2001:db8::1ff'));
    const any = new CompiledSelector(sel6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'));
    for (const [a, want] of [['2001:db8::100', true], ['2001:db8::1ff', true], ['2001:db8::200', false], ['2001:db9::100', false]] as const) {
      const b = ipv6Udp(a, '::1', 1, 2, Buffer.alloc(2));
      const r = decodeInnerPacket(b);
      assert.ok(r.ok);
      assert.equal(matchesOutbound(s, any, b, r.value), want, a);
    }
    assert.deepEqual(v6('2001:db8::1ff').subarray(14), Buffer.from([1, 0xff]));
  });

  it('OPAQUE ports match only selectors that allow any port', () => {
    const b = ipv4Udp('10.0.0.1', '10.0.0.2', 1, 2, Buffer.alloc(16));
    b.writeUInt16BE(0x0002, 6);
    const r = decodeInnerPacket(b);
    assert.ok(r.ok);
    const any = new CompiledSelector(ANY4);
    assert.equal(matchesOutbound(any, any, b, r.value), true);
    assert.equal(matchesOutbound(any, new CompiledSelector(sel4('0.0.0.0', '255.255.255.255', 17, 2, 2)), b, r.value), false);
  });

  it('orders policies most specific first, whatever the insertion order', () => {
    const t = new PolicyTable();
    const pol = (local: ReturnType<typeof sel4>, remote: ReturnType<typeof sel4>, spi: number) => ({ direction: 'out' as const, local, remote, mode: 'tunnel' as const, spi, tunnel: null, tag: '' });
    t.add(pol(ANY4, ANY4, 1));
    t.add(pol(sel4('10.0.0.0', '10.255.255.255'), sel4('10.0.0.0', '10.255.255.255'), 2));
    t.add(pol(sel4('10.0.0.0', '10.255.255.255'), sel4('10.0.0.0', '10.255.255.255', 6), 3));
    t.add(pol(sel4('10.0.0.1', '10.0.0.1'), sel4('10.0.0.2', '10.0.0.2'), 4));
    assert.deepEqual(t.all.map((c) => c.params.spi), [4, 3, 2, 1]);
    const look = (b: Buffer) => { const r = decodeInnerPacket(b); assert.ok(r.ok); return t.lookupOutbound(b, r.value)?.params.spi; };
    assert.equal(look(ipv4Udp('10.0.0.1', '10.0.0.2', 1, 2, Buffer.alloc(0))), 4);
    assert.equal(look(ipv4Udp('10.0.0.1', '10.0.0.3', 1, 2, Buffer.alloc(0))), 2);
    assert.equal(look(ipv4Udp('192.0.2.1', '10.0.0.3', 1, 2, Buffer.alloc(0))), 1);
  });

  it('refuses malformed selectors', () => {
    assert.throws(() => new CompiledSelector({ ...ANY4, startAddr: Buffer.alloc(16) }), MalformedError);
    assert.throws(() => new CompiledSelector(sel4('10.0.0.2', '10.0.0.1')), MalformedError);
    assert.throws(() => new CompiledSelector(sel4('10.0.0.1', '10.0.0.2', 0, 9, 8)), MalformedError);
  });
});
