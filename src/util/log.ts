/**
 * One line per event. Each subsystem has its own level, set from config or
 * the control socket. Key material is logged only at level 'secret', which a
 * user must ask for explicitly for that subsystem.
 */
export const LEVELS = ['silent', 'error', 'warn', 'info', 'debug', 'secret'] as const;
export type Level = (typeof LEVELS)[number];
const RANK: Record<Level, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4, secret: 5 };

export const SUBSYSTEMS = ['daemon', 'config', 'net', 'ike', 'enc', 'dataplane', 'control', 'esp'] as const;
export type Subsystem = (typeof SUBSYSTEMS)[number];

export type Sink = (line: string) => void;

export function isLevel(s: string): s is Level {
  return (LEVELS as readonly string[]).includes(s);
}

export class LogManager {
  private levels = new Map<Subsystem, Level>();
  private defaultLevel: Level = 'info';
  constructor(private sink: Sink = (l) => process.stderr.write(l + '\n'), private timestamps = true) {}
  setSink(sink: Sink): void { this.sink = sink; }
  setDefault(level: Level): void { this.defaultLevel = level; }
  setLevel(sub: Subsystem, level: Level): void { this.levels.set(sub, level); }
  level(sub: Subsystem): Level { return this.levels.get(sub) ?? this.defaultLevel; }
  enabled(sub: Subsystem, level: Level): boolean { return RANK[level] <= RANK[this.level(sub)]; }
  write(sub: Subsystem, level: Level, msg: string): void {
    if (!this.enabled(sub, level)) return;
    const ts = this.timestamps ? new Date().toISOString() + ' ' : '';
    this.sink(`${ts}${level.toUpperCase().padEnd(5)} [${sub}] ${msg}`);
  }
  for(sub: Subsystem): Logger { return new Logger(this, sub); }
}

export class Logger {
  constructor(private readonly mgr: LogManager, readonly sub: Subsystem) {}
  error(msg: string): void { this.mgr.write(this.sub, 'error', msg); }
  warn(msg: string): void { this.mgr.write(this.sub, 'warn', msg); }
  info(msg: string): void { this.mgr.write(this.sub, 'info', msg); }
  debug(msg: string): void { this.mgr.write(this.sub, 'debug', msg); }
  /** Key material: printed only when this subsystem is at level 'secret'. */
  secret(msg: string | (() => string)): void {
    if (this.mgr.enabled(this.sub, 'secret')) this.mgr.write(this.sub, 'secret', typeof msg === 'function' ? msg() : msg);
  }
  get secretsEnabled(): boolean { return this.mgr.enabled(this.sub, 'secret'); }
}

/** Process-wide manager; tests may create their own. */
export const logs = new LogManager();
