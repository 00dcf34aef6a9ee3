/**
 * The composition root: reads the configuration, wires sockets, the IKE
 * manager, the data plane and the control socket, and handles signals.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { loadConfig } from '../config/index.js';
import type { ConnectionConfig, StyxConfig } from '../config/model.js';
import type { CertListInfo, ConnInfo, ControlHandler, IkeSaInfo } from '../control/protocol.js';
import { AuthError } from '../auth/errors.js';
import { certStore } from '../ike/v2/pubkey.js';
import { startControlServer } from '../control/server.js';
import { dhName, encrName, integName, prfName } from '../crypto/index.js';
import type { DataplaneBackend } from '../dataplane/api.js';
import { MemoryBackend } from '../dataplane/backends/memory/index.js';
import { UserspaceBackend } from '../dataplane/backends/userspace/index.js';
import { XfrmBackend } from '../dataplane/backends/xfrm/index.js';
import { loadNetlinkAddon } from '../dataplane/backends/xfrm/netlink.js';
import { openTun } from '../tun/index.js';
import { hostAddresses, IkeSockets, type SocketOpener } from '../net/sockets.js';
import { StyxError } from '../util/errors.js';
import { isLevel, logs, SUBSYSTEMS, type Subsystem } from '../util/log.js';
import { realClock } from '../util/timers.js';
import { NatKeepalive } from '../ike/nat-keepalive.js';
import { describeChild } from '../ike/describe-child.js';
import { TrapManager } from '../ike/trap.js';
import { identityText, configIdText } from '../ike/identity.js';
import { spiHex } from '../ike/v2/child-sa.js';
import type { IkeSaV2 } from '../ike/v2/ike-sa.js';
import { IkeV2Manager } from '../ike/v2/manager.js';
import { IkeV1Manager } from '../ike/v1/manager.js';
import { describeV1Sa } from '../ike/v1/describe.js';
import { formatTrafficSelector } from '../config/addr.js';

export interface DaemonOptions {
  configPath: string;
  socketPath?: string;
  /** 'ike=debug,net=info' style overrides from the command line. */
  logLevels?: string;
}

const log = logs.for('daemon');

function applyLogLevels(cfg: StyxConfig, overrides?: string): void {
  logs.setDefault(cfg.daemon.defaultLogLevel);
  for (const [sub, level] of Object.entries(cfg.daemon.logLevels)) if (level) logs.setLevel(sub as Subsystem, level);
  for (const part of (overrides ?? '').split(',').filter(Boolean)) {
    const [sub, level] = part.split('=') as [string, string | undefined];
    if (level === undefined && isLevel(sub)) { logs.setDefault(sub); continue; }
    if (!(SUBSYSTEMS as readonly string[]).includes(sub) || level === undefined || !isLevel(level)) throw new StyxError('ERR_USAGE', `bad log level '${part}': use SUBSYSTEM=LEVEL with subsystems ${SUBSYSTEMS.join(',')}`);
    logs.setLevel(sub as Subsystem, level);
  }
}

/** '0.0.0.0' and '::' stand for every address of that family on this host. */
function bindAddresses(listen: string[]): string[] {
  const out = new Set<string>();
  for (const a of listen) {
    if (a === '0.0.0.0') hostAddresses().filter((h) => isIPv4(h)).forEach((h) => out.add(h));
    else if (a === '::') hostAddresses().filter((h) => isIPv6(h)).forEach((h) => out.add(h));
    else out.add(a);
  }
  return [...out];
}

function xfrmSocketOpener(): SocketOpener {
  const addon = loadNetlinkAddon();
  return (family, address, port, natT) => addon.ikeSocket(family, address, port, natT);
}

async function createBackend(cfg: StyxConfig, sockets: IkeSockets): Promise<DataplaneBackend> {
  switch (cfg.daemon.dataplane) {
    case 'memory': return new MemoryBackend();
    case 'userspace': {
      const tun = await openTun({ name: cfg.daemon.tun.name, mtu: cfg.daemon.tun.mtu, up: true });
      logs.for('dataplane').info(`userspace data plane on ${tun.name} (MTU ${tun.mtu}), ESP in UDP on port ${cfg.daemon.natPort}`);
      return new UserspaceBackend(tun, {
        setEspReceiver: (cb) => { sockets.espReceiver = cb; },
        sendEsp: (data, local, remote) => sockets.sendRaw(data, local, remote),
      }, { natPort: cfg.daemon.natPort, log: logs.for('dataplane') });
    }
    case 'xfrm': {
      logs.for('dataplane').info('kernel (XFRM) data plane: SAs and policies go into the kernel over netlink');
      return new XfrmBackend({ log: logs.for('dataplane') });
    }
  }
}

/**
 * The userspace data plane moves ESP only inside UDP (RFC 3948), so every
 * connection must negotiate UDP encapsulation, even without a NAT.
 */
function forDataplane(cfg: StyxConfig): StyxConfig {
  if (cfg.daemon.dataplane !== 'userspace') return cfg;
  return { ...cfg, connections: cfg.connections.map((c) => (c.encap ? c : { ...c, encap: true })) };
}

export class Daemon implements ControlHandler {
  private constructor(
    private cfg: StyxConfig,
    private readonly opts: DaemonOptions,
    readonly manager: IkeV2Manager,
    readonly v1: IkeV1Manager,
    readonly sockets: IkeSockets,
    readonly dp: DataplaneBackend,
    private control: { close(): Promise<void> } | null,
    private readonly keepalive: NatKeepalive,
    private readonly traps: TrapManager,
  ) {}

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const cfg = forDataplane(loadConfig(opts.configPath));
    applyLogLevels(cfg, opts.logLevels);
    let manager: IkeV2Manager | null = null;
    let v1: IkeV1Manager | null = null;
    // The version field (RFC 2408 3.1 / RFC 7296 3.1) tells ISAKMP from IKEv2; short datagrams go to
    // the IKEv2 decoder, which reports them.
    const sockets = new IkeSockets(logs.for('net'), (data, local, remote) =>
      (data.length >= 28 && data[17]! >> 4 === 1 ? v1 : manager)?.receive(data, local, remote));
    // The kernel data plane takes ESP-in-UDP from the NAT-T socket itself (UDP_ENCAP) and must not apply IPsec policies to IKE.
    const opener = cfg.daemon.dataplane === 'xfrm' ? xfrmSocketOpener() : undefined;
    await sockets.bind(bindAddresses(cfg.daemon.listen), cfg.daemon.port, cfg.daemon.natPort, opener);
    let dp: DataplaneBackend;
    try {
      dp = await createBackend(cfg, sockets);
    } catch (e) {
      await sockets.close();
      throw e;
    }
    manager = new IkeV2Manager(cfg, dp, sockets, realClock, logs.for('ike'));
    v1 = new IkeV1Manager(cfg, dp, sockets, realClock, logs.for('ike'));
    const both = { v1, v2: manager };
    const keepalive = new NatKeepalive(() => [...both.v2.sas, ...both.v1.sas], (data, local, remote) => sockets.sendRaw(data, local, remote), cfg.daemon.natPort, realClock, logs.for('net'));
    keepalive.start(cfg.daemon.keepalive);
    const traps = new TrapManager(dp, logs.for('ike'),
      (remote) => sockets.localFor(remote, cfg.daemon.port)?.address,
      (name) => { void d.initiate(name, 60_000).catch((e: Error) => log.warn(`${name}: on-demand initiation failed: ${e.message}`)); });
    dp.events.on('acquire', (a) => { void traps.onAcquire(a.selector); });
    const trapConn = (conn: ConnectionConfig): void => { for (const ch of conn.children) void traps.install(conn, ch); };
    manager.onTrap = trapConn;
    v1.onTrap = trapConn;
    const d = new Daemon(cfg, opts, manager, v1, sockets, dp, null, keepalive, traps);
    const socketPath = opts.socketPath ?? cfg.daemon.controlSocket;
    d.control = await startControlServer(socketPath, d, logs.for('control'));
    log.info(`styxd started: ${cfg.connections.length} connection(s) from ${cfg.file}, IKE on ${sockets.endpoints.map((e) => `${e.address}:${e.port}`).join(' ')}, control socket ${socketPath}, data plane ${dp.name}`);
    d.startConnections();
    return d;
  }

  private startConnections(): void {
    for (const c of this.cfg.connections) {
      for (const ch of c.children) if (ch.startAction === 'trap') void this.traps.install(c, ch);
      if (c.startAction !== 'start' && !c.children.some((ch) => ch.startAction === 'start')) continue;
      this.managerFor(c.version).initiateAndWait(c.name, 120_000).then(
        (sa) => log.info(`${c.name}: up (${sa.tag})`),
        (e: Error) => log.warn(`${c.name}: start failed: ${e.message}`),
      );
    }
  }

  async stop(): Promise<void> {
    log.info('styxd stopping: deleting SAs');
    this.keepalive.stop();
    await Promise.all([this.manager.shutdown(), this.v1.shutdown()]);
    await this.control?.close();
    await this.sockets.close();
    await this.dp.close();
  }

  // ControlHandler

  async list(): Promise<IkeSaInfo[]> {
    return Promise.all([...this.manager.sas.map((sa) => this.describeSa(sa)), ...this.v1.sas.map((sa) => describeV1Sa(this.dp, sa))]);
  }

  private async describeSa(sa: IkeSaV2): Promise<IkeSaInfo> {
    const sel = sa.selection;
    const children = await Promise.all(sa.children.map((c) => describeChild(this.dp, c)));
    return {
      name: sa.conn.name, uniqueId: sa.uniqueId, version: 2, state: sa.state, initiator: sa.initiator,
      local: { address: sa.local.address, port: sa.local.port, id: sa.localId ? identityText(sa.localId) : configIdText(sa.conn.local.id) },
      remote: { address: sa.remote.address, port: sa.remote.port, id: sa.remoteId ? identityText(sa.remoteId) : configIdText(sa.conn.remote.id) },
      spiI: sa.spiI.toString('hex'), spiR: sa.spiR.toString('hex'),
      algorithms: sel ? { encr: encrName(sel.encr.id, sel.encr.keyLength), integ: sel.integ ? integName(sel.integ) : null, prf: prfName(sel.prf), dh: dhName(sel.dh) } : { encr: '-', integ: null, prf: '-', dh: '-' },
      establishedAt: sa.establishedAt, rekeyAt: sa.rekeyAt, nat: { ...sa.nat }, children,
    };
  }

  async listConns(): Promise<ConnInfo[]> {
    return this.cfg.connections.map((c) => ({
      name: c.name, version: c.version, localAddrs: c.localAddrs, remoteAddrs: c.remoteAddrs,
      localId: configIdText(c.local.id), remoteId: configIdText(c.remote.id),
      children: c.children.map((ch) => ({ name: ch.name, localTs: ch.localTs.map((t) => t.dynamic ? 'dynamic' : formatTrafficSelector(t)), remoteTs: ch.remoteTs.map((t) => t.dynamic ? 'dynamic' : formatTrafficSelector(t)) })),
    }));
  }

  /** `styx list-certs`: what each certificate connection loaded, judged now, from the same store IKE uses. */
  async listCerts(): Promise<CertListInfo> {
    const out: CertListInfo = { certs: [], crls: [], errors: [] };
    for (const c of this.cfg.connections) {
      if (c.local.method !== 'pubkey' && c.remote.method !== 'pubkey') continue;
      try {
        const l = await (await certStore(c)).list(new Date());
        out.certs.push(...l.certs.map((x) => ({ connection: c.name, ...x })));
        out.crls.push(...l.crls.map((x) => ({ connection: c.name, ...x })));
      } catch (e) {
        if (!(e instanceof AuthError)) throw e;
        out.errors.push({ connection: c.name, error: e.message });
      }
    }
    return out;
  }

  /** IKEv1 and IKEv2 connections are run by their own managers. */
  private managerFor(version: 1 | 2): { initiateAndWait(name: string, timeoutMs: number): Promise<{ tag: string; children: { config: { name: string }; uniqueId: number; spiIn: number; spiOut: number }[] }>; terminate(name: string): Promise<number>; rekey(name: string, child?: string): number } {
    return version === 1 ? this.v1 : this.manager;
  }

  private connByName(name: string): StyxConfig['connections'][number] {
    const c = this.cfg.connections.find((x) => x.name === name.split('/')[0]);
    if (!c) throw new Error(`no connection named '${name.split('/')[0]}'`);
    return c;
  }

  async initiate(name: string, timeoutMs: number): Promise<string> {
    const sa = await this.managerFor(this.connByName(name).version).initiateAndWait(name, timeoutMs);
    const kids = sa.children.map((c) => `CHILD_SA ${c.config.name}{${c.uniqueId}} ${spiHex(c.spiIn)}_i ${spiHex(c.spiOut)}_o`).join(', ');
    return `IKE SA ${sa.tag} established${kids ? `, ${kids}` : ''}`;
  }

  async terminate(name: string): Promise<string> {
    await this.traps.remove(name);
    const n = await this.managerFor(this.connByName(name).version).terminate(name);
    return n ? `deleted ${n} IKE SA(s) of ${name}` : `no IKE SA of ${name} is up`;
  }

  /** `styx rekey NAME` renews the IKE SAs of a connection, `NAME/CHILD` its CHILD_SAs of that name. */
  async rekey(target: string): Promise<string> {
    const [name, child, extra] = target.split('/');
    const conn = this.connByName(target);
    if (extra !== undefined || child === '') throw new Error(`'${target}' is neither a connection nor connection/child`);
    if (child !== undefined && !conn.children.some((c) => c.name === child)) throw new Error(`connection '${name}' has no child '${child}'`);
    const n = this.managerFor(conn.version).rekey(conn.name, child);
    const what = child === undefined ? (conn.version === 1 ? 'ISAKMP SA' : 'IKE SA') : 'CHILD_SA';
    if (n === 0) throw new Error(`no established ${what} of ${target} to rekey`);
    return `rekeying ${n} ${what}(s) of ${target}; \`styx list\` shows the new SPIs once done`;
  }

  async reload(): Promise<string> {
    const cfg = forDataplane(loadConfig(this.opts.configPath));
    if (cfg.daemon.dataplane !== this.cfg.daemon.dataplane) throw new Error(`the data plane cannot change on reload (running ${this.cfg.daemon.dataplane}); restart styxd`);
    applyLogLevels(cfg, this.opts.logLevels);
    this.cfg = cfg;
    this.manager.setConfig(cfg);
    this.v1.setConfig(cfg);
    this.keepalive.start(cfg.daemon.keepalive);
    log.info(`configuration reloaded: ${cfg.connections.length} connection(s); established SAs keep the settings they were made with`);
    return `reloaded ${cfg.connections.length} connection(s)`;
  }

  async setLogLevel(subsystem: string, level: string): Promise<string> {
    if (!isLevel(level)) throw new Error(`unknown level '${level}'`);
    if (subsystem === 'all' || subsystem === 'default') { logs.setDefault(level); return `default log level ${level}`; }
    if (!(SUBSYSTEMS as readonly string[]).includes(subsystem)) throw new Error(`unknown subsystem '${subsystem}' (${SUBSYSTEMS.join(', ')})`);
    logs.setLevel(subsystem as Subsystem, level);
    return `${subsystem} log level ${level}`;
  }

  async stats(): Promise<Record<string, number>> {
    const c = this.manager.counters, n = this.sockets.counters;
    return {
      ...Object.fromEntries(Object.entries(c).map(([k, v]) => [`ike.${k}`, v])),
      ...Object.fromEntries(Object.entries(n).map(([k, v]) => [`net.${k}`, v])),
      'net.keepalivesSent': this.keepalive.sent,
      ...Object.fromEntries(Object.entries(this.dp.stats()).map(([k, v]) => [`${this.dp.name === 'userspace' ? 'esp' : 'dataplane'}.${k}`, v])),
      ...Object.fromEntries(Object.entries(this.v1.counters).map(([k, v]) => [`ikev1.${k}`, v])),
      'ikev1.sas': this.v1.sas.length,
      'ike.sas': this.manager.sas.length,
      'ike.halfOpen': this.manager.halfOpenCount(),
    };
  }
}
