/**
 * On-demand tunnels between two styxd with the userspace data plane:
 * start_action trap negotiates when the first packet for the child's
 * selectors appears, and dpd_action trap brings a tunnel whose peer died
 * back on the next packet once the peer is there again.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, dumpLogsOnFailure, ping, requireInterop, startStyxd, type StyxdHandle, type Topology } from './harness.js';

const PSK = 'styx trap test psk, not a secret';

function yaml(t: Topology, side: 'left' | 'right', extra: { conn?: string; child?: string }): string {
  const me = side === 'left' ? t.left : t.right, peer = side === 'left' ? t.right : t.left;
  return `daemon:
  listen: [${me.outer4}]
  dataplane: userspace
connections:
  demo:
    local_addrs: [${me.outer4}]
    remote_addrs: [${peer.outer4}]
    local: { auth: psk, id: ${me.outer4} }
    remote: { auth: psk, id: ${peer.outer4} }
    retransmit: { timeout: 1, tries: 2, base: 1.5 }
${extra.conn ?? ''}    children:
      net:
        local_ts: [${me.innerNet4}]
        remote_ts: [${peer.innerNet4}]
${extra.child ?? ''}secrets:
  - ids: [${t.left.outer4}, ${t.right.outer4}]
    psk: "${PSK}"
`;
}

describe('interop: on-demand tunnels between two styxd (trap)', function () {
  let topo: Topology | undefined;
  let left: StyxdHandle | undefined;
  let right: StyxdHandle | undefined;

  async function start(side: 'left' | 'right', extra: { conn?: string; child?: string }): Promise<StyxdHandle> {
    const t = topo!;
    const dir = t.dir(`styxd-${side}`);
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, yaml(t, side, extra));
    return startStyxd(side === 'left' ? t.left.ns : t.right.ns, conf, { dir, logLevel: 'ike=info' });
  }

  before(async function () {
    requireInterop(this, { styxd: true });
    topo = await createTopology('trap');
    right = await start('right', {});
    left = await start('left', { conn: '    dpd_delay: 2s\n    dpd_timeout: 4s\n    dpd_action: trap\n', child: '        start_action: trap\n' });
  });
  afterEach(function () { dumpLogsOnFailure(this, { left: left?.logPath, right: right?.logPath }); });
  after(async function () {
    await Promise.all([left?.stop(), right?.stop()]);
    await topo?.teardown();
  });

  it('start_action trap: nothing until traffic, then the first packets bring the tunnel up', async function () {
    assert.deepEqual(await left!.listJson(), []);
    await left!.waitForLog(/trap installed for 10\.1\.0\.0\/24 === 10\.2\.0\.0\/24/);
    // The packet that hits the trap is dropped (RFC 4301 5.1.1); the ones after it cross.
    await ping(topo!.left.ns, topo!.right.inner4, { from: topo!.left.inner4, count: 8 });
    const [sa] = await left!.waitForSas((s) => s[0]?.children[0]?.state === 'INSTALLED');
    assert.equal(sa!.state, 'ESTABLISHED');
    const again = await ping(topo!.left.ns, topo!.right.inner4, { from: topo!.left.inner4, count: 3 });
    assert.equal(again.received, 3, again.output);
  });

  it('dpd_action trap: a dead peer clears the tunnel and installs the trap; traffic brings it back when the peer returns', async function () {
    const mark = left!.logMark();
    // A crash, not a clean stop: a stopping styxd would delete its SAs and tell the peer.
    process.kill(right!.pid, 'SIGKILL');
    await right!.stop();
    await left!.waitForLog(/is dead: .*dpd_action trap/, 30_000, mark);
    await left!.waitForSas((s) => s.length === 0);
    await left!.waitForLog(/trap installed/, 10_000, mark);
    right = await start('right', {});
    await ping(topo!.left.ns, topo!.right.inner4, { from: topo!.left.inner4, count: 8 });
    await left!.waitForSas((s) => s[0]?.children[0]?.state === 'INSTALLED');
    const back = await ping(topo!.left.ns, topo!.right.inner4, { from: topo!.left.inner4, count: 3 });
    assert.equal(back.received, 3, back.output);
  });
});
