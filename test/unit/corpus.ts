/**
 * The OpenIKED parser fuzz corpus, read straight from its archive in
 * test/fixtures/openiked-corpus/ (see the README there for its source).
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

const ARCHIVE = new URL('../../../test/fixtures/openiked-corpus/openiked-fuzzing-corpus.tar.gz', import.meta.url);

/** Files in the corpus archive. */
export const CORPUS_SIZE = 15762;

/** The regular files of a ustar archive (fixed 512-byte header blocks), in archive order. */
export function* tarFiles(tar: Buffer): Generator<{ name: string; data: Buffer }> {
  for (let off = 0; off + 512 <= tar.length;) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) return;
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(h[156]!);
    if (type === '0' || type === '\0') yield { name, data: tar.subarray(off + 512, off + 512 + size) };
    off += 512 + Math.ceil(size / 512) * 512;
  }
}

/** Every corpus input, as a name (the file's SHA-1) and its bytes. */
export function corpus(): { name: string; data: Buffer }[] {
  return [...tarFiles(gunzipSync(readFileSync(ARCHIVE)))].map((f) => ({ name: f.name.replace(/^.*\//, ''), data: Buffer.from(f.data) }));
}
