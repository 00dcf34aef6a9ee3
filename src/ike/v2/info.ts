/**
 * INFORMATIONAL exchanges (RFC 7296 1.4): deleting CHILD_SAs and the IKE SA
 * (1.4.1), error notifications, and empty requests as liveness checks (2.4).
 */
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../../wire/ikev2/constants.js';
import type { DeletePayload, Payload } from '../../wire/ikev2/types.js';
import { spiHex } from './child-sa.js';
import { peerDeletedDuringIkeCollision, removeChild } from './rekey-collisions.js';
import type { V2Context } from './context.js';
import type { IkeSaV2 } from './ike-sa.js';
import { notifyName } from './init.js';

const spiBuf = (spi: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(spi >>> 0); return b; };

export async function handleInformationalRequest(ctx: V2Context, sa: IkeSaV2, messageId: number, payloads: Payload[]): Promise<void> {
  const deletes = payloads.filter((p): p is DeletePayload => p.type === PayloadType.DELETE);
  // 1.4.1: deleting the IKE SA takes its CHILD_SAs with it; the response is empty.
  if (deletes.some((d) => d.protocol === ProtocolId.IKE)) {
    ctx.log.info(`${sa.tag}: peer deleted the IKE SA`);
    peerDeletedDuringIkeCollision(ctx, sa);
    sa.sendResponse(ExchangeType.INFORMATIONAL, messageId, []);
    await ctx.destroy(sa, 'deleted by peer');
    return;
  }
  const answer: Payload[] = [];
  for (const d of deletes) {
    if (d.protocol !== ProtocolId.ESP && d.protocol !== ProtocolId.AH) continue;
    const ours: Buffer[] = [];
    for (const spi of d.spis) {
      if (spi.length !== 4) continue;
      // The peer names its inbound SPI, which is our outbound one.
      const child = sa.children.find((c) => c.spiOut === spi.readUInt32BE(0));
      if (!child) { ctx.log.info(`${sa.tag}: peer deleted unknown CHILD_SA SPI ${spi.toString('hex')}`); continue; }
      ctx.log.info(`${sa.tag}: peer deleted CHILD_SA ${child.config.name}{${child.uniqueId}} ${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o`);
      await removeChild(ctx, sa, child);
      ours.push(spiBuf(child.spiIn));
    }
    if (ours.length) answer.push({ type: PayloadType.DELETE, critical: false, protocol: d.protocol, spiSize: 4, spis: ours });
  }
  for (const n of payloads) {
    if (n.type === PayloadType.NOTIFY && n.notifyType < 16384) {
      ctx.log.warn(`${sa.tag}: peer reports ${notifyName(n.notifyType)}`);
    }
  }
  sa.sendResponse(ExchangeType.INFORMATIONAL, messageId, answer);
  if (payloads.some((n) => n.type === PayloadType.NOTIFY && n.notifyType === NotifyType.AUTHENTICATION_FAILED)) {
    await ctx.destroy(sa, 'peer reported AUTHENTICATION_FAILED');
  }
}

/** 1.4.1: ask the peer to delete the IKE SA; we drop it when it answers or when retransmission gives up. */
export function deleteIkeSa(ctx: V2Context, sa: IkeSaV2, why: string): Promise<void> {
  return new Promise((resolve) => {
    if (sa.state !== 'ESTABLISHED') { void ctx.destroy(sa, why).then(resolve); return; }
    sa.setState('DELETING', why);
    sa.onGiveUp = () => { void ctx.destroy(sa, `${why}; peer did not confirm`).then(resolve); };
    sa.request(ExchangeType.INFORMATIONAL, [{ type: PayloadType.DELETE, critical: false, protocol: ProtocolId.IKE, spiSize: 0, spis: [] }], async () => {
      await ctx.destroy(sa, why);
      resolve();
    });
  });
}

/** 2.4: an empty INFORMATIONAL request; an answer proves the peer is alive. */
export function livenessCheck(sa: IkeSaV2, onAnswer: () => void): void {
  sa.request(ExchangeType.INFORMATIONAL, [], async () => onAnswer());
}
