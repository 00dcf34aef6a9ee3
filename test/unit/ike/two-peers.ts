/**
 * Two IKEv2 managers in one process joined by an in-memory "network" that
 * can drop or tamper with datagrams: fast, deterministic exchange tests.
 */
import { parseConfig } from '../../../src/config/index.js';
import type { Endpoint } from '../../../src/dataplane/api.js';
import { MemoryBackend } from '../../../src/dataplane/backends/memory/index.js';
import { IkeV2Manager } from '../../../src/ike/v2/manager.js';
import { LogManager } from '../../../src/util/log.js';
import { ManualClock } from '../../../src/util/timers.js';

export const LEFT: Endpoint = { address: '192.0.2.1', port: 500 };
export const RIGHT: Endpoint = { address: '192.0.2.2', port: 500 };

/**
 * `local` and `remote` replace the flow mappings of those keys (e.g. a
 * pubkey side); `daemonExtra` adds lines under daemon:.
 */
export function peerConfig(side: 'left' | 'right', opts: { proposals?: string; esp?: string; psk?: string; start?: boolean; localTs?: string; remoteTs?: string; cookieThreshold?: number; extra?: string; child?: string; children?: string; local?: string; remote?: string; daemonExtra?: string } = {}): string {
  const me = side === 'left' ? LEFT : RIGHT, peer = side === 'left' ? RIGHT : LEFT;
  const myNet = side === 'left' ? '10.1.0.0/24' : '10.2.0.0/24', peerNet = side === 'left' ? '10.2.0.0/24' : '10.1.0.0/24';
  return `
daemon:
  listen: [${me.address}]
  cookie_threshold: ${opts.cookieThreshold ?? 10}
${opts.daemonExtra ?? ''}connections:
  demo:
    local_addrs: [${me.address}]
    remote_addrs: [${peer.address}]
    proposals: [${opts.proposals ?? 'aes128-sha256-x25519'}]
    local: ${opts.local ?? `{ auth: psk, id: ${side}.example }`}
    remote: ${opts.remote ?? `{ auth: psk, id: ${side === 'left' ? 'right' : 'left'}.example }`}
    retransmit: { timeout: 1, tries: 3, base: 2 }
${opts.extra ?? ''}    children:
      net:
        local_ts: [${opts.localTs ?? myNet}]
        remote_ts: [${opts.remoteTs ?? peerNet}]
        esp_proposals: [${opts.esp ?? 'aes128gcm16, aes128-sha256'}]
${opts.child ?? ''}${opts.children ?? ''}secrets:
  - { ids: [left.example, right.example], psk: "${opts.psk ?? 'shared secret for tests'}" }
`;
}

export type Tap = (data: Buffer, from: Endpoint, to: Endpoint) => Buffer | null;

export class TwoPeers {
  readonly clock = new ManualClock();
  readonly lines: string[] = [];
  readonly logs = new LogManager((l) => this.lines.push(l), false);
  readonly dpL = new MemoryBackend();
  readonly dpR = new MemoryBackend();
  readonly left: IkeV2Manager;
  readonly right: IkeV2Manager;
  /** Every datagram passes here; return null to drop it or another buffer to replace it. */
  tap: Tap = (d) => d;
  readonly wire: { from: Endpoint; to: Endpoint; data: Buffer }[] = [];
  private inFlight = 0;

  constructor(leftYaml = peerConfig('left'), rightYaml = peerConfig('right')) {
    this.logs.setDefault('debug');
    const net = (self: Endpoint) => ({
      send: (data: Buffer, local: Endpoint, remote: Endpoint): void => {
        const out = this.tap(data, local, remote);
        this.wire.push({ from: local, to: remote, data });
        if (!out) return;
        const target = remote.address === LEFT.address ? this.left : this.right;
        this.inFlight++;
        setImmediate(() => { this.inFlight--; target.receive(out, remote, local); });
      },
      localFor: (_remote: string, port: number) => ({ address: self.address, port }),
    });
    this.left = new IkeV2Manager(parseConfig(leftYaml, 'left.yaml'), this.dpL, net(LEFT), this.clock, this.logs.for('ike'));
    this.right = new IkeV2Manager(parseConfig(rightYaml, 'right.yaml'), this.dpR, net(RIGHT), this.clock, this.logs.for('ike'));
  }

  /** Lets queued datagrams and promise chains run until the network is quiet. */
  async settle(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setImmediate(r));
      if (this.inFlight === 0) { await new Promise((r) => setImmediate(r)); if (this.inFlight === 0) return; }
    }
  }

  /** Advances the manual clock in steps, settling in between, so retransmissions happen. */
  async advance(ms: number, step = 250): Promise<void> {
    for (let t = 0; t < ms; t += step) { this.clock.advance(step); await this.settle(); }
  }
}
