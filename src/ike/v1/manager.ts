/**
 * The IKEv1 SA manager: demultiplexes ISAKMP datagrams to their SA by the
 * initiator cookie (RFC 2408 2.5.3), starts responders on a first Main or
 * Aggressive Mode message, answers a peer's retransmissions from the last
 * message of that exchange, and owns the SA tables, lifetimes, phase 1
 * rekeys (rekey.ts), DPD (RFC 3706) and following a peer whose NAT mapping
 * changed (RFC 3947 4). Same outward shape as IkeV2Manager.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { ChildConfig, ConnectionConfig, StyxConfig } from '../../config/model.js';
import type { DataplaneBackend, Endpoint } from '../../dataplane/api.js';
import { fmt, type Sender } from '../../net/sockets.js';
import { StyxError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import type { Clock } from '../../util/timers.js';
import { IsakmpVersionError, V1ExchangeType, decodeIsakmp, describeV1, v1ExchangeName, type IsakmpMessage } from '../../wire/ikev1/index.js';
import type { IkeSaInfo } from '../../control/protocol.js';
import { spiHex, uninstallChild, type ChildSa } from '../v2/child-sa.js';
import { handleAggressive, respondAggressive1, startAggressiveMode } from './aggressive.js';
import type { IkeV1Counters, V1Context } from './context.js';
import { describeV1Sa } from './describe.js';
import { IkeSaV1 } from './ike-sa.js';
import { deleteChildV1, deleteIsakmp, handleInformational, sendDpd } from './info.js';
import { handleMainMode, respondMainMode1, startMainMode } from './main-mode.js';
import { abandonQuicks, handleQuick, initiateQuick, quickGaveUp, rekeyUnderWay } from './quick.js';
import { handOver, isakmpUp, predecessorFor, rekeyIsakmp, rekeySeconds, type V1RekeyHost } from './rekey.js';

export interface V1ManagerEvents {
  'ike-up': [IkeSaV1];
  'ike-down': [IkeSaV1, string];
  'child-up': [IkeSaV1, ChildSa];
  'child-failed': [IkeSaV1, string];
}

const ZERO = Buffer.alloc(8);
/** Rekeys start up to this fraction before the configured rekey time. */
const REKEY_JITTER = 0.1;
const jittered = (seconds: number): number => Math.round(seconds * 1000 * (1 - Math.random() * REKEY_JITTER));

/** How long a pair the peer made may run past our soft volume limit before we renew it ourselves. */
const PEER_RENEWS_MS = 2000;

export class IkeV1Manager implements V1Context, V1RekeyHost {
  readonly counters: IkeV1Counters = { malformed: 0, integrityFailures: 0, unknownSpi: 0, retransmitsAnswered: 0, ikeEstablished: 0, authFailures: 0, quickModes: 0, dpdSent: 0 };
  readonly events = new EventEmitter<V1ManagerEvents>();
  /** By initiator cookie: it is the only cookie a first message carries. */
  private byCookie = new Map<string, IkeSaV1>();
  /** Pairs whose soft volume limit has been acted on. */
  private softReached = new WeakSet<ChildSa>();
  private cfg: StyxConfig;

  constructor(
    cfg: StyxConfig,
    readonly dp: DataplaneBackend,
    readonly sender: Sender & { localFor(remote: string, port: number, preferred?: string): Endpoint | undefined },
    readonly clock: Clock,
    readonly log: Logger,
  ) {
    this.cfg = cfg;
    dp.events.on('expire', (e) => this.onExpire(e.spi, e.direction, e.hard));
  }

  /**
   * The data plane counted an IPsec SA past a volume limit (the kilobytes
   * life of RFC 2407 4.5, held per SA as RFC 4301 4.4.2.1 asks): hard
   * deletes the pair and tells the peer, soft renews it with a Quick Mode.
   * IKEv1 has no rule for two sides renewing the same pair at once, so a
   * pair the peer made is left to the peer for a moment and renewed here
   * only if the peer has not done it by then. Time limits are kept by the
   * timers in childUp, so a pair already being replaced is left alone.
   */
  private onExpire(spi: number, direction: 'in' | 'out', hard: boolean): void {
    for (const sa of this.sas) {
      const child = sa.children.find((c) => (direction === 'in' ? c.spiIn : c.spiOut) === spi >>> 0);
      if (!child) continue;
      const name = `${child.config.name}{${child.uniqueId}}`;
      if (hard) {
        if (child.state === 'DELETING' || child.state === 'DELETED') return;
        child.state = 'DELETING';
        this.log.info(`${sa.tag}: CHILD_SA ${name} reached a hard volume limit (${spiHex(spi)}_${direction === 'in' ? 'i' : 'o'})`);
        void sa.enqueue(() => deleteChildV1(this, sa, child, 'hard volume limit reached'));
        return;
      }
      // Both SAs of a pair cross the soft limit at about the same time: one renewal serves both.
      if (child.state !== 'INSTALLED' || this.softReached.has(child)) return;
      this.softReached.add(child);
      const renew = (): void => {
        const owner = this.ownerOf(child);
        if (child.state !== 'INSTALLED' || owner?.state !== 'ESTABLISHED' || rekeyUnderWay(owner, child)) return;
        this.log.info(`${owner.tag}: CHILD_SA ${name} reached a soft volume limit: rekeying`);
        void owner.enqueue(() => initiateQuick(this, owner, child.config, child));
      };
      if (child.createdByUs) renew();
      else {
        this.log.info(`${sa.tag}: CHILD_SA ${name} reached a soft volume limit; the peer made it, so it has ${PEER_RENEWS_MS / 1000}s to renew it first`);
        child.timers.push(this.clock.setTimeout(renew, PEER_RENEWS_MS));
      }
      return;
    }
  }

  /** RFC 2409 5: nonces of 8-256 bytes; 32 random bytes. Tests may replace the source. */
  nonceSource: () => Buffer = () => randomBytes(32);
  nonce(): Buffer { return this.nonceSource(); }

  config(): StyxConfig { return this.cfg; }
  setConfig(cfg: StyxConfig): void { this.cfg = cfg; }
  connection(name: string): ConnectionConfig | undefined { return this.cfg.connections.find((c) => c.name === name); }
  /** The ISAKMP (phase 1) SAs. */
  get sas(): IkeSaV1[] { return [...this.byCookie.values()].filter((s) => s.state !== 'DESTROYED'); }

  register(sa: IkeSaV1): void {
    const key = sa.cookieI.toString('hex');
    if (this.byCookie.get(key) === sa) return;
    this.byCookie.set(key, sa);
    if (sa.initiator) return;
    sa.predecessor = predecessorFor(this, sa);
    // A responder whose initiator stops half-way would stay forever: give it as long as the initiator retransmits.
    const { timeout, tries, base } = sa.conn.retransmit;
    let window = 0;
    for (let k = 0; k <= tries; k++) window += timeout * Math.pow(base, k);
    sa.timers.push(this.clock.setTimeout(() => {
      if (sa.state === 'CONNECTING') void this.destroy(sa, `phase 1 with ${sa.remote.address} did not complete in ${Math.round(window)}s (stuck in ${sa.step})`);
    }, window * 1000));
  }

  siblings(sa: IkeSaV1): IkeSaV1[] {
    return this.sas.filter((s) => s !== sa && s.conn.name === sa.conn.name && s.remote.address === sa.remote.address);
  }

  natTLocal(sa: IkeSaV1): Endpoint | undefined {
    return this.sender.localFor(sa.remote.address, this.cfg.daemon.natPort, sa.local.address);
  }

  /** The control listing of one SA (phase 1 and its IPsec SAs). */
  describe(sa: IkeSaV1): Promise<IkeSaInfo> { return describeV1Sa(this.dp, sa); }

  ikeUp(sa: IkeSaV1): void {
    this.events.emit('ike-up', sa);
    this.scheduleDpd(sa);
    // RFC 3947 4: from now on an authenticated message from a new address or port moves the SA.
    sa.onAuthenticated = () => { if (sa.arrival) this.follow(sa, sa.arrival.local, sa.arrival.remote); };
    // A new phase 1 well before the lifetime (RFC 2409 4 leaves rekeying to either side), jittered like IKEv2's.
    const rekey = rekeySeconds(sa);
    if (rekey > 0 && rekey < sa.lifetime) {
      const ms = jittered(rekey);
      sa.rekeyAt = this.clock.now() + ms;
      sa.timers.push(this.clock.setTimeout(() => { void sa.enqueue(() => rekeyIsakmp(this, sa)); }, ms));
    }
    sa.timers.push(this.clock.setTimeout(() => {
      if (sa.state === 'DESTROYED') return;
      // The ISAKMP SA goes; its IPsec SAs stay if a newer ISAKMP SA with the peer can own them.
      const heir = handOver(this, sa);
      this.log.info(`${sa.tag}: ISAKMP SA reached its lifetime of ${sa.lifetime}s${heir ? `; IPsec SAs stay with ${heir.tag}` : ''}`);
      void sa.enqueue(() => deleteIsakmp(this, sa, 'lifetime expired'));
    }, sa.lifetime * 1000));
    sa.onGiveUp = (mid) => { void sa.enqueue(() => quickGaveUp(this, sa, mid)); };
    void sa.enqueue(() => isakmpUp(this, sa));
    for (const cfg of sa.queued) void sa.enqueue(() => initiateQuick(this, sa, cfg));
    sa.queued = [];
  }

  /** The ISAKMP SA that owns an IPsec SA now (a phase 1 rekey moves them). */
  private ownerOf(child: ChildSa): IkeSaV1 | undefined { return this.sas.find((s) => s.children.includes(child)); }

  childUp(sa: IkeSaV1, child: ChildSa): void {
    this.events.emit('child-up', sa, child);
    const cfg = child.config;
    // Only the side that created the pair renews it, so both never race (IKEv1 has no collision rules).
    // The Quick Mode goes over whichever ISAKMP SA owns the pair by then.
    if (child.createdByUs) {
      child.timers.push(this.clock.setTimeout(() => {
        const owner = this.ownerOf(child);
        if (child.state !== 'INSTALLED' || owner?.state !== 'ESTABLISHED') return;
        void owner.enqueue(() => initiateQuick(this, owner, cfg, child));
      }, jittered(cfg.rekeyTime)));
    }
    child.timers.push(this.clock.setTimeout(() => {
      const owner = this.ownerOf(child);
      if (child.state === 'DELETED' || !owner) return;
      this.log.info(`${owner.tag}: CHILD_SA ${cfg.name}{${child.uniqueId}} reached its lifetime of ${cfg.lifetime}s`);
      void owner.enqueue(() => deleteChildV1(this, owner, child, 'lifetime expired'));
    }, cfg.lifetime * 1000));
  }

  /**
   * RFC 3947 4 (and RFC 7296 2.23 in spirit): past phase 1, an authenticated
   * message from a new address or port means the peer's NAT mapping changed;
   * the ISAKMP SA and every IPsec SA it owns move there, outbound by its
   * destination and inbound by its source. A host behind a NAT does not
   * move: its peer's address is fixed, only its own mapping changes.
   */
  private follow(sa: IkeSaV1, local: Endpoint, remote: Endpoint): void {
    if (sa.remote.address === remote.address && sa.remote.port === remote.port && sa.local.port === local.port && sa.local.address === local.address) return;
    if (sa.nat.local) {
      this.log.debug(`${sa.tag}: message from ${fmt(remote)} ignored for address updates: we are behind a NAT`);
      return;
    }
    this.log.info(`${sa.tag}: peer now at ${fmt(remote)} (was ${fmt(sa.remote)}), local ${fmt(local)}`);
    sa.remote = { ...remote };
    sa.local = { ...local };
    for (const c of sa.children) {
      if (c.state === 'DELETED') continue;
      if (c.outboundInstalled) void this.dp.updateSa(c.spiOut, 'out', { src: sa.local, dst: sa.remote }).catch((e: Error) => this.log.warn(`${sa.tag}: moving CHILD_SA ${spiHex(c.spiOut)}_o: ${e.message}`));
      void this.dp.updateSa(c.spiIn, 'in', { src: sa.remote, dst: sa.local }).catch((e: Error) => this.log.warn(`${sa.tag}: moving CHILD_SA ${spiHex(c.spiIn)}_i: ${e.message}`));
    }
  }

  childFailed(sa: IkeSaV1, reason: string): void { this.events.emit('child-failed', sa, reason); }

  async destroy(sa: IkeSaV1, reason: string): Promise<void> {
    if (sa.state === 'DESTROYED') return;
    const children = sa.children;
    sa.children = [];
    for (const child of children) {
      try {
        await uninstallChild(this.dp, child, sa.local, sa.remote, `${sa.conn.name}/${child.config.name}`);
        this.log.info(`${sa.tag}: CHILD_SA ${child.config.name}{${child.uniqueId}} ${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o deleted`);
      } catch (e) {
        this.log.error(`${sa.tag}: removing CHILD_SA ${child.config.name} from the data plane failed: ${(e as Error).message}`);
      }
    }
    await abandonQuicks(this, sa);
    if (this.byCookie.get(sa.cookieI.toString('hex')) === sa) this.byCookie.delete(sa.cookieI.toString('hex'));
    sa.destroy();
    this.log.info(`${sa.tag}: ISAKMP SA destroyed: ${reason}`);
    this.events.emit('ike-down', sa, reason);
  }

  /** Installs trap policies for a connection (dpd_action trap); set by the daemon, as for IKEv2. */
  onTrap: ((conn: ConnectionConfig) => void) | null = null;

  /**
   * RFC 3706 5.5: the peer is dead. Its SAs go, and dpd_action says what
   * follows: clear nothing more, restart a new phase 1, trap policies that
   * start one when traffic for the connection appears again.
   */
  private async peerDead(sa: IkeSaV1, why: string): Promise<void> {
    const conn = sa.conn, peer = sa.remote.address, wasUp = sa.establishedAt !== null;
    await this.destroy(sa, `DPD: ${why}`);
    // Another ISAKMP SA with the peer (a rekey's) still stands for it: nothing to restart.
    if (!wasUp || this.sas.some((s) => s.conn.name === conn.name && s.remote.address === peer && s.state !== 'DELETING')) return;
    if (conn.dpdAction === 'restart') {
      this.log.info(`${conn.name}: restarting after the peer was lost (dpd_action restart)`);
      try { this.initiate(conn.name); } catch (e) { this.log.warn(`${conn.name}: restart failed: ${(e as Error).message}`); }
    } else if (conn.dpdAction === 'trap') {
      this.log.info(`${conn.name}: trap policies until traffic needs the peer again (dpd_action trap)`);
      this.onTrap?.(conn);
    }
  }

  /**
   * RFC 3706 5.3: when nothing came from the peer for dpd_delay, ask
   * R-U-THERE; inbound ESP counts as hearing from it. A peer silent for
   * dpd_timeout after a question is dead (peerDead).
   */
  private scheduleDpd(sa: IkeSaV1): void {
    const delay = sa.conn.dpdDelay;
    if (delay <= 0) return;
    if (!sa.peer.dpd) { this.log.info(`${sa.tag}: peer did not announce DPD (RFC 3706): dead peer detection off`); return; }
    sa.timers.push(this.clock.setTimeout(() => { void sa.enqueue(() => this.dpdTick(sa)); }, delay * 1000));
  }

  private async dpdTick(sa: IkeSaV1): Promise<void> {
    if (sa.state !== 'ESTABLISHED') return;
    let heard = sa.lastHeard;
    for (const c of sa.children) {
      const q = await this.dp.querySa(c.spiIn, 'in').catch(() => null);
      if (q?.lastUsed !== null && q?.lastUsed !== undefined) heard = Math.max(heard, q.lastUsed);
    }
    const idle = this.clock.now() - heard;
    if (sa.dpd.outstanding > 0 && idle >= sa.conn.dpdTimeout * 1000) {
      this.log.warn(`${sa.tag}: DPD: ${sa.remote.address} silent for ${Math.round(idle / 1000)}s after ${sa.dpd.outstanding} R-U-THERE: dead, dpd_action ${sa.conn.dpdAction}`);
      await this.peerDead(sa, 'peer is dead');
      return;
    }
    if (idle >= sa.conn.dpdDelay * 1000 || sa.dpd.outstanding > 0) await sendDpd(this, sa);
    else sa.dpd.outstanding = 0;
    this.scheduleDpd(sa);
  }

  /**
   * Starts phase 1 for a connection ('conn' or 'conn/child'); Quick Mode
   * follows for the child(ren). 'conn/child' with an ISAKMP SA already up
   * (a trap's acquire, a restart of one child) only runs Quick Mode over the
   * newest one (RFC 2409 5.5).
   */
  initiate(name: string): IkeSaV1 {
    const [connName, childName] = name.split('/') as [string, string | undefined];
    const conn = this.cfg.connections.find((c) => c.name === connName);
    if (!conn) throw new StyxError('ERR_NO_CONN', `no connection named '${connName}'`);
    if (conn.version !== 1) throw new StyxError('ERR_VERSION', `connection '${connName}' is IKEv${conn.version}`);
    const child = childName ? conn.children.find((c) => c.name === childName) : conn.children[0];
    if (childName && !child) throw new StyxError('ERR_NO_CHILD', `connection '${connName}' has no child '${childName}'`);
    if (childName && child) {
      const up = this.sas.filter((s) => s.conn.name === conn.name && s.state === 'ESTABLISHED').sort((a, b) => b.establishedAt! - a.establishedAt!)[0];
      if (up) {
        this.log.info(`${up.tag}: Quick Mode for ${child.name} over the established ISAKMP SA`);
        void up.enqueue(() => initiateQuick(this, up, child));
        return up;
      }
    }
    const remoteAddr = conn.remoteAddrs.find((a) => a !== '%any' && !a.includes('/'));
    if (!remoteAddr) throw new StyxError('ERR_NO_PEER', `connection '${connName}' has no remote address to initiate to`);
    const pinned = conn.localAddrs.find((a) => a !== '%any');
    const local = this.sender.localFor(remoteAddr, conn.localPort, pinned);
    if (!local) throw new StyxError('ERR_NO_SOCKET', `no local socket on port ${conn.localPort} to reach ${remoteAddr}`);
    // RFC 2409 5.5: the first child right after phase 1, then every other child that starts by itself.
    const queued = child ? [child, ...conn.children.filter((c) => c !== child && c.startAction === 'start' && !childName)] : [];
    return this.startPhase1(conn, local, { address: remoteAddr, port: conn.remotePort }, null, queued);
  }

  /** A new phase 1 as initiator (Main or Aggressive Mode as configured), to replace `replaces` if given (rekey.ts). */
  startPhase1(conn: ConnectionConfig, local: Endpoint, remote: Endpoint, replaces: IkeSaV1 | null, queued: ChildConfig[] = []): IkeSaV1 {
    const sa = new IkeSaV1(conn, true, conn.aggressive, IkeSaV1.newCookie(), { ...local }, { ...remote }, this.sender, this.clock, this.log);
    sa.queued = queued;
    sa.replaces = replaces;
    sa.predecessor = replaces;
    this.register(sa);
    sa.setState('CONNECTING', `initiating to ${fmt(remote)}${replaces ? ` to replace ${replaces.tag}` : ''}`);
    sa.onGiveUp = (_mid, what) => { void this.destroy(sa, `${remote.address} did not answer ${what}${what === 'MM5' ? ': wrong PSK?' : ''}`); };
    try {
      if (conn.aggressive) startAggressiveMode(this, sa); else startMainMode(this, sa);
    } catch (e) {
      void this.destroy(sa, (e as Error).message);
      throw e;
    }
    return sa;
  }

  /** Resolves when phase 1 and the first Quick Mode (if any) are done; rejects with the reason otherwise. */
  initiateAndWait(name: string, timeoutMs: number): Promise<IkeSaV1> {
    return new Promise((resolve, reject) => {
      let sa: IkeSaV1 | undefined;
      let wantChild = false;
      const done = (fn: () => void): void => {
        timer.cancel();
        this.events.off('ike-down', onDown); this.events.off('child-up', onChild); this.events.off('child-failed', onChildFail); this.events.off('ike-up', onIke);
        fn();
      };
      const onDown = (s: IkeSaV1, why: string): void => { if (s === sa) done(() => reject(new Error(`${s.tag}: ${why}`))); };
      const onChild = (s: IkeSaV1): void => { if (s === sa) done(() => resolve(s)); };
      const onChildFail = (s: IkeSaV1, why: string): void => { if (s === sa) done(() => reject(new Error(`${s.tag}: ISAKMP SA established, Quick Mode failed: ${why}`))); };
      const onIke = (s: IkeSaV1): void => { if (s === sa && !wantChild) done(() => resolve(s)); };
      const timer = this.clock.setTimeout(() => done(() => reject(new Error(`${name}: not established within ${timeoutMs / 1000}s`))), timeoutMs);
      this.events.on('ike-down', onDown); this.events.on('child-up', onChild); this.events.on('child-failed', onChildFail); this.events.on('ike-up', onIke);
      // An ISAKMP SA that is up already only runs the child's Quick Mode: wait for that.
      try { sa = this.initiate(name); wantChild = sa.queued.length > 0 || sa.state === 'ESTABLISHED'; } catch (e) { done(() => reject(e)); }
    });
  }

  /**
   * Renews now what `styx rekey` names: the established ISAKMP SAs of a
   * connection with a new phase 1 (RFC 2409 5), or with `child` its installed
   * IPsec SA pairs of that name with a Quick Mode each (5.5), exactly as their
   * lifetime timers would. Returns how many it started.
   */
  rekey(name: string, child?: string): number {
    let n = 0;
    for (const sa of this.sas.filter((s) => s.conn.name === name && s.state === 'ESTABLISHED')) {
      if (child === undefined) {
        this.log.info(`${sa.tag}: starting a new phase 1 as the user asked`);
        void sa.enqueue(() => rekeyIsakmp(this, sa));
        n++;
        continue;
      }
      for (const c of sa.children.filter((x) => x.config.name === child && x.state === 'INSTALLED' && !rekeyUnderWay(sa, x))) {
        this.log.info(`${sa.tag}: renewing CHILD_SA ${c.config.name}{${c.uniqueId}} as the user asked`);
        void sa.enqueue(() => initiateQuick(this, sa, c.config, c));
        n++;
      }
    }
    return n;
  }

  /** Deletes every ISAKMP SA of a connection, telling the peer (RFC 2408 3.15). */
  async terminate(name: string): Promise<number> {
    const list = this.sas.filter((s) => s.conn.name === name);
    await Promise.all(list.map((sa) => sa.enqueue(() => deleteIsakmp(this, sa, 'terminated by user'))));
    return list.length;
  }

  async shutdown(): Promise<void> {
    await Promise.all(this.sas.map((sa) => deleteIsakmp(this, sa, 'daemon stopping')));
  }

  /** Entry point from net/: one ISAKMP datagram (version 1.x). Never throws. */
  receive(data: Buffer, local: Endpoint, remote: Endpoint): void {
    let msg: IsakmpMessage;
    try {
      msg = decodeIsakmp(data);
    } catch (e) {
      this.counters.malformed++;
      if (e instanceof IsakmpVersionError) this.log.info(`dropped IKE version ${e.major}.${e.minor} message from ${fmt(remote)}: not ISAKMP 1.x`);
      else if (e instanceof StyxError) this.log.info(`dropped message from ${fmt(remote)}: ${e.message}`);
      else this.log.error(`dropped message from ${fmt(remote)}: decoder bug: ${(e as Error).stack}`);
      return;
    }
    const h = msg.header;
    this.log.debug(`received ${describeV1(msg)} from ${fmt(remote)} (${data.length} bytes)`);
    const sa = this.byCookie.get(h.cookieI.toString('hex'));
    const first = h.cookieR.equals(ZERO) && h.messageId === 0 && !msg.encrypted;
    if (!sa) {
      if (msg.encrypted) { this.counters.unknownSpi++; this.log.debug(`dropped encrypted ${v1ExchangeName(h.exchangeType)} from ${fmt(remote)}: no ISAKMP SA with cookie ${h.cookieI.toString('hex')}_i`); return; }
      if (first && h.exchangeType === V1ExchangeType.IDENTITY_PROTECTION) { try { respondMainMode1(this, msg, data, local, remote); } catch (e) { this.bug(remote, e); } return; }
      if (first && h.exchangeType === V1ExchangeType.AGGRESSIVE) { try { respondAggressive1(this, msg, data, local, remote); } catch (e) { this.bug(remote, e); } return; }
      this.counters.unknownSpi++;
      this.log.debug(`dropped ${v1ExchangeName(h.exchangeType)} from ${fmt(remote)}: no ISAKMP SA with cookies ${h.cookieI.toString('hex')}_i ${h.cookieR.toString('hex')}_r`);
      return;
    }
    // A first message again is the peer retransmitting it; a mismatched responder cookie is someone else's SA.
    const cookieOk = h.cookieR.equals(sa.cookieR) || (sa.initiator && sa.cookieR.equals(ZERO)) || (!sa.initiator && first);
    // Past phase 1 the peer may arrive from a new address (its NAT changed): the HASH decides, then follow().
    const fromPeer = remote.address === sa.remote.address || (msg.encrypted && sa.state !== 'CONNECTING');
    if (!cookieOk || !fromPeer) {
      this.counters.unknownSpi++;
      this.log.debug(`dropped ${v1ExchangeName(h.exchangeType)} from ${fmt(remote)}: cookies ${h.cookieI.toString('hex')}_i ${h.cookieR.toString('hex')}_r do not name ${sa.tag}`);
      return;
    }
    void sa.enqueue(() => this.process(sa, msg, data, local, remote));
  }

  private bug(remote: Endpoint, e: unknown): void {
    if (e instanceof StyxError) { this.counters.malformed++; this.log.info(`dropped message from ${fmt(remote)}: ${e.message}`); return; }
    this.log.error(`message from ${fmt(remote)}: ${(e as Error).stack}`);
  }

  private async process(sa: IkeSaV1, msg: IsakmpMessage, raw: Buffer, local: Endpoint, remote: Endpoint): Promise<void> {
    if (sa.state === 'DESTROYED') return;
    const h = msg.header;
    if (sa.answerRetransmit(h.messageId, raw)) {
      this.counters.retransmitsAnswered++;
      this.log.debug(`${sa.tag}: peer retransmitted ${v1ExchangeName(h.exchangeType)} ${h.messageId.toString(16)}: sent our last message again`);
      return;
    }
    sa.arrival = { local, remote };
    try {
      switch (h.exchangeType) {
        case V1ExchangeType.IDENTITY_PROTECTION:
        case V1ExchangeType.AGGRESSIVE:
          if (h.messageId !== 0 || sa.state !== 'CONNECTING' || sa.aggressive !== (h.exchangeType === V1ExchangeType.AGGRESSIVE)) {
            this.counters.malformed++;
            this.log.info(`${sa.tag}: dropped ${describeV1(msg)}: not expected in ${sa.step}`);
            return;
          }
          if (sa.aggressive) await handleAggressive(this, sa, msg, raw, local, remote); else await handleMainMode(this, sa, msg, raw, local, remote);
          return;
        case V1ExchangeType.QUICK:
          if (sa.state !== 'ESTABLISHED' || !msg.encrypted || h.messageId === 0) {
            this.counters.malformed++;
            this.log.info(`${sa.tag}: dropped ${describeV1(msg)}: Quick Mode needs an established ISAKMP SA, encryption and a message ID`);
            return;
          }
          await handleQuick(this, sa, msg, raw);
          return;
        case V1ExchangeType.INFORMATIONAL:
          await handleInformational(this, sa, msg, raw);
          return;
        default:
          this.counters.malformed++;
          this.log.info(`${sa.tag}: dropped ${describeV1(msg)}: exchange type ${h.exchangeType} is not supported`);
      }
    } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      this.counters.malformed++;
      this.log.info(`${sa.tag}: dropped ${describeV1(msg)}: ${e.message}`);
    } finally {
      sa.arrival = null;
    }
  }
}
