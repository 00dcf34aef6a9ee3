/**
 * Key exchange implementations behind the KeyExchange contract. OpenSSL (via
 * node:crypto) does all group arithmetic; this file only frames values the
 * way IKEv2 puts them on the wire and validates what the peer sends.
 */
import {
  createDiffieHellman,
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  getDiffieHellman,
  type DiffieHellmanGroup,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import type { KeyExchange } from './api.js';
import { MalformedError } from '../util/errors.js';

/** Left-pads with zeros: RFC 7296 3.4 and 2.14 both fix MODP values at the prime's length. */
function leftPad(b: Buffer, len: number): Buffer {
  if (b.length === len) return b;
  if (b.length > len) throw new MalformedError('DH value', `${b.length} bytes exceeds ${len}`);
  return Buffer.concat([Buffer.alloc(len - b.length), b]);
}

function why(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const primeCache = new Map<string, Buffer>();
/** The RFC 2409 / RFC 3526 primes as OpenSSL ships them, so no prime is transcribed by hand. */
export function modpPrime(nodeGroup: string): Buffer {
  let p = primeCache.get(nodeGroup);
  if (!p) {
    p = getDiffieHellman(nodeGroup).getPrime();
    primeCache.set(nodeGroup, p);
  }
  return p;
}

/**
 * RFC 3526 / RFC 2409 MODP groups, generator 2 (RFC 7296 2.14, 3.4).
 */
export class ModpExchange implements KeyExchange {
  readonly publicValue: Buffer;
  private readonly dh: DiffieHellmanGroup;
  private readonly prime: Buffer;
  private readonly primeMinus1: Buffer;

  constructor(readonly group: number, nodeGroup: string, privateKey?: Buffer) {
    this.prime = modpPrime(nodeGroup);
    if (privateKey) {
      // Replaying a recorded exchange needs a settable key, which OpenSSL's named-group object does not allow.
      const dh = createDiffieHellman(this.prime, Buffer.from([2]));
      try {
        dh.setPrivateKey(privateKey);
        dh.generateKeys();
      } catch (e) {
        throw new MalformedError('DH private key', why(e));
      }
      this.dh = dh;
    } else {
      // The named group lets OpenSSL choose a short exponent sized to the group's strength.
      const dh = getDiffieHellman(nodeGroup);
      dh.generateKeys();
      this.dh = dh;
    }
    this.publicValue = leftPad(this.dh.getPublicKey(), this.prime.length);
    // p is odd, so p-1 only changes the last octet.
    this.primeMinus1 = Buffer.from(this.prime);
    this.primeMinus1[this.primeMinus1.length - 1]! -= 1;
  }

  computeSecret(peerPublic: Buffer): Buffer {
    const len = this.prime.length;
    if (peerPublic.length !== len) {
      throw new MalformedError('KE data', `group ${this.group} needs ${len} bytes, got ${peerPublic.length}`);
    }
    // RFC 6989 (and NIST SP 800-56A): 0, 1 and p-1 (and anything >= p) force a guessable secret.
    const one = Buffer.alloc(len);
    one[len - 1] = 1;
    if (Buffer.compare(peerPublic, one) <= 0 || Buffer.compare(peerPublic, this.primeMinus1) >= 0) {
      throw new MalformedError('KE data', `group ${this.group} public value outside 1 < y < p-1`);
    }
    let s: Buffer;
    try {
      s = this.dh.computeSecret(peerPublic);
    } catch (e) {
      throw new MalformedError('KE data', why(e));
    }
    return leftPad(s, len);
  }
}

/**
 * RFC 5903 ECP groups: KE data is x || y, each the field size (section 7);
 * the shared secret is the x coordinate alone (also section 7).
 */
export class EcpExchange implements KeyExchange {
  readonly publicValue: Buffer;
  private readonly ecdh: ECDH;

  constructor(readonly group: number, curve: string, private readonly coordLength: number, privateKey?: Buffer) {
    this.ecdh = createECDH(curve);
    if (privateKey) {
      try {
        this.ecdh.setPrivateKey(privateKey);
      } catch (e) {
        throw new MalformedError('DH private key', why(e));
      }
    } else {
      this.ecdh.generateKeys();
    }
    // Drop the SEC1 0x04 'uncompressed' marker: RFC 5903 7 sends the bare coordinates.
    this.publicValue = Buffer.from(this.ecdh.getPublicKey(null, 'uncompressed').subarray(1));
  }

  computeSecret(peerPublic: Buffer): Buffer {
    if (peerPublic.length !== 2 * this.coordLength) {
      throw new MalformedError('KE data', `group ${this.group} needs ${2 * this.coordLength} bytes, got ${peerPublic.length}`);
    }
    // RFC 6989: the point must be on the curve; OpenSSL checks that and throws.
    try {
      return leftPad(this.ecdh.computeSecret(Buffer.concat([Buffer.from([0x04]), peerPublic])), this.coordLength);
    } catch (e) {
      throw new MalformedError('KE data', `group ${this.group} point rejected: ${why(e)}`);
    }
  }
}

/** RFC 8410 7: PKCS#8 wrapper of a raw X25519 private key, so OpenSSL can import it. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
/** RFC 8410 4: SubjectPublicKeyInfo wrapper of a raw X25519 public key. */
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const X25519_LENGTH = 32;

/** RFC 8031: Curve25519 for IKEv2; KE data and secret are both 32 octets. */
export class X25519Exchange implements KeyExchange {
  readonly publicValue: Buffer;
  private readonly privateKey: KeyObject;

  constructor(readonly group: number, privateKey?: Buffer) {
    if (privateKey) {
      if (privateKey.length !== X25519_LENGTH) {
        throw new MalformedError('DH private key', `X25519 needs ${X25519_LENGTH} bytes, got ${privateKey.length}`);
      }
      this.privateKey = createPrivateKey({
        key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]),
        format: 'der',
        type: 'pkcs8',
      });
    } else {
      this.privateKey = generateKeyPairSync('x25519').privateKey;
    }
    const spki = createPublicKey(this.privateKey).export({ format: 'der', type: 'spki' });
    this.publicValue = Buffer.from(spki.subarray(X25519_SPKI_PREFIX.length));
  }

  computeSecret(peerPublic: Buffer): Buffer {
    if (peerPublic.length !== X25519_LENGTH) {
      throw new MalformedError('KE data', `group ${this.group} needs ${X25519_LENGTH} bytes, got ${peerPublic.length}`);
    }
    let s: Buffer;
    try {
      const publicKey = createPublicKey({
        key: Buffer.concat([X25519_SPKI_PREFIX, peerPublic]),
        format: 'der',
        type: 'spki',
      });
      s = diffieHellman({ privateKey: this.privateKey, publicKey });
    } catch (e) {
      // OpenSSL refuses low-order points by failing the derivation.
      throw new MalformedError('KE data', `group ${this.group} value rejected: ${why(e)}`);
    }
    // RFC 8031 2: a low-order peer value gives the all-zero secret, which MUST be refused.
    if (s.every((b) => b === 0)) throw new MalformedError('KE data', `group ${this.group} gives an all-zero secret`);
    return s;
  }
}
