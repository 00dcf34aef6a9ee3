/**
 * One IKEv2 SA: its state, keys, message IDs (RFC 7296 2.2), the outstanding
 * request with its retransmission schedule (2.1, 2.4) and the cached last
 * response for answering retransmitted requests.
 */
import { randomBytes } from 'node:crypto';
import type { ChildConfig, ConnectionConfig } from '../../config/model.js';
import type { IkeKeys, KeyExchange, Prf, SkCipher } from '../../crypto/api.js';
import type { Endpoint } from '../../dataplane/api.js';
import type { Logger } from '../../util/log.js';
import type { Clock, TimerHandle } from '../../util/timers.js';
import { ExchangeType } from '../../wire/ikev2/constants.js';
import type { HeaderInit, IkeMessage, Payload, Proposal } from '../../wire/ikev2/types.js';
import { decodePayloadChain, encodeMessage, encodePayloadChain, encodeSkPrefix, findPayload } from '../../wire/ikev2/index.js';
import { PayloadType, nameOf } from '../../wire/ikev2/constants.js';
import type { Identity } from '../identity.js';
import type { IkeSelection } from './proposals.js';
import type { ChildSa } from './child-sa.js';
import type { Sender } from '../../net/sockets.js';
import { MalformedError } from '../../util/errors.js';
import { Reassembler, encodeFragments, maxMessageSize, unfragmentedSize } from './fragments.js';

/** An explicit state per SA; every change is logged once. */
export type IkeState = 'CREATED' | 'CONNECTING' | 'ESTABLISHED' | 'DELETING' | 'DESTROYED';

export interface PendingRequest {
  exchange: number;
  messageId: number;
  /** One datagram, or every fragment of the message (RFC 7383 2.5); a retransmission sends them all. */
  packets: Buffer[];
  payloads: Payload[];
  retransmits: number;
  timer: TimerHandle | null;
  onResponse: (msg: IkeMessage, payloads: Payload[], raw: Buffer) => Promise<void>;
}

/** What the initiator of the IKE SA remembers between IKE_SA_INIT and IKE_AUTH. */
export interface InitiatorContext {
  offered: Proposal[];
  group: number;
  cookie: Buffer | null;
  /** The child to create in IKE_AUTH. */
  child: ChildConfig | null;
  childProposals: Proposal[];
  childSpi: number;
  ke: KeyExchange;
  retriedGroups: number[];
}

let nextUniqueId = 1;
export const allocUniqueId = (): number => nextUniqueId++;

export class IkeSaV2 {
  readonly uniqueId = allocUniqueId();
  state: IkeState = 'CREATED';
  spiR: Buffer = Buffer.alloc(8);
  nonceI: Buffer = Buffer.alloc(0);
  nonceR: Buffer = Buffer.alloc(0);
  initRequest: Buffer = Buffer.alloc(0);
  initResponse: Buffer = Buffer.alloc(0);
  selection: IkeSelection | null = null;
  keys: IkeKeys | null = null;
  prf: Prf | null = null;
  skOut: SkCipher | null = null;
  skIn: SkCipher | null = null;
  initCtx: InitiatorContext | null = null;
  localId: Identity | null = null;
  remoteId: Identity | null = null;
  nat = { local: false, remote: false };
  readonly createdAt: number;
  establishedAt: number | null = null;
  /** When the last authenticated message arrived, for liveness checks only when the peer is quiet. */
  lastReceived = 0;
  /** When this side will start rekeying the IKE SA (epoch ms), for listings. */
  rekeyAt: number | null = null;
  /** 2.2: our next request's ID, and the ID we expect in the peer's next request. */
  nextRequestId = 0;
  expectedRequestId = 0;
  pending: PendingRequest | null = null;
  private queue: { exchange: number; payloads: Payload[]; onResponse: PendingRequest['onResponse'] }[] = [];
  lastResponse: { messageId: number; packets: Buffer[] } | null = null;
  /** The request (each of its fragments) the cached response answers, to recognise its retransmissions. */
  lastRequest: Buffer[] | null = null;
  /** RFC 7383 2.3: whether we announced IKEV2_FRAGMENTATION_SUPPORTED (so we take fragments) and whether the peer did (so we send them). */
  fragmentation = { ours: false, peer: false };
  /** Fragments of the messages being received (RFC 7383 2.6). */
  readonly reassembly = new Reassembler();
  children: ChildSa[] = [];
  /** A rekey we started and is not finished, for the collision rules of 2.25. */
  rekeyingIke = false;
  /** CHILD_SAs we are rekeying now (2.25: an IKE rekey waits for them). */
  readonly rekeyingChildren = new Set<ChildSa>();
  /** The IKE SA the peer created by rekeying this one while our rekey was in flight (2.8.1). */
  ikeReplacement: IkeSaV2 | null = null;
  /** Rekey and lifetime timers. */
  timers: TimerHandle[] = [];
  /** Serializes the handling of this SA's messages: one owner at a time. */
  private work: Promise<void> = Promise.resolve();
  onGiveUp: (() => void) | null = null;
  /** The IKE SA this one reauthenticates (replaces once it is up). */
  reauthOf: IkeSaV2 | null = null;
  /** Started again by dpd_action restart: a failure to connect is retried. */
  restarted = false;

  constructor(
    public conn: ConnectionConfig,
    readonly initiator: boolean,
    readonly spiI: Buffer,
    public local: Endpoint,
    public remote: Endpoint,
    private readonly sender: Sender,
    private readonly clock: Clock,
    readonly log: Logger,
  ) {
    this.createdAt = clock.now();
  }

  static newSpi(): Buffer {
    for (;;) { const s = randomBytes(8); if (!s.equals(Buffer.alloc(8))) return s; }
  }

  /** Our own SPI: the one the peer puts in its side of the header. */
  get ourSpi(): Buffer { return this.initiator ? this.spiI : this.spiR; }
  get name(): string { return this.conn.name; }
  /** `name[id] spiI_i spiR_r`: the tag every log line about this SA carries. */
  get tag(): string { return `${this.conn.name}[${this.uniqueId}] ${this.spiI.toString('hex')}_i ${this.spiR.toString('hex')}_r`; }

  setState(s: IkeState, why?: string): void {
    if (this.state === s) return;
    this.log.info(`${this.tag}: ${this.state} -> ${s}${why ? ` (${why})` : ''}`);
    this.state = s;
  }

  enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.work.then(job, job);
    this.work = run.catch((e: unknown) => { this.log.error(`${this.tag}: ${(e as Error).stack ?? String(e)}`); });
    return this.work;
  }

  private header(exchange: number, response: boolean, messageId: number): HeaderInit {
    return { spiI: this.spiI, spiR: this.spiR, exchangeType: exchange, flags: { initiator: this.initiator, response, version: false }, messageId };
  }

  /** RFC 7383 2.5.1: the largest message we send whole, or null when fragmentation was not negotiated by both sides. */
  fragmentLimit(): number | null {
    if (!this.fragmentation.ours || !this.fragmentation.peer) return null;
    return maxMessageSize(this.conn.fragmentSize, this.local.address.includes(':'));
  }

  /** 3.14: everything after IKE_SA_INIT travels inside SK; RFC 7383 2.5: in SKF fragments when it would not fit one datagram. */
  encode(exchange: number, response: boolean, messageId: number, payloads: Payload[]): Buffer[] {
    const h = this.header(exchange, response, messageId);
    if (exchange === ExchangeType.IKE_SA_INIT) return [encodeMessage(h, payloads)];
    if (!this.skOut) throw new Error('no keys to protect the message');
    const inner = encodePayloadChain(payloads);
    const limit = this.fragmentLimit();
    const whole = unfragmentedSize(this.skOut, inner.bytes.length);
    if (limit !== null && whole > limit) {
      const fragments = encodeFragments(h, inner, this.skOut, limit);
      this.log.info(`${this.tag}: ${nameOf(ExchangeType, exchange)} ${response ? 'response' : 'request'} ${messageId} (${whole} octets) split into ${fragments.length} fragments of at most ${limit} octets`);
      return fragments;
    }
    const prefix = encodeSkPrefix(h, inner.firstType, this.skOut.sealedLength(inner.bytes.length));
    return [Buffer.concat([prefix, this.skOut.seal(prefix, inner.bytes)])];
  }

  /** Opens the SK payload; throws IntegrityError or MalformedError, which callers log and drop. */
  decrypt(msg: IkeMessage): Payload[] {
    if (msg.header.exchangeType === ExchangeType.IKE_SA_INIT) return msg.payloads;
    const sk = findPayload(msg.payloads, PayloadType.SK);
    if (!sk || !sk.aad) throw new MalformedError(nameOf(ExchangeType, msg.header.exchangeType), 'no SK payload');
    if (!this.skIn) throw new MalformedError('SK', 'no keys yet');
    return decodePayloadChain(sk.innerFirst, this.skIn.open(sk.aad, sk.body));
  }

  /** Queues a request; with a window of one (2.3), the next waits for this one's response. */
  request(exchange: number, payloads: Payload[], onResponse: PendingRequest['onResponse']): void {
    this.queue.push({ exchange, payloads, onResponse });
    this.pump();
  }

  private pump(): void {
    if (this.pending || this.state === 'DESTROYED') return;
    const next = this.queue.shift();
    if (!next) return;
    const messageId = this.nextRequestId++;
    const packets = this.encode(next.exchange, false, messageId, next.payloads);
    this.pending = { exchange: next.exchange, messageId, packets, payloads: next.payloads, retransmits: 0, timer: null, onResponse: next.onResponse };
    this.transmit();
  }

  /**
   * Sends IKE_SA_INIT again after the peer asked for a COOKIE or another KE
   * group (1.2, 2.6): a new request, but still message ID 0.
   */
  resendInit(payloads: Payload[], onResponse: PendingRequest['onResponse']): void {
    this.pending?.timer?.cancel();
    const packets = this.encode(ExchangeType.IKE_SA_INIT, false, 0, payloads);
    this.pending = { exchange: ExchangeType.IKE_SA_INIT, messageId: 0, packets, payloads, retransmits: 0, timer: null, onResponse };
    this.nextRequestId = 1;
    this.transmit();
  }

  private transmit(): void {
    const p = this.pending;
    if (!p) return;
    if (p.exchange === ExchangeType.IKE_SA_INIT) this.initRequest = p.packets[0]!;
    // RFC 7383 2.6.1: a retransmission repeats every fragment, not only one presumed lost.
    for (const packet of p.packets) this.sender.send(packet, this.local, this.remote);
    // 2.4: exponential back-off; give up after the configured number of retransmits.
    const { timeout, tries, base } = this.conn.retransmit;
    const delay = Math.round(timeout * 1000 * Math.pow(base, p.retransmits));
    p.timer = this.clock.setTimeout(() => {
      if (this.pending !== p) return;
      if (p.retransmits >= tries) {
        this.log.warn(`${this.tag}: giving up after ${p.retransmits} retransmits of ${nameOf(ExchangeType, p.exchange)} request ${p.messageId}: ${this.remote.address} does not answer`);
        this.pending = null;
        this.onGiveUp?.();
        return;
      }
      p.retransmits++;
      this.log.info(`${this.tag}: retransmit ${p.retransmits} of ${nameOf(ExchangeType, p.exchange)} request ${p.messageId}`);
      this.transmit();
    }, delay);
  }

  /** Called with the response that matches the outstanding request. */
  completeRequest(): PendingRequest | null {
    const p = this.pending;
    if (!p) return null;
    p.timer?.cancel();
    this.pending = null;
    return p;
  }

  /** After a response has been handled, the next queued request may go. */
  next(): void { this.pump(); }

  sendResponse(exchange: number, messageId: number, payloads: Payload[]): void {
    const packets = this.encode(exchange, true, messageId, payloads);
    if (exchange === ExchangeType.IKE_SA_INIT) this.initResponse = packets[0]!;
    this.lastResponse = { messageId, packets };
    for (const packet of packets) this.sender.send(packet, this.local, this.remote);
  }

  resendLastResponse(): void {
    for (const packet of this.lastResponse?.packets ?? []) this.sender.send(packet, this.local, this.remote);
  }

  destroy(): void {
    this.timers.forEach((t) => t.cancel());
    this.pending?.timer?.cancel();
    this.pending = null;
    this.queue = [];
    this.reassembly.clear();
    this.setState('DESTROYED');
  }
}
