/**
 * The data-plane backend interface. IKE reaches ESP only through this: the
 * userspace ESP engine (TUN + ESP-in-UDP) and the Linux XFRM backend both
 * implement it, and the in-memory backend records what it is given.
 * The shape follows a kernel IPsec interface: SPI allocation, SAs, policies,
 * counters and events.
 */
import type { EventEmitter } from 'node:events';

export type Direction = 'in' | 'out';
export type IpsecMode = 'tunnel' | 'transport';

/** An endpoint of an SA (the outer addresses). */
export interface Endpoint { address: string; port: number }

export interface Selector {
  family: 4 | 6;
  startAddr: Buffer; endAddr: Buffer;
  protocol: number; // 0 = any
  startPort: number; endPort: number;
}

export interface SaLimits { softBytes?: bigint; hardBytes?: bigint; softPackets?: bigint; hardPackets?: bigint; softSeconds?: number; hardSeconds?: number }

export interface SaParams {
  spi: number;                 // host order u32
  protocol: 'esp';
  direction: Direction;
  src: Endpoint; dst: Endpoint;
  mode: IpsecMode;
  encr: { id: number; key: Buffer; keyLength: number /* bits, without salt */ };
  integ: { id: number; key: Buffer } | null;  // null with AEAD
  esn: boolean;
  replayWindow: number;        // packets; 0 disables anti-replay
  encap: boolean;              // RFC 3948 UDP encapsulation
  selectors: { local: Selector[]; remote: Selector[] };
  limits?: SaLimits;
  /** Free text to name the SA in logs (connection/child name). */
  tag: string;
}

export interface PolicyParams {
  direction: Direction;
  local: Selector; remote: Selector;
  mode: IpsecMode;
  /** The outbound SA's SPI this policy uses, or the inbound one it accepts. */
  spi: number;
  tunnel: { src: string; dst: string } | null;
  tag: string;
}

export interface SaCounters { bytes: bigint; packets: bigint; replayDrops: bigint; authFailures: bigint; lastUsed: number | null }

/** Events a backend raises; ike/ listens and reacts (rekey on soft, delete on hard). */
export interface DataplaneEvents {
  acquire: [{ selector: { local: Selector; remote: Selector } }];
  expire: [{ spi: number; direction: Direction; hard: boolean }];
}

export interface DataplaneBackend {
  readonly name: string;
  /** Reserve an inbound SPI that is unused and nonzero. */
  allocateSpi(): Promise<number>;
  addSa(sa: SaParams): Promise<void>;
  /** Change addresses/ports of an SA (NAT mapping change, RFC 7296 2.23). */
  updateSa(spi: number, direction: Direction, changes: { src?: Endpoint; dst?: Endpoint; encap?: boolean }): Promise<void>;
  deleteSa(spi: number, direction: Direction): Promise<void>;
  querySa(spi: number, direction: Direction): Promise<SaCounters | null>;
  addPolicy(p: PolicyParams): Promise<void>;
  deletePolicy(p: PolicyParams): Promise<void>;
  readonly events: EventEmitter<DataplaneEvents>;
  /** Counters of the whole data plane (drops by reason, packets), for `styx stats`. */
  stats(): Record<string, number>;
  close(): Promise<void>;
}
