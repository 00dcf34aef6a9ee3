/**
 * Main Mode (RFC 2409 5, identity protection) with pre-shared keys
 * (RFC 2409 5.4) or signatures (5.1), both roles:
 *
 *   MM1  HDR, SA, VID                       -->
 *   MM2                                     <--  HDR, SA, VID
 *   MM3  HDR, KE, Ni, NAT-D, NAT-D [, CR]   -->
 *   MM4                                     <--  HDR, KE, Nr, NAT-D, NAT-D [, CR]
 *   MM5  HDR*, IDii, [CERT,] HASH_I | SIG_I [, N(INITIAL-CONTACT)] -->
 *   MM6                                     <--  HDR*, IDir, [CERT,] HASH_R | SIG_R
 *
 * NAT-D per RFC 3947 3.2; the initiator floats to 4500 before MM5 (4). CR
 * (RFC 2408 3.10) rides with the key exchange, where peers look for it, so
 * the certificates in MM5/MM6 can be the ones asked for.
 */
import { createV1KeyExchange } from '../../crypto/ikev1/index.js';
import type { ConnectionConfig } from '../../config/model.js';
import type { Endpoint } from '../../dataplane/api.js';
import { StyxError } from '../../util/errors.js';
import {
  Doi, V1ExchangeType, V1NotifyType, V1PayloadType, V1ProtocolId, checkV1Message, decodeV1PayloadChain, describeV1, encodeIsakmp,
  findV1Payload, walkV1PayloadChain, ISAKMP_HEADER_LENGTH,
  type IsakmpMessage, type IsakmpPlainMessage, type V1Payload,
} from '../../wire/ikev1/index.js';
import { AuthError } from '../../auth/errors.js';
import { configIdText, identityMatches, identityText, type Identity } from '../identity.js';
import type { V1Context } from './context.js';
import { IkeSaV1 } from './ike-sa.js';
import { idBody } from './ids.js';
import {
  applyPeerLifetime, candidates, connectionPsk, derivePhase1, detectNat, established, findPsk, floatToNatT,
  hashI, hashMatches, hashR, initialContact, natPayloads, ourIdPayload, ourVendorIds, readVendorIds, responderLifetime,
} from './phase1.js';
import { acceptPhase1Reply, describePhase1, phase1Acceptable, phase1SaPayload, selectPhase1 } from './proposals.js';
import { certReqPayloads, isSigMethod, methodText, noteCertReqs, phase1Offer, refuseIdentity, refusePeer, signLocal, tellPeerFailed, verifyPeer } from './sig.js';

const MM = V1ExchangeType.IDENTITY_PROTECTION;

/** The body of the first SA payload of a plaintext message, exactly as received (RFC 2409 5: SAi_b). */
export function rawSaBody(raw: Buffer, msg: IsakmpPlainMessage): Buffer {
  const p = walkV1PayloadChain(msg.header.nextPayload, raw.subarray(ISAKMP_HEADER_LENGTH)).find((x) => x.type === V1PayloadType.SA);
  return p ? Buffer.from(p.body) : Buffer.alloc(0);
}

/** The body of an SA payload as we send it. */
export function ourSaBody(sa: V1Payload): Buffer {
  return encodeIsakmp({ cookieI: Buffer.alloc(8), cookieR: Buffer.alloc(8), exchangeType: 0, flags: { encryption: false, commit: false, authOnly: false }, messageId: 0 }, [sa])
    .subarray(ISAKMP_HEADER_LENGTH + 4);
}

/** A plaintext Informational (RFC 2408 4.8) for errors before any keys exist. */
export function plainNotify(ctx: V1Context, cookieI: Buffer, cookieR: Buffer, notifyType: number, local: Endpoint, remote: Endpoint): void {
  const pkt = encodeIsakmp({ cookieI, cookieR, exchangeType: V1ExchangeType.INFORMATIONAL, flags: { encryption: false, commit: false, authOnly: false }, messageId: 0 },
    [{ type: V1PayloadType.N, doi: Doi.IPSEC, protocol: V1ProtocolId.ISAKMP, spi: Buffer.concat([cookieI, cookieR]), notifyType, data: Buffer.alloc(0) }]);
  ctx.sender.send(pkt, local, remote);
}

/**
 * Opens an encrypted phase 1 message (MM5, MM6, AM3). A body that is not
 * whole blocks is plain garbage and only dropped; one that decrypts to no
 * valid payload chain, or whose HASH does not verify, means the two sides
 * derived different keys, which with PSK almost always means different PSKs.
 */
export type Phase1Open = { ok: true; payloads: V1Payload[] } | { ok: false; fatal: boolean; why: string };

export function openPhase1(ctx: V1Context, sa: IkeSaV1, msg: IsakmpMessage, exchange: number, position: number): Phase1Open {
  if (!msg.encrypted) {
    // RFC 2409 5.4 shows AM3 in the clear; Main Mode's last two messages never are.
    if (exchange === MM) return { ok: false, fatal: false, why: 'not encrypted' };
    try { checkV1Message(exchange, position, false, msg.payloads); } catch (e) { if (e instanceof StyxError) return { ok: false, fatal: false, why: e.message }; throw e; }
    return { ok: true, payloads: msg.payloads };
  }
  let plain: Buffer;
  try { plain = sa.decrypt(msg); } catch (e) { if (e instanceof StyxError) return { ok: false, fatal: false, why: e.message }; throw e; }
  try {
    const payloads = decodeV1PayloadChain(msg.firstPayload, plain);
    checkV1Message(exchange, position, true, payloads);
    return { ok: true, payloads };
  } catch (e) {
    if (e instanceof StyxError) return { ok: false, fatal: true, why: `decrypted body is not a valid message (${e.message})` };
    throw e;
  }
}

/**
 * The wrong-PSK verdict: one clear line, counted, and the SA gone. With
 * signatures SKEYID takes no secret of ours, so keys that differ point at
 * a broken peer or a forged message instead.
 */
export async function phase1AuthFailed(ctx: V1Context, sa: IkeSaV1, what: string, why: string): Promise<void> {
  ctx.counters.authFailures++;
  ctx.counters.integrityFailures++;
  const reason = `${what} from ${sa.remote.address} does not verify: ${isSigMethod(sa.attrs?.authMethod) ? 'the peer derived other keys' : 'wrong PSK?'}`;
  ctx.log.error(`${sa.tag}: ${reason} (${why})`);
  await ctx.destroy(sa, reason);
}

export function startMainMode(ctx: V1Context, sa: IkeSaV1): void {
  sa.p1.offered = phase1Offer(sa.conn, sa.conn.lifetime);
  const saP = phase1SaPayload(sa.p1.offered);
  sa.p1.saiB = ourSaBody(saP);
  sa.setStep('MAIN_I1');
  sa.log.info(`${sa.tag}: initiating Main Mode to ${sa.remote.address}[${sa.remote.port}], offering ${sa.p1.offered.map(describePhase1).join(', ')} with ${methodText(sa.p1.offered[0]!.authMethod)}`);
  sa.send(0, sa.encodePlain(MM, 0, [saP, ...ourVendorIds()]), 'MM1', true);
}

/** MM1 from a new peer: pick a connection and a transform, answer MM2. */
export function respondMainMode1(ctx: V1Context, msg: IsakmpPlainMessage, raw: Buffer, local: Endpoint, remote: Endpoint): void {
  const h = msg.header;
  try { checkV1Message(MM, 1, false, msg.payloads); } catch (e) {
    if (!(e instanceof StyxError)) throw e;
    ctx.counters.malformed++;
    ctx.log.info(`dropped MM1 from ${remote.address}: ${e.message}`);
    return;
  }
  const saP = findV1Payload(msg.payloads, V1PayloadType.SA)!;
  for (const conn of candidates(ctx, local, remote)) {
    let ours;
    try { ours = phase1Offer(conn, conn.lifetime); } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      ctx.log.warn(`Main Mode from ${remote.address}: connection ${conn.name} cannot answer: ${e.message}`);
      continue;
    }
    const choice = selectPhase1(ours, saP);
    if (!choice) continue;
    const sa = new IkeSaV1(conn, false, false, Buffer.from(h.cookieI), local, remote, ctx.sender, ctx.clock, ctx.log);
    sa.cookieR = IkeSaV1.newCookie();
    sa.attrs = choice.attrs;
    sa.p1.saiB = rawSaBody(raw, msg);
    readVendorIds(sa, msg.payloads);
    const theirs = choice.attrs.life.seconds;
    sa.lifetime = theirs !== undefined && theirs > 0 ? Math.min(theirs, conn.lifetime) : conn.lifetime;
    ctx.register(sa);
    sa.setStep('MAIN_R1');
    sa.setState('CONNECTING', `Main Mode from ${remote.address}[${remote.port}], transform ${describePhase1(choice.attrs)} accepted for ${conn.name}`);
    // RFC 2408 4.2: the accepted transform goes back as it came; a shorter lifetime of ours is said separately (RFC 2407 4.5.4).
    const reply: V1Payload[] = [{ ...saP, proposals: [{ ...choice.proposal, transforms: [choice.transform] }] }, ...ourVendorIds()];
    if (theirs !== undefined && theirs > conn.lifetime) reply.push(responderLifetime(V1ProtocolId.ISAKMP, sa.cookies, { seconds: conn.lifetime }));
    sa.received(0, raw);
    sa.send(0, sa.encodePlain(MM, 0, reply), 'MM2', false);
    return;
  }
  ctx.log.info(`no IKEv1 connection accepts Main Mode from ${remote.address} to ${local.address} (offered ${describeOffer(saP)}): NO_PROPOSAL_CHOSEN`);
  plainNotify(ctx, h.cookieI, Buffer.alloc(8), V1NotifyType.NO_PROPOSAL_CHOSEN, local, remote);
}

function describeOffer(saP: { proposals: { transforms: { attributes: { type: number; value: number | Buffer }[] }[] }[] }): string {
  return saP.proposals.flatMap((p) => p.transforms.map((t) => t.attributes.map((a) => `${a.type}=${typeof a.value === 'number' ? a.value : a.value.toString('hex')}`).join(','))).join(' | ');
}

/** Every later Main Mode message of an SA, by where the SA stands. */
export async function handleMainMode(ctx: V1Context, sa: IkeSaV1, msg: IsakmpMessage, raw: Buffer, local: Endpoint, remote: Endpoint): Promise<void> {
  const drop = (why: string): void => { ctx.counters.malformed++; ctx.log.info(`${sa.tag}: dropped ${describeV1(msg)} in ${sa.step}: ${why}`); };
  const plain = (position: number): V1Payload[] | null => {
    if (msg.encrypted) { drop('encrypted before keys exist'); return null; }
    try { checkV1Message(MM, position, false, msg.payloads); } catch (e) { if (e instanceof StyxError) { drop(e.message); return null; } throw e; }
    return msg.payloads;
  };
  switch (sa.step) {
    case 'MAIN_I1': {
      const p = plain(2);
      if (!p) return;
      if (!sa.initiator || msg.header.cookieR.equals(Buffer.alloc(8))) { drop('no responder cookie'); return; }
      const attrs = sa.p1.offered.length ? acceptPhase1Reply(sa.p1.offered, findV1Payload(p, V1PayloadType.SA)!) : null;
      if (!attrs) { await ctx.destroy(sa, 'responder chose a phase 1 transform we did not offer'); return; }
      sa.cookieR = Buffer.from(msg.header.cookieR);
      sa.attrs = attrs;
      sa.received(0, raw);
      readVendorIds(sa, p);
      if (attrs.life.seconds !== undefined && attrs.life.seconds > 0) sa.lifetime = Math.min(sa.lifetime, attrs.life.seconds);
      applyPeerLifetime(sa, p);
      sa.log.info(`${sa.tag}: responder accepted ${describePhase1(attrs)}${sa.peer.natt ? ', NAT-T' : ''}${sa.peer.dpd ? ', DPD' : ''}`);
      const ke = createV1KeyExchange(attrs.group);
      sa.p1.ke = ke;
      sa.p1.gxi = ke.publicValue;
      sa.p1.ni = ctx.nonce();
      sa.setStep('MAIN_I2');
      const cr = isSigMethod(attrs.authMethod) ? await certReqPayloads(sa.conn, ctx.log, sa.tag) : [];
      sa.send(0, sa.encodePlain(MM, 0, [{ type: V1PayloadType.KE, data: ke.publicValue }, { type: V1PayloadType.NONCE, data: sa.p1.ni }, ...natPayloads(sa), ...cr]), 'MM3', true);
      return;
    }
    case 'MAIN_R1': {
      const p = plain(3);
      if (!p) return;
      const ke = findV1Payload(p, V1PayloadType.KE)!, ni = findV1Payload(p, V1PayloadType.NONCE)!;
      const sig = isSigMethod(sa.attrs!.authMethod);
      const psk = sig ? null : connectionPsk(ctx, sa.conn, sa.local, sa.remote);
      if (!sig && !psk) { ctx.log.error(`${sa.tag}: no PSK for ${sa.conn.name} and peer ${sa.remote.address}`); await ctx.destroy(sa, 'no PSK for the peer'); return; }
      const mine = createV1KeyExchange(sa.attrs!.group);
      let gxy: Buffer;
      try { gxy = mine.computeSecret(ke.data); } catch (e) { if (e instanceof StyxError) { drop(`KE: ${e.message}`); return; } throw e; }
      sa.p1.gxi = ke.data; sa.p1.gxr = mine.publicValue; sa.p1.ni = ni.data; sa.p1.nr = ctx.nonce();
      sa.received(0, raw);
      noteCertReqs(sa, p);
      detectNat(sa, p, local, remote);
      derivePhase1(sa, psk ? { method: 'psk', psk } : { method: 'signature' }, gxy);
      sa.setStep('MAIN_R2');
      const cr = sig ? await certReqPayloads(sa.conn, ctx.log, sa.tag) : [];
      sa.send(0, sa.encodePlain(MM, 0, [{ type: V1PayloadType.KE, data: mine.publicValue }, { type: V1PayloadType.NONCE, data: sa.p1.nr }, ...natPayloads(sa), ...cr]), 'MM4', false);
      return;
    }
    case 'MAIN_I2': {
      const p = plain(4);
      if (!p) return;
      const ke = findV1Payload(p, V1PayloadType.KE)!, nr = findV1Payload(p, V1PayloadType.NONCE)!;
      let gxy: Buffer;
      try { gxy = sa.p1.ke!.computeSecret(ke.data); } catch (e) { if (e instanceof StyxError) { drop(`KE: ${e.message}`); return; } throw e; }
      const sig = isSigMethod(sa.attrs!.authMethod);
      const psk = sig ? null : findPsk(ctx, identityText(ourIdPayloadIdentity(sa)), configIdText(sa.conn.remote.id) === '%any' ? sa.remote.address : configIdText(sa.conn.remote.id));
      if (!sig && !psk) { await ctx.destroy(sa, `no PSK for ${sa.conn.name}`); return; }
      sa.p1.gxr = ke.data; sa.p1.nr = nr.data;
      sa.received(0, raw);
      noteCertReqs(sa, p);
      detectNat(sa, p, local, remote);
      derivePhase1(sa, psk ? { method: 'psk', psk } : { method: 'signature' }, gxy);
      floatToNatT(ctx, sa);
      const id = ourIdPayload(sa);
      const ourHash = hashI(sa, idBody(id));
      let proof: V1Payload[] = [{ type: V1PayloadType.HASH, data: ourHash }];
      let how = 'PSK';
      if (sig) {
        try { ({ payloads: proof, how } = await signLocal(sa, ourHash)); } catch (e) {
          if (!(e instanceof AuthError)) throw e;
          ctx.log.error(`${sa.tag}: cannot sign MM5 with our certificate: ${e.message}`);
          await ctx.destroy(sa, `cannot sign with our certificate: ${e.message}`);
          return;
        }
        // A peer that refuses our certificate answers with an Informational, or not at all: say so rather than blame a PSK.
        sa.onGiveUp = (_mid, what) => { void ctx.destroy(sa, `${sa.remote.address} did not answer ${what}: does it trust our certificate?`); };
      }
      sa.setStep('MAIN_I3');
      sa.log.info(`${sa.tag}: authenticating as '${identityText(sa.localId!)}' with ${how}`);
      // INITIAL-CONTACT would make the peer drop the IPsec SAs a phase-1 rekey carries over.
      sa.send(0, sa.encodeEncrypted(MM, 0, [id, ...proof, ...(sa.replaces ? [] : [initialContact(sa)])]), 'MM5', true);
      return;
    }
    case 'MAIN_R2': {
      const o = openPhase1(ctx, sa, msg, MM, 5);
      if (!o.ok) { if (o.fatal) await phase1AuthFailed(ctx, sa, 'MM5', o.why); else drop(o.why); return; }
      const id = findV1Payload(o.payloads, V1PayloadType.ID)!, hash = findV1Payload(o.payloads, V1PayloadType.HASH);
      const rid: Identity = { type: id.idType, data: id.data };
      const sig = isSigMethod(sa.attrs!.authMethod);
      const ciphertext = msg.encrypted ? msg.ciphertext : null;
      if (!sig) {
        if (!hash) { drop('no HASH_I where PSK was negotiated'); return; }
        if (!hashMatches(hashI(sa, idBody(id)), hash.data)) { await phase1AuthFailed(ctx, sa, 'MM5', 'HASH_I differs'); return; }
      }
      if (sig && !identityMatches(sa.conn.remote.id, rid)) switchConnection(ctx, sa, rid);
      if (!identityMatches(sa.conn.remote.id, rid)) {
        if (sig) { await refuseIdentity(ctx, sa, rid, 'MM5', ciphertext); return; }
        ctx.counters.authFailures++;
        ctx.log.error(`${sa.tag}: peer identity '${identityText(rid)}' is not ${sa.conn.name}'s '${configIdText(sa.conn.remote.id)}'`);
        await ctx.destroy(sa, `peer identity '${identityText(rid)}' not accepted`);
        return;
      }
      if (sig) {
        try { await verifyPeer(sa, rid, o.payloads, hashI(sa, idBody(id))); } catch (e) {
          if (!(e instanceof AuthError)) throw e;
          await refusePeer(ctx, sa, rid, e, 'MM5', ciphertext);
          return;
        }
      }
      if (ciphertext) sa.iv!.advance(0, ciphertext);
      sa.received(0, raw);
      followPeer(sa, local, remote);
      sa.remoteId = rid;
      noteCertReqs(sa, o.payloads);
      const my = ourIdPayload(sa);
      const ourHash = hashR(sa, idBody(my));
      let proof: V1Payload[] = [{ type: V1PayloadType.HASH, data: ourHash }];
      if (sig) {
        try { proof = (await signLocal(sa, ourHash)).payloads; } catch (e) {
          if (!(e instanceof AuthError)) throw e;
          ctx.log.error(`${sa.tag}: cannot sign MM6 with our certificate: ${e.message}`);
          await tellPeerFailed(ctx, sa);
          await ctx.destroy(sa, `cannot sign with our certificate: ${e.message}`);
          return;
        }
      }
      sa.send(0, sa.encodeEncrypted(MM, 0, [my, ...proof]), 'MM6', false);
      established(ctx, sa, o.payloads);
      return;
    }
    case 'MAIN_I3': {
      const o = openPhase1(ctx, sa, msg, MM, 6);
      if (!o.ok) {
        if (!o.fatal) { drop(o.why); return; }
        await phase1AuthFailed(ctx, sa, 'MM6', o.why);
        return;
      }
      const id = findV1Payload(o.payloads, V1PayloadType.ID)!, hash = findV1Payload(o.payloads, V1PayloadType.HASH);
      const rid: Identity = { type: id.idType, data: id.data };
      const sig = isSigMethod(sa.attrs!.authMethod);
      const ciphertext = msg.encrypted ? msg.ciphertext : null;
      if (!sig) {
        if (!hash) { drop('no HASH_R where PSK was negotiated'); return; }
        if (!hashMatches(hashR(sa, idBody(id)), hash.data)) { await phase1AuthFailed(ctx, sa, 'MM6', 'HASH_R differs'); return; }
      }
      if (!identityMatches(sa.conn.remote.id, rid)) {
        if (sig) { await refuseIdentity(ctx, sa, rid, 'MM6', ciphertext); return; }
        ctx.counters.authFailures++;
        await ctx.destroy(sa, `peer identity '${identityText(rid)}' is not the configured '${configIdText(sa.conn.remote.id)}'`);
        return;
      }
      if (sig) {
        try { await verifyPeer(sa, rid, o.payloads, hashR(sa, idBody(id))); } catch (e) {
          if (!(e instanceof AuthError)) throw e;
          await refusePeer(ctx, sa, rid, e, 'MM6', ciphertext);
          return;
        }
      }
      if (ciphertext) sa.iv!.advance(0, ciphertext);
      sa.received(0, raw);
      sa.remoteId = rid;
      established(ctx, sa, o.payloads);
      return;
    }
    default:
      drop('unexpected');
  }
}

/**
 * RFC 2409 5: a Main Mode responder picks its connection at MM1 from the
 * addresses and the offered transform, and learns who the initiator is only
 * from MM5. With signatures nothing negotiated so far depends on that
 * choice beyond the transform (the CRs of MM4 aside, which a peer may use to
 * pick its certificate), so another connection for these addresses whose
 * remote identity is the initiator's takes over, if it accepts the transform
 * already agreed. With a pre-shared key the key itself, chosen at MM3 by
 * address, already decided, so the connection stays.
 */
function switchConnection(ctx: V1Context, sa: IkeSaV1, rid: Identity): void {
  const accepts = (c: ConnectionConfig): boolean => {
    try { return phase1Acceptable(phase1Offer(c, c.lifetime), sa.attrs!); } catch (e) { if (e instanceof StyxError) return false; throw e; }
  };
  const next = candidates(ctx, sa.local, sa.remote).find((c) => c !== sa.conn && identityMatches(c.remote.id, rid) && accepts(c));
  if (!next) return;
  ctx.log.info(`${sa.tag}: peer identity '${identityText(rid)}' belongs to connection ${next.name}, not ${sa.conn.name}: switching to it`);
  sa.conn = next;
  sa.lifetime = Math.min(sa.lifetime, next.lifetime);
}

function ourIdPayloadIdentity(sa: IkeSaV1): Identity {
  ourIdPayload(sa);
  return sa.localId!;
}

/** RFC 3947 4: an authenticated message from a new port (the peer floated to 4500) moves the SA there. */
export function followPeer(sa: IkeSaV1, local: Endpoint, remote: Endpoint): void {
  if (sa.remote.address === remote.address && sa.remote.port === remote.port && sa.local.port === local.port && sa.local.address === local.address) return;
  sa.log.info(`${sa.tag}: peer now at ${remote.address}[${remote.port}] (was ${sa.remote.address}[${sa.remote.port}]), local ${local.address}[${local.port}]`);
  sa.remote = { ...remote };
  sa.local = { ...local };
}
