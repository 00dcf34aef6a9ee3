/**
 * IKE_SA_INIT (RFC 7296 1.2) in both roles: proposal selection, the KE
 * exchange with the INVALID_KE_PAYLOAD retry (1.2), cookies (2.6), NAT
 * detection (2.23) and the derivation of the IKE SA's keys (2.14).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { ChildConfig, ConnectionConfig } from '../../config/model.js';
import type { IkeKeys } from '../../crypto/api.js';
import { createKeyExchange, createSkCipher, deriveIkeKeys, getPrf } from '../../crypto/index.js';
import type { Endpoint } from '../../dataplane/api.js';
import { StyxError } from '../../util/errors.js';
import { EncrId, ExchangeType, NotifyType, PayloadType, ProtocolId, TransformType } from '../../wire/ikev2/constants.js';
import type { IkeMessage, Payload, Proposal } from '../../wire/ikev2/types.js';
import { encodeMessage, findNotify, findPayload, notify } from '../../wire/ikev2/index.js';
import { addrBytes } from '../ts.js';
import type { V2Context } from './context.js';
import { IkeSaV2 } from './ike-sa.js';
import { acceptIkeResponse, ikeProposals, selectIke, type IkeSelection } from './proposals.js';
import { sendAuthRequest } from './auth.js';
import { certReqPayloads, notePeerAnnouncements, signatureHashesNotify } from './pubkey.js';

/** 2.23: SHA-1(SPIi | SPIr | IP | Port). */
export function natHash(spiI: Buffer, spiR: Buffer, ep: Endpoint): Buffer {
  const port = Buffer.alloc(2); port.writeUInt16BE(ep.port);
  return createHash('sha1').update(Buffer.concat([spiI, spiR, addrBytes(ep.address), port])).digest();
}

function natNotifies(sa: IkeSaV2): Payload[] {
  // With forced encapsulation, a source hash that cannot match makes the peer believe in a NAT and use UDP encapsulation too.
  const source = sa.conn.encap ? randomBytes(20) : natHash(sa.spiI, sa.spiR, sa.local);
  return [
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, source),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natHash(sa.spiI, sa.spiR, sa.remote)),
  ];
}

/**
 * 2.23: compares the peer's NAT hashes with what we see, to know which side
 * is behind a NAT. The hashes cover the SPIs as they stand in that message's
 * header, so SPIr is zero in the request.
 */
function detectNat(sa: IkeSaV2, payloads: Payload[], spiI: Buffer, spiR: Buffer): void {
  const src = payloads.filter((p): p is Extract<Payload, { type: typeof PayloadType.NOTIFY }> => p.type === PayloadType.NOTIFY && p.notifyType === NotifyType.NAT_DETECTION_SOURCE_IP);
  const dst = findNotify(payloads, NotifyType.NAT_DETECTION_DESTINATION_IP);
  if (!src.length || !dst) return;
  sa.nat.local = !dst.data.equals(natHash(spiI, spiR, sa.local));
  sa.nat.remote = !src.some((n) => n.data.equals(natHash(spiI, spiR, sa.remote)));
  if (sa.nat.local || sa.nat.remote) sa.log.info(`${sa.tag}: NAT detected (${sa.nat.local ? 'local' : 'remote'} side)`);
}

/**
 * RFC 7427 4 (SIGNATURE_HASH_ALGORITHMS, sent whatever the authentication
 * method: the peer may pick certificates) and RFC 7383 2.3
 * (IKEV2_FRAGMENTATION_SUPPORTED): what both IKE_SA_INIT messages announce.
 */
function capabilityNotifies(sa: IkeSaV2): Payload[] {
  sa.fragmentation.ours = sa.conn.fragmentation;
  return [signatureHashesNotify(), ...(sa.conn.fragmentation ? [notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)] : [])];
}

/** What the peer's IKE_SA_INIT announced: fragmentation (RFC 7383 2.3), signature hashes and CERTREQ (RFC 7427 4, RFC 7296 3.7). */
function notePeerCapabilities(sa: IkeSaV2, payloads: Payload[]): void {
  sa.fragmentation.peer = findNotify(payloads, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) !== undefined;
  notePeerAnnouncements(sa, payloads);
}

function initPayloads(sa: IkeSaV2): Payload[] {
  const c = sa.initCtx!;
  return [
    ...(c.cookie ? [notify(NotifyType.COOKIE, c.cookie)] : []),
    { type: PayloadType.SA, critical: false, proposals: c.offered },
    { type: PayloadType.KE, critical: false, group: c.group, data: c.ke.publicValue },
    { type: PayloadType.NONCE, critical: false, data: sa.nonceI },
    ...natNotifies(sa),
    ...capabilityNotifies(sa),
  ];
}

export function startInitiator(ctx: V2Context, conn: ConnectionConfig, child: ChildConfig | null, local: Endpoint, remote: Endpoint): IkeSaV2 {
  const sa = new IkeSaV2(conn, true, IkeSaV2.newSpi(), local, remote, ctx.sender, ctx.clock, ctx.log);
  const group = conn.ikeProposals[0]!.dh[0]!;
  sa.nonceI = ctx.nonce();
  sa.initCtx = { offered: ikeProposals(conn.ikeProposals), group, cookie: null, child, childProposals: [], childSpi: 0, ke: createKeyExchange(group), retriedGroups: [] };
  ctx.register(sa);
  sa.setState('CONNECTING', `initiating to ${remote.address}`);
  sa.onGiveUp = () => { void ctx.destroy(sa, 'peer did not answer'); };
  sa.request(ExchangeType.IKE_SA_INIT, initPayloads(sa), (msg, payloads, raw) => onInitResponse(ctx, sa, msg, payloads, raw));
  return sa;
}

async function onInitResponse(ctx: V2Context, sa: IkeSaV2, msg: IkeMessage, payloads: Payload[], raw: Buffer): Promise<void> {
  const c = sa.initCtx!;
  // 2.6: the responder wants proof of our address; repeat the request with its cookie first.
  const cookie = findNotify(payloads, NotifyType.COOKIE);
  if (cookie) {
    if (c.cookie?.equals(cookie.data)) { await ctx.destroy(sa, 'responder repeated the same COOKIE'); return; }
    sa.log.info(`${sa.tag}: responder asked for a COOKIE, retrying with it`);
    c.cookie = cookie.data;
    restartInit(ctx, sa);
    return;
  }
  // 1.2: INVALID_KE_PAYLOAD names the group the responder wants.
  const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
  if (invalidKe) {
    const want = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
    const offered = sa.conn.ikeProposals.some((p) => p.dh.includes(want));
    if (!offered || c.retriedGroups.includes(want)) { await ctx.destroy(sa, `responder asked for DH group ${want}, which we ${offered ? 'already tried' : 'did not offer'}`); return; }
    sa.log.info(`${sa.tag}: responder wants DH group ${want} instead of ${c.group} (INVALID_KE_PAYLOAD), retrying`);
    c.retriedGroups.push(c.group);
    c.group = want;
    c.ke = createKeyExchange(want);
    c.offered = ikeProposals(sa.conn.ikeProposals, Buffer.alloc(0), want);
    restartInit(ctx, sa);
    return;
  }
  const err = payloads.find((p) => p.type === PayloadType.NOTIFY && p.notifyType < 16384);
  if (err && err.type === PayloadType.NOTIFY) { await ctx.destroy(sa, `IKE_SA_INIT failed: peer sent ${notifyName(err.notifyType)}`); return; }

  const saP = findPayload(payloads, PayloadType.SA), ke = findPayload(payloads, PayloadType.KE), nonce = findPayload(payloads, PayloadType.NONCE);
  if (!saP || !ke || !nonce) { await ctx.destroy(sa, 'IKE_SA_INIT response lacks SA, KE or Nonce'); return; }
  const sel = acceptIkeResponse(c.offered, saP.proposals);
  if (!sel) { await ctx.destroy(sa, 'responder chose a proposal we did not offer'); return; }
  if (ke.group !== c.group || sel.dh !== c.group) { await ctx.destroy(sa, `responder's KE group ${ke.group} does not match ours (${c.group})`); return; }
  sa.spiR = Buffer.from(msg.header.spiR);
  sa.nonceR = nonce.data;
  sa.initResponse = Buffer.from(raw);
  ctx.register(sa);
  detectNat(sa, payloads, msg.header.spiI, msg.header.spiR);
  notePeerCapabilities(sa, payloads);
  try {
    deriveKeys(ctx, sa, sel, c.ke.computeSecret(ke.data));
  } catch (e) {
    if (e instanceof StyxError) { await ctx.destroy(sa, `key exchange failed: ${e.message}`); return; }
    throw e;
  }
  floatToNatT(ctx, sa);
  await sendAuthRequest(ctx, sa);
}

/** 2.23: once a NAT is seen (or encapsulation is forced), the initiator moves IKE to port 4500 from IKE_AUTH on. */
function floatToNatT(ctx: V2Context, sa: IkeSaV2): void {
  if (!sa.nat.local && !sa.nat.remote && !sa.conn.encap) return;
  const local = ctx.natTLocal(sa);
  if (!local) { sa.log.warn(`${sa.tag}: NAT detected but no socket on the NAT-T port is bound; staying on ${sa.local.port}`); return; }
  sa.local = local;
  if (sa.remote.port === 500) sa.remote = { address: sa.remote.address, port: ctx.config().daemon.natPort };
  sa.log.info(`${sa.tag}: switching to NAT-T port: ${sa.local.address}[${sa.local.port}] -> ${sa.remote.address}[${sa.remote.port}]`);
}

/** The retry is a new IKE_SA_INIT with the same SPI and message ID 0. */
function restartInit(ctx: V2Context, sa: IkeSaV2): void {
  sa.resendInit(initPayloads(sa), (msg, payloads, raw) => onInitResponse(ctx, sa, msg, payloads, raw));
}

function deriveKeys(ctx: V2Context, sa: IkeSaV2, sel: IkeSelection, gir: Buffer): void {
  useIkeKeys(ctx, sa, sel, deriveIkeKeys({ encr: sel.encr, integ: sel.integ, prf: sel.prf, dh: sel.dh }, sa.nonceI, sa.nonceR, gir, sa.spiI, sa.spiR));
}

/** Puts derived SK_* keys to work: the SK payload ciphers for each direction (2.14, 3.14). */
export function useIkeKeys(ctx: V2Context, sa: IkeSaV2, sel: IkeSelection, derived: { skeyseed: Buffer; keys: IkeKeys }): void {
  const { skeyseed, keys } = derived;
  sa.selection = sel;
  sa.keys = keys;
  sa.prf = getPrf(sel.prf);
  const integI = sel.integ ? keys.skAi : null, integR = sel.integ ? keys.skAr : null;
  const toR = createSkCipher(sel.encr, sel.integ, keys.skEi, integI);
  const toI = createSkCipher(sel.encr, sel.integ, keys.skEr, integR);
  sa.skOut = sa.initiator ? toR : toI;
  sa.skIn = sa.initiator ? toI : toR;
  ctx.log.secret(() => `${sa.tag}: SKEYSEED ${skeyseed.toString('hex')} SK_d ${keys.skD.toString('hex')} SK_ai ${keys.skAi.toString('hex')} SK_ar ${keys.skAr.toString('hex')} SK_ei ${keys.skEi.toString('hex')} SK_er ${keys.skEr.toString('hex')} SK_pi ${keys.skPi.toString('hex')} SK_pr ${keys.skPr.toString('hex')}`);
}

/** 2.6: cookie = <version> | HMAC(secret, Ni | IPi | SPIi); stateless, checked against the current and the previous secret. */
function makeCookie(secret: Buffer, version: number, ni: Buffer, remote: Endpoint, spiI: Buffer): Buffer {
  const v = Buffer.alloc(4); v.writeUInt32BE(version);
  return Buffer.concat([v, createHmac('sha256', secret).update(Buffer.concat([ni, addrBytes(remote.address), spiI])).digest()]);
}

/** Connections that may answer a peer at this address pair (2.x: the ID comes only in IKE_AUTH). */
export function candidates(ctx: V2Context, local: Endpoint, remote: Endpoint): ConnectionConfig[] {
  return ctx.config().connections.filter((c) => c.version === 2 && addrMatch(c.localAddrs, local.address) && addrMatch(c.remoteAddrs, remote.address));
}

function addrMatch(list: string[], address: string): boolean {
  return list.length === 0 || list.some((a) => a === '%any' || a === address || (a.includes('/') && inCidr(a, address)));
}

function inCidr(cidr: string, address: string): boolean {
  const [net, bitsText] = cidr.split('/') as [string, string];
  const n = addrBytes(net), a = addrBytes(address), bits = Number(bitsText);
  if (n.length !== a.length) return false;
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3, mask = 0x80 >> (i & 7);
    if ((n[byte]! & mask) !== (a[byte]! & mask)) return false;
  }
  return true;
}

export async function handleInitRequest(ctx: V2Context, msg: IkeMessage, raw: Buffer, local: Endpoint, remote: Endpoint): Promise<void> {
  const payloads = msg.payloads;
  const reply = (p: Payload[]): void => {
    const h = { spiI: msg.header.spiI, spiR: Buffer.alloc(8), exchangeType: ExchangeType.IKE_SA_INIT, flags: { initiator: false, response: true, version: false }, messageId: 0 };
    ctx.sender.send(encodeMessage(h, p), local, remote);
  };
  const saP = findPayload(payloads, PayloadType.SA), ke = findPayload(payloads, PayloadType.KE), nonce = findPayload(payloads, PayloadType.NONCE);
  if (!saP || !ke || !nonce) { ctx.counters.malformed++; ctx.log.info(`IKE_SA_INIT from ${remote.address} lacks SA, KE or Nonce: dropped`); return; }

  // 2.6: above the half-open threshold, ask for a cookie before keeping any state.
  const threshold = ctx.config().daemon.cookieThreshold;
  if (threshold >= 0 && ctx.halfOpenCount() >= threshold) {
    const secrets = ctx.cookieSecret();
    const got = findNotify(payloads, NotifyType.COOKIE);
    const valid = got && [secrets.current, secrets.previous].some((s, i) => got.data.equals(makeCookie(s, secrets.version - i, nonce.data, remote, msg.header.spiI)));
    if (!valid) {
      ctx.counters.cookiesSent++;
      ctx.log.info(`${ctx.halfOpenCount()} half-open IKE SAs: asking ${remote.address} for a COOKIE`);
      reply([notify(NotifyType.COOKIE, makeCookie(secrets.current, secrets.version, nonce.data, remote, msg.header.spiI))]);
      return;
    }
  }

  const conns = candidates(ctx, local, remote);
  if (!conns.length) {
    ctx.log.info(`no connection for IKE_SA_INIT from ${remote.address} to ${local.address}: sending NO_PROPOSAL_CHOSEN`);
    reply([notify(NotifyType.NO_PROPOSAL_CHOSEN)]);
    return;
  }
  let conn: ConnectionConfig | undefined, sel = null;
  for (const c of conns) { sel = selectIke(c.ikeProposals, saP.proposals); if (sel) { conn = c; break; } }
  if (!conn || !sel) {
    ctx.log.info(`no acceptable proposal from ${remote.address} (offered ${describeOffer(saP.proposals)}): sending NO_PROPOSAL_CHOSEN`);
    reply([notify(NotifyType.NO_PROPOSAL_CHOSEN)]);
    return;
  }
  // 1.2: the KE must be for the selected group, else tell the initiator which group to use.
  if (ke.group !== sel.dh) {
    ctx.log.info(`${remote.address} sent KE for group ${ke.group}, we selected ${sel.dh}: sending INVALID_KE_PAYLOAD`);
    const g = Buffer.alloc(2); g.writeUInt16BE(sel.dh);
    reply([notify(NotifyType.INVALID_KE_PAYLOAD, g)]);
    return;
  }

  const sa = new IkeSaV2(conn, false, Buffer.from(msg.header.spiI), local, remote, ctx.sender, ctx.clock, ctx.log);
  sa.spiR = IkeSaV2.newSpi();
  sa.nonceI = nonce.data;
  sa.nonceR = ctx.nonce();
  sa.initRequest = Buffer.from(raw);
  sa.expectedRequestId = 1;
  let myKe;
  try {
    myKe = createKeyExchange(sel.dh);
    deriveKeys(ctx, sa, sel, myKe.computeSecret(ke.data));
  } catch (e) {
    if (!(e instanceof StyxError)) throw e;
    ctx.log.info(`IKE_SA_INIT from ${remote.address}: ${e.message}: sending INVALID_SYNTAX`);
    reply([notify(NotifyType.INVALID_SYNTAX)]);
    return;
  }
  sa.setState('CONNECTING', `IKE_SA_INIT from ${remote.address}, proposal ${sel.num} accepted`);
  detectNat(sa, payloads, msg.header.spiI, msg.header.spiR);
  notePeerCapabilities(sa, payloads);
  ctx.register(sa);
  // Registered first: a retransmitted request arriving while certificates load must find this SA, not start another.
  // RFC 7296 1.2: CERTREQ for whichever of these connections IKE_AUTH will settle on.
  const certReq = await certReqPayloads(conns, ctx.log, sa.tag);
  if (sa.state === 'DESTROYED') return;
  sa.sendResponse(ExchangeType.IKE_SA_INIT, 0, [
    { type: PayloadType.SA, critical: false, proposals: [selectedProposal(sel.num, sel)] },
    { type: PayloadType.KE, critical: false, group: sel.dh, data: myKe.publicValue },
    { type: PayloadType.NONCE, critical: false, data: sa.nonceR },
    ...certReq,
    ...natNotifies(sa),
    ...capabilityNotifies(sa),
  ]);
}

/** 3.3.6: the accepted proposal, its number kept and one transform of each type. */
function selectedProposal(num: number, sel: IkeSelection): Proposal {
  const encr = sel.encr.keyLength && sel.encr.id !== EncrId.ENCR_CHACHA20_POLY1305
    ? { type: TransformType.ENCR, id: sel.encr.id, keyLength: sel.encr.keyLength } : { type: TransformType.ENCR, id: sel.encr.id };
  return {
    num, protocol: ProtocolId.IKE, spi: Buffer.alloc(0),
    transforms: [encr, { type: TransformType.PRF, id: sel.prf }, ...(sel.integ ? [{ type: TransformType.INTEG, id: sel.integ }] : []), { type: TransformType.DH, id: sel.dh }],
  };
}

function describeOffer(ps: Proposal[]): string {
  return ps.map((p) => p.transforms.map((t) => `${t.type}:${t.id}${t.keyLength ? `/${t.keyLength}` : ''}`).join(',')).join(' | ');
}

export const notifyName = (t: number): string => Object.entries(NotifyType).find(([, v]) => v === t)?.[0] ?? `notify ${t}`;
