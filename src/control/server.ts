/**
 * The daemon side of the control socket. Anyone who can connect can tear
 * down tunnels, so the socket lives in a 0700 directory and is itself 0600.
 * A misbehaving client gets an error response or is disconnected; nothing it
 * sends can take the daemon down.
 */
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { StyxError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import {
  DEFAULT_INITIATE_TIMEOUT_MS, MAX_LINE_BYTES, parseRequest,
} from './protocol.js';
import type { ControlHandler, ControlRequest, ControlResponse } from './protocol.js';

/** The control socket could not be set up. */
export class ControlSocketError extends StyxError {
  constructor(path: string, why: string) {
    super('ERR_CONTROL_SOCKET', `control socket ${path}: ${why}`);
  }
}

export interface ControlServer { close(): Promise<void> }

/** A socket file that still accepts connections belongs to a running daemon. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  try {
    // Only a directory we create is tightened; an existing one is the administrator's choice.
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) chmodSync(dir, 0o700);
  } catch (e) {
    throw new ControlSocketError(path, `cannot create ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;                                     // nothing there
  }
  if (!isSocket) throw new ControlSocketError(path, 'exists and is not a socket; refusing to remove it');
  if (await socketIsLive(path)) throw new ControlSocketError(path, 'in use: is another styxd running?');
  try {
    unlinkSync(path);
  } catch (e) {
    throw new ControlSocketError(path, `cannot remove stale socket: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(new ControlSocketError(path, e.message));
    server.once('error', onError);
    // The umask closes the window between bind() and chmod() in which the socket would be world-accessible.
    const old = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
}

async function dispatch(handler: ControlHandler, req: ControlRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'list': return handler.list();
    case 'list-conns': return handler.listConns();
    case 'list-certs':
      if (!handler.listCerts) throw new Error('this daemon does not list certificates');
      return handler.listCerts();
    case 'initiate': {
      const a = req.args!;
      return handler.initiate(a.name, a.timeoutMs ?? DEFAULT_INITIATE_TIMEOUT_MS);
    }
    case 'terminate': return handler.terminate(req.args!.name);
    case 'rekey': return handler.rekey(req.args!.name);
    case 'reload': return handler.reload();
    case 'log-level': return handler.setLogLevel(req.args!.subsystem, req.args!.level);
    case 'stats': return handler.stats();
  }
}

export async function startControlServer(path: string, handler: ControlHandler, log: Logger): Promise<ControlServer> {
  await prepareSocketPath(path);
  const clients = new Set<Socket>();
  let nextClient = 1;

  const server = createServer((sock) => {
    const who = `client ${nextClient++}`;
    clients.add(sock);
    log.debug(`${who} connected`);
    let buffered = '';
    sock.setEncoding('utf8');

    const send = (res: ControlResponse): void => {
      if (!sock.writable) return;
      sock.write(JSON.stringify(res) + '\n');
    };

    const handle = async (line: string): Promise<void> => {
      const parsed = parseRequest(line);
      if (!parsed.ok) {
        log.debug(`${who}: ${parsed.error}`);
        send({ id: parsed.id, ok: false, error: parsed.error });
        return;
      }
      const req = parsed.request;
      log.debug(`${who}: ${req.cmd} ${JSON.stringify(req.args ?? {})}`);
      try {
        const result = await dispatch(handler, req);
        send({ id: req.id, ok: true, result } as ControlResponse);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        log.debug(`${who}: ${req.cmd} failed: ${msg}`);
        send({ id: req.id, ok: false, error: msg });
      }
    };

    let refused = false;
    sock.on('data', (chunk: string) => {
      if (refused) return;
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line !== '') void handle(line);
      }
      if (Buffer.byteLength(buffered) > MAX_LINE_BYTES) {
        log.warn(`${who}: request longer than ${MAX_LINE_BYTES} bytes, disconnecting`);
        send({ id: null, ok: false, error: `request too long (limit ${MAX_LINE_BYTES} bytes)` });
        buffered = '';
        refused = true;
        sock.end();
        // A client that keeps sending and never closes must not hold the connection open.
        setTimeout(() => sock.destroy(), 1000).unref();
      }
    });
    sock.on('error', (e) => log.debug(`${who}: ${e.message}`));
    sock.on('close', () => {
      clients.delete(sock);
      log.debug(`${who} disconnected`);
    });
  });
  server.on('error', (e) => log.error(`control socket ${path}: ${e.message}`));

  await listen(server, path);
  // Belt and braces: the umask should already have produced 0600.
  chmodSync(path, 0o600);
  log.info(`control socket listening on ${path}`);

  let closed: Promise<void> | null = null;
  return {
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Closing the server unlinks the socket file; clients still connected would hold it open.
        for (const c of clients) c.destroy();
      });
      return closed;
    },
  };
}
