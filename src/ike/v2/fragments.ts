/**
 * IKEv2 message fragmentation (RFC 7383): splitting a protected message into
 * Encrypted Fragment payloads (2.5) and putting received ones back together
 * (2.6). Each fragment is encrypted and authenticated on its own, so a
 * receiver checks every fragment before keeping it: a forged or corrupted
 * one costs an integrity check and is never stored.
 */
import type { SkCipher } from '../../crypto/api.js';
import { StyxError } from '../../util/errors.js';
import { GENERIC_HEADER_LENGTH, HEADER_LENGTH, PayloadType, encodeSkfPrefix } from '../../wire/ikev2/index.js';
import type { HeaderInit, SkfPayload } from '../../wire/ikev2/index.js';

/** RFC 7383 2.5: Fragment Number and Total Fragments follow the generic payload header. */
const SKF_PREFIX_LENGTH = HEADER_LENGTH + GENERIC_HEADER_LENGTH + 4;
const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const UDP_HEADER = 8;
/** RFC 3948 2.2: on the NAT-T port IKE carries a four-octet non-ESP marker; it is always reserved, as the port can change mid-SA (2.23). */
const NON_ESP_MARKER = 4;

/**
 * RFC 7383 2.5.1: the largest IKE message (header to ICV) that fits an IP
 * datagram of `fragmentSize` octets, the way strongSwan's fragment_size is
 * meant: the datagram, IP and UDP headers included.
 */
export function maxMessageSize(fragmentSize: number, ipv6: boolean): number {
  return fragmentSize - (ipv6 ? IPV6_HEADER : IPV4_HEADER) - UDP_HEADER - NON_ESP_MARKER;
}

/** The size of the message as one SK payload (RFC 7296 3.14), to decide whether to fragment. */
export function unfragmentedSize(sk: SkCipher, plainLength: number): number {
  return HEADER_LENGTH + GENERIC_HEADER_LENGTH + sk.sealedLength(plainLength);
}

export class FragmentError extends StyxError {
  constructor(why: string) { super('ERR_FRAGMENT', why); }
}

/** The most plaintext one fragment of at most `maxMessage` octets carries under `sk` (padding, IV and ICV depend on the cipher). */
export function fragmentCapacity(sk: SkCipher, maxMessage: number): number {
  const budget = maxMessage - SKF_PREFIX_LENGTH;
  let n = budget;
  while (n > 0 && sk.sealedLength(n) > budget) n--;
  if (n <= 0) throw new FragmentError(`a fragment of ${maxMessage} octets leaves no room for content`);
  return n;
}

/**
 * RFC 7383 2.5: the inner payload chain cut into consecutive chunks, each
 * chunk sealed in its own SKF payload under the original header (same
 * exchange, flags and message ID). Only fragment 1 names the first inner
 * payload; the others carry 0 there.
 */
export function encodeFragments(h: HeaderInit, inner: { firstType: number; bytes: Buffer }, sk: SkCipher, maxMessage: number): Buffer[] {
  const per = fragmentCapacity(sk, maxMessage);
  const total = Math.max(1, Math.ceil(inner.bytes.length / per));
  if (total > 0xffff) throw new FragmentError(`${inner.bytes.length} octets would need ${total} fragments`);
  const out: Buffer[] = [];
  for (let i = 0; i < total; i++) {
    const chunk = inner.bytes.subarray(i * per, (i + 1) * per);
    const prefix = encodeSkfPrefix(h, i === 0 ? inner.firstType : PayloadType.NONE, i + 1, total, sk.sealedLength(chunk.length));
    out.push(Buffer.concat([prefix, sk.seal(prefix, chunk)]));
  }
  return out;
}

/** Bounds on what a peer may make us hold while a message is incomplete (RFC 7383 2.6, 5). */
export interface ReassemblyLimits {
  maxFragments: number;
  /** Decrypted octets of one message. */
  maxBytes: number;
  /** A message not complete this long after its first fragment is dropped. */
  timeoutMs: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: ReassemblyLimits = { maxFragments: 64, maxBytes: 64 * 1024, timeoutMs: 30_000 };

export type FragmentOutcome =
  | { kind: 'partial'; have: number; total: number }
  /** Already held: a retransmission crossing the rest of the message. */
  | { kind: 'duplicate' }
  /** 2.6: fewer Total Fragments than the set being collected; a leftover of an earlier transmission. */
  | { kind: 'stale'; total: number }
  | { kind: 'complete'; firstType: number; plain: Buffer; packets: Buffer[] };

interface FragmentSet {
  messageId: number;
  total: number;
  parts: (Buffer | undefined)[];
  packets: (Buffer | undefined)[];
  firstType: number;
  have: number;
  bytes: number;
  startedAt: number;
}

/**
 * Reassembly state of one IKE SA: at most one message per direction (the
 * request we expect and the response we wait for, 2.3's window of one).
 */
export class Reassembler {
  private readonly sets: { request: FragmentSet | null; response: FragmentSet | null } = { request: null, response: null };
  constructor(private readonly limits: ReassemblyLimits = DEFAULT_REASSEMBLY_LIMITS) {}

  /**
   * Takes one received fragment whose message ID the caller has already
   * checked against the window. Throws IntegrityError or MalformedError from
   * `sk` for a fragment that does not authenticate, FragmentError when a
   * limit is exceeded (the partial message is then dropped).
   */
  add(response: boolean, messageId: number, frag: SkfPayload, raw: Buffer, sk: SkCipher, now: number): FragmentOutcome {
    const dir = response ? 'response' : 'request';
    if (frag.totalFragments > this.limits.maxFragments) {
      throw new FragmentError(`${frag.totalFragments} fragments announced, at most ${this.limits.maxFragments} accepted`);
    }
    let set = this.sets[dir];
    if (set && (set.messageId !== messageId || now - set.startedAt > this.limits.timeoutMs)) set = this.sets[dir] = null;
    // A fragment we hold is not decrypted again: whatever a copy says, it cannot change what we have.
    if (set && set.total === frag.totalFragments && set.parts[frag.fragmentNumber - 1]) return { kind: 'duplicate' };
    if (!frag.aad) throw new FragmentError('fragment without its authenticated prefix');
    // 2.6: authenticate before the fragment's numbers may change any state.
    const plain = sk.open(frag.aad, frag.body);
    if (set && frag.totalFragments < set.total) return { kind: 'stale', total: frag.totalFragments };
    // 2.6: more fragments than before means the sender re-fragmented (e.g. a smaller PMTU): start over.
    if (!set || frag.totalFragments > set.total) {
      set = this.sets[dir] = {
        messageId, total: frag.totalFragments, parts: new Array<Buffer | undefined>(frag.totalFragments), packets: new Array<Buffer | undefined>(frag.totalFragments),
        firstType: PayloadType.NONE, have: 0, bytes: 0, startedAt: now,
      };
    }
    if (set.bytes + plain.length > this.limits.maxBytes) {
      this.sets[dir] = null;
      throw new FragmentError(`reassembled message would exceed ${this.limits.maxBytes} octets`);
    }
    const i = frag.fragmentNumber - 1;
    set.parts[i] = plain;
    set.packets[i] = raw;
    set.have++;
    set.bytes += plain.length;
    // 2.5: only the first fragment's Next Payload names the first inner payload.
    if (frag.fragmentNumber === 1) set.firstType = frag.innerFirst;
    if (set.have < set.total) return { kind: 'partial', have: set.have, total: set.total };
    this.sets[dir] = null;
    return { kind: 'complete', firstType: set.firstType, plain: Buffer.concat(set.parts as Buffer[]), packets: set.packets as Buffer[] };
  }

  /** Whether part of a message is being held, for tests and listings. */
  pending(response: boolean): { messageId: number; have: number; total: number } | null {
    const s = this.sets[response ? 'response' : 'request'];
    return s ? { messageId: s.messageId, have: s.have, total: s.total } : null;
  }

  clear(): void { this.sets.request = null; this.sets.response = null; }
}

/** Whether a single fragment authenticates: used for retransmissions of a request already answered. */
export function fragmentAuthenticates(frag: SkfPayload, sk: SkCipher): boolean {
  if (!frag.aad) return false;
  try { sk.open(frag.aad, frag.body); return true; } catch (e) {
    if (e instanceof StyxError) return false;
    throw e;
  }
}
