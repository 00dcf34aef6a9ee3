import assert from 'node:assert/strict';
import { formatConns, formatDuration, formatIkeSas, formatStats } from '../../../src/control/index.js';
import { NOW, sampleConn, sampleSa } from './fixtures.js';

describe('control/format', () => {
  it('formats durations with at most two units', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(12.9), '12s');
    assert.equal(formatDuration(60), '1m');
    assert.equal(formatDuration(303), '5m3s');
    assert.equal(formatDuration(3 * 3600 + 59 * 60 + 30), '3h59m');
    assert.equal(formatDuration(2 * 86400 + 4 * 3600 + 5), '2d4h');
    assert.equal(formatDuration(-5), '0s');
  });

  it('lists an IKE SA and its CHILD_SA with names, SPIs, algorithms, ages and selectors', () => {
    const text = formatIkeSas([sampleSa()], NOW);
    const lines = text.split('\n');
    assert.equal(lines[0], 'office: #1, ESTABLISHED, IKEv2, 1a2b3c4d5e6f7a8b_i* 0102030405060708_r');
    assert.equal(lines[1], "  local  'moon.example.org' @ 192.0.2.1[500]");
    assert.equal(lines[2], "  remote 'sun.example.org' @ 192.0.2.2[4500] (behind NAT)");
    assert.equal(lines[3], '  AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519');
    assert.equal(lines[4], '  established 12s ago, rekeying in 3h59m');
    assert.equal(lines[5], '  net: #2, INSTALLED, TUNNEL, ESP SPIs: c1234567_i c7654321_o');
    assert.equal(lines[6], '    AES_GCM_16-128');
    assert.equal(lines[7], '    installed 5s ago');
    assert.equal(lines[8], '    in  c1234567, 18446744073709551615 bytes, 3 packets');
    assert.equal(lines[9], '    out c7654321, 840 bytes, 10 packets');
    assert.equal(lines[10], '    local  10.1.0.0/24');
    assert.equal(lines[11], '    remote 10.2.0.0/24 10.3.0.0/16[tcp/443]');
  });

  it('marks our side and shows responder, IPv6, encapsulation and PFS variants', () => {
    const sa = sampleSa();
    sa.initiator = false;
    sa.local = { address: '2001:db8::1', port: 500, id: 'moon' };
    sa.algorithms.integ = null;
    sa.establishedAt = null;
    sa.rekeyAt = NOW + 90_000;
    const child = sa.children[0]!;
    child.encap = true;
    child.mode = 'transport';
    child.algorithms = { encr: 'AES_CBC-256', integ: 'HMAC_SHA2_256_128', dh: 'MODP_2048', esn: true };
    child.installedAt = null;
    const text = formatIkeSas([sa], NOW);
    assert.match(text, /1a2b3c4d5e6f7a8b_i 0102030405060708_r\*/);
    assert.match(text, /local {2}'moon' @ \[2001:db8::1\]\[500\]/);
    assert.match(text, /^ {2}AES_CBC-128\/PRF_HMAC_SHA2_256\/CURVE_25519$/m);
    assert.match(text, /^ {2}rekeying in 1m30s$/m);
    assert.match(text, /TRANSPORT, ESP in UDP SPIs: c1234567_i c7654321_o/);
    assert.match(text, /^ {4}AES_CBC-256\/HMAC_SHA2_256_128\/MODP_2048\/ESN$/m);
    assert.doesNotMatch(text, /installed/);
  });

  it('says so when there is nothing to list', () => {
    assert.equal(formatIkeSas([], NOW), 'no IKE SAs');
    assert.equal(formatConns([]), 'no connections');
    assert.equal(formatStats({}), 'no counters');
  });

  it('lists connections and counters', () => {
    const text = formatConns([sampleConn()]);
    assert.match(text, /^office: IKEv2, 192\.0\.2\.1\.\.\.192\.0\.2\.2$/m);
    assert.match(text, /^ {2}local {2}'moon\.example\.org'$/m);
    assert.match(text, /^ {2}net: 10\.1\.0\.0\/24 === 10\.2\.0\.0\/24$/m);
    assert.equal(formatStats({ malformedDropped: 7, ikeSas: 1 }), 'ikeSas            1\nmalformedDropped  7');
  });
});
