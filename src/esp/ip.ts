/**
 * Just enough IPv4/IPv6 for an ESP engine: where an inner packet's selector
 * fields are (RFC 4301 4.4.1.1: addresses, next layer protocol, ports), its
 * real length (so tunnel-mode TFC padding can be cut off, RFC 4303 2.7), and
 * the IPv4 header surgery transport mode needs (RFC 4303 3.1.1).
 *
 * Hot path: these read the Buffer directly with explicit bounds checks
 * instead of going through ByteReader, and return offsets into the packet
 * rather than copies.
 */
import { MalformedError, TruncatedError, UnsupportedError, err, ok, type Result } from '../util/errors.js';

/** RFC 4301 4.4.1.1: the ports are OPAQUE (absent or not visible, e.g. a non-initial fragment). */
export const OPAQUE_PORT = -1;

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
/** RFC 4303 2.6: "no next header", the mark of a dummy packet. */
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

/** Selector fields of an IP packet, as offsets into it (nothing is copied). */
export interface InnerPacket {
  readonly family: 4 | 6;
  /** Offsets of the 4- or 16-octet source and destination addresses. */
  readonly srcAt: number;
  readonly dstAt: number;
  /** The upper-layer protocol, after any IPv6 extension headers. */
  readonly protocol: number;
  /** Ports, or ICMP type<<8|code in both; OPAQUE_PORT when not visible. */
  readonly srcPort: number;
  readonly dstPort: number;
  /** Length the header claims; octets beyond it are padding. */
  readonly totalLength: number;
  /** Octets of IP header (IPv4 with options, or IPv6 with extension headers). */
  readonly headerLength: number;
  /** A fragment of a larger datagram (first or not). */
  readonly fragment: boolean;
}

/** RFC 4301 4.4.1.1 / RFC 7296 3.13.1: ICMP type and code take the place of a port. */
function portsAt(buf: Buffer, at: number, end: number, protocol: number): [number, number] {
  switch (protocol) {
    case IPPROTO_TCP: case IPPROTO_UDP: case IPPROTO_SCTP: case IPPROTO_UDPLITE:
      // A transport header too short to hold ports leaves them OPAQUE; the selector decides.
      if (at + 4 > end) return [OPAQUE_PORT, OPAQUE_PORT];
      return [buf.readUInt16BE(at), buf.readUInt16BE(at + 2)];
    case IPPROTO_ICMP: case IPPROTO_ICMPV6: {
      if (at + 2 > end) return [OPAQUE_PORT, OPAQUE_PORT];
      const typeCode = (buf[at]! << 8) | buf[at + 1]!;
      return [typeCode, typeCode];
    }
    default:
      return [OPAQUE_PORT, OPAQUE_PORT];
  }
}

function decodeIPv4(buf: Buffer): Result<InnerPacket, TruncatedError | MalformedError> {
  if (buf.length < 20) return err(new TruncatedError('IPv4 header', 20, buf.length));
  const ihl = (buf[0]! & 0x0f) * 4;
  if (ihl < 20) return err(new MalformedError('IPv4 header', `IHL ${ihl / 4}`));
  if (buf.length < ihl) return err(new TruncatedError('IPv4 header options', ihl, buf.length));
  const totalLength = buf.readUInt16BE(2);
  if (totalLength < ihl) return err(new MalformedError('IPv4 header', `total length ${totalLength} below header length ${ihl}`));
  if (totalLength > buf.length) return err(new TruncatedError('IPv4 packet', totalLength, buf.length));
  const flagsOffset = buf.readUInt16BE(6);
  const offset = flagsOffset & 0x1fff;
  const moreFragments = (flagsOffset & 0x2000) !== 0;
  const protocol = buf[9]!;
  // RFC 4301 7.1: only the first fragment shows the ports.
  const [srcPort, dstPort] = offset === 0 ? portsAt(buf, ihl, totalLength, protocol) : [OPAQUE_PORT, OPAQUE_PORT];
  return ok({ family: 4, srcAt: 12, dstAt: 16, protocol, srcPort, dstPort, totalLength, headerLength: ihl, fragment: offset !== 0 || moreFragments });
}

/** Bound on extension headers walked, so a crafted chain costs a fixed amount. */
const MAX_EXTENSION_HEADERS = 8;

function decodeIPv6(buf: Buffer): Result<InnerPacket, TruncatedError | MalformedError> {
  if (buf.length < 40) return err(new TruncatedError('IPv6 header', 40, buf.length));
  // RFC 8200 3: payload length excludes the fixed header. 0 with more octets is a jumbogram (RFC 2675), not for a tunnel.
  const payloadLength = buf.readUInt16BE(4);
  if (payloadLength === 0 && buf.length > 40) return err(new MalformedError('IPv6 header', 'jumbogram (payload length 0)'));
  const totalLength = 40 + payloadLength;
  if (totalLength > buf.length) return err(new TruncatedError('IPv6 packet', totalLength, buf.length));
  let next = buf[6]!;
  let at = 40;
  let fragment = false;
  let opaque = false;
  for (let i = 0; ; i++) {
    if (next !== IPPROTO_HOPOPTS && next !== IPPROTO_ROUTING && next !== IPPROTO_DSTOPTS && next !== IPPROTO_FRAGMENT && next !== IPPROTO_AH) break;
    if (i === MAX_EXTENSION_HEADERS) return err(new MalformedError('IPv6 packet', `more than ${MAX_EXTENSION_HEADERS} extension headers`));
    if (at + 8 > totalLength) return err(new TruncatedError('IPv6 extension header', 8, totalLength - at));
    const following = buf[at]!;
    let len: number;
    if (next === IPPROTO_FRAGMENT) {
      // RFC 8200 4.5: fixed 8 octets; a nonzero offset hides the upper-layer header.
      fragment = true;
      if ((buf.readUInt16BE(at + 2) >>> 3) !== 0) opaque = true;
      len = 8;
    } else if (next === IPPROTO_AH) {
      len = (buf[at + 1]! + 2) * 4; // RFC 4302 2.2: in 32-bit words, minus 2
    } else {
      len = (buf[at + 1]! + 1) * 8; // RFC 8200 4.3: in 8-octet units, not counting the first
    }
    if (at + len > totalLength) return err(new TruncatedError('IPv6 extension header', len, totalLength - at));
    at += len;
    next = following;
  }
  const [srcPort, dstPort] = opaque ? [OPAQUE_PORT, OPAQUE_PORT] : portsAt(buf, at, totalLength, next);
  return ok({ family: 6, srcAt: 8, dstAt: 24, protocol: next, srcPort, dstPort, totalLength, headerLength: at, fragment });
}

/**
 * Decodes the selector fields of an IP packet. `family`, when given (from
 * ESP's Next Header: 4 or 41), must agree with the version nibble.
 */
export function decodeInnerPacket(buf: Buffer, family?: 4 | 6): Result<InnerPacket, TruncatedError | MalformedError> {
  if (buf.length < 1) return err(new TruncatedError('IP header', 1, 0));
  const version = buf[0]! >>> 4;
  if (family !== undefined && version !== family) return err(new MalformedError('inner packet', `version ${version} where IPv${family} was announced`));
  if (version === 4) return decodeIPv4(buf);
  if (version === 6) return decodeIPv6(buf);
  return err(new MalformedError('IP header', `version ${version}`));
}

/** RFC 791 / RFC 1071: one's-complement sum over the header, checksum field included as stored. */
export function ipv4HeaderChecksum(buf: Buffer, start: number, length: number): number {
  let sum = 0;
  for (let i = start; i < start + length; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Dotted-quad to 4 octets; null when `s` is not an IPv4 address. */
export function parseIPv4(s: string): Buffer | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/**
 * Transport mode, outbound (RFC 4303 3.1.1): the IPv4 header (with its
 * options) stays in front, now saying protocol 50, with the new total length
 * and checksum. For a raw-IP backend; a UDP-encapsulated one (RFC 3948)
 * sends only the ESP packet from its socket.
 */
export function buildTransportIPv4(originalHeader: Buffer, esp: Buffer): Result<Buffer, MalformedError> {
  const hl = originalHeader.length;
  if (hl < 20 || hl > 60 || hl % 4 !== 0 || originalHeader[0]! >>> 4 !== 4) return err(new MalformedError('IPv4 header', `${hl} octets`));
  if (hl + esp.length > 0xffff) return err(new MalformedError('IPv4 packet', `${hl + esp.length} octets exceeds 65535`));
  const out = Buffer.allocUnsafe(hl + esp.length);
  originalHeader.copy(out, 0);
  esp.copy(out, hl);
  out.writeUInt16BE(hl + esp.length, 2);
  out[9] = IPPROTO_ESP;
  out.writeUInt16BE(0, 10);
  out.writeUInt16BE(ipv4HeaderChecksum(out, 0, hl), 10);
  return ok(out);
}

/**
 * Transport mode, inbound: give the decrypted upper-layer payload an IPv4
 * header again so it can be written to a TUN device. The addresses are the
 * SA's (the outer header is gone: the UDP socket consumed it).
 */
export function rebuildTransportIPv4(src: Buffer, dst: Buffer, protocol: number, payload: Buffer): Result<Buffer, MalformedError | UnsupportedError> {
  if (src.length !== 4 || dst.length !== 4) return err(new UnsupportedError('transport mode without IPv4 SA addresses'));
  if (20 + payload.length > 0xffff) return err(new MalformedError('IPv4 packet', `${20 + payload.length} octets exceeds 65535`));
  const out = Buffer.allocUnsafe(20 + payload.length);
  out[0] = 0x45;
  out[1] = 0;
  out.writeUInt16BE(20 + payload.length, 2);
  // RFC 6864 4.1: an atomic datagram (DF set, never fragmented) may carry identification 0.
  out.writeUInt32BE(0x0000_4000, 4);
  out[8] = 64;
  out[9] = protocol;
  out.writeUInt16BE(0, 10);
  src.copy(out, 12);
  dst.copy(out, 16);
  out.writeUInt16BE(ipv4HeaderChecksum(out, 0, 20), 10);
  payload.copy(out, 20);
  return ok(out);
}
