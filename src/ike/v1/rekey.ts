/**
 * Phase 1 rekeying in IKEv1 (RFC 2409 4; RFC 2408 2.5.3 on SA ownership):
 * IKEv1 has no exchange that rekeys an ISAKMP SA in place, so either side
 * runs a new Main or Aggressive Mode with the same peer before the old SA
 * expires. IPsec SAs do not belong to the ISAKMP SA that negotiated them
 * (RFC 2409 5.5 only needs *an* ISAKMP SA for Quick Mode and deletes), so the
 * newest established ISAKMP SA with a peer adopts them, and later Quick Mode
 * rekeys and deletes go over it. The side that started the new phase 1
 * deletes the old ISAKMP SA once the new one is up (RFC 2408 3.15); an old
 * SA the peer replaced goes when the peer deletes it, or at its own rekey
 * time, whichever is first.
 *
 * IKEv1 has no rule for both sides rekeying at once (RFC 7296 2.8.1 is
 * IKEv2's); styx applies the same idea with what both sides see alike: of
 * two new ISAKMP SAs negotiated at the same time, the one with the higher
 * cookies keeps the IPsec SAs and the side that started the other deletes it.
 */
import type { ConnectionConfig } from '../../config/model.js';
import type { Endpoint } from '../../dataplane/api.js';
import { spiHex, type ChildSa } from '../v2/child-sa.js';
import type { V1Context } from './context.js';
import type { IkeSaV1 } from './ike-sa.js';
import { deleteIsakmp } from './info.js';
import { quickStates } from './quick.js';

/** How long a replaced ISAKMP SA may stay for Quick Modes still running over it. */
const RETIRE_WAIT_MS = 10_000;
const RETIRE_POLL_MS = 250;

/** What the rekey needs from the manager beyond V1Context: starting a phase 1 as initiator. */
export interface V1RekeyHost extends V1Context {
  startPhase1(conn: ConnectionConfig, local: Endpoint, remote: Endpoint, replaces: IkeSaV1 | null): IkeSaV1;
}

/** The ISAKMP SAs with this SA's peer for this connection, itself included. */
export function withPeer(ctx: V1Context, sa: IkeSaV1): IkeSaV1[] {
  return [sa, ...ctx.siblings(sa)];
}

/** The ISAKMP SA that owns an IPsec SA now: it may have been adopted since a Quick Mode started. */
export function ownerOf(ctx: V1Context, sa: IkeSaV1, child: ChildSa): IkeSaV1 | undefined {
  return withPeer(ctx, sa).find((s) => s.children.includes(child));
}

/** Whether two ISAKMP SAs were both negotiated to replace the same one (a collision). */
function collide(a: IkeSaV1, b: IkeSaV1): boolean {
  return a.predecessor !== null && a.predecessor === b.predecessor;
}

/**
 * Whether `a` should own the IPsec SAs rather than `b`: a replacement over
 * what it replaces, in a collision the higher cookies, else the later one.
 */
function better(a: IkeSaV1, b: IkeSaV1): boolean {
  if (a.predecessor === b) return true;
  if (b.predecessor === a) return false;
  if (collide(a, b)) return Buffer.compare(a.cookies, b.cookies) > 0;
  return (a.establishedAt ?? -1) > (b.establishedAt ?? -1);
}

/** For a phase 1 the peer starts: the ISAKMP SA it presumably replaces (IKEv1 does not say). */
export function predecessorFor(ctx: V1Context, sa: IkeSaV1): IkeSaV1 | null {
  return bestOf(ctx.siblings(sa)) ?? null;
}

/** The established ISAKMP SA with the peer that should own the IPsec SAs, if that is not `sa`. */
export function newerSa(ctx: V1Context, sa: IkeSaV1): IkeSaV1 | undefined {
  const best = bestOf(withPeer(ctx, sa));
  return best && best !== sa && (sa.state !== 'ESTABLISHED' || better(best, sa)) ? best : undefined;
}

function bestOf(sas: IkeSaV1[]): IkeSaV1 | undefined {
  return sas.filter((s) => s.state === 'ESTABLISHED').reduce<IkeSaV1 | undefined>((a, b) => (!a || better(b, a) ? b : a), undefined);
}

/**
 * Seconds after establishment at which to start a new phase 1: the
 * connection's rekey_time, but never past 90% of a lifetime the peer made
 * shorter (RESPONDER-LIFETIME, RFC 2407 4.6.3.1, or its chosen transform).
 * Zero means no rekey.
 */
export function rekeySeconds(sa: IkeSaV1): number {
  const want = sa.conn.rekeyTime;
  if (want <= 0) return 0;
  return sa.lifetime < sa.conn.lifetime ? Math.max(1, Math.min(want, Math.floor(sa.lifetime * 0.9))) : want;
}

/** Moves IPsec SAs between ISAKMP SAs; their data-plane endpoints follow if the two SAs differ (RFC 3947 4). */
export function adoptChildren(ctx: V1Context, from: IkeSaV1, to: IkeSaV1): number {
  const moved = from.children.filter((c) => c.state !== 'DELETED');
  from.children = [];
  if (moved.length === 0) return 0;
  to.children.push(...moved);
  const sameEnds = from.local.address === to.local.address && from.local.port === to.local.port && from.remote.address === to.remote.address && from.remote.port === to.remote.port;
  for (const c of moved) {
    ctx.log.info(`${to.tag}: CHILD_SA ${c.config.name}{${c.uniqueId}} ${spiHex(c.spiIn)}_i ${spiHex(c.spiOut)}_o adopted from ${from.tag}`);
    if (sameEnds) continue;
    if (c.outboundInstalled) void ctx.dp.updateSa(c.spiOut, 'out', { src: to.local, dst: to.remote }).catch((e: Error) => ctx.log.warn(`${to.tag}: moving CHILD_SA ${spiHex(c.spiOut)}_o: ${e.message}`));
    void ctx.dp.updateSa(c.spiIn, 'in', { src: to.remote, dst: to.local }).catch((e: Error) => ctx.log.warn(`${to.tag}: moving CHILD_SA ${spiHex(c.spiIn)}_i: ${e.message}`));
  }
  return moved.length;
}

/**
 * Before an ISAKMP SA goes without taking its IPsec SAs along (lifetime,
 * the peer's delete, superseded): a newer ISAKMP SA with the peer adopts
 * them. Returns that SA, or undefined when there is none and they go too.
 */
export function handOver(ctx: V1Context, sa: IkeSaV1): IkeSaV1 | undefined {
  const heir = newerSa(ctx, sa);
  if (heir) adoptChildren(ctx, sa, heir);
  return heir;
}

/**
 * A new ISAKMP SA is up, in either role: it adopts the IPsec SAs of every
 * older one with the same peer. If we started it to replace one, we delete
 * that one now (RFC 2408 3.15, an Informational DELETE); the peer's old
 * ones wait for the peer's delete.
 */
export async function isakmpUp(ctx: V1Context, next: IkeSaV1): Promise<void> {
  const all = withPeer(ctx, next);
  const best = bestOf(all) ?? next;
  for (const s of all) {
    if (s === best || (s.state !== 'ESTABLISHED' && s.state !== 'DELETING')) continue;
    const n = adoptChildren(ctx, s, best);
    if (s === next.replaces) continue;
    if (collide(s, best)) {
      // A collision: the side that started the loser deletes it.
      ctx.log.info(`${s.tag}: phase 1 rekey collision with ${best.tag}, which has the higher cookies and keeps the IPsec SAs${s.initiator ? '; deleting ours' : ''}`);
      if (s.initiator) retire(ctx, s, best, 0);
    } else {
      ctx.log.info(`${s.tag}: replaced by ${best.tag}${best.initiator ? '' : ', which the peer started'}${n ? `; ${n} IPsec SA(s) moved` : ''}`);
    }
  }
  const old = next.replaces;
  next.replaces = null;
  if (!old || old.state === 'DESTROYED') return;
  ctx.log.info(`${old.tag}: ISAKMP SA rekeyed into ${next.tag}`);
  retire(ctx, old, best, 0);
}

/**
 * Deletes a replaced ISAKMP SA once no Quick Mode runs over it any more: the
 * peer drops an exchange with the SA, and a pair it would have made (or a
 * rekey it would have done) would be lost. Pairs such an exchange made go to
 * the new SA first.
 */
function retire(ctx: V1Context, old: IkeSaV1, next: IkeSaV1, waited: number): void {
  if (old.state === 'DESTROYED' || (waited === 0 && old.state === 'DELETING')) return;
  if (quickStates(old).size > 0 && waited < RETIRE_WAIT_MS) {
    if (waited === 0) ctx.log.info(`${old.tag}: waiting for ${quickStates(old).size} Quick Mode(s) before deleting it`);
    ctx.clock.setTimeout(() => retire(ctx, old, next, waited + RETIRE_POLL_MS), RETIRE_POLL_MS);
    return;
  }
  void old.enqueue(async () => {
    handOver(ctx, old);
    await deleteIsakmp(ctx, old, `rekeyed into ${next.tag}`);
  });
}

/**
 * The rekey timer of an ISAKMP SA fired: start a new phase 1 with the same
 * peer, from where the SA talks now (after a float both ends are on the
 * NAT-T port, RFC 3947 4, and the NAT's port 500 mapping may be gone). An
 * SA a newer one already replaced (the peer rekeyed first, or both did at
 * once) is deleted instead, its IPsec SAs handed over.
 */
export async function rekeyIsakmp(host: V1RekeyHost, sa: IkeSaV1): Promise<void> {
  if (sa.state !== 'ESTABLISHED') return;
  const heir = newerSa(host, sa);
  if (heir) {
    handOver(host, sa);
    await deleteIsakmp(host, sa, `superseded by ${heir.tag}`);
    return;
  }
  const running = host.siblings(sa).find((s) => s.state === 'CONNECTING');
  if (running) { host.log.info(`${sa.tag}: rekey due, but phase 1 ${running.tag} with the peer is already under way`); return; }
  try {
    const next = host.startPhase1(sa.conn, sa.local, sa.remote, sa);
    host.log.info(`${sa.tag}: rekeying ISAKMP SA: new phase 1 ${next.tag}`);
  } catch (e) {
    host.log.warn(`${sa.tag}: rekeying ISAKMP SA failed to start: ${(e as Error).message}`);
  }
}
