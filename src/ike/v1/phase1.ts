/**
 * What Main Mode and Aggressive Mode (RFC 2409 5) share: vendor IDs
 * (RFC 3947 3.1, RFC 3706), NAT discovery (RFC 3947 3.2) and floating to
 * port 4500 (RFC 3947 4), lifetimes (RFC 2407 4.5.4), PSK lookup, the
 * phase 1 keys (RFC 2409 5, appendix B) and HASH_I/HASH_R, and the moment
 * the ISAKMP SA becomes established.
 */
import { findPsk as findSecretPsk } from '../../config/index.js';
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { ConnectionConfig } from '../../config/model.js';
import {
  V1IvChain, v1Cipher, v1DerivePhase1Keys, v1Digest, v1HashI, v1HashR, type V1Phase1Transcript, type V1SkeyidAuth,
} from '../../crypto/ikev1/index.js';
import type { Endpoint } from '../../dataplane/api.js';
import { ByteReader, ByteWriter, safeEqual } from '../../util/bytes.js';
import { StyxError } from '../../util/errors.js';
import { decodeAttributes, encodeAttributes } from '../../wire/ikev1/sa.js';
import {
  Doi, V1NotifyType, V1PayloadType, V1ProtocolId, V1VendorId, findV1Notify, findV1Payloads,
  lifeAttributes, nameOf, isV1ErrorNotify, readLifeAttributes, type V1Life, type V1NotifyPayload, type V1Payload, type V1VendorIdPayload,
} from '../../wire/ikev1/index.js';
import { configIdText, identityText, localIdentity } from '../identity.js';
import { addrBytes } from '../ts.js';
import type { V1Context } from './context.js';
import type { IkeSaV1 } from './ike-sa.js';
import { idBody, phase1IdPayload } from './ids.js';
import { describePhase1 } from './proposals.js';
import { authHashId, methodText } from './sig.js';

const vid = (hex: string): V1VendorIdPayload => ({ type: V1PayloadType.VID, data: Buffer.from(hex, 'hex') });

/** RFC 3947 3.1 and RFC 3706 5: what styx announces in the first message of each side. */
export function ourVendorIds(): V1Payload[] {
  return [vid(V1VendorId.NAT_T_RFC3947), vid(V1VendorId.DPD)];
}

/** Records which extensions the peer's vendor IDs announce. */
export function readVendorIds(sa: IkeSaV1, payloads: readonly V1Payload[]): void {
  for (const v of findV1Payloads(payloads, V1PayloadType.VID)) {
    const h = v.data.toString('hex');
    if (h === V1VendorId.NAT_T_RFC3947) sa.peer.natt = true;
    if (h === V1VendorId.DPD) sa.peer.dpd = true;
  }
}

/** RFC 3947 3.2: HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash. */
export function natHash(sa: IkeSaV1, ep: Endpoint): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(ep.port);
  return v1Digest(sa.hashId, sa.cookieI, sa.cookieR, addrBytes(ep.address), port);
}

/**
 * RFC 3947 3.2: the first NAT-D names the receiver as we send to it, the
 * second ourselves. With forced encapsulation our own hash is random, so the
 * peer sees a NAT and both sides use UDP encapsulation.
 */
export function natPayloads(sa: IkeSaV1): V1Payload[] {
  if (!sa.peer.natt) return [];
  const self = sa.conn.encap ? v1Digest(sa.hashId, randomBytes(32)) : natHash(sa, sa.local);
  return [
    { type: V1PayloadType.NAT_D, draft: false, data: natHash(sa, sa.remote) },
    { type: V1PayloadType.NAT_D, draft: false, data: self },
  ];
}

/** RFC 3947 3.2: compares the peer's NAT-D payloads with the endpoints this message travelled between. */
export function detectNat(sa: IkeSaV1, payloads: readonly V1Payload[], local: Endpoint, remote: Endpoint): void {
  const nd = findV1Payloads(payloads, V1PayloadType.NAT_D);
  if (!sa.peer.natt || nd.length < 2) return;
  sa.nat.local = !nd[0]!.data.equals(natHash(sa, local));
  sa.nat.remote = !nd.slice(1).some((p) => p.data.equals(natHash(sa, remote)));
  if (sa.nat.local || sa.nat.remote) {
    sa.log.info(`${sa.tag}: NAT detected (${[sa.nat.local ? 'local' : '', sa.nat.remote ? 'remote' : ''].filter(Boolean).join(' and ')} side)`);
  } else {
    sa.log.debug(`${sa.tag}: no NAT between ${local.address} and ${remote.address}`);
  }
}

export const natT = (sa: IkeSaV1): boolean => sa.nat.local || sa.nat.remote || (sa.conn.encap && sa.peer.natt);

/** RFC 3947 4: with a NAT, the initiator moves to port 4500 for the rest (from MM5 / AM3 on). */
export function floatToNatT(ctx: V1Context, sa: IkeSaV1): void {
  if (!natT(sa) || sa.local.port === ctx.config().daemon.natPort) return;
  const local = ctx.natTLocal(sa);
  if (!local) { sa.log.warn(`${sa.tag}: NAT detected but no socket on the NAT-T port is bound; staying on ${sa.local.port}`); return; }
  sa.local = local;
  if (sa.remote.port === 500) sa.remote = { address: sa.remote.address, port: ctx.config().daemon.natPort };
  sa.log.info(`${sa.tag}: switching to NAT-T port: ${sa.local.address}[${sa.local.port}] -> ${sa.remote.address}[${sa.remote.port}]`);
}

/** RFC 2407 4.6.3.1: a RESPONDER-LIFETIME notify, its data the life attributes we hold the SA to. */
export function responderLifetime(protocol: number, spi: Buffer, life: V1Life): V1NotifyPayload {
  const w = new ByteWriter();
  encodeAttributes(w, 'RESPONDER-LIFETIME', lifeAttributes(life, protocol === V1ProtocolId.ISAKMP));
  return { type: V1PayloadType.N, doi: Doi.IPSEC, protocol, spi, notifyType: V1NotifyType.RESPONDER_LIFETIME, data: w.finish() };
}

/** The lifetimes a RESPONDER-LIFETIME notify names; null (the notify is ignored) when it does not parse. */
export function responderLifeOf(n: V1NotifyPayload): V1Life | null {
  try {
    return readLifeAttributes(decodeAttributes(new ByteReader(n.data), 'RESPONDER-LIFETIME'), n.protocol === V1ProtocolId.ISAKMP);
  } catch (e) { if (e instanceof StyxError) return null; throw e; }
}

/** Logs error notifications (RFC 2408 3.14.1) and returns the first, if any. */
export function errorNotify(sa: IkeSaV1, payloads: readonly V1Payload[], where: string): V1NotifyPayload | undefined {
  const e = payloads.find(isV1ErrorNotify);
  if (e) sa.log.warn(`${sa.tag}: peer sent ${nameOf(V1NotifyType, e.notifyType)} in ${where}`);
  return e;
}

/** The PSK for a pair of identities (see findSecret for which secret wins). */
export function findPsk(ctx: V1Context, localId: string, remoteId: string): Buffer | null {
  return findSecretPsk(ctx.config().secrets, localId, remoteId);
}

/**
 * The PSK of a connection before the peer's identity is known (Main Mode
 * responder: IDii comes encrypted under a key the PSK makes), taken from the
 * connection's configured remote id, or the peer's address when it takes %any.
 */
export function connectionPsk(ctx: V1Context, conn: ConnectionConfig, local: Endpoint, remote: Endpoint): Buffer | null {
  const me = identityText(localIdentity(conn.local.id, local.address));
  return findPsk(ctx, me, conn.remote.id.type === 'any' ? remote.address : configIdText(conn.remote.id));
}

/** Connections that may answer a peer at this address pair. */
export function candidates(ctx: V1Context, local: Endpoint, remote: Endpoint): ConnectionConfig[] {
  return ctx.config().connections.filter((c) => c.version === 1 && addrMatch(c.localAddrs, local.address) && addrMatch(c.remoteAddrs, remote.address));
}

function addrMatch(list: string[], address: string): boolean {
  return list.length === 0 || list.some((a) => a === '%any' || a === address || (a.includes('/') && inCidr(a, address)));
}

function inCidr(cidr: string, address: string): boolean {
  const [net, bitsText] = cidr.split('/') as [string, string];
  if (isIPv4(net) !== isIPv4(address)) return false;
  const n = addrBytes(net), a = addrBytes(address), bits = Number(bitsText);
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3, m = 0x80 >> (i & 7);
    if ((n[byte]! & m) !== (a[byte]! & m)) return false;
  }
  return true;
}

/**
 * RFC 2409 5 and appendix B: SKEYID*, the cipher key and the first IV, once
 * g^xy and both nonces are known. SKEYID is keyed by the PSK, or with
 * signatures by the nonces alone (5.1).
 */
export function derivePhase1(sa: IkeSaV1, auth: V1SkeyidAuth, gxy: Buffer): void {
  const a = sa.attrs!;
  const cipher = v1Cipher(a.encryption, a.keyLength);
  const keys = v1DerivePhase1Keys({ hashId: a.hash, auth, niB: sa.p1.ni, nrB: sa.p1.nr, gxy, ckyI: sa.cookieI, ckyR: sa.cookieR, keyBytes: cipher.keyBytes });
  sa.cipher = cipher;
  sa.keys = keys;
  sa.iv = new V1IvChain(a.hash, cipher.blockBytes, sa.p1.gxi, sa.p1.gxr);
  sa.p1.psk = auth.method === 'psk' ? auth.psk : null;
  sa.log.secret(() => `${sa.tag}: SKEYID ${keys.skeyid.toString('hex')} SKEYID_d ${keys.skeyidD.toString('hex')} SKEYID_a ${keys.skeyidA.toString('hex')} SKEYID_e ${keys.skeyidE.toString('hex')} ENC_KEY ${keys.encryptionKey.toString('hex')}`);
}

const transcript = (sa: IkeSaV1): V1Phase1Transcript => ({ gxi: sa.p1.gxi, gxr: sa.p1.gxr, ckyI: sa.cookieI, ckyR: sa.cookieR, saiB: sa.p1.saiB });

/**
 * RFC 2409 5: HASH_I over the initiator's ID body, HASH_R over the
 * responder's; sent as they are with PSK, signed with signatures (5.1), and
 * for the ECDSA methods made with the method's own hash (see authHashId).
 */
export function hashI(sa: IkeSaV1, idB: Buffer): Buffer { return v1HashI(authHashId(sa.attrs!), sa.keys!.skeyid, transcript(sa), idB); }
export function hashR(sa: IkeSaV1, idB: Buffer): Buffer { return v1HashR(authHashId(sa.attrs!), sa.keys!.skeyid, transcript(sa), idB); }

/** Our phase 1 ID payload, remembered on the SA. */
export function ourIdPayload(sa: IkeSaV1): V1Payload & { type: typeof V1PayloadType.ID } {
  sa.localId = localIdentity(sa.conn.local.id, sa.local.address);
  return phase1IdPayload(sa.localId);
}

/** Verifies the peer's HASH_I/HASH_R in constant time. */
export function hashMatches(expected: Buffer, got: Buffer): boolean { return safeEqual(expected, got); }

/** RFC 2407 4.6.3.3: INITIAL-CONTACT, an ISAKMP status notify naming this SA's cookies. */
export function initialContact(sa: IkeSaV1): V1NotifyPayload {
  return { type: V1PayloadType.N, doi: Doi.IPSEC, protocol: V1ProtocolId.ISAKMP, spi: sa.cookies, notifyType: V1NotifyType.INITIAL_CONTACT, data: Buffer.alloc(0) };
}

/** Applies a RESPONDER-LIFETIME (phase 1) the peer sent. */
export function applyPeerLifetime(sa: IkeSaV1, payloads: readonly V1Payload[]): void {
  const n = findV1Notify(payloads, V1NotifyType.RESPONDER_LIFETIME);
  if (!n || n.protocol !== V1ProtocolId.ISAKMP) return;
  const s = responderLifeOf(n)?.seconds;
  if (s !== undefined && s > 0 && s < sa.lifetime) {
    sa.log.info(`${sa.tag}: peer shortens the ISAKMP SA lifetime to ${s}s (RESPONDER-LIFETIME)`);
    sa.lifetime = s;
  }
}

/** Phase 1 is done: log once, count, and let the manager start DPD, lifetime and Quick Modes. */
export function established(ctx: V1Context, sa: IkeSaV1, payloads: readonly V1Payload[]): void {
  sa.establishedAt = ctx.clock.now();
  sa.setStep('ESTABLISHED');
  sa.setState('ESTABLISHED', `${sa.aggressive ? 'Aggressive' : 'Main'} Mode, '${identityText(sa.localId!)}' <-> '${identityText(sa.remoteId!)}' with ${methodText(sa.attrs!.authMethod)}, ${describePhase1(sa.attrs!)}, lifetime ${sa.lifetime}s${sa.peer.dpd ? ', peer does DPD' : ''}`);
  ctx.counters.ikeEstablished++;
  // RFC 2407 4.6.3.3: the peer has no other SA with us any more; ours are stale.
  if (findV1Notify(payloads, V1NotifyType.INITIAL_CONTACT)) {
    for (const old of ctx.siblings(sa)) {
      sa.log.info(`${sa.tag}: INITIAL-CONTACT: removing the older ISAKMP SA ${old.tag}`);
      void ctx.destroy(old, 'replaced after INITIAL-CONTACT');
    }
  }
  ctx.ikeUp(sa);
}

export { idBody };
