/**
 * One ISAKMP SA (RFC 2408 2.5.3, RFC 2409 5): its cookies, phase 1 state,
 * keys and IV chain (appendix B), and per message ID the last datagram
 * received and sent. IKEv1 messages carry no request/response flag, so a
 * peer's retransmission is recognised by being byte-identical to the last
 * message of that exchange, and answered by re-sending our last one
 * (RFC 2408 5.1 leaves retransmission to the implementation).
 */
import { randomBytes } from 'node:crypto';
import type { ChildConfig, ConnectionConfig } from '../../config/model.js';
import type { KeyExchange } from '../../crypto/api.js';
import { V1IvChain, v1Decrypt, v1Encrypt, type V1CipherInfo, type V1Phase1Keys } from '../../crypto/ikev1/index.js';
import type { Endpoint } from '../../dataplane/api.js';
import type { Sender } from '../../net/sockets.js';
import { MalformedError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import type { Clock, TimerHandle } from '../../util/timers.js';
import {
  encodeIsakmp, encodeIsakmpEncrypted, encodeV1PayloadChain, v1ExchangeName,
  type IsakmpEncryptedMessage, type IsakmpHeaderInit, type Phase1Attributes, type V1Payload,
} from '../../wire/ikev1/index.js';
import type { Identity } from '../identity.js';
import type { ChildSa } from '../v2/child-sa.js';
import { allocUniqueId } from '../v2/ike-sa.js';

/** The coarse state every listing and event uses; `step` says where phase 1 stands. */
export type IkeStateV1 = 'CONNECTING' | 'ESTABLISHED' | 'DELETING' | 'DESTROYED';

/**
 * Phase 1 position, named like the RFC 2409 message just sent or awaited:
 * MAIN_I1 = MM1 sent, waiting for MM2; MAIN_R1 = MM2 sent, waiting for MM3.
 */
export type V1Step =
  | 'MAIN_I1' | 'MAIN_I2' | 'MAIN_I3' | 'MAIN_R1' | 'MAIN_R2'
  | 'AGGR_I1' | 'AGGR_R1' | 'ESTABLISHED';

/** What phase 1 keeps between its messages. */
export interface Phase1Ctx {
  /** Initiator: the transforms we offered. Responder: the one we accepted. */
  offered: Phase1Attributes[];
  ke: KeyExchange | null;
  /** RFC 2409 5: SAi_b, the initiator's SA payload body as sent. */
  saiB: Buffer;
  gxi: Buffer;
  gxr: Buffer;
  ni: Buffer;
  nr: Buffer;
  psk: Buffer | null;
  /** Aggressive Mode: the initiator's ID body, hashed into HASH_I. */
  idiB: Buffer;
}

/** Retransmission and duplicate detection for one exchange (one message ID). */
interface ExchangeState {
  lastIn: Buffer | null;
  lastOut: Buffer | null;
  /** Whether lastOut answered lastIn; a final message (MM6, AM3, QM3) is answered by nothing. */
  replied: boolean;
  timer: TimerHandle | null;
  retransmits: number;
  what: string;
}

const ZERO_COOKIE = Buffer.alloc(8);

export class IkeSaV1 {
  readonly uniqueId = allocUniqueId();
  state: IkeStateV1 = 'CONNECTING';
  step: V1Step;
  cookieR: Buffer = Buffer.alloc(8);
  attrs: Phase1Attributes | null = null;
  cipher: V1CipherInfo | null = null;
  keys: V1Phase1Keys | null = null;
  iv: V1IvChain | null = null;
  p1: Phase1Ctx;
  localId: Identity | null = null;
  remoteId: Identity | null = null;
  /** RFC 3947 3.1 / RFC 3706: what the peer's vendor IDs announced. */
  peer = { natt: false, dpd: false };
  nat = { local: false, remote: false };
  /** Negotiated ISAKMP SA lifetime, seconds. */
  lifetime: number;
  readonly createdAt: number;
  establishedAt: number | null = null;
  rekeyAt: number | null = null;
  /** When an authenticated message from the peer last arrived, for DPD (RFC 3706 5). */
  lastHeard: number;
  dpd = { seqOut: (randomBytes(4).readUInt32BE(0) & 0x7fffffff) + 1, seqIn: 0, outstanding: 0 };
  children: ChildSa[] = [];
  /** Children to negotiate with Quick Mode once phase 1 is up (initiator). */
  queued: ChildConfig[] = [];
  timers: TimerHandle[] = [];
  /** Called when retransmissions of a message are exhausted. */
  onGiveUp: ((messageId: number, what: string) => void) | null = null;
  /** The ISAKMP SA this phase 1 was started to replace (a rekey), until that one is gone. */
  replaces: IkeSaV1 | null = null;
  /** The ISAKMP SA with the peer this one succeeds (ours: what we rekey; the peer's: what was up when it began). */
  predecessor: IkeSaV1 | null = null;
  /** Where the message being processed came from, so an authenticated one can move the SA (RFC 3947 4). */
  arrival: { local: Endpoint; remote: Endpoint } | null = null;
  /** Called once a message of an established SA has authenticated (its HASH verified). */
  onAuthenticated: (() => void) | null = null;
  private exchanges = new Map<number, ExchangeState>();
  private work: Promise<void> = Promise.resolve();

  constructor(
    public conn: ConnectionConfig,
    readonly initiator: boolean,
    readonly aggressive: boolean,
    readonly cookieI: Buffer,
    public local: Endpoint,
    public remote: Endpoint,
    private readonly sender: Sender,
    private readonly clock: Clock,
    readonly log: Logger,
  ) {
    this.createdAt = clock.now();
    this.lastHeard = clock.now();
    this.lifetime = conn.lifetime;
    this.step = aggressive ? 'AGGR_I1' : 'MAIN_I1';
    this.p1 = { offered: [], ke: null, saiB: Buffer.alloc(0), gxi: Buffer.alloc(0), gxr: Buffer.alloc(0), ni: Buffer.alloc(0), nr: Buffer.alloc(0), psk: null, idiB: Buffer.alloc(0) };
  }

  /** RFC 2408 2.5.3: a cookie is random and never zero. */
  static newCookie(): Buffer {
    for (;;) { const c = randomBytes(8); if (!c.equals(ZERO_COOKIE)) return c; }
  }

  get ourCookie(): Buffer { return this.initiator ? this.cookieI : this.cookieR; }
  get cookies(): Buffer { return Buffer.concat([this.cookieI, this.cookieR]); }
  get hashId(): number {
    if (!this.attrs) throw new MalformedError('ISAKMP SA', 'no phase 1 transform negotiated yet');
    return this.attrs.hash;
  }
  /** `name[id] cookieI_i cookieR_r`, the same shape as IKEv2's tag so one parser reads both. */
  get tag(): string { return `${this.conn.name}[${this.uniqueId}] ${this.cookieI.toString('hex')}_i ${this.cookieR.toString('hex')}_r`; }

  setState(s: IkeStateV1, why?: string): void {
    if (this.state === s) return;
    this.log.info(`${this.tag}: ${this.state} -> ${s}${why ? ` (${why})` : ''}`);
    this.state = s;
  }

  setStep(s: V1Step): void {
    if (this.step === s) return;
    this.log.debug(`${this.tag}: ${this.step} -> ${s}`);
    this.step = s;
  }

  enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.work.then(job, job);
    this.work = run.catch((e: unknown) => { this.log.error(`${this.tag}: ${(e as Error).stack ?? String(e)}`); });
    return this.work;
  }

  private header(exchange: number, messageId: number): IsakmpHeaderInit {
    return { cookieI: this.cookieI, cookieR: this.cookieR, exchangeType: exchange, flags: { encryption: false, commit: false, authOnly: false }, messageId };
  }

  encodePlain(exchange: number, messageId: number, payloads: V1Payload[]): Buffer {
    return encodeIsakmp(this.header(exchange, messageId), payloads);
  }

  /** RFC 2408 3.1 E flag with the appendix B IV chain; the chain moves on with what we send. */
  encodeEncrypted(exchange: number, messageId: number, payloads: V1Payload[]): Buffer {
    if (!this.cipher || !this.keys || !this.iv) throw new MalformedError('ISAKMP SA', 'no keys to encrypt with');
    const { firstType, bytes } = encodeV1PayloadChain(payloads);
    const { ciphertext } = v1Encrypt(this.cipher, this.keys.encryptionKey, this.iv.iv(messageId), bytes);
    this.iv.advance(messageId, ciphertext);
    return encodeIsakmpEncrypted(this.header(exchange, messageId), firstType, ciphertext);
  }

  /**
   * Decrypts without moving the IV chain: the caller commits with
   * `iv.advance` once the message has authenticated (appendix B).
   */
  decrypt(msg: IsakmpEncryptedMessage): Buffer {
    if (!this.cipher || !this.keys || !this.iv) throw new MalformedError(v1ExchangeName(msg.header.exchangeType), 'encrypted before keys exist');
    return v1Decrypt(this.cipher, this.keys.encryptionKey, this.iv.iv(msg.header.messageId), msg.ciphertext).plaintext;
  }

  private exchange(messageId: number): ExchangeState {
    let x = this.exchanges.get(messageId);
    if (!x) { x = { lastIn: null, lastOut: null, replied: false, timer: null, retransmits: 0, what: '' }; this.exchanges.set(messageId, x); }
    return x;
  }

  /**
   * Sends a message of exchange `messageId`. With `retransmit` it is sent
   * again on the connection's back-off schedule until the peer's next
   * message of that exchange arrives (received()) or the tries run out.
   */
  send(messageId: number, packet: Buffer, what: string, retransmit: boolean): void {
    const x = this.exchange(messageId);
    x.timer?.cancel();
    x.timer = null;
    x.lastOut = packet;
    x.replied = x.lastIn !== null;
    x.retransmits = 0;
    x.what = what;
    this.sender.send(packet, this.local, this.remote);
    if (retransmit) this.arm(messageId, x);
  }

  private arm(messageId: number, x: ExchangeState): void {
    const { timeout, tries, base } = this.conn.retransmit;
    const delay = Math.round(timeout * 1000 * Math.pow(base, x.retransmits));
    x.timer = this.clock.setTimeout(() => {
      x.timer = null;
      if (this.state === 'DESTROYED' || !x.lastOut) return;
      if (x.retransmits >= tries) {
        this.log.warn(`${this.tag}: giving up after ${x.retransmits} retransmits of ${x.what}: ${this.remote.address} does not answer`);
        this.onGiveUp?.(messageId, x.what);
        return;
      }
      x.retransmits++;
      this.log.info(`${this.tag}: retransmit ${x.retransmits} of ${x.what}`);
      this.sender.send(x.lastOut, this.local, this.remote);
      this.arm(messageId, x);
    }, delay);
  }

  /** A message of this exchange was accepted: stop retransmitting and remember it to spot its duplicates. */
  received(messageId: number, raw: Buffer): void {
    const x = this.exchange(messageId);
    x.timer?.cancel();
    x.timer = null;
    x.lastIn = Buffer.from(raw);
    x.replied = false;
    this.lastHeard = this.clock.now();
  }

  /**
   * A message of this SA proved itself (HASH(1)/(2)/(3) verified): the peer
   * is alive (RFC 3706 5), and, past phase 1, wherever it now sends from is
   * where it is (RFC 3947 4), which the manager's hook acts on.
   */
  authenticated(): void {
    this.lastHeard = this.clock.now();
    this.onAuthenticated?.();
  }

  /** Stops retransmitting an exchange without a reply (it ended, or failed). */
  settle(messageId: number): void {
    const x = this.exchanges.get(messageId);
    x?.timer?.cancel();
    if (x) x.timer = null;
  }

  /**
   * Whether `raw` repeats the last message accepted for its exchange; if so
   * our answer to it goes out again. A repeated final message has no answer:
   * re-sending what came before it would make two peers bounce the last two
   * messages of an exchange at each other for ever.
   */
  answerRetransmit(messageId: number, raw: Buffer): boolean {
    const x = this.exchanges.get(messageId);
    if (!x?.lastIn || !x.lastIn.equals(raw)) return false;
    if (x.lastOut && x.replied) this.sender.send(x.lastOut, this.local, this.remote);
    return true;
  }

  /** Whether this message ID has been used in this SA (RFC 2408 3.1: each exchange has its own). */
  knows(messageId: number): boolean { return this.exchanges.has(messageId); }

  forget(messageId: number): void {
    this.settle(messageId);
    this.exchanges.delete(messageId);
    this.iv?.forget(messageId);
  }

  /** A fresh message ID for an exchange we start: random, nonzero and unused (RFC 2408 3.1). */
  newMessageId(): number {
    for (;;) {
      const m = randomBytes(4).readUInt32BE(0);
      if (m !== 0 && !this.exchanges.has(m)) { this.exchange(m); return m; }
    }
  }

  destroy(): void {
    this.timers.forEach((t) => t.cancel());
    this.timers = [];
    for (const x of this.exchanges.values()) x.timer?.cancel();
    this.exchanges.clear();
    this.onGiveUp = null;
    this.onAuthenticated = null;
    this.replaces = null;
    // Successors keep a reference to this SA; dropping ours keeps that chain one link long.
    this.predecessor = null;
    this.setState('DESTROYED');
  }
}
