/**
 * Small helpers the IKE layer uses on decoded IKEv1 payload lists.
 */
import { V1NotifyType, V1PayloadType, V1_NOTIFY_ERROR_MAX, nameOf, vendorIdName } from './constants.js';
import { v1ExchangeName } from './rules.js';
import type { IsakmpMessage, V1NotifyPayload, V1Payload } from './types.js';

/** The member of the V1Payload union whose `type` is T. */
export type V1PayloadOf<T extends V1Payload['type']> = Extract<V1Payload, { type: T }>;

function isType<T extends V1Payload['type']>(type: T) {
  return (p: V1Payload): p is V1PayloadOf<T> => p.type === type;
}

/** First payload of the given type, typed by its discriminant. */
export function findV1Payload<T extends V1Payload['type']>(payloads: readonly V1Payload[], type: T): V1PayloadOf<T> | undefined {
  return payloads.find(isType(type));
}

/** All payloads of the given type, in message order. */
export function findV1Payloads<T extends V1Payload['type']>(payloads: readonly V1Payload[], type: T): V1PayloadOf<T>[] {
  return payloads.filter(isType(type));
}

export function findV1Notify(payloads: readonly V1Payload[], notifyType: number): V1NotifyPayload | undefined {
  return payloads.find((p): p is V1NotifyPayload => p.type === V1PayloadType.N && p.notifyType === notifyType);
}

/** RFC 2408 3.14.1: error types are 1-8191 (16383 counting the reserved range). */
export function isV1ErrorNotify(p: V1Payload): p is V1NotifyPayload {
  return p.type === V1PayloadType.N && p.notifyType >= 1 && p.notifyType <= V1_NOTIFY_ERROR_MAX;
}

/** One token per payload for describeV1(). */
export function v1PayloadToken(p: V1Payload): string {
  switch (p.type) {
    case V1PayloadType.SA: return 'SA';
    case V1PayloadType.KE: return 'KE';
    case V1PayloadType.ID: return 'ID';
    case V1PayloadType.CERT: return 'CERT';
    case V1PayloadType.CR: return 'CR';
    case V1PayloadType.HASH: return 'HASH';
    case V1PayloadType.SIG: return 'SIG';
    case V1PayloadType.NONCE: return 'No';
    case V1PayloadType.N: return `N(${nameOf(V1NotifyType, p.notifyType)})`;
    case V1PayloadType.D: return 'D';
    case V1PayloadType.VID: {
      const name = vendorIdName(p.data);
      return name === undefined ? 'V' : `V(${name})`;
    }
    case V1PayloadType.NAT_D: return 'NAT-D';
    case V1PayloadType.NAT_OA: return 'NAT-OA';
    case 'unknown': return `U(${p.rawType})`;
  }
}

/**
 * A one-line summary for logs, e.g. `Main Mode 0 [ SA V(DPD) ]`. For an
 * encrypted message pass the decrypted payloads as `inner`; without them the
 * body shows as `[ encrypted ]`.
 */
export function describeV1(msg: IsakmpMessage, inner?: readonly V1Payload[]): string {
  const h = msg.header;
  const payloads = msg.encrypted ? inner : msg.payloads;
  const body = payloads === undefined ? 'encrypted' : payloads.map(v1PayloadToken).join(' ');
  return `${v1ExchangeName(h.exchangeType)}${msg.encrypted ? '*' : ''} ${h.messageId.toString(16).padStart(8, '0')} [ ${body}${body.length > 0 ? ' ' : ''}]`;
}
