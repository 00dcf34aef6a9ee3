/**
 * Aggressive Mode (RFC 2409 5) with pre-shared keys (5.4) or signatures
 * (5.1), both roles:
 *
 *   AM1  HDR, SA, KE, Ni, IDii [, CR], VID                  -->
 *   AM2      <--  HDR, SA, KE, Nr, IDir, [CERT,] HASH_R | SIG_R [, CR], VID, NAT-D, NAT-D
 *   AM3  HDR*, [CERT,] HASH_I | SIG_I, NAT-D, NAT-D [, N(INITIAL-CONTACT)]  -->
 *
 * The identities travel in the clear, so the responder can pick the PSK by
 * the initiator's ID. CR (RFC 2408 3.10) goes in the first message of each
 * side, so the other side's certificates can be the ones asked for. AM3 is
 * sent encrypted, as deployed peers expect, and
 * accepted either way (RFC 2409 5.4 shows it plain). AM3 is the last
 * message, so the responder retransmits AM2 until it arrives and the
 * initiator answers such a retransmission with AM3 again.
 */
import { createV1KeyExchange, V1_DH_GROUPS } from '../../crypto/ikev1/index.js';
import type { Endpoint } from '../../dataplane/api.js';
import { StyxError } from '../../util/errors.js';
import {
  V1ExchangeType, V1NotifyType, V1PayloadType, V1ProtocolId, checkV1Message, describeV1, findV1Payload,
  type IsakmpMessage, type IsakmpPlainMessage, type V1Payload,
} from '../../wire/ikev1/index.js';
import { AuthError } from '../../auth/errors.js';
import { configIdText, identityMatches, identityText, localIdentity, type Identity } from '../identity.js';
import type { V1Context } from './context.js';
import { IkeSaV1 } from './ike-sa.js';
import { idBody } from './ids.js';
import { followPeer, openPhase1, ourSaBody, phase1AuthFailed, plainNotify, rawSaBody } from './main-mode.js';
import {
  applyPeerLifetime, candidates, derivePhase1, detectNat, errorNotify, established, findPsk, floatToNatT, hashI, hashMatches,
  hashR, initialContact, natPayloads, ourIdPayload, ourVendorIds, readVendorIds, responderLifetime,
} from './phase1.js';
import { acceptPhase1Reply, describePhase1, phase1SaPayload, selectPhase1 } from './proposals.js';
import { certReqPayloads, isSigMethod, methodText, noteCertReqs, phase1Offer, refuseIdentity, refusePeer, signLocal, tellPeerFailed, verifyPeer } from './sig.js';

const AM = V1ExchangeType.AGGRESSIVE;

export function startAggressiveMode(ctx: V1Context, sa: IkeSaV1): void {
  const all = phase1Offer(sa.conn, sa.conn.lifetime);
  // RFC 2409 5: one KE goes with the offer, so every transform must name its group.
  const group = all[0]?.group;
  sa.p1.offered = all.filter((a) => a.group === group);
  const saP = phase1SaPayload(sa.p1.offered);
  sa.p1.saiB = ourSaBody(saP);
  const ke = createV1KeyExchange(group!);
  sa.p1.ke = ke;
  sa.p1.gxi = ke.publicValue;
  sa.p1.ni = ctx.nonce();
  const id = ourIdPayload(sa);
  sa.p1.idiB = idBody(id);
  sa.setStep('AGGR_I1');
  const method = sa.p1.offered[0]!.authMethod;
  sa.log.info(`${sa.tag}: initiating Aggressive Mode to ${sa.remote.address}[${sa.remote.port}] as '${identityText(sa.localId!)}', offering ${sa.p1.offered.map(describePhase1).join(', ')} with ${methodText(method)}`);
  const am1 = (cr: V1Payload[]): void => {
    sa.send(0, sa.encodePlain(AM, 0, [saP, { type: V1PayloadType.KE, data: ke.publicValue }, { type: V1PayloadType.NONCE, data: sa.p1.ni }, id, ...cr, ...ourVendorIds()]), 'AM1', true);
  };
  if (!isSigMethod(method)) { am1([]); return; }
  // The CAs to name come from files loaded on first use; the SA's queue keeps the peer's answer behind AM1.
  void sa.enqueue(async () => {
    const cr = await certReqPayloads(sa.conn, ctx.log, sa.tag);
    if (sa.state !== 'DESTROYED') am1(cr);
  });
}

/** AM1 from a new peer: the connection is chosen by addresses and the initiator's identity. */
export function respondAggressive1(ctx: V1Context, msg: IsakmpPlainMessage, raw: Buffer, local: Endpoint, remote: Endpoint): void {
  const h = msg.header;
  try { checkV1Message(AM, 1, false, msg.payloads); } catch (e) {
    if (!(e instanceof StyxError)) throw e;
    ctx.counters.malformed++;
    ctx.log.info(`dropped AM1 from ${remote.address}: ${e.message}`);
    return;
  }
  const saP = findV1Payload(msg.payloads, V1PayloadType.SA)!, ke = findV1Payload(msg.payloads, V1PayloadType.KE)!;
  const ni = findV1Payload(msg.payloads, V1PayloadType.NONCE)!, id = findV1Payload(msg.payloads, V1PayloadType.ID)!;
  const rid: Identity = { type: id.idType, data: id.data };
  const conns = candidates(ctx, local, remote).filter((c) => identityMatches(c.remote.id, rid));
  const refuse = (why: string, n: number): void => {
    ctx.log.info(`Aggressive Mode from ${remote.address} as '${identityText(rid)}': ${why}`);
    plainNotify(ctx, h.cookieI, Buffer.alloc(8), n, local, remote);
  };
  if (conns.length === 0) { refuse('no IKEv1 connection for this peer and identity', V1NotifyType.INVALID_ID_INFORMATION); return; }
  // Aggressive Mode exposes the identity and lets a passive observer attack the PSK offline; only where asked for.
  const aggr = conns.filter((c) => c.aggressive);
  if (aggr.length === 0) { refuse(`connection ${conns[0]!.name} does not allow Aggressive Mode (aggressive: false)`, V1NotifyType.NO_PROPOSAL_CHOSEN); return; }
  for (const conn of aggr) {
    let ours;
    try { ours = phase1Offer(conn, conn.lifetime); } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      ctx.log.warn(`Aggressive Mode from ${remote.address}: connection ${conn.name} cannot answer: ${e.message}`);
      continue;
    }
    const choice = selectPhase1(ours, saP);
    if (!choice || !V1_DH_GROUPS.includes(choice.attrs.group)) continue;
    const sig = isSigMethod(choice.attrs.authMethod);
    const psk = sig ? null : findPsk(ctx, identityText(localIdentity(conn.local.id, local.address)), identityText(rid));
    if (!sig && !psk) { refuse(`no PSK for '${identityText(rid)}'`, V1NotifyType.AUTHENTICATION_FAILED); return; }
    const mine = createV1KeyExchange(choice.attrs.group);
    let gxy: Buffer;
    try { gxy = mine.computeSecret(ke.data); } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      refuse(`KE does not fit group ${choice.attrs.group}: ${e.message}`, V1NotifyType.INVALID_KEY_INFORMATION);
      return;
    }
    const sa = new IkeSaV1(conn, false, true, Buffer.from(h.cookieI), local, remote, ctx.sender, ctx.clock, ctx.log);
    sa.cookieR = IkeSaV1.newCookie();
    sa.attrs = choice.attrs;
    sa.p1.saiB = rawSaBody(raw, msg);
    sa.p1.gxi = ke.data; sa.p1.gxr = mine.publicValue; sa.p1.ni = ni.data; sa.p1.nr = ctx.nonce();
    sa.p1.idiB = idBody(id);
    sa.remoteId = rid;
    readVendorIds(sa, msg.payloads);
    const theirs = choice.attrs.life.seconds;
    sa.lifetime = theirs !== undefined && theirs > 0 ? Math.min(theirs, conn.lifetime) : conn.lifetime;
    ctx.register(sa);
    sa.setStep('AGGR_R1');
    sa.setState('CONNECTING', `Aggressive Mode from ${remote.address}[${remote.port}] as '${identityText(rid)}', transform ${describePhase1(choice.attrs)} accepted for ${conn.name}`);
    derivePhase1(sa, psk ? { method: 'psk', psk } : { method: 'signature' }, gxy);
    const my = ourIdPayload(sa);
    const head: V1Payload[] = [
      { ...saP, proposals: [{ ...choice.proposal, transforms: [choice.transform] }] },
      { type: V1PayloadType.KE, data: mine.publicValue }, { type: V1PayloadType.NONCE, data: sa.p1.nr }, my,
    ];
    // NAT-D needs the vendor IDs read first: only a peer that announced NAT-T gets them (RFC 3947 3.1).
    const tail: V1Payload[] = [...ourVendorIds(), ...natPayloads(sa)];
    if (theirs !== undefined && theirs > conn.lifetime) tail.push(responderLifetime(V1ProtocolId.ISAKMP, sa.cookies, { seconds: conn.lifetime }));
    sa.received(0, raw);
    sa.onGiveUp = () => { void ctx.destroy(sa, `${remote.address} never sent AM3`); };
    const ourHash = hashR(sa, idBody(my));
    if (!sig) { sa.send(0, sa.encodePlain(AM, 0, [...head, { type: V1PayloadType.HASH, data: ourHash }, ...tail]), 'AM2', true); return; }
    noteCertReqs(sa, msg.payloads);
    // Our certificate material loads on first use; the SA's queue holds a repeated AM1 or an early AM3 until AM2 is out.
    void sa.enqueue(async () => {
      let proof: V1Payload[];
      try { proof = (await signLocal(sa, ourHash)).payloads; } catch (e) {
        if (!(e instanceof AuthError)) throw e;
        ctx.log.error(`${sa.tag}: cannot sign AM2 with our certificate: ${e.message}`);
        plainNotify(ctx, h.cookieI, sa.cookieR, V1NotifyType.AUTHENTICATION_FAILED, local, remote);
        await ctx.destroy(sa, `cannot sign with our certificate: ${e.message}`);
        return;
      }
      const cr = await certReqPayloads(conn, ctx.log, sa.tag);
      if (sa.state !== 'DESTROYED') sa.send(0, sa.encodePlain(AM, 0, [...head, ...proof, ...cr, ...tail]), 'AM2', true);
    });
    return;
  }
  refuse(`no acceptable transform for ${aggr.map((c) => c.name).join(', ')}`, V1NotifyType.NO_PROPOSAL_CHOSEN);
}

export async function handleAggressive(ctx: V1Context, sa: IkeSaV1, msg: IsakmpMessage, raw: Buffer, local: Endpoint, remote: Endpoint): Promise<void> {
  const drop = (why: string): void => { ctx.counters.malformed++; ctx.log.info(`${sa.tag}: dropped ${describeV1(msg)} in ${sa.step}: ${why}`); };
  if (sa.step === 'AGGR_I1') {
    if (msg.encrypted) { drop('encrypted before keys exist'); return; }
    try { checkV1Message(AM, 2, false, msg.payloads); } catch (e) { if (e instanceof StyxError) { drop(e.message); return; } throw e; }
    const p = msg.payloads;
    if (msg.header.cookieR.equals(Buffer.alloc(8))) { drop('no responder cookie'); return; }
    const attrs = acceptPhase1Reply(sa.p1.offered, findV1Payload(p, V1PayloadType.SA)!);
    if (!attrs) { await ctx.destroy(sa, 'responder chose a phase 1 transform we did not offer'); return; }
    const ke = findV1Payload(p, V1PayloadType.KE)!, nr = findV1Payload(p, V1PayloadType.NONCE)!, id = findV1Payload(p, V1PayloadType.ID)!;
    const hash = findV1Payload(p, V1PayloadType.HASH);
    const sig = isSigMethod(attrs.authMethod);
    if (!sig && !hash) { drop('no HASH_R where PSK was negotiated'); return; }
    let gxy: Buffer;
    try { gxy = sa.p1.ke!.computeSecret(ke.data); } catch (e) { if (e instanceof StyxError) { drop(`KE: ${e.message}`); return; } throw e; }
    const rid: Identity = { type: id.idType, data: id.data };
    // With PSK a wrong identity leaves no key to check HASH_R with; with signatures it is judged once keys exist, so the responder can be told.
    if (!sig && !identityMatches(sa.conn.remote.id, rid)) {
      ctx.counters.authFailures++;
      await ctx.destroy(sa, `peer identity '${identityText(rid)}' is not the configured '${configIdText(sa.conn.remote.id)}'`);
      return;
    }
    const psk = sig ? null : findPsk(ctx, identityText(sa.localId!), identityText(rid));
    if (!sig && !psk) { await ctx.destroy(sa, `no PSK for '${identityText(sa.localId!)}' - '${identityText(rid)}'`); return; }
    sa.cookieR = Buffer.from(msg.header.cookieR);
    sa.attrs = attrs;
    sa.p1.gxr = ke.data; sa.p1.nr = nr.data;
    derivePhase1(sa, psk ? { method: 'psk', psk } : { method: 'signature' }, gxy);
    if (sig) {
      if (!identityMatches(sa.conn.remote.id, rid)) { await refuseIdentity(ctx, sa, rid, 'AM2', null); return; }
      try { await verifyPeer(sa, rid, p, hashR(sa, idBody(id))); } catch (e) {
        if (!(e instanceof AuthError)) throw e;
        await refusePeer(ctx, sa, rid, e, 'AM2', null);
        return;
      }
    } else if (!hashMatches(hashR(sa, idBody(id)), hash!.data)) { await phase1AuthFailed(ctx, sa, 'AM2', 'HASH_R differs'); return; }
    sa.received(0, raw);
    sa.remoteId = rid;
    readVendorIds(sa, p);
    if (attrs.life.seconds !== undefined && attrs.life.seconds > 0) sa.lifetime = Math.min(sa.lifetime, attrs.life.seconds);
    applyPeerLifetime(sa, p);
    detectNat(sa, p, local, remote);
    floatToNatT(ctx, sa);
    noteCertReqs(sa, p);
    const ourHash = hashI(sa, sa.p1.idiB);
    let proof: V1Payload[] = [{ type: V1PayloadType.HASH, data: ourHash }];
    if (sig) {
      try { proof = (await signLocal(sa, ourHash)).payloads; } catch (e) {
        if (!(e instanceof AuthError)) throw e;
        ctx.log.error(`${sa.tag}: cannot sign AM3 with our certificate: ${e.message}`);
        await tellPeerFailed(ctx, sa);
        await ctx.destroy(sa, `cannot sign with our certificate: ${e.message}`);
        return;
      }
    }
    // AM3 is final: it is not retransmitted by itself, only in answer to a repeated AM2.
    // INITIAL-CONTACT would make the peer drop the IPsec SAs a phase-1 rekey carries over.
    sa.send(0, sa.encodeEncrypted(AM, 0, [...proof, ...natPayloads(sa), ...(sa.replaces ? [] : [initialContact(sa)])]), 'AM3', false);
    established(ctx, sa, p);
    return;
  }
  if (sa.step === 'AGGR_R1') {
    const o = openPhase1(ctx, sa, msg, AM, 3);
    if (!o.ok) { if (o.fatal) await phase1AuthFailed(ctx, sa, 'AM3', o.why); else drop(o.why); return; }
    const hash = findV1Payload(o.payloads, V1PayloadType.HASH);
    const ciphertext = msg.encrypted ? msg.ciphertext : null;
    if (!isSigMethod(sa.attrs!.authMethod)) {
      if (!hash) { drop('no HASH_I where PSK was negotiated'); return; }
      if (!hashMatches(hashI(sa, sa.p1.idiB), hash.data)) { await phase1AuthFailed(ctx, sa, 'AM3', 'HASH_I differs'); return; }
    } else {
      try { await verifyPeer(sa, sa.remoteId!, o.payloads, hashI(sa, sa.p1.idiB)); } catch (e) {
        if (!(e instanceof AuthError)) throw e;
        await refusePeer(ctx, sa, sa.remoteId!, e, 'AM3', ciphertext);
        return;
      }
    }
    if (ciphertext) sa.iv!.advance(0, ciphertext);
    sa.received(0, raw);
    sa.onGiveUp = null;
    errorNotify(sa, o.payloads, 'AM3');
    detectNat(sa, o.payloads, local, remote);
    followPeer(sa, local, remote);
    established(ctx, sa, o.payloads);
    return;
  }
  drop('unexpected');
}
