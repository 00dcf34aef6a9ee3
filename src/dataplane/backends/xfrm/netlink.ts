/**
 * An XFRM netlink socket pair on the styx_tun addon: one socket for
 * requests, each answered by the kernel's acknowledgement or error (matched
 * by sequence number), and one bound to the ACQUIRE and EXPIRE multicast
 * groups for the kernel's events.
 */
import { loadAddon, type NativePoller, type TunAddon } from '../../../tun/native.js';
import { StyxError } from '../../../util/errors.js';
import {
  NETLINK_XFRM, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_REQUEST, XFRMGRP_ACQUIRE, XFRMGRP_EXPIRE, message, parseError, parseMessages,
  type NetlinkMessage,
} from './messages.js';

export interface NetlinkAddon extends TunAddon {
  netlinkOpen(protocol: number, groups: number): number;
  netlinkSend(fd: number, msg: Buffer): void;
  /** A bound UDP socket that bypasses IPsec policies; with natT also the ESP-in-UDP endpoint. */
  ikeSocket(family: 4 | 6, address: string, port: number, natT: boolean): number;
}

export function loadNetlinkAddon(): NetlinkAddon {
  const a = loadAddon() as TunAddon & Partial<NetlinkAddon>;
  if (typeof a.netlinkOpen !== 'function' || typeof a.netlinkSend !== 'function' || typeof a.ikeSocket !== 'function') {
    throw new StyxError('ERR_TUN_ADDON_LOAD', 'the styx_tun addon was built without its netlink functions; rebuild it with `node native/build.mjs`');
  }
  return a as NetlinkAddon;
}

/** A request the kernel refused, with its errno name (EEXIST, ESRCH, ...). */
export class NetlinkError extends StyxError {
  constructor(readonly errno: number, readonly errnoName: string, what: string) {
    super('ERR_NETLINK', `${what}: ${errnoName}`);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 12: 'ENOMEM', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 38: 'ENOSYS', 93: 'EPROTONOSUPPORT', 95: 'EOPNOTSUPP', 97: 'EAFNOSUPPORT', 105: 'ENOBUFS',
};
export const errnoName = (n: number): string => ERRNO_NAMES[n] ?? `errno ${n}`;

/** Largest datagram read at once: the kernel's netlink messages to us are far smaller. */
const SLOT = 65536;
const BATCH = 16;

interface Pending { what: string; resolve: (replies: NetlinkMessage[]) => void; reject: (e: Error) => void; replies: NetlinkMessage[] }

export class XfrmSocket {
  private readonly requestFd: number;
  private readonly eventFd: number;
  private readonly pollers: NativePoller[] = [];
  private seq = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  constructor(private readonly addon: NetlinkAddon, onEvent: (m: NetlinkMessage) => void, onError: (e: Error) => void) {
    this.requestFd = addon.netlinkOpen(NETLINK_XFRM, 0);
    try {
      this.eventFd = addon.netlinkOpen(NETLINK_XFRM, XFRMGRP_ACQUIRE | XFRMGRP_EXPIRE);
    } catch (e) {
      addon.close(this.requestFd);
      throw e;
    }
    const read = (fd: number, each: (m: NetlinkMessage) => void): NativePoller => {
      const arena = Buffer.alloc(SLOT * BATCH), lens = new Uint32Array(BATCH);
      const p = addon.pollStart(fd, arena, lens, SLOT, BATCH, (n, err) => {
        if (err < 0) { onError(new Error(`netlink read: ${errnoName(-err)}`)); return; }
        for (let i = 0; i < n; i++) {
          let msgs: NetlinkMessage[];
          try { msgs = parseMessages(Buffer.from(arena.subarray(i * SLOT, i * SLOT + lens[i]!))); } catch (e) { onError(e as Error); continue; }
          for (const m of msgs) each(m);
        }
      });
      addon.pollRef(p, false);
      return p;
    };
    this.pollers.push(read(this.requestFd, (m) => this.reply(m)), read(this.eventFd, onEvent));
  }

  /** The request socket keeps the process alive only while an answer is awaited. */
  private holdLoop(): void { this.addon.pollRef(this.pollers[0]!, this.pending.size > 0); }

  private reply(m: NetlinkMessage): void {
    const p = this.pending.get(m.seq);
    if (!p) return;
    if (m.type === NLMSG_ERROR) {
      this.pending.delete(m.seq);
      this.holdLoop();
      let errno: number;
      try { errno = parseError(m).errno; } catch (e) { p.reject(e as Error); return; }
      if (errno === 0) p.resolve(p.replies);
      else p.reject(new NetlinkError(errno, errnoName(errno), p.what));
      return;
    }
    if (m.type === NLMSG_DONE) { this.pending.delete(m.seq); this.holdLoop(); p.resolve(p.replies); return; }
    p.replies.push(m);
  }

  /**
   * Sends one request with NLM_F_ACK and resolves with the messages the
   * kernel sent before its acknowledgement (a GETSA's NEWSA, say), or
   * rejects with the kernel's errno as a NetlinkError.
   */
  request(type: number, flags: number, body: Buffer[], what: string): Promise<NetlinkMessage[]> {
    if (this.closed) return Promise.reject(new StyxError('ERR_NETLINK', `${what}: the XFRM socket is closed`));
    const seq = this.seq;
    this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { what, resolve, reject, replies: [] });
      this.holdLoop();
      try {
        this.addon.netlinkSend(this.requestFd, message(type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body));
      } catch (e) {
        this.pending.delete(seq);
        this.holdLoop();
        reject(new StyxError('ERR_NETLINK', `${what}: ${(e as Error).message}`));
      }
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pollers) this.addon.pollStop(p);
    this.addon.close(this.requestFd);
    this.addon.close(this.eventFd);
    for (const p of this.pending.values()) p.reject(new StyxError('ERR_NETLINK', `${p.what}: the XFRM socket was closed`));
    this.pending.clear();
  }
}
