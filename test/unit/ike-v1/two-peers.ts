/**
 * Two IKEv1 managers in one process joined by an in-memory "network" that
 * can drop or tamper with datagrams, driven by a manual clock: the IKEv1
 * counterpart of test/unit/ike/two-peers.ts.
 */
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config/index.js';
import type { Endpoint } from '../../../src/dataplane/api.js';
import { MemoryBackend } from '../../../src/dataplane/backends/memory/index.js';
import type { IkeSaV1 } from '../../../src/ike/v1/ike-sa.js';
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

/**
 * A port-translating NAT in front of one host: what it sends leaves from a
 * mapped port of the same address (one per inside port, allocated from
 * `base`), and only datagrams to a mapped port get back in. `remap` forgets
 * every mapping, as a NAT does after a reboot or idle timeout.
 */
export class PortNat {
  private out = new Map<number, number>();
  private next: number;
  constructor(readonly inside: string, base: number) { this.next = base; }
  /** The source the outside sees. */
  source(from: Endpoint): Endpoint {
    if (from.address !== this.inside) return from;
    let port = this.out.get(from.port);
    if (port === undefined) { port = this.next++; this.out.set(from.port, port); }
    return { address: from.address, port };
  }
  /** The inside destination of a datagram to `to`, or null when no mapping has that port (dropped). */
  destination(to: Endpoint): Endpoint | null {
    if (to.address !== this.inside) return to;
    for (const [inside, mapped] of this.out) if (mapped === to.port) return { address: to.address, port: inside };
    return null;
  }
  mapped(insidePort: number): number | undefined { return this.out.get(insidePort); }
  remap(base: number): void { this.out.clear(); this.next = base; }
}

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
  /** A NAT on the path, if any: rewrites sources on the way and maps destinations back. */
  nat: PortNat | null = null;
  /** Rewrites the source the receiver sees, after the NAT (e.g. a peer that changes its port by itself). */
  source: (from: Endpoint, to: Endpoint) => Endpoint = (f) => f;
  readonly wire: { from: Endpoint; to: Endpoint; data: Buffer }[] = [];
  private inFlight = 0;

  constructor(leftYaml = v1Config('left'), rightYaml = v1Config('right')) {
    this.logs.setDefault('secret');
    const net = (self: Endpoint) => ({
      send: (data: Buffer, local: Endpoint, remote: Endpoint): void => {
        this.wire.push({ from: local, to: remote, data });
        const out = this.tap(data, local, remote);
        if (!out) return;
        const from = this.source(this.nat ? this.nat.source(local) : local, remote);
        const to = this.nat ? this.nat.destination(remote) : remote;
        if (!to) return;
        const target = to.address === LEFT.address ? this.left : this.right;
        this.inFlight++;
        setImmediate(() => { this.inFlight--; target.receive(out, to, from); });
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

/** The one ISAKMP SA of a side, established. */
function only(sas: IkeSaV1[], dump: () => string): IkeSaV1 {
  assert.equal(sas.length, 1, `${sas.map((s) => `${s.tag} ${s.state}`).join('; ')}\n${dump()}`);
  assert.equal(sas[0]!.state, 'ESTABLISHED');
  return sas[0]!;
}

/**
 * Both sides hold one ISAKMP SA with the same cookies and one IPsec SA pair
 * with mirrored SPIs, and their data planes hold exactly that pair: two SAs,
 * one policy each way, one reserved inbound SPI. Anything more is a leak.
 */
export function onePairNoLeak(p: V1Peers): { l: IkeSaV1; r: IkeSaV1 } {
  const l = only(p.left.sas, () => p.dump()), r = only(p.right.sas, () => p.dump());
  assert.ok(l.cookieI.equals(r.cookieI) && l.cookieR.equals(r.cookieR), 'cookies differ');
  assert.equal(l.children.length, 1, p.dump());
  assert.equal(r.children.length, 1, p.dump());
  const [lc, rc] = [l.children[0]!, r.children[0]!];
  assert.deepEqual([lc.spiIn, lc.spiOut], [rc.spiOut, rc.spiIn]);
  for (const [dp, c] of [[p.dpL, lc], [p.dpR, rc]] as const) {
    assert.deepEqual([...dp.sas.keys()].sort(), [`in:${c.spiIn}`, `out:${c.spiOut}`].sort());
    assert.equal(dp.policies.length, 2, JSON.stringify(dp.policies.map((x) => [x.direction, x.spi])));
    assert.deepEqual([...dp.reserved], [c.spiIn]);
  }
  return { l, r };
}
