/**
 * What the IKEv1 exchanges need from the manager around them; exchange
 * modules depend only on this, as the IKEv2 ones do on V2Context.
 */
import type { StyxConfig } from '../../config/model.js';
import type { DataplaneBackend, Endpoint } from '../../dataplane/api.js';
import type { Sender } from '../../net/sockets.js';
import type { Logger } from '../../util/log.js';
import type { Clock } from '../../util/timers.js';
import type { ChildSa } from '../v2/child-sa.js';
import type { IkeSaV1 } from './ike-sa.js';

export interface IkeV1Counters {
  malformed: number;
  /** Bad HASH, or a body that did not decrypt to a payload chain. */
  integrityFailures: number;
  unknownSpi: number;
  retransmitsAnswered: number;
  ikeEstablished: number;
  authFailures: number;
  quickModes: number;
  dpdSent: number;
}

export interface V1Context {
  config(): StyxConfig;
  readonly dp: DataplaneBackend;
  readonly sender: Sender;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: IkeV1Counters;
  register(sa: IkeSaV1): void;
  destroy(sa: IkeSaV1, reason: string): Promise<void>;
  ikeUp(sa: IkeSaV1): void;
  childUp(sa: IkeSaV1, child: ChildSa): void;
  childFailed(sa: IkeSaV1, reason: string): void;
  /** Other ISAKMP SAs with the same peer, for INITIAL-CONTACT (RFC 2407 4.6.3.3). */
  siblings(sa: IkeSaV1): IkeSaV1[];
  nonce(): Buffer;
  /** The NAT-T (4500) socket for this SA's peer, if one is bound (RFC 3947 4). */
  natTLocal(sa: IkeSaV1): Endpoint | undefined;
}
