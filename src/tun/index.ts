/**
 * TUN devices for the userspace ESP data plane: the batch-shaped contract,
 * Linux devices through the styx_tun addon, and in-memory pairs for tests.
 */
export { DEFAULT_BATCH, type TunDevice, type TunErrorSource } from './api.js';
export { LinuxTun, TunError, openTun, parseCidr, type OpenTunOptions } from './linux.js';
export { MemoryTun, createTunPair, type MemoryTunOptions } from './memory.js';
