import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogManager } from '../../../src/util/log.js';
import { runCli, startControlServer, EXIT_FAILED, EXIT_OK, EXIT_USAGE } from '../../../src/control/index.js';
import type { ControlServer } from '../../../src/control/index.js';
import { FakeHandler, NOW, sampleSa } from './fixtures.js';

interface Run { code: number; out: string; err: string }

describe('control/cli (styx)', () => {
  let dir: string;
  let path: string;
  let handler: FakeHandler;
  let server: ControlServer;
  const log = new LogManager(() => undefined, false).for('control');

  async function styx(args: string[], env: Record<string, string | undefined> = { STYX_SOCKET: path }): Promise<Run> {
    let out = '', err = '';
    const code = await runCli(args, { out: (t) => { out += t; }, err: (t) => { err += t; }, env, now: () => NOW });
    return { code, out, err };
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'styx-cli-'));
    path = join(dir, 'styx.sock');
    handler = new FakeHandler();
    server = await startControlServer(path, handler, log);
  });
  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('list prints the SAs in human form, or JSON with --json', async () => {
    const human = await styx(['list']);
    assert.equal(human.code, EXIT_OK);
    assert.match(human.out, /^office: #1, ESTABLISHED, IKEv2, 1a2b3c4d5e6f7a8b_i\* 0102030405060708_r$/m);
    assert.match(human.out, /established 12s ago/);
    const json = await styx(['--json', 'list']);
    assert.equal(json.code, EXIT_OK);
    assert.deepEqual(JSON.parse(json.out), [sampleSa()]);
  });

  it('--socket overrides STYX_SOCKET, in either form and position', async () => {
    const r1 = await styx(['--socket', path, 'stats'], { STYX_SOCKET: join(dir, 'wrong.sock') });
    assert.equal(r1.code, EXIT_OK, r1.err);
    assert.match(r1.out, /malformedDropped {2}7/);
    const r2 = await styx(['stats', `--socket=${path}`], {});
    assert.equal(r2.code, EXIT_OK, r2.err);
  });

  it('the default socket is /run/styx/styx.sock', async () => {
    const r = await styx(['--help'], {});
    assert.match(r.out, /\/run\/styx\/styx\.sock/);
  });

  it('passes commands and arguments through', async () => {
    assert.equal((await styx(['list-conns'])).code, EXIT_OK);
    const init = await styx(['initiate', 'office', '--timeout', '1m']);
    assert.equal(init.code, EXIT_OK);
    assert.equal(init.out, "connection 'office' established\n");
    assert.equal((await styx(['initiate', 'office'])).code, EXIT_OK);
    assert.equal((await styx(['terminate', 'office'])).code, EXIT_OK);
    const rk = await styx(['rekey', 'office/net']);
    assert.equal(rk.code, EXIT_OK);
    assert.equal(rk.out, 'rekeying 1 IKE SA(s) of office/net\n');
    assert.equal((await styx(['reload'])).code, EXIT_OK);
    assert.equal((await styx(['log', 'ike', 'debug'])).code, EXIT_OK);
    assert.deepEqual(handler.calls, [
      ['listConns'], ['initiate', 'office', 60000], ['initiate', 'office', 30000], ['terminate', 'office'],
      ['rekey', 'office/net'], ['reload'], ['setLogLevel', 'ike', 'debug'],
    ]);
  });

  it('exits 1 with the daemon\'s reason when a command fails', async () => {
    const r = await styx(['initiate', 'broken']);
    assert.equal(r.code, EXIT_FAILED);
    assert.equal(r.err, "styx: connection 'broken': peer did not answer\n");
    assert.equal(r.out, '');
  });

  it('exits 1 when styxd is not running', async () => {
    const missing = join(dir, 'none.sock');
    const r = await styx(['list'], { STYX_SOCKET: missing });
    assert.equal(r.code, EXIT_FAILED);
    assert.equal(r.err, `styx: cannot connect to styxd at ${missing}: is it running?\n`);
  });

  it('exits 2 on usage errors without contacting the daemon', async () => {
    const cases = [[], ['frobnicate'], ['initiate'], ['initiate', 'a', 'b'], ['list', 'extra'], ['log', 'ike'],
      ['log', 'iek', 'debug'], ['log', 'ike', 'loud'], ['--bogus', 'list'], ['--socket'], ['list', '--timeout', '5'],
      ['initiate', 'office', '--timeout', 'soon'], ['rekey'], ['rekey', 'a', 'b']];
    for (const args of cases) {
      const r = await styx(args);
      assert.equal(r.code, EXIT_USAGE, `styx ${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /^styx: /);
    }
    assert.deepEqual(handler.calls, []);
  });

  it('--help prints usage and exits 0', async () => {
    const r = await styx(['--help']);
    assert.equal(r.code, EXIT_OK);
    assert.match(r.out, /^usage: styx/);
    for (const cmd of ['list-conns', 'initiate NAME', 'terminate NAME', 'reload', 'log SUBSYSTEM LEVEL', 'stats']) assert.ok(r.out.includes(cmd), cmd);
  });
});
