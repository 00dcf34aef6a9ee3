/**
 * Informational exchanges (RFC 2409 5.7; RFC 2408 3.14, 3.15, 4.8):
 * HDR*, HASH(1), N/D. Deletes of the ISAKMP SA and of IPsec SAs in both
 * directions, error notifications, and Dead Peer Detection (RFC 3706:
 * R-U-THERE / R-U-THERE-ACK with sequence numbers). Informationals are
 * one-way: nothing is retransmitted and nothing answers a delete.
 */
import { v1InformationalHash } from '../../crypto/ikev1/index.js';
import { safeEqual } from '../../util/bytes.js';
import { StyxError } from '../../util/errors.js';
import {
  Doi, V1ExchangeType, V1NotifyType, V1PayloadType, V1ProtocolId, V1_NOTIFY_ERROR_MAX, checkV1Message, decodeV1PayloadChain,
  encodeV1PayloadChain, findV1Payloads, isV1ErrorNotify, nameOf, splitV1Hash,
  type IsakmpMessage, type V1NotifyPayload, type V1Payload,
} from '../../wire/ikev1/index.js';
import { installOutbound, spiHex, uninstallChild, type ChildSa } from '../v2/child-sa.js';
import type { V1Context } from './context.js';
import type { IkeSaV1 } from './ike-sa.js';
import { quickRefused } from './quick.js';
import { handOver, ownerOf, withPeer } from './rekey.js';

const INFO = V1ExchangeType.INFORMATIONAL;
const spiBuf = (spi: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(spi >>> 0); return b; };

/** RFC 2409 5.7: a protected Informational with a fresh message ID. */
export async function sendInformational(ctx: V1Context, sa: IkeSaV1, payloads: V1Payload[]): Promise<void> {
  if (!sa.keys || sa.state === 'DESTROYED') return;
  const mid = sa.newMessageId();
  const rest = encodeV1PayloadChain(payloads).bytes;
  const hash = v1InformationalHash(sa.hashId, sa.keys.skeyidA, mid, rest);
  sa.send(mid, sa.encodeEncrypted(INFO, mid, [{ type: V1PayloadType.HASH, data: hash }, ...payloads]), 'Informational', false);
  sa.forget(mid);
}

/** RFC 3706 5: DPD notifies name the ISAKMP SA by its cookie pair and carry a 32-bit sequence number. */
function dpdNotify(sa: IkeSaV1, type: number, seq: number): V1NotifyPayload {
  const data = Buffer.alloc(4);
  data.writeUInt32BE(seq >>> 0);
  return { type: V1PayloadType.N, doi: Doi.IPSEC, protocol: V1ProtocolId.ISAKMP, spi: sa.cookies, notifyType: type, data };
}

export async function sendDpd(ctx: V1Context, sa: IkeSaV1): Promise<void> {
  const seq = sa.dpd.seqOut;
  sa.dpd.seqOut = (sa.dpd.seqOut + 1) >>> 0 || 1;
  sa.dpd.outstanding++;
  ctx.counters.dpdSent++;
  ctx.log.debug(`${sa.tag}: DPD: sending R-U-THERE ${seq}`);
  await sendInformational(ctx, sa, [dpdNotify(sa, V1NotifyType.R_U_THERE, seq)]);
}

/**
 * Tells the peer the CHILD_SA is gone (naming our inbound SPI, RFC 2408 3.15)
 * and removes it here. The delete goes over the ISAKMP SA that owns the pair
 * now, the newest one after a phase 1 rekey.
 */
export async function deleteChildV1(ctx: V1Context, sa: IkeSaV1, child: ChildSa, why: string): Promise<void> {
  const via = ownerOf(ctx, sa, child) ?? sa;
  await sendInformational(ctx, via, [{ type: V1PayloadType.D, doi: Doi.IPSEC, protocol: V1ProtocolId.IPSEC_ESP, spiSize: 4, spis: [spiBuf(child.spiIn)] }]);
  await removeChild(ctx, via, child, why);
}

/** How long the inbound SA of a replaced pair outlives it, for packets the peer sent before it switched. */
const INBOUND_LINGER_MS = 2000;

/**
 * Takes a pair out of its ISAKMP SA and the data plane. A replaced one keeps
 * its inbound SA a little longer, and its replacement, if still waiting,
 * starts sending now (make-before-break).
 */
export async function removeChild(ctx: V1Context, sa: IkeSaV1, child: ChildSa, why: string): Promise<void> {
  const owner = ownerOf(ctx, sa, child) ?? sa;
  owner.children = owner.children.filter((c) => c !== child);
  const heirs = withPeer(ctx, owner).flatMap((s) => s.children.filter((c) => c.replaces === child).map((c) => ({ s, c })));
  const linger = heirs.length > 0 || child.state === 'REKEYED';
  try {
    await uninstallChild(ctx.dp, child, owner.local, owner.remote, `${owner.conn.name}/${child.config.name}`,
      linger ? (remove) => { ctx.clock.setTimeout(remove, INBOUND_LINGER_MS); } : undefined);
  } catch (e) {
    ctx.log.error(`${owner.tag}: removing CHILD_SA ${child.config.name} from the data plane failed: ${(e as Error).message}`);
  }
  ctx.log.info(`${owner.tag}: CHILD_SA ${child.config.name}{${child.uniqueId}} ${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o deleted: ${why}`);
  for (const h of heirs) await switchOutbound(ctx, h.s, h.c);
}

/** The pair starts sending: its outbound SA and policies go in (the newest policy wins in the data plane). */
export async function switchOutbound(ctx: V1Context, sa: IkeSaV1, child: ChildSa): Promise<void> {
  child.replaces = null;
  if (child.state !== 'INSTALLED' || child.outboundInstalled) return;
  try {
    await installOutbound(ctx.dp, child, sa.local, sa.remote, `${sa.conn.name}/${child.config.name}`);
    ctx.log.debug(`${sa.tag}: CHILD_SA ${child.config.name}{${child.uniqueId}} now sends with SPI ${spiHex(child.spiOut)}`);
  } catch (e) {
    ctx.log.error(`${sa.tag}: installing the outbound SA of CHILD_SA ${child.config.name}{${child.uniqueId}}: ${(e as Error).message}`);
  }
}

/**
 * Deleting the ISAKMP SA: the IPsec SAs first, then the ISAKMP SA itself,
 * each in its own Informational, then everything here. No answer comes.
 */
export async function deleteIsakmp(ctx: V1Context, sa: IkeSaV1, why: string): Promise<void> {
  if (sa.state === 'ESTABLISHED' && sa.keys) {
    sa.setState('DELETING', why);
    if (sa.children.length) {
      await sendInformational(ctx, sa, [{ type: V1PayloadType.D, doi: Doi.IPSEC, protocol: V1ProtocolId.IPSEC_ESP, spiSize: 4, spis: sa.children.map((c) => spiBuf(c.spiIn)) }]);
    }
    await sendInformational(ctx, sa, [{ type: V1PayloadType.D, doi: Doi.IPSEC, protocol: V1ProtocolId.ISAKMP, spiSize: 16, spis: [sa.cookies] }]);
  }
  await ctx.destroy(sa, why);
}

/**
 * Decrypts and checks an Informational. Before phase 1 has keys, only a
 * plaintext error notification is meaningful (RFC 2408 4.8); it ends an
 * exchange we started, since that is all the peer can tell us then.
 */
export async function handleInformational(ctx: V1Context, sa: IkeSaV1, msg: IsakmpMessage, raw: Buffer): Promise<void> {
  const mid = msg.header.messageId;
  if (!msg.encrypted) {
    const err = msg.payloads.find(isV1ErrorNotify);
    if (sa.state === 'CONNECTING' && sa.initiator && !sa.keys && err) {
      ctx.log.warn(`${sa.tag}: peer answered ${nameOf(V1NotifyType, err.notifyType)} (unprotected Informational)`);
      await ctx.destroy(sa, `peer sent ${nameOf(V1NotifyType, err.notifyType)}`);
      return;
    }
    ctx.counters.malformed++;
    ctx.log.info(`${sa.tag}: dropped an unprotected Informational${err ? ` (${nameOf(V1NotifyType, err.notifyType)})` : ''}`);
    return;
  }
  let payloads: V1Payload[];
  try {
    const plain = sa.decrypt(msg);
    const { hash, rest } = splitV1Hash(msg.firstPayload, plain);
    if (!safeEqual(hash, v1InformationalHash(sa.hashId, sa.keys!.skeyidA, mid, rest))) {
      ctx.counters.integrityFailures++;
      ctx.log.info(`${sa.tag}: dropped Informational ${mid.toString(16)}: HASH(1) does not verify`);
      return;
    }
    payloads = decodeV1PayloadChain(msg.firstPayload, plain);
    checkV1Message(INFO, 1, true, payloads);
  } catch (e) {
    if (!(e instanceof StyxError)) throw e;
    if (e.code === 'ERR_INTEGRITY') ctx.counters.integrityFailures++; else ctx.counters.malformed++;
    ctx.log.info(`${sa.tag}: dropped Informational ${mid.toString(16)}: ${e.message}`);
    return;
  } finally {
    sa.iv?.forget(mid);
  }
  // Before anything is answered (an R-U-THERE): the answer goes to where the peer is now.
  sa.authenticated();
  for (const n of findV1Payloads(payloads, V1PayloadType.N)) await onNotify(ctx, sa, n);
  for (const d of findV1Payloads(payloads, V1PayloadType.D)) {
    if (d.protocol === V1ProtocolId.ISAKMP) {
      if (!d.spis.some((s) => s.equals(sa.cookies))) { ctx.log.info(`${sa.tag}: peer deleted an ISAKMP SA that is not this one: ignored`); continue; }
      // The IPsec SAs outlive it when a newer ISAKMP SA with the peer can take them (a rekey).
      const heir = handOver(ctx, sa);
      ctx.log.info(`${sa.tag}: peer deleted the ISAKMP SA${heir ? `; its IPsec SAs stay with ${heir.tag}` : ''}`);
      await ctx.destroy(sa, 'deleted by peer');
      return;
    }
    if (d.protocol !== V1ProtocolId.IPSEC_ESP) { ctx.log.info(`${sa.tag}: peer deleted protocol ${d.protocol} SAs styx does not have`); continue; }
    // Any ISAKMP SA with the peer may carry the delete of any of its IPsec SAs (they are not tied to one).
    const all = withPeer(ctx, sa).flatMap((s) => s.children);
    for (const spi of d.spis) {
      const v = spi.readUInt32BE(0);
      // The peer names its inbound SPI, our outbound one; some name ours, which is unambiguous too.
      const child = all.find((c) => c.spiOut === v) ?? all.find((c) => c.spiIn === v);
      if (!child) { ctx.log.info(`${sa.tag}: peer deleted unknown IPsec SA ${spi.toString('hex')}`); continue; }
      ctx.log.info(`${sa.tag}: peer deleted CHILD_SA ${child.config.name}{${child.uniqueId}} ${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o`);
      await removeChild(ctx, sa, child, 'deleted by peer');
    }
  }
}

async function onNotify(ctx: V1Context, sa: IkeSaV1, n: V1NotifyPayload): Promise<void> {
  switch (n.notifyType) {
    case V1NotifyType.R_U_THERE: {
      if (n.data.length !== 4) { ctx.log.info(`${sa.tag}: R-U-THERE with ${n.data.length} bytes of sequence number: ignored`); return; }
      const seq = n.data.readUInt32BE(0);
      sa.dpd.seqIn = seq;
      ctx.log.debug(`${sa.tag}: DPD: answering R-U-THERE ${seq}`);
      await sendInformational(ctx, sa, [dpdNotify(sa, V1NotifyType.R_U_THERE_ACK, seq)]);
      return;
    }
    case V1NotifyType.R_U_THERE_ACK: {
      const seq = n.data.length === 4 ? n.data.readUInt32BE(0) : -1;
      // RFC 3706 5.4: an ACK must echo a sequence number we sent and that is still unanswered.
      const age = (sa.dpd.seqOut - seq) >>> 0;
      if (seq < 0 || age === 0 || age > Math.max(1, sa.dpd.outstanding)) { ctx.log.info(`${sa.tag}: DPD: R-U-THERE-ACK ${seq} answers nothing outstanding: ignored`); return; }
      sa.dpd.outstanding = 0;
      ctx.log.debug(`${sa.tag}: DPD: R-U-THERE-ACK ${seq}`);
      return;
    }
    case V1NotifyType.INITIAL_CONTACT:
      return;
    default:
      if (n.notifyType <= V1_NOTIFY_ERROR_MAX) {
        const name = nameOf(V1NotifyType, n.notifyType);
        ctx.log.warn(`${sa.tag}: peer reports ${name}${n.spi.length ? ` for SPI ${n.spi.toString('hex')}` : ''}`);
        if (n.protocol === V1ProtocolId.IPSEC_ESP) await quickRefused(ctx, sa, n.spi, name);
        // A phase 1 the peer refuses (e.g. AUTHENTICATION-FAILED after MM5) ends now, not after retransmissions.
        else if (sa.state === 'CONNECTING') await ctx.destroy(sa, `peer refused phase 1: ${name}`);
        return;
      }
      ctx.log.debug(`${sa.tag}: peer sent status ${nameOf(V1NotifyType, n.notifyType)}`);
  }
}
