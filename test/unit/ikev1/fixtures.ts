/** Loads test/fixtures/ikev1 (see the README there). */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to dist/test/unit/ikev1/, so the repository root is four levels up.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const DIR = path.join(ROOT, 'test', 'fixtures', 'ikev1');

export function fixture(name: string): Buffer {
  return fs.readFileSync(path.join(DIR, name));
}
export function fixtureText(name: string): string {
  return fixture(name).toString('utf8');
}
export const H = (s: string): Buffer => Buffer.from(s.replace(/[\s:]/g, ''), 'hex');

/** `KEY = value` lines (CAVS blocks, the SP 800-135 example); later keys win. */
export function keyValues(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_^\-]+)\s*=\s*([0-9A-Za-z]+)\s*$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** One ike-scan line: g_xr:g_xi:cky_r:cky_i:sai_b:idir_b:ni_b:nr_b:hash_r. */
export interface IkeScanVector { gxr: Buffer; gxi: Buffer; ckyR: Buffer; ckyI: Buffer; saiB: Buffer; idirB: Buffer; niB: Buffer; nrB: Buffer; hashR: Buffer }
export function ikeScan(name: string): IkeScanVector[] {
  return fixtureText(name).split('\n').filter((l) => l.trim() !== '').map((l) => {
    const f = l.trim().split(':').map(H);
    if (f.length !== 9) throw new Error(`${name}: ${f.length} fields`);
    const [gxr, gxi, ckyR, ckyI, saiB, idirB, niB, nrB, hashR] = f as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
    return { gxr, gxi, ckyR, ckyI, saiB, idirB, niB, nrB, hashR };
  });
}

/** One recorded handshake of the RUB-NDS file; fields as the collector named them. */
export interface RecordedHandshake {
  mode: 'main' | 'aggr';
  CKY_I: string; CKY_R: string; SAi_b: string; g_xi: string; g_xr: string; Ni_b: string; Nr_b: string;
  initiator_dh_private_x: string; g_xy: string;
  SKEYID: string; SKEYID_d: string; SKEYID_a: string; SKEYID_e: string; Ka_aes128: string; phase1_IV0: string;
  messages: Record<string, string>;
  m5_decrypted?: string; m6_decrypted?: string; m3_decrypted?: string; m3_encrypted?: boolean;
  IDii_b: string; IDir_b: string; HASH_I: string; HASH_R: string;
  QM_message_id: string; QM_IV: string;
  qm1: string; qm2: string; qm3: string; qm1_decrypted: string; qm2_decrypted: string; qm3_decrypted: string;
  QM_Ni_b: string; QM_Nr_b: string; HASH1: string; HASH2: string; HASH3: string;
  QM_PFS: boolean; QM_protocol: number; QM_SPI_initiator: string; QM_SPI_responder: string;
  KEYMAT_for_SPI_initiator_36B: string; KEYMAT_for_SPI_responder_36B: string;
}
export function recorded(): { main: RecordedHandshake; aggressive: RecordedHandshake } {
  const j = JSON.parse(fixtureText('ikev1-recorded-handshakes-psk-aes128-sha1-modp1024.json')) as Record<string, RecordedHandshake>;
  return { main: j['Main PSK']!, aggressive: j['Aggressive PSK']! };
}

/**
 * ISAKMP datagrams from a classic little-endian pcap (link types 0 and 1,
 * IPv4, UDP 500 or 4500). On 4500 only datagrams with the RFC 3948 non-ESP
 * marker are kept (the marker stripped): the rest are ESP or keepalives.
 */
export function pcapIsakmp(file: Buffer): Buffer[] {
  if (file.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error('not a little-endian microsecond pcap');
  const linkType = file.readUInt32LE(20);
  const out: Buffer[] = [];
  let off = 24;
  while (off < file.length) {
    const incl = file.readUInt32LE(off + 8);
    let frame = file.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (linkType === 0) frame = frame.subarray(4);
    else if (linkType === 1) frame = frame.subarray(frame.readUInt16BE(12) === 0x8100 ? 18 : 14);
    else throw new Error(`link type ${linkType}`);
    if (frame[0]! >> 4 !== 4 || frame[9] !== 17) continue;
    const udp = frame.subarray((frame[0]! & 0x0f) * 4, frame.readUInt16BE(2));
    const sport = udp.readUInt16BE(0);
    const dport = udp.readUInt16BE(2);
    let payload = udp.subarray(8, udp.readUInt16BE(4));
    if (sport === 4500 || dport === 4500) {
      if (payload.length < 4 || payload.readUInt32BE(0) !== 0) continue;
      payload = payload.subarray(4);
    } else if (sport !== 500 && dport !== 500) {
      continue;
    }
    out.push(Buffer.from(payload));
  }
  return out;
}
