/**
 * Reads etc/styx.yaml into the typed model of model.ts. Everything the rest
 * of the daemon relies on is checked here, once, so that a bad file fails at
 * start-up or reload with the file, line and key to fix, instead of later
 * in the middle of a negotiation.
 */
import { createPublicKey } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { AuthError } from '../auth/errors.js';
import { dnToDer } from '../auth/dn.js';
import { parseCertificates, parseCrls, parsePrivateKey } from '../auth/load.js';
import type { Cert } from '../auth/x509.js';
import { ConfigError } from '../util/errors.js';
import { DhId, EncrId } from '../wire/ikev2/constants.js';
import { LEVELS, SUBSYSTEMS } from '../util/log.js';
import type { Level, Subsystem } from '../util/log.js';
import { ValueError, isHostname, parseIdentity, parseTrafficSelector, sameIdentity } from './addr.js';
import type {
  AuthConfig, PubkeyAuthConfig, ChildConfig, ConnectionConfig, DaemonConfig, EspProposalConfig, IdentityConfig,
  IkeProposalConfig, SecretConfig, StyxConfig, TrafficSelectorConfig,
} from './model.js';
import {
  DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS, ProposalError, parseEspProposal, parseIkeProposal,
} from './proposals.js';
import { Source } from './yaml.js';
import type { MapValue, Value } from './yaml.js';

export const DEFAULT_CONTROL_SOCKET = '/run/styx/styx.sock';

const TOP_KEYS = ['daemon', 'connections', 'secrets'] as const;
const DAEMON_KEYS = ['listen', 'port', 'nat_port', 'control_socket', 'dataplane', 'tun', 'cookie_threshold', 'keepalive', 'fragment_size', 'log'] as const;
const CONN_KEYS = [
  'version', 'local_addrs', 'remote_addrs', 'local_port', 'remote_port', 'proposals', 'local', 'remote',
  'start_action', 'rekey_time', 'lifetime', 'aggressive', 'encap', 'dpd_delay', 'dpd_timeout', 'dpd_action',
  'retransmit', 'fragmentation', 'fragment_size', 'reauth_time', 'children',
] as const;
const AUTH_KEYS = ['auth', 'id', 'cert', 'key', 'cacerts', 'crls', 'signature'] as const;
/** Keys that only make sense on one side of a pubkey connection. */
const LOCAL_ONLY = ['key', 'signature'] as const;
const REMOTE_ONLY = ['cacerts', 'crls'] as const;
/** RFC 7383 2.5.1: 1280 is the IPv6 minimum MTU, safe on any path; below 256 a fragment carries almost nothing. */
const DEFAULT_FRAGMENT_SIZE = 1280;
const MIN_FRAGMENT_SIZE = 256;
const CHILD_KEYS = ['local_ts', 'remote_ts', 'esp_proposals', 'mode', 'start_action', 'rekey_time', 'lifetime', 'rekey_bytes', 'life_bytes', 'rekey_packets', 'life_packets'] as const;
const RETRANSMIT_KEYS = ['timeout', 'tries', 'base'] as const;
const SECRET_KEYS = ['ids', 'psk'] as const;

/** Names are used on the command line and in logs, so keep them shell- and log-friendly. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Runs a parser whose errors carry only a reason, and locates them at `v`. */
function at<T>(v: Value, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ValueError || e instanceof ProposalError) v.fail(e.message);
    throw e;
  }
}

export function loadConfig(path: string): StyxConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ConfigError(path, undefined, undefined, `cannot read configuration: ${why}`);
  }
  return parseConfig(text, path);
}

/** `file` names the source in errors and anchors relative paths (socket, cert, key). */
export function parseConfig(text: string, file: string): StyxConfig {
  const src = new Source(file);
  const root = src.parse(text);
  const top = root.map(TOP_KEYS);
  const baseDir = dirname(resolve(file));
  const daemon = parseDaemon(top.get('daemon').map(DAEMON_KEYS), baseDir);
  const secrets = top.get('secrets').list().map(parseSecret);
  const connsMap = top.get('connections').map(null);
  const connections: ConnectionConfig[] = [];
  for (const name of connsMap.keys()) {
    const v = connsMap.get(name);
    if (!NAME.test(name)) v.fail(`invalid connection name '${name}' (letters, digits, '.', '_', '-')`);
    const conn = parseConnection(name, v, baseDir, daemon);
    checkSecret(conn, secrets, v);
    connections.push(conn);
  }
  return { file, daemon, connections, secrets };
}

/** The text of a ConfigError as shown to users: 'file:line (key): reason'. */
export function formatConfigError(e: ConfigError): string {
  return `configuration error: ${e.message}`;
}

function parseDaemon(m: MapValue, baseDir: string): DaemonConfig {
  const listen = m.opt('listen', (v) => v.list().map((a) => {
    const s = a.nonEmptyString();
    if (isIP(s) === 0) a.fail(`'${s}' is not an IP address`);
    return s;
  }), ['0.0.0.0', '::']);
  if (m.has('listen') && listen.length === 0) m.get('listen').fail('at least one address is required');
  const port = m.opt('port', (v) => v.int(1, 65535), 500);
  const natPort = m.opt('nat_port', (v) => v.int(1, 65535), 4500);
  if (port === natPort) m.get('nat_port').fail(`nat_port must differ from port (${port})`);
  const sock = m.opt('control_socket', (v) => v.nonEmptyString(), DEFAULT_CONTROL_SOCKET);
  const controlSocket = isAbsolute(sock) ? sock : resolve(baseDir, sock);
  const dataplane = m.opt('dataplane', (v) => v.oneOf(['memory', 'userspace', 'xfrm'] as const), 'memory');
  const cookieThreshold = m.opt('cookie_threshold', (v) => v.int(0, 1_000_000), 10);
  // RFC 3948 2.3: how often a host behind a NAT refreshes the mapping; 0 turns keepalives off.
  const keepalive = m.opt('keepalive', (v) => {
    const secs = v.duration();
    if (secs > 3600) v.fail(`keepalive ${secs}s is longer than any NAT keeps a UDP mapping; use at most 1h`);
    return secs;
  }, 20);
  // The userspace data plane's TUN device; the MTU leaves room for ESP-in-UDP overhead (about 80 bytes).
  const tunMap = m.get('tun').map(['name', 'mtu']);
  const tun = {
    name: tunMap.opt('name', (v) => {
      const n = v.nonEmptyString();
      if (!/^[A-Za-z0-9_.-]{1,15}$/.test(n)) v.fail(`'${n}' is not a usable interface name (1-15 letters, digits, '_', '.', '-')`);
      return n;
    }, 'styx0'),
    mtu: tunMap.opt('mtu', (v) => v.int(576, 9000), 1400),
  };
  const logLevels: Partial<Record<Subsystem, Level>> = {};
  let defaultLogLevel: Level = 'info';
  const log = m.get('log').map(['default', ...SUBSYSTEMS]);
  for (const key of log.keys()) {
    const level = log.get(key).oneOf(LEVELS);
    if (key === 'default') defaultLogLevel = level;
    else logLevels[key as Subsystem] = level;
  }
  const fragmentSize = m.opt('fragment_size', (v) => v.int(MIN_FRAGMENT_SIZE, 65535), DEFAULT_FRAGMENT_SIZE);
  return { listen, port, natPort, controlSocket, dataplane, tun, logLevels, defaultLogLevel, cookieThreshold, keepalive, fragmentSize };
}

function parsePsk(v: Value): Buffer {
  const s = v.string();
  if (/^0x/i.test(s)) {
    const hexText = s.slice(2);
    if (!/^([0-9a-fA-F]{2})+$/.test(hexText)) v.fail('hex PSK must have an even number of hex digits after 0x');
    return Buffer.from(hexText, 'hex');
  }
  if (s === '') v.fail('PSK must not be empty');
  return Buffer.from(s, 'utf8');
}

function parseSecret(v: Value): SecretConfig {
  const m = v.map(SECRET_KEYS);
  if (!m.has('psk')) v.fail("a secret needs 'psk'");
  const ids = m.get('ids').list().map((idv) => {
    const s = idv.nonEmptyString();
    at(idv, () => parseIdentity(s));
    return s;
  });
  return { ids, psk: parsePsk(m.get('psk')) };
}

type AddrKind = 'local' | 'remote';

function parseAddrs(v: Value, kind: AddrKind): string[] {
  if (!v.present) return ['%any'];
  const out = v.list().map((a) => {
    const s = a.nonEmptyString();
    if (s === '%any' || isIP(s) !== 0) return s;
    // A remote peer may be named by DNS; a local address must be one we can bind.
    if (kind === 'remote' && isHostname(s)) return s;
    return a.fail(`'${s}' is not ${kind === 'remote' ? 'an IP address, hostname' : 'an IP address'} or %any`);
  });
  if (out.length === 0) v.fail('at least one address (or %any) is required');
  return out;
}

function familyOf(addrs: string[]): 4 | 6 | null {
  for (const a of addrs) {
    const f = isIP(a);
    if (f === 4 || f === 6) return f;
  }
  return null;
}

function parseAuth(v: Value, side: AddrKind, localAddrs: string[], baseDir: string): AuthConfig {
  if (!v.present) v.fail(`'${side}' is required (at least { auth: psk })`);
  const m = v.map(AUTH_KEYS);
  const method = m.get('auth').oneOf(['psk', 'pubkey'] as const);
  if (method === 'psk') {
    for (const k of ['cert', ...LOCAL_ONLY, ...REMOTE_ONLY] as const) if (m.has(k)) m.get(k).fail(`'${k}' is only used with auth: pubkey`);
    return { method, id: parseAuthId(m, side, localAddrs, undefined) };
  }
  for (const k of side === 'local' ? REMOTE_ONLY : LOCAL_ONLY) {
    if (m.has(k)) m.get(k).fail(`'${k}' belongs under ${side === 'local' ? 'remote' : 'local'}: (${side === 'local' ? 'it says whom we trust' : 'it is about our own key'})`);
  }
  const path = (k: 'cert' | 'key'): string | undefined => (m.has(k) ? resolve(baseDir, m.get(k).nonEmptyString()) : undefined);
  const cert = path('cert'), key = path('key');
  const leaf = cert !== undefined ? checkCertFile(m.get('cert'), cert) : undefined;
  const cacerts = pathList(m.get('cacerts'), baseDir);
  const crls = pathList(m.get('crls'), baseDir);
  if (side === 'local') {
    if (cert === undefined) m.get('cert').fail('local pubkey authentication needs a certificate file');
    if (key === undefined) m.get('key').fail('local pubkey authentication needs a private key file');
    checkKeyFile(m.get('key'), key, leaf!, cert);
  } else {
    if (cacerts.length === 0 && cert === undefined) m.get('cacerts').fail('remote pubkey authentication needs cacerts (or the peer\'s cert) to trust anyone');
    cacerts.forEach((p, i) => checkCaEntry(m.get('cacerts').list()[i]!, p));
    crls.forEach((p, i) => checkCrlEntry(m.get('crls').list()[i]!, p));
  }
  const signature = m.opt('signature', (x) => x.oneOf(['auto', 'pss', 'legacy'] as const), 'auto');
  if (signature === 'pss' && leaf && leaf.key.type === 'ecdsa') m.get('signature').fail('signature: pss needs an RSA key, the certificate has an ECDSA key');
  const out: PubkeyAuthConfig = { method, id: parseAuthId(m, side, localAddrs, leaf), cacerts, crls, signature };
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  return out;
}

/**
 * The configured identity; without one, a local certificate's subject
 * (RFC 4945 3.1.5), else the single local address, and %any for the peer.
 */
function parseAuthId(m: MapValue, side: AddrKind, localAddrs: string[], leaf: Cert | undefined): IdentityConfig {
  if (m.has('id')) {
    const idv = m.get('id');
    const id = at(idv, () => parseIdentity(idv.string()));
    if (side === 'local' && id.type === 'any') idv.fail('the local identity cannot be %any');
    if (id.type === 'dn') {
      try { dnToDer(id.value); } catch (e) { if (e instanceof AuthError) idv.fail(e.message); throw e; }
    }
    return id;
  }
  if (side === 'remote') return { type: 'any', value: '%any' };
  if (side === 'local' && leaf) return { type: 'dn', value: leaf.subject };
  // Without an explicit id, the local address is the natural identity, but only if there is exactly one.
  const literal = localAddrs.filter((a) => isIP(a) !== 0);
  if (literal.length !== 1 || localAddrs.length !== 1) {
    return m.get('id').fail('local.id is required unless local_addrs is a single IP address');
  }
  return parseIdentity(literal[0]!);
}

/** A string or a list of strings, each resolved against the configuration's directory. */
function pathList(v: Value, baseDir: string): string[] {
  return v.list().map((x) => resolve(baseDir, x.nonEmptyString()));
}

const CERT_FILE = /\.(pem|crt|cer|der)$/i;
const CRL_FILE = /\.(pem|crl|der)$/i;

const errnoOf = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));

/** Runs a parser from src/auth and reports its failure at the key that named the file. */
function parsedAt<T>(v: Value, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AuthError) v.fail(e.message);
    throw e;
  }
}

function readAt(v: Value, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    return v.fail(`cannot read ${file} (${errnoOf(e)})`);
  }
}

/** A file, or the files of a directory with a matching extension (as CertStore reads them). */
function filesAt(v: Value, path: string, ext: RegExp, what: string): string[] {
  let dir: boolean;
  try { dir = statSync(path).isDirectory(); } catch (e) { return v.fail(`cannot read ${path} (${errnoOf(e)})`); }
  if (!dir) return [path];
  let names: string[];
  try { names = readdirSync(path); } catch (e) { return v.fail(`cannot read directory ${path} (${errnoOf(e)})`); }
  const files = names.filter((n) => ext.test(n)).sort().map((n) => join(path, n));
  if (files.length === 0) v.fail(`directory ${path} holds no ${what} files (${ext.source})`);
  return files;
}

/** Our certificate file: readable, a certificate first, intermediates (if any) after it. */
function checkCertFile(v: Value, file: string): Cert {
  return parsedAt(v, () => parseCertificates(readAt(v, file), file))[0]!;
}

function checkCaEntry(v: Value, path: string): void {
  for (const f of filesAt(v, path, CERT_FILE, 'certificate')) parsedAt(v, () => parseCertificates(readAt(v, f), f));
}

function checkCrlEntry(v: Value, path: string): void {
  for (const f of filesAt(v, path, CRL_FILE, 'CRL')) parsedAt(v, () => parseCrls(readAt(v, f), f));
}

/** The key must parse and belong to the certificate, or every signature would fail at run time. */
function checkKeyFile(v: Value, file: string | undefined, leaf: Cert, certFile: string | undefined): void {
  if (file === undefined) return;
  const key = parsedAt(v, () => parsePrivateKey(readAt(v, file), file));
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!spki.equals(leaf.publicKey.export({ type: 'spki', format: 'der' }))) {
    v.fail(`${file}: private key does not belong to the certificate in ${certFile ?? 'cert'} (${leaf.describe()})`);
  }
}

function parseLifetimes(m: MapValue, defRekey: number): { rekeyTime: number; lifetime: number } {
  const rekeyTime = Math.round(m.opt('rekey_time', (v) => v.duration(), defRekey));
  if (rekeyTime < 1) m.get('rekey_time').fail('rekey_time must be at least 1s');
  // Default: 10% past the rekey time, and at least a second, so short test lifetimes still rekey first.
  const lifetime = Math.round(m.opt('lifetime', (v) => v.duration(), Math.max(rekeyTime + 1, Math.round(rekeyTime * 1.1))));
  if (lifetime <= rekeyTime) {
    (m.has('lifetime') ? m.get('lifetime') : m.get('rekey_time'))
      .fail(`lifetime (${lifetime}s) must be longer than rekey_time (${rekeyTime}s)`);
  }
  return { rekeyTime, lifetime };
}

function parseProposals<T>(m: MapValue, key: string, defaults: readonly string[], parse: (s: string) => T): T[] {
  if (!m.has(key)) return defaults.map(parse);
  const list = m.get(key).list();
  if (list.length === 0) m.get(key).fail('at least one proposal is required');
  return list.map((pv) => at(pv, () => parse(pv.nonEmptyString())));
}

function parseTsList(v: Value, dynamicFamily: 4 | 6): TrafficSelectorConfig[] {
  if (!v.present) return [parseTrafficSelector('dynamic', dynamicFamily)];
  const list = v.list();
  if (list.length === 0) v.fail('at least one traffic selector is required');
  return list.map((tv) => at(tv, () => parseTrafficSelector(tv.nonEmptyString(), dynamicFamily)));
}

function parseChild(name: string, v: Value, famLocal: 4 | 6, famRemote: 4 | 6): ChildConfig {
  if (!NAME.test(name)) v.fail(`invalid child name '${name}' (letters, digits, '.', '_', '-')`);
  const m = v.map(CHILD_KEYS);
  const espProposals: EspProposalConfig[] = parseProposals(m, 'esp_proposals', DEFAULT_ESP_PROPOSALS, parseEspProposal);
  const weak = espProposals.find((p) => p.encr.some((e) => e.id === EncrId.ENCR_3DES) || p.dh.includes(DhId.MODP_1024));
  if (weak) m.get('esp_proposals').fail(`'${weak.text}': 3des and modp1024 are not offered for ESP`);
  const { rekeyTime, lifetime } = parseLifetimes(m, 3600);
  // Volume limits, counted by the data plane (RFC 4301 4.4.2.1: soft starts a rekey, hard ends the SA); 0 = none.
  const count = (key: 'rekey_bytes' | 'life_bytes' | 'rekey_packets' | 'life_packets'): number => m.opt(key, (x) => x.int(0, Number.MAX_SAFE_INTEGER), 0);
  const volume = { rekeyBytes: count('rekey_bytes'), lifeBytes: count('life_bytes'), rekeyPackets: count('rekey_packets'), lifePackets: count('life_packets') };
  if (volume.rekeyBytes && volume.lifeBytes && volume.lifeBytes <= volume.rekeyBytes) m.get('life_bytes').fail('life_bytes must be larger than rekey_bytes');
  if (volume.rekeyPackets && volume.lifePackets && volume.lifePackets <= volume.rekeyPackets) m.get('life_packets').fail('life_packets must be larger than rekey_packets');
  return {
    ...volume,
    name,
    localTs: parseTsList(m.get('local_ts'), famLocal),
    remoteTs: parseTsList(m.get('remote_ts'), famRemote),
    espProposals,
    mode: m.opt('mode', (x) => x.oneOf(['tunnel', 'transport'] as const), 'tunnel'),
    // trap: negotiate on demand, when traffic for the child's selectors first appears (RFC 4301 5.1.1).
    startAction: m.opt('start_action', (x) => x.oneOf(['start', 'trap', 'none'] as const), 'none'),
    rekeyTime,
    lifetime,
  };
}

function parseConnection(name: string, v: Value, baseDir: string, daemon: DaemonConfig): ConnectionConfig {
  const m = v.map(CONN_KEYS);
  const version = m.opt('version', (x) => x.oneOf(['1', '2'] as const), '2') === '1' ? 1 : 2;
  const localAddrs = parseAddrs(m.get('local_addrs'), 'local');
  const remoteAddrs = parseAddrs(m.get('remote_addrs'), 'remote');
  const ikeProposals: IkeProposalConfig[] = parseProposals(m, 'proposals', DEFAULT_IKE_PROPOSALS, parseIkeProposal);
  const local = parseAuth(m.get('local'), 'local', localAddrs, baseDir);
  const remote = parseAuth(m.get('remote'), 'remote', localAddrs, baseDir);
  const startAction = m.opt('start_action', (x) => x.oneOf(['start', 'none'] as const), 'none');
  const aggressive = m.opt('aggressive', (x) => x.bool(), false);
  if (aggressive && version !== 1) m.get('aggressive').fail('aggressive mode exists only in IKEv1 (version: 1)');
  // 3DES and MODP-1024 are accepted only for IKEv1 phase 1, to reach old gateways.
  const legacy = ikeProposals.find((p) => p.encr.some((e) => e.id === EncrId.ENCR_3DES) || p.dh.includes(DhId.MODP_1024));
  if (legacy && version !== 1) m.get('proposals').fail(`'${legacy.text}': 3des and modp1024 are legacy and allowed only with version: 1`);
  const { rekeyTime, lifetime } = parseLifetimes(m, 14400);
  // Reauthentication: a whole new IKE SA before the old one goes (make-before-break); 0 = off.
  const reauthTime = m.opt('reauth_time', (x) => x.duration(), 0);
  if (reauthTime > 0 && reauthTime >= lifetime) m.get('reauth_time').fail(`reauth_time (${reauthTime}s) must be shorter than lifetime (${lifetime}s)`);
  if (reauthTime > 0 && version !== 2) m.get('reauth_time').fail('reauth_time is for IKEv2 connections');

  const dpdDelay = m.opt('dpd_delay', (x) => x.duration(), 0);
  const dpdTimeout = m.opt('dpd_timeout', (x) => x.duration(), 150);
  if (dpdTimeout <= 0) m.get('dpd_timeout').fail('dpd_timeout must be positive');
  const dpdAction = m.opt('dpd_action', (x) => x.oneOf(['clear', 'restart', 'trap'] as const), 'clear');

  const rt = m.get('retransmit').map(RETRANSMIT_KEYS);
  const retransmit = {
    timeout: rt.opt('timeout', (x) => x.duration(), 4),
    tries: rt.opt('tries', (x) => x.int(1, 100), 5),
    base: rt.opt('base', (x) => x.number(1, 10), 1.8),
  };
  if (retransmit.timeout <= 0) rt.get('timeout').fail('timeout must be positive');
  const fragmentation = m.opt('fragmentation', (x) => x.bool(), true);
  const fragmentSize = m.opt('fragment_size', (x) => x.int(MIN_FRAGMENT_SIZE, 65535), daemon.fragmentSize);

  // Selectors written as 'dynamic' take the family of the tunnel endpoints.
  const famLocal = familyOf(localAddrs) ?? familyOf(remoteAddrs) ?? 4;
  const famRemote = familyOf(remoteAddrs) ?? familyOf(localAddrs) ?? 4;
  const childMap = m.get('children').map(null);
  const children = childMap.keys().map((cn) => parseChild(cn, childMap.get(cn), famLocal, famRemote));

  const initiates = startAction === 'start' || children.some((c) => c.startAction === 'start' || c.startAction === 'trap');
  if (initiates && remoteAddrs.every((a) => a === '%any')) {
    (m.has('remote_addrs') ? m.get('remote_addrs') : v).fail('start_action start or trap needs a concrete remote address, not %any');
  }
  if (startAction === 'start' && children.length === 0) {
    m.get('start_action').fail('start_action: start needs at least one child to negotiate');
  }

  return {
    name, version, localAddrs, remoteAddrs,
    localPort: m.opt('local_port', (x) => x.int(1, 65535), 500),
    remotePort: m.opt('remote_port', (x) => x.int(1, 65535), 500),
    ikeProposals, local, remote, children, startAction, aggressive,
    encap: m.opt('encap', (x) => x.bool(), false),
    rekeyTime, lifetime, reauthTime, dpdDelay, dpdTimeout, dpdAction, retransmit, fragmentation, fragmentSize,
  };
}

/**
 * The secret for a pair of identities: one naming both wins over one naming
 * the peer, over one naming us, over one naming nobody (which applies to
 * any peer). Identities compare as identities (case-insensitive names,
 * normalised DNs and addresses), not as text.
 */
export function findSecret(
  secrets: readonly SecretConfig[], local: IdentityConfig, remote: IdentityConfig,
): SecretConfig | undefined {
  let best: SecretConfig | undefined;
  let bestScore = -1;
  for (const s of secrets) {
    let score: number;
    if (s.ids.length === 0) score = 0;
    else {
      const ids = s.ids.map((t) => parseIdentity(t));
      const hasLocal = ids.some((i) => sameIdentity(i, local));
      const hasRemote = remote.type !== 'any' && ids.some((i) => sameIdentity(i, remote));
      score = hasLocal && hasRemote ? 3 : hasRemote ? 2 : hasLocal ? 1 : -1;
    }
    if (score > bestScore) { best = s; bestScore = score; }
  }
  return best;
}

/** The PSK for identities as IKE prints them (identityText); text that is no identity matches only itself. */
export function findPsk(secrets: readonly SecretConfig[], localText: string, remoteText: string): Buffer | null {
  const parse = (t: string): IdentityConfig => { try { return parseIdentity(t); } catch { return { type: 'keyid', value: t }; } };
  return findSecret(secrets, parse(localText), parse(remoteText))?.psk ?? null;
}

function checkSecret(conn: ConnectionConfig, secrets: readonly SecretConfig[], v: Value): void {
  if (conn.local.method !== 'psk' && conn.remote.method !== 'psk') return;
  if (findSecret(secrets, conn.local.id, conn.remote.id)) return;
  v.fail(`no secret for ids ${conn.local.id.value}/${conn.remote.id.value} (add one under 'secrets')`);
}
