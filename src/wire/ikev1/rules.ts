/**
 * Which payloads each IKEv1 message may carry, as data next to the RFC text
 * it comes from. IKEv1 messages carry no response flag, so a message is
 * named by its exchange and its position in it (Main Mode 1-6, Aggressive
 * Mode 1-3, Quick Mode 1-3 (+4 with the commit bit), Informational 1); the
 * IKE layer's state machine knows which one it expects.
 *
 * Deliberate leniency, because real peers differ:
 * - Vendor ID and Notification payloads are accepted in any message, any
 *   number of times (RFC 2408 3.14, 3.16).
 * - CR is accepted in every phase 1 message (RFC 2408 3.10 lets it ride in
 *   any message of the exchange); it is never required.
 * - Aggressive Mode message 3 may be encrypted or not: RFC 2409 5.4 shows
 *   "HDR, HASH_I" but many peers protect it.
 * - Informational messages are protected once the ISAKMP SA exists and in
 *   the clear before it (RFC 2409 5.7), so either is accepted here; with
 *   encryption the HASH must come first.
 * Unknown payload types are refused: IKEv1 has no critical bit, and RFC 2408
 * 5.3 answers an unknown Next Payload with INVALID-PAYLOAD-TYPE.
 */
import { MalformedError, UnsupportedError } from '../../util/errors.js';
import { V1ExchangeType, V1PayloadType } from './constants.js';
import { v1PayloadName } from './payloads.js';
import type { V1Payload } from './types.js';

export interface V1PayloadRule {
  type: number;
  min: number;
  max: number;
  /** Quick Mode client IDs come as a pair, IDci then IDcr (RFC 2409 5.5). */
  pairs?: boolean;
}

export type V1Encryption = 'required' | 'forbidden' | 'optional';

export interface V1MessageRule {
  exchange: number;
  /** 1-based position of the message in its exchange. */
  message: number;
  rfc: string;
  encryption: V1Encryption;
  /** RFC 2409 5.5 / 5.7: HASH must be the first payload ('always'), only in encrypted messages, or no such rule. */
  hashFirst: 'always' | 'when-encrypted' | 'no';
  /** Payloads allowed besides Vendor ID and Notification. */
  payloads: V1PayloadRule[];
  /** Exactly one member of each group must be present (HASH or SIG, by authentication method). */
  exactlyOne: number[][];
  /** At least one of these must be present (empty: no such requirement). */
  atLeastOne: number[];
}

/** RFC 2408 3.14, 3.16: accepted anywhere, any count. */
export const V1_ALWAYS_ALLOWED: readonly number[] = [V1PayloadType.N, V1PayloadType.VID];
const MANY = Number.POSITIVE_INFINITY;
const P = V1PayloadType;
const X = V1ExchangeType;
const one = (type: number): V1PayloadRule => ({ type, min: 1, max: 1 });
const opt = (type: number, max = 1): V1PayloadRule => ({ type, min: 0, max });
const AUTH = [P.HASH, P.SIG];
const authPayloads = (): V1PayloadRule[] => [opt(P.HASH), opt(P.SIG), opt(P.CERT, MANY), opt(P.CR, MANY)];

function rule(exchange: number, message: number, rfc: string, encryption: V1Encryption, payloads: V1PayloadRule[], more: Partial<V1MessageRule> = {}): V1MessageRule {
  return { exchange, message, rfc, encryption, hashFirst: 'no', payloads, exactlyOne: [], atLeastOne: [], ...more };
}

const quickOffer = (): V1PayloadRule[] => [
  one(P.HASH), { type: P.SA, min: 1, max: MANY }, one(P.NONCE), opt(P.KE), { type: P.ID, min: 0, max: 2, pairs: true }, opt(P.NAT_OA, 2),
];

export const V1_MESSAGE_RULES: readonly V1MessageRule[] = [
  // RFC 2409 5.1 (signatures) and 5.4 (pre-shared key): HDR, SA -->  <-- HDR, SA
  rule(X.IDENTITY_PROTECTION, 1, 'RFC 2409 5.1, 5.4', 'forbidden', [one(P.SA), opt(P.CR, MANY)]),
  rule(X.IDENTITY_PROTECTION, 2, 'RFC 2409 5.1, 5.4', 'forbidden', [one(P.SA), opt(P.CR, MANY)]),
  // HDR, KE, Ni -->  <-- HDR, KE, Nr; RFC 3947 3.2: NAT-D payloads ride in messages 3 and 4.
  rule(X.IDENTITY_PROTECTION, 3, 'RFC 2409 5.1, 5.4; RFC 3947 3.2', 'forbidden', [one(P.KE), one(P.NONCE), opt(P.NAT_D, MANY), opt(P.CR, MANY)]),
  rule(X.IDENTITY_PROTECTION, 4, 'RFC 2409 5.1, 5.4; RFC 3947 3.2', 'forbidden', [one(P.KE), one(P.NONCE), opt(P.NAT_D, MANY), opt(P.CR, MANY)]),
  // HDR*, IDii, [CERT,] SIG_I | HASH_I -->  <-- HDR*, IDir, [CERT,] SIG_R | HASH_R
  rule(X.IDENTITY_PROTECTION, 5, 'RFC 2409 5.1, 5.4', 'required', [one(P.ID), ...authPayloads()], { exactlyOne: [AUTH] }),
  rule(X.IDENTITY_PROTECTION, 6, 'RFC 2409 5.1, 5.4', 'required', [one(P.ID), ...authPayloads()], { exactlyOne: [AUTH] }),

  // RFC 2409 5.1, 5.4: HDR, SA, KE, Ni, IDii -->
  rule(X.AGGRESSIVE, 1, 'RFC 2409 5.1, 5.4', 'forbidden', [one(P.SA), one(P.KE), one(P.NONCE), one(P.ID), opt(P.CR, MANY)]),
  // <-- HDR, SA, KE, Nr, IDir, [CERT,] SIG_R | HASH_R; RFC 3947 3.2: NAT-D in messages 2 and 3.
  rule(X.AGGRESSIVE, 2, 'RFC 2409 5.1, 5.4; RFC 3947 3.2', 'forbidden',
    [one(P.SA), one(P.KE), one(P.NONCE), one(P.ID), opt(P.NAT_D, MANY), ...authPayloads()], { exactlyOne: [AUTH] }),
  // HDR, [CERT,] SIG_I | HASH_I -->
  rule(X.AGGRESSIVE, 3, 'RFC 2409 5.1, 5.4; RFC 3947 3.2', 'optional', [opt(P.NAT_D, MANY), ...authPayloads()], { exactlyOne: [AUTH] }),

  // RFC 2409 5.5: HDR*, HASH(1), SA, Ni [, KE ] [, IDci, IDcr ] -->; RFC 3947 5.2: NAT-OA for transport mode.
  rule(X.QUICK, 1, 'RFC 2409 5.5; RFC 3947 5.2', 'required', quickOffer(), { hashFirst: 'always' }),
  // <-- HDR*, HASH(2), SA, Nr [, KE ] [, IDci, IDcr ]
  rule(X.QUICK, 2, 'RFC 2409 5.5; RFC 3947 5.2', 'required', quickOffer(), { hashFirst: 'always' }),
  // HDR*, HASH(3) -->
  rule(X.QUICK, 3, 'RFC 2409 5.5', 'required', [one(P.HASH)], { hashFirst: 'always' }),
  // RFC 2408 3.1 (commit bit): the responder's HASH-protected CONNECTED notification.
  rule(X.QUICK, 4, 'RFC 2408 3.1, 3.14.1', 'required', [one(P.HASH)], { hashFirst: 'always', atLeastOne: [P.N] }),

  // RFC 2409 5.7: HDR*, HASH(1), N/D; RFC 2408 4.8: HDR, N/D before any keys exist.
  rule(X.INFORMATIONAL, 1, 'RFC 2408 4.8; RFC 2409 5.7', 'optional', [opt(P.HASH), opt(P.D, MANY)], { hashFirst: 'when-encrypted', atLeastOne: [P.N, P.D] }),
];

const EXCHANGE_NAMES: Record<number, string> = {
  [X.IDENTITY_PROTECTION]: 'Main Mode', [X.AGGRESSIVE]: 'Aggressive Mode', [X.QUICK]: 'Quick Mode', [X.INFORMATIONAL]: 'Informational',
};
export function v1ExchangeName(exchange: number): string {
  return EXCHANGE_NAMES[exchange] ?? `exchange ${exchange}`;
}

export function v1MessageRule(exchange: number, message: number): V1MessageRule | undefined {
  return V1_MESSAGE_RULES.find((r) => r.exchange === exchange && r.message === message);
}

const typeOf = (p: V1Payload): number => (p.type === 'unknown' ? p.rawType : p.type);

/**
 * Checks a message's logical content (a plaintext chain, or the decrypted
 * body) against V1_MESSAGE_RULES, throwing MalformedError
 * ("malformed Quick Mode message 1: missing Nonce") on the first violation.
 * `encrypted` is the header's E flag. An exchange/position with no rule
 * throws UnsupportedError.
 */
export function checkV1Message(exchange: number, message: number, encrypted: boolean, payloads: readonly V1Payload[]): void {
  const rule = v1MessageRule(exchange, message);
  const what = `${v1ExchangeName(exchange)} message ${message}`;
  if (rule === undefined) throw new UnsupportedError(what);
  if (rule.encryption === 'required' && !encrypted) throw new MalformedError(what, 'must be encrypted');
  if (rule.encryption === 'forbidden' && encrypted) throw new MalformedError(what, 'encrypted before keys exist');

  if (rule.hashFirst === 'always' || (rule.hashFirst === 'when-encrypted' && encrypted)) {
    const first = payloads[0];
    if (first === undefined || first.type !== P.HASH) throw new MalformedError(what, 'HASH must be the first payload (RFC 2409 5.5, 5.7)');
  }

  const counts = new Map<number, number>();
  for (const p of payloads) {
    const t = typeOf(p);
    if (V1_ALWAYS_ALLOWED.includes(t)) {
      counts.set(t, (counts.get(t) ?? 0) + 1);
      continue;
    }
    if (p.type === 'unknown' || !rule.payloads.some((x) => x.type === t)) throw new MalformedError(what, `unexpected ${v1PayloadName(t)} payload`);
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  const has = (t: number): boolean => (counts.get(t) ?? 0) > 0;
  for (const pr of rule.payloads) {
    const n = counts.get(pr.type) ?? 0;
    if (n > pr.max) throw new MalformedError(what, `${n} ${v1PayloadName(pr.type)} payloads, at most ${pr.max} allowed`);
    if (n < pr.min) throw new MalformedError(what, `missing ${v1PayloadName(pr.type)} payload`);
    if (pr.pairs === true && n % 2 !== 0) throw new MalformedError(what, `${n} ${v1PayloadName(pr.type)} payloads; they come in pairs`);
  }
  for (const group of rule.exactlyOne) {
    const present = group.filter(has);
    if (present.length !== 1) {
      throw new MalformedError(what, present.length === 0
        ? `needs one of ${group.map(v1PayloadName).join(', ')}`
        : `carries both ${present.map(v1PayloadName).join(' and ')}`);
    }
  }
  if (rule.atLeastOne.length > 0 && !rule.atLeastOne.some(has)) {
    throw new MalformedError(what, `needs at least one of ${rule.atLeastOne.map(v1PayloadName).join(', ')}`);
  }
}
