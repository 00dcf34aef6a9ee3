import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../../src/util/errors.js';
import {
  findSecret, formatConfigError, loadConfig, parseConfig, parseDuration, parseIdentity,
} from '../../../src/config/index.js';
import type { StyxConfig } from '../../../src/config/index.js';
import { DhId, EncrId } from '../../../src/wire/ikev2/constants.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

/** A valid minimal file; tests splice lines into it so line numbers stay predictable. */
const BASE = [
  'connections:',                                        // 1
  '  office:',                                           // 2
  '    remote_addrs: [192.0.2.2]',                       // 3
  '    local: { auth: psk, id: moon.example.org }',      // 4
  '    remote: { auth: psk, id: sun.example.org }',      // 5
  '    children:',                                       // 6
  '      net:',                                          // 7
  '        local_ts: [10.1.0.0/24]',                     // 8
  '        remote_ts: [10.2.0.0/24]',                    // 9
  'secrets:',                                            // 10
  '  - { ids: [moon.example.org, sun.example.org], psk: "a long shared secret" }', // 11
];

function withLines(replace: Record<number, string | string[]>, base = BASE): string {
  const out: string[] = [];
  base.forEach((l, i) => {
    const r = replace[i + 1];
    if (r === undefined) out.push(l);
    else out.push(...(Array.isArray(r) ? r : [r]));
  });
  return out.join('\n') + '\n';
}

function parse(text: string): StyxConfig { return parseConfig(text, 'test.yaml'); }

function expectError(text: string, line: number | undefined, key: string | undefined, why: RegExp): ConfigError {
  let caught: unknown;
  try { parse(text); } catch (e) { caught = e; }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.file, 'test.yaml');
  assert.equal(caught.line, line, caught.message);
  assert.equal(caught.key, key, caught.message);
  assert.match(caught.message, why);
  return caught;
}

describe('config/load', () => {
  it('parses the minimal file with the documented defaults', () => {
    const c = parse(withLines({}));
    assert.equal(c.file, 'test.yaml');
    assert.deepEqual(c.daemon.listen, ['0.0.0.0', '::']);
    assert.equal(c.daemon.port, 500);
    assert.equal(c.daemon.natPort, 4500);
    assert.equal(c.daemon.controlSocket, '/run/styx/styx.sock');
    assert.equal(c.daemon.dataplane, 'memory');
    assert.equal(c.daemon.cookieThreshold, 10);
    assert.equal(c.connections.length, 1);
    const o = c.connections[0]!;
    assert.equal(o.name, 'office');
    assert.equal(o.version, 2);
    assert.deepEqual(o.localAddrs, ['%any']);
    assert.deepEqual(o.remoteAddrs, ['192.0.2.2']);
    assert.deepEqual([o.localPort, o.remotePort], [500, 500]);
    assert.deepEqual(o.ikeProposals.map((p) => p.text), ['aes128-sha256-x25519', 'aes256gcm16-prfsha384-ecp384', 'aes128-sha256-modp2048']);
    assert.deepEqual(o.local, { method: 'psk', id: { type: 'fqdn', value: 'moon.example.org' } });
    assert.equal(o.startAction, 'none');
    assert.deepEqual([o.rekeyTime, o.lifetime], [14400, 15840]);
    assert.deepEqual(o.retransmit, { timeout: 4, tries: 5, base: 1.8 });
    assert.deepEqual([o.dpdDelay, o.dpdTimeout, o.dpdAction], [0, 150, 'clear']);
    const ch = o.children[0]!;
    assert.equal(ch.name, 'net');
    assert.deepEqual(ch.espProposals.map((p) => p.text), ['aes128gcm16', 'aes128-sha256']);
    assert.equal(ch.mode, 'tunnel');
    assert.deepEqual([ch.rekeyTime, ch.lifetime], [3600, 3960]);
    assert.equal(ch.localTs[0]!.startAddr.toString('hex'), '0a010000');
    assert.equal(c.secrets[0]!.psk.toString(), 'a long shared secret');
  });

  it('reads every connection and daemon key', () => {
    const text = [
      'daemon:',
      '  listen: [192.0.2.1, "2001:db8::1"]',
      '  port: 5000',
      '  nat_port: 5001',
      '  control_socket: run/ctl.sock',
      '  dataplane: xfrm',
      '  cookie_threshold: 0',
      '  log: { default: warn, ike: debug, net: secret }',
      'connections:',
      '  v1peer:',
      '    version: 1',
      '    local_addrs: ["2001:db8::1"]',
      '    remote_addrs: [vpn.example.net, "2001:db8::2"]',
      '    local_port: 4501',
      '    remote_port: 4502',
      '    proposals: [aes256-sha384-ecp384]',
      '    local: { auth: psk }',
      '    remote: { auth: psk, id: "C=CH, O=styx, CN=sun" }',
      '    start_action: start',
      '    rekey_time: 1h30m',
      '    lifetime: 2h',
      '    aggressive: true',
      '    encap: yes',
      '    dpd_delay: 30s',
      '    dpd_timeout: 2m',
      '    dpd_action: restart',
      '    retransmit: { timeout: 2, tries: 3, base: 2 }',
      '    children:',
      '      lan:',
      '        local_ts: [dynamic]',
      '        remote_ts: ["2001:db8:2::/64[udp/53]"]',
      '        esp_proposals: [aes256gcm16-ecp384]',
      '        mode: transport',
      '        start_action: start',
      '        rekey_time: 20m',
      '        lifetime: 30m',
      'secrets:',
      '  - { ids: ["2001:db8::1"], psk: 0x00ff10 }',
    ].join('\n');
    const c = parseConfig(text, '/etc/styx/test.yaml');
    assert.deepEqual(c.daemon.listen, ['192.0.2.1', '2001:db8::1']);
    assert.deepEqual([c.daemon.port, c.daemon.natPort], [5000, 5001]);
    assert.equal(c.daemon.controlSocket, '/etc/styx/run/ctl.sock');
    assert.equal(c.daemon.dataplane, 'xfrm');
    assert.equal(c.daemon.cookieThreshold, 0);
    assert.equal(c.daemon.defaultLogLevel, 'warn');
    assert.deepEqual(c.daemon.logLevels, { ike: 'debug', net: 'secret' });
    const o = c.connections[0]!;
    assert.equal(o.version, 1);
    assert.deepEqual(o.remoteAddrs, ['vpn.example.net', '2001:db8::2']);
    assert.deepEqual([o.localPort, o.remotePort], [4501, 4502]);
    assert.deepEqual(o.ikeProposals[0]!.encr, [{ id: EncrId.ENCR_AES_CBC, keyLength: 256 }]);
    assert.deepEqual(o.local.id, { type: 'ipv6', value: '2001:db8::1' }, 'local id defaults to the single local address');
    assert.equal(o.remote.id.type, 'dn');
    assert.equal(o.startAction, 'start');
    assert.deepEqual([o.rekeyTime, o.lifetime], [5400, 7200]);
    assert.deepEqual([o.aggressive, o.encap], [true, true]);
    assert.deepEqual([o.dpdDelay, o.dpdTimeout, o.dpdAction], [30, 120, 'restart']);
    assert.deepEqual(o.retransmit, { timeout: 2, tries: 3, base: 2 });
    const ch = o.children[0]!;
    assert.equal(ch.localTs[0]!.dynamic, true);
    assert.equal(ch.localTs[0]!.family, 6, 'dynamic takes the family of the tunnel address');
    assert.deepEqual([ch.remoteTs[0]!.protocol, ch.remoteTs[0]!.startPort], [17, 53]);
    assert.deepEqual(ch.espProposals[0]!.dh, [DhId.ECP_384]);
    assert.deepEqual([ch.mode, ch.startAction, ch.rekeyTime, ch.lifetime], ['transport', 'start', 1200, 1800]);
    assert.deepEqual([...c.secrets[0]!.psk], [0x00, 0xff, 0x10]);
  });

  it('accepts an empty file and a file with no connections', () => {
    assert.deepEqual(parse('').connections, []);
    assert.deepEqual(parse('daemon: { port: 500 }\n').connections, []);
  });

  it('accepts a connection without children', () => {
    const c = parse(withLines({ 6: [], 7: [], 8: [], 9: [] }));
    assert.deepEqual(c.connections[0]!.children, []);
  });

  it('parses durations', () => {
    assert.equal(parseDuration('90'), 90);
    assert.equal(parseDuration('10s'), 10);
    assert.equal(parseDuration('30m'), 1800);
    assert.equal(parseDuration('4h'), 14400);
    assert.equal(parseDuration('1d'), 86400);
    assert.equal(parseDuration('1h30m'), 5400);
    assert.equal(parseDuration('1.5s'), 1.5);
    for (const bad of ['', 'h', '4x', '-5', '4 h', '1h 30m']) assert.equal(parseDuration(bad), null, bad);
  });

  it('reports an unknown key with its line and path', () => {
    expectError(withLines({ 8: '        locl_ts: [10.1.0.0/24]' }), 8, 'connections.office.children.net.locl_ts', /unknown key 'locl_ts'/);
    expectError(withLines({ 3: ['    remote_addrs: [192.0.2.2]', '    rekey: 4h'] }), 4, 'connections.office.rekey', /unknown key/);
    expectError('daemon:\n  prot: 500\n', 2, 'daemon.prot', /unknown key/);
    expectError('deamon: {}\n', 1, 'deamon', /unknown key/);
  });

  it('reports a bad algorithm at the list element', () => {
    const text = withLines({ 9: ['        remote_ts: [10.2.0.0/24]', '        esp_proposals:', '          - aes128gcm16', '          - aes127'] });
    const e = expectError(text, 12, 'connections.office.children.net.esp_proposals[1]', /unknown algorithm 'aes127'/);
    assert.equal(formatConfigError(e), "configuration error: test.yaml:12 (connections.office.children.net.esp_proposals[1]): unknown algorithm 'aes127'");
    expectError(withLines({ 3: ['    remote_addrs: [192.0.2.2]', '    proposals: [aes128gcm16-sha256-x25519]'] }), 4,
      'connections.office.proposals[0]', /AEAD/);
    expectError(withLines({ 3: ['    remote_addrs: [192.0.2.2]', '    proposals: [aes128-sha256]'] }), 4,
      'connections.office.proposals[0]', /no DH group/);
  });

  it('reports bad CIDRs, addresses, ports and durations', () => {
    expectError(withLines({ 9: '        remote_ts: [10.2.0.0/33]' }), 9, 'connections.office.children.net.remote_ts[0]', /prefix length/);
    expectError(withLines({ 9: ['        remote_ts:', '          - 10.2.0.0/24', '          - 10.2.0.1/24'] }), 11,
      'connections.office.children.net.remote_ts[1]', /host bits/);
    expectError(withLines({ 3: '    remote_addrs: [192.0.2.300]' }), 3, 'connections.office.remote_addrs[0]', /not an IP address, hostname/);
    expectError(withLines({ 3: ['    remote_addrs: [192.0.2.2]', '    local_addrs: [moon.example.org]'] }), 4,
      'connections.office.local_addrs[0]', /not an IP address/);
    expectError(withLines({ 3: ['    remote_addrs: [192.0.2.2]', '    remote_port: 70000'] }), 4, 'connections.office.remote_port', /out of range/);
    expectError(withLines({ 3: ['    remote_addrs: [192.0.2.2]', '    rekey_time: 4 hours'] }), 4, 'connections.office.rekey_time', /invalid duration/);
    expectError(withLines({ 3: ['    remote_addrs: [192.0.2.2]', '    lifetime: 1h'] }), 4, 'connections.office.lifetime', /must be longer than rekey_time/);
    expectError('daemon:\n  listen: [0.0.0.0, localhost]\n', 2, 'daemon.listen[1]', /not an IP address/);
    expectError('daemon:\n  dataplane: kernel\n', 2, 'daemon.dataplane', /not one of: memory, userspace, xfrm/);
    expectError('daemon:\n  log: { ike: loud }\n', 2, 'daemon.log.ike', /not one of/);
    expectError('daemon:\n  log: { iek: debug }\n', 2, 'daemon.log.iek', /unknown key/);
  });

  it('reports a missing secret for PSK connections', () => {
    expectError(withLines({ 11: '  - { ids: [venus.example.org], psk: "x" }' }), 2, 'connections.office', /no secret for ids moon.example.org\/sun.example.org/);
    expectError(withLines({ 10: [], 11: [] }), 2, 'connections.office', /no secret/);
  });

  it('reports duplicate connection and child names', () => {
    const dupConn = withLines({ 9: ['        remote_ts: [10.2.0.0/24]', '  office:', '    remote_addrs: [192.0.2.3]'] });
    expectError(dupConn, 10, 'connections.office', /duplicate key 'office'/);
    const dupChild = withLines({ 9: ['        remote_ts: [10.2.0.0/24]', '      net:', '        local_ts: [10.3.0.0/24]'] });
    expectError(dupChild, 10, 'connections.office.children.net', /duplicate/);
  });

  it('reports structural mistakes', () => {
    expectError('connections: [a, b]\n', 1, 'connections', /expected a mapping/);
    expectError(withLines({ 4: '    local: { id: moon.example.org }' }), 4, 'connections.office.local.auth', /value is required/);
    expectError(withLines({ 4: '    local: { auth: psk, id: "%any" }' }), 4, 'connections.office.local.id', /cannot be %any/);
    expectError(withLines({ 3: ['    remote_addrs: ["%any"]', '    start_action: start'] }), 3, 'connections.office.remote_addrs', /concrete remote address/);
    expectError(withLines({ 3: ['    remote_addrs: [192.0.2.2]', '    aggressive: true'] }), 4, 'connections.office.aggressive', /IKEv1/);
    expectError(withLines({ 4: '    local: { auth: psk, id: moon.example.org, cert: a.pem }' }), 4, 'connections.office.local.cert', /pubkey/);
    expectError('connections:\n  "bad name":\n    remote_addrs: [192.0.2.2]\n', 2, 'connections.bad name', /invalid connection name/);
    // The parser notices the unclosed list only at the end of the input.
    expectError('connections:\n  a: [\n', 3, undefined, /YAML syntax error/);
    expectError('daemon:\n  port: 500\n\tnat_port: 4500\n', 3, undefined, /YAML syntax error: Tabs/);
  });

  it('finds the best matching secret', () => {
    const c = parse(withLines({ 11: [
      '  - { psk: any }',
      '  - { ids: [moon.example.org], psk: one }',
      '  - { ids: [moon.example.org, sun.example.org], psk: both }',
    ] }));
    const moon = parseIdentity('moon.example.org');
    assert.equal(findSecret(c.secrets, moon, parseIdentity('sun.example.org'))!.psk.toString(), 'both');
    assert.equal(findSecret(c.secrets, moon, parseIdentity('venus.example.org'))!.psk.toString(), 'one');
    assert.equal(findSecret(c.secrets, parseIdentity('x.example.org'), parseIdentity('%any'))!.psk.toString(), 'any');
    assert.equal(findSecret(c.secrets.slice(1), parseIdentity('x.example.org'), parseIdentity('y.example.org')), undefined);
  });

  it('loadConfig names an unreadable file', () => {
    assert.throws(() => loadConfig('/nonexistent/styx.yaml'), (e: unknown) => e instanceof ConfigError && e.file === '/nonexistent/styx.yaml' && /cannot read/.test(e.message));
  });

  it('loadConfig reports the file path it was given', () => {
    const dir = mkdtempSync(join(tmpdir(), 'styx-cfg-'));
    try {
      const f = join(dir, 'styx.yaml');
      writeFileSync(f, 'daemon:\n  port: x\n');
      assert.throws(() => loadConfig(f), (e: unknown) => e instanceof ConfigError && e.file === f && e.line === 2 && e.key === 'daemon.port');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('shipped configuration files', () => {
    it('etc/styx.yaml is the left initiator of the demo', () => {
      const c = loadConfig(join(repoRoot, 'etc/styx.yaml'));
      const d = c.connections[0]!;
      assert.deepEqual(d.localAddrs, ['192.0.2.1']);
      assert.deepEqual(d.remoteAddrs, ['192.0.2.2']);
      assert.equal(d.startAction, 'start');
      assert.ok(d.ikeProposals.some((p) => p.text === 'aes128-sha256-x25519'));
      assert.equal(d.children[0]!.localTs[0]!.text, '10.1.0.0/24');
      assert.equal(d.children[0]!.remoteTs[0]!.text, '10.2.0.0/24');
    });
    it('etc/examples/right.yaml mirrors it as a responder', () => {
      const left = loadConfig(join(repoRoot, 'etc/styx.yaml')).connections[0]!;
      const right = loadConfig(join(repoRoot, 'etc/examples/right.yaml')).connections[0]!;
      assert.deepEqual(right.localAddrs, left.remoteAddrs);
      assert.deepEqual(right.remoteAddrs, left.localAddrs);
      assert.deepEqual(right.local.id, left.remote.id);
      assert.deepEqual(right.remote.id, left.local.id);
      assert.equal(right.startAction, 'none');
      assert.equal(right.children[0]!.localTs[0]!.text, left.children[0]!.remoteTs[0]!.text);
      assert.equal(right.children[0]!.remoteTs[0]!.text, left.children[0]!.localTs[0]!.text);
    });
    it('etc/examples/reference.yaml parses', () => {
      const c = loadConfig(join(repoRoot, 'etc/examples/reference.yaml'));
      assert.ok(c.connections.length >= 3);
    });
  });
});
