/**
 * A real TUN, in a network namespace of its own: each scenario runs
 * netns-child.js under `unshare --net`, so nothing touches the host's
 * interfaces and the namespace goes away with the child.
 *
 * Needs root, /dev/net/tun, unshare and the built addon. Without them the
 * tests skip, except under CI=true, where a skip would hide a broken setup.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../../../src/tun/native.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'netns-child.js');

interface Line { check: string; ok: boolean; detail: unknown }

function missing(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root (a TUN and a network namespace need CAP_NET_ADMIN and CAP_SYS_ADMIN)';
  try { accessSync('/dev/net/tun', constants.R_OK | constants.W_OK); } catch { return '/dev/net/tun is missing'; }
  for (const cmd of ['unshare', 'ip']) {
    try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); } catch { return `the ${cmd} command is missing`; }
  }
  try { loadAddon(); } catch (e) { return (e as Error).message; }
  return null;
}

function runChild(args: string[], opts: { timeoutMs?: number; prefix?: string[] } = {}): Promise<{ code: number | null; lines: Line[]; ms: number; stderr: string }> {
  const started = Date.now();
  const argv = ['--net', ...(opts.prefix ?? []), process.execPath, CHILD, ...args];
  return new Promise((resolve) => {
    execFile('unshare', argv, { timeout: opts.timeoutMs ?? 20_000 }, (err, stdout, stderr) => {
      const lines = String(stdout).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, lines, ms: Date.now() - started, stderr: String(stderr) });
    });
  });
}

describe('tun/linux: a real TUN in a network namespace', function () {
  this.timeout(30_000);
  const why = missing();

  before(function () {
    if (why === null) return;
    if (process.env.CI === 'true') throw new Error(`TUN tests cannot run under CI: ${why}`);
    console.log(`      skipping the real-TUN tests: ${why}`);
    this.skip();
  });

  describe('kernel round trips', () => {
    let results: Map<string, Line>;
    let fatal: string | null = null;

    before(async function () {
      if (why !== null) return this.skip();
      const r = await runChild(['checks']);
      results = new Map(r.lines.map((l) => [l.check, l]));
      const f = results.get('fatal');
      if (f || r.code !== 0) fatal = `child exit ${r.code}: ${JSON.stringify(f?.detail ?? null)} ${r.stderr}`;
    });

    const expect = (name: string, desc: string): void => {
      it(desc, function () {
        const l = results.get(name);
        assert.ok(l, `check ${name} did not run${fatal ? ` (${fatal})` : ''}`);
        assert.ok(l.ok, `${name}: ${JSON.stringify(l.detail)}`);
        const skipped = (l.detail as { skipped?: string } | null)?.skipped;
        if (skipped) {
          console.log(`      (${skipped})`);
          this.skip();
        }
      });
    };
    expect('device', 'opens a named TUN with its MTU, IPv4 and IPv6 addresses, and brings it up');
    expect('udp-into-kernel', 'a UDP packet written to the TUN reaches a kernel socket with the right source');
    expect('udp-from-kernel', 'a datagram the kernel sends to the peer address is read from the TUN');
    expect('icmp-echo-into-kernel', 'an ICMP echo request written to the TUN gets the kernel\'s echo reply back');
    expect('ping-from-kernel', 'the kernel\'s ping to the peer is answered through the TUN');
    expect('batched-read', 'queued packets arrive in order, in batches capped at batchSize');
    expect('batched-write', 'one write() call delivers a batch of 50 packets');
    expect('malformed-write-skipped', 'a packet the kernel rejects is skipped without failing the batch');
    expect('routes', 'addRoute/delRoute route IPv4 and IPv6 networks through the TUN, idempotently');
    expect('busy-name', 'opening an attached TUN name again fails with ERR_TUN_BUSY');
    expect('close', 'close() is idempotent, stops writes and removes the interface');
  });

  describe('process exit', () => {
    before(function () { if (why !== null) this.skip(); });

    it('process.exit() returns promptly while a read is pending (no blocked threadpool read)', async () => {
      const r = await runChild(['exit-open'], { timeoutMs: 10_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.ms < 5000, `took ${r.ms} ms`);
    });

    it('a reading TUN ends nothing by itself, and close() lets the process end on its own', async () => {
      const r = await runChild(['exit-close'], { timeoutMs: 10_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.lines.map((l) => l.check), ['opened']);
    });

    it('close() from inside the packet callback stops reading and lets the process end', async () => {
      const r = await runChild(['exit-in-cb'], { timeoutMs: 10_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.lines.map((l) => l.check), ['closed-in-callback']);
    });

    it('an unref()ed reading TUN does not keep the process alive', async () => {
      const r = await runChild(['exit-unref'], { timeoutMs: 10_000 });
      assert.equal(r.code, 0, `exit ${r.code} (a timeout means the TUN kept the loop alive) ${r.stderr}`);
    });
  });

  describe('errors', () => {
    before(function () { if (why !== null) this.skip(); });

    it('without CAP_NET_ADMIN, opening fails with ERR_TUN_PERMISSION and says what is needed', async function () {
      let hasSetpriv = true;
      try { execFileSync('sh', ['-c', 'command -v setpriv'], { stdio: 'ignore' }); } catch { hasSetpriv = false; }
      if (!hasSetpriv) return this.skip();
      // Still root (so the checkout stays readable), but without CAP_NET_ADMIN:
      // after exec, root's capabilities are capped by the bounding set.
      const r = await runChild(['open-error'], {
        prefix: ['setpriv', '--inh-caps=-net_admin', '--bounding-set=-net_admin'],
      });
      const l = r.lines.find((x) => x.check === 'open-error');
      assert.ok(l, `no result: ${r.stderr}`);
      assert.ok(l.ok, JSON.stringify(l.detail));
      const d = l.detail as { code: string; message: string };
      assert.equal(d.code, 'ERR_TUN_PERMISSION');
      assert.match(d.message, /CAP_NET_ADMIN/);
    });
  });
});
