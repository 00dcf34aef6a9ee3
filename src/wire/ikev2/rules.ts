/**
 * Which payloads each exchange may carry, as data next to the RFC text it
 * comes from. The codec decodes anything well-formed; these rules say
 * whether a well-formed message makes sense for its exchange.
 *
 * Deliberate leniency, because real peers differ:
 * - Notify and Vendor ID are accepted in any message, any number of times.
 * - CERTREQ is never required.
 * - Unknown payloads are not counted; unsupportedCritical() deals with them.
 * - A response carrying an error Notify (type < 16384) need not carry
 *   anything else (e.g. IKE_AUTH answered with AUTHENTICATION_FAILED, or a
 *   child SA refused with TS_UNACCEPTABLE while the IKE SA stands).
 * - An IKE_SA_INIT response that is only a COOKIE, INVALID_KE_PAYLOAD or
 *   NO_PROPOSAL_CHOSEN notify is valid (RFC 7296 1.2, 2.6, 1.3).
 * - IKE_AUTH content depends on the round (EAP, RFC 4739 multiple auth,
 *   RFC 6023 childless), so per message only "at least one of ID/AUTH/EAP"
 *   and "SA, TSi and TSr together or not at all" are required.
 */
import { MalformedError, UnsupportedError } from '../../util/errors.js';
import { ExchangeType, NotifyType, PayloadType, nameOf } from './constants.js';
import { isErrorNotify } from './helpers.js';
import { payloadName, wireType } from './payloads.js';
import type { Payload } from './types.js';

export interface PayloadRule {
  type: number;
  min: number;
  max: number;
  /** RFC 7296 3.14: after IKE_SA_INIT every payload is protected by SK. */
  inSk: boolean;
}

export interface ExchangeRule {
  exchange: number;
  response: boolean;
  rfc: string;
  /** Must the message carry an SK (or SKF) payload? */
  encrypted: boolean;
  /** Payloads allowed besides Notify, Vendor ID and unknown types. */
  payloads: PayloadRule[];
  /** Each group: all present or none. */
  together: number[][];
  /** At least one of these must be present (empty: no such requirement). */
  atLeastOne: number[];
  /** Minimum counts, `together` and `atLeastOne` are waived when the message carries an error Notify or one of these. */
  waiveOnError: boolean;
  waiveOnNotify: number[];
}

/** RFC 7296 3.10, 3.12: accepted anywhere, any count. */
export const ALWAYS_ALLOWED: readonly number[] = [PayloadType.NOTIFY, PayloadType.VENDOR_ID];
const MANY = Number.POSITIVE_INFINITY;
const one = (type: number, inSk: boolean): PayloadRule => ({ type, min: 1, max: 1, inSk });
const opt = (type: number, inSk: boolean, max = 1): PayloadRule => ({ type, min: 0, max, inSk });
const P = PayloadType;

export const EXCHANGE_RULES: readonly ExchangeRule[] = [
  {
    // RFC 7296 1.2: HDR, SA, KE, Ni -->  (a retry after a COOKIE puts N(COOKIE) first, 2.6)
    // CERTREQ is not in 1.2's request, but is accepted: harmless and some peers send it early.
    exchange: ExchangeType.IKE_SA_INIT, response: false, rfc: 'RFC 7296 1.2', encrypted: false,
    payloads: [one(P.SA, false), one(P.KE, false), one(P.NONCE, false), opt(P.CERTREQ, false, MANY)],
    together: [], atLeastOne: [], waiveOnError: false, waiveOnNotify: [],
  },
  {
    // RFC 7296 1.2: <-- HDR, SA, KE, Nr, [CERTREQ]; or only N(COOKIE) (2.6), N(INVALID_KE_PAYLOAD) (1.3), N(NO_PROPOSAL_CHOSEN)
    exchange: ExchangeType.IKE_SA_INIT, response: true, rfc: 'RFC 7296 1.2, 2.6', encrypted: false,
    payloads: [one(P.SA, false), one(P.KE, false), one(P.NONCE, false), opt(P.CERTREQ, false, MANY)],
    together: [], atLeastOne: [], waiveOnError: true, waiveOnNotify: [NotifyType.COOKIE],
  },
  {
    // RFC 7296 1.2: HDR, SK {IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, SA, TSi, TSr} -->
    // 2.16 (EAP: no AUTH in the first request, EAP-only rounds after), RFC 6023 (childless: no SA/TS),
    // 3.15 (CP request), RFC 4739 (a second IDi/AUTH round).
    exchange: ExchangeType.IKE_AUTH, response: false, rfc: 'RFC 7296 1.2, 2.16, 3.15; RFC 6023; RFC 4739', encrypted: true,
    payloads: [
      opt(P.IDi, true), opt(P.CERT, true, MANY), opt(P.CERTREQ, true, MANY), opt(P.IDr, true), opt(P.AUTH, true),
      opt(P.EAP, true), opt(P.CP, true), opt(P.SA, true), opt(P.TSi, true), opt(P.TSr, true),
    ],
    together: [[P.SA, P.TSi, P.TSr]], atLeastOne: [P.IDi, P.AUTH, P.EAP], waiveOnError: false, waiveOnNotify: [],
  },
  {
    // RFC 7296 1.2: <-- HDR, SK {IDr, [CERT,] AUTH, SA, TSi, TSr}; 2.16 EAP rounds; 3.15 CP reply;
    // 2.21.2: an error notify alone when authentication or the child SA fails.
    exchange: ExchangeType.IKE_AUTH, response: true, rfc: 'RFC 7296 1.2, 2.16, 2.21.2, 3.15', encrypted: true,
    payloads: [
      opt(P.IDr, true), opt(P.CERT, true, MANY), opt(P.CERTREQ, true, MANY), opt(P.AUTH, true), opt(P.EAP, true),
      opt(P.CP, true), opt(P.SA, true), opt(P.TSi, true), opt(P.TSr, true),
    ],
    together: [[P.SA, P.TSi, P.TSr]], atLeastOne: [P.IDr, P.AUTH, P.EAP], waiveOnError: true, waiveOnNotify: [],
  },
  {
    // RFC 7296 1.3.1 (new child: SA, Ni, [KEi], TSi, TSr), 1.3.2 (IKE rekey: SA, Ni, KEi), 1.3.3 (child rekey, N(REKEY_SA))
    exchange: ExchangeType.CREATE_CHILD_SA, response: false, rfc: 'RFC 7296 1.3', encrypted: true,
    payloads: [one(P.SA, true), one(P.NONCE, true), opt(P.KE, true), opt(P.TSi, true), opt(P.TSr, true)],
    together: [[P.TSi, P.TSr]], atLeastOne: [], waiveOnError: false, waiveOnNotify: [],
  },
  {
    // RFC 7296 1.3: <-- HDR, SK {SA, Nr, [KEr,] [TSi, TSr]}; or an error notify alone (1.3, 2.21.4)
    exchange: ExchangeType.CREATE_CHILD_SA, response: true, rfc: 'RFC 7296 1.3, 2.21.4', encrypted: true,
    payloads: [one(P.SA, true), one(P.NONCE, true), opt(P.KE, true), opt(P.TSi, true), opt(P.TSr, true)],
    together: [[P.TSi, P.TSr]], atLeastOne: [], waiveOnError: true, waiveOnNotify: [],
  },
  {
    // RFC 7296 1.4: HDR, SK {[N,] [D,] [CP,] ...}; an empty one is a liveness check (2.4)
    exchange: ExchangeType.INFORMATIONAL, response: false, rfc: 'RFC 7296 1.4, 2.4', encrypted: true,
    payloads: [opt(P.DELETE, true, MANY), opt(P.CP, true)],
    together: [], atLeastOne: [], waiveOnError: false, waiveOnNotify: [],
  },
  {
    exchange: ExchangeType.INFORMATIONAL, response: true, rfc: 'RFC 7296 1.4', encrypted: true,
    payloads: [opt(P.DELETE, true, MANY), opt(P.CP, true)],
    together: [], atLeastOne: [], waiveOnError: false, waiveOnNotify: [],
  },
];

export function exchangeRule(exchange: number, response: boolean): ExchangeRule | undefined {
  return EXCHANGE_RULES.find((r) => r.exchange === exchange && r.response === response);
}

const isEncrypted = (p: Payload): boolean => p.type === PayloadType.SK || p.type === PayloadType.SKF;

/**
 * Checks a message's payloads against EXCHANGE_RULES, throwing MalformedError
 * ("malformed IKE_AUTH request: missing AUTH") on the first violation.
 *
 * Two ways to call it:
 * - `payloads` alone: the message's logical content (a plaintext message, or
 *   the decrypted SK contents). Counts are checked; SK placement is not.
 * - `payloads` = the outer payloads as decoded, ending in SK/SKF, and
 *   `inner` = its decrypted contents: counts over both, and payloads that
 *   belong inside SK are refused outside it (RFC 7296 3.14).
 * An unknown exchange type throws UnsupportedError.
 */
export function checkExchangePayloads(exchange: number, response: boolean, payloads: readonly Payload[], inner?: readonly Payload[]): void {
  const rule = exchangeRule(exchange, response);
  const what = `${nameOf(ExchangeType, exchange)} ${response ? 'response' : 'request'}`;
  if (rule === undefined) throw new UnsupportedError(`exchange type ${exchange}`);
  const sk = payloads.filter(isEncrypted);
  if (!rule.encrypted && (sk.length > 0 || inner !== undefined)) {
    throw new MalformedError(what, 'an encrypted payload before any keys exist');
  }
  if (inner !== undefined) {
    if (sk.length === 0) throw new MalformedError(what, 'missing SK payload (RFC 7296 3.14)');
    if (inner.some(isEncrypted)) throw new MalformedError(what, 'encrypted payload inside SK');
  } else if (sk.length > 0) {
    // A caller bug, not a peer's: the contents were never supplied.
    throw new Error(`checkExchangePayloads(${what}): pass the decrypted SK contents as inner`);
  }

  const counts = new Map<number, number>();
  const check = (p: Payload, outside: boolean): void => {
    if (p.type === 'unknown' || isEncrypted(p)) return;
    const t = wireType(p);
    if (ALWAYS_ALLOWED.includes(t)) return;
    const pr = rule.payloads.find((x) => x.type === t);
    if (pr === undefined) throw new MalformedError(what, `unexpected ${payloadName(t)} payload`);
    if (outside && inner !== undefined && pr.inSk) throw new MalformedError(what, `${payloadName(t)} must be inside SK`);
    counts.set(t, (counts.get(t) ?? 0) + 1);
  };
  for (const p of payloads) check(p, true);
  for (const p of inner ?? []) check(p, false);

  const all = [...payloads, ...(inner ?? [])];
  const waived = (rule.waiveOnError && all.some(isErrorNotify))
    || all.some((p) => p.type === PayloadType.NOTIFY && rule.waiveOnNotify.includes(p.notifyType));
  const has = (t: number): boolean => (counts.get(t) ?? 0) > 0;

  for (const pr of rule.payloads) {
    const n = counts.get(pr.type) ?? 0;
    if (n > pr.max) throw new MalformedError(what, `${n} ${payloadName(pr.type)} payloads, at most ${pr.max} allowed`);
    if (!waived && n < pr.min) throw new MalformedError(what, `missing ${payloadName(pr.type)} payload`);
  }
  if (waived) return;
  for (const group of rule.together) {
    const present = group.filter(has);
    if (present.length > 0 && present.length < group.length) {
      const missing = group.filter((t) => !has(t));
      throw new MalformedError(what, `${present.map(payloadName).join(', ')} without ${missing.map(payloadName).join(', ')}`);
    }
  }
  if (rule.atLeastOne.length > 0 && !rule.atLeastOne.some(has)) {
    throw new MalformedError(what, `needs at least one of ${rule.atLeastOne.map(payloadName).join(', ')}`);
  }
}
