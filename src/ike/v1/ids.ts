/**
 * IKEv1 identification payloads (RFC 2407 4.6.2): the phase 1 identities
 * (same type numbers as IKEv2's, so src/ike/identity.ts serves) and the
 * Quick Mode client IDs that carry the traffic selectors (RFC 2409 5.5).
 */
import { TsType } from '../../wire/ikev2/constants.js';
import type { TrafficSelector } from '../../wire/ikev2/types.js';
import { MalformedError, UnsupportedError } from '../../util/errors.js';
import { V1IdType, V1PayloadType, type V1IdPayload } from '../../wire/ikev1/index.js';
import type { Identity } from '../identity.js';
import { addrBytes } from '../ts.js';

/**
 * RFC 2407 4.6.2: in phase 1 protocol and port are zero or UDP/500; styx
 * sends zeros, which every peer accepts and which avoid naming a port that
 * NAT-T floating makes wrong.
 */
export function phase1IdPayload(id: Identity): V1IdPayload {
  return { type: V1PayloadType.ID, idType: id.type, protocol: 0, port: 0, data: id.data };
}

/** The body as RFC 2409 5 hashes it: IDii_b / IDir_b. */
export function idBody(p: V1IdPayload): Buffer {
  const h = Buffer.alloc(4);
  h[0] = p.idType; h[1] = p.protocol; h.writeUInt16BE(p.port, 2);
  return Buffer.concat([h, p.data]);
}

function prefixOf(start: Buffer, end: Buffer): number {
  const bits = start.length * 8;
  for (let p = 0; p <= bits; p++) {
    let ok = true;
    for (let i = 0; i < bits && ok; i++) {
      const byte = i >> 3, bit = 0x80 >> (i & 7);
      const s = (start[byte]! & bit) !== 0, e = (end[byte]! & bit) !== 0;
      ok = i < p ? s === e : !s && e;
    }
    if (ok) return p;
  }
  return -1;
}

function mask(len: number, prefix: number): Buffer {
  const m = Buffer.alloc(len);
  for (let i = 0; i < prefix; i++) m[i >> 3] = m[i >> 3]! | (0x80 >> (i & 7));
  return m;
}

/**
 * RFC 2407 4.6.2.1: a selector as the tightest client ID type, ADDR for a
 * single host, ADDR_SUBNET for a prefix, ADDR_RANGE otherwise. An ID names
 * one port or all (0), so a port range cannot be carried.
 */
export function clientId(ts: TrafficSelector): V1IdPayload {
  const v4 = ts.startAddr.length === 4;
  let port: number;
  if (ts.startPort === 0 && ts.endPort === 65535) port = 0;
  else if (ts.startPort === ts.endPort) port = ts.startPort;
  else throw new UnsupportedError(`port range ${ts.startPort}-${ts.endPort} in an IKEv1 client ID`);
  const base = { type: V1PayloadType.ID, protocol: ts.ipProtocol, port } as const;
  if (ts.startAddr.equals(ts.endAddr)) return { ...base, idType: v4 ? V1IdType.ID_IPV4_ADDR : V1IdType.ID_IPV6_ADDR, data: Buffer.from(ts.startAddr) };
  const p = prefixOf(ts.startAddr, ts.endAddr);
  if (p >= 0) return { ...base, idType: v4 ? V1IdType.ID_IPV4_ADDR_SUBNET : V1IdType.ID_IPV6_ADDR_SUBNET, data: Buffer.concat([ts.startAddr, mask(ts.startAddr.length, p)]) };
  return { ...base, idType: v4 ? V1IdType.ID_IPV4_ADDR_RANGE : V1IdType.ID_IPV6_ADDR_RANGE, data: Buffer.concat([ts.startAddr, ts.endAddr]) };
}

/** RFC 2407 4.6.2.1: a client ID as a selector; a subnet's host bits are cleared. */
export function selectorOf(id: V1IdPayload): TrafficSelector {
  const ports = id.port === 0 ? { startPort: 0, endPort: 65535 } : { startPort: id.port, endPort: id.port };
  const base = { ipProtocol: id.protocol, ...ports };
  const d = id.data;
  switch (id.idType) {
    case V1IdType.ID_IPV4_ADDR:
    case V1IdType.ID_IPV6_ADDR:
      return { ...base, tsType: d.length === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE, startAddr: Buffer.from(d), endAddr: Buffer.from(d) };
    case V1IdType.ID_IPV4_ADDR_SUBNET:
    case V1IdType.ID_IPV6_ADDR_SUBNET: {
      const n = d.length / 2;
      const addr = d.subarray(0, n), m = d.subarray(n);
      const start = Buffer.alloc(n), end = Buffer.alloc(n);
      for (let i = 0; i < n; i++) { start[i] = addr[i]! & m[i]!; end[i] = (addr[i]! & m[i]!) | (~m[i]! & 0xff); }
      return { ...base, tsType: n === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE, startAddr: start, endAddr: end };
    }
    case V1IdType.ID_IPV4_ADDR_RANGE:
    case V1IdType.ID_IPV6_ADDR_RANGE: {
      const n = d.length / 2;
      const start = Buffer.from(d.subarray(0, n)), end = Buffer.from(d.subarray(n));
      if (Buffer.compare(start, end) > 0) throw new MalformedError('ID', 'address range ends before it starts');
      return { ...base, tsType: n === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE, startAddr: start, endAddr: end };
    }
    default:
      throw new UnsupportedError(`client ID type ${id.idType}`);
  }
}

/** RFC 2409 5.5: without client IDs the selectors are the ISAKMP peers' own addresses. */
export function hostSelector(address: string): TrafficSelector {
  const a = addrBytes(address);
  return { tsType: a.length === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE, ipProtocol: 0, startPort: 0, endPort: 65535, startAddr: a, endAddr: Buffer.from(a) };
}
