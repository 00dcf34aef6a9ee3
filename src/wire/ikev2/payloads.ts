/**
 * Bodies of the RFC 7296 section 3 payloads (everything after the 4-byte
 * generic header). The chain walk, the generic header and the SK/SKF
 * payloads live in message.ts because they need the enclosing message.
 */
import { ByteReader, ByteWriter } from '../../util/bytes.js';
import { MalformedError, TruncatedError } from '../../util/errors.js';
import { IdType, PayloadType, ProtocolId, TsType } from './constants.js';
import { decodeProposals, encodeProposals, fits16, fits8 } from './sa.js';
import type {
  CpAttribute, DeletePayload, IdPayload, Payload, TrafficSelector, TsPayload,
} from './types.js';

/** Names used in error messages and summaries. */
const NAMES: Record<number, string> = {
  [PayloadType.SA]: 'SA', [PayloadType.KE]: 'KE', [PayloadType.IDi]: 'IDi', [PayloadType.IDr]: 'IDr',
  [PayloadType.CERT]: 'CERT', [PayloadType.CERTREQ]: 'CERTREQ', [PayloadType.AUTH]: 'AUTH',
  [PayloadType.NONCE]: 'Nonce', [PayloadType.NOTIFY]: 'Notify', [PayloadType.DELETE]: 'Delete',
  [PayloadType.VENDOR_ID]: 'Vendor ID', [PayloadType.TSi]: 'TSi', [PayloadType.TSr]: 'TSr',
  [PayloadType.SK]: 'SK', [PayloadType.CP]: 'CP', [PayloadType.EAP]: 'EAP', [PayloadType.SKF]: 'SKF',
};
export function payloadName(type: number): string {
  return NAMES[type] ?? `payload type ${type}`;
}

/** The wire type number of a payload (UnknownPayload keeps its own). */
export function wireType(p: Payload): number {
  return p.type === 'unknown' ? p.rawType : p.type;
}

/** 3.9: "The size of the Nonce Data MUST be between 16 and 256 octets, inclusive." */
export const NONCE_MIN = 16;
export const NONCE_MAX = 256;

const TS_LEN: Record<number, { selector: number; addr: number }> = {
  [TsType.TS_IPV4_ADDR_RANGE]: { selector: 16, addr: 4 },
  [TsType.TS_IPV6_ADDR_RANGE]: { selector: 40, addr: 16 },
};

/*
 * RFC 7296 3.13.1, traffic selector:
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |   TS Type     |IP Protocol ID*|       Selector Length         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           Start Port*         |           End Port*           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                         Starting Address*                     ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                         Ending Address*                       ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Unknown TS types are rejected: their length cannot be checked and a
 * narrowed selector set built from a partial reading would be wrong.
 * Port ranges are not ordered here; start 65535 / end 0 means OPAQUE.
 */
function decodeSelector(r: ByteReader, what: string): TrafficSelector {
  const tsType = r.u8(`${what} type`);
  const ipProtocol = r.u8(`${what} IP protocol`);
  const len = r.u16(`${what} length`);
  const shape = TS_LEN[tsType];
  if (shape === undefined) throw new MalformedError(what, `unknown TS type ${tsType}`);
  if (len !== shape.selector) throw new MalformedError(what, `selector length ${len}, expected ${shape.selector} for TS type ${tsType}`);
  const startPort = r.u16(`${what} start port`);
  const endPort = r.u16(`${what} end port`);
  const startAddr = r.bytes(shape.addr, `${what} starting address`);
  const endAddr = r.bytes(shape.addr, `${what} ending address`);
  return { tsType, ipProtocol, startPort, endPort, startAddr, endAddr };
}

/*
 * RFC 7296 3.13, Traffic Selector payload body:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Number of TSs |                 RESERVED                      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                       <Traffic Selectors>                     ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
function decodeTs(type: TsPayload['type'], critical: boolean, r: ByteReader): TsPayload {
  const what = payloadName(type);
  const n = r.u8(`${what} count`);
  r.skip(3, `${what} reserved`);
  if (n === 0) throw new MalformedError(what, 'no traffic selectors');
  const selectors: TrafficSelector[] = [];
  for (let i = 0; i < n; i++) {
    if (r.atEnd) throw new MalformedError(what, `announces ${n} selectors but holds ${i}`);
    selectors.push(decodeSelector(r, `${what} selector ${i + 1}`));
  }
  if (!r.atEnd) throw new MalformedError(what, `${r.remaining} bytes after ${n} selectors`);
  return { type, critical, selectors };
}

/*
 * RFC 7296 3.5, Identification payload body (IDi and IDr):
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |   ID Type     |                 RESERVED                      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                   Identification Data                         ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
function decodeId(type: IdPayload['type'], critical: boolean, r: ByteReader): IdPayload {
  const what = payloadName(type);
  const idType = r.u8(`${what} ID type`);
  r.skip(3, `${what} reserved`);
  const data = r.rest();
  // Address IDs have a fixed size; other types only need to say something.
  if (idType === IdType.ID_IPV4_ADDR && data.length !== 4) throw new MalformedError(what, `ID_IPV4_ADDR of ${data.length} bytes`);
  if (idType === IdType.ID_IPV6_ADDR && data.length !== 16) throw new MalformedError(what, `ID_IPV6_ADDR of ${data.length} bytes`);
  if (data.length === 0) throw new MalformedError(what, 'empty identification data');
  return { type, critical, idType, data };
}

/*
 * RFC 7296 3.11, Delete payload body:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Protocol ID   |   SPI Size    |          Num of SPIs          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~               Security Parameter Index(es) (SPI)              ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
function decodeDelete(critical: boolean, r: ByteReader): DeletePayload {
  const protocol = r.u8('Delete protocol');
  const spiSize = r.u8('Delete SPI size');
  const num = r.u16('Delete SPI count');
  // 3.11: deleting the IKE SA names no SPI (the header already does); child SAs use 4-byte SPIs.
  if (protocol === ProtocolId.IKE) {
    if (spiSize !== 0 || num !== 0) throw new MalformedError('Delete', `IKE delete with SPI size ${spiSize} and ${num} SPIs, expected none`);
  } else if (protocol === ProtocolId.ESP || protocol === ProtocolId.AH) {
    if (spiSize !== 4) throw new MalformedError('Delete', `SPI size ${spiSize} for protocol ${protocol}, expected 4`);
  } else {
    throw new MalformedError('Delete', `protocol ID ${protocol}`);
  }
  if (r.remaining !== spiSize * num) throw new MalformedError('Delete', `${num} SPIs of ${spiSize} bytes need ${spiSize * num} bytes, have ${r.remaining}`);
  const spis: Buffer[] = [];
  for (let i = 0; i < num; i++) spis.push(r.bytes(spiSize));
  return { type: PayloadType.DELETE, critical, protocol, spiSize, spis };
}

/*
 * RFC 7296 3.15.1, configuration attribute:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |R|         Attribute Type      |            Length             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                             Value                             ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * The R bit is reserved: ignored on receipt, sent as zero.
 */
function decodeCpAttributes(r: ByteReader): CpAttribute[] {
  const attrs: CpAttribute[] = [];
  while (!r.atEnd) {
    const type = r.u16('CP attribute type') & 0x7fff;
    const len = r.u16('CP attribute length');
    if (len > r.remaining) throw new MalformedError('CP', `attribute ${type} length ${len} exceeds the payload`);
    attrs.push({ type, value: r.bytes(len) });
  }
  return attrs;
}

/**
 * Decodes the body of every payload type except SK and SKF. Short reads
 * inside a body mean the payload length lied, so they surface as
 * MalformedError naming the payload.
 */
export function decodeBody(type: number, critical: boolean, body: Buffer): Payload {
  const r = new ByteReader(body);
  try {
    return decodeBodyInner(type, critical, r);
  } catch (e) {
    if (e instanceof TruncatedError) throw new MalformedError(payloadName(type), `payload too short (${e.message})`);
    throw e;
  }
}

function decodeBodyInner(type: number, critical: boolean, r: ByteReader): Payload {
  switch (type) {
    case PayloadType.SA:
      // 3.3
      return { type, critical, proposals: decodeProposals(r) };
    case PayloadType.KE: {
      /*
       * RFC 7296 3.4:
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * |   Diffie-Hellman Group Num    |           RESERVED            |
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * ~                       Key Exchange Data                       ~
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       */
      const group = r.u16('KE group');
      r.skip(2, 'KE reserved');
      const data = r.rest();
      if (data.length === 0) throw new MalformedError('KE', 'no key exchange data');
      return { type, critical, group, data };
    }
    case PayloadType.IDi:
    case PayloadType.IDr:
      // 3.5
      return decodeId(type, critical, r);
    case PayloadType.CERT:
    case PayloadType.CERTREQ: {
      /*
       * RFC 7296 3.6 (CERT) and 3.7 (CERTREQ) share this body:
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * | Cert Encoding |                                               |
       * +-+-+-+-+-+-+-+-+                                               |
       * ~                Certificate Data / Certification Authority     ~
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * An empty CERTREQ (no CA hashes) is sent by real peers meaning
       * "any CA", so only CERT must carry data.
       */
      const encoding = r.u8(`${payloadName(type)} encoding`);
      const data = r.rest();
      if (type === PayloadType.CERT) {
        if (data.length === 0) throw new MalformedError('CERT', 'no certificate data');
        return { type, critical, encoding, data };
      }
      return { type, critical, encoding, data };
    }
    case PayloadType.AUTH: {
      /*
       * RFC 7296 3.8:
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * | Auth Method   |                RESERVED                       |
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * ~                      Authentication Data                      ~
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       */
      const method = r.u8('AUTH method');
      r.skip(3, 'AUTH reserved');
      const data = r.rest();
      if (data.length === 0) throw new MalformedError('AUTH', 'no authentication data');
      return { type, critical, method, data };
    }
    case PayloadType.NONCE: {
      // RFC 7296 3.9: the body is the Nonce Data itself.
      const data = r.rest();
      if (data.length < NONCE_MIN || data.length > NONCE_MAX) {
        throw new MalformedError('Nonce', `nonce of ${data.length} bytes, must be ${NONCE_MIN}..${NONCE_MAX}`);
      }
      return { type, critical, data };
    }
    case PayloadType.NOTIFY: {
      /*
       * RFC 7296 3.10:
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * |  Protocol ID  |   SPI Size    |      Notify Message Type      |
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * ~                Security Parameter Index (SPI)                 ~
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * ~                       Notification Data                       ~
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * The protocol ID is kept raw: 3.10 says to ignore it when the SPI is
       * empty, which is the IKE layer's call, not the codec's.
       */
      const protocol = r.u8('Notify protocol');
      const spiSize = r.u8('Notify SPI size');
      const notifyType = r.u16('Notify type');
      if (spiSize !== 0 && spiSize !== 4 && spiSize !== 8) throw new MalformedError('Notify', `SPI size ${spiSize}`);
      if (spiSize > r.remaining) throw new MalformedError('Notify', `SPI size ${spiSize} exceeds the payload`);
      const spi = r.bytes(spiSize);
      return { type, critical, protocol, spi, notifyType, data: r.rest() };
    }
    case PayloadType.DELETE:
      // 3.11
      return decodeDelete(critical, r);
    case PayloadType.VENDOR_ID:
      // RFC 7296 3.12: opaque; may even be empty.
      return { type, critical, data: r.rest() };
    case PayloadType.TSi:
    case PayloadType.TSr:
      // 3.13
      return decodeTs(type, critical, r);
    case PayloadType.CP: {
      /*
       * RFC 7296 3.15:
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * |   CFG Type    |                    RESERVED                   |
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       * ~                   Configuration Attributes                    ~
       * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       */
      const cfgType = r.u8('CP type');
      r.skip(3, 'CP reserved');
      return { type, critical, cfgType, attributes: decodeCpAttributes(r) };
    }
    case PayloadType.EAP: {
      // RFC 7296 3.16: carried opaque, but an EAP message has at least Code, Identifier and Length (RFC 3748 4).
      const data = r.rest();
      if (data.length < 4) throw new MalformedError('EAP', `EAP message of ${data.length} bytes, need at least 4`);
      return { type, critical, data };
    }
    default:
      // RFC 7296 2.5: unknown payloads are kept so the critical bit can be honoured.
      return { type: 'unknown', rawType: type, critical, data: r.rest() };
  }
}

/** Writes the body of a non-SK payload; the caller writes the generic header. */
export function encodeBody(w: ByteWriter, p: Payload): void {
  const what = p.type === 'unknown' ? payloadName(p.rawType) : payloadName(p.type);
  switch (p.type) {
    case PayloadType.SA:
      encodeProposals(w, p.proposals);
      return;
    case PayloadType.KE:
      w.u16(fits16(p.group, what, 'group')).u16(0).bytes(p.data);
      return;
    case PayloadType.IDi:
    case PayloadType.IDr:
      w.u8(fits8(p.idType, what, 'ID type')).zeros(3).bytes(p.data);
      return;
    case PayloadType.CERT:
    case PayloadType.CERTREQ:
      w.u8(fits8(p.encoding, what, 'encoding')).bytes(p.data);
      return;
    case PayloadType.AUTH:
      w.u8(fits8(p.method, what, 'method')).zeros(3).bytes(p.data);
      return;
    case PayloadType.NONCE:
    case PayloadType.VENDOR_ID:
    case PayloadType.EAP:
    case 'unknown':
      w.bytes(p.data);
      return;
    case PayloadType.NOTIFY:
      w.u8(fits8(p.protocol, what, 'protocol')).u8(fits8(p.spi.length, what, 'SPI size'))
        .u16(fits16(p.notifyType, what, 'type')).bytes(p.spi).bytes(p.data);
      return;
    case PayloadType.DELETE:
      w.u8(fits8(p.protocol, what, 'protocol')).u8(fits8(p.spiSize, what, 'SPI size')).u16(fits16(p.spis.length, what, 'SPI count'));
      for (const spi of p.spis) {
        if (spi.length !== p.spiSize) throw new MalformedError(what, `SPI of ${spi.length} bytes with SPI size ${p.spiSize}`);
        w.bytes(spi);
      }
      return;
    case PayloadType.TSi:
    case PayloadType.TSr:
      w.u8(fits8(p.selectors.length, what, 'selector count')).zeros(3);
      for (const s of p.selectors) {
        const shape = TS_LEN[s.tsType];
        if (shape === undefined) throw new MalformedError(what, `unknown TS type ${s.tsType}`);
        if (s.startAddr.length !== shape.addr || s.endAddr.length !== shape.addr) {
          throw new MalformedError(what, `TS type ${s.tsType} needs ${shape.addr}-byte addresses`);
        }
        w.u8(s.tsType).u8(fits8(s.ipProtocol, what, 'IP protocol')).u16(shape.selector)
          .u16(fits16(s.startPort, what, 'start port')).u16(fits16(s.endPort, what, 'end port'))
          .bytes(s.startAddr).bytes(s.endAddr);
      }
      return;
    case PayloadType.CP:
      w.u8(fits8(p.cfgType, what, 'CFG type')).zeros(3);
      for (const a of p.attributes) {
        if (a.type < 0 || a.type > 0x7fff) throw new MalformedError(what, `attribute type ${a.type} does not fit 15 bits`);
        w.u16(a.type).u16(fits16(a.value.length, what, 'attribute length')).bytes(a.value);
      }
      return;
    case PayloadType.SK:
    case PayloadType.SKF:
      throw new MalformedError(what, 'encrypted payloads are written by the message encoder');
  }
}
