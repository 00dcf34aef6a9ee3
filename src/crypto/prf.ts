/**
 * HMAC-based IKEv2 PRFs and prf+. The hash work is done by node:crypto.
 */
import { createHmac } from 'node:crypto';
import type { Prf } from './api.js';
import { UnsupportedError } from '../util/errors.js';

/** RFC 7296 2.13: the counter octet of prf+ limits the output to 255 blocks. */
const PRF_PLUS_MAX_BLOCKS = 255;

/**
 * RFC 7296 2.13: prf+ (K,S) = T1 | T2 | ..., T1 = prf(K, S | 0x01),
 * Tn = prf(K, Tn-1 | S | n). Exposed on its own so callers holding only a
 * compute function (and tests) can use it.
 */
export function prfPlus(
  compute: (key: Buffer, data: Buffer) => Buffer,
  outputLength: number,
  key: Buffer,
  seed: Buffer,
  length: number,
): Buffer {
  if (!Number.isInteger(length) || length < 0) throw new UnsupportedError(`prf+ output length ${length}`);
  const blocks = Math.ceil(length / outputLength);
  if (blocks > PRF_PLUS_MAX_BLOCKS) {
    throw new UnsupportedError(`prf+ output of ${length} bytes (more than ${PRF_PLUS_MAX_BLOCKS} blocks)`);
  }
  const out: Buffer[] = [];
  let prev: Buffer = Buffer.alloc(0);
  for (let n = 1; n <= blocks; n++) {
    prev = compute(key, Buffer.concat([prev, seed, Buffer.from([n])]));
    out.push(prev);
  }
  return Buffer.concat(out).subarray(0, length);
}

/**
 * RFC 2104 HMAC used as an IKEv2 PRF (RFC 7296 3.3.2; RFC 4868 2.1 for the
 * SHA-2 variants). RFC 4868 2.1.2 sets the preferred key size to the hash
 * output size, which is what SK_d and SK_p get (RFC 7296 2.14).
 */
export class HmacPrf implements Prf {
  readonly keyLength: number;
  constructor(
    readonly id: number,
    readonly name: string,
    /** node:crypto digest name, e.g. 'sha256'. */
    readonly hash: string,
    readonly outputLength: number,
  ) {
    this.keyLength = outputLength;
  }

  compute(key: Buffer, data: Buffer): Buffer {
    return createHmac(this.hash, key).update(data).digest();
  }

  plus(key: Buffer, seed: Buffer, length: number): Buffer {
    return prfPlus((k, d) => this.compute(k, d), this.outputLength, key, seed, length);
  }
}
