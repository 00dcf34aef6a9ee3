/**
 * Bodies of the RFC 2408 section 3 payloads and the RFC 3947 NAT-T payloads
 * (everything after the 4-octet generic header). The chain walk lives in
 * message.ts.
 */
import { ByteReader, ByteWriter } from '../../util/bytes.js';
import { MalformedError, TruncatedError } from '../../util/errors.js';
import { V1DraftPayloadType, V1IdType, V1PayloadType, V1ProtocolId } from './constants.js';
import { decodeSaBody, encodeSaBody, fits16, fits32, fits8 } from './sa.js';
import type { V1DeletePayload, V1IdPayload, V1NatOaPayload, V1NotifyPayload, V1Payload } from './types.js';

const P = V1PayloadType;

const NAMES: Record<number, string> = {
  [P.SA]: 'SA', [P.PROPOSAL]: 'Proposal', [P.TRANSFORM]: 'Transform', [P.KE]: 'KE', [P.ID]: 'ID',
  [P.CERT]: 'CERT', [P.CR]: 'CR', [P.HASH]: 'HASH', [P.SIG]: 'SIG', [P.NONCE]: 'Nonce', [P.N]: 'Notification',
  [P.D]: 'Delete', [P.VID]: 'Vendor ID', [P.NAT_D]: 'NAT-D', [P.NAT_OA]: 'NAT-OA',
  [V1DraftPayloadType.NAT_D_DRAFT]: 'NAT-D (draft)', [V1DraftPayloadType.NAT_OA_DRAFT]: 'NAT-OA (draft)',
};
export function v1PayloadName(type: number): string {
  return NAMES[type] ?? `payload type ${type}`;
}

/** The number a payload goes on the wire with (draft NAT-T payloads keep theirs). */
export function v1WireType(p: V1Payload): number {
  switch (p.type) {
    case 'unknown': return p.rawType;
    case P.NAT_D: return p.draft ? V1DraftPayloadType.NAT_D_DRAFT : P.NAT_D;
    case P.NAT_OA: return p.draft ? V1DraftPayloadType.NAT_OA_DRAFT : P.NAT_OA;
    default: return p.type;
  }
}

/** RFC 2409 5: "The length of nonce payload MUST be between 8 and 256 bytes inclusive." */
export const V1_NONCE_MIN = 8;
export const V1_NONCE_MAX = 256;

/** RFC 2407 4.6.2.1: the fixed data sizes of address identities; others need only be non-empty. */
const ID_DATA_LENGTH: Record<number, number> = {
  [V1IdType.ID_IPV4_ADDR]: 4, [V1IdType.ID_IPV4_ADDR_SUBNET]: 8, [V1IdType.ID_IPV4_ADDR_RANGE]: 8,
  [V1IdType.ID_IPV6_ADDR]: 16, [V1IdType.ID_IPV6_ADDR_SUBNET]: 32, [V1IdType.ID_IPV6_ADDR_RANGE]: 32,
};

/*
 * RFC 2408 3.8 with RFC 2407 4.6.2, Identification payload body:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !   ID Type     !  Protocol ID  !             Port              !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                     Identification Data                       ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * Protocol and port matter for Quick Mode client IDs (RFC 2409 5.5); in
 * phase 1 they are 0 or UDP/500 (RFC 2407 4.6.2), which is the IKE layer's check.
 */
function decodeId(r: ByteReader): V1IdPayload {
  const idType = r.u8('ID type');
  const protocol = r.u8('ID protocol');
  const port = r.u16('ID port');
  const data = r.rest();
  const want = ID_DATA_LENGTH[idType];
  if (want !== undefined && data.length !== want) throw new MalformedError('ID', `ID type ${idType} needs ${want} bytes of data, got ${data.length}`);
  if (data.length === 0) throw new MalformedError('ID', 'empty identification data');
  return { type: P.ID, idType, protocol, port, data };
}

/*
 * RFC 2408 3.14, Notification payload body:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !              Domain of Interpretation  (DOI)                  !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !  Protocol-ID  !   SPI Size    !      Notify Message Type      !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                Security Parameter Index (SPI)                 ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                       Notification Data                       ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * DOI and protocol stay raw: deployed peers send DOI 0 or 1 and ISAKMP
 * notifications with SPI sizes 0 or 16 (the cookie pair, as RFC 3706 5 uses
 * for R-U-THERE), so only the framing is judged here.
 */
function decodeNotify(r: ByteReader): V1NotifyPayload {
  const doi = r.u32('Notification DOI');
  const protocol = r.u8('Notification protocol');
  const spiSize = r.u8('Notification SPI size');
  const notifyType = r.u16('Notification type');
  if (spiSize > r.remaining) throw new MalformedError('Notification', `SPI size ${spiSize} exceeds the payload`);
  const spi = r.bytes(spiSize);
  return { type: P.N, doi, protocol, spi, notifyType, data: r.rest() };
}

/*
 * RFC 2408 3.15, Delete payload body:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !              Domain of Interpretation  (DOI)                  !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !  Protocol-Id  !   SPI Size    !           # of SPIs           !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~               Security Parameter Index(es) (SPI)              ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * Deleting the ISAKMP SA names it by its cookie pair (16 octets); AH and ESP
 * SAs by 4-octet SPIs. A delete that names nothing deletes nothing.
 */
function decodeDelete(r: ByteReader): V1DeletePayload {
  const doi = r.u32('Delete DOI');
  const protocol = r.u8('Delete protocol');
  const spiSize = r.u8('Delete SPI size');
  const num = r.u16('Delete SPI count');
  if (protocol === V1ProtocolId.ISAKMP && spiSize !== 16) throw new MalformedError('Delete', `ISAKMP SA delete with SPI size ${spiSize}, expected 16`);
  if ((protocol === V1ProtocolId.IPSEC_AH || protocol === V1ProtocolId.IPSEC_ESP) && spiSize !== 4) {
    throw new MalformedError('Delete', `SPI size ${spiSize} for protocol ${protocol}, expected 4`);
  }
  if (spiSize === 0 || num === 0) throw new MalformedError('Delete', `${num} SPIs of ${spiSize} bytes name no SA`);
  if (r.remaining !== spiSize * num) throw new MalformedError('Delete', `${num} SPIs of ${spiSize} bytes need ${spiSize * num} bytes, have ${r.remaining}`);
  const spis: Buffer[] = [];
  for (let i = 0; i < num; i++) spis.push(r.bytes(spiSize));
  return { type: P.D, doi, protocol, spiSize, spis };
}

/*
 * RFC 3947 5.2, NAT-OA payload body:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !   ID Type     !   RESERVED    !            RESERVED           !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * !         IPv4 (4 octets) or IPv6 address (16 octets)           !
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
function decodeNatOa(r: ByteReader, draft: boolean): V1NatOaPayload {
  const idType = r.u8('NAT-OA ID type');
  r.skip(3, 'NAT-OA reserved');
  const address = r.rest();
  const want = idType === V1IdType.ID_IPV4_ADDR ? 4 : idType === V1IdType.ID_IPV6_ADDR ? 16 : undefined;
  if (want === undefined) throw new MalformedError('NAT-OA', `ID type ${idType}, expected ID_IPV4_ADDR or ID_IPV6_ADDR`);
  if (address.length !== want) throw new MalformedError('NAT-OA', `address of ${address.length} bytes for ID type ${idType}`);
  return { type: P.NAT_OA, draft, idType, address };
}

function nonEmpty(r: ByteReader, what: string): Buffer {
  const data = r.rest();
  if (data.length === 0) throw new MalformedError(what, 'empty payload');
  return data;
}

/**
 * Decodes one payload body. Short reads inside a body mean the payload
 * length lied, so they surface as MalformedError naming the payload.
 */
export function decodeV1Body(type: number, body: Buffer): V1Payload {
  const r = new ByteReader(body);
  try {
    return decodeV1BodyInner(type, r);
  } catch (e) {
    if (e instanceof TruncatedError) throw new MalformedError(v1PayloadName(type), `payload too short (${e.message})`);
    throw e;
  }
}

function decodeV1BodyInner(type: number, r: ByteReader): V1Payload {
  switch (type) {
    case P.SA:
      // RFC 2408 3.4
      return { type, ...decodeSaBody(r) };
    case P.PROPOSAL:
    case P.TRANSFORM:
      // RFC 2408 3.5/3.6: they only exist inside an SA payload.
      throw new MalformedError(v1PayloadName(type), 'outside an SA payload');
    case P.KE:
      // RFC 2408 3.7: the body is the Key Exchange Data.
      return { type, data: nonEmpty(r, 'KE') };
    case P.ID:
      return decodeId(r);
    case P.CERT: {
      // RFC 2408 3.9: Cert Encoding (1 octet) then the certificate.
      const encoding = r.u8('CERT encoding');
      return { type, encoding, data: nonEmpty(r, 'CERT') };
    }
    case P.CR: {
      // RFC 2408 3.10: Cert Type (1 octet) then an optional Certificate Authority.
      const encoding = r.u8('CR type');
      return { type, encoding, authority: r.rest() };
    }
    case P.HASH:
      // RFC 2408 3.11
      return { type, data: nonEmpty(r, 'HASH') };
    case P.SIG:
      // RFC 2408 3.12
      return { type, data: nonEmpty(r, 'SIG') };
    case P.NONCE: {
      // RFC 2408 3.13, sized by RFC 2409 5.
      const data = r.rest();
      if (data.length < V1_NONCE_MIN || data.length > V1_NONCE_MAX) {
        throw new MalformedError('Nonce', `nonce of ${data.length} bytes, must be ${V1_NONCE_MIN}..${V1_NONCE_MAX}`);
      }
      return { type, data };
    }
    case P.N:
      return decodeNotify(r);
    case P.D:
      return decodeDelete(r);
    case P.VID:
      // RFC 2408 3.16: opaque.
      return { type, data: r.rest() };
    case P.NAT_D:
    case V1DraftPayloadType.NAT_D_DRAFT:
      // RFC 3947 3.2: HASH of address and port; its length is the negotiated hash's.
      return { type: P.NAT_D, draft: type !== P.NAT_D, data: nonEmpty(r, 'NAT-D') };
    case P.NAT_OA:
    case V1DraftPayloadType.NAT_OA_DRAFT:
      return decodeNatOa(r, type !== P.NAT_OA);
    default:
      return { type: 'unknown', rawType: type, data: r.rest() };
  }
}

/** Writes the body of a payload; the caller writes the generic header. */
export function encodeV1Body(w: ByteWriter, p: V1Payload): void {
  const what = v1PayloadName(v1WireType(p));
  switch (p.type) {
    case P.SA:
      encodeSaBody(w, p.doi, p.situation, p.proposals);
      return;
    case P.ID:
      w.u8(fits8(p.idType, what, 'ID type')).u8(fits8(p.protocol, what, 'protocol')).u16(fits16(p.port, what, 'port')).bytes(p.data);
      return;
    case P.CERT:
      w.u8(fits8(p.encoding, what, 'encoding')).bytes(p.data);
      return;
    case P.CR:
      w.u8(fits8(p.encoding, what, 'type')).bytes(p.authority);
      return;
    case P.N:
      w.u32(fits32(p.doi, what, 'DOI')).u8(fits8(p.protocol, what, 'protocol')).u8(fits8(p.spi.length, what, 'SPI size'))
        .u16(fits16(p.notifyType, what, 'type')).bytes(p.spi).bytes(p.data);
      return;
    case P.D:
      w.u32(fits32(p.doi, what, 'DOI')).u8(fits8(p.protocol, what, 'protocol')).u8(fits8(p.spiSize, what, 'SPI size'))
        .u16(fits16(p.spis.length, what, 'SPI count'));
      for (const spi of p.spis) {
        if (spi.length !== p.spiSize) throw new MalformedError(what, `SPI of ${spi.length} bytes with SPI size ${p.spiSize}`);
        w.bytes(spi);
      }
      return;
    case P.NAT_OA:
      w.u8(fits8(p.idType, what, 'ID type')).zeros(3).bytes(p.address);
      return;
    case P.KE:
    case P.HASH:
    case P.SIG:
    case P.NONCE:
    case P.VID:
    case P.NAT_D:
    case 'unknown':
      w.bytes(p.data);
      return;
  }
}
