/**
 * A backend that installs nothing and records everything: for exchange tests
 * and for hosts where only key negotiation is wanted.
 */
import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import type { DataplaneBackend, DataplaneEvents, Direction, Endpoint, PolicyParams, SaCounters, SaParams } from '../../api.js';

const key = (spi: number, dir: Direction): string => `${dir}:${spi >>> 0}`;

export class MemoryBackend implements DataplaneBackend {
  readonly name = 'memory';
  readonly events = new EventEmitter<DataplaneEvents>();
  readonly sas = new Map<string, SaParams>();
  readonly policies: PolicyParams[] = [];
  readonly reserved = new Set<number>();

  async allocateSpi(): Promise<number> {
    for (;;) {
      // 0 is reserved and 1-255 are set aside by IANA (RFC 4303 2.1).
      const spi = randomInt(256, 0xffffffff);
      if (!this.reserved.has(spi)) { this.reserved.add(spi); return spi; }
    }
  }
  async addSa(sa: SaParams): Promise<void> {
    const k = key(sa.spi, sa.direction);
    if (this.sas.has(k)) throw new Error(`SA ${k} exists`);
    this.sas.set(k, { ...sa });
  }
  async updateSa(spi: number, direction: Direction, changes: { src?: Endpoint; dst?: Endpoint; encap?: boolean }): Promise<void> {
    const sa = this.sas.get(key(spi, direction));
    if (!sa) throw new Error(`no SA ${key(spi, direction)}`);
    this.sas.set(key(spi, direction), { ...sa, ...changes });
  }
  async deleteSa(spi: number, direction: Direction): Promise<void> {
    this.sas.delete(key(spi, direction));
    if (direction === 'in') this.reserved.delete(spi);
  }
  async querySa(spi: number, direction: Direction): Promise<SaCounters | null> {
    return this.sas.has(key(spi, direction)) ? { bytes: 0n, packets: 0n, replayDrops: 0n, authFailures: 0n, lastUsed: null } : null;
  }
  async addPolicy(p: PolicyParams): Promise<void> { this.policies.push(p); }
  async deletePolicy(p: PolicyParams): Promise<void> {
    const i = this.policies.findIndex((q) => q.spi === p.spi && q.direction === p.direction && q.tag === p.tag);
    if (i >= 0) this.policies.splice(i, 1);
  }
  stats(): Record<string, number> { return { sas: this.sas.size, policies: this.policies.length }; }
  async close(): Promise<void> { this.sas.clear(); this.policies.length = 0; }
}
