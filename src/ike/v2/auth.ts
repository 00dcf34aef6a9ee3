/**
 * IKE_AUTH (RFC 7296 1.2) with pre-shared keys or signatures (2.15; the
 * certificate side is in pubkey.ts), carrying the first
 * CHILD_SA: proposal selection and traffic-selector narrowing (2.9), and the
 * errors that fail only the CHILD_SA (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE,
 * 1.2 / 2.21.2) or the whole IKE SA (AUTHENTICATION_FAILED).
 */
import { findPsk as findSecretPsk } from '../../config/index.js';
import type { ChildConfig, ConnectionConfig } from '../../config/model.js';
import { pskAuth, signedOctets } from '../../crypto/index.js';
import { safeEqual } from '../../util/bytes.js';
import { AuthError } from '../../auth/errors.js';
import { AuthMethod, ExchangeType, NotifyType, PayloadType } from '../../wire/ikev2/constants.js';
import type { AuthPayload, IdPayload, Payload, TrafficSelector } from '../../wire/ikev2/types.js';
import { findNotify, findPayload, notify } from '../../wire/ikev2/index.js';
import { configIdText, identityMatches, identityText, localIdentity, type Identity } from '../identity.js';
import { contains, fromConfig, narrow, tsText } from '../ts.js';
import { spiHex } from './child-sa.js';
import { setupChild } from './create-child.js';
import type { V2Context } from './context.js';
import type { IkeSaV2 } from './ike-sa.js';
import { candidates, notifyName } from './init.js';
import { acceptEspResponse, espProposals, selectEsp } from './proposals.js';
import { certReqPayloads, notePeerAnnouncements, refusalText, schemeText, signLocal, verifyPeer } from './pubkey.js';

const idBody = (id: Identity): Buffer => Buffer.concat([Buffer.from([id.type, 0, 0, 0]), id.data]);
const idPayload = (type: typeof PayloadType.IDi | typeof PayloadType.IDr, id: Identity): IdPayload => ({ type, critical: false, idType: id.type, data: id.data });
const spiBuf = (spi: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(spi >>> 0); return b; };

/** The PSK for a pair of identities (see findSecret for which secret wins). */
export function findPsk(ctx: V2Context, localId: string, remoteId: string): Buffer | null {
  return findSecretPsk(ctx.config().secrets, localId, remoteId);
}

/**
 * 2.15: the octets both AUTH methods cover: the sender's IKE_SA_INIT
 * message, the other side's nonce, and prf(SK_p, ID') over its ID payload body.
 */
function signedOctetsOf(sa: IkeSaV2, ofInitiator: boolean, id: Identity): Buffer {
  const prfId = sa.selection!.prf;
  return ofInitiator
    ? signedOctets(sa.initRequest, sa.nonceR, prfId, sa.keys!.skPi, idBody(id))
    : signedOctets(sa.initResponse, sa.nonceI, prfId, sa.keys!.skPr, idBody(id));
}

/** 2.15: AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <InitiatorSignedOctets or ResponderSignedOctets>). */
function authValue(sa: IkeSaV2, psk: Buffer, ofInitiator: boolean, id: Identity): Buffer {
  return pskAuth(sa.selection!.prf, psk, signedOctetsOf(sa, ofInitiator, id));
}

const modeNotify = (c: ChildConfig): Payload[] => (c.mode === 'transport' ? [notify(NotifyType.USE_TRANSPORT_MODE)] : []);

/** Our side of IKE_AUTH: the CERT payloads (3.6) and AUTH payload (3.8) for the local method, and how to describe it. */
interface LocalAuth { certs: Payload[]; auth: AuthPayload; how: string }

/**
 * Builds our proof for the connection's local method. Returns a reason
 * string when it cannot (no PSK, certificate material unusable).
 */
async function localAuth(ctx: V2Context, sa: IkeSaV2, ofInitiator: boolean, peerIdText: string): Promise<LocalAuth | string> {
  const local = sa.conn.local;
  const localId = sa.localId!;
  if (local.method === 'psk') {
    const psk = findPsk(ctx, identityText(localId), peerIdText);
    if (!psk) return `no PSK for '${identityText(localId)}' - '${peerIdText}'`;
    return { certs: [], auth: { type: PayloadType.AUTH, critical: false, method: AuthMethod.SHARED_KEY_MIC, data: authValue(sa, psk, ofInitiator, localId) }, how: 'PSK' };
  }
  try {
    const s = await signLocal(sa, local, localId, signedOctetsOf(sa, ofInitiator, localId));
    return { certs: s.certs, auth: s.auth, how: `certificate ${s.cert.describe()}, ${schemeText(s.scheme)}` };
  } catch (e) {
    if (e instanceof AuthError) return `cannot sign with our certificate: ${e.message}`;
    throw e;
  }
}

/**
 * Checks the peer's AUTH payload for the connection's remote method. Returns
 * how it authenticated, or { refused } with the reason to log.
 */
async function verifyRemote(ctx: V2Context, sa: IkeSaV2, conn: ConnectionConfig, rid: Identity, payloads: Payload[], auth: AuthPayload, ofInitiator: boolean): Promise<{ how: string } | { refused: string }> {
  if (conn.remote.method === 'psk') {
    if (auth.method !== AuthMethod.SHARED_KEY_MIC) return { refused: `peer '${identityText(rid)}' used AUTH method ${auth.method}; ${conn.name} expects PSK (2)` };
    const psk = findPsk(ctx, identityText(sa.localId!), identityText(rid));
    if (!psk) return { refused: `no PSK for '${identityText(sa.localId!)}' - '${identityText(rid)}'` };
    if (!safeEqual(auth.data, authValue(sa, psk, ofInitiator, rid))) return { refused: `AUTH payload from '${identityText(rid)}' does not verify: the PSK differs` };
    return { how: 'PSK' };
  }
  if (auth.method === AuthMethod.SHARED_KEY_MIC) return { refused: `peer '${identityText(rid)}' used a PSK (AUTH method 2); ${conn.name} expects a signature` };
  try {
    const v = await verifyPeer(sa, conn, rid, payloads, auth, signedOctetsOf(sa, ofInitiator, rid));
    for (const w of v.warnings) ctx.log.warn(`${sa.tag}: ${w}`);
    ctx.log.info(`${sa.tag}: peer '${identityText(rid)}' proved by certificate ${v.cert.describe()} via ${v.path.slice(1).map((p) => `"${p}"`).join(' -> ') || 'itself'}, ${schemeText(v.scheme)}`);
    return { how: schemeText(v.scheme) };
  } catch (e) {
    if (e instanceof AuthError) return { refused: `peer '${identityText(rid)}': ${refusalText(e)}` };
    throw e;
  }
}

export async function sendAuthRequest(ctx: V2Context, sa: IkeSaV2): Promise<void> {
  const conn = sa.conn, c = sa.initCtx!;
  sa.localId = localIdentity(conn.local.id, sa.local.address);
  const mine = await localAuth(ctx, sa, true, configIdText(conn.remote.id));
  if (typeof mine === 'string') { ctx.log.error(`${sa.tag}: ${mine}`); await ctx.destroy(sa, mine); return; }
  // 1.2: HDR, SK {IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, SA, TSi, TSr}; CERTREQ (3.7) when we verify the responder's certificate.
  const certReq = conn.remote.method === 'pubkey' ? await certReqPayloads([conn], ctx.log, sa.tag) : [];
  // 3.10.1: INITIAL_CONTACT tells the peer to drop older SAs with us, so it goes only when we hold none
  // (a reauthentication keeps the old one until it is done).
  const initialContact = !sa.reauthOf && !ctx.hasOtherSas(sa);
  const payloads: Payload[] = [idPayload(PayloadType.IDi, sa.localId), ...mine.certs, ...certReq, ...(initialContact ? [notify(NotifyType.INITIAL_CONTACT)] : [])];
  if (conn.remote.id.type !== 'any') payloads.push(idPayload(PayloadType.IDr, localIdentity(conn.remote.id, sa.remote.address)));
  payloads.push(mine.auth);
  if (c.child) {
    c.childSpi = await ctx.dp.allocateSpi();
    c.childProposals = espProposals(c.child.espProposals, spiBuf(c.childSpi), false);
    payloads.push(...modeNotify(c.child),
      { type: PayloadType.SA, critical: false, proposals: c.childProposals },
      { type: PayloadType.TSi, critical: false, selectors: c.child.localTs.map((t) => fromConfig(t, sa.local.address)) },
      { type: PayloadType.TSr, critical: false, selectors: c.child.remoteTs.map((t) => fromConfig(t, sa.remote.address)) });
  }
  sa.log.info(`${sa.tag}: authenticating as '${identityText(sa.localId)}' with ${mine.how}${c.child ? `, proposing CHILD_SA ${c.child.name} SPI ${spiHex(c.childSpi)}` : ''}`);
  sa.request(ExchangeType.IKE_AUTH, payloads, (_msg, inner) => onAuthResponse(ctx, sa, inner, mine.how));
}

async function onAuthResponse(ctx: V2Context, sa: IkeSaV2, payloads: Payload[], localHow: string): Promise<void> {
  const c = sa.initCtx!;
  if (findNotify(payloads, NotifyType.AUTHENTICATION_FAILED)) {
    ctx.counters.authFailures++;
    ctx.log.error(`${sa.tag}: peer rejected our authentication (AUTHENTICATION_FAILED): check the ${sa.conn.local.method === 'psk' ? 'PSK' : 'certificate, its CA'} and identities`);
    await ctx.destroy(sa, 'AUTHENTICATION_FAILED from peer');
    return;
  }
  const idr = findPayload(payloads, PayloadType.IDr), auth = findPayload(payloads, PayloadType.AUTH);
  if (!idr || !auth) {
    const e = payloads.find((p) => p.type === PayloadType.NOTIFY && p.notifyType < 16384);
    await ctx.destroy(sa, e && e.type === PayloadType.NOTIFY ? `IKE_AUTH failed: peer sent ${notifyName(e.notifyType)}` : 'IKE_AUTH response lacks IDr or AUTH');
    return;
  }
  const rid: Identity = { type: idr.idType, data: idr.data };
  if (!identityMatches(sa.conn.remote.id, rid)) return authFailed(ctx, sa, `peer identity '${identityText(rid)}' is not the configured '${configIdText(sa.conn.remote.id)}'`);
  const v = await verifyRemote(ctx, sa, sa.conn, rid, payloads, auth, false);
  if ('refused' in v) return authFailed(ctx, sa, v.refused);
  sa.remoteId = rid;
  established(ctx, sa, localHow, v.how);

  if (!c.child) return;
  const childErr = payloads.find((p) => p.type === PayloadType.NOTIFY && p.notifyType < 16384);
  if (childErr && childErr.type === PayloadType.NOTIFY) return childFailed(ctx, sa, c.childSpi, `peer refused CHILD_SA ${c.child.name}: ${notifyName(childErr.notifyType)}`);
  const saP = findPayload(payloads, PayloadType.SA), tsi = findPayload(payloads, PayloadType.TSi), tsr = findPayload(payloads, PayloadType.TSr);
  if (!saP || !tsi || !tsr) return childFailed(ctx, sa, c.childSpi, `IKE_AUTH response has no CHILD_SA for ${c.child.name}`);
  const sel = acceptEspResponse(c.childProposals, saP.proposals);
  if (!sel) return childFailed(ctx, sa, c.childSpi, 'peer chose an ESP proposal we did not offer');
  // 2.9: the responder may only narrow what we proposed.
  const offeredI = c.child.localTs.map((t) => fromConfig(t, sa.local.address)), offeredR = c.child.remoteTs.map((t) => fromConfig(t, sa.remote.address));
  if (!tsi.selectors.every((t) => offeredI.some((o) => contains(o, t))) || !tsr.selectors.every((t) => offeredR.some((o) => contains(o, t))))
    return childFailed(ctx, sa, c.childSpi, `peer's traffic selectors ${tsi.selectors.map(tsText).join(',')} === ${tsr.selectors.map(tsText).join(',')} are not within ours`);
  const transport = !!findNotify(payloads, NotifyType.USE_TRANSPORT_MODE);
  if (c.child.mode === 'transport' && !transport) return childFailed(ctx, sa, c.childSpi, 'peer refused transport mode');
  await setupChild(ctx, sa, c.child, c.childSpi, sel, transport ? 'transport' : 'tunnel', tsi.selectors, tsr.selectors, sa.nonceI, sa.nonceR, true);
}

/** Initiator side: the responder's AUTH failed us; tell it (2.21.2) and drop the SA. */
async function authFailed(ctx: V2Context, sa: IkeSaV2, why: string): Promise<void> {
  ctx.counters.authFailures++;
  ctx.log.error(`${sa.tag}: AUTHENTICATION_FAILED: ${why}`);
  sa.request(ExchangeType.INFORMATIONAL, [notify(NotifyType.AUTHENTICATION_FAILED)], async () => undefined);
  await ctx.destroy(sa, why);
}

async function childFailed(ctx: V2Context, sa: IkeSaV2, spi: number, why: string): Promise<void> {
  await ctx.dp.deleteSa(spi, 'in').catch(() => undefined);
  ctx.log.warn(`${sa.tag}: ${why}`);
  ctx.childFailed(sa, why);
}

function established(ctx: V2Context, sa: IkeSaV2, localHow: string, remoteHow: string): void {
  sa.establishedAt = ctx.clock.now();
  const how = localHow === remoteHow ? `authenticated with ${localHow}` : `we authenticated with ${localHow}, the peer with ${remoteHow}`;
  sa.setState('ESTABLISHED', `'${identityText(sa.localId!)}' <-> '${identityText(sa.remoteId!)}' ${how}`);
  ctx.counters.ikeEstablished++;
  ctx.ikeUp(sa);
}

/** Picks the connection for the initiator's identity among those that matched its addresses. */
function pickConnection(ctx: V2Context, sa: IkeSaV2, idi: Identity, idr: Identity | null, authMethod: number): ConnectionConfig | null {
  const sel = sa.selection!;
  // Only connections that would have accepted the suite IKE_SA_INIT already negotiated.
  const suiteOk = (c: ConnectionConfig): boolean => c.ikeProposals.some((p) =>
    p.encr.some((e) => e.id === sel.encr.id && e.keyLength === sel.encr.keyLength) && p.prf.includes(sel.prf) && p.dh.includes(sel.dh) && (sel.integ === 0 ? p.integ.length === 0 : p.integ.includes(sel.integ)));
  const conns = candidates(ctx, sa.local, sa.remote).filter((c) =>
    suiteOk(c) && identityMatches(c.remote.id, idi) && (!idr || c.local.id.type === 'any' || identityMatches(c.local.id, idr)));
  // One whose remote method fits the AUTH payload first, then one naming the peer exactly over one that takes %any.
  const fits = conns.filter((c) => (c.remote.method === 'psk') === (authMethod === AuthMethod.SHARED_KEY_MIC));
  const pool = fits.length > 0 ? fits : conns;
  return pool.find((c) => c.remote.id.type !== 'any') ?? pool[0] ?? null;
}

export async function handleAuthRequest(ctx: V2Context, sa: IkeSaV2, messageId: number, payloads: Payload[]): Promise<void> {
  const idi = findPayload(payloads, PayloadType.IDi), auth = findPayload(payloads, PayloadType.AUTH);
  const fail = async (why: string, n: number = NotifyType.AUTHENTICATION_FAILED): Promise<void> => {
    ctx.counters.authFailures++;
    ctx.log.error(`${sa.tag}: ${notifyName(n)}: ${why}`);
    sa.sendResponse(ExchangeType.IKE_AUTH, messageId, [notify(n)]);
    await ctx.destroy(sa, why);
  };
  if (!idi || !auth) return fail('IKE_AUTH request lacks IDi or AUTH', NotifyType.INVALID_SYNTAX);
  const rid: Identity = { type: idi.idType, data: idi.data };
  const idrP = findPayload(payloads, PayloadType.IDr);
  const conn = pickConnection(ctx, sa, rid, idrP ? { type: idrP.idType, data: idrP.data } : null, auth.method);
  if (!conn) return fail(`no connection accepts peer identity '${identityText(rid)}' from ${sa.remote.address}`);
  sa.conn = conn;
  sa.localId = localIdentity(conn.local.id, sa.local.address);
  // The peer's CERTREQ in this request says which of our CAs it trusts (3.7).
  notePeerAnnouncements(sa, payloads);
  const v = await verifyRemote(ctx, sa, conn, rid, payloads, auth, true);
  if ('refused' in v) return fail(v.refused);
  const mine = await localAuth(ctx, sa, false, identityText(rid));
  if (typeof mine === 'string') return fail(mine);
  sa.remoteId = rid;

  // 1.2: <-- HDR, SK {IDr, [CERT,] AUTH, SA, TSi, TSr}
  const out: Payload[] = [idPayload(PayloadType.IDr, sa.localId), ...mine.certs, mine.auth];
  established(ctx, sa, mine.how, v.how);
  out.push(...await respondChild(ctx, sa, payloads));
  sa.sendResponse(ExchangeType.IKE_AUTH, messageId, out);
  // 2.4 / 3.10.1: the peer says it has no other SAs with us (it restarted): ours with it are stale.
  if (findNotify(payloads, NotifyType.INITIAL_CONTACT)) await ctx.initialContact(sa);
}

/** The CHILD_SA part of an IKE_AUTH response; a failure here leaves the IKE SA up (1.2). */
async function respondChild(ctx: V2Context, sa: IkeSaV2, payloads: Payload[]): Promise<Payload[]> {
  const saP = findPayload(payloads, PayloadType.SA), tsi = findPayload(payloads, PayloadType.TSi), tsr = findPayload(payloads, PayloadType.TSr);
  if (!saP || !tsi || !tsr) return [];
  let match: { cfg: ChildConfig; tsi: TrafficSelector[]; tsr: TrafficSelector[] } | null = null;
  for (const cfg of sa.conn.children) {
    const ni = narrow(tsi.selectors, cfg.remoteTs.map((t) => fromConfig(t, sa.remote.address)));
    const nr = narrow(tsr.selectors, cfg.localTs.map((t) => fromConfig(t, sa.local.address)));
    if (ni.length && nr.length) { match = { cfg, tsi: ni, tsr: nr }; break; }
  }
  if (!match) {
    ctx.log.warn(`${sa.tag}: traffic selectors ${tsi.selectors.map(tsText).join(',')} === ${tsr.selectors.map(tsText).join(',')} match no child of ${sa.conn.name}: TS_UNACCEPTABLE`);
    ctx.childFailed(sa, 'TS_UNACCEPTABLE');
    return [notify(NotifyType.TS_UNACCEPTABLE)];
  }
  const sel = selectEsp(match.cfg.espProposals, saP.proposals, false);
  if (!sel) {
    ctx.log.warn(`${sa.tag}: no acceptable ESP proposal for CHILD_SA ${match.cfg.name}: NO_PROPOSAL_CHOSEN`);
    ctx.childFailed(sa, 'NO_PROPOSAL_CHOSEN');
    return [notify(NotifyType.NO_PROPOSAL_CHOSEN)];
  }
  // 1.3.1: transport mode only when both ask for it.
  const mode = findNotify(payloads, NotifyType.USE_TRANSPORT_MODE) && match.cfg.mode === 'transport' ? 'transport' : 'tunnel';
  let spiIn: number;
  try { spiIn = await ctx.dp.allocateSpi(); } catch (e) {
    ctx.log.error(`${sa.tag}: cannot allocate an SPI: ${(e as Error).message}`);
    return [notify(NotifyType.TEMPORARY_FAILURE)];
  }
  const child = await setupChild(ctx, sa, match.cfg, spiIn, sel, mode, match.tsi, match.tsr, sa.nonceI, sa.nonceR, false);
  if (!child) return [notify(NotifyType.NO_PROPOSAL_CHOSEN)];
  const accepted = espProposals([{ text: '', encr: [sel.encr], integ: sel.integ ? [sel.integ] : [], dh: [], esn: [sel.esn] }], spiBuf(spiIn), false)[0]!;
  return [
    ...(mode === 'transport' ? [notify(NotifyType.USE_TRANSPORT_MODE)] : []),
    { type: PayloadType.SA, critical: false, proposals: [{ ...accepted, num: sel.num }] },
    { type: PayloadType.TSi, critical: false, selectors: match.tsi },
    { type: PayloadType.TSr, critical: false, selectors: match.tsr },
  ];
}
