/**
 * A small typed error hierarchy with stable codes, so callers and logs can
 * tell failures apart without matching on message text.
 */
export class StyxError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A read ran past the end of the buffer: the input was truncated. */
export class TruncatedError extends StyxError {
  constructor(what: string, need: number, have: number) {
    super('ERR_TRUNCATED', `truncated ${what}: need ${need} bytes, have ${have}`);
  }
}

/** Bytes were present but violate the format (bad length, bad field value). */
export class MalformedError extends StyxError {
  constructor(what: string, why: string) {
    super('ERR_MALFORMED', `malformed ${what}: ${why}`);
  }
}

/** A value is well-formed but not something styx supports. */
export class UnsupportedError extends StyxError {
  constructor(what: string) {
    super('ERR_UNSUPPORTED', `unsupported ${what}`);
  }
}

/** Integrity check or decryption failed. */
export class IntegrityError extends StyxError {
  constructor(what: string) {
    super('ERR_INTEGRITY', `integrity check failed: ${what}`);
  }
}

/** Configuration is wrong; `where` names the file, line and key. */
export class ConfigError extends StyxError {
  readonly file: string;
  readonly line: number | undefined;
  readonly key: string | undefined;
  constructor(file: string, line: number | undefined, key: string | undefined, why: string) {
    const at = `${file}${line !== undefined ? `:${line}` : ''}${key !== undefined ? ` (${key})` : ''}`;
    super('ERR_CONFIG', `${at}: ${why}`);
    this.file = file;
    this.line = line;
    this.key = key;
  }
}

/** A Result type for decoders: parse, don't validate. */
export type Result<T, E = StyxError> = { ok: true; value: T } | { ok: false; error: E };
export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });

/** Runs a throwing decoder and turns StyxErrors into a Result; other errors are bugs and rethrown. */
export function attempt<T>(fn: () => T): Result<T> {
  try {
    return ok(fn());
  } catch (e) {
    if (e instanceof StyxError) return err(e);
    throw e;
  }
}
