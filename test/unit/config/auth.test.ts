/**
 * Certificate authentication and fragmentation settings in the
 * configuration: paths resolve against the file, every named file is read
 * and parsed at load time so `styxd --check` names the one that is missing
 * or wrong (file, line, key), and the defaults a network engineer relies on.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig } from '../../../src/config/index.js';
import type { PubkeyAuthConfig } from '../../../src/config/model.js';
import { ConfigError } from '../../../src/util/errors.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const PKI = join(repoRoot, 'certs', 'pki');

/** A connection with pubkey on both sides; `local`/`remote` replace those lines (lines 5 and 6). */
function conf(local: string, remote: string, extra = ''): string {
  return [
    'connections:',                              // 1
    '  gw:',                                     // 2
    '    remote_addrs: [192.0.2.2]',             // 3
    `${extra}    children: {}`,                  // 4 (+ extra lines before it)
    `    local: ${local}`,                       // 5
    `    remote: ${remote}`,                     // 6
  ].join('\n') + '\n';
}

const LOCAL_OK = '{ auth: pubkey, cert: moon.pem, key: moon.key.pem }';
const REMOTE_OK = '{ auth: pubkey, id: sun.styx.example, cacerts: [ca], crls: [intermediate-ca.crl.pem] }';

describe('config: certificate authentication', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'styx-cfg-auth-'));
    for (const f of ['moon.pem', 'moon.key.pem', 'sun.key.pem', 'intermediate-ca.crl.pem']) copyFileSync(join(PKI, f), join(dir, f));
    mkdirSync(join(dir, 'ca'));
    copyFileSync(join(PKI, 'root-ca.pem'), join(dir, 'ca', 'root-ca.pem'));
    copyFileSync(join(PKI, 'intermediate-ca.pem'), join(dir, 'ca', 'intermediate-ca.crt'));
    writeFileSync(join(dir, 'ca', 'README'), 'not a certificate, and not read: wrong extension\n');
    mkdirSync(join(dir, 'empty'));
    writeFileSync(join(dir, 'garbage.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const file = (): string => join(dir, 'styx.yaml');
  const load = (text: string): ReturnType<typeof loadConfig> => { writeFileSync(file(), text); return loadConfig(file()); };
  function expectError(text: string, line: number, key: string, why: RegExp): void {
    writeFileSync(file(), text);
    assert.throws(() => loadConfig(file()), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.file, file());
      assert.equal(e.line, line, e.message);
      assert.equal(e.key, key, e.message);
      assert.match(e.message, why);
      return true;
    });
  }

  it('resolves cert, key, cacerts and crls against the configuration file and defaults the local id to the subject DN', () => {
    const c = load(conf(LOCAL_OK, REMOTE_OK)).connections[0]!;
    const l = c.local as PubkeyAuthConfig, r = c.remote as PubkeyAuthConfig;
    assert.equal(l.method, 'pubkey');
    assert.equal(l.cert, join(dir, 'moon.pem'));
    assert.equal(l.key, join(dir, 'moon.key.pem'));
    assert.deepEqual(l.id, { type: 'dn', value: 'C=CH, O=styx, CN=moon.styx.example' });
    assert.equal(l.signature, 'auto');
    assert.deepEqual(r.cacerts, [join(dir, 'ca')]);
    assert.deepEqual(r.crls, [join(dir, 'intermediate-ca.crl.pem')]);
    assert.deepEqual(r.id, { type: 'fqdn', value: 'sun.styx.example' });
  });

  it('keeps an explicit local id and takes signature: pss, and a single cacerts file without brackets', () => {
    const c = load(conf('{ auth: pubkey, id: moon.styx.example, cert: moon.pem, key: moon.key.pem, signature: pss }', '{ auth: pubkey, cacerts: ca/root-ca.pem }')).connections[0]!;
    assert.deepEqual(c.local.id, { type: 'fqdn', value: 'moon.styx.example' });
    assert.equal((c.local as PubkeyAuthConfig).signature, 'pss');
    assert.deepEqual((c.remote as PubkeyAuthConfig).cacerts, [join(dir, 'ca', 'root-ca.pem')]);
    assert.deepEqual(c.remote.id, { type: 'any', value: '%any' });
  });

  it('names a missing certificate, key, CA or CRL file with its line and key', () => {
    expectError(conf('{ auth: pubkey, cert: nothere.pem, key: moon.key.pem }', REMOTE_OK), 5, 'connections.gw.local.cert', /cannot read .*nothere\.pem \(ENOENT\)/);
    expectError(conf('{ auth: pubkey, cert: moon.pem, key: gone.key }', REMOTE_OK), 5, 'connections.gw.local.key', /gone\.key \(ENOENT\)/);
    expectError(conf(LOCAL_OK, '{ auth: pubkey, cacerts: [ca, missing-ca.pem] }'), 6, 'connections.gw.remote.cacerts[1]', /missing-ca\.pem \(ENOENT\)/);
    expectError(conf(LOCAL_OK, '{ auth: pubkey, cacerts: [ca], crls: [old.crl] }'), 6, 'connections.gw.remote.crls[0]', /old\.crl \(ENOENT\)/);
  });

  it('names a file that is not what the key says', () => {
    expectError(conf('{ auth: pubkey, cert: garbage.pem, key: moon.key.pem }', REMOTE_OK), 5, 'connections.gw.local.cert', /garbage\.pem: not an X\.509 certificate/);
    expectError(conf('{ auth: pubkey, cert: moon.pem, key: moon.pem }', REMOTE_OK), 5, 'connections.gw.local.key', /moon\.pem: no private key block/);
    expectError(conf('{ auth: pubkey, cert: empty, key: moon.key.pem }', REMOTE_OK), 5, 'connections.gw.local.cert', /EISDIR/);
    expectError(conf(LOCAL_OK, '{ auth: pubkey, cacerts: [empty] }'), 6, 'connections.gw.remote.cacerts[0]', /directory .*empty holds no certificate files/);
    expectError(conf(LOCAL_OK, '{ auth: pubkey, cacerts: [ca], crls: [moon.pem] }'), 6, 'connections.gw.remote.crls[0]', /no X509 CRL block/);
  });

  it('refuses a key that does not belong to the certificate', () => {
    expectError(conf('{ auth: pubkey, cert: moon.pem, key: sun.key.pem }', REMOTE_OK), 5, 'connections.gw.local.key', /sun\.key\.pem: private key does not belong to the certificate in .*moon\.pem/);
  });

  it('refuses settings on the wrong side and incomplete sides', () => {
    expectError(conf('{ auth: pubkey, cert: moon.pem, key: moon.key.pem, cacerts: [ca] }', REMOTE_OK), 5, 'connections.gw.local.cacerts', /belongs under remote/);
    expectError(conf(LOCAL_OK, '{ auth: pubkey, cacerts: [ca], key: moon.key.pem }'), 6, 'connections.gw.remote.key', /belongs under local/);
    expectError(conf('{ auth: pubkey, key: moon.key.pem }', REMOTE_OK), 5, 'connections.gw.local.cert', /needs a certificate file/);
    expectError(conf(LOCAL_OK, '{ auth: pubkey }'), 6, 'connections.gw.remote.cacerts', /needs cacerts/);
    expectError(conf('{ auth: pubkey, cert: moon.pem, key: moon.key.pem, signature: rsa }', REMOTE_OK), 5, 'connections.gw.local.signature', /auto, pss, legacy|one of/);
  });

  it('refuses a distinguished name that does not parse', () => {
    expectError(conf(LOCAL_OK, '{ auth: pubkey, id: "C=CH, XX=styx", cacerts: [ca] }'), 6, 'connections.gw.remote.id', /unknown attribute type "XX"/);
  });

  it('styxd --check prints the missing file with its place and exits 1', async function () {
    this.timeout(20_000);
    writeFileSync(file(), conf('{ auth: pubkey, cert: nothere.pem, key: moon.key.pem }', REMOTE_OK));
    const styxd = join(repoRoot, 'dist', 'src', 'bin', 'styxd.js');
    const r = await new Promise<{ code: number; out: string }>((res) => {
      execFile(process.execPath, [styxd, '--check', '--config', file()], (e, stdout, stderr) => res({ code: e ? Number(e.code) : 0, out: stdout + stderr }));
    });
    assert.equal(r.code, 1, r.out);
    assert.ok(r.out.includes(`${file()}:5 (connections.gw.local.cert): cannot read ${join(dir, 'nothere.pem')} (ENOENT)`), r.out);
  });
});

describe('config: IKEv2 fragmentation', () => {
  const base = (daemon: string, conn: string): string => `${daemon}connections:\n  gw:\n    remote_addrs: [192.0.2.2]\n    local: { auth: psk, id: a.example }\n    remote: { auth: psk, id: b.example }\n${conn}secrets:\n  - { psk: "a long shared secret" }\n`;

  it('is on by default with 1280-octet datagrams; the daemon sets the default, a connection overrides it', () => {
    let c = parseConfig(base('', ''), 't.yaml');
    assert.deepEqual([c.daemon.fragmentSize, c.connections[0]!.fragmentation, c.connections[0]!.fragmentSize], [1280, true, 1280]);
    c = parseConfig(base('daemon: { fragment_size: 576 }\n', ''), 't.yaml');
    assert.equal(c.connections[0]!.fragmentSize, 576);
    c = parseConfig(base('daemon: { fragment_size: 576 }\n', '    fragment_size: 400\n    fragmentation: no\n'), 't.yaml');
    assert.deepEqual([c.connections[0]!.fragmentation, c.connections[0]!.fragmentSize], [false, 400]);
  });

  it('refuses sizes that leave no room for a fragment', () => {
    assert.throws(() => parseConfig(base('', '    fragment_size: 100\n'), 't.yaml'), (e: unknown) => e instanceof ConfigError && e.key === 'connections.gw.fragment_size' && e.line === 6);
    assert.throws(() => parseConfig(base('daemon: { fragment_size: 70000 }\n', ''), 't.yaml'), (e: unknown) => e instanceof ConfigError && e.key === 'daemon.fragment_size');
  });
});
