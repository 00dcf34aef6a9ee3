/**
 * IKEv2 key derivation (RFC 7296 2.13-2.18) and the shared-key AUTH value.
 */
import type { ChildKeys, IkeKeys, IkeSuite } from './api.js';
import { encrKeyBytes, getPrf, integKeyBytes } from './registry.js';
import { safeEqual } from '../util/bytes.js';

export interface DerivedIkeKeys { skeyseed: Buffer; keys: IkeKeys }

/** Cuts consecutive keys off prf+ output, in the order the RFC lists them. */
function split(material: Buffer, lengths: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const n of lengths) {
    out.push(Buffer.from(material.subarray(at, at + n)));
    at += n;
  }
  return out;
}

/** Total octets of the seven IKE SA keys for a suite (RFC 7296 2.14). */
export function ikeKeymatLength(suite: IkeSuite): number {
  const p = getPrf(suite.prf).keyLength;
  return p + 2 * integKeyBytes(suite.integ) + 2 * encrKeyBytes(suite.encr.id, suite.encr.keyLength) + 2 * p;
}

/**
 * RFC 7296 2.14: {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
 * = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr). SK_d and SK_p take the PRF's
 * preferred key length; SK_e includes any AEAD salt.
 */
function expandIkeKeys(suite: IkeSuite, skeyseed: Buffer, ni: Buffer, nr: Buffer, spiI: Buffer, spiR: Buffer): IkeKeys {
  const prf = getPrf(suite.prf);
  const p = prf.keyLength;
  const a = integKeyBytes(suite.integ);
  const e = encrKeyBytes(suite.encr.id, suite.encr.keyLength);
  const lengths = [p, a, a, e, e, p, p];
  const total = lengths.reduce((x, y) => x + y, 0);
  const [skD, skAi, skAr, skEi, skEr, skPi, skPr] = split(prf.plus(skeyseed, Buffer.concat([ni, nr, spiI, spiR]), total), lengths);
  return { skD: skD!, skAi: skAi!, skAr: skAr!, skEi: skEi!, skEr: skEr!, skPi: skPi!, skPr: skPr! };
}

/**
 * RFC 7296 2.14: SKEYSEED = prf(Ni | Nr, g^ir). With the HMAC PRFs styx
 * supports the whole nonces form the key; only fixed-key-size PRFs (AES-XCBC,
 * AES-CMAC) would truncate them, and those are not offered.
 */
export function deriveIkeKeys(suite: IkeSuite, ni: Buffer, nr: Buffer, gir: Buffer, spiI: Buffer, spiR: Buffer): DerivedIkeKeys {
  const skeyseed = getPrf(suite.prf).compute(Buffer.concat([ni, nr]), gir);
  return { skeyseed, keys: expandIkeKeys(suite, skeyseed, ni, nr, spiI, spiR) };
}

/**
 * RFC 7296 2.18: rekeying an IKE SA. SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
 * uses the old SA's PRF, because the exchange belongs to the old SA; the keys
 * are then expanded with the new suite's PRF, the new nonces and the new SPIs.
 */
export function deriveRekeyedIkeKeys(
  oldPrfId: number,
  oldSkD: Buffer,
  suite: IkeSuite,
  ni: Buffer,
  nr: Buffer,
  gir: Buffer,
  spiI: Buffer,
  spiR: Buffer,
): DerivedIkeKeys {
  const skeyseed = getPrf(oldPrfId).compute(oldSkD, Buffer.concat([gir, ni, nr]));
  return { skeyseed, keys: expandIkeKeys(suite, skeyseed, ni, nr, spiI, spiR) };
}

/**
 * RFC 7296 2.17: KEYMAT = prf+ (SK_d, [g^ir (new)] | Ni | Nr), taken as
 * initiator-to-responder encryption and integrity keys, then the same for
 * responder-to-initiator. Encryption keys include the AEAD salt (RFC 4106
 * 8.1, RFC 7634 2); AEAD suites get empty integrity keys.
 */
export function deriveChildKeys(
  prfId: number,
  skD: Buffer,
  ni: Buffer,
  nr: Buffer,
  encr: { id: number; keyLength: number },
  integId: number,
  gir?: Buffer,
): ChildKeys {
  const e = encrKeyBytes(encr.id, encr.keyLength);
  const a = integKeyBytes(integId);
  const lengths = [e, a, e, a];
  const seed = Buffer.concat(gir ? [gir, ni, nr] : [ni, nr]);
  const [encrI, integI, encrR, integR] = split(getPrf(prfId).plus(skD, seed, 2 * (e + a)), lengths);
  return { encrI: encrI!, integI: integI!, encrR: encrR!, integR: integR! };
}

/** RFC 7296 2.15: the 17 ASCII octets, no terminator. */
const KEY_PAD = Buffer.from('Key Pad for IKEv2', 'ascii');

/**
 * RFC 7296 2.15: <Signed Octets> = RealMessage | Nonce(peer) | prf(SK_px, IDx'),
 * where IDx' is the ID payload body without its 4-octet generic header.
 */
export function signedOctets(realMessage: Buffer, nonce: Buffer, prfId: number, skP: Buffer, idPayloadBody: Buffer): Buffer {
  return Buffer.concat([realMessage, nonce, getPrf(prfId).compute(skP, idPayloadBody)]);
}

/** RFC 7296 2.15: AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <Signed Octets>). */
export function pskAuth(prfId: number, psk: Buffer, signed: Buffer): Buffer {
  const prf = getPrf(prfId);
  return prf.compute(prf.compute(psk, KEY_PAD), signed);
}

/** Checks a received shared-key AUTH value in constant time. */
export function verifyPskAuth(prfId: number, psk: Buffer, signed: Buffer, received: Buffer): boolean {
  return safeEqual(pskAuth(prfId, psk, signed), received);
}
