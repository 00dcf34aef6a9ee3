/**
 * CREATE_CHILD_SA (RFC 7296 1.3): more CHILD_SAs on an IKE SA (1.3.1),
 * rekeying a CHILD_SA (1.3.3) with optional PFS, and rekeying the IKE SA
 * itself (1.3.2, keys per 2.18) with its CHILD_SAs carried over.
 * Collisions (2.8.1, 2.25) are resolved in rekey-collisions.ts.
 */
import type { ChildConfig } from '../../config/model.js';
import { createKeyExchange, deriveChildKeys, deriveRekeyedIkeKeys, type KeyExchange } from '../../crypto/index.js';
import { StyxError } from '../../util/errors.js';
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../../wire/ikev2/constants.js';
import type { Payload, Proposal, TrafficSelector } from '../../wire/ikev2/types.js';
import { findNotify, findPayload, notify } from '../../wire/ikev2/index.js';
import { contains, fromConfig, narrow, tsText } from '../ts.js';
import { installChild, newChild, spiHex, type ChildSa } from './child-sa.js';
import { switchOutbound } from './rekey-collisions.js';
import type { V2Context } from './context.js';
import { IkeSaV2 } from './ike-sa.js';
import { notifyName, useIkeKeys } from './init.js';
import { acceptEspResponse, acceptIkeResponse, espProposals, ikeProposals, selectEsp, selectIke, type EspSelection, type IkeSelection } from './proposals.js';
import { childRekeyDone, ikeRekeyDone, loses } from './rekey-collisions.js';

const spiBuf = (spi: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(spi >>> 0); return b; };
const tag = (sa: IkeSaV2, c: ChildConfig): string => `${sa.conn.name}/${c.name}`;
/** How long a rekey's responder waits for the old SA's delete before it sends on the new SA anyway. */
const OUTBOUND_GRACE_MS = 5000;

/** One child's negotiation parameters, whether new or a rekey. */
interface ChildRequest {
  cfg: ChildConfig;
  old: ChildSa | null;
  localTs: TrafficSelector[];
  remoteTs: TrafficSelector[];
}

/** Starts a CREATE_CHILD_SA for a new CHILD_SA (1.3.1) or a rekey of `old` (1.3.3). */
export async function initiateChild(ctx: V2Context, sa: IkeSaV2, cfg: ChildConfig, old: ChildSa | null = null, group?: number): Promise<void> {
  if (sa.state !== 'ESTABLISHED') return;
  const req: ChildRequest = {
    cfg, old,
    localTs: old ? old.localTs : cfg.localTs.map((t) => fromConfig(t, sa.local.address)),
    remoteTs: old ? old.remoteTs : cfg.remoteTs.map((t) => fromConfig(t, sa.remote.address)),
  };
  const spiIn = await ctx.dp.allocateSpi();
  const ni = ctx.nonce();
  // PFS: the first group of the first proposal that names one, unless the peer asked for another.
  const dh = group ?? cfg.espProposals.find((p) => p.dh.length)?.dh[0] ?? 0;
  const ke = dh ? createKeyExchange(dh) : null;
  const proposals = espProposals(cfg.espProposals, spiBuf(spiIn), true);
  if (old) { old.state = 'REKEYING'; sa.rekeyingChildren.add(old); }
  const payloads: Payload[] = [
    ...(old ? [notify(NotifyType.REKEY_SA, undefined, ProtocolId.ESP, spiBuf(old.spiIn))] : []),
    ...(cfg.mode === 'transport' ? [notify(NotifyType.USE_TRANSPORT_MODE)] : []),
    { type: PayloadType.SA, critical: false, proposals },
    { type: PayloadType.NONCE, critical: false, data: ni },
    ...(ke ? [{ type: PayloadType.KE, critical: false, group: dh, data: ke.publicValue } as const] : []),
    { type: PayloadType.TSi, critical: false, selectors: req.localTs },
    { type: PayloadType.TSr, critical: false, selectors: req.remoteTs },
  ];
  ctx.log.info(`${sa.tag}: ${old ? `rekeying CHILD_SA ${cfg.name}{${old.uniqueId}} ${spiHex(old.spiIn)}_i` : `creating CHILD_SA ${cfg.name}`} with SPI ${spiHex(spiIn)}${ke ? `, PFS group ${dh}` : ''}`);
  sa.request(ExchangeType.CREATE_CHILD_SA, payloads, (_m, inner) => onChildResponse(ctx, sa, req, spiIn, ni, ke, proposals, inner));
}

/**
 * Queues a rekey of `child` (1.3.3) on `sa`. The rekey timer, a soft volume
 * limit on either SA of the pair (the kernel reports each SA) and a retry may
 * all queue one before the first has run; only the first to run still finds
 * the pair INSTALLED, so one rekey starts, never a duplicate pair.
 */
export function queueChildRekey(ctx: V2Context, sa: IkeSaV2, child: ChildSa): void {
  void sa.enqueue(async () => {
    if (child.state !== 'INSTALLED' || sa.state !== 'ESTABLISHED' || !sa.children.includes(child)) return;
    await initiateChild(ctx, sa, child.config, child);
  });
}

async function onChildResponse(ctx: V2Context, sa: IkeSaV2, req: ChildRequest, spiIn: number, ni: Buffer, ke: KeyExchange | null, offered: Proposal[], payloads: Payload[]): Promise<void> {
  if (req.old) sa.rekeyingChildren.delete(req.old);
  const fail = async (why: string): Promise<void> => {
    await ctx.dp.deleteSa(spiIn, 'in').catch(() => undefined);
    if (req.old && req.old.state === 'REKEYING') req.old.state = 'INSTALLED';
    ctx.log.warn(`${sa.tag}: CREATE_CHILD_SA for ${req.cfg.name} failed: ${why}`);
    ctx.childFailed(sa, why);
  };
  // 1.3: INVALID_KE_PAYLOAD names the PFS group the responder wants; retry once with it.
  const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
  if (invalidKe && invalidKe.data.length >= 2 && ke) {
    const want = invalidKe.data.readUInt16BE(0);
    if (want !== ke.group && req.cfg.espProposals.some((p) => p.dh.includes(want))) {
      await ctx.dp.deleteSa(spiIn, 'in').catch(() => undefined);
      ctx.log.info(`${sa.tag}: peer wants PFS group ${want} for ${req.cfg.name}, retrying`);
      await initiateChild(ctx, sa, req.cfg, req.old, want);
      return;
    }
  }
  const err = payloads.find((p) => p.type === PayloadType.NOTIFY && p.notifyType < 16384);
  if (err && err.type === PayloadType.NOTIFY) {
    // 2.25: TEMPORARY_FAILURE means try again a little later; the rekey timer does that.
    if (err.notifyType === NotifyType.TEMPORARY_FAILURE && req.old) {
      await fail('peer answered TEMPORARY_FAILURE; retrying in a few seconds');
      const old = req.old;
      const t = ctx.clock.setTimeout(() => {
        // The IKE SA may have been rekeyed meanwhile: retry on whichever owns the CHILD_SA now.
        const owner = ctx.ownerOf(old);
        if (owner) queueChildRekey(ctx, owner, old);
      }, 2000 + Math.floor(Math.random() * 3000));
      old.timers.push(t);
      return;
    }
    await fail(`peer sent ${notifyName(err.notifyType)}`);
    return;
  }
  const saP = findPayload(payloads, PayloadType.SA), nr = findPayload(payloads, PayloadType.NONCE);
  const tsi = findPayload(payloads, PayloadType.TSi), tsr = findPayload(payloads, PayloadType.TSr), keR = findPayload(payloads, PayloadType.KE);
  if (!saP || !nr || !tsi || !tsr) return fail('response lacks SA, Nonce or TS');
  const sel = acceptEspResponse(offered, saP.proposals);
  if (!sel) return fail('peer chose an ESP proposal we did not offer');
  if (!tsi.selectors.every((t) => req.localTs.some((o) => contains(o, t))) || !tsr.selectors.every((t) => req.remoteTs.some((o) => contains(o, t))))
    return fail(`peer's traffic selectors ${tsi.selectors.map(tsText).join(',')} === ${tsr.selectors.map(tsText).join(',')} are not within ours`);
  let gir: Buffer | undefined;
  if (sel.dh) {
    if (!ke || !keR || keR.group !== sel.dh || ke.group !== sel.dh) return fail('PFS key exchange does not match the chosen group');
    try { gir = ke.computeSecret(keR.data); } catch (e) { if (e instanceof StyxError) return fail(e.message); throw e; }
  }
  const transport = !!findNotify(payloads, NotifyType.USE_TRANSPORT_MODE);
  // 2.8.1: if the peer rekeyed the same SA meanwhile and ours holds the lowest nonce, ours is
  // redundant: it never sends, so no packet goes out on an SA about to be deleted.
  const rival = req.old?.peerReplacement?.nonces;
  const redundant = !!rival && loses({ ni, nr: nr.data }, rival);
  const child = await setupChild(ctx, sa, req.cfg, spiIn, sel, transport ? 'transport' : 'tunnel', tsi.selectors, tsr.selectors, ni, nr.data, true, gir, req.old, !redundant);
  if (!child) return;
  if (req.old) await childRekeyDone(ctx, sa, req.old, child);
}

/** 2.17: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); the inbound SA goes in first. */
export async function setupChild(ctx: V2Context, sa: IkeSaV2, cfg: ChildConfig, spiIn: number, sel: EspSelection, mode: 'tunnel' | 'transport',
  tsi: TrafficSelector[], tsr: TrafficSelector[], ni: Buffer, nr: Buffer, createdByUs: boolean, gir?: Buffer, replaces: ChildSa | null = null, sendNow = true): Promise<ChildSa | null> {
  const keys = deriveChildKeys(sa.selection!.prf, sa.keys!.skD, ni, nr, sel.encr, sel.integ, gir);
  const spiOut = sel.spi.readUInt32BE(0);
  // 2.9: TSi describes the side that initiated this exchange.
  const [localTs, remoteTs] = createdByUs ? [tsi, tsr] : [tsr, tsi];
  const child = newChild(cfg, spiIn, spiOut, mode, sel, keys, localTs, remoteTs, sa.conn.encap || sa.nat.local || sa.nat.remote);
  child.nonces = { ni, nr };
  child.createdByUs = createdByUs;
  ctx.log.secret(() => `${sa.tag}: CHILD_SA ${cfg.name} keys encr_i ${keys.encrI.toString('hex')} integ_i ${keys.integI.toString('hex')} encr_r ${keys.encrR.toString('hex')} integ_r ${keys.integR.toString('hex')}`);
  // Make-before-break: a rekey's responder sends on the new SA only once the initiator has it too,
  // which the initiator shows by deleting the old one (or after a grace period).
  const deferOutbound = (!createdByUs && replaces !== null) || !sendNow;
  child.replaces = replaces;
  try {
    await installChild(ctx.dp, child, createdByUs, sa.local, sa.remote, tag(sa, cfg), !deferOutbound);
  } catch (e) {
    ctx.log.error(`${sa.tag}: installing CHILD_SA ${cfg.name} failed: ${(e as Error).message}`);
    ctx.childFailed(sa, `install failed: ${(e as Error).message}`);
    return null;
  }
  child.installedAt = ctx.clock.now();
  sa.children.push(child);
  if (deferOutbound) child.timers.push(ctx.clock.setTimeout(() => { void switchOutbound(ctx, child); }, OUTBOUND_GRACE_MS));
  ctx.log.info(`${sa.tag}: CHILD_SA ${cfg.name}{${child.uniqueId}} established with SPIs ${spiHex(spiIn)}_i ${spiHex(spiOut)}_o and TS ${localTs.map(tsText).join(',')} === ${remoteTs.map(tsText).join(',')}`);
  ctx.childUp(sa, child);
  return child;
}

/** The CREATE_CHILD_SA responder: IKE rekey, CHILD_SA rekey or a new CHILD_SA, told apart by the SA's protocol and REKEY_SA. */
export async function handleCreateChildRequest(ctx: V2Context, sa: IkeSaV2, messageId: number, payloads: Payload[]): Promise<void> {
  const respond = (p: Payload[]): void => sa.sendResponse(ExchangeType.CREATE_CHILD_SA, messageId, p);
  const saP = findPayload(payloads, PayloadType.SA), ni = findPayload(payloads, PayloadType.NONCE);
  if (sa.state !== 'ESTABLISHED') { respond([notify(NotifyType.TEMPORARY_FAILURE)]); return; }
  if (!saP || !ni) { respond([notify(NotifyType.INVALID_SYNTAX)]); return; }
  if (saP.proposals.some((p) => p.protocol === ProtocolId.IKE)) { await respondIkeRekey(ctx, sa, payloads, respond); return; }

  // 2.25.2: while our own IKE rekey is under way, CHILD_SA work waits.
  if (sa.rekeyingIke) { respond([notify(NotifyType.TEMPORARY_FAILURE)]); return; }
  const tsi = findPayload(payloads, PayloadType.TSi), tsr = findPayload(payloads, PayloadType.TSr);
  if (!tsi || !tsr) { respond([notify(NotifyType.INVALID_SYNTAX)]); return; }
  const rekey = findNotify(payloads, NotifyType.REKEY_SA);
  let old: ChildSa | null = null;
  if (rekey) {
    // The peer names the SA by its inbound SPI, our outbound one.
    old = rekey.spi.length === 4 ? sa.children.find((c) => c.spiOut === rekey.spi.readUInt32BE(0)) ?? null : null;
    if (!old) { ctx.log.info(`${sa.tag}: peer rekeys unknown CHILD_SA ${rekey.spi.toString('hex')}: CHILD_SA_NOT_FOUND`); respond([notify(NotifyType.CHILD_SA_NOT_FOUND, undefined, ProtocolId.ESP, rekey.spi)]); return; }
    // 2.25.1: a CHILD_SA we are closing is not rekeyed.
    if (old.state === 'DELETING' || old.state === 'REKEYED') { respond([notify(NotifyType.TEMPORARY_FAILURE)]); return; }
  }
  const cfgs = old ? [old.config] : sa.conn.children;
  let match: { cfg: ChildConfig; tsi: TrafficSelector[]; tsr: TrafficSelector[] } | null = null;
  for (const cfg of cfgs) {
    const mi = narrow(tsi.selectors, old ? old.remoteTs : cfg.remoteTs.map((t) => fromConfig(t, sa.remote.address)));
    const mr = narrow(tsr.selectors, old ? old.localTs : cfg.localTs.map((t) => fromConfig(t, sa.local.address)));
    if (mi.length && mr.length) { match = { cfg, tsi: mi, tsr: mr }; break; }
  }
  if (!match) { ctx.log.warn(`${sa.tag}: CREATE_CHILD_SA selectors ${tsi.selectors.map(tsText).join(',')} === ${tsr.selectors.map(tsText).join(',')} match no child: TS_UNACCEPTABLE`); respond([notify(NotifyType.TS_UNACCEPTABLE)]); return; }
  const sel = selectEsp(match.cfg.espProposals, saP.proposals, true);
  if (!sel) { ctx.log.warn(`${sa.tag}: no acceptable ESP proposal for ${match.cfg.name}: NO_PROPOSAL_CHOSEN`); respond([notify(NotifyType.NO_PROPOSAL_CHOSEN)]); return; }
  const keI = findPayload(payloads, PayloadType.KE);
  let gir: Buffer | undefined, keR: KeyExchange | null = null;
  if (sel.dh) {
    if (!keI || keI.group !== sel.dh) {
      ctx.log.info(`${sa.tag}: CREATE_CHILD_SA KE is for group ${keI?.group ?? 'none'}, we chose ${sel.dh}: INVALID_KE_PAYLOAD`);
      const g = Buffer.alloc(2); g.writeUInt16BE(sel.dh);
      respond([notify(NotifyType.INVALID_KE_PAYLOAD, g)]);
      return;
    }
    try { keR = createKeyExchange(sel.dh); gir = keR.computeSecret(keI.data); } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      respond([notify(NotifyType.INVALID_SYNTAX)]);
      return;
    }
  }
  const mode = findNotify(payloads, NotifyType.USE_TRANSPORT_MODE) && match.cfg.mode === 'transport' ? 'transport' : 'tunnel';
  const spiIn = await ctx.dp.allocateSpi();
  const nr = ctx.nonce();
  const child = await setupChild(ctx, sa, match.cfg, spiIn, sel, mode, match.tsi, match.tsr, ni.data, nr, false, gir, old);
  if (!child) { respond([notify(NotifyType.TEMPORARY_FAILURE)]); return; }
  const accepted = espProposals([{ text: '', encr: [sel.encr], integ: sel.integ ? [sel.integ] : [], dh: sel.dh ? [sel.dh] : [], esn: [sel.esn] }], spiBuf(spiIn), true)[0]!;
  respond([
    ...(mode === 'transport' ? [notify(NotifyType.USE_TRANSPORT_MODE)] : []),
    { type: PayloadType.SA, critical: false, proposals: [{ ...accepted, num: sel.num }] },
    { type: PayloadType.NONCE, critical: false, data: nr },
    ...(keR ? [{ type: PayloadType.KE, critical: false, group: sel.dh, data: keR.publicValue } as const] : []),
    { type: PayloadType.TSi, critical: false, selectors: match.tsi },
    { type: PayloadType.TSr, critical: false, selectors: match.tsr },
  ]);
  if (old) {
    if (old.state === 'REKEYING') { old.peerReplacement = child; return; } // our own rekey of it is in flight: 2.8.1
    old.state = 'REKEYED';
    ctx.log.info(`${sa.tag}: CHILD_SA ${old.config.name}{${old.uniqueId}} rekeyed by peer into {${child.uniqueId}}`);
  }
}

/** 1.3.2: rekeying the IKE SA: a new SA with new SPIs and keys from the old SK_d (2.18). */
export function initiateIkeRekey(ctx: V2Context, sa: IkeSaV2, group?: number): void {
  if (sa.state !== 'ESTABLISHED' || sa.rekeyingIke) return;
  // 2.25.2: not while our CHILD_SA exchanges run; try again shortly rather than give up the rekey.
  if (sa.rekeyingChildren.size || sa.pending?.exchange === ExchangeType.CREATE_CHILD_SA) {
    ctx.log.debug(`${sa.tag}: IKE rekey waits for a CHILD_SA exchange to finish`);
    sa.timers.push(ctx.clock.setTimeout(() => { void sa.enqueue(async () => initiateIkeRekey(ctx, sa, group)); }, 1000 + Math.floor(Math.random() * 2000)));
    return;
  }
  const spi = IkeSaV2.newSpi();
  const dh = group ?? sa.selection!.dh;
  const ke = createKeyExchange(dh);
  const ni = ctx.nonce();
  const offered = ikeProposals(sa.conn.ikeProposals, spi, dh);
  sa.rekeyingIke = true;
  ctx.log.info(`${sa.tag}: rekeying IKE SA, new SPI ${spi.toString('hex')}`);
  sa.request(ExchangeType.CREATE_CHILD_SA, [
    { type: PayloadType.SA, critical: false, proposals: offered },
    { type: PayloadType.NONCE, critical: false, data: ni },
    { type: PayloadType.KE, critical: false, group: dh, data: ke.publicValue },
  ], async (_m, payloads) => {
    sa.rekeyingIke = false;
    const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe && invalidKe.data.length >= 2 && group === undefined) {
      initiateIkeRekey(ctx, sa, invalidKe.data.readUInt16BE(0));
      return;
    }
    const err = payloads.find((p) => p.type === PayloadType.NOTIFY && p.notifyType < 16384);
    if (err && err.type === PayloadType.NOTIFY) {
      ctx.log.warn(`${sa.tag}: IKE rekey refused: ${notifyName(err.notifyType)}${err.notifyType === NotifyType.TEMPORARY_FAILURE ? '; retrying shortly' : ''}`);
      if (err.notifyType === NotifyType.TEMPORARY_FAILURE) sa.timers.push(ctx.clock.setTimeout(() => { void sa.enqueue(async () => initiateIkeRekey(ctx, sa)); }, 2000 + Math.floor(Math.random() * 3000)));
      return;
    }
    const saP = findPayload(payloads, PayloadType.SA), nr = findPayload(payloads, PayloadType.NONCE), keR = findPayload(payloads, PayloadType.KE);
    const sel = saP ? acceptIkeResponse(offered, saP.proposals) : null;
    if (!saP || !nr || !keR || !sel || keR.group !== dh || saP.proposals[0]!.spi.length !== 8) { ctx.log.warn(`${sa.tag}: IKE rekey response unusable`); return; }
    let gir: Buffer;
    try { gir = ke.computeSecret(keR.data); } catch (e) { if (e instanceof StyxError) { ctx.log.warn(`${sa.tag}: IKE rekey: ${e.message}`); return; } throw e; }
    const next = rekeyedSa(ctx, sa, true, spi, saP.proposals[0]!.spi, ni, nr.data, sel, gir);
    await ikeRekeyDone(ctx, sa, next);
  });
}

async function respondIkeRekey(ctx: V2Context, sa: IkeSaV2, payloads: Payload[], respond: (p: Payload[]) => void): Promise<void> {
  // 2.25.2: not while CHILD_SAs are being created, rekeyed or closed by us.
  if (sa.rekeyingChildren.size || (sa.pending?.exchange === ExchangeType.CREATE_CHILD_SA && !sa.rekeyingIke)) { respond([notify(NotifyType.TEMPORARY_FAILURE)]); return; }
  const saP = findPayload(payloads, PayloadType.SA)!, ni = findPayload(payloads, PayloadType.NONCE)!, keI = findPayload(payloads, PayloadType.KE);
  const sel = selectIke(sa.conn.ikeProposals, saP.proposals);
  if (!sel) { respond([notify(NotifyType.NO_PROPOSAL_CHOSEN)]); return; }
  const theirSpi = saP.proposals.find((p) => p.num === sel.num)?.spi;
  if (!theirSpi || theirSpi.length !== 8) { respond([notify(NotifyType.INVALID_SYNTAX)]); return; }
  if (!keI || keI.group !== sel.dh) {
    const g = Buffer.alloc(2); g.writeUInt16BE(sel.dh);
    respond([notify(NotifyType.INVALID_KE_PAYLOAD, g)]);
    return;
  }
  let ke: KeyExchange, gir: Buffer;
  try { ke = createKeyExchange(sel.dh); gir = ke.computeSecret(keI.data); } catch (e) {
    if (!(e instanceof StyxError)) throw e;
    respond([notify(NotifyType.INVALID_SYNTAX)]);
    return;
  }
  const spi = IkeSaV2.newSpi(), nr = ctx.nonce();
  const accepted = ikeProposals([{ text: '', encr: [sel.encr], integ: sel.integ ? [sel.integ] : [], prf: [sel.prf], dh: [sel.dh] }], spi)[0]!;
  respond([
    { type: PayloadType.SA, critical: false, proposals: [{ ...accepted, num: sel.num }] },
    { type: PayloadType.NONCE, critical: false, data: nr },
    { type: PayloadType.KE, critical: false, group: sel.dh, data: ke.publicValue },
  ]);
  const next = rekeyedSa(ctx, sa, false, theirSpi, spi, ni.data, nr, sel, gir);
  await ikeRekeyDone(ctx, sa, next);
}

/** The new IKE SA of a rekey: the rekey's initiator is the new SA's initiator (2.18). */
function rekeyedSa(ctx: V2Context, old: IkeSaV2, weInitiated: boolean, spiI: Buffer, spiR: Buffer, ni: Buffer, nr: Buffer, sel: IkeSelection, gir: Buffer): IkeSaV2 {
  const next = new IkeSaV2(old.conn, weInitiated, Buffer.from(spiI), old.local, old.remote, ctx.sender, ctx.clock, ctx.log);
  next.spiR = Buffer.from(spiR);
  next.nonceI = ni; next.nonceR = nr;
  next.localId = old.localId; next.remoteId = old.remoteId; next.nat = { ...old.nat };
  // What IKE_SA_INIT negotiated outlives the rekey: RFC 7383 fragmentation support, for one.
  next.fragmentation = { ...old.fragmentation };
  useIkeKeys(ctx, next, sel, deriveRekeyedIkeKeys(old.selection!.prf, old.keys!.skD, { encr: sel.encr, integ: sel.integ, prf: sel.prf, dh: sel.dh }, ni, nr, gir, next.spiI, next.spiR));
  next.establishedAt = ctx.clock.now();
  next.state = 'ESTABLISHED';
  return next;
}
