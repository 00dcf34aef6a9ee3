import assert from 'node:assert/strict';
import {
  parseTrafficSelector, formatTrafficSelector, parseIdentity, sameIdentity, ipToBuffer, bufferToIp, ValueError,
} from '../../../src/config/index.js';

const hex = (b: Buffer): string => b.toString('hex');

describe('config/addr', () => {
  it('converts IPv4 and IPv6 addresses to bytes and back', () => {
    assert.equal(hex(ipToBuffer('192.0.2.1')), 'c0000201');
    assert.equal(hex(ipToBuffer('2001:db8::1')), '20010db8000000000000000000000001');
    assert.equal(hex(ipToBuffer('::')), '0'.repeat(32));
    assert.equal(hex(ipToBuffer('::ffff:192.0.2.1')), '00000000000000000000ffffc0000201');
    assert.equal(hex(ipToBuffer('1:2:3:4:5:6:7:8')), '00010002000300040005000600070008');
    assert.equal(hex(ipToBuffer('fe80::')), 'fe80' + '0'.repeat(28));
    assert.equal(bufferToIp(ipToBuffer('2001:0db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1');
    assert.equal(bufferToIp(ipToBuffer('10.1.0.5')), '10.1.0.5');
    assert.throws(() => ipToBuffer('10.1.0.256'), ValueError);
  });

  it('parses IPv4 prefixes, hosts and ranges', () => {
    const a = parseTrafficSelector('10.1.0.0/24', 4);
    assert.equal(a.family, 4);
    assert.equal(a.dynamic, false);
    assert.equal(hex(a.startAddr), '0a010000');
    assert.equal(hex(a.endAddr), '0a0100ff');
    assert.deepEqual([a.protocol, a.startPort, a.endPort], [0, 0, 65535]);
    const h = parseTrafficSelector('10.1.0.5', 4);
    assert.equal(hex(h.startAddr), '0a010005');
    assert.equal(hex(h.endAddr), '0a010005');
    const r = parseTrafficSelector('10.1.0.1-10.1.0.20', 4);
    assert.equal(hex(r.endAddr), '0a010014');
    const odd = parseTrafficSelector('10.0.0.0/9', 4);
    assert.equal(hex(odd.endAddr), '0a7fffff');
  });

  it('parses IPv6 prefixes and protocol/port restrictions', () => {
    const t = parseTrafficSelector('2001:db8:1::/48[tcp/80]', 4);
    assert.equal(t.family, 6);
    assert.equal(hex(t.startAddr), '20010db80001' + '0'.repeat(20));
    assert.equal(hex(t.endAddr), '20010db80001' + 'f'.repeat(20));
    assert.deepEqual([t.protocol, t.startPort, t.endPort], [6, 80, 80]);
    const u = parseTrafficSelector('10.1.0.0/16[udp/1024-65535]', 4);
    assert.deepEqual([u.protocol, u.startPort, u.endPort], [17, 1024, 65535]);
    const n = parseTrafficSelector('10.1.0.0/16[47]', 4);
    assert.deepEqual([n.protocol, n.startPort, n.endPort], [47, 0, 65535]);
    const icmp = parseTrafficSelector('0.0.0.0/0[icmp/8]', 4);
    assert.deepEqual([icmp.protocol, icmp.startPort, icmp.endPort], [1, 0x0800, 0x08ff]);
    const icmp6 = parseTrafficSelector('::/0[icmpv6/128/0]', 4);
    assert.deepEqual([icmp6.protocol, icmp6.startPort, icmp6.endPort], [58, 0x8000, 0x8000]);
    const op = parseTrafficSelector('10.0.0.0/8[udp/opaque]', 4);
    assert.deepEqual([op.startPort, op.endPort], [65535, 0]);
  });

  it('dynamic and bare [proto] take the family given', () => {
    const d = parseTrafficSelector('dynamic', 6);
    assert.equal(d.dynamic, true);
    assert.equal(d.family, 6);
    assert.equal(d.startAddr.length, 16);
    const u = parseTrafficSelector('[udp]', 4);
    assert.equal(u.dynamic, true);
    assert.equal(u.protocol, 17);
    assert.equal(u.startAddr.length, 4);
  });

  it('rejects malformed selectors', () => {
    for (const bad of ['10.1.0.0/33', '10.1.0.1/24', '10.1.0.0/24[tcp/70000]', '10.1.0.0/24[bogus]',
      '10.1.0.0/24[/80]', '10.0.0.9-10.0.0.1', '10.0.0.1-::1', 'moon.example.org', '10.1.0.0/24[tcp/90-80]',
      '2001:db8::/129', '10.1.0.0/24[gre/5]', '']) {
      assert.throws(() => parseTrafficSelector(bad, 4), ValueError, bad);
    }
    assert.throws(() => parseTrafficSelector('10.1.0.1/24', 4), /did you mean 10\.1\.0\.0\/24/);
  });

  it('formats selectors compactly', () => {
    for (const t of ['10.1.0.0/24', '2001:db8::/32[tcp/80]', '10.1.0.1-10.1.0.20', '0.0.0.0/0[icmp/8]',
      '10.0.0.0/8[udp/1024-65535]', '192.0.2.7/32', '::/0[icmpv6/128/0]', '10.0.0.0/8[udp/opaque]']) {
      assert.equal(formatTrafficSelector(parseTrafficSelector(t, 4)), t);
    }
    assert.equal(formatTrafficSelector(parseTrafficSelector('10.1.0.5', 4)), '10.1.0.5/32');
  });

  it('recognises identity types', () => {
    assert.deepEqual(parseIdentity('192.0.2.1'), { type: 'ipv4', value: '192.0.2.1' });
    assert.deepEqual(parseIdentity('2001:DB8::1'), { type: 'ipv6', value: '2001:db8::1' });
    assert.deepEqual(parseIdentity('moon.example.org'), { type: 'fqdn', value: 'moon.example.org' });
    assert.deepEqual(parseIdentity('@moon'), { type: 'fqdn', value: 'moon' });
    assert.deepEqual(parseIdentity('carol@example.org'), { type: 'email', value: 'carol@example.org' });
    assert.deepEqual(parseIdentity('C=CH, O=styx, CN=moon'), { type: 'dn', value: 'C=CH, O=styx, CN=moon' });
    assert.deepEqual(parseIdentity('keyid:0A0b'), { type: 'keyid', value: '0a0b' });
    assert.deepEqual(parseIdentity('%any'), { type: 'any', value: '%any' });
    for (const bad of ['', 'has space', 'C=CH, =x', 'keyid:xyz', 'a@b@c']) assert.throws(() => parseIdentity(bad), ValueError, bad);
  });

  it('compares identities the way peers present them', () => {
    assert.ok(sameIdentity(parseIdentity('Moon.Example.org'), parseIdentity('moon.example.org')));
    assert.ok(sameIdentity(parseIdentity('C=CH,O=styx, CN=moon'), parseIdentity('c=CH, O=styx,CN=moon')));
    assert.ok(sameIdentity(parseIdentity('2001:db8:0::1'), parseIdentity('2001:db8::1')));
    assert.ok(!sameIdentity(parseIdentity('moon.example.org'), parseIdentity('sun.example.org')));
    assert.ok(!sameIdentity(parseIdentity('192.0.2.1'), parseIdentity('192.0.2.2')));
  });
});
