/** The control socket: protocol types, server (styxd side), client and CLI (styx side). */
export * from './protocol.js';
export { startControlServer, ControlSocketError } from './server.js';
export type { ControlServer } from './server.js';
export { controlRequest, ControlConnectError, ControlCommandError } from './client.js';
export { formatDuration, formatIkeSa, formatIkeSas, formatConns, formatStats } from './format.js';
export { runCli, USAGE, EXIT_OK, EXIT_FAILED, EXIT_USAGE } from './cli.js';
export type { CliIo } from './cli.js';
