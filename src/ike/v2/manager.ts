/**
 * The IKEv2 SA manager: demultiplexes received messages to their SA by SPI,
 * enforces message-ID rules (RFC 7296 2.2, 2.3), answers retransmitted
 * requests from the cached response (2.1), and owns the SA tables.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { ConnectionConfig, StyxConfig } from '../../config/model.js';
import type { DataplaneBackend, Endpoint } from '../../dataplane/api.js';
import { fmt, type Sender } from '../../net/sockets.js';
import { MalformedError, StyxError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import type { Clock, TimerHandle } from '../../util/timers.js';
import { ExchangeType, NotifyType, PayloadType, nameOf } from '../../wire/ikev2/constants.js';
import type { IkeMessage } from '../../wire/ikev2/types.js';
import { checkExchangePayloads, decodeMessage, decodePayloadChain, describe, findPayload, notify, unsupportedCritical } from '../../wire/ikev2/index.js';
import { fragmentAuthenticates } from './fragments.js';
import { handleAuthRequest } from './auth.js';
import { spiHex, uninstallChild, type ChildSa } from './child-sa.js';
import type { IkeCounters, V2Context } from './context.js';
import { IkeSaV2 } from './ike-sa.js';
import { deleteIkeSa, handleInformationalRequest, livenessCheck } from './info.js';
import { handleInitRequest, startInitiator } from './init.js';
import { handleCreateChildRequest, initiateChild, initiateIkeRekey, queueChildRekey } from './create-child.js';
import { deleteChild } from './rekey-collisions.js';

export interface ManagerEvents {
  'ike-up': [IkeSaV2];
  'ike-down': [IkeSaV2, string];
  'child-up': [IkeSaV2, ChildSa];
  'child-failed': [IkeSaV2, string];
}

const COOKIE_SECRET_LIFETIME_MS = 5 * 60 * 1000;
/** How long a reauthenticated IKE SA and its replacement overlap before the old one is deleted. */
const REAUTH_OVERLAP_MS = 3000;
/** Rekeys start up to this fraction before the configured rekey time. */
const REKEY_JITTER = 0.1;
const jittered = (seconds: number): number => Math.round(seconds * 1000 * (1 - Math.random() * REKEY_JITTER));

export class IkeV2Manager implements V2Context {
  readonly counters: IkeCounters = { malformed: 0, integrityFailures: 0, unknownSpi: 0, retransmitsAnswered: 0, cookiesSent: 0, halfOpen: 0, ikeEstablished: 0, authFailures: 0 };
  readonly events = new EventEmitter<ManagerEvents>();
  private bySpi = new Map<string, IkeSaV2>();
  private halfOpen = new Map<string, IkeSaV2>();
  private halfOpenKeys = new WeakMap<IkeSaV2, string>();
  private cookie = { current: randomBytes(32), previous: randomBytes(32), version: 1, at: 0 };
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
   * The data plane counted a CHILD_SA past a volume limit (RFC 4301 4.4.2.1):
   * soft starts a rekey, hard deletes it. Time limits are kept here, so an
   * event for a CHILD_SA already being replaced changes nothing.
   */
  private onExpire(spi: number, direction: 'in' | 'out', hard: boolean): void {
    for (const sa of this.sas) {
      const child = sa.children.find((c) => (direction === 'in' ? c.spiIn : c.spiOut) === spi >>> 0);
      if (!child) continue;
      if (hard) {
        if (child.state === 'DELETING' || child.state === 'DELETED') return;
        this.log.info(`${sa.tag}: CHILD_SA ${child.config.name}{${child.uniqueId}} reached a hard volume limit`);
        void sa.enqueue(async () => deleteChild(this, sa, child, 'hard volume limit reached'));
      } else if (child.state === 'INSTALLED' && sa.state === 'ESTABLISHED') {
        this.log.info(`${sa.tag}: CHILD_SA ${child.config.name}{${child.uniqueId}} reached a soft volume limit: rekeying`);
        queueChildRekey(this, sa, child);
      }
      return;
    }
  }

  /** 2.10: nonces are random and at least half the PRF key size; 32 bytes covers every PRF here. */
  nonceSource: () => Buffer = () => randomBytes(32);
  nonce(): Buffer { return this.nonceSource(); }

  config(): StyxConfig { return this.cfg; }
  setConfig(cfg: StyxConfig): void { this.cfg = cfg; }
  get sas(): IkeSaV2[] { return [...new Set(this.bySpi.values())].filter((s) => s.state !== 'DESTROYED'); }

  register(sa: IkeSaV2): void {
    // 2.4: a request that is never answered means the peer is gone.
    sa.onGiveUp ??= () => this.peerDead(sa, 'a request went unanswered through every retransmission');
    this.bySpi.set(sa.ourSpi.toString('hex'), sa);
    if (!sa.initiator && sa.state !== 'ESTABLISHED' && !this.halfOpenKeys.has(sa)) {
      // Keyed by where IKE_SA_INIT came from; the key is kept because the peer may float to 4500 later.
      const key = halfOpenKey(sa.spiI, sa.remote);
      this.halfOpen.set(key, sa);
      this.halfOpenKeys.set(sa, key);
    }
  }

  private forgetHalfOpen(sa: IkeSaV2): void {
    const key = this.halfOpenKeys.get(sa);
    if (key !== undefined && this.halfOpen.get(key) === sa) this.halfOpen.delete(key);
  }

  halfOpenCount(): number { return [...this.halfOpen.values()].filter((s) => s.state === 'CONNECTING').length; }

  cookieSecret(): { current: Buffer; previous: Buffer; version: number } {
    if (this.clock.now() - this.cookie.at > COOKIE_SECRET_LIFETIME_MS) {
      this.cookie = { current: randomBytes(32), previous: this.cookie.current, version: this.cookie.version + 1, at: this.clock.now() };
    }
    return this.cookie;
  }

  natTLocal(sa: IkeSaV2): Endpoint | undefined {
    return this.sender.localFor(sa.remote.address, this.cfg.daemon.natPort, sa.local.address);
  }

  ikeUp(sa: IkeSaV2): void {
    this.forgetHalfOpen(sa);
    // From now on an unanswered request means a dead peer (2.4), with dpd_action to follow.
    sa.onGiveUp = () => this.peerDead(sa, 'a request went unanswered through every retransmission');
    this.events.emit('ike-up', sa);
    this.scheduleLiveness(sa);
    this.scheduleIkeLifetime(sa);
    // 1.3.1: further configured children are created on the new IKE SA, after the one IKE_AUTH carried.
    if (sa.initiator && sa.initCtx) {
      for (const cfg of sa.conn.children) {
        if (cfg === sa.initCtx.child || cfg.startAction !== 'start') continue;
        void sa.enqueue(() => initiateChild(this, sa, cfg));
      }
    }
  }
  childUp(sa: IkeSaV2, child: ChildSa): void {
    this.events.emit('child-up', sa, child);
    this.scheduleChildLifetime(child);
  }

  /** The IKE SA that owns a CHILD_SA now (children move on IKE rekeys). */
  ownerOf(child: ChildSa): IkeSaV2 | undefined { return this.sas.find((s) => s.children.includes(child)); }

  /** Rekey before the soft lifetime with random jitter, so both peers rarely start together; delete at the hard one. */
  private scheduleChildLifetime(child: ChildSa): void {
    const cfg = child.config;
    child.timers.push(this.clock.setTimeout(() => {
      // The IKE SA may have been rekeyed since: the rekey goes on whichever owns the CHILD_SA now.
      const owner = this.ownerOf(child);
      if (owner) queueChildRekey(this, owner, child);
    }, jittered(cfg.rekeyTime)));
    child.timers.push(this.clock.setTimeout(() => {
      const owner = this.ownerOf(child);
      if (!owner || child.state === 'DELETED' || child.state === 'DELETING') return;
      this.log.info(`${owner.tag}: CHILD_SA ${cfg.name}{${child.uniqueId}} reached its lifetime of ${cfg.lifetime}s`);
      void owner.enqueue(async () => deleteChild(this, owner, child, 'lifetime expired'));
    }, cfg.lifetime * 1000));
  }

  hasOtherSas(sa: IkeSaV2): boolean {
    return this.sas.some((s) => s !== sa && s.conn.name === sa.conn.name && s.remote.address === sa.remote.address && s.state !== 'DELETING');
  }

  async initialContact(sa: IkeSaV2): Promise<void> {
    const same = (a: IkeSaV2['remoteId'], b: IkeSaV2['remoteId']): boolean => !!a && !!b && a.type === b.type && a.data.equals(b.data);
    for (const other of this.sas) {
      if (other === sa || other.conn.name !== sa.conn.name || !same(other.remoteId, sa.remoteId) || !same(other.localId, sa.localId)) continue;
      this.log.info(`${other.tag}: the peer sent INITIAL_CONTACT on ${sa.tag}: dropping this older SA`);
      await this.destroy(other, 'replaced after the peer sent INITIAL_CONTACT');
    }
  }

  /**
   * Reauthentication (RFC 7296 2.8, make-before-break): a new IKE SA with
   * fresh authentication and the same CHILD_SAs; the old one is deleted once
   * the new one carries them.
   */
  private reauthenticate(old: IkeSaV2): void {
    if (old.state !== 'ESTABLISHED' || this.sas.some((s) => s.reauthOf === old)) return;
    this.log.info(`${old.tag}: reauthenticating (reauth_time ${old.conn.reauthTime}s)`);
    const first = old.children.find((c) => c.state === 'INSTALLED')?.config ?? old.conn.children[0];
    const name = first ? `${old.conn.name}/${first.name}` : old.conn.name;
    let next: IkeSaV2;
    try { next = this.initiate(name); } catch (e) { this.log.warn(`${old.tag}: reauthentication failed: ${(e as Error).message}`); return; }
    next.reauthOf = old;
    const onUp = (s: IkeSaV2, child?: ChildSa): void => {
      if (s !== next || (first && !child)) return;
      this.events.off('child-up', onUp); this.events.off('ike-up', onIkeUp);
      // The other CHILD_SAs the old SA had are created again on the new one before the old one goes.
      const others = [...new Set(old.children.filter((c) => c.state === 'INSTALLED' && c.config !== first).map((c) => c.config))];
      for (const cfg of others) void next.enqueue(() => initiateChild(this, next, cfg));
      next.timers.push(this.clock.setTimeout(() => { void deleteIkeSa(this, old, `reauthenticated as ${next.tag}`); }, REAUTH_OVERLAP_MS));
    };
    const onIkeUp = (s: IkeSaV2): void => onUp(s);
    this.events.on('child-up', onUp);
    if (!first) this.events.on('ike-up', onIkeUp);
  }

  private scheduleIkeLifetime(sa: IkeSaV2): void {
    if (sa.conn.reauthTime > 0 && sa.initiator) {
      const when = jittered(sa.conn.reauthTime);
      sa.rekeyAt = this.clock.now() + when;
      sa.timers.push(this.clock.setTimeout(() => this.reauthenticate(sa), when));
      sa.timers.push(this.clock.setTimeout(() => {
        if (sa.state !== 'DESTROYED') { this.log.info(`${sa.tag}: IKE SA reached its lifetime of ${sa.conn.lifetime}s`); void deleteIkeSa(this, sa, 'lifetime expired'); }
      }, sa.conn.lifetime * 1000));
      return;
    }
    const delay = jittered(sa.conn.rekeyTime);
    sa.rekeyAt = this.clock.now() + delay;
    sa.timers.push(this.clock.setTimeout(() => {
      if (sa.state === 'ESTABLISHED') void sa.enqueue(async () => initiateIkeRekey(this, sa));
    }, delay));
    sa.timers.push(this.clock.setTimeout(() => {
      if (sa.state !== 'DESTROYED') { this.log.info(`${sa.tag}: IKE SA reached its lifetime of ${sa.conn.lifetime}s`); void deleteIkeSa(this, sa, 'lifetime expired'); }
    }, sa.conn.lifetime * 1000));
  }
  childFailed(sa: IkeSaV2, reason: string): void { this.events.emit('child-failed', sa, reason); }

  async destroy(sa: IkeSaV2, reason: string): Promise<void> {
    if (sa.state === 'DESTROYED') return;
    for (const child of sa.children) {
      try {
        await uninstallChild(this.dp, child, sa.local, sa.remote, `${sa.conn.name}/${child.config.name}`);
        this.log.info(`${sa.tag}: CHILD_SA ${child.config.name}{${child.uniqueId}} ${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o deleted`);
      } catch (e) {
        this.log.error(`${sa.tag}: removing CHILD_SA ${child.config.name} from the data plane failed: ${(e as Error).message}`);
      }
    }
    sa.children = [];
    // An SPI reserved for the IKE_AUTH child of an SA that never got established.
    if (sa.initCtx?.childSpi && sa.establishedAt === null) await this.dp.deleteSa(sa.initCtx.childSpi, 'in').catch(() => undefined);
    if (this.bySpi.get(sa.ourSpi.toString('hex')) === sa) this.bySpi.delete(sa.ourSpi.toString('hex'));
    this.forgetHalfOpen(sa);
    sa.destroy();
    this.log.info(`${sa.tag}: IKE SA destroyed: ${reason}`);
    this.events.emit('ike-down', sa, reason);
    // A restart that did not get through is tried again until the user terminates the connection.
    if (sa.restarted && sa.establishedAt === null && sa.conn.dpdAction === 'restart') this.restartLater(sa.conn.name);
  }

  /**
   * The peer stopped answering (2.4: retransmissions or liveness checks
   * exhausted): the SA goes, and dpd_action says what follows.
   */
  peerDead(sa: IkeSaV2, why: string): void {
    if (sa.state === 'DESTROYED') return;
    this.log.warn(`${sa.tag}: peer ${sa.remote.address} is dead: ${why}; dpd_action ${sa.conn.dpdAction}`);
    const wasUp = sa.establishedAt !== null;
    void this.destroy(sa, `peer dead: ${why}`).then(() => {
      if (wasUp && sa.conn.dpdAction === 'restart') this.restartLater(sa.conn.name, 0);
      // trap: come back when traffic for the connection appears again.
      if (wasUp && sa.conn.dpdAction === 'trap') this.onTrap?.(sa.conn);
    });
  }

  private readonly restarts = new Map<string, TimerHandle>();
  /** Installs trap policies for a connection (dpd_action trap); set by the daemon. */
  onTrap: ((conn: ConnectionConfig) => void) | null = null;

  private restartLater(name: string, delayMs = 5000): void {
    if (this.restarts.has(name)) return;
    this.restarts.set(name, this.clock.setTimeout(() => {
      this.restarts.delete(name);
      if (!this.connection(name) || this.sas.some((s) => s.conn.name === name && s.state !== 'DELETING')) return;
      this.log.info(`${name}: restarting (dpd_action restart)`);
      try { this.initiate(name).restarted = true; } catch (e) { this.log.warn(`${name}: restart failed: ${(e as Error).message}`); }
    }, delayMs));
  }

  /** 2.4: when dpd_delay is set, an empty INFORMATIONAL every interval; a peer that never answers is dead. */
  /** 2.4: an empty INFORMATIONAL every dpd_delay; no answer within dpd_timeout means the peer is dead. */
  private scheduleLiveness(sa: IkeSaV2, afterMs = sa.conn.dpdDelay * 1000): void {
    const delay = sa.conn.dpdDelay;
    if (delay <= 0) return;
    sa.timers.push(this.clock.setTimeout(() => { void this.livenessDue(sa); }, afterMs));
  }

  /** A check goes out only when nothing came from the peer for dpd_delay: no IKE message and no ESP. */
  private async livenessDue(sa: IkeSaV2): Promise<void> {
    if (sa.state !== 'ESTABLISHED') return;
    let last = sa.lastReceived;
    for (const c of sa.children) {
      const q = await this.dp.querySa(c.spiIn, 'in').catch(() => null);
      if (q?.lastUsed != null) last = Math.max(last, q.lastUsed);
    }
    const quiet = this.clock.now() - last;
    if (quiet < sa.conn.dpdDelay * 1000) { this.scheduleLiveness(sa, sa.conn.dpdDelay * 1000 - quiet); return; }
    {
      const deadline = this.clock.setTimeout(() => this.peerDead(sa, `no answer to a liveness check within ${sa.conn.dpdTimeout}s`), sa.conn.dpdTimeout * 1000);
      sa.timers.push(deadline);
      livenessCheck(sa, () => { deadline.cancel(); this.scheduleLiveness(sa); });
    }
  }

  /** Starts an IKE SA for a configured connection ('conn' or 'conn/child'). */
  initiate(name: string): IkeSaV2 {
    const [connName, childName] = name.split('/') as [string, string | undefined];
    const conn = this.cfg.connections.find((c) => c.name === connName);
    if (!conn) throw new StyxError('ERR_NO_CONN', `no connection named '${connName}'`);
    if (conn.version !== 2) throw new StyxError('ERR_VERSION', `connection '${connName}' is IKEv${conn.version}`);
    const child = childName ? conn.children.find((c) => c.name === childName) : conn.children[0];
    if (childName && !child) throw new StyxError('ERR_NO_CHILD', `connection '${connName}' has no child '${childName}'`);
    const remoteAddr = conn.remoteAddrs.find((a) => a !== '%any' && !a.includes('/'));
    if (!remoteAddr) throw new StyxError('ERR_NO_PEER', `connection '${connName}' has no remote address to initiate to`);
    const pinned = conn.localAddrs.find((a) => a !== '%any');
    const local = this.sender.localFor(remoteAddr, conn.localPort, pinned);
    if (!local) throw new StyxError('ERR_NO_SOCKET', `no local socket on port ${conn.localPort} to reach ${remoteAddr}`);
    return startInitiator(this, conn, child ?? null, local, { address: remoteAddr, port: conn.remotePort });
  }

  /** Resolves when the IKE SA (and its first CHILD_SA, if any) is up; rejects with the reason otherwise. */
  initiateAndWait(name: string, timeoutMs: number): Promise<IkeSaV2> {
    return new Promise((resolve, reject) => {
      let sa: IkeSaV2;
      const done = (fn: () => void): void => {
        timer.cancel();
        this.events.off('ike-down', onDown); this.events.off('child-up', onChild); this.events.off('child-failed', onChildFail); this.events.off('ike-up', onIke);
        fn();
      };
      const onDown = (s: IkeSaV2, why: string): void => { if (s === sa) done(() => reject(new Error(`${s.tag}: ${why}`))); };
      const onChild = (s: IkeSaV2): void => { if (s === sa) done(() => resolve(s)); };
      const onChildFail = (s: IkeSaV2, why: string): void => { if (s === sa) done(() => reject(new Error(`${s.tag}: IKE SA established, CHILD_SA failed: ${why}`))); };
      const onIke = (s: IkeSaV2): void => { if (s === sa && !s.initCtx?.child) done(() => resolve(s)); };
      const timer = this.clock.setTimeout(() => done(() => reject(new Error(`${name}: not established within ${timeoutMs / 1000}s`))), timeoutMs);
      this.events.on('ike-down', onDown); this.events.on('child-up', onChild); this.events.on('child-failed', onChildFail); this.events.on('ike-up', onIke);
      // 1.3.1: a child of a connection that is already up is created on its IKE SA.
      const [connName, childName] = name.split('/') as [string, string | undefined];
      const existing = childName !== undefined ? this.sas.find((s) => s.conn.name === connName && s.state === 'ESTABLISHED') : undefined;
      const cfg = existing?.conn.children.find((c) => c.name === childName);
      if (existing && cfg) {
        sa = existing;
        void existing.enqueue(() => initiateChild(this, existing, cfg));
        return;
      }
      try { sa = this.initiate(name); } catch (e) { done(() => reject(e)); }
    });
  }

  /**
   * Rekeys now what `styx rekey` names: the established IKE SAs of a
   * connection (1.3.2), or with `child` its installed CHILD_SAs of that name
   * (1.3.3), exactly as their rekey timers would. Returns how many it started.
   */
  rekey(name: string, child?: string): number {
    let n = 0;
    for (const sa of this.sas.filter((s) => s.conn.name === name && s.state === 'ESTABLISHED')) {
      if (child === undefined) {
        if (sa.rekeyingIke) continue;
        this.log.info(`${sa.tag}: rekeying the IKE SA as the user asked`);
        void sa.enqueue(async () => initiateIkeRekey(this, sa));
        n++;
        continue;
      }
      for (const c of sa.children.filter((x) => x.config.name === child && x.state === 'INSTALLED')) {
        this.log.info(`${sa.tag}: rekeying CHILD_SA ${c.config.name}{${c.uniqueId}} as the user asked`);
        queueChildRekey(this, sa, c);
        n++;
      }
    }
    return n;
  }

  /** Deletes every IKE SA of a connection (1.4.1). */
  async terminate(name: string): Promise<number> {
    this.restarts.get(name)?.cancel();
    this.restarts.delete(name);
    const list = this.sas.filter((s) => s.conn.name === name);
    // Not through the SA's work queue: the delete completes when the response is processed there.
    await Promise.all(list.map((sa) => deleteIkeSa(this, sa, 'terminated by user')));
    return list.length;
  }

  async shutdown(): Promise<void> {
    await Promise.all(this.sas.map((sa) => Promise.race([deleteIkeSa(this, sa, 'daemon stopping'), new Promise<void>((r) => setTimeout(r, 1500).unref())])));
    for (const sa of this.sas) await this.destroy(sa, 'daemon stopped');
  }

  /** Entry point from net/: one datagram of IKE. Never throws. */
  receive(data: Buffer, local: Endpoint, remote: Endpoint): void {
    let msg: IkeMessage;
    try {
      msg = decodeMessage(data);
    } catch (e) {
      this.counters.malformed++;
      if (e instanceof StyxError) this.log.info(`dropped message from ${fmt(remote)}: ${e.message}`);
      else this.log.error(`dropped message from ${fmt(remote)}: decoder bug: ${(e as Error).stack}`);
      return;
    }
    const h = msg.header;
    this.log.debug(`received ${describe(msg)} from ${fmt(remote)} (${data.length} bytes)`);
    if (h.exchangeType === ExchangeType.IKE_SA_INIT && !h.flags.response) {
      const existing = this.halfOpen.get(halfOpenKey(h.spiI, remote));
      if (existing) {
        // 2.1: a retransmitted IKE_SA_INIT gets the same answer; anything else from that SPI is dropped.
        if (existing.initRequest.equals(data)) { this.counters.retransmitsAnswered++; existing.resendLastResponse(); }
        return;
      }
      if (!h.spiR.equals(Buffer.alloc(8)) || h.messageId !== 0) { this.counters.malformed++; this.log.info(`dropped IKE_SA_INIT request from ${fmt(remote)}: nonzero SPIr or message ID`); return; }
      try {
        checkExchangePayloads(h.exchangeType, false, msg.payloads);
      } catch (e) {
        this.counters.malformed++;
        this.log.info(`dropped IKE_SA_INIT from ${fmt(remote)}: ${(e as Error).message}`);
        return;
      }
      const crit = unsupportedCritical(msg.payloads);
      if (crit !== undefined) {
        this.log.info(`IKE_SA_INIT from ${fmt(remote)} has critical payload type ${crit} that styx does not support`);
        return;
      }
      void handleInitRequest(this, msg, data, local, remote).catch((e: unknown) => this.log.error(`IKE_SA_INIT from ${fmt(remote)}: ${(e as Error).stack}`));
      return;
    }
    // The sender's role flag says whose SPI is ours (3.1).
    const ours = h.flags.initiator ? h.spiR : h.spiI;
    const sa = this.bySpi.get(ours.toString('hex'));
    if (!sa || sa.initiator === h.flags.initiator) {
      this.counters.unknownSpi++;
      this.log.debug(`dropped ${nameOf(ExchangeType, h.exchangeType)} from ${fmt(remote)}: no IKE SA with SPI ${ours.toString('hex')}`);
      return;
    }
    void sa.enqueue(() => this.process(sa, msg, data, local, remote));
  }

  /**
   * Decrypts and checks a message; an SKF fragment (RFC 7383 2.6) is
   * authenticated and kept until its message is whole. Null while a message
   * is incomplete and for anything dropped.
   */
  private open(sa: IkeSaV2, msg: IkeMessage, raw: Buffer): { inner: ReturnType<IkeSaV2['decrypt']>; packets: Buffer[] } | null {
    const h = msg.header;
    const frag = findPayload(msg.payloads, PayloadType.SKF);
    let what = `${nameOf(ExchangeType, h.exchangeType)} ${h.flags.response ? 'response' : 'request'} ${h.messageId}`;
    if (frag) what = `fragment ${frag.fragmentNumber}/${frag.totalFragments} of ${what}`;
    try {
      let inner: ReturnType<IkeSaV2['decrypt']>;
      let packets = [raw];
      if (frag) {
        // RFC 7383 2.3: fragments are only for a peer that announced it can take them.
        if (!sa.fragmentation.ours) throw new MalformedError('SKF', 'fragmentation was not negotiated');
        if (!sa.skIn) throw new MalformedError('SKF', 'no keys yet');
        const r = sa.reassembly.add(h.flags.response, h.messageId, frag, raw, sa.skIn, this.clock.now());
        if (r.kind === 'partial') { this.log.debug(`${sa.tag}: received ${what} (${r.have} of ${r.total})`); return null; }
        if (r.kind === 'duplicate') { this.log.debug(`${sa.tag}: ignored duplicate ${what}`); return null; }
        if (r.kind === 'stale') { this.log.debug(`${sa.tag}: ignored ${what}: a newer transmission is being reassembled`); return null; }
        inner = decodePayloadChain(r.firstType, r.plain);
        packets = r.packets;
        this.log.debug(`${sa.tag}: reassembled ${nameOf(ExchangeType, h.exchangeType)} ${h.flags.response ? 'response' : 'request'} ${h.messageId} from ${r.packets.length} fragments (${r.plain.length} octets)`);
      } else {
        inner = sa.decrypt(msg);
      }
      checkExchangePayloads(h.exchangeType, h.flags.response, inner);
      return { inner, packets };
    } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      if (e.code === 'ERR_INTEGRITY') this.counters.integrityFailures++; else this.counters.malformed++;
      this.log.info(`${sa.tag}: dropped ${what}: ${e.message}`);
      return null;
    }
  }

  /**
   * 2.1 and RFC 7383 2.6.1: a retransmitted request we already answered gets
   * the cached response (all its fragments) again; a fragmented request is
   * answered once, on its first fragment, not once per fragment.
   */
  private answerRetransmission(sa: IkeSaV2, msg: IkeMessage, raw: Buffer): void {
    const h = msg.header;
    const frag = findPayload(msg.payloads, PayloadType.SKF);
    // A real retransmission is byte-identical; anything else with that ID is checked and dropped.
    const same = sa.lastRequest?.some((p) => p.equals(raw)) ?? false;
    // A sender may re-fragment a retransmission (RFC 7383 2.5.2); its first fragment still proves it.
    const refragmented = !same && frag !== undefined && sa.skIn !== null && fragmentAuthenticates(frag, sa.skIn);
    if (same || refragmented) {
      if (frag && frag.fragmentNumber !== 1) return;
      this.counters.retransmitsAnswered++;
      this.log.debug(`${sa.tag}: retransmitting response ${h.messageId}`);
      sa.resendLastResponse();
    } else if (!frag && this.open(sa, msg, raw)) {
      this.log.info(`${sa.tag}: dropped a different request reusing message ID ${h.messageId}`);
    }
  }

  private async process(sa: IkeSaV2, msg: IkeMessage, raw: Buffer, local: Endpoint, remote: Endpoint): Promise<void> {
    if (sa.state === 'DESTROYED') return;
    const h = msg.header;
    if (h.flags.response) {
      const p = sa.pending;
      if (!p || p.messageId !== h.messageId || p.exchange !== h.exchangeType) {
        this.log.debug(`${sa.tag}: dropped unexpected response ${h.messageId}`);
        return;
      }
      const opened = this.open(sa, msg, raw);
      if (!opened) return;
      const inner = opened.inner;
      sa.lastReceived = this.clock.now();
      this.follow(sa, local, remote);
      sa.completeRequest();
      this.log.debug(`${sa.tag}: ${nameOf(ExchangeType, h.exchangeType)} response ${h.messageId} [${inner.map(short).join(' ')}]`);
      await p.onResponse(msg, inner, raw);
      sa.next();
      return;
    }
    // 2.2: the request we already answered is answered again from the cache.
    if (sa.lastResponse && h.messageId === sa.lastResponse.messageId) {
      this.answerRetransmission(sa, msg, raw);
      return;
    }
    if (h.messageId !== sa.expectedRequestId) {
      this.log.debug(`${sa.tag}: dropped request with message ID ${h.messageId}, expected ${sa.expectedRequestId}`);
      return;
    }
    const opened = this.open(sa, msg, raw);
    if (!opened) return;
    const inner = opened.inner;
    sa.lastReceived = this.clock.now();
    this.follow(sa, local, remote);
    this.log.debug(`${sa.tag}: ${nameOf(ExchangeType, h.exchangeType)} request ${h.messageId} [${inner.map(short).join(' ')}]`);
    sa.expectedRequestId++;
    sa.lastRequest = opened.packets;
    // 2.5: a critical payload we do not understand rejects the whole message.
    const crit = unsupportedCritical(inner);
    if (crit !== undefined) {
      this.log.info(`${sa.tag}: request carries unsupported critical payload ${crit}: UNSUPPORTED_CRITICAL_PAYLOAD`);
      sa.sendResponse(h.exchangeType, h.messageId, [notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([crit]))]);
      return;
    }
    switch (h.exchangeType) {
      case ExchangeType.IKE_AUTH:
        if (sa.initiator || sa.state !== 'CONNECTING') { this.log.info(`${sa.tag}: unexpected IKE_AUTH request`); sa.sendResponse(h.exchangeType, h.messageId, [notify(NotifyType.INVALID_SYNTAX)]); return; }
        await handleAuthRequest(this, sa, h.messageId, inner);
        return;
      case ExchangeType.INFORMATIONAL:
        await handleInformationalRequest(this, sa, h.messageId, inner);
        return;
      case ExchangeType.CREATE_CHILD_SA:
        await handleCreateChildRequest(this, sa, h.messageId, inner);
        return;
      default:
        this.log.info(`${sa.tag}: unknown exchange type ${h.exchangeType}: ignored`);
    }
  }

  /**
   * 2.23: after floating to port 4500, or when the peer's NAT mapping
   * changes, an authenticated message from a new address moves the SA there.
   */
  private follow(sa: IkeSaV2, local: Endpoint, remote: Endpoint): void {
    if (sa.remote.address === remote.address && sa.remote.port === remote.port && sa.local.port === local.port && sa.local.address === local.address) return;
    // 2.23: a host behind a NAT does not move its SA; only the side outside follows the mapping.
    if (sa.nat.local && sa.state === 'ESTABLISHED') {
      this.log.debug(`${sa.tag}: message from ${fmt(remote)} ignored for address updates: we are behind a NAT`);
      return;
    }
    this.log.info(`${sa.tag}: peer now at ${fmt(remote)} (was ${fmt(sa.remote)}), local ${fmt(local)}`);
    sa.remote = { ...remote };
    sa.local = { ...local };
    // The CHILD_SAs' outer addresses move with the IKE SA (2.23), so ESP follows the new NAT mapping.
    for (const c of sa.children) {
      if (c.state === 'DELETED') continue;
      void this.dp.updateSa(c.spiOut, 'out', { src: sa.local, dst: sa.remote }).catch((e: Error) => this.log.warn(`${sa.tag}: moving CHILD_SA ${spiHex(c.spiOut)}_o: ${e.message}`));
      void this.dp.updateSa(c.spiIn, 'in', { src: sa.remote, dst: sa.local }).catch((e: Error) => this.log.warn(`${sa.tag}: moving CHILD_SA ${spiHex(c.spiIn)}_i: ${e.message}`));
    }
  }

  connection(name: string): ConnectionConfig | undefined { return this.cfg.connections.find((c) => c.name === name); }
}

const halfOpenKey = (spiI: Buffer, remote: Endpoint): string => `${spiI.toString('hex')}/${remote.address}/${remote.port}`;
const short = (p: IkeMessage['payloads'][number]): string => (p.type === 'unknown' ? `U${p.rawType}` : String(p.type));
