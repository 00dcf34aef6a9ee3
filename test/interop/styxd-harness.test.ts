/**
 * Proves the styxd half of the harness: styxd runs in one namespace, charon
 * in the other, and the two list the same IKE SA and CHILD_SA. The protocol
 * details belong to the interop suites proper; this only shows the harness
 * can start, drive, read and stop styxd against a real peer.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopology, dumpLogsOnFailure, pskSwanctlConf, requireInterop, startCharon, startStyxd,
  type CharonHandle, type StyxdHandle, type Topology,
} from './harness.js';

const PSK = 'styx interop test key, not secret';

function styxConfig(t: Topology): string {
  const { left, right } = t;
  return `daemon:
  listen: [${left.outer4}]
  dataplane: memory
connections:
  peer:
    version: 2
    local_addrs: [${left.outer4}]
    remote_addrs: [${right.outer4}]
    proposals: [aes128-sha256-modp2048]
    local: { auth: psk, id: ${left.outer4} }
    remote: { auth: psk, id: ${right.outer4} }
    start_action: none
    children:
      net:
        local_ts: [${left.innerNet4}]
        remote_ts: [${right.innerNet4}]
        esp_proposals: [aes128gcm16]
        start_action: none
secrets:
  - ids: [${left.outer4}, ${right.outer4}]
    psk: "${PSK}"
`;
}

describe('interop harness: styxd <-> strongSwan smoke test', function () {
  let topo: Topology | undefined;
  let styx: StyxdHandle | undefined;
  let charon: CharonHandle | undefined;

  before(async function () {
    requireInterop(this, { styxd: true });
    topo = await createTopology('styx');
    const dir = topo.dir('styxd-l');
    const conf = join(dir, 'styx.yaml');
    writeFileSync(conf, styxConfig(topo));
    [styx, charon] = await Promise.all([
      startStyxd(topo.left.ns, conf, { dir, logLevel: 'ike=debug' }),
      startCharon(topo.right.ns, topo.dir('charon-r'), {
        swanctl: pskSwanctlConf({
          localAddr: topo.right.outer4, remoteAddr: topo.left.outer4,
          localTs: topo.right.innerNet4, remoteTs: topo.left.innerNet4,
          psk: PSK, encap: false,
        }),
      }),
    ]);
  });
  afterEach(function () {
    dumpLogsOnFailure(this, { styxd: styx?.logPath, charon: charon?.logPath });
  });
  after(async function () {
    await Promise.all([styx?.stop(), charon?.stop()]);
    await topo?.teardown();
  });

  it('starts styxd with its control socket and lists no SAs', async function () {
    assert.ok(styx!.running());
    assert.deepEqual(await styx!.listJson(), []);
  });

  it('initiates from styxd; both sides list the same SPIs', async function () {
    await styx!.styx(['initiate', 'peer']);
    const [sa] = await styx!.waitForSas((s) => s[0]?.state === 'ESTABLISHED' && s[0].children[0]?.state === 'INSTALLED');
    const [csa] = await charon!.waitForSas((s) => s[0]?.children[0]?.state === 'INSTALLED');
    assert.equal(csa!.state, 'ESTABLISHED');
    assert.equal(sa!.spiI, csa!.initiatorSpi);
    assert.equal(sa!.spiR, csa!.responderSpi);
    assert.equal(sa!.children[0]!.spiIn, csa!.children[0]!.spiOut);
    assert.equal(sa!.children[0]!.spiOut, csa!.children[0]!.spiIn);
  });

  it('terminates from styxd; charon drops the SA too', async function () {
    await styx!.styx(['terminate', 'peer']);
    await styx!.waitForSas((s) => s.length === 0);
    await charon!.waitForSas((s) => s.length === 0);
  });
});
