/**
 * NAT keepalives (RFC 3948 2.3): a host behind a NAT sends a one-octet 0xFF
 * UDP payload on the NAT-T port now and then, so the NAT keeps its mapping
 * while no IKE or ESP traffic flows.
 */
import type { Endpoint } from '../dataplane/api.js';
import type { Logger } from '../util/log.js';
import type { Clock, TimerHandle } from '../util/timers.js';

const KEEPALIVE = Buffer.from([0xff]);

/** What the keepalive sender needs to know of an IKE SA. */
export interface KeepaliveTarget {
  readonly tag: string;
  readonly nat: { local: boolean };
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly state: string;
}

export class NatKeepalive {
  private timer: TimerHandle | null = null;
  sent = 0;

  constructor(
    private readonly sas: () => KeepaliveTarget[],
    private readonly send: (data: Buffer, local: Endpoint, remote: Endpoint) => void,
    private readonly natPort: number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Starts (or restarts with a new interval); 0 stops. */
  start(intervalSeconds: number): void {
    this.stop();
    if (intervalSeconds <= 0) return;
    const tick = (): void => {
      for (const sa of this.sas()) {
        // Only the side behind the NAT needs the mapping kept, and only on the NAT-T port.
        if (!sa.nat.local || sa.state === 'DESTROYED' || sa.local.port !== this.natPort) continue;
        this.send(KEEPALIVE, sa.local, sa.remote);
        this.sent++;
        this.log.debug(`${sa.tag}: NAT keepalive to ${sa.remote.address}:${sa.remote.port}`);
      }
      this.timer = this.clock.setTimeout(tick, intervalSeconds * 1000);
    };
    this.timer = this.clock.setTimeout(tick, intervalSeconds * 1000);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}
