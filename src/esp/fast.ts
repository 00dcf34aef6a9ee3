/**
 * The fast path of the ESP engine's crypto: EspTransforms for the AEAD
 * suites (AES-GCM, RFC 4106; ChaCha20-Poly1305, RFC 7634) whose seal and
 * open are one call into the styx_esp addon, where an OpenSSL context keyed
 * once per SA is re-IV'd per packet. Node's crypto module would build (and
 * key) a new cipher object per packet, which the profiles put at about a
 * third of the data plane's CPU.
 *
 * Same contract, same octets as the JS AeadTransform in sa.ts: the engine,
 * packet.ts framing, replay window and counters are untouched, and the
 * known-answer tests run on both (test/unit/esp/fast.test.ts). CBC+HMAC and
 * machines without the addon keep the JS transforms.
 */
import type { SaParams } from '../dataplane/api.js';
import { encrCipherKeyBits, encrInfo, encrKeyBytes } from '../crypto/registry.js';
import { IntegrityError, MalformedError, UnsupportedError, err, ok, type Result } from '../util/errors.js';
import { IntegId } from '../wire/ikev2/constants.js';
import { AEAD_AES_GCM, AEAD_CHACHA20_POLY1305, espAddon, type EspAddon, type NativeAeadHandle } from './native.js';
import type { EspSa, EspTransform } from './sa.js';

const ESP_HEADER = 8;
const AEAD_IV = 8;

export class NativeAeadTransform implements EspTransform {
  readonly ivBytes = AEAD_IV;
  readonly align = 4;
  readonly blockBytes = 1;
  private handle: NativeAeadHandle | null;

  constructor(readonly name: string, private readonly addon: EspAddon, kind: number, key: Buffer, salt: Buffer,
    readonly icvBytes: number, esn: boolean) {
    this.handle = addon.aeadNew(kind, key, salt, icvBytes, esn);
  }

  /** As AeadTransform: the 64-bit sequence number is the IV (RFC 4106 3.1), unique because it never cycles. */
  writeIv(out: Buffer, at: number, seqHigh: number, seqLow: number): void {
    out.writeUInt32BE(seqHigh, at);
    out.writeUInt32BE(seqLow, at + 4);
  }

  seal(out: Buffer, ptAt: number, ptLen: number, seqHigh: number): void {
    this.addon.aeadSeal(this.live(), out, ptAt, ptLen, seqHigh);
  }

  open(packet: Buffer, seqHigh: number): Result<Buffer, IntegrityError> {
    // Out of place: a packet that fails the tag is left as it came.
    const pt = Buffer.allocUnsafe(packet.length - ESP_HEADER - AEAD_IV - this.icvBytes);
    if (!this.addon.aeadOpen(this.live(), packet, pt, seqHigh)) return err(new IntegrityError('ESP ICV (AEAD tag)'));
    return ok(pt);
  }

  /** Cleanses the keys in the addon (the SA is gone); the transform is unusable afterwards. */
  release(): void {
    if (this.handle) this.addon.aeadFree(this.handle);
    this.handle = null;
  }

  private live(): NativeAeadHandle {
    if (!this.handle) throw new MalformedError('ESP SA', 'keys already released');
    return this.handle;
  }
}

/**
 * The addon's transform for an SA's suite, or null where the JS one stays
 * (CBC, no addon). Checks keys as createEspTransform does.
 */
export function createFastEspTransform(
  encr: { id: number; key: Buffer; keyLength: number },
  integ: { id: number; key: Buffer } | null,
  esn: boolean,
  addon: EspAddon | null = espAddon(),
): NativeAeadTransform | null {
  if (!addon) return null;
  const info = encrInfo(encr.id);
  if (info.mode === 'cbc') return null;
  if ((integ?.id ?? IntegId.NONE) !== IntegId.NONE) throw new UnsupportedError(`integrity algorithm ${integ!.id} with an AEAD cipher`);
  const keyBits = encrCipherKeyBits(encr.id, encr.keyLength);
  const want = encrKeyBytes(encr.id, encr.keyLength);
  if (encr.key.length !== want) throw new MalformedError('ESP encryption key', `${encr.key.length} octets, ${want} needed`);
  const cut = encr.key.length - info.saltBytes;
  const key = encr.key.subarray(0, cut), salt = encr.key.subarray(cut);
  if (info.mode === 'chacha20-poly1305') {
    return new NativeAeadTransform('CHACHA20_POLY1305', addon, AEAD_CHACHA20_POLY1305, key, salt, info.tagBytes, esn);
  }
  return new NativeAeadTransform(`AES_GCM_${info.tagBytes}_${keyBits}`, addon, AEAD_AES_GCM, key, salt, info.tagBytes, esn);
}

/**
 * Gives an installed SA the addon's transform for its suite; false where it
 * keeps the JS one. The engine builds every SA's transform itself (sa.ts has
 * no hook to pass one in), so the field is replaced after EspEngine.addSa,
 * before any packet uses the SA.
 */
export function useFastCrypto(sa: EspSa, p: SaParams, addon: EspAddon | null = espAddon()): boolean {
  const t = createFastEspTransform(p.encr, p.integ, p.esn, addon);
  if (!t) return false;
  Object.defineProperty(sa, 'transform', { value: t, enumerable: true, configurable: true, writable: false });
  return true;
}

/** Cleanses the addon's copy of an SA's keys once the engine has dropped it. */
export function releaseFastCrypto(sa: EspSa): void {
  if (sa.transform instanceof NativeAeadTransform) sa.transform.release();
}
