/**
 * Captured datagrams for data-plane tests: tcpdump writes a pcap file inside
 * a namespace, and the reader below takes the UDP payloads out of it, so a
 * test can resend real ESP packets a peer produced (replayed, tampered,
 * truncated) without a raw socket of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface CapturedUdp {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

/** Link-layer header types tcpdump may write (https://www.tcpdump.org/linktypes.html). */
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_VLAN = 0x8100;
const IPPROTO_UDP = 17;

/** Offset of the IP header in one frame, or -1 when the frame carries no IPv4. */
function ipOffset(linkType: number, frame: Buffer): number {
  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      let at = 12;
      let type = frame.length >= 14 ? frame.readUInt16BE(at) : -1;
      while (type === ETHERTYPE_VLAN && frame.length >= at + 6) { at += 4; type = frame.readUInt16BE(at); }
      return type === ETHERTYPE_IPV4 ? at + 2 : -1;
    }
    case LINKTYPE_RAW: return frame.length > 0 && frame[0]! >> 4 === 4 ? 0 : -1;
    case LINKTYPE_LINUX_SLL: return frame.length >= 16 && frame.readUInt16BE(14) === ETHERTYPE_IPV4 ? 16 : -1;
    case LINKTYPE_LINUX_SLL2: return frame.length >= 20 && frame.readUInt16BE(0) === ETHERTYPE_IPV4 ? 20 : -1;
    default: throw new Error(`pcap: link type ${linkType} is not one this reader knows`);
  }
}

function ipv4Text(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * The IPv4 UDP datagrams of a classic pcap file, in capture order. Fragments
 * and frames cut short by the snap length are left out: a test wants whole
 * payloads or none.
 */
export function udpFromPcap(file: Buffer): CapturedUdp[] {
  if (file.length < 24) throw new Error(`pcap: ${file.length} octets is shorter than the file header`);
  const magic = file.readUInt32LE(0);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`pcap: bad magic ${magic.toString(16)} (pcapng is not read here)`);
  const u32 = (at: number): number => (le ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const linkType = u32(20) & 0x0fffffff;
  const out: CapturedUdp[] = [];
  let at = 24;
  while (at + 16 <= file.length) {
    const inclLen = u32(at + 8), origLen = u32(at + 12);
    const start = at + 16;
    at = start + inclLen;
    if (at > file.length) break; // tcpdump killed mid-record
    if (inclLen < origLen) continue;
    const frame = file.subarray(start, start + inclLen);
    const ip = ipOffset(linkType, frame);
    if (ip < 0 || frame.length < ip + 20) continue;
    const ihl = (frame[ip]! & 0x0f) * 4;
    const total = frame.readUInt16BE(ip + 2);
    const fragment = frame.readUInt16BE(ip + 6) & 0x3fff;
    if (frame[ip]! >> 4 !== 4 || frame[ip + 9] !== IPPROTO_UDP || fragment !== 0 || ihl < 20) continue;
    if (frame.length < ip + total || total < ihl + 8) continue;
    const udp = ip + ihl;
    const udpLen = frame.readUInt16BE(udp + 4);
    if (udpLen < 8 || udp + udpLen > ip + total) continue;
    out.push({
      src: ipv4Text(frame, ip + 12), dst: ipv4Text(frame, ip + 16),
      srcPort: frame.readUInt16BE(udp), dstPort: frame.readUInt16BE(udp + 2),
      payload: Buffer.from(frame.subarray(udp + 8, udp + udpLen)),
    });
  }
  return out;
}

export interface Capture {
  file: string;
  /** Resolves when tcpdump has written `count` packets and exited. */
  done: Promise<void>;
  /** Stops tcpdump early (SIGTERM); resolves once it has exited and flushed the file. */
  stop(): Promise<void>;
  /** The UDP datagrams written so far. */
  read(): CapturedUdp[];
}

/**
 * Starts tcpdump in `ns` on `iface` and resolves once it is capturing (it
 * says "listening on" on stderr), so traffic sent afterwards is not missed.
 */
export async function startCapture(ns: string, iface: string, filter: string, file: string,
  opts: { count?: number; startTimeoutMs?: number } = {}): Promise<Capture> {
  // -U: write each packet as it comes; -Z root: keep the right to write into a root-owned test directory.
  const argv = ['netns', 'exec', ns, 'tcpdump', '-i', iface, '-n', '-U', '--immediate-mode', '-Z', 'root', '-w', file];
  if (opts.count !== undefined) argv.push('-c', String(opts.count));
  argv.push(filter);
  const proc: ChildProcess = spawn('ip', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exited = false;
  const done = new Promise<void>((res, rej) => {
    proc.on('exit', (code, signal) => {
      exited = true;
      if (code === 0 || signal === 'SIGTERM' || signal === 'SIGINT') res();
      else rej(new Error(`tcpdump in ${ns} exited (${code ?? signal}): ${stderr.trim()}`));
    });
    proc.on('error', (e) => { exited = true; rej(e); });
  });
  // A rejection nobody waits for yet must not end the test run.
  done.catch(() => undefined);
  const stop = async (): Promise<void> => {
    if (!exited) proc.kill('SIGTERM');
    await done.catch(() => undefined);
  };
  const listening = new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`tcpdump in ${ns} did not start: ${stderr.trim()}`)), opts.startTimeoutMs ?? 10_000);
    proc.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
      if (/listening on/.test(stderr)) { clearTimeout(timer); res(); }
    });
    done.then(() => rej(new Error(`tcpdump exited before capturing: ${stderr.trim()}`)), rej).finally(() => clearTimeout(timer));
  });
  try {
    await listening;
  } catch (e) {
    await stop();
    throw e;
  }
  return { file, done, stop, read: () => udpFromPcap(readFileSync(file)) };
}
