/**
 * Ping floods that prove a tunnel lost nothing: every request is accounted
 * for by its sequence number, and a reply that is merely late still counts.
 *
 * Why not `ping -c N -W T` and its summary line: once the Nth request is
 * sent, ping waits only about twice the largest round trip seen so far for
 * the replies still out, then stops and calls them lost. A reply delayed by a
 * rekey's IKE work, or by an emulated CPU, at the very end of a run would be
 * counted as a loss. With a deadline (`-w`) ping instead keeps going until N
 * replies have arrived, sending another request for each one missing; so a
 * sequence number without a reply that has answered ones after it is a real
 * loss, and the requests still out when the Nth reply arrives are not.
 */
import { spawn } from 'node:child_process';
import { slow } from './exec.js';

export interface FloodReport {
  what: string;
  /** Replies asked for. */
  requests: number;
  transmitted: number;
  /** Distinct sequence numbers answered. */
  answered: number;
  /** Requests without a reply that later requests got one for, with the time of the last reply before each. */
  lost: { seq: number; after: string }[];
  seconds: number;
  tail: string;
}

export interface Flood { what: string; running(): boolean; done: Promise<FloodReport> }

export interface FloodOptions {
  requests: number;
  /** Seconds between requests (ping -i). */
  intervalS: number;
  /** ICMP payload bytes (ping -s). */
  size?: number;
}

/** Starts `ping -D` in `ns` from `from` to `to` until `requests` replies arrived (or its deadline passed). */
export function startFlood(ns: string, from: string, to: string, o: FloodOptions): Flood {
  const what = `ping ${from} -> ${to}`;
  const startedAt = Date.now();
  // Far more than the run needs even where ping sends slower than asked: it only bounds a dead tunnel.
  const deadlineS = Math.ceil(slow((o.requests * o.intervalS * 3 + 30) * 1000) / 1000);
  const proc = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-D', '-i', String(o.intervalS), '-s', String(o.size ?? 56),
    '-c', String(o.requests), '-w', String(deadlineS), '-I', from, to], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  let exited = false;
  const done = new Promise<FloodReport>((resolve) => {
    proc.on('close', () => {
      exited = true;
      const m = /(\d+) packets transmitted/.exec(out);
      const replies = new Map<number, string>();
      for (const r of out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from \S+ icmp_seq=(\d+)/gm)) if (!replies.has(Number(r[2]))) replies.set(Number(r[2]), r[1]!);
      const last = Math.max(0, ...replies.keys());
      const lost: { seq: number; after: string }[] = [];
      let lastReply = '?';
      for (let seq = 1; seq <= last; seq++) {
        const at = replies.get(seq);
        if (at !== undefined) { lastReply = new Date(Number(at) * 1000).toISOString(); continue; }
        lost.push({ seq, after: lastReply });
      }
      resolve({
        what, requests: o.requests, transmitted: m ? Number(m[1]) : 0, answered: replies.size, lost,
        seconds: (Date.now() - startedAt) / 1000, tail: out.trim().split('\n').slice(-3).join('\n'),
      });
    });
  });
  return { what, running: () => !exited, done };
}

/** Waits for the floods and fails on any request lost, or a flood that did not get all its replies. */
export async function assertNoLoss(floods: Flood[], context = ''): Promise<FloodReport[]> {
  const reports = await Promise.all(floods.map((x) => x.done));
  for (const r of reports) console.log(`      ${r.what}: ${r.transmitted} sent, ${r.answered} answered, ${r.lost.length} lost in ${r.seconds.toFixed(0)} s`);
  for (const r of reports) {
    const lost = r.lost.slice(0, 20).map((l) => `icmp_seq=${l.seq} (last reply before it at ${l.after})`).join(', ');
    if (r.lost.length > 0) throw new Error(`${r.what}: ${r.lost.length} lost: ${lost}${r.lost.length > 20 ? ', ...' : ''}${context ? `; ${context}` : ''}\n${r.tail}`);
    if (r.answered < r.requests) throw new Error(`${r.what}: only ${r.answered} of ${r.requests} requests answered before ping's deadline${context ? `; ${context}` : ''}\n${r.tail}`);
  }
  return reports;
}
