/** Shared test doubles for the control tests: a scripted handler and sample listings. */
import type { ConnInfo, ControlHandler, IkeSaInfo } from '../../../src/control/protocol.js';

export const NOW = Date.UTC(2024, 0, 1, 12, 0, 0);

export function sampleSa(): IkeSaInfo {
  return {
    name: 'office', uniqueId: 1, version: 2, state: 'ESTABLISHED', initiator: true,
    local: { address: '192.0.2.1', port: 500, id: 'moon.example.org' },
    remote: { address: '192.0.2.2', port: 4500, id: 'sun.example.org' },
    spiI: '1a2b3c4d5e6f7a8b', spiR: '0102030405060708',
    algorithms: { encr: 'AES_CBC-128', integ: 'HMAC_SHA2_256_128', prf: 'PRF_HMAC_SHA2_256', dh: 'CURVE_25519' },
    establishedAt: NOW - 12_000, rekeyAt: NOW + (3 * 3600 + 59 * 60) * 1000 + 30_000,
    nat: { local: false, remote: true },
    children: [{
      name: 'net', uniqueId: 2, state: 'INSTALLED', mode: 'tunnel', protocol: 'esp',
      spiIn: 'c1234567', spiOut: 'c7654321', encap: false,
      algorithms: { encr: 'AES_GCM_16-128', integ: null, dh: null, esn: false },
      localTs: ['10.1.0.0/24'], remoteTs: ['10.2.0.0/24', '10.3.0.0/16[tcp/443]'],
      installedAt: NOW - 5_000, bytesIn: '18446744073709551615', bytesOut: '840', packetsIn: '3', packetsOut: '10',
    }],
  };
}

export function sampleConn(): ConnInfo {
  return {
    name: 'office', version: 2, localAddrs: ['192.0.2.1'], remoteAddrs: ['192.0.2.2'],
    localId: 'moon.example.org', remoteId: 'sun.example.org',
    children: [{ name: 'net', localTs: ['10.1.0.0/24'], remoteTs: ['10.2.0.0/24'] }],
  };
}

export type Call = [string, ...unknown[]];

/** Records every call; `initiate` and friends fail for the connection name 'broken'. */
export class FakeHandler implements ControlHandler {
  calls: Call[] = [];
  /** When set, initiate waits for this promise (to test timeouts and concurrency). */
  initiateGate: Promise<void> | null = null;
  async list(): Promise<IkeSaInfo[]> { this.calls.push(['list']); return [sampleSa()]; }
  async listConns(): Promise<ConnInfo[]> { this.calls.push(['listConns']); return [sampleConn()]; }
  async initiate(name: string, timeoutMs: number): Promise<string> {
    this.calls.push(['initiate', name, timeoutMs]);
    if (this.initiateGate) await this.initiateGate;
    if (name === 'broken') throw new Error(`connection '${name}': peer did not answer`);
    return `connection '${name}' established`;
  }
  async terminate(name: string): Promise<string> {
    this.calls.push(['terminate', name]);
    if (name === 'broken') throw new Error(`no SAs for '${name}'`);
    return `connection '${name}' terminated`;
  }
  async rekey(name: string): Promise<string> {
    this.calls.push(['rekey', name]);
    if (name.startsWith('broken')) throw new Error(`no established IKE SA of ${name} to rekey`);
    return `rekeying 1 IKE SA(s) of ${name}`;
  }
  async reload(): Promise<string> { this.calls.push(['reload']); return 'configuration reloaded: 1 connection'; }
  async setLogLevel(subsystem: string, level: string): Promise<string> {
    this.calls.push(['setLogLevel', subsystem, level]);
    return `${subsystem} log level is now ${level}`;
  }
  async stats(): Promise<Record<string, number>> { this.calls.push(['stats']); return { malformedDropped: 7, ikeSas: 1 }; }
}
