/**
 * CHILD_SAs (RFC 7296 1.3, 2.17): keys, selectors, and installation into the
 * data plane. The inbound SA goes in before the outbound one so that the
 * peer's first packet always finds its SA.
 */
import type { ChildConfig } from '../../config/model.js';
import type { ChildKeys } from '../../crypto/api.js';
import type { DataplaneBackend, Endpoint, PolicyParams, SaParams, Selector } from '../../dataplane/api.js';
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
  /** Whether we initiated the exchange that made it (which half of KEYMAT we send with). */
  initiator: boolean;
  /** Whether its outbound SA is installed; a rekey's responder waits (make-before-break). */
  outboundInstalled: boolean;
  /** The CHILD_SA this one replaces, until that one is gone. */
  replaces: ChildSa | null;
  /** Lost a rekey collision: never sends, and the peer deletes it (2.8.1). */
  redundant: boolean;
}

export function newChild(config: ChildConfig, spiIn: number, spiOut: number, mode: 'tunnel' | 'transport', selection: EspSelection, keys: ChildKeys, localTs: TrafficSelector[], remoteTs: TrafficSelector[], encap: boolean): ChildSa {
  return { uniqueId: allocUniqueId(), config, state: 'CREATED', spiIn, spiOut, mode, selection, keys, localTs, remoteTs, encap, installedAt: null, nonces: null, createdByUs: false, timers: [], peerReplacement: null, initiator: false, outboundInstalled: false, replaces: null, redundant: false };
}

const selector = (ts: TrafficSelector): Selector => ({
  family: ts.startAddr.length === 4 ? 4 : 6,
  startAddr: ts.startAddr, endAddr: ts.endAddr,
  protocol: ts.ipProtocol, startPort: ts.startPort, endPort: ts.endPort,
});

function volumeLimits(c: ChildConfig, hardSeconds: number): SaParams['limits'] {
  const n = (v: number): bigint | undefined => (v > 0 ? BigInt(v) : undefined);
  const l: NonNullable<SaParams['limits']> = { hardSeconds };
  const [sb, hb, sp, hp] = [n(c.rekeyBytes), n(c.lifeBytes), n(c.rekeyPackets), n(c.lifePackets)];
  if (sb !== undefined) l.softBytes = sb;
  if (hb !== undefined) l.hardBytes = hb;
  if (sp !== undefined) l.softPackets = sp;
  if (hp !== undefined) l.hardPackets = hp;
  return l;
}

export const spiHex = (spi: number): string => (spi >>> 0).toString(16).padStart(8, '0');

/** The SaParams of one direction; `initiator` says which half of KEYMAT is ours to send with (2.17). */
function saParams(child: ChildSa, direction: 'in' | 'out', initiator: boolean, local: Endpoint, remote: Endpoint, tag: string): SaParams {
  const k = child.keys, sel = child.selection;
  const ours = initiator === (direction === 'out');
  const keys = ours ? { e: k.encrI, a: k.integI } : { e: k.encrR, a: k.integR };
  return {
    protocol: 'esp', mode: child.mode, esn: sel.esn === 1, replayWindow: 128, encap: child.encap,
    selectors: { local: child.localTs.map(selector), remote: child.remoteTs.map(selector) },
    // IKE keeps time itself (with jitter); the data plane counts volume, and holds the hard time limit as a backstop.
    limits: volumeLimits(child.config, child.config.lifetime), tag,
    spi: direction === 'in' ? child.spiIn : child.spiOut, direction,
    src: direction === 'in' ? remote : local, dst: direction === 'in' ? local : remote,
    encr: { id: sel.encr.id, key: keys.e, keyLength: sel.encr.keyLength }, integ: sel.integ ? { id: sel.integ, key: keys.a } : null,
  };
}

function policies(child: ChildSa, direction: 'in' | 'out', local: Endpoint, remote: Endpoint, tag: string): PolicyParams[] {
  const tunnel = child.mode === 'tunnel' ? (direction === 'out' ? { src: local.address, dst: remote.address } : { src: remote.address, dst: local.address }) : null;
  const out: PolicyParams[] = [];
  for (const l of child.localTs) for (const r of child.remoteTs) {
    out.push({ direction, local: selector(l), remote: selector(r), mode: child.mode, spi: direction === 'in' ? child.spiIn : child.spiOut, tunnel, tag });
  }
  return out;
}

/**
 * Installs the inbound SA and its policies, then, unless `outbound` is
 * false, the outbound ones: the peer's first packet must always find its SA.
 * A rekey's responder leaves the outbound half for installOutbound, called
 * once the initiator has the new SA too (make-before-break).
 */
export async function installChild(dp: DataplaneBackend, child: ChildSa, initiator: boolean, local: Endpoint, remote: Endpoint, tag: string, outbound = true): Promise<void> {
  child.initiator = initiator;
  await dp.addSa(saParams(child, 'in', initiator, local, remote, tag));
  try {
    for (const p of policies(child, 'in', local, remote, tag)) await dp.addPolicy(p);
    if (outbound) await installOutbound(dp, child, local, remote, tag);
  } catch (e) {
    await dp.deleteSa(child.spiIn, 'in').catch(() => undefined);
    throw e;
  }
  child.state = 'INSTALLED';
}

/** Starts sending on this CHILD_SA: its outbound SA and policies (newest policy wins in the data plane). */
export async function installOutbound(dp: DataplaneBackend, child: ChildSa, local: Endpoint, remote: Endpoint, tag: string): Promise<void> {
  if (child.outboundInstalled) return;
  await dp.addSa(saParams(child, 'out', child.initiator, local, remote, tag));
  for (const p of policies(child, 'out', local, remote, tag)) await dp.addPolicy(p);
  child.outboundInstalled = true;
}

/**
 * Removes a CHILD_SA from the data plane. With `lingerInbound`, the inbound
 * SA stays a little longer so packets the peer sent before it switched still
 * arrive; the schedule function runs the deferred removal.
 */
export async function uninstallChild(dp: DataplaneBackend, child: ChildSa, local: Endpoint, remote: Endpoint, tag: string,
  lingerInbound?: (remove: () => void) => void): Promise<void> {
  if (child.state === 'DELETED') return;
  child.timers.forEach((t) => t.cancel());
  if (child.outboundInstalled) {
    for (const p of policies(child, 'out', local, remote, tag)) await dp.deletePolicy(p);
    await dp.deleteSa(child.spiOut, 'out');
    child.outboundInstalled = false;
  }
  const installed = child.state !== 'CREATED';
  child.state = 'DELETED';
  const removeInbound = async (): Promise<void> => {
    if (installed) for (const p of policies(child, 'in', local, remote, tag)) await dp.deletePolicy(p);
    await dp.deleteSa(child.spiIn, 'in');
  };
  if (lingerInbound && installed) lingerInbound(() => { void removeInbound().catch(() => undefined); });
  else await removeInbound();
}
