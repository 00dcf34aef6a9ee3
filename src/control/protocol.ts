/**
 * The control protocol between the `styx` CLI and styxd: one JSON object per
 * line in each direction over a UNIX stream socket. A client may send several
 * requests on one connection; responses carry the request's id and may come
 * back in any order.
 */

export const COMMANDS = ['list', 'list-conns', 'list-certs', 'initiate', 'terminate', 'rekey', 'reload', 'log-level', 'stats'] as const;
export type Command = (typeof COMMANDS)[number];

/** The arguments each command takes. */
export interface CommandArgs {
  'list': Record<string, never>;
  'list-conns': Record<string, never>;
  'list-certs': Record<string, never>;
  'initiate': { name: string; timeoutMs?: number };
  'terminate': { name: string };
  /** A connection (its IKE SAs) or connection/child (its CHILD_SAs). */
  'rekey': { name: string };
  'reload': Record<string, never>;
  'log-level': { subsystem: string; level: string };
  'stats': Record<string, never>;
}

/** What each command returns on success. */
export interface CommandResults {
  'list': IkeSaInfo[];
  'list-conns': ConnInfo[];
  'list-certs': CertListInfo;
  'initiate': string;
  'terminate': string;
  'rekey': string;
  'reload': string;
  'log-level': string;
  'stats': Record<string, number>;
}

export type ControlRequest = { [C in Command]: { id: number; cmd: C; args?: CommandArgs[C] } }[Command];

/**
 * `id` is null only when the request was so malformed that its id could not
 * be read.
 */
export type ControlResponse<C extends Command = Command> =
  | { id: number; ok: true; result: CommandResults[C] }
  | { id: number | null; ok: false; error: string };

export interface ChildSaInfo {
  name: string;
  uniqueId: number;
  state: string;
  mode: 'tunnel' | 'transport';
  protocol: 'esp';
  spiIn: string;                    // hex, 8 chars
  spiOut: string;
  encap: boolean;
  algorithms: { encr: string; integ: string | null; dh: string | null; esn: boolean };
  localTs: string[];
  remoteTs: string[];
  installedAt: number | null;       // epoch ms
  // Decimal strings: 64-bit counters do not fit a JSON number.
  bytesIn: string;
  bytesOut: string;
  packetsIn: string;
  packetsOut: string;
}

export interface IkeSaInfo {
  name: string;
  uniqueId: number;
  version: 1 | 2;
  state: string;
  initiator: boolean;
  local: { address: string; port: number; id: string };
  remote: { address: string; port: number; id: string };
  spiI: string;                     // hex, 16 chars
  spiR: string;
  algorithms: { encr: string; integ: string | null; prf: string; dh: string };
  establishedAt: number | null;     // epoch ms
  rekeyAt: number | null;           // epoch ms
  nat: { local: boolean; remote: boolean };
  children: ChildSaInfo[];
}

export interface ConnInfo {
  name: string;
  version: 1 | 2;
  localAddrs: string[];
  remoteAddrs: string[];
  localId: string;
  remoteId: string;
  children: { name: string; localTs: string[]; remoteTs: string[] }[];
}

/** One certificate a connection loaded, with its status now (valid, expired, revoked, untrusted, ...). */
export interface CertInfo {
  connection: string;
  /** 'local' (ours), 'intermediate' (sent with ours) or 'ca' (trusted for the peer). */
  role: string;
  file: string;
  subject: string;
  issuer: string;
  serial: string;                   // hex
  notBefore: string;                // ISO 8601
  notAfter: string;
  key: string;                      // 'RSA-3072', 'ECDSA P-256'
  altNames: string[];
  sha256: string;
  status: string;
  /** Why, when the status is not 'valid'. */
  detail?: string;
}

export interface CrlInfo {
  connection: string;
  file: string;
  issuer: string;
  thisUpdate: string;
  nextUpdate?: string;
  crlNumber?: string;
  revoked: number;
  status: string;                   // 'current' | 'stale'
}

export interface CertListInfo {
  certs: CertInfo[];
  crls: CrlInfo[];
  /** Connections whose files could not be loaded now. */
  errors: { connection: string; error: string }[];
}

/** What the daemon implements; the server maps requests onto it. */
export interface ControlHandler {
  list(): Promise<IkeSaInfo[]>;
  listConns(): Promise<ConnInfo[]>;
  /** Certificates and CRLs of the connections that authenticate with certificates. */
  listCerts?(): Promise<CertListInfo>;
  /** Resolves when the IKE SA and its CHILD_SAs are up (message says so) or rejects with the reason. */
  initiate(name: string, timeoutMs: number): Promise<string>;
  terminate(name: string): Promise<string>;
  /** Starts a rekey of what `name` names now; says how many SAs, or rejects when none is up. */
  rekey(name: string): Promise<string>;
  reload(): Promise<string>;
  setLogLevel(subsystem: string, level: string): Promise<string>;
  /** Counters, e.g. malformed packets dropped. */
  stats(): Promise<Record<string, number>>;
}

/** Used when a client does not say how long `initiate` may take. */
export const DEFAULT_INITIATE_TIMEOUT_MS = 30_000;
/** A longer line is not a request we would ever send; refusing it bounds memory per client. */
export const MAX_LINE_BYTES = 64 * 1024;

export type ParsedRequest =
  | { ok: true; request: ControlRequest }
  | { ok: false; id: number | null; error: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCommand(s: unknown): s is Command {
  return typeof s === 'string' && (COMMANDS as readonly string[]).includes(s);
}

const NO_ARGS = {} as Record<string, never>;

/** Validates one received line; never throws. */
export function parseRequest(line: string): ParsedRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return { ok: false, id: null, error: 'malformed request: not valid JSON' };
  }
  if (!isRecord(raw)) return { ok: false, id: null, error: 'malformed request: expected a JSON object' };
  const id = raw['id'];
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
    return { ok: false, id: null, error: "malformed request: 'id' must be an integer" };
  }
  const cmd = raw['cmd'];
  if (!isCommand(cmd)) return { ok: false, id, error: `unknown command ${JSON.stringify(cmd)}; expected one of: ${COMMANDS.join(', ')}` };
  const args = raw['args'] ?? {};
  if (!isRecord(args)) return { ok: false, id, error: "malformed request: 'args' must be an object" };
  const str = (k: string): string | null => {
    const v = args[k];
    return typeof v === 'string' && v !== '' ? v : null;
  };
  switch (cmd) {
    case 'initiate': {
      const name = str('name');
      if (name === null) return { ok: false, id, error: 'initiate needs args.name' };
      const t = args['timeoutMs'];
      if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t <= 0)) {
        return { ok: false, id, error: 'args.timeoutMs must be a positive number' };
      }
      return { ok: true, request: { id, cmd, args: t === undefined ? { name } : { name, timeoutMs: t } } };
    }
    case 'terminate':
    case 'rekey': {
      const name = str('name');
      if (name === null) return { ok: false, id, error: `${cmd} needs args.name` };
      return { ok: true, request: { id, cmd, args: { name } } };
    }
    case 'log-level': {
      const subsystem = str('subsystem'), level = str('level');
      if (subsystem === null || level === null) return { ok: false, id, error: 'log-level needs args.subsystem and args.level' };
      return { ok: true, request: { id, cmd, args: { subsystem, level } } };
    }
    case 'list':
    case 'list-conns':
    case 'list-certs':
    case 'reload':
    case 'stats':
      return { ok: true, request: { id, cmd, args: NO_ARGS } };
  }
}

/** Validates one response line as seen by the client; never throws. */
export function parseResponse(line: string): ControlResponse | null {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isRecord(raw)) return null;
  const id = raw['id'];
  if (raw['ok'] === true && typeof id === 'number' && 'result' in raw) {
    return { id, ok: true, result: raw['result'] as CommandResults[Command] };
  }
  if (raw['ok'] === false && (typeof id === 'number' || id === null) && typeof raw['error'] === 'string') {
    return { id, ok: false, error: raw['error'] };
  }
  return null;
}
