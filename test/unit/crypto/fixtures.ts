/**
 * Loading the known-answer files in test/fixtures/crypto (see the README
 * there for where each came from).
 */
import { readFileSync } from 'node:fs';

/** Tests run from dist/test/unit/crypto/, the fixtures stay in the source tree. */
const DIR = new URL('../../../../test/fixtures/crypto/', import.meta.url);

export function fixtureText(name: string): string {
  return readFileSync(new URL(name, DIR), 'utf8');
}

export function fixtureJson(name: string): unknown {
  return JSON.parse(fixtureText(name)) as unknown;
}

export type Record_ = Record<string, unknown>;

export function asRecord(v: unknown, what = 'value'): Record_ {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`fixture: ${what} is not an object`);
  return v as Record_;
}

export function asArray(v: unknown, what = 'value'): unknown[] {
  if (!Array.isArray(v)) throw new Error(`fixture: ${what} is not an array`);
  return v;
}

export function str(o: Record_, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new Error(`fixture: field ${key} is not a string`);
  return v;
}

export function hexField(o: Record_, key: string): Buffer {
  return Buffer.from(str(o, key), 'hex');
}

/**
 * Parses `key = value` text (CAVP style). A new record starts at every
 * occurrence of `startKey`; lines starting with '#' or '[' are skipped.
 */
export function parseKeyValue(text: string, startKey: string): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  let cur: Map<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('[')) continue;
    const eq = line.indexOf(' = ');
    if (eq < 0) continue;
    const k = line.slice(0, eq).trim();
    const v = line.slice(eq + 3).trim();
    if (k === startKey || !cur) {
      cur = new Map();
      out.push(cur);
    }
    cur.set(k, v);
  }
  return out;
}

export function kvHex(m: Map<string, string>, key: string): Buffer {
  const v = m.get(key);
  if (v === undefined) throw new Error(`fixture: missing ${key}`);
  return Buffer.from(v, 'hex');
}
