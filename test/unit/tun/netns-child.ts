/**
 * Runs inside a fresh network namespace (started by linux.test.ts through
 * `unshare --net`), so the TUN, its addresses and routes vanish with it.
 * Prints one JSON line per check: {"check": name, "ok": bool, "detail": ...}.
 *
 *   node netns-child.js checks      the functional checks, one after another
 *   node netns-child.js exit-open   reads, then process.exit() without close
 *   node netns-child.js exit-close  reads, closes, and must end on its own
 *   node netns-child.js exit-unref  reads, unref(), and must end on its own
 *   node netns-child.js exit-in-cb  closes from inside the packet callback
 *   node netns-child.js open-error  prints the error of opening (for EPERM runs)
 */
import { execFile, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { openTun, type LinuxTun } from '../../../src/tun/index.js';
import { echoReplyFor, icmp4Echo, parseIp, udp4, type ParsedIp } from './packets.js';

const NAME = 'styxt0';
const LOCAL = '10.99.0.1';
const PEER = '10.99.0.2';

function report(check: string, ok: boolean, detail: unknown = null): void {
  process.stdout.write(JSON.stringify({ check, ok, detail }) + '\n');
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

/** Collects packets from the TUN, copying them out of the reader's pool. */
class Collector {
  readonly pkts: Buffer[] = [];
  readonly batches: number[] = [];
  private waiters: Array<() => void> = [];
  constructor(tun: LinuxTun) {
    tun.onPackets((pkts) => {
      this.batches.push(pkts.length);
      for (const p of pkts) this.pkts.push(Buffer.from(p));
      for (const w of this.waiters.splice(0)) w();
    });
  }
  /** Waits for a packet matching `pred`, removing it; null on timeout. */
  async take(pred: (p: ParsedIp, raw: Buffer) => boolean, ms = 2000): Promise<{ p: ParsedIp; raw: Buffer } | null> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.pkts.findIndex((raw) => { const p = parseIp(raw); return p !== null && pred(p, raw); });
      if (i >= 0) {
        const raw = this.pkts.splice(i, 1)[0]!;
        return { p: parseIp(raw)!, raw };
      }
      const left = end - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => { clearTimeout(t); res(); });
      });
    }
  }
}

async function check(name: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    const detail = await fn();
    report(name, true, detail ?? null);
  } catch (e) {
    report(name, false, e instanceof Error ? `${e.message}` : String(e));
  }
}

function assert(cond: unknown, why: string): asserts cond {
  if (!cond) throw new Error(why);
}

async function checks(): Promise<void> {
  ip('link', 'set', 'lo', 'up');
  const tun = await openTun({ name: NAME, mtu: 1400, addresses: [`${LOCAL}/24`, 'fd00:99::1/64'], batchSize: 16 });
  const rx = new Collector(tun);

  await check('device', async () => {
    const link = ip('-o', 'link', 'show', 'dev', NAME);
    const addrs = ip('-o', 'addr', 'show', 'dev', NAME);
    assert(tun.name === NAME, `name ${tun.name}`);
    assert(/mtu 1400 /.test(link), `MTU not set: ${link}`);
    assert(/[<,]UP[,>]/.test(link), `link not up: ${link}`);
    assert(addrs.includes(`${LOCAL}/24`) && addrs.includes('fd00:99::1/64'), `addresses missing: ${addrs}`);
    return link.trim();
  });

  await check('udp-into-kernel', async () => {
    const sock = dgram.createSocket('udp4');
    sock.bind(0, LOCAL);
    await once(sock, 'listening');
    const port = sock.address().port;
    const got = once(sock, 'message');
    const n = tun.write([udp4(PEER, 40000, LOCAL, port, Buffer.from('hello styx'))]);
    assert(n === 1, `write returned ${n}`);
    const timer = setTimeout(() => sock.emit('error', new Error('no datagram within 2 s')), 2000);
    const [msg, rinfo] = (await got) as [Buffer, dgram.RemoteInfo];
    clearTimeout(timer);
    sock.close();
    assert(msg.toString() === 'hello styx', `payload ${msg.toString()}`);
    assert(rinfo.address === PEER && rinfo.port === 40000, `from ${rinfo.address}:${rinfo.port}`);
  });

  await check('udp-from-kernel', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((res, rej) => sock.send('to the peer', 9999, PEER, (e) => (e ? rej(e) : res())));
    sock.close();
    const got = await rx.take((p) => p.version === 4 && p.proto === 17 && p.dst === PEER && p.l4.readUInt16BE(2) === 9999);
    assert(got, 'the datagram to the peer did not come out of the TUN');
    assert(got.p.src === LOCAL, `source ${got.p.src}`);
    assert(got.p.l4.subarray(8).toString() === 'to the peer', 'payload differs');
  });

  await check('icmp-echo-into-kernel', async () => {
    tun.write([icmp4Echo(PEER, LOCAL, 8, 0x5157, 7, Buffer.from('styx ping'))]);
    const got = await rx.take((p) => p.proto === 1 && p.dst === PEER && p.l4[0] === 0);
    assert(got, 'no echo reply from the kernel');
    assert(got.p.l4.readUInt16BE(4) === 0x5157 && got.p.l4.readUInt16BE(6) === 7, 'id/seq differ');
    assert(got.p.l4.subarray(8).toString() === 'styx ping', 'echo data differs');
  });

  await check('ping-from-kernel', async () => {
    if (!hasCommand('ping')) return { skipped: 'ping (iputils-ping) is not installed' };
    // The userspace side answers echo requests, so the kernel's ping gets its replies.
    const responder = setInterval(() => {
      const replies: Buffer[] = [];
      for (let i = rx.pkts.length - 1; i >= 0; i--) {
        const r = echoReplyFor(rx.pkts[i]!);
        if (r) { replies.push(r); rx.pkts.splice(i, 1); }
      }
      if (replies.length) tun.write(replies);
    }, 5);
    try {
      const out = await new Promise<string>((res, rej) =>
        execFile('ping', ['-n', '-c', '2', '-i', '0.2', '-W', '2', PEER], (e, so) => (e ? rej(new Error(`ping: ${e.message} ${so}`)) : res(so))));
      return out.split('\n').find((l) => l.includes('packets transmitted')) ?? out;
    } finally {
      clearInterval(responder);
    }
  });

  await check('batched-read', async () => {
    // The sends all leave in one turn of the loop, so the datagrams queue in
    // the kernel before the reader wakes; it must hand them over in full
    // batches capped at batchSize (16), in order.
    const sock = dgram.createSocket('udp4');
    const before = rx.batches.length;
    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < 100; i++) {
      const b = Buffer.alloc(8);
      b.writeUInt32BE(i, 4);
      sends.push(new Promise((res, rej) => sock.send(b, 7777, PEER, (e) => (e ? rej(e) : res()))));
    }
    await Promise.all(sends);
    sock.close();
    const seen: number[] = [];
    for (let i = 0; i < 100; i++) {
      const got = await rx.take((p) => p.proto === 17 && p.dst === PEER && p.l4.readUInt16BE(2) === 7777);
      if (!got) break;
      seen.push(got.p.l4.readUInt32BE(12));
    }
    assert(seen.length === 100, `read ${seen.length} of 100 datagrams`);
    assert(seen.every((v, i) => v === i), 'datagrams out of order');
    const sizes = rx.batches.slice(before);
    assert(sizes.every((n) => n >= 1 && n <= 16) && Math.max(...sizes) === 16, `batch sizes ${sizes.join(',')}`);
    return { batches: sizes.length, max: Math.max(...sizes) };
  });

  await check('batched-write', async () => {
    const sock = dgram.createSocket('udp4');
    sock.bind(0, LOCAL);
    await once(sock, 'listening');
    const port = sock.address().port;
    let count = 0;
    const all = new Promise<void>((res) => sock.on('message', () => { if (++count === 50) res(); }));
    const pkts = Array.from({ length: 50 }, (_, i) => udp4(PEER, 41000 + i, LOCAL, port, Buffer.from(`n${i}`)));
    const n = tun.write(pkts);
    assert(n === 50, `write returned ${n}`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => { timer = setTimeout(r, 2000); })]);
    clearTimeout(timer);
    sock.close();
    assert(count === 50, `received ${count} of 50`);
    return { written: n, rxPackets: tun.stats.rxPackets, txPackets: tun.stats.txPackets };
  });

  await check('malformed-write-skipped', async () => {
    const bad = Buffer.from([0x00, 1, 2, 3, 4, 5, 6, 7]); // version 0: the kernel says EINVAL
    const sock = dgram.createSocket('udp4');
    sock.bind(0, LOCAL);
    await once(sock, 'listening');
    const got = once(sock, 'message');
    const n = tun.write([bad, udp4(PEER, 40001, LOCAL, sock.address().port, Buffer.from('after bad'))]);
    const timer = setTimeout(() => sock.emit('error', new Error('no datagram within 2 s')), 2000);
    const [msg] = (await got) as [Buffer];
    clearTimeout(timer);
    sock.close();
    assert(n === 1, `write returned ${n}`);
    assert(msg.toString() === 'after bad', 'payload differs');
  });

  await check('routes', async () => {
    await tun.addRoute('10.98.0.0/16');
    await tun.addRoute('10.98.0.0/16'); // a repeated add (rekey) succeeds
    await tun.addRoute('fd00:98::/48');
    assert(ip('-4', 'route', 'show', 'dev', NAME).includes('10.98.0.0/16'), 'IPv4 route missing');
    assert(ip('-6', 'route', 'show', 'dev', NAME).includes('fd00:98::/48'), 'IPv6 route missing');
    const s4 = dgram.createSocket('udp4');
    const s6 = dgram.createSocket('udp6');
    await new Promise<void>((res, rej) => s4.send('via route', 5555, '10.98.7.7', (e) => (e ? rej(e) : res())));
    await new Promise<void>((res, rej) => s6.send('via route 6', 5556, 'fd00:98::7', (e) => (e ? rej(e) : res())));
    s4.close();
    s6.close();
    const g4 = await rx.take((p) => p.version === 4 && p.dst === '10.98.7.7');
    assert(g4 && g4.p.l4.readUInt16BE(2) === 5555, 'IPv4 datagram to the routed network not read from the TUN');
    const g6 = await rx.take((p) => p.version === 6 && p.dst === 'fd00:98::7');
    assert(g6 && g6.p.proto === 17 && g6.p.l4.readUInt16BE(2) === 5556, 'IPv6 datagram to the routed network not read from the TUN');
    assert(g6.p.src === 'fd00:99::1', `IPv6 source ${g6.p.src}`);
    await tun.delRoute('10.98.0.0/16');
    await tun.delRoute('10.98.0.0/16'); // already gone: not an error
    await tun.delRoute('fd00:98::/48');
    assert(!ip('-4', 'route', 'show', 'dev', NAME).includes('10.98.0.0/16'), 'IPv4 route still there');
    assert(!ip('-6', 'route', 'show', 'dev', NAME).includes('fd00:98::/48'), 'IPv6 route still there');
  });

  await check('busy-name', async () => {
    try {
      const again = await openTun({ name: NAME, mtu: 1400 });
      await again.close();
    } catch (e) {
      const code = (e as { code?: string }).code;
      assert(code === 'ERR_TUN_BUSY', `code ${code}: ${(e as Error).message}`);
      return (e as Error).message;
    }
    throw new Error('opening an attached TUN twice succeeded');
  });

  await check('close', async () => {
    await tun.close();
    await tun.close();
    let threw = false;
    try { tun.write([udp4(PEER, 1, LOCAL, 2, Buffer.alloc(1))]); } catch { threw = true; }
    assert(threw, 'write after close did not throw');
    assert(!ip('-o', 'link', 'show').includes(NAME), 'interface still exists after close');
  });
}

async function exitCase(mode: string): Promise<void> {
  const tun = await openTun({ name: NAME, mtu: 1400, addresses: [`${LOCAL}/24`] });
  if (mode === 'exit-in-cb') {
    tun.onPackets((pkts) => {
      void tun.close();
      report('closed-in-callback', true, pkts.length);
    });
    const sock = dgram.createSocket('udp4');
    sock.send('wake up', 9, PEER, () => sock.close());
    return;
  }
  tun.onPackets(() => undefined);
  report('opened', true);
  if (mode === 'exit-open') setTimeout(() => process.exit(0), 50);
  else if (mode === 'exit-close') setTimeout(() => void tun.close(), 50);
  else if (mode === 'exit-unref') tun.unref();
}

async function openError(): Promise<void> {
  try {
    const tun = await openTun({ name: NAME, mtu: 1400 });
    await tun.close();
    report('open-error', false, 'opened without CAP_NET_ADMIN');
  } catch (e) {
    report('open-error', true, { code: (e as { code?: string }).code, message: (e as Error).message });
  }
}

const mode = process.argv[2] ?? 'checks';
const run = mode === 'checks' ? checks() : mode === 'open-error' ? openError() : exitCase(mode);
run.catch((e: unknown) => {
  report('fatal', false, e instanceof Error ? e.stack ?? e.message : String(e));
  process.exitCode = 1;
});
