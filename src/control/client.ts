/**
 * The CLI side of the control socket: one request, one response, then close.
 */
import { createConnection } from 'node:net';
import { StyxError } from '../util/errors.js';
import { parseResponse } from './protocol.js';
import type { Command, CommandArgs, CommandResults } from './protocol.js';

/** styxd could not be reached, did not answer in time, or answered nonsense. */
export class ControlConnectError extends StyxError {
  constructor(message: string) { super('ERR_CONTROL_CONNECT', message); }
}

/** styxd answered, and the command failed; the message is the daemon's reason. */
export class ControlCommandError extends StyxError {
  constructor(message: string) { super('ERR_CONTROL_COMMAND', message); }
}

let nextId = 1;

function describeConnectError(path: string, e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return `cannot connect to styxd at ${path}: is it running?`;
    case 'EACCES':
    case 'EPERM':
      return `cannot connect to styxd at ${path}: permission denied (the socket is only open to its owner; try as root)`;
    case 'ENOTSOCK':
      return `cannot connect to styxd at ${path}: not a socket`;
    default:
      return `cannot connect to styxd at ${path}: ${e.message}`;
  }
}

/**
 * Sends one command and resolves with its result. Rejects with
 * ControlConnectError when styxd cannot be reached or times out, and with
 * ControlCommandError when the command itself failed.
 */
export function controlRequest<C extends Command>(
  path: string, cmd: C, args: CommandArgs[C], timeoutMs: number,
): Promise<CommandResults[C]> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    let settled = false;
    let connected = false;
    let buffered = '';
    const sock = createConnection(path);
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      fn();
    };
    const timer = setTimeout(() => {
      finish(() => reject(new ControlConnectError(
        connected ? `no answer from styxd at ${path} within ${Math.ceil(timeoutMs / 1000)}s`
          : `cannot connect to styxd at ${path}: timed out`)));
    }, timeoutMs);

    sock.setEncoding('utf8');
    sock.once('connect', () => {
      connected = true;
      sock.write(JSON.stringify({ id, cmd, args }) + '\n');
    });
    sock.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const res = parseResponse(line);
        if (res === null) {
          finish(() => reject(new ControlConnectError(`styxd at ${path} sent a malformed response`)));
          return;
        }
        // A null id answers a request the daemon could not read: on this connection, ours.
        if (res.id !== id && res.id !== null) continue;
        if (res.ok) finish(() => resolve(res.result as CommandResults[C]));
        else finish(() => reject(new ControlCommandError(res.error)));
        return;
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      finish(() => reject(new ControlConnectError(connected ? `connection to styxd at ${path} failed: ${e.message}` : describeConnectError(path, e))));
    });
    sock.on('close', () => {
      finish(() => reject(new ControlConnectError(`styxd at ${path} closed the connection without answering`)));
    });
  });
}
