/**
 * Small helpers the IKE layer uses on decoded payload lists.
 */
import { CfgType, ExchangeType, NotifyType, PayloadType, nameOf } from './constants.js';
import type { IkeMessage, NotifyPayload, Payload } from './types.js';

/** The member of the Payload union whose `type` can be T (IDi and IDr share IdPayload). */
export type PayloadOf<T extends Payload['type']> = Payload extends infer P
  ? P extends { type: infer U } ? (T extends U ? P : never) : never
  : never;

/** Builds a Notify payload (RFC 7296 3.10); the SPI is empty and the protocol 0 unless a child SA is meant. */
export function notify(notifyType: number, data: Buffer = Buffer.alloc(0), protocol = 0, spi: Buffer = Buffer.alloc(0)): NotifyPayload {
  return { type: PayloadType.NOTIFY, critical: false, protocol, spi, notifyType, data };
}

export function findNotify(payloads: readonly Payload[], type: number): NotifyPayload | undefined {
  for (const p of payloads) if (p.type === PayloadType.NOTIFY && p.notifyType === type) return p;
  return undefined;
}

export function findNotifies(payloads: readonly Payload[], type: number): NotifyPayload[] {
  return payloads.filter((p): p is NotifyPayload => p.type === PayloadType.NOTIFY && p.notifyType === type);
}

function isType<T extends Payload['type']>(type: T) {
  return (p: Payload): p is PayloadOf<T> => p.type === type;
}

/** First payload of the given type, typed by its discriminant. */
export function findPayload<T extends Payload['type']>(payloads: readonly Payload[], type: T): PayloadOf<T> | undefined {
  return payloads.find(isType(type));
}

/** All payloads of the given type, in message order. */
export function findPayloads<T extends Payload['type']>(payloads: readonly Payload[], type: T): PayloadOf<T>[] {
  return payloads.filter(isType(type));
}

/**
 * RFC 7296 2.5: the first payload styx does not understand whose critical
 * bit is set. The message must then be rejected, answering a request with
 * UNSUPPORTED_CRITICAL_PAYLOAD carrying this type as its one-octet data.
 */
export function unsupportedCritical(payloads: readonly Payload[]): number | undefined {
  for (const p of payloads) if (p.type === 'unknown' && p.critical) return p.rawType;
  return undefined;
}

/** True for RFC 7296 3.10.1 error types (below 16384). */
export function isErrorNotify(p: Payload): p is NotifyPayload {
  return p.type === PayloadType.NOTIFY && p.notifyType < 16384;
}

/** Abbreviations for the log summary where the registry name is long. */
const NOTIFY_SHORT: Record<number, string> = {
  [NotifyType.NAT_DETECTION_SOURCE_IP]: 'NATD_S_IP',
  [NotifyType.NAT_DETECTION_DESTINATION_IP]: 'NATD_D_IP',
  [NotifyType.IKEV2_FRAGMENTATION_SUPPORTED]: 'FRAGMENTATION',
  [NotifyType.SIGNATURE_HASH_ALGORITHMS]: 'SIG_HASH_ALGS',
  [NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED]: 'NO_TFC_PADDING',
};
const CFG_SHORT: Record<number, string> = {
  [CfgType.CFG_REQUEST]: 'REQ', [CfgType.CFG_REPLY]: 'REPLY', [CfgType.CFG_SET]: 'SET', [CfgType.CFG_ACK]: 'ACK',
};

/** One token per payload, as used by describe(). */
export function payloadToken(p: Payload): string {
  switch (p.type) {
    case PayloadType.SA: return 'SA';
    case PayloadType.KE: return 'KE';
    case PayloadType.IDi: return 'IDi';
    case PayloadType.IDr: return 'IDr';
    case PayloadType.CERT: return 'CERT';
    case PayloadType.CERTREQ: return 'CERTREQ';
    case PayloadType.AUTH: return 'AUTH';
    case PayloadType.NONCE: return 'No';
    case PayloadType.NOTIFY: return `N(${NOTIFY_SHORT[p.notifyType] ?? nameOf(NotifyType, p.notifyType)})`;
    case PayloadType.DELETE: return 'D';
    case PayloadType.VENDOR_ID: return 'V';
    case PayloadType.TSi: return 'TSi';
    case PayloadType.TSr: return 'TSr';
    case PayloadType.SK: return 'SK';
    case PayloadType.SKF: return `SKF(${p.fragmentNumber}/${p.totalFragments})`;
    case PayloadType.CP: return `CP(${CFG_SHORT[p.cfgType] ?? p.cfgType})`;
    case PayloadType.EAP: return 'EAP';
    case 'unknown': return `U(${p.rawType}${p.critical ? ',critical' : ''})`;
  }
}

/**
 * A one-line summary for logs, e.g.
 * `IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]`.
 * Pass `inner` (the decrypted SK contents) to list those in place of SK.
 */
export function describe(msg: IkeMessage, inner?: readonly Payload[]): string {
  const h = msg.header;
  const tokens: string[] = [];
  for (const p of msg.payloads) {
    if (inner !== undefined && (p.type === PayloadType.SK || p.type === PayloadType.SKF)) tokens.push(...inner.map(payloadToken));
    else tokens.push(payloadToken(p));
  }
  const name = nameOf(ExchangeType, h.exchangeType);
  const exchange = name === String(h.exchangeType) ? `EXCHANGE(${name})` : name;
  return `${exchange} ${h.flags.response ? 'response' : 'request'} ${h.messageId} [ ${tokens.join(' ')}${tokens.length > 0 ? ' ' : ''}]`;
}
