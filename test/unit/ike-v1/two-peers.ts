/**
 * Two IKEv1 managers in one process joined by an in-memory "network" that
 * can drop or tamper with datagrams, driven by a manual clock: the IKEv1
 * counterpart of test/unit/ike/two-peers.ts.
 */
import { parseConfig } from '../../../src/config/index.js';
import type { Endpoint } from '../../../src/dataplane/api.js';
import { MemoryBackend } from '../../../src/dataplane/backends/memory/index.js';
import { IkeV1Manager } from '../../../src/ike/v1/manager.js';
import { LogManager } from '../../../src/util/log.js';
import { ManualClock } from '../../../src/util/timers.js';

export const LEFT: Endpoint = { address: '192.0.2.1', port: 500 };
export const RIGHT: Endpoint = { address: '192.0.2.2', port: 500 };

export interface V1PeerOptions {
  proposals?: string;
  esp?: string;
  psk?: string;
  aggressive?: boolean;
  localTs?: string;
  remoteTs?: string;
  /** Extra connection keys, indented four spaces. */
  extra?: string;
  localId?: string;
  remoteId?: string;
  /** Extra child keys, indented eight spaces. */
  child?: string;
}

export function v1Config(side: 'left' | 'right', o: V1PeerOptions = {}): string {
  const me = side === 'left' ? LEFT : RIGHT, peer = side === 'left' ? RIGHT : LEFT;
  const myNet = side === 'left' ? '10.1.0.0/24' : '10.2.0.0/24', peerNet = side === 'left' ? '10.2.0.0/24' : '10.1.0.0/24';
  return `
daemon:
  listen: [${me.address}]
connections:
  demo:
    version: 1
    aggressive: ${o.aggressive ? 'yes' : 'no'}
    local_addrs: [${me.address}]
    remote_addrs: [${peer.address}]
    proposals: [${o.proposals ?? 'aes128-sha256-modp2048'}]
    local: { auth: psk, id: ${o.localId ?? `${side}.example`} }
    remote: { auth: psk, id: ${o.remoteId ?? `${side === 'left' ? 'right' : 'left'}.example`} }
    retransmit: { timeout: 1, tries: 3, base: 2 }
${o.extra ?? ''}    children:
      net:
        local_ts: [${o.localTs ?? myNet}]
        remote_ts: [${o.remoteTs ?? peerNet}]
        esp_proposals: [${o.esp ?? 'aes128-sha256'}]
${o.child ?? ''}secrets:
  - { ids: [left.example, right.example], psk: "${o.psk ?? 'shared secret for tests'}" }
`;
}

export type Tap = (data: Buffer, from: Endpoint, to: Endpoint) => Buffer | null;

export class V1Peers {
  readonly clock = new ManualClock();
  readonly lines: string[] = [];
  readonly logs = new LogManager((l) => this.lines.push(l), false);
  readonly dpL = new MemoryBackend();
  readonly dpR = new MemoryBackend();
  readonly left: IkeV1Manager;
  readonly right: IkeV1Manager;
  /** Every datagram passes here; return null to drop it or another buffer to replace it. */
  tap: Tap = (d) => d;
  readonly wire: { from: Endpoint; to: Endpoint; data: Buffer }[] = [];
  private inFlight = 0;

  constructor(leftYaml = v1Config('left'), rightYaml = v1Config('right')) {
    this.logs.setDefault('secret');
    const net = (self: Endpoint) => ({
      send: (data: Buffer, local: Endpoint, remote: Endpoint): void => {
        this.wire.push({ from: local, to: remote, data });
        const out = this.tap(data, local, remote);
        if (!out) return;
        const target = remote.address === LEFT.address ? this.left : this.right;
        this.inFlight++;
        setImmediate(() => { this.inFlight--; target.receive(out, remote, local); });
      },
      localFor: (_remote: string, port: number) => ({ address: self.address, port }),
    });
    this.left = new IkeV1Manager(parseConfig(leftYaml, 'left.yaml'), this.dpL, net(LEFT), this.clock, this.logs.for('ike'));
    this.right = new IkeV1Manager(parseConfig(rightYaml, 'right.yaml'), this.dpR, net(RIGHT), this.clock, this.logs.for('ike'));
  }

  async settle(): Promise<void> {
    for (let i = 0; i < 400; i++) {
      await new Promise((r) => setImmediate(r));
      if (this.inFlight === 0) { await new Promise((r) => setImmediate(r)); if (this.inFlight === 0) return; }
    }
  }

  /** Advances the manual clock in steps, settling in between, so timers fire in order. */
  async advance(ms: number, step = 250): Promise<void> {
    for (let t = 0; t < ms; t += step) { this.clock.advance(step); await this.settle(); }
  }

  /** Starts the left side and waits until phase 1 and Quick Mode are done (or failed). */
  async establish(name = 'demo'): Promise<void> {
    const up = this.left.initiateAndWait(name, 60_000);
    up.catch(() => undefined);
    await this.settle();
    await up;
  }

  dump(): string { return this.lines.join('\n'); }
}
