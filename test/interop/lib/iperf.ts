/**
 * iperf3 between two namespaces, for data-plane tests (did a TCP transfer
 * cross the tunnel, and how much) and benchmarks (how fast). The server is
 * one-off (-1), so each call owns its server and leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { run, sleep, waitFor } from './exec.js';

export interface IperfOptions {
  serverNs: string;
  serverAddr: string;
  clientNs: string;
  clientAddr: string;
  seconds: number;
  port?: number;
  /** Parallel streams (-P); 1 by default. */
  streams?: number;
}

export interface IperfResult {
  /** Octets the client wrote into its TCP socket(s). */
  sentBytes: number;
  /** Octets the server read: what crossed the path. */
  receivedBytes: number;
  receivedBitsPerSecond: number;
  retransmits: number;
  seconds: number;
}

interface IperfJson {
  error?: string;
  end?: {
    sum_sent?: { bytes?: number; retransmits?: number; seconds?: number };
    sum_received?: { bytes?: number; bits_per_second?: number; seconds?: number };
  };
}

async function listening(ns: string, addr: string, port: number): Promise<boolean> {
  const r = await run(['ss', '-Hltn', `src ${addr}:${port}`], { ns, allowFailure: true });
  return r.code === 0 && r.stdout.trim() !== '';
}

/** One TCP transfer from client to server; rejects with iperf3's own words when it fails. */
export async function iperfTcp(o: IperfOptions): Promise<IperfResult> {
  const port = o.port ?? 5201;
  const server: ChildProcess = spawn('ip', ['netns', 'exec', o.serverNs, 'iperf3', '-s', '-1', '-B', o.serverAddr, '-p', String(port)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let serverOut = '';
  server.stdout!.on('data', (d: Buffer) => { serverOut += d.toString('utf8'); });
  server.stderr!.on('data', (d: Buffer) => { serverOut += d.toString('utf8'); });
  let serverExited = false;
  const serverExit = new Promise<void>((res) => {
    server.on('exit', () => { serverExited = true; res(); });
    server.on('error', () => { serverExited = true; res(); });
  });
  try {
    await waitFor(`iperf3 server on ${o.serverAddr}:${port} in ${o.serverNs}`, 10_000, async () => {
      if (serverExited) throw new Error(`iperf3 server exited at once: ${serverOut.trim()}`);
      return (await listening(o.serverNs, o.serverAddr, port)) ? true : undefined;
    }, 50);
    const argv = ['iperf3', '-c', o.serverAddr, '-B', o.clientAddr, '-p', String(port), '-t', String(o.seconds), '-J',
      '--connect-timeout', '5000', '-P', String(o.streams ?? 1)];
    const r = await run(argv, { ns: o.clientNs, allowFailure: true, timeoutMs: (o.seconds + 30) * 1000 });
    let j: IperfJson;
    try {
      j = JSON.parse(r.stdout) as IperfJson;
    } catch {
      throw new Error(`iperf3 client (exit ${r.code}) printed no JSON: ${r.stdout.slice(0, 500)} ${r.stderr.trim()}`);
    }
    if (j.error !== undefined || r.code !== 0) throw new Error(`iperf3 ${o.clientAddr} -> ${o.serverAddr} failed (exit ${r.code}): ${j.error ?? r.stderr.trim()}; server: ${serverOut.trim()}`);
    const sent = j.end?.sum_sent, got = j.end?.sum_received;
    return {
      sentBytes: sent?.bytes ?? 0,
      receivedBytes: got?.bytes ?? 0,
      receivedBitsPerSecond: got?.bits_per_second ?? 0,
      retransmits: sent?.retransmits ?? 0,
      seconds: got?.seconds ?? sent?.seconds ?? 0,
    };
  } finally {
    // A one-off server exits after its client; one whose client never came must not outlive the test.
    const gone = await Promise.race([serverExit.then(() => true), sleep(3000).then(() => false)]);
    if (!gone) { server.kill('SIGTERM'); await serverExit; }
  }
}
