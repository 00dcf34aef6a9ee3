export * from './errors.js';
export * from './bytes.js';
export * from './log.js';
export * from './timers.js';
