import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { LogManager } from '../../../src/util/log.js';
import {
  startControlServer, controlRequest, ControlCommandError, ControlConnectError, ControlSocketError, MAX_LINE_BYTES,
} from '../../../src/control/index.js';
import type { ControlServer } from '../../../src/control/index.js';
import { FakeHandler, sampleConn, sampleSa } from './fixtures.js';

/** A raw line-oriented client, for sending what the real client never would. */
class RawClient {
  private buf = '';
  private waiters: ((line: string) => void)[] = [];
  private lines: string[] = [];
  readonly sock: Socket;
  closed: Promise<void>;
  constructor(path: string) {
    this.sock = createConnection(path);
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(line); else this.lines.push(line);
      }
    });
    this.sock.on('error', () => { /* the test inspects close instead */ });
    this.closed = new Promise((r) => this.sock.once('close', () => r()));
  }
  send(text: string): void { this.sock.write(text); }
  next(): Promise<unknown> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(JSON.parse(l));
    return new Promise((r) => this.waiters.push((line) => r(JSON.parse(line))));
  }
  end(): void { this.sock.destroy(); }
}

describe('control/server and client', () => {
  let dir: string;
  let path: string;
  let handler: FakeHandler;
  let server: ControlServer | null;
  const logLines: string[] = [];
  const log = new LogManager((l) => logLines.push(l), false).for('control');

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'styx-ctl-'));
    path = join(dir, 'run', 'styx.sock');
    handler = new FakeHandler();
    server = await startControlServer(path, handler, log);
  });
  afterEach(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the socket 0600 inside a 0700 directory', () => {
    assert.ok(statSync(path).isSocket());
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
  });

  it('round-trips every command to the handler', async () => {
    assert.deepEqual(await controlRequest(path, 'list', {}, 2000), [sampleSa()]);
    assert.deepEqual(await controlRequest(path, 'list-conns', {}, 2000), [sampleConn()]);
    assert.equal(await controlRequest(path, 'initiate', { name: 'office', timeoutMs: 1234 }, 2000), "connection 'office' established");
    assert.equal(await controlRequest(path, 'initiate', { name: 'other' }, 2000), "connection 'other' established");
    assert.equal(await controlRequest(path, 'terminate', { name: 'office' }, 2000), "connection 'office' terminated");
    assert.equal(await controlRequest(path, 'rekey', { name: 'office' }, 2000), 'rekeying 1 IKE SA(s) of office');
    assert.equal(await controlRequest(path, 'reload', {}, 2000), 'configuration reloaded: 1 connection');
    assert.equal(await controlRequest(path, 'log-level', { subsystem: 'ike', level: 'debug' }, 2000), 'ike log level is now debug');
    assert.deepEqual(await controlRequest(path, 'stats', {}, 2000), { malformedDropped: 7, ikeSas: 1 });
    assert.deepEqual(handler.calls, [
      ['list'], ['listConns'], ['initiate', 'office', 1234], ['initiate', 'other', 30000], ['terminate', 'office'],
      ['rekey', 'office'], ['reload'], ['setLogLevel', 'ike', 'debug'], ['stats'],
    ]);
  });

  it('turns a handler rejection into a failed response', async () => {
    await assert.rejects(controlRequest(path, 'initiate', { name: 'broken' }, 2000),
      (e: unknown) => e instanceof ControlCommandError && e.message === "connection 'broken': peer did not answer");
    await assert.rejects(controlRequest(path, 'terminate', { name: 'broken' }, 2000), /no SAs for 'broken'/);
    await assert.rejects(controlRequest(path, 'rekey', { name: 'broken' }, 2000), /no established IKE SA of broken to rekey/);
    assert.deepEqual(await controlRequest(path, 'stats', {}, 2000), { malformedDropped: 7, ikeSas: 1 }, 'still serving');
  });

  it('answers malformed lines with errors and keeps serving the same client', async () => {
    const c = new RawClient(path);
    c.send('this is not json\n');
    assert.deepEqual(await c.next(), { id: null, ok: false, error: 'malformed request: not valid JSON' });
    c.send('[1,2,3]\n');
    assert.equal((await c.next() as { ok: boolean }).ok, false);
    c.send('{"id":"x","cmd":"list"}\n');
    assert.deepEqual(await c.next(), { id: null, ok: false, error: "malformed request: 'id' must be an integer" });
    c.send('{"id":5,"cmd":"format-disk"}\n');
    const unknown = await c.next() as { id: number; ok: boolean; error: string };
    assert.equal(unknown.id, 5);
    assert.match(unknown.error, /unknown command "format-disk"/);
    c.send('{"id":6,"cmd":"initiate","args":{}}\n');
    assert.deepEqual(await c.next(), { id: 6, ok: false, error: 'initiate needs args.name' });
    c.send('{"id":7,"cmd":"log-level","args":{"subsystem":"ike"}}\n');
    assert.equal((await c.next() as { ok: boolean }).ok, false);
    c.send('{"id":8,"cmd":"initiate","args":{"name":"x","timeoutMs":-1}}\n');
    assert.equal((await c.next() as { ok: boolean }).ok, false);
    // Two requests in one write, then one split across writes.
    c.send('{"id":9,"cmd":"reload"}\n{"id":10,"cmd":"stats"}\n{"id":11,');
    c.send('"cmd":"terminate","args":{"name":"office"}}\n');
    const got = [await c.next(), await c.next(), await c.next()] as { id: number; ok: boolean }[];
    assert.deepEqual(got.map((r) => [r.id, r.ok]).sort((a, b) => Number(a[0]) - Number(b[0])), [[9, true], [10, true], [11, true]]);
    c.end();
    assert.deepEqual(await controlRequest(path, 'reload', {}, 2000), 'configuration reloaded: 1 connection');
  });

  it('disconnects a client that sends an endless line', async () => {
    const c = new RawClient(path);
    c.send('x'.repeat(MAX_LINE_BYTES + 10));
    const r = await c.next() as { ok: boolean; error: string };
    assert.equal(r.ok, false);
    assert.match(r.error, /too long/);
    await c.closed;
    assert.equal(await controlRequest(path, 'reload', {}, 2000), 'configuration reloaded: 1 connection');
  });

  it('serves many clients at once', async () => {
    let open!: () => void;
    handler.initiateGate = new Promise((r) => { open = r; });
    const slow = controlRequest(path, 'initiate', { name: 'office' }, 5000);
    const fast = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      controlRequest(path, 'log-level', { subsystem: 'ike', level: i % 2 ? 'debug' : 'info' }, 2000)));
    assert.equal(fast.length, 20);
    assert.equal(fast[1], 'ike log level is now debug');
    open();
    assert.equal(await slow, "connection 'office' established");
  });

  it('the client gives up when no answer comes in time', async () => {
    handler.initiateGate = new Promise(() => { /* never */ });
    await assert.rejects(controlRequest(path, 'initiate', { name: 'office' }, 150),
      (e: unknown) => e instanceof ControlConnectError && /no answer from styxd/.test(e.message));
  });

  it('the client explains when the daemon is not running', async () => {
    const missing = join(dir, 'nothing.sock');
    await assert.rejects(controlRequest(missing, 'list', {}, 2000),
      (e: unknown) => e instanceof ControlConnectError && e.message === `cannot connect to styxd at ${missing}: is it running?`);
  });

  it('refuses to start on a socket that is in use', async () => {
    await assert.rejects(startControlServer(path, handler, log), (e: unknown) => e instanceof ControlSocketError && /in use/.test(e.message));
    assert.deepEqual(await controlRequest(path, 'stats', {}, 2000), { malformedDropped: 7, ikeSas: 1 }, 'the first server is unharmed');
  });

  it('replaces a stale socket left by a killed daemon', async () => {
    const stale = join(dir, 'stale', 'styx.sock');
    // A process killed with SIGKILL cannot unlink its socket: exactly the leftover a crash produces.
    const script = `require('fs').mkdirSync(require('path').dirname(${JSON.stringify(stale)}),{recursive:true});` +
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script], { stdio: 'ignore', timeout: 10_000 });
    assert.ok(existsSync(stale), 'the killed process left its socket behind');
    const second = await startControlServer(stale, new FakeHandler(), log);
    try {
      assert.deepEqual(await controlRequest(stale, 'stats', {}, 2000), { malformedDropped: 7, ikeSas: 1 });
    } finally {
      await second.close();
    }
  });

  it('will not delete a file that is not a socket', async () => {
    const file = join(dir, 'regular');
    writeFileSync(file, 'keep me');
    await assert.rejects(startControlServer(file, handler, log), (e: unknown) => e instanceof ControlSocketError && /not a socket/.test(e.message));
    assert.ok(existsSync(file));
  });

  it('close() removes the socket and drops connected clients', async () => {
    const c = new RawClient(path);
    await new Promise((r) => c.sock.once('connect', r));
    await server!.close();
    server = null;
    await c.closed;
    assert.equal(existsSync(path), false);
    await assert.rejects(controlRequest(path, 'list', {}, 2000), /is it running\?/);
  });
});
