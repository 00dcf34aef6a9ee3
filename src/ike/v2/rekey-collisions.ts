/**
 * What happens after a rekey, and when both peers rekey the same SA at once
 * (RFC 7296 2.8.1): both exchanges complete, and the SA created with the
 * lowest of the four nonces is redundant and closed by the side that
 * created it. The survivor replaces the old SA, which the winner deletes.
 */
import { ExchangeType, PayloadType, ProtocolId } from '../../wire/ikev2/constants.js';
import { installOutbound, spiHex, uninstallChild, type ChildSa } from './child-sa.js';
import type { V2Context } from './context.js';
import type { IkeSaV2 } from './ike-sa.js';

/** How long the loser of an IKE rekey collision has to close its redundant SA before we drop it. */
const ORPHAN_GRACE_MS = 5000;

const lowest = (...nonces: Buffer[]): Buffer => nonces.reduce((a, b) => (Buffer.compare(a, b) <= 0 ? a : b));
const spiBuf = (spi: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(spi >>> 0); return b; };

/** Whether the exchange that made `mine` holds the lowest nonce of both exchanges, making `mine` redundant. */
export function loses(mine: { ni: Buffer; nr: Buffer }, theirs: { ni: Buffer; nr: Buffer }): boolean {
  const low = lowest(mine.ni, mine.nr, theirs.ni, theirs.nr);
  return low === mine.ni || low === mine.nr;
}

/** 1.4.1: asks the peer to delete a CHILD_SA; it is removed here when the peer confirms (or the IKE SA goes). */
export function deleteChild(ctx: V2Context, sa: IkeSaV2, child: ChildSa, why: string): void {
  if (child.state === 'DELETING' || child.state === 'DELETED') return;
  child.state = 'DELETING';
  ctx.log.info(`${sa.tag}: deleting CHILD_SA ${child.config.name}{${child.uniqueId}} ${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o: ${why}`);
  sa.request(ExchangeType.INFORMATIONAL, [{ type: PayloadType.DELETE, critical: false, protocol: ProtocolId.ESP, spiSize: 4, spis: [spiBuf(child.spiIn)] }], async () => {
    await removeChild(ctx, sa, child);
    ctx.log.info(`${sa.tag}: CHILD_SA ${child.config.name}{${child.uniqueId}} deleted`);
  });
}

/** How long the inbound SA of a replaced CHILD_SA outlives it, for packets already in flight. */
const INBOUND_LINGER_MS = 2000;

/**
 * Takes a deleted CHILD_SA out of the data plane and the IKE SA. A replaced
 * one keeps its inbound SA a little longer, and its replacement, if it was
 * waiting, starts sending now (make-before-break).
 */
export async function removeChild(ctx: V2Context, sa: IkeSaV2, child: ChildSa): Promise<void> {
  const replacements = sa.children.filter((c) => c.replaces === child);
  // The replacement's outbound SA and policies go in before the old ones come out, so no
  // packet meets a moment without a policy (or, in the userspace data plane, without a route).
  for (const c of replacements) await switchOutbound(ctx, c);
  await uninstallChild(ctx.dp, child, sa.local, sa.remote, `${sa.conn.name}/${child.config.name}`,
    replacements.length ? (remove) => { ctx.clock.setTimeout(remove, INBOUND_LINGER_MS); } : undefined);
  sa.children = sa.children.filter((c) => c !== child);
}

/** The replacement of a rekeyed CHILD_SA starts sending (its outbound SA and policies go in). */
export async function switchOutbound(ctx: V2Context, child: ChildSa): Promise<void> {
  child.replaces = null;
  const owner = ctx.ownerOf(child);
  if (!owner || child.state !== 'INSTALLED' || child.outboundInstalled || child.redundant) return;
  try {
    await installOutbound(ctx.dp, child, owner.local, owner.remote, `${owner.conn.name}/${child.config.name}`);
    ctx.log.debug(`${owner.tag}: CHILD_SA ${child.config.name}{${child.uniqueId}} now sends with SPI ${spiHex(child.spiOut)}`);
  } catch (e) {
    ctx.log.error(`${owner.tag}: installing the outbound SA of CHILD_SA ${child.config.name}{${child.uniqueId}}: ${(e as Error).message}`);
  }
}

/** Our rekey of `old` produced `fresh` (1.3.3). */
export async function childRekeyDone(ctx: V2Context, sa: IkeSaV2, old: ChildSa, fresh: ChildSa): Promise<void> {
  const theirs = old.peerReplacement;
  if (theirs && theirs.nonces && fresh.nonces) {
    if (loses(fresh.nonces, theirs.nonces)) {
      ctx.log.info(`${sa.tag}: CHILD_SA rekey collision on ${old.config.name}{${old.uniqueId}}: ours {${fresh.uniqueId}} has the lowest nonce and goes, {${theirs.uniqueId}} stays`);
      fresh.redundant = true;
      old.state = 'REKEYED';
      deleteChild(ctx, sa, fresh, 'redundant after a rekey collision (2.8.1)');
    } else {
      ctx.log.info(`${sa.tag}: CHILD_SA rekey collision on ${old.config.name}{${old.uniqueId}}: ours {${fresh.uniqueId}} stays, the peer closes {${theirs.uniqueId}}`);
      theirs.redundant = true;
      old.state = 'REKEYED';
      deleteChild(ctx, sa, old, `rekeyed into {${fresh.uniqueId}}`);
    }
    return;
  }
  // The peer deleted the old SA while our rekey was in flight: the new one simply takes over.
  if (old.state === 'DELETED' || old.state === 'DELETING') return;
  old.state = 'REKEYED';
  deleteChild(ctx, sa, old, `rekeyed into {${fresh.uniqueId}}`);
}

/** A new IKE SA from a rekey (1.3.2): the CHILD_SAs move to it, and the old one is deleted by the rekey's initiator. */
export async function ikeRekeyDone(ctx: V2Context, old: IkeSaV2, next: IkeSaV2): Promise<void> {
  ctx.register(next);
  if (!next.initiator && old.rekeyingIke) {
    // Our own IKE rekey is in flight too: decide when it completes.
    old.ikeReplacement = next;
    ctx.log.info(`${old.tag}: peer rekeyed the IKE SA while we did too: ${next.tag} waits for the collision to resolve`);
    return;
  }
  const theirs = old.ikeReplacement;
  let survivor = next;
  if (next.initiator && theirs) {
    if (loses({ ni: next.nonceI, nr: next.nonceR }, { ni: theirs.nonceI, nr: theirs.nonceR })) {
      ctx.log.info(`${old.tag}: IKE rekey collision: ours ${next.tag} has the lowest nonce and goes`);
      survivor = theirs;
      moveChildren(old, survivor);
      ctx.ikeUp(survivor);
      retire(ctx, next, 'redundant after an IKE rekey collision (2.8.1)');
      return; // the peer, the winner, deletes the old SA
    }
    ctx.log.info(`${old.tag}: IKE rekey collision: ours ${next.tag} stays, the peer closes ${theirs.tag}`);
    // A peer that met our delete of the old SA before our answer may abandon its rekey instead of
    // closing the SA it created; then nobody would: drop our copy once it had time to do so.
    next.timers.push(ctx.clock.setTimeout(() => {
      if (theirs.state === 'DESTROYED' || theirs.children.length > 0) return;
      ctx.log.info(`${theirs.tag}: the peer did not close this redundant IKE SA; dropping it`);
      void ctx.destroy(theirs, 'redundant after an IKE rekey collision; the peer abandoned it');
    }, ORPHAN_GRACE_MS));
  }
  moveChildren(old, survivor);
  ctx.log.info(`${old.tag}: IKE SA rekeyed into ${survivor.tag}`);
  ctx.ikeUp(survivor);
  if (survivor.initiator && survivor === next) retire(ctx, old, `rekeyed into ${survivor.tag}`);
  else old.setState('DELETING', `rekeyed by peer into ${survivor.tag}`);
}

/**
 * The peer deletes the old IKE SA while our rekey of it is unanswered and its
 * own rekey waits for the collision to resolve (2.8.1): the peer deletes the
 * old SA only as the winner, so its new SA survives. Ours is never completed
 * here; the peer closes the copy it made of it.
 */
export function peerDeletedDuringIkeCollision(ctx: V2Context, old: IkeSaV2): void {
  const theirs = old.ikeReplacement;
  if (!old.rekeyingIke || !theirs || theirs.state !== 'ESTABLISHED') return;
  old.ikeReplacement = null;
  ctx.log.info(`${old.tag}: IKE rekey collision: the peer deleted this IKE SA before answering our rekey, so its ${theirs.tag} stays`);
  moveChildren(old, theirs);
  ctx.ikeUp(theirs);
}

function moveChildren(from: IkeSaV2, to: IkeSaV2): void {
  to.children.push(...from.children);
  from.children = [];
}

/** Deletes an IKE SA that no longer owns CHILD_SAs (1.4.1). */
function retire(ctx: V2Context, sa: IkeSaV2, why: string): void {
  sa.setState('DELETING', why);
  sa.onGiveUp = () => { void ctx.destroy(sa, `${why}; peer did not confirm the delete`); };
  sa.request(ExchangeType.INFORMATIONAL, [{ type: PayloadType.DELETE, critical: false, protocol: ProtocolId.IKE, spiSize: 0, spis: [] }], async () => {
    await ctx.destroy(sa, why);
  });
}
