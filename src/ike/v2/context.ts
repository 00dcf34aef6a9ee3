/**
 * What the IKEv2 exchanges need from the daemon around them. The manager
 * implements it; exchange modules depend only on this.
 */
import type { StyxConfig } from '../../config/model.js';
import type { DataplaneBackend, Endpoint } from '../../dataplane/api.js';
import type { Sender } from '../../net/sockets.js';
import type { Logger } from '../../util/log.js';
import type { Clock } from '../../util/timers.js';
import type { IkeSaV2 } from './ike-sa.js';
import type { ChildSa } from './child-sa.js';

export interface IkeCounters {
  malformed: number;
  integrityFailures: number;
  unknownSpi: number;
  retransmitsAnswered: number;
  cookiesSent: number;
  halfOpen: number;
  ikeEstablished: number;
  authFailures: number;
}

export interface V2Context {
  config(): StyxConfig;
  readonly dp: DataplaneBackend;
  readonly sender: Sender;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: IkeCounters;
  /** Indexes the SA under our SPI once it is known. */
  register(sa: IkeSaV2): void;
  /** Removes the SA and its CHILD_SAs from the data plane and the tables. */
  destroy(sa: IkeSaV2, reason: string): Promise<void>;
  ikeUp(sa: IkeSaV2): void;
  childUp(sa: IkeSaV2, child: ChildSa): void;
  childFailed(sa: IkeSaV2, reason: string): void;
  /** Half-open responder SAs, for the cookie threshold (2.6). */
  halfOpenCount(): number;
  cookieSecret(): { current: Buffer; previous: Buffer; version: number };
  /** The IKE SA that owns a CHILD_SA now: children move to the new SA on an IKE rekey. */
  ownerOf(child: ChildSa): IkeSaV2 | undefined;
  /** Whether we hold another IKE SA of the same connection (then INITIAL_CONTACT must not be sent). */
  hasOtherSas(sa: IkeSaV2): boolean;
  /** INITIAL_CONTACT from the peer of `sa`: its other SAs with the same identities go. */
  initialContact(sa: IkeSaV2): Promise<void>;
  /** A fresh nonce (2.10); tests replace the source to force collision outcomes. */
  nonce(): Buffer;
  /** The NAT-T (4500) socket to use for this SA's peer, if one is bound (2.23). */
  natTLocal(sa: IkeSaV2): Endpoint | undefined;
}
