/**
 * CHILD_SAs (RFC 7296 1.3, 2.17): keys, selectors, and installation into the
 * data plane. The inbound SA goes in before the outbound one so that the
 * peer's first packet always finds its SA.
 */
import type { ChildConfig } from '../../config/model.js';
import type { ChildKeys } from '../../crypto/api.js';
import type { DataplaneBackend, Endpoint, Selector } from '../../dataplane/api.js';
import type { TrafficSelector } from '../../wire/ikev2/types.js';
import type { TimerHandle } from '../../util/timers.js';
import { allocUniqueId } from './ike-sa.js';
import type { EspSelection } from './proposals.js';

/** REKEYING: a CREATE_CHILD_SA to replace it is under way; REKEYED: replaced, kept only for late inbound packets. */
export type ChildState = 'CREATED' | 'INSTALLED' | 'REKEYING' | 'REKEYED' | 'DELETING' | 'DELETED';

export interface ChildSa {
  uniqueId: number;
  config: ChildConfig;
  state: ChildState;
  spiIn: number;
  spiOut: number;
  mode: 'tunnel' | 'transport';
  selection: EspSelection;
  keys: ChildKeys;
  localTs: TrafficSelector[];
  remoteTs: TrafficSelector[];
  encap: boolean;
  installedAt: number | null;
  /** Nonces of the exchange that created it, for rekey collisions (2.8.1). */
  nonces: { ni: Buffer; nr: Buffer } | null;
  /** Whether we initiated the exchange that created it. */
  createdByUs: boolean;
  /** The rekey or hard-expiry timers of its lifetime. */
  timers: TimerHandle[];
  /** Set when the peer rekeyed it while our own rekey of it was under way (2.8.1). */
  peerReplacement: ChildSa | null;
}

export function newChild(config: ChildConfig, spiIn: number, spiOut: number, mode: 'tunnel' | 'transport', selection: EspSelection, keys: ChildKeys, localTs: TrafficSelector[], remoteTs: TrafficSelector[], encap: boolean): ChildSa {
  return { uniqueId: allocUniqueId(), config, state: 'CREATED', spiIn, spiOut, mode, selection, keys, localTs, remoteTs, encap, installedAt: null, nonces: null, createdByUs: false, timers: [], peerReplacement: null };
}

const selector = (ts: TrafficSelector): Selector => ({
  family: ts.startAddr.length === 4 ? 4 : 6,
  startAddr: ts.startAddr, endAddr: ts.endAddr,
  protocol: ts.ipProtocol, startPort: ts.startPort, endPort: ts.endPort,
});

export const spiHex = (spi: number): string => (spi >>> 0).toString(16).padStart(8, '0');

/**
 * Installs both directions and the policies. `initiator` says which half of
 * KEYMAT is ours to send with (2.17: initiator-to-responder keys come first).
 */
export async function installChild(dp: DataplaneBackend, child: ChildSa, initiator: boolean, local: Endpoint, remote: Endpoint, tag: string): Promise<void> {
  const k = child.keys;
  const outKeys = initiator ? { e: k.encrI, a: k.integI } : { e: k.encrR, a: k.integR };
  const inKeys = initiator ? { e: k.encrR, a: k.integR } : { e: k.encrI, a: k.integI };
  const sel = child.selection;
  const selectors = { local: child.localTs.map(selector), remote: child.remoteTs.map(selector) };
  const common = {
    protocol: 'esp' as const, mode: child.mode, esn: sel.esn === 1, replayWindow: 128, encap: child.encap, selectors,
    limits: { softSeconds: child.config.rekeyTime, hardSeconds: child.config.lifetime }, tag,
  };
  await dp.addSa({ ...common, spi: child.spiIn, direction: 'in', src: remote, dst: local,
    encr: { id: sel.encr.id, key: inKeys.e, keyLength: sel.encr.keyLength }, integ: sel.integ ? { id: sel.integ, key: inKeys.a } : null });
  try {
    await dp.addSa({ ...common, spi: child.spiOut, direction: 'out', src: local, dst: remote,
      encr: { id: sel.encr.id, key: outKeys.e, keyLength: sel.encr.keyLength }, integ: sel.integ ? { id: sel.integ, key: outKeys.a } : null });
  } catch (e) {
    await dp.deleteSa(child.spiIn, 'in').catch(() => undefined);
    throw e;
  }
  const tunnel = child.mode === 'tunnel' ? { src: local.address, dst: remote.address } : null;
  for (const l of child.localTs) for (const r of child.remoteTs) {
    await dp.addPolicy({ direction: 'out', local: selector(l), remote: selector(r), mode: child.mode, spi: child.spiOut, tunnel, tag });
    await dp.addPolicy({ direction: 'in', local: selector(l), remote: selector(r), mode: child.mode, spi: child.spiIn, tunnel: tunnel && { src: tunnel.dst, dst: tunnel.src }, tag });
  }
  child.state = 'INSTALLED';
}

export async function uninstallChild(dp: DataplaneBackend, child: ChildSa, local: Endpoint, remote: Endpoint, tag: string): Promise<void> {
  if (child.state === 'DELETED') return;
  child.timers.forEach((t) => t.cancel());
  const tunnel = child.mode === 'tunnel' ? { src: local.address, dst: remote.address } : null;
  if (child.state !== 'CREATED') {
    for (const l of child.localTs) for (const r of child.remoteTs) {
      await dp.deletePolicy({ direction: 'out', local: selector(l), remote: selector(r), mode: child.mode, spi: child.spiOut, tunnel, tag });
      await dp.deletePolicy({ direction: 'in', local: selector(l), remote: selector(r), mode: child.mode, spi: child.spiIn, tunnel: tunnel && { src: tunnel.dst, dst: tunnel.src }, tag });
    }
    await dp.deleteSa(child.spiOut, 'out');
  }
  await dp.deleteSa(child.spiIn, 'in');
  child.state = 'DELETED';
}
