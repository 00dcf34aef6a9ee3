/**
 * A thin layer over the `yaml` package's document tree that remembers, for
 * every value, the dotted key path and source line it came from. Every
 * validation failure is thrown as a ConfigError pointing at that place, so a
 * user can go straight to the offending line.
 *
 * Documents are read with the failsafe schema: every scalar stays the string
 * the user wrote. Typing is done here per key, which keeps '0x…' secrets,
 * leading zeros and the like exactly as written instead of letting YAML guess.
 */
import { LineCounter, parseDocument, isAlias, isMap, isScalar, isSeq } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { ConfigError } from '../util/errors.js';

export class Source {
  readonly lines: LineCounter;
  private doc: Document | undefined;
  constructor(readonly file: string) {
    this.lines = new LineCounter();
  }

  /** Parses the text and returns the root value; YAML syntax errors become ConfigErrors. */
  parse(text: string): Value {
    const doc = parseDocument(text, {
      lineCounter: this.lines,
      schema: 'failsafe',
      // Duplicates are reported by Value.map() with the full key path instead.
      uniqueKeys: false,
      prettyErrors: false,
    });
    this.doc = doc;
    const first = doc.errors[0];
    if (first) {
      const why = (first.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      throw new ConfigError(this.file, this.lineAt(first.pos[0]), undefined, `YAML syntax error: ${why}`);
    }
    const root = doc.contents;
    return new Value(this, root === null ? null : (root as YamlNode), '', undefined);
  }

  lineAt(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  resolveAlias(node: YamlNode): YamlNode | null {
    if (!isAlias(node)) return node;
    if (!this.doc) return null;
    const target = node.resolve(this.doc);
    return target ?? null;
  }
}

/** One key of a mapping: the key's own line is used for 'unknown key' errors. */
interface Entry { keyLine: number | undefined; value: Value }

/**
 * A located YAML value. `node` is null when the value is absent or written
 * as an empty plain scalar ('key:' with nothing after it).
 */
export class Value {
  readonly node: YamlNode | null;
  constructor(
    readonly src: Source,
    node: YamlNode | null,
    readonly path: string,
    private readonly anchorLine: number | undefined,
    /** Values of a mapping are reported at their key's line, which is where a reader looks for them. */
    private readonly anchorIsKey = false,
  ) {
    let n = node === null ? null : src.resolveAlias(node);
    if (n !== null && isScalar(n) && n.type === 'PLAIN' && n.value === '') n = null;
    this.node = n;
  }

  get line(): number | undefined {
    if (this.anchorIsKey && this.anchorLine !== undefined) return this.anchorLine;
    const r = this.node?.range;
    return r ? this.src.lineAt(r[0]) : this.anchorLine;
  }
  get present(): boolean { return this.node !== null; }

  fail(why: string): never {
    throw new ConfigError(this.src.file, this.line, this.path === '' ? undefined : this.path, why);
  }

  private child(node: YamlNode | null, path: string, line: number | undefined, lineIsKey = false): Value {
    return new Value(this.src, node, path, line, lineIsKey);
  }

  /**
   * Reads a mapping, rejecting keys that are not in `allowed` (so typos are
   * reported rather than ignored) and keys that appear twice.
   * `allowed === null` accepts any key; the caller then validates the names.
   */
  map(allowed: readonly string[] | null): MapValue {
    if (this.node === null) return new MapValue(this, new Map());
    if (!isMap(this.node)) this.fail('expected a mapping (key: value)');
    const out = new Map<string, Entry>();
    for (const pair of this.node.items) {
      const keyNode = pair.key as YamlNode | null;
      const keyLine = keyNode?.range ? this.src.lineAt(keyNode.range[0]) : this.line;
      if (keyNode === null || !isScalar(keyNode) || typeof keyNode.value !== 'string' || keyNode.value === '') {
        throw new ConfigError(this.src.file, keyLine, this.path || undefined, 'keys must be plain names');
      }
      const key = keyNode.value;
      const path = this.path === '' ? key : `${this.path}.${key}`;
      if (allowed !== null && !allowed.includes(key)) {
        throw new ConfigError(this.src.file, keyLine, path, `unknown key '${key}' (expected one of: ${allowed.join(', ')})`);
      }
      if (out.has(key)) throw new ConfigError(this.src.file, keyLine, path, `duplicate key '${key}'`);
      out.set(key, { keyLine, value: this.child(pair.value as YamlNode | null, path, keyLine, true) });
    }
    return new MapValue(this, out);
  }

  /** A sequence; a single scalar is accepted as a one-element list for convenience. */
  list(): Value[] {
    if (this.node === null) return [];
    if (isScalar(this.node)) return [this.child(this.node, `${this.path}[0]`, this.line)];
    if (!isSeq(this.node)) this.fail('expected a list');
    return this.node.items.map((item, i) => this.child(item as YamlNode | null, `${this.path}[${i}]`, this.line));
  }

  string(): string {
    if (this.node === null) this.fail('a value is required');
    if (!isScalar(this.node) || typeof this.node.value !== 'string') this.fail('expected a single value, not a list or mapping');
    return this.node.value;
  }

  nonEmptyString(): string {
    const s = this.string().trim();
    if (s === '') this.fail('must not be empty');
    return s;
  }

  int(min: number, max: number): number {
    const s = this.string().trim();
    if (!/^\d+$/.test(s)) this.fail(`expected an integer, got '${s}'`);
    const n = Number(s);
    if (n < min || n > max) this.fail(`${n} is out of range ${min}..${max}`);
    return n;
  }

  number(min: number, max: number): number {
    const s = this.string().trim();
    if (!/^\d+(\.\d+)?$/.test(s)) this.fail(`expected a number, got '${s}'`);
    const n = Number(s);
    if (n < min || n > max) this.fail(`${n} is out of range ${min}..${max}`);
    return n;
  }

  bool(): boolean {
    const s = this.string().trim().toLowerCase();
    if (s === 'true' || s === 'yes') return true;
    if (s === 'false' || s === 'no') return false;
    return this.fail(`expected true or false, got '${s}'`);
  }

  oneOf<T extends string>(choices: readonly T[]): T {
    const s = this.string().trim();
    const hit = choices.find((c) => c === s);
    if (hit === undefined) this.fail(`'${s}' is not one of: ${choices.join(', ')}`);
    return hit;
  }

  /** Seconds, written as a plain number or with units: '4h', '30m', '10s', '1d', '1h30m'. */
  duration(): number {
    const s = this.string().trim();
    const secs = parseDuration(s);
    if (secs === null) this.fail(`invalid duration '${s}' (use seconds or e.g. 90s, 30m, 4h, 1d)`);
    return secs;
  }
}

export class MapValue {
  constructor(readonly owner: Value, private readonly entries: Map<string, Entry>) {}
  keys(): string[] { return [...this.entries.keys()]; }
  has(key: string): boolean { return this.entries.get(key)?.value.present ?? false; }
  /** The value at `key`; when absent, its errors point at the mapping itself. */
  get(key: string): Value {
    const e = this.entries.get(key);
    if (e) return e.value;
    const path = this.owner.path === '' ? key : `${this.owner.path}.${key}`;
    return new Value(this.owner.src, null, path, this.owner.line);
  }
  keyLine(key: string): number | undefined { return this.entries.get(key)?.keyLine; }
  /** Reads `key` with `read` when present, otherwise returns `fallback`. */
  opt<T>(key: string, read: (v: Value) => T, fallback: T): T {
    const v = this.get(key);
    return v.present ? read(v) : fallback;
  }
}

const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Returns seconds, or null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  if (!/^(\d+(\.\d+)?[smhd])+$/.test(s)) return null;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)([smhd])/g)) total += Number(m[1]) * UNIT[m[2]!]!;
  return total;
}
