/** Loads the wire fixtures (test/fixtures/wire); see the READMEs there. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to dist/test/unit/wire/, so the repository root is four levels up.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');

export function fixture(...parts: string[]): Buffer {
  return fs.readFileSync(path.join(FIXTURES, ...parts));
}

interface MessagesJson {
  'rub-nds': Record<string, string>;
  'wireshark-ccm': { ike_message: string; plaintext?: string }[];
  'wireshark-wiki': { frame: number; ike_message: string; plaintext: string };
}
export const messages = (): MessagesJson => JSON.parse(fixture('wire', 'messages.json').toString('utf8')) as MessagesJson;

/**
 * UDP payloads from a classic pcap file. Handles link types 0 (BSD loopback,
 * 4-byte family header) and 1 (Ethernet), IPv4 only, and strips the RFC 3948
 * non-ESP marker on port 4500.
 */
export function pcapUdpPayloads(file: Buffer): Buffer[] {
  const magic = file.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4) throw new Error('not a little-endian microsecond pcap');
  const linkType = file.readUInt32LE(20);
  const out: Buffer[] = [];
  let off = 24;
  while (off < file.length) {
    const incl = file.readUInt32LE(off + 8);
    let frame = file.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (linkType === 0) frame = frame.subarray(4);
    else if (linkType === 1) frame = frame.subarray(14);
    else throw new Error(`link type ${linkType}`);
    if (frame[0]! >> 4 !== 4 || frame[9] !== 17) continue; // IPv4 / UDP only
    const ihl = (frame[0]! & 0x0f) * 4;
    const totalLength = frame.readUInt16BE(2);
    const udp = frame.subarray(ihl, totalLength);
    let payload = udp.subarray(8, udp.readUInt16BE(4));
    const port = udp.readUInt16BE(2);
    if (port === 4500 && payload.length >= 4 && payload.readUInt32BE(0) === 0) payload = payload.subarray(4);
    out.push(Buffer.from(payload));
  }
  return out;
}

/** Strips RFC 7296 3.14 padding: the last byte is the pad length. */
export function unpad(plain: Buffer): Buffer {
  const pad = plain[plain.length - 1]!;
  return plain.subarray(0, plain.length - 1 - pad);
}
