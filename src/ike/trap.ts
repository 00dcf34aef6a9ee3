/**
 * Trap policies: outbound policies without an SA (SPI 0) that make the data
 * plane raise an acquire when matching traffic appears; styx then initiates
 * the connection. Used for children with start_action trap and for
 * dpd_action trap (RFC 4301 5.1.1: negotiate on demand).
 */
import type { ChildConfig, ConnectionConfig } from '../config/model.js';
import type { DataplaneBackend, PolicyParams, Selector } from '../dataplane/api.js';
import type { Logger } from '../util/log.js';
import { fromConfig, tsText } from './ts.js';
import type { TrafficSelector } from '../wire/ikev2/types.js';

const asSelector = (ts: TrafficSelector): Selector => ({
  family: ts.startAddr.length === 4 ? 4 : 6, startAddr: ts.startAddr, endAddr: ts.endAddr,
  protocol: ts.ipProtocol, startPort: ts.startPort, endPort: ts.endPort,
});

const sameSelector = (a: Selector, b: Selector): boolean =>
  a.startAddr.equals(b.startAddr) && a.endAddr.equals(b.endAddr) && a.protocol === b.protocol && a.startPort === b.startPort && a.endPort === b.endPort;

interface Trap { conn: string; child: string; policies: PolicyParams[] }

export class TrapManager {
  private traps: Trap[] = [];

  constructor(
    private readonly dp: DataplaneBackend,
    private readonly log: Logger,
    /** Our address toward a peer, for 'dynamic' selectors. */
    private readonly localAddress: (remote: string) => string | undefined,
    private readonly initiate: (name: string) => void,
  ) {}

  isTrapped(conn: string, child?: string): boolean { return this.traps.some((t) => t.conn === conn && (child === undefined || t.child === child)); }

  /** Installs trap policies for one child of a connection. */
  async install(conn: ConnectionConfig, child: ChildConfig): Promise<void> {
    if (this.isTrapped(conn.name, child.name)) return;
    const remote = conn.remoteAddrs.find((a) => a !== '%any' && !a.includes('/'));
    const local = remote ? this.localAddress(remote) : undefined;
    if (!remote || !local) { this.log.warn(`${conn.name}/${child.name}: cannot trap traffic without a concrete remote address`); return; }
    const tag = `trap:${conn.name}/${child.name}`;
    // A tunnel-mode trap names the peer as the tunnel's far end, as the tunnel's own policy will:
    // the kernel's data plane routes the remote selector toward it (its route lookup comes before
    // the policy lookup, so without a route nothing reaches the trap) and matches the acquire's
    // larval state to the SA that the negotiation installs.
    const tunnel = child.mode === 'tunnel' ? { src: local, dst: remote } : null;
    const policies: PolicyParams[] = [];
    for (const l of child.localTs) for (const r of child.remoteTs) {
      policies.push({ direction: 'out', local: asSelector(fromConfig(l, local)), remote: asSelector(fromConfig(r, remote)), mode: child.mode, spi: 0, tunnel, tag });
    }
    for (const p of policies) await this.dp.addPolicy(p);
    this.traps.push({ conn: conn.name, child: child.name, policies });
    this.log.info(`${conn.name}/${child.name}: trap installed for ${child.localTs.map((t) => tsText(fromConfig(t, local))).join(',')} === ${child.remoteTs.map((t) => tsText(fromConfig(t, remote))).join(',')}`);
  }

  /** Removes a connection's traps (all children, or one). */
  async remove(conn: string, child?: string): Promise<void> {
    const gone = this.traps.filter((t) => t.conn === conn && (child === undefined || t.child === child));
    this.traps = this.traps.filter((t) => !gone.includes(t));
    for (const t of gone) for (const p of t.policies) await this.dp.deletePolicy(p).catch(() => undefined);
  }

  /** The data plane saw traffic for a trap: the trap goes and the connection is initiated for that child. */
  async onAcquire(sel: { local: Selector; remote: Selector }): Promise<void> {
    const t = this.traps.find((x) => x.policies.some((p) => sameSelector(p.local, sel.local) && sameSelector(p.remote, sel.remote)));
    if (!t) return;
    this.log.info(`${t.conn}/${t.child}: traffic matched the trap: initiating`);
    await this.remove(t.conn, t.child);
    this.initiate(`${t.conn}/${t.child}`);
  }

  async clear(): Promise<void> {
    for (const t of [...this.traps]) await this.remove(t.conn, t.child);
  }
}
