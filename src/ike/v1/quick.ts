/**
 * Quick Mode (RFC 2409 5.5), both roles, one IPsec (ESP) SA pair per
 * exchange:
 *
 *   QM1  HDR*, HASH(1), SA, Ni [, KE ] [, IDci, IDcr ]  -->
 *   QM2                   <--  HDR*, HASH(2), SA, Nr [, KE ] [, IDci, IDcr ]
 *   QM3  HDR*, HASH(3)                                  -->
 *
 * Client IDs carry the traffic selectors (RFC 2407 4.6.2); the responder
 * narrows them like src/ike/ts.ts does for IKEv2. PFS is a KE whose group
 * every transform names (RFC 2409 5.5). KEYMAT per direction uses the SPI
 * of the side that receives on it. Installation goes through the IKEv2
 * CHILD_SA code with the ESP transform mapped to IKEv2 numbers.
 *
 * Make-before-break: each side installs its inbound SA before the message
 * after which the peer may send on it (the responder before QM2, the
 * initiator before QM3). Outbound starts at once for a new pair; for a pair
 * that replaces another (a rekey) it starts a grace period later, when the
 * peer has surely installed its inbound SA, and then the replaced pair is
 * deleted; the responder switches earlier if the initiator deletes the
 * replaced pair first.
 */
import type { ChildConfig } from '../../config/model.js';
import type { ChildKeys, KeyExchange } from '../../crypto/api.js';
import { createV1KeyExchange, v1EspKeyLengths, v1QuickHash1, v1QuickHash2, v1QuickHash3, v1QuickKeymat } from '../../crypto/ikev1/index.js';
import { safeEqual } from '../../util/bytes.js';
import { StyxError } from '../../util/errors.js';
import {
  Doi, V1ExchangeType, V1NotifyType, V1PayloadType, V1ProtocolId, checkV1Message, decodeV1PayloadChain, encodeV1PayloadChain,
  findV1Notify, findV1Payload, findV1Payloads, splitV1Hash,
  type IsakmpEncryptedMessage, type V1IdPayload, type V1Life, type V1Payload,
} from '../../wire/ikev1/index.js';
import type { TrafficSelector } from '../../wire/ikev2/types.js';
import { contains, equalTs, fromConfig, narrow, tsText } from '../ts.js';
import { installChild, newChild, spiHex, uninstallChild, type ChildSa } from '../v2/child-sa.js';
import type { V1Context } from './context.js';
import type { IkeSaV1 } from './ike-sa.js';
import { clientId, hostSelector, selectorOf } from './ids.js';
import { deleteChildV1, sendInformational, switchOutbound } from './info.js';
import { natT, responderLifeOf, responderLifetime } from './phase1.js';
import { newerSa, ownerOf, withPeer } from './rekey.js';
import {
  V1_KILOBYTE, acceptEspReply, espSaPayload, espSelection, espTransforms, lifeKilobytes, modeOfEncapsulation, pfsGroup, selectEsp,
  type EspChoice,
} from './proposals.js';

const QM = V1ExchangeType.QUICK;
const spiBuf = (spi: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(spi >>> 0); return b; };

/** A Quick Mode under way, by message ID. QUICK_I1: QM1 sent; QUICK_R1: QM2 sent, waiting for QM3. */
export interface QuickState {
  step: 'QUICK_I1' | 'QUICK_R1';
  messageId: number;
  cfg: ChildConfig;
  spiIn: number;
  ni: Buffer;
  nr: Buffer;
  ke: KeyExchange | null;
  gxy: Buffer | null;
  offered: EspChoice[];
  /** Responder: what was accepted, to install on QM3. */
  accepted: { choice: EspChoice; spiOut: number; mode: 'tunnel' | 'transport'; encap: boolean; tsi: TrafficSelector; tsr: TrafficSelector; life: AgreedLife } | null;
  localTs: TrafficSelector;
  remoteTs: TrafficSelector;
  /** The CHILD_SA this one replaces once up (rekey). */
  replaces: ChildSa | null;
  /** Responder: the pair whose inbound half went in before QM2. */
  child: ChildSa | null;
}

/**
 * How long after QM3 the initiator of a rekey keeps sending on the old pair:
 * the responder installs the new inbound SA only when QM3 arrives.
 */
const INITIATOR_SWITCH_MS = 1000;
/** The responder's limit for the same wait, should the initiator never delete the replaced pair. */
const RESPONDER_SWITCH_MS = 2000;

const quicks = new WeakMap<IkeSaV1, Map<number, QuickState>>();
export function quickStates(sa: IkeSaV1): Map<number, QuickState> {
  let m = quicks.get(sa);
  if (!m) { m = new Map(); quicks.set(sa, m); }
  return m;
}

/** Seconds after which a finished Quick Mode's duplicate detection is dropped. */
const QUICK_LINGER_MS = 60_000;

function finish(ctx: V1Context, sa: IkeSaV1, q: QuickState): void {
  quickStates(sa).delete(q.messageId);
  sa.settle(q.messageId);
  sa.timers.push(ctx.clock.setTimeout(() => sa.forget(q.messageId), QUICK_LINGER_MS));
}

async function failQuick(ctx: V1Context, sa: IkeSaV1, q: QuickState, why: string): Promise<void> {
  finish(ctx, sa, q);
  if (q.child) await uninstallChild(ctx.dp, q.child, sa.local, sa.remote, `${sa.conn.name}/${q.cfg.name}`).catch(() => undefined);
  else await ctx.dp.deleteSa(q.spiIn, 'in').catch(() => undefined);
  ctx.log.warn(`${sa.tag}: Quick Mode ${q.messageId.toString(16)} for ${q.cfg.name} failed: ${why}`);
  ctx.childFailed(sa, why);
  retryRekey(ctx, sa, q);
}

/** How often a Quick Mode held back by a phase 1 rekey looks again. */
const PHASE1_WAIT_MS = 250;

/** Attempts at renewing one pair before it is left to expire. */
const REKEY_TRIES = 3;
const REKEY_RETRY_MS = 2000;
const rekeyTries = new WeakMap<ChildSa, number>();

/**
 * A rekey that failed (unanswered, refused, or its ISAKMP SA gone midway)
 * is tried again over whichever ISAKMP SA owns the pair then: only the
 * side that made the pair renews it, so without this it would just expire.
 */
function retryRekey(ctx: V1Context, sa: IkeSaV1, q: QuickState): void {
  const old = q.replaces;
  if (!old || old.state !== 'INSTALLED') return;
  const n = (rekeyTries.get(old) ?? 1) + 1;
  if (n > REKEY_TRIES) { ctx.log.warn(`${sa.tag}: CHILD_SA ${q.cfg.name}{${old.uniqueId}} not rekeyed after ${REKEY_TRIES} tries: it expires at its lifetime`); return; }
  rekeyTries.set(old, n);
  ctx.log.info(`${sa.tag}: rekeying CHILD_SA ${q.cfg.name}{${old.uniqueId}} again in ${REKEY_RETRY_MS / 1000}s (try ${n} of ${REKEY_TRIES})`);
  ctx.clock.setTimeout(() => {
    const owner = ownerOf(ctx, sa, old);
    if (owner?.state !== 'ESTABLISHED' || old.state !== 'INSTALLED') return;
    void owner.enqueue(() => initiateQuick(ctx, owner, q.cfg, old));
  }, REKEY_RETRY_MS);
}

/** What a Quick Mode agreed an IPsec SA lives for: seconds, and bytes (0: no volume limit). */
interface AgreedLife { seconds: number; bytes: number }

/** The smaller of two byte limits, 0 meaning none. */
const minBytes = (a: number, b: number): number => (a > 0 && b > 0 ? Math.min(a, b) : Math.max(a, b));

/**
 * The child's config held to an agreed life shorter than configured
 * (RFC 2407 4.5.4): it is renewed a little before that life ends, by time
 * here and by volume in the data plane.
 */
function heldTo(c: ChildConfig, life: AgreedLife): ChildConfig {
  let cfg = c;
  if (life.seconds < c.lifetime) cfg = { ...cfg, lifetime: life.seconds, rekeyTime: Math.max(1, Math.min(c.rekeyTime, Math.floor(life.seconds * 0.9))) };
  if (life.bytes > 0 && (c.lifeBytes === 0 || life.bytes < c.lifeBytes)) {
    const soft = Math.max(1, Math.floor(life.bytes * 0.9));
    cfg = { ...cfg, lifeBytes: life.bytes, rekeyBytes: c.rekeyBytes > 0 ? Math.min(c.rekeyBytes, soft) : soft };
  }
  return cfg;
}

/** HASH(n) first, then the rest; the hash covers the encoded rest (RFC 2409 5.5). */
function withHash(hash: (rest: Buffer) => Buffer, rest: V1Payload[]): V1Payload[] {
  return [{ type: V1PayloadType.HASH, data: hash(encodeV1PayloadChain(rest).bytes) }, ...rest];
}

/** Whether a Quick Mode of ours over `sa` is already renewing `child`. */
export function rekeyUnderWay(sa: IkeSaV1, child: ChildSa): boolean {
  return [...quickStates(sa).values()].some((q) => q.replaces === child);
}

/** Starts Quick Mode for a child (RFC 2409 5.5), or to replace `replaces` before it expires. */
export async function initiateQuick(ctx: V1Context, sa: IkeSaV1, cfg: ChildConfig, replaces: ChildSa | null = null): Promise<void> {
  if (sa.state !== 'ESTABLISHED') return;
  // Time and volume limits may both call for the same renewal: one Quick Mode does it.
  if (replaces && rekeyUnderWay(sa, replaces)) {
    ctx.log.debug(`${sa.tag}: CHILD_SA ${cfg.name}{${replaces.uniqueId}} is already being rekeyed`);
    return;
  }
  // A new phase 1 replacing this ISAKMP SA is under way: a peer may move its IPsec SAs to the new SA
  // before our QM3 reaches it, tie the new pair to the old SA and drop the pair when the old SA is
  // deleted. The Quick Mode waits and goes over the new SA.
  const successor = ctx.siblings(sa).find((s) => s.state === 'CONNECTING' && (s.replaces === sa || s.predecessor === sa));
  if (successor) {
    ctx.log.debug(`${sa.tag}: Quick Mode for ${cfg.name} waits for phase 1 ${successor.tag}`);
    ctx.clock.setTimeout(() => {
      const via = (replaces ? ownerOf(ctx, sa, replaces) : undefined) ?? newerSa(ctx, sa) ?? sa;
      if (via.state !== 'ESTABLISHED' || (replaces && replaces.state !== 'INSTALLED')) return;
      void via.enqueue(() => initiateQuick(ctx, via, cfg, replaces));
    }, PHASE1_WAIT_MS);
    return;
  }
  const mid = sa.newMessageId();
  let spiIn: number;
  try { spiIn = await ctx.dp.allocateSpi(); } catch (e) { sa.forget(mid); ctx.childFailed(sa, `cannot allocate an SPI: ${(e as Error).message}`); return; }
  const group = pfsGroup(cfg);
  const ke = group ? createV1KeyExchange(group) : null;
  const localTs = replaces?.localTs[0] ?? fromConfig(cfg.localTs[0]!, sa.local.address);
  const remoteTs = replaces?.remoteTs[0] ?? fromConfig(cfg.remoteTs[0]!, sa.remote.address);
  const q: QuickState = {
    step: 'QUICK_I1', messageId: mid, cfg, spiIn, ni: ctx.nonce(), nr: Buffer.alloc(0), ke, gxy: null,
    offered: espTransforms(cfg, natT(sa), cfg.lifetime), accepted: null, localTs, remoteTs, replaces, child: null,
  };
  let rest: V1Payload[];
  try {
    rest = [espSaPayload(q.offered, spiBuf(spiIn)), { type: V1PayloadType.NONCE, data: q.ni },
      ...(ke ? [{ type: V1PayloadType.KE, data: ke.publicValue } as const] : []), clientId(localTs), clientId(remoteTs)];
  } catch (e) {
    if (!(e instanceof StyxError)) throw e;
    await failQuick(ctx, sa, q, e.message);
    return;
  }
  quickStates(sa).set(mid, q);
  ctx.counters.quickModes++;
  const a = sa.keys!.skeyidA;
  const payloads = withHash((r) => v1QuickHash1(sa.hashId, a, mid, r), rest);
  ctx.log.info(`${sa.tag}: Quick Mode ${mid.toString(16)}: ${replaces ? `rekeying ${cfg.name}{${replaces.uniqueId}}` : `proposing CHILD_SA ${cfg.name}`} with SPI ${spiHex(spiIn)}, ${tsText(localTs)} === ${tsText(remoteTs)}${ke ? `, PFS group ${group}` : ''}`);
  sa.send(mid, sa.encodeEncrypted(QM, mid, payloads), `QM1 ${mid.toString(16)}`, true);
}

/** Decrypts and authenticates a Quick Mode message; null (logged, counted) when it does not verify. */
function openQuick(ctx: V1Context, sa: IkeSaV1, msg: IsakmpEncryptedMessage, position: number, hash: (rest: Buffer) => Buffer): V1Payload[] | null {
  const mid = msg.header.messageId;
  try {
    const plain = sa.decrypt(msg);
    const { hash: got, rest } = splitV1Hash(msg.firstPayload, plain);
    if (!safeEqual(hash(rest), got)) {
      ctx.counters.integrityFailures++;
      ctx.log.info(`${sa.tag}: dropped QM${position} ${mid.toString(16)}: HASH(${position}) does not verify`);
      return null;
    }
    const payloads = decodeV1PayloadChain(msg.firstPayload, plain);
    checkV1Message(QM, position, true, payloads);
    sa.iv!.advance(mid, msg.ciphertext);
    // Before anything is answered: an answer goes to where the peer is now.
    sa.authenticated();
    return payloads;
  } catch (e) {
    if (!(e instanceof StyxError)) throw e;
    if (e.code === 'ERR_INTEGRITY') ctx.counters.integrityFailures++; else ctx.counters.malformed++;
    ctx.log.info(`${sa.tag}: dropped QM${position} ${mid.toString(16)}: ${e.message}`);
    return null;
  }
}

/** RFC 2409 5.5 KEYMAT for both directions; `_i` is the QM initiator's sending direction (the responder's SPI). */
function childKeys(sa: IkeSaV1, choice: EspChoice, spiOfResponder: number, spiOfInitiator: number, ni: Buffer, nr: Buffer, gxy: Buffer | null): ChildKeys {
  const { encr, integ } = v1EspKeyLengths(choice.transformId, choice.attrs.keyLength, choice.attrs.authAlgorithm);
  const km = (spi: number): Buffer => v1QuickKeymat(sa.hashId, sa.keys!.skeyidD,
    { protocol: V1ProtocolId.IPSEC_ESP, spi: spiBuf(spi), niB: ni, nrB: nr, ...(gxy ? { gxyQm: gxy } : {}) }, encr + integ);
  const toR = km(spiOfResponder), toI = km(spiOfInitiator);
  return { encrI: toR.subarray(0, encr), integI: toR.subarray(encr), encrR: toI.subarray(0, encr), integR: toI.subarray(encr) };
}

/** The pair a Quick Mode agreed on, with its keys; nothing installed yet. */
function prepare(ctx: V1Context, sa: IkeSaV1, q: QuickState, initiator: boolean, choice: EspChoice, spiOut: number, mode: 'tunnel' | 'transport',
  encap: boolean, localTs: TrafficSelector, remoteTs: TrafficSelector, life: AgreedLife): ChildSa {
  const keys = initiator ? childKeys(sa, choice, spiOut, q.spiIn, q.ni, q.nr, q.gxy) : childKeys(sa, choice, q.spiIn, spiOut, q.ni, q.nr, q.gxy);
  const sel = espSelection(choice, 1, spiBuf(spiOut));
  const cfg = heldTo(q.cfg, life);
  const child = newChild(cfg, q.spiIn, spiOut, mode, sel, keys, [localTs], [remoteTs], encap);
  child.nonces = { ni: q.ni, nr: q.nr };
  child.createdByUs = initiator;
  ctx.log.secret(() => `${sa.tag}: CHILD_SA ${cfg.name} keys encr_i ${keys.encrI.toString('hex')} integ_i ${keys.integI.toString('hex')} encr_r ${keys.encrR.toString('hex')} integ_r ${keys.integR.toString('hex')}`);
  return child;
}

/** The inbound half first (make-before-break); false (logged, reported) if the data plane refused it. */
async function installInbound(ctx: V1Context, sa: IkeSaV1, child: ChildSa, initiator: boolean): Promise<boolean> {
  try {
    await installChild(ctx.dp, child, initiator, sa.local, sa.remote, `${sa.conn.name}/${child.config.name}`, false);
    return true;
  } catch (e) {
    ctx.log.error(`${sa.tag}: installing CHILD_SA ${child.config.name} failed: ${(e as Error).message}`);
    ctx.childFailed(sa, `install failed: ${(e as Error).message}`);
    return false;
  }
}

/**
 * The pair is agreed by both sides: it joins the ISAKMP SA, and it sends at
 * once, or, replacing `old`, after `graceMs` (then `old` is deleted).
 */
async function activate(ctx: V1Context, sa: IkeSaV1, child: ChildSa, old: ChildSa | null, graceMs: number): Promise<void> {
  child.installedAt = ctx.clock.now();
  sa.children.push(child);
  const c = child.config;
  const [l, r] = [child.localTs[0]!, child.remoteTs[0]!];
  ctx.log.info(`${sa.tag}: CHILD_SA ${c.name}{${child.uniqueId}} established with SPIs ${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o and TS ${tsText(l)} === ${tsText(r)} (${child.mode}${child.encap ? ', UDP-encapsulated' : ''}, lifetime ${c.lifetime}s${c.lifeBytes > 0 ? ` or ${c.lifeBytes} bytes` : ''}${old ? `, replaces {${old.uniqueId}}` : ''})`);
  ctx.childUp(sa, child);
  if (!old) { await switchOutbound(ctx, sa, child); return; }
  child.replaces = old;
  old.state = 'REKEYED';
  ctx.clock.setTimeout(() => {
    const owner = ownerOf(ctx, sa, child);
    if (!owner || child.replaces !== old) return;
    void owner.enqueue(async () => {
      await switchOutbound(ctx, owner, child);
      const holder = ownerOf(ctx, owner, old);
      if (holder) await deleteChildV1(ctx, holder, old, `rekeyed into {${child.uniqueId}}`);
    });
  }, graceMs);
}

/**
 * The installed pair a responder's new one replaces: IKEv1 names no rekey
 * (there is no REKEY_SA), so it is the live pair of the same child with the
 * same selectors, not already being replaced.
 */
function replacedBy(ctx: V1Context, sa: IkeSaV1, child: ChildSa): ChildSa | null {
  for (const s of withPeer(ctx, sa)) {
    for (const c of s.children) {
      if (c === child || c.state !== 'INSTALLED' || c.config.name !== child.config.name) continue;
      if (!equalTs(c.localTs[0]!, child.localTs[0]!) || !equalTs(c.remoteTs[0]!, child.remoteTs[0]!)) continue;
      if (withPeer(ctx, sa).some((o) => o.children.some((x) => x.replaces === c))) continue;
      return c;
    }
  }
  return null;
}

/** A Quick Mode message of an established ISAKMP SA: QM1 of a new exchange, QM2 for ours, QM3 for one we answered. */
export async function handleQuick(ctx: V1Context, sa: IkeSaV1, msg: IsakmpEncryptedMessage, raw: Buffer): Promise<void> {
  const mid = msg.header.messageId;
  const q = quickStates(sa).get(mid);
  const a = sa.keys!.skeyidA;
  if (q?.step === 'QUICK_I1') {
    const p = openQuick(ctx, sa, msg, 2, (r) => v1QuickHash2(sa.hashId, a, mid, q.ni, r));
    if (!p) return;
    sa.received(mid, raw);
    await quickResponse(ctx, sa, q, p);
    return;
  }
  if (q?.step === 'QUICK_R1') {
    const p = openQuick(ctx, sa, msg, 3, () => v1QuickHash3(sa.hashId, a, mid, q.ni, q.nr));
    if (!p) return;
    sa.received(mid, raw);
    finish(ctx, sa, q);
    const child = q.child!;
    await activate(ctx, sa, child, replacedBy(ctx, sa, child), RESPONDER_SWITCH_MS);
    return;
  }
  if (sa.knows(mid)) {
    ctx.log.debug(`${sa.tag}: dropped Quick Mode message ${mid.toString(16)} of a finished exchange`);
    return;
  }
  const p = openQuick(ctx, sa, msg, 1, (r) => v1QuickHash1(sa.hashId, a, mid, r));
  if (!p) { sa.iv!.forget(mid); return; }
  sa.received(mid, raw);
  await quickRequest(ctx, sa, mid, p);
}

async function quickResponse(ctx: V1Context, sa: IkeSaV1, q: QuickState, p: V1Payload[]): Promise<void> {
  const saP = findV1Payload(p, V1PayloadType.SA)!, nr = findV1Payload(p, V1PayloadType.NONCE)!, ke = findV1Payload(p, V1PayloadType.KE);
  const acc = acceptEspReply(q.offered, saP);
  if (!acc) { await failQuick(ctx, sa, q, 'responder chose an ESP transform we did not offer'); return; }
  q.nr = nr.data;
  if (q.ke) {
    if (!ke || acc.choice.attrs.group !== q.ke.group) { await failQuick(ctx, sa, q, 'responder did not complete the PFS key exchange'); return; }
    try { q.gxy = q.ke.computeSecret(ke.data); } catch (e) { if (e instanceof StyxError) { await failQuick(ctx, sa, q, e.message); return; } throw e; }
  } else if (ke) { await failQuick(ctx, sa, q, 'responder sent a KE we did not ask for'); return; }
  // RFC 2409 5.5: the responder's IDs are ours, possibly narrowed; never wider.
  const ids = findV1Payloads(p, V1PayloadType.ID);
  let tsi = q.localTs, tsr = q.remoteTs;
  if (ids.length === 2) {
    try { tsi = selectorOf(ids[0]!); tsr = selectorOf(ids[1]!); } catch (e) { if (e instanceof StyxError) { await failQuick(ctx, sa, q, e.message); return; } throw e; }
    if (!contains(q.localTs, tsi) || !contains(q.remoteTs, tsr)) { await failQuick(ctx, sa, q, `responder's IDs ${tsText(tsi)} === ${tsText(tsr)} are not within ours`); return; }
  }
  // RFC 2407 4.5: the chosen transform's lifetimes; a kilobytes life we did not offer still binds us.
  const chosen = acc.choice.attrs.life;
  const life: AgreedLife = { seconds: chosen.seconds ?? q.cfg.lifetime, bytes: minBytes(q.cfg.lifeBytes, (chosen.kilobytes ?? 0) * V1_KILOBYTE) };
  // RFC 2407 4.6.3.1: the responder may hold the SA to shorter lifetimes than we offered.
  const rl = findV1Notify(p, V1NotifyType.RESPONDER_LIFETIME);
  const rlife = rl ? responderLifeOf(rl) : null;
  if (rl && !rlife) ctx.log.info(`${sa.tag}: ignored a RESPONDER-LIFETIME for ${q.cfg.name} that does not parse`);
  if (rlife?.seconds !== undefined && rlife.seconds > 0 && rlife.seconds < life.seconds) {
    ctx.log.info(`${sa.tag}: peer shortens CHILD_SA ${q.cfg.name} lifetime to ${rlife.seconds}s (RESPONDER-LIFETIME)`);
    life.seconds = rlife.seconds;
  }
  const rbytes = (rlife?.kilobytes ?? 0) * V1_KILOBYTE;
  if (rbytes > 0 && minBytes(life.bytes, rbytes) !== life.bytes) {
    ctx.log.info(`${sa.tag}: peer limits CHILD_SA ${q.cfg.name} to ${rbytes} bytes (RESPONDER-LIFETIME)`);
    life.bytes = rbytes;
  }
  const mid = q.messageId;
  const m = modeOfEncapsulation(acc.choice.attrs.encapsulation ?? 1)!;
  const child = prepare(ctx, sa, q, true, acc.choice, acc.spi.readUInt32BE(0), m.mode, m.udp || natT(sa), tsi, tsr, life);
  // Inbound before QM3: the responder may send on the new pair as soon as it has QM3.
  if (!await installInbound(ctx, sa, child, true)) { await failQuick(ctx, sa, q, 'the data plane refused the inbound SA'); return; }
  sa.send(mid, sa.encodeEncrypted(QM, mid, [{ type: V1PayloadType.HASH, data: v1QuickHash3(sa.hashId, sa.keys!.skeyidA, mid, q.ni, q.nr) }]), `QM3 ${mid.toString(16)}`, false);
  finish(ctx, sa, q);
  const old = q.replaces && q.replaces.state === 'INSTALLED' ? q.replaces : null;
  await activate(ctx, sa, child, old, INITIATOR_SWITCH_MS);
}


/** The responder side: choose a child and a transform, answer QM2 or refuse with an Informational. */
async function quickRequest(ctx: V1Context, sa: IkeSaV1, mid: number, p: V1Payload[]): Promise<void> {
  const saP = findV1Payload(p, V1PayloadType.SA)!, ni = findV1Payload(p, V1PayloadType.NONCE)!, ke = findV1Payload(p, V1PayloadType.KE);
  const ids = findV1Payloads(p, V1PayloadType.ID);
  const theirSpi = saP.proposals[0]?.spi ?? Buffer.alloc(4);
  const refuse = (n: number, why: string): Promise<void> => {
    ctx.log.warn(`${sa.tag}: Quick Mode ${mid.toString(16)}: ${why}`);
    sa.forget(mid);
    ctx.childFailed(sa, why);
    return sendInformational(ctx, sa, [{ type: V1PayloadType.N, doi: Doi.IPSEC, protocol: V1ProtocolId.IPSEC_ESP, spi: theirSpi, notifyType: n, data: Buffer.alloc(0) }]);
  };
  let tsi: TrafficSelector, tsr: TrafficSelector;
  try {
    [tsi, tsr] = ids.length === 2 ? [selectorOf(ids[0]!), selectorOf(ids[1]!)] : [hostSelector(sa.remote.address), hostSelector(sa.local.address)];
  } catch (e) {
    if (!(e instanceof StyxError)) throw e;
    await refuse(V1NotifyType.INVALID_ID_INFORMATION, `client IDs: ${e.message}: INVALID_ID_INFORMATION`);
    return;
  }
  let match: { cfg: ChildConfig; tsi: TrafficSelector; tsr: TrafficSelector } | null = null;
  for (const cfg of sa.conn.children) {
    const ni2 = narrow([tsi], cfg.remoteTs.map((t) => fromConfig(t, sa.remote.address)));
    const nr2 = narrow([tsr], cfg.localTs.map((t) => fromConfig(t, sa.local.address)));
    if (ni2.length && nr2.length) { match = { cfg, tsi: ni2[0]!, tsr: nr2[0]! }; break; }
  }
  if (!match) { await refuse(V1NotifyType.INVALID_ID_INFORMATION, `IDs ${tsText(tsi)} === ${tsText(tsr)} match no child of ${sa.conn.name}: INVALID_ID_INFORMATION`); return; }
  const pick = selectEsp(match.cfg, saP);
  if (!pick) { await refuse(V1NotifyType.NO_PROPOSAL_CHOSEN, `no acceptable ESP transform for ${match.cfg.name}: NO_PROPOSAL_CHOSEN`); return; }
  const group = pick.choice.attrs.group;
  let mine: KeyExchange | null = null, gxy: Buffer | null = null;
  if (group !== undefined) {
    if (!ke) { await refuse(V1NotifyType.NO_PROPOSAL_CHOSEN, `PFS group ${group} without a KE payload: NO_PROPOSAL_CHOSEN`); return; }
    try { mine = createV1KeyExchange(group); gxy = mine.computeSecret(ke.data); } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      await refuse(V1NotifyType.INVALID_KEY_INFORMATION, `PFS KE: ${e.message}`);
      return;
    }
  } else if (ke) { await refuse(V1NotifyType.NO_PROPOSAL_CHOSEN, 'KE payload but no PFS group in the chosen transform: NO_PROPOSAL_CHOSEN'); return; }
  let spiIn: number;
  try { spiIn = await ctx.dp.allocateSpi(); } catch (e) { await refuse(V1NotifyType.NO_PROPOSAL_CHOSEN, `cannot allocate an SPI: ${(e as Error).message}`); return; }
  const m = modeOfEncapsulation(pick.choice.attrs.encapsulation ?? 1)!;
  // RFC 2407 4.5.4: the shorter of the initiator's lifetimes and ours, in time and in volume.
  const theirs = pick.choice.attrs.life;
  const life: AgreedLife = {
    seconds: theirs.seconds !== undefined && theirs.seconds > 0 ? Math.min(theirs.seconds, match.cfg.lifetime) : match.cfg.lifetime,
    bytes: minBytes(match.cfg.lifeBytes, (theirs.kilobytes ?? 0) * V1_KILOBYTE),
  };
  const q: QuickState = {
    step: 'QUICK_R1', messageId: mid, cfg: match.cfg, spiIn, ni: ni.data, nr: ctx.nonce(), ke: mine, gxy, offered: [],
    accepted: { choice: pick.choice, spiOut: pick.proposal.spi.readUInt32BE(0), mode: m.mode, encap: m.udp || natT(sa), tsi: match.tsi, tsr: match.tsr, life },
    localTs: match.tsr, remoteTs: match.tsi, replaces: null, child: null,
  };
  const x = q.accepted!;
  const child = prepare(ctx, sa, q, false, x.choice, x.spiOut, x.mode, x.encap, x.tsr, x.tsi, x.life);
  // Inbound before QM2: the initiator may send on the new pair as soon as it has QM2.
  if (!await installInbound(ctx, sa, child, false)) {
    await ctx.dp.deleteSa(spiIn, 'in').catch(() => undefined);
    await refuse(V1NotifyType.NO_PROPOSAL_CHOSEN, 'the data plane refused the inbound SA: NO_PROPOSAL_CHOSEN');
    return;
  }
  q.child = child;
  quickStates(sa).set(mid, q);
  ctx.counters.quickModes++;
  // Unchanged IDs go back byte for byte: some peers compare them with what they sent.
  const idOut = (sent: V1IdPayload | undefined, proposed: TrafficSelector, narrowed: TrafficSelector): V1IdPayload =>
    sent && equalTs(proposed, narrowed) ? sent : clientId(narrowed);
  const rest: V1Payload[] = [
    { ...saP, proposals: [{ ...pick.proposal, spi: spiBuf(spiIn), transforms: [pick.transform] }] },
    { type: V1PayloadType.NONCE, data: q.nr },
    ...(mine ? [{ type: V1PayloadType.KE, data: mine.publicValue } as const] : []),
    ...(ids.length === 2 ? [idOut(ids[0], tsi, match.tsi), idOut(ids[1], tsr, match.tsr)] : []),
  ];
  // RFC 2407 4.6.3.1: tell the initiator where our policy is stricter than its offer, including a volume limit it did not offer.
  const stricter: V1Life = {};
  if (theirs.seconds !== undefined && theirs.seconds > match.cfg.lifetime) stricter.seconds = match.cfg.lifetime;
  const ourKb = lifeKilobytes(match.cfg).kilobytes;
  if (ourKb !== undefined && (theirs.kilobytes === undefined || theirs.kilobytes > ourKb)) stricter.kilobytes = ourKb;
  if (stricter.seconds !== undefined || stricter.kilobytes !== undefined) rest.push(responderLifetime(V1ProtocolId.IPSEC_ESP, pick.proposal.spi, stricter));
  const payloads = withHash((r) => v1QuickHash2(sa.hashId, sa.keys!.skeyidA, mid, q.ni, r), rest);
  ctx.log.info(`${sa.tag}: Quick Mode ${mid.toString(16)}: accepting CHILD_SA ${match.cfg.name} with SPI ${spiHex(spiIn)}, ${tsText(match.tsr)} === ${tsText(match.tsi)}${group ? `, PFS group ${group}` : ''}`);
  // QM3 is the initiator's last word, so QM2 is retransmitted until it comes.
  sa.send(mid, sa.encodeEncrypted(QM, mid, payloads), `QM2 ${mid.toString(16)}`, true);
}

/** The peer refused our Quick Mode (an Informational naming our SPI): fail that exchange. */
export async function quickRefused(ctx: V1Context, sa: IkeSaV1, spi: Buffer, why: string): Promise<boolean> {
  if (spi.length !== 4) return false;
  const q = [...quickStates(sa).values()].find((x) => x.step === 'QUICK_I1' && x.spiIn === spi.readUInt32BE(0));
  if (!q) return false;
  await failQuick(ctx, sa, q, `peer refused: ${why}`);
  return true;
}

/** The ISAKMP SA goes: its unfinished Quick Modes release their SPIs and any inbound SA installed before QM2. */
export async function abandonQuicks(ctx: V1Context, sa: IkeSaV1): Promise<void> {
  for (const q of [...quickStates(sa).values()]) {
    quickStates(sa).delete(q.messageId);
    if (q.child) await uninstallChild(ctx.dp, q.child, sa.local, sa.remote, `${sa.conn.name}/${q.cfg.name}`).catch(() => undefined);
    else await ctx.dp.deleteSa(q.spiIn, 'in').catch(() => undefined);
    retryRekey(ctx, sa, q);
  }
}

/** Quick Modes whose retransmissions ran out. */
export async function quickGaveUp(ctx: V1Context, sa: IkeSaV1, messageId: number): Promise<void> {
  const q = quickStates(sa).get(messageId);
  if (q) await failQuick(ctx, sa, q, `${sa.remote.address} did not answer Quick Mode ${messageId.toString(16)}`);
}
