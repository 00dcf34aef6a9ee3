/**
 * The interop harness: network namespaces, strongSwan peers and styxd peers
 * for the mocha tests in this folder. See lib/ for each part.
 */
export * from './lib/exec.js';
export * from './lib/topology.js';
export * from './lib/charon-log.js';
export * from './lib/charon.js';
export * from './lib/styxd.js';
export { dumpLogsOnFailure } from './lib/report.js';
export type { IkeSaInfo, ChildSaInfo } from '../../src/control/protocol.js';
