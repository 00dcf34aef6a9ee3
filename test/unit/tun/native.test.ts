import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { tmpdir } from 'node:os';
import { parseCidr, TunError } from '../../../src/tun/index.js';
import { explainOpenError } from '../../../src/tun/linux.js';
import { addonCandidates, loadAddonFrom } from '../../../src/tun/native.js';

function sysError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('tun: addon loading and error reporting', () => {
  it('a missing addon names the file and how to build it', () => {
    const path = join(tmpdir(), 'styx-no-such-dir', 'styx_tun.node');
    assert.throws(() => loadAddonFrom([path]), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_TUN_ADDON_MISSING');
      assert.ok(e.message.includes(path));
      assert.match(e.message, /native\/build\.mjs/);
      return true;
    });
  });

  it('a file that is not a loadable addon is reported as such', () => {
    assert.throws(() => loadAddonFrom([new URL(import.meta.url).pathname]), /could not be loaded|not the styx TUN addon/);
  });

  it('looks under native/build/Release of the package root, or at STYX_TUN_ADDON', () => {
    const saved = process.env.STYX_TUN_ADDON;
    try {
      delete process.env.STYX_TUN_ADDON;
      const c = addonCandidates();
      assert.equal(c.length, 1);
      const root = dirname(c[0]!).split(sep).slice(0, -3).join(sep);
      assert.ok(existsSync(join(root, 'package.json')), `${root} has no package.json`);
      assert.ok(c[0]!.endsWith(join('native', 'build', 'Release', 'styx_tun.node')));
      process.env.STYX_TUN_ADDON = '/opt/styx/styx_tun.node';
      assert.deepEqual(addonCandidates(), ['/opt/styx/styx_tun.node']);
    } finally {
      if (saved === undefined) delete process.env.STYX_TUN_ADDON;
      else process.env.STYX_TUN_ADDON = saved;
    }
  });

  it('open errors become advice', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['ENOENT', 'ERR_TUN_MISSING', /\/dev\/net\/tun is missing.*modprobe tun/],
      ['EPERM', 'ERR_TUN_PERMISSION', /CAP_NET_ADMIN/],
      ['EACCES', 'ERR_TUN_PERMISSION', /CAP_NET_ADMIN/],
      ['EBUSY', 'ERR_TUN_BUSY', /in use/],
      ['EINVAL', 'ERR_TUN_INVALID', /not a TUN/],
      ['EMFILE', 'ERR_TUN_OPEN', /too many/],
    ];
    for (const [errno, code, re] of cases) {
      const e = explainOpenError(sysError(errno, `syscall: too many things (${errno})`), 'styx0');
      assert.ok(e instanceof TunError);
      assert.equal(e.code, code, errno);
      assert.equal(e.errno, errno);
      assert.match(e.message, re);
      assert.match(e.message, /styx0/);
    }
  });

  it('parses CIDRs and rejects bad ones', () => {
    assert.deepEqual(parseCidr('10.99.0.1/24'), { address: '10.99.0.1', prefix: 24, family: 4 });
    assert.deepEqual(parseCidr('fd00::1/64'), { address: 'fd00::1', prefix: 64, family: 6 });
    assert.deepEqual(parseCidr('192.0.2.7'), { address: '192.0.2.7', prefix: 32, family: 4 });
    for (const bad of ['10.99.0.1/33', 'fd00::/129', 'host/24', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/2x', '']) {
      assert.throws(() => parseCidr(bad), (e: Error & { code?: string }) => e.code === 'ERR_TUN_CIDR', bad);
    }
  });
});
