/**
 * The Linux kernel data plane: SAs and policies go into the kernel's XFRM
 * tables over netlink, and the kernel carries the traffic (RFC 4303 ESP,
 * raw or in UDP per RFC 3948 on the IKE daemon's NAT-T socket, which the
 * daemon opens with UDP_ENCAP set, see ikeSocket in native/styx_netlink.c).
 *
 * How IKE's model maps onto XFRM:
 * - A CHILD_SA's SAs and policies share a reqid, one per pair of traffic
 *   selectors; a policy's template names the reqid, so after a rekey the
 *   policy stays and the kernel sends on the newest outbound SA with that
 *   reqid (make-before-break: IKE adds the new outbound SA only when the
 *   peer can receive on it) and accepts both inbound SAs until the old one
 *   is deleted.
 * - Policies are counted per direction and selector pair; the newest one
 *   added decides the template (a trap policy is replaced by the tunnel's
 *   and comes back when the tunnel goes), as in the userspace engine.
 *   Inbound policies get their forward twin, for traffic routed through.
 * - The kernel counts volume: soft and hard byte/packet limits come back
 *   as XFRM_MSG_EXPIRE events; time limits are kept by IKE (with jitter),
 *   the kernel's hard time limit is only a backstop a little later.
 * - Traffic that matches a policy without an SA raises XFRM_MSG_ACQUIRE
 *   (RFC 4301 5.1.1), which becomes the backend's acquire event.
 * - The kernel looks up a route before it looks at policies, so each
 *   outbound tunnel policy routes its remote network the way the peer is
 *   reached, with a local address of the local network as source (as
 *   strongSwan does in its table 220; styx uses the main table).
 */
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { EncrId, IntegId } from '../../../wire/ikev2/constants.js';
import { StyxError } from '../../../util/errors.js';
import type { Logger } from '../../../util/log.js';
import type { DataplaneBackend, DataplaneEvents, Direction, Endpoint, PolicyParams, SaCounters, SaParams, Selector } from '../../api.js';
import {
  NLM_F_CREATE, NLM_F_EXCL, XFRM_POLICY_FWD, XFRM_POLICY_IN, XFRM_POLICY_OUT, XfrmMsg, addrBytes, parseAcquire, parseExpire, parseSa, policyBody,
  policyIdBody, saBody, saIdBody, type NetlinkMessage, type XfrmPolicy, type XfrmSa, type XfrmSelector,
} from './messages.js';
import { NetlinkError, XfrmSocket, loadNetlinkAddon, type NetlinkAddon } from './netlink.js';
import { localSourceIn, selectorCidr, selectorPrefix } from '../userspace/index.js';

export interface XfrmOptions {
  log: Logger;
  /** The addon; default: the styx_tun addon, which must have been built with its netlink part. */
  addon?: NetlinkAddon;
}

/** The kernel's hard time limit comes this much after IKE's own, so IKE's delete is the one that happens. */
const HARD_TIME_MARGIN_S = 30;

const ESRCH = 3, ENOENT = 2;
const gone = (e: unknown): boolean => e instanceof NetlinkError && (e.errno === ESRCH || e.errno === ENOENT);
const hex = (spi: number): string => (spi >>> 0).toString(16).padStart(8, '0');
const key = (spi: number, dir: Direction): string => `${dir}:${spi >>> 0}`;

/** IKEv2 transform numbers (RFC 7296 3.3.2, RFC 4106, RFC 7634) as Linux crypto API algorithms. */
function algorithms(p: SaParams): Pick<XfrmSa, 'aead' | 'crypt' | 'auth'> {
  const icv: Record<number, number> = { [EncrId.ENCR_AES_GCM_8]: 64, [EncrId.ENCR_AES_GCM_12]: 96, [EncrId.ENCR_AES_GCM_16]: 128 };
  if (icv[p.encr.id] !== undefined) return { aead: { name: 'rfc4106(gcm(aes))', key: p.encr.key, icvBits: icv[p.encr.id]! } };
  if (p.encr.id === EncrId.ENCR_CHACHA20_POLY1305) return { aead: { name: 'rfc7539esp(chacha20,poly1305)', key: p.encr.key, icvBits: 128 } };
  const crypt = p.encr.id === EncrId.ENCR_AES_CBC ? 'cbc(aes)' : p.encr.id === EncrId.ENCR_3DES ? 'cbc(des3_ede)' : null;
  if (!crypt) throw new StyxError('ERR_DATAPLANE', `ESP encryption transform ${p.encr.id} has no kernel algorithm in styx`);
  const auths: Record<number, [string, number]> = {
    [IntegId.AUTH_HMAC_SHA1_96]: ['hmac(sha1)', 96], [IntegId.AUTH_HMAC_SHA2_256_128]: ['hmac(sha256)', 128],
    [IntegId.AUTH_HMAC_SHA2_384_192]: ['hmac(sha384)', 192], [IntegId.AUTH_HMAC_SHA2_512_256]: ['hmac(sha512)', 256],
  };
  const a = p.integ ? auths[p.integ.id] : undefined;
  if (!p.integ || !a) throw new StyxError('ERR_DATAPLANE', `ESP integrity transform ${p.integ?.id ?? 'none'} with ${crypt} has no kernel algorithm in styx`);
  return { crypt: { name: crypt, key: p.encr.key }, auth: { name: a[0], key: p.integ.key, truncBits: a[1] } };
}

function prefixOf(s: Selector, what: string): { addr: Buffer; prefix: number } {
  const p = selectorPrefix(s);
  if (!p) throw new StyxError('ERR_DATAPLANE', `${what} address range is not a prefix: the kernel's selectors are prefixes`);
  return p;
}

/** One port or any: what a kernel selector can say. */
function portOf(s: Selector, what: string): number {
  if (s.startPort === 0 && s.endPort === 65535) return 0;
  if (s.startPort === s.endPort) return s.startPort;
  throw new StyxError('ERR_DATAPLANE', `${what} port range ${s.startPort}-${s.endPort} is neither one port nor all: the kernel's selectors cannot hold it`);
}

/** The kernel selector of traffic from `src` to `dst`. */
function kernelSelector(src: Selector, dst: Selector): XfrmSelector {
  const s = prefixOf(src, 'source selector'), d = prefixOf(dst, 'destination selector');
  return { family: src.family, src: s.addr, srcPrefix: s.prefix, dst: d.addr, dstPrefix: d.prefix, proto: src.protocol || dst.protocol, sport: portOf(src, 'source'), dport: portOf(dst, 'destination') };
}

/** More specific selectors first (a lower number wins in XFRM). */
function priority(sel: XfrmSelector): number {
  return 100_000 - (sel.srcPrefix + sel.dstPrefix) * 256 - (sel.proto ? 128 : 0) - (sel.sport ? 32 : 0) - (sel.dport ? 32 : 0);
}

const selKey = (s: Selector): string => `${s.startAddr.toString('hex')}-${s.endAddr.toString('hex')}/${s.protocol}/${s.startPort}-${s.endPort}`;
const pairKey = (local: Selector, remote: Selector): string => `${selKey(local)}|${selKey(remote)}`;

function rangeOf(family: 4 | 6, addr: Buffer, prefix: number): { start: Buffer; end: Buffer } {
  const n = family === 4 ? 4 : 16;
  const start = Buffer.from(addr.subarray(0, n)), end = Buffer.from(addr.subarray(0, n));
  for (let i = prefix; i < n * 8; i++) { const b = i >> 3, m = 0x80 >> (i & 7); start[b] = start[b]! & ~m; end[b] = end[b]! | m; }
  return { start, end };
}

interface SaRecord { params: SaParams; reqid: number }
interface PolicyRecord { entries: PolicyParams[]; installed: XfrmPolicy[] }

export class XfrmBackend implements DataplaneBackend {
  readonly name = 'xfrm';
  readonly events = new EventEmitter<DataplaneEvents>();
  private readonly sock: XfrmSocket;
  private readonly sas = new Map<string, SaRecord>();
  private readonly reserved = new Set<number>();
  private readonly reqids = new Map<string, number>();
  private nextReqid = 1;
  private readonly policies = new Map<string, PolicyRecord>();
  private readonly routes = new Map<string, { count: number; args: string[] }>();
  private readonly c = { sasAdded: 0, sasDeleted: 0, policiesAdded: 0, policiesDeleted: 0, softExpires: 0, hardExpires: 0, acquires: 0, netlinkErrors: 0 };

  constructor(private readonly opts: XfrmOptions) {
    const addon = opts.addon ?? loadNetlinkAddon();
    this.sock = new XfrmSocket(addon, (m) => this.onEvent(m), (e) => { this.c.netlinkErrors++; opts.log.warn(`XFRM netlink: ${e.message}`); });
  }

  private onEvent(m: NetlinkMessage): void {
    try {
      if (m.type === XfrmMsg.EXPIRE) this.onExpire(m);
      else if (m.type === XfrmMsg.ACQUIRE) this.onAcquire(m);
    } catch (e) {
      if (!(e instanceof StyxError)) throw e;
      this.c.netlinkErrors++;
      this.opts.log.warn(`XFRM event ${m.type}: ${e.message}`);
    }
  }

  private onExpire(m: NetlinkMessage): void {
    const { sa, hard } = parseExpire(m);
    const dst = sa.dst;
    for (const dir of ['in', 'out'] as const) {
      const r = this.sas.get(key(sa.spi, dir));
      if (!r || !addrBytes(r.params.dst.address).equals(dst)) continue;
      if (hard) this.c.hardExpires++; else this.c.softExpires++;
      this.opts.log.info(`${r.params.tag}: kernel reports the ${hard ? 'hard' : 'soft'} limit of ${dir === 'in' ? 'inbound' : 'outbound'} SA ${hex(sa.spi)} (${sa.curBytes} bytes, ${sa.curPackets} packets)`);
      this.events.emit('expire', { spi: sa.spi, direction: dir, hard });
      return;
    }
    this.opts.log.debug(`kernel expire for SA ${hex(sa.spi)} that styx did not install`);
  }

  private onAcquire(m: NetlinkMessage): void {
    const a = parseAcquire(m);
    this.c.acquires++;
    // The policy's own selector, so the trap it came from is recognised (RFC 4301 5.1.1).
    const b = m.body, off = 96;
    const polSrcPrefix = b.readUInt8(off + 43), polDstPrefix = b.readUInt8(off + 42);
    const src = rangeOf(a.family, b.subarray(off + 16, off + 32), polSrcPrefix), dst = rangeOf(a.family, b.subarray(off, off + 16), polDstPrefix);
    const proto = b.readUInt8(off + 44), sport = b.readUInt16BE(off + 36), dport = b.readUInt16BE(off + 32);
    const sel = (r: { start: Buffer; end: Buffer }, port: number): Selector =>
      ({ family: a.family, startAddr: r.start, endAddr: r.end, protocol: proto, startPort: port, endPort: port || 65535 });
    this.events.emit('acquire', { selector: { local: sel(src, sport), remote: sel(dst, dport) } });
  }

  async allocateSpi(): Promise<number> {
    for (;;) {
      // RFC 4303 2.1: 0 is reserved and 1-255 are set aside by IANA.
      const spi = randomInt(256, 0xffffffff);
      if (!this.reserved.has(spi) && !this.sas.has(key(spi, 'in'))) { this.reserved.add(spi); return spi; }
    }
  }

  /** The reqid of a CHILD_SA's selectors: shared by its SAs and policies, and kept across rekeys. */
  private reqidFor(local: Selector[], remote: Selector[]): number {
    const keys = local.flatMap((l) => remote.map((r) => pairKey(l, r)));
    let id = keys.map((k) => this.reqids.get(k)).find((x) => x !== undefined);
    if (id === undefined) id = this.nextReqid++;
    for (const k of keys) this.reqids.set(k, id);
    return id;
  }

  private kernelSa(p: SaParams, reqid: number, replay?: XfrmSa['replay']): XfrmSa {
    const l = p.limits ?? {};
    const family = isIPv4(p.dst.address) ? 4 : 6;
    const sa: XfrmSa = {
      family, src: p.src.address, dst: p.dst.address, spi: p.spi, mode: p.mode, reqid, ...algorithms(p),
      encap: p.encap ? { sport: p.src.port, dport: p.dst.port } : null,
      esn: p.esn, replayWindow: p.direction === 'in' ? p.replayWindow : 0,
      lifetime: {
        ...(l.softBytes !== undefined ? { softBytes: l.softBytes } : {}), ...(l.hardBytes !== undefined ? { hardBytes: l.hardBytes } : {}),
        ...(l.softPackets !== undefined ? { softPackets: l.softPackets } : {}), ...(l.hardPackets !== undefined ? { hardPackets: l.hardPackets } : {}),
        ...(l.softSeconds ? { softSeconds: l.softSeconds } : {}), ...(l.hardSeconds ? { hardSeconds: l.hardSeconds + HARD_TIME_MARGIN_S } : {}),
      },
    };
    if (replay) sa.replay = replay;
    return sa;
  }

  async addSa(p: SaParams): Promise<void> {
    const reqid = this.reqidFor(p.selectors.local, p.selectors.remote);
    const what = `${p.tag}: installing ${p.direction === 'in' ? 'inbound' : 'outbound'} SA ${hex(p.spi)}`;
    try {
      await this.sock.request(XfrmMsg.NEWSA, NLM_F_CREATE | NLM_F_EXCL, saBody(this.kernelSa(p, reqid)), what);
    } catch (e) {
      // ENOSYS/ENOENT: the kernel lacks ESP (esp4/esp6) or the algorithm's crypto module.
      if (e instanceof NetlinkError && (e.errno === 38 || e.errno === ENOENT)) {
        throw new StyxError('ERR_DATAPLANE', `${what}: the kernel has no ESP support or no ${algorithms(p).aead?.name ?? algorithms(p).crypt?.name} (${e.errnoName}); load esp4/esp6 and the crypto modules, or use the userspace data plane`);
      }
      throw e;
    }
    this.sas.set(key(p.spi, p.direction), { params: p, reqid });
    this.c.sasAdded++;
    this.opts.log.info(`${p.tag}: installed ${p.direction === 'in' ? 'inbound' : 'outbound'} ESP SA ${hex(p.spi)} ${p.src.address} -> ${p.dst.address} in the kernel (reqid ${reqid}${p.encap ? `, UDP ${p.src.port} -> ${p.dst.port}` : ''})`);
  }

  /**
   * A new NAT mapping (RFC 7296 2.23, RFC 3947): new ports only are an
   * update of the SA's encapsulation; new addresses change the SA's identity
   * (destination, SPI), so it is replaced, keeping its sequence numbers so
   * the peer's replay window accepts what follows. Policy templates follow.
   */
  async updateSa(spi: number, direction: Direction, changes: { src?: Endpoint; dst?: Endpoint; encap?: boolean }): Promise<void> {
    const r = this.sas.get(key(spi, direction));
    if (!r) throw new StyxError('ERR_DATAPLANE', `no SA ${key(spi, direction)}`);
    const old = r.params;
    const next: SaParams = { ...old, ...(changes.src ? { src: changes.src } : {}), ...(changes.dst ? { dst: changes.dst } : {}), ...(changes.encap !== undefined ? { encap: changes.encap } : {}) };
    const what = `${old.tag}: moving SA ${hex(spi)}`;
    if (next.src.address === old.src.address && next.dst.address === old.dst.address) {
      await this.sock.request(XfrmMsg.UPDSA, 0, saBody(this.kernelSa(next, r.reqid)), what);
    } else {
      const fam = isIPv4(old.dst.address) ? 4 : 6;
      const got = await this.sock.request(XfrmMsg.GETSA, 0, saIdBody(fam, old.dst.address, spi), what);
      const replay = got[0] ? parseSa(got[0]).replay ?? undefined : undefined;
      await this.sock.request(XfrmMsg.DELSA, 0, saIdBody(fam, old.dst.address, spi), what).catch((e: unknown) => { if (!gone(e)) throw e; });
      await this.sock.request(XfrmMsg.NEWSA, NLM_F_CREATE | NLM_F_EXCL, saBody(this.kernelSa(next, r.reqid, replay)), what);
    }
    r.params = next;
    this.opts.log.info(`${old.tag}: SA ${hex(spi)} now ${next.src.address}[${next.src.port}] -> ${next.dst.address}[${next.dst.port}]`);
    // Tunnel templates carry the outer addresses: the policies of this SA's direction (in and fwd for inbound) follow it.
    const moved = { src: next.src.address, dst: next.dst.address };
    for (const [k, rec] of this.policies) {
      const active = rec.entries[rec.entries.length - 1];
      if (!k.startsWith(`${direction}|`) || !active?.tunnel || this.reqidOf(active) !== r.reqid) continue;
      if (moved.src === active.tunnel.src && moved.dst === active.tunnel.dst) continue;
      rec.entries = rec.entries.map((e) => (e.tunnel && this.reqidOf(e) === r.reqid ? { ...e, tunnel: moved } : e));
      await this.installPolicy(k, rec);
    }
  }

  async deleteSa(spi: number, direction: Direction): Promise<void> {
    const r = this.sas.get(key(spi, direction));
    if (direction === 'in') this.reserved.delete(spi >>> 0);
    if (!r) return;
    this.sas.delete(key(spi, direction));
    const fam = isIPv4(r.params.dst.address) ? 4 : 6;
    try {
      await this.sock.request(XfrmMsg.DELSA, 0, saIdBody(fam, r.params.dst.address, spi), `${r.params.tag}: deleting SA ${hex(spi)}`);
    } catch (e) {
      // The kernel removes an SA itself at its hard limit.
      if (!gone(e)) throw e;
    }
    this.c.sasDeleted++;
  }

  async querySa(spi: number, direction: Direction): Promise<SaCounters | null> {
    const r = this.sas.get(key(spi, direction));
    if (!r) return null;
    const fam = isIPv4(r.params.dst.address) ? 4 : 6;
    let got: NetlinkMessage[];
    try {
      got = await this.sock.request(XfrmMsg.GETSA, 0, saIdBody(fam, r.params.dst.address, spi), `${r.params.tag}: reading SA ${hex(spi)}`);
    } catch (e) {
      if (gone(e)) return null;
      throw e;
    }
    const m = got.find((x) => x.type === XfrmMsg.NEWSA);
    if (!m) return null;
    const s = parseSa(m);
    return { bytes: s.curBytes, packets: s.curPackets, replayDrops: BigInt(s.replayDrops), authFailures: BigInt(s.integrityFailures), lastUsed: s.useTime > 0n ? Number(s.useTime) * 1000 : null };
  }

  private reqidOf(p: PolicyParams): number { return this.reqidFor([p.local], [p.remote]); }

  /** The kernel policies for the newest entry of a selector pair: out, or in with its forward twin. */
  private kernelPolicies(p: PolicyParams): XfrmPolicy[] {
    const reqid = this.reqidOf(p);
    const tunnel = p.tunnel ?? { src: '', dst: '' };
    const family = p.local.family;
    const zero = family === 4 ? '0.0.0.0' : '::';
    const tmpl = { family, mode: p.mode, reqid, src: tunnel.src || zero, dst: tunnel.dst || zero };
    if (p.direction === 'out') {
      const sel = kernelSelector(p.local, p.remote);
      return [{ sel, dir: XFRM_POLICY_OUT, priority: priority(sel), tmpl }];
    }
    const sel = kernelSelector(p.remote, p.local);
    return [{ sel, dir: XFRM_POLICY_IN, priority: priority(sel), tmpl }, { sel, dir: XFRM_POLICY_FWD, priority: priority(sel), tmpl }];
  }

  private async installPolicy(k: string, rec: PolicyRecord): Promise<void> {
    const active = rec.entries[rec.entries.length - 1]!;
    const want = this.kernelPolicies(active);
    // UPDPOLICY creates or replaces, so a policy left by an earlier run is taken over, not an error.
    for (const pol of want) await this.sock.request(XfrmMsg.UPDPOLICY, NLM_F_CREATE, policyBody(pol), `${active.tag}: installing ${k.split('|')[0]} policy`);
    rec.installed = want;
  }

  async addPolicy(p: PolicyParams): Promise<void> {
    const k = `${p.direction}|${pairKey(p.local, p.remote)}`;
    const rec = this.policies.get(k) ?? { entries: [], installed: [] };
    rec.entries.push(p);
    try {
      await this.installPolicy(k, rec);
    } catch (e) {
      rec.entries.pop();
      if (rec.entries.length === 0) this.policies.delete(k);
      throw e;
    }
    this.policies.set(k, rec);
    this.c.policiesAdded++;
    await this.addRoute(p);
  }

  /** ip ARGS, resolving with its output; rejects with ip's own complaint. */
  private ip(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => {
        if (err) reject(new StyxError('ERR_DATAPLANE', `ip ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
        else resolve(String(stdout));
      });
    });
  }

  private async addRoute(p: PolicyParams): Promise<void> {
    if (p.direction !== 'out' || !p.tunnel) return;
    const cidr = selectorCidr(p.remote);
    if (!cidr) { this.opts.log.warn(`${p.tag}: remote selector is not a prefix; no route added for it`); return; }
    const have = this.routes.get(cidr);
    if (have) { have.count++; return; }
    const fam = p.remote.family === 4 ? '-4' : '-6';
    let via: { gateway?: string; dev?: string } = {};
    try {
      const got = JSON.parse(await this.ip([fam, '-j', 'route', 'get', p.tunnel.dst])) as { gateway?: string; dev?: string }[];
      via = got[0] ?? {};
    } catch (e) {
      this.opts.log.warn(`${p.tag}: no route to the peer ${p.tunnel.dst}, so none for ${cidr}: ${(e as Error).message}`);
      return;
    }
    if (!via.dev) { this.opts.log.warn(`${p.tag}: no device towards ${p.tunnel.dst}; no route for ${cidr}`); return; }
    const src = localSourceIn(p.local);
    const args = [fam, 'route', 'replace', cidr, ...(via.gateway ? ['via', via.gateway] : []), 'dev', via.dev, ...(src ? ['src', src] : []), 'proto', 'static'];
    await this.ip(args);
    this.routes.set(cidr, { count: 1, args });
    this.opts.log.info(`${p.tag}: route ${cidr}${via.gateway ? ` via ${via.gateway}` : ''} dev ${via.dev}${src ? ` src ${src}` : ''}`);
  }

  private async delRoute(p: PolicyParams): Promise<void> {
    if (p.direction !== 'out' || !p.tunnel) return;
    const cidr = selectorCidr(p.remote);
    const have = cidr ? this.routes.get(cidr) : undefined;
    if (!cidr || !have) return;
    if (--have.count > 0) return;
    this.routes.delete(cidr);
    const del = have.args.map((a) => (a === 'replace' ? 'del' : a));
    await this.ip(del).catch((e: Error) => this.opts.log.warn(`removing route ${cidr}: ${e.message}`));
  }

  async deletePolicy(p: PolicyParams): Promise<void> {
    const k = `${p.direction}|${pairKey(p.local, p.remote)}`;
    const rec = this.policies.get(k);
    if (!rec) return;
    const i = rec.entries.findIndex((e) => e.spi === p.spi && e.mode === p.mode && (e.tunnel?.dst ?? '') === (p.tunnel?.dst ?? ''));
    if (i < 0) return;
    const wasActive = i === rec.entries.length - 1;
    rec.entries.splice(i, 1);
    this.c.policiesDeleted++;
    await this.delRoute(p);
    if (rec.entries.length > 0) {
      if (wasActive) await this.installPolicy(k, rec);
      return;
    }
    this.policies.delete(k);
    for (const pol of rec.installed) {
      await this.sock.request(XfrmMsg.DELPOLICY, 0, policyIdBody(pol.sel, pol.dir), `${p.tag}: deleting policy`).catch((e: unknown) => { if (!gone(e)) throw e; });
    }
  }

  stats(): Record<string, number> {
    return { ...this.c, sas: this.sas.size, policies: this.policies.size };
  }

  /** Everything styx installed leaves the kernel with it: a stopped daemon must not leave traffic going into SAs nobody rekeys. */
  async close(): Promise<void> {
    for (const [k, r] of [...this.sas]) {
      const [dir, spi] = k.split(':') as [Direction, string];
      await this.deleteSa(Number(spi), dir).catch((e: Error) => this.opts.log.warn(`${r.params.tag}: ${e.message}`));
    }
    for (const rec of [...this.policies.values()]) {
      for (const e of [...rec.entries].reverse()) await this.deletePolicy(e).catch((err: Error) => this.opts.log.warn(`${e.tag}: ${err.message}`));
    }
    this.sock.close();
  }
}
