/**
 * IKEv1 SAs carrying real traffic: styxd with the userspace ESP data plane
 * against strongSwan's kernel-libipsec (version = 1, encap = yes). Main Mode
 * with PSK and a Quick Mode with PFS, in both roles; a ping each way and a
 * short TCP transfer cross the tunnel, and both daemons count the packets.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, ping, pskSwanctlConf, requireInterop, startCharon, startStyxd,
  type CharonHandle, type StyxdHandle, type Topology,
} from './harness.js';
import { iperfTcp } from './lib/iperf.js';

const PSK = 'styx IKEv1 traffic test psk, not a secret';
const CHILD = 'net';

function styxYaml(t: Topology): string {
  const { left, right } = t;
  return `daemon:
  listen: [${left.outer4}]
  dataplane: userspace
connections:
  peer:
    version: 1
    local_addrs: [${left.outer4}]
    remote_addrs: [${right.outer4}]
    proposals: [aes128-sha256-modp2048]
    local: { auth: psk, id: ${left.outer4} }
    remote: { auth: psk, id: ${right.outer4} }
    children:
      ${CHILD}:
        local_ts: [${left.innerNet4}]
        remote_ts: [${right.innerNet4}]
        esp_proposals: [aes128-sha256-modp2048]
secrets:
  - ids: [${left.outer4}, ${right.outer4}]
    psk: "${PSK}"
`;
}

describe('IKEv1 traffic through the userspace ESP data plane, with strongSwan', function () {
  let topo: Topology | undefined;
  let styx: StyxdHandle | undefined;
  let charon: CharonHandle | undefined;

  before(async function () {
    requireInterop(this, { charon: true, styxd: true });
    topo = await createTopology('v1traffic');
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxYaml(topo));
    [styx, charon] = await Promise.all([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=info' }),
      startCharon(topo.right.ns, topo.dir('charon-r'), {
        swanctl: pskSwanctlConf({
          name: 'styx', child: CHILD, version: 1,
          localAddr: topo.right.outer4, remoteAddr: topo.left.outer4,
          localTs: topo.right.innerNet4, remoteTs: topo.left.innerNet4,
          psk: PSK, proposals: 'aes128-sha256-modp2048', espProposals: 'aes128-sha256-modp2048', encap: true,
        }),
        logLevels: { ike: 1, chd: 1, net: 1 },
      }),
    ]);
  });
  afterEach(function () { dumpLogsOnFailure(this, { styxd: styx?.logPath, charon: charon?.logPath }); });
  after(async function () {
    await Promise.all([styx?.stop(), charon?.stop()]);
    await topo?.teardown();
  });

  async function carries(): Promise<void> {
    const t = topo!;
    const [sa] = await styx!.waitForSas((s) => s[0]?.state === 'ESTABLISHED' && s[0].children.some((c) => c.state === 'INSTALLED'));
    await charon!.waitForSas((s) => s[0]?.children.some((c) => c.state === 'INSTALLED') ?? false);
    assert.equal(sa!.version, 1);
    const out = await ping(t.left.ns, t.right.inner4, { from: t.left.inner4, count: 5 });
    assert.equal(out.received, 5, out.output);
    const back = await ping(t.right.ns, t.left.inner4, { from: t.right.inner4, count: 5 });
    assert.equal(back.received, 5, back.output);
    const tcp = await iperfTcp({ clientNs: t.left.ns, clientAddr: t.left.inner4, serverNs: t.right.ns, serverAddr: t.right.inner4, seconds: 2 });
    assert.ok(tcp.receivedBytes > 0);
    const [after] = await styx!.listJson();
    const child = after!.children.find((c) => c.state === 'INSTALLED')!;
    // Every ping and the transfer went out and came back through styx's ESP SAs.
    assert.ok(Number(child.packetsOut) >= 10 && Number(child.packetsIn) >= 10, JSON.stringify(child));
    assert.ok(Number(child.bytesOut) >= tcp.receivedBytes);
  }

  it('styx initiates Main Mode and Quick Mode with PFS: ping both ways and TCP cross the tunnel', async function () {
    await styx!.styx(['initiate', 'peer']);
    await carries();
    await styx!.styx(['terminate', 'peer']);
    await styx!.waitForSas((s) => s.length === 0);
    await charon!.waitForSas((s) => s.length === 0);
  });

  it('charon initiates: the same traffic crosses with styx as responder', async function () {
    await charon!.initiate(CHILD, 'styx');
    await carries();
  });
});
