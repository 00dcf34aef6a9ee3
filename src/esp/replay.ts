/**
 * Receiver anti-replay window (RFC 4303 3.4.3) with extended sequence
 * numbers (RFC 4303 Appendix A2, RFC 4304), kept as an RFC 6479 ring of
 * bitmap blocks so that sliding the window clears whole blocks instead of
 * shifting bits.
 *
 * Blocks are 32 bits (Uint32Array) rather than RFC 6479's 64: JavaScript's
 * bitwise operators work on 32-bit integers, so this keeps every operation
 * on plain numbers with no bigint on the per-packet path.
 *
 * Sequence numbers are held as two u32 halves (high, low). Callers check a
 * packet's 32 transmitted bits first, verify the ICV with the inferred high
 * half, and only then call update(): RFC 4303 3.4.3 says the window moves
 * only for packets whose integrity has been verified.
 */

const BLOCK_SHIFT = 5; // 32 bits per block
const BIT_MASK = 31;
const TWO_32 = 0x1_0000_0000;
const BLOCKS_PER_HIGH = 1 << 27; // 2^32 / 32: blocks per step of the high half
/** RFC 6479 blocks are indexed by seq >> 5 modulo the ring size; with at most 2^27 blocks only the low half matters. */
const MAX_WINDOW = 1 << 20;

export type ReplayReject = 'stale' | 'replayed';

export type ReplayCheck =
  | { ok: true; seq64: bigint; seqHigh: number; seqLow: number }
  | { ok: false; reason: ReplayReject };

const STALE: ReplayCheck = { ok: false, reason: 'stale' };
const REPLAYED: ReplayCheck = { ok: false, reason: 'replayed' };

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export class ReplayWindow {
  /** Window size in packets; 0 means anti-replay is off (RFC 4303 3.4.3 lets the receiver disable it). */
  readonly size: number;
  readonly esn: boolean;
  private readonly bitmap: Uint32Array;
  private readonly blockMask: number;
  /**
   * The span used to infer the high half (RFC 4303 A2.2). With anti-replay
   * off there is no window, so take the candidate nearest the top: half the
   * 32-bit space either way.
   */
  private readonly span: number;
  /** Highest authenticated sequence number; (0, 0) until the first packet. */
  private topHigh = 0;
  private topLow = 0;

  /**
   * `start` is the highest sequence number taken as already received (for
   * known-answer tests of packets far into an ESN space, or an SA moved from
   * elsewhere); packets at or below it, within the window, are not marked seen.
   */
  constructor(size: number, esn: boolean, start = 0n) {
    if (!Number.isInteger(size) || size < 0 || size > MAX_WINDOW) throw new RangeError(`replay window ${size} not in 0..${MAX_WINDOW}`);
    if (start < 0n || start >= 1n << 64n || (!esn && start >= 1n << 32n)) throw new RangeError(`replay start ${start} out of range`);
    this.size = size;
    this.esn = esn;
    // RFC 6479 2: one block more than the window needs, so the block being filled never overlaps the oldest.
    const blocks = nextPow2(Math.ceil(size / 32) + 1);
    this.bitmap = new Uint32Array(blocks);
    this.blockMask = blocks - 1;
    this.span = size === 0 ? 0x8000_0000 : size;
    this.topHigh = Number(start >> 32n);
    this.topLow = Number(start & 0xffff_ffffn);
  }

  /** The highest authenticated sequence number so far. */
  get top(): bigint {
    return (BigInt(this.topHigh) << 32n) | BigInt(this.topLow);
  }

  /**
   * Infers the full sequence number of a packet carrying `seqLow` and says
   * whether it may be a new packet. Does not change the window.
   */
  check(seqLow: number): ReplayCheck {
    const low = seqLow >>> 0;
    let high = this.topHigh;
    if (this.esn) {
      // RFC 4303 A2.2: pick the high half that puts seq inside or above the window.
      const w = this.span;
      const tl = this.topLow;
      if (tl >= w - 1) {
        // Case A: the window lies within one 2^32 subspace.
        if (low < tl - w + 1) high += 1;
      } else if (low >= tl - w + 1 + TWO_32) {
        // Case B: the window spans two subspaces and seq is in the lower one.
        high -= 1;
      }
      // Neither end of the 64-bit space may be crossed: the sender never cycles (RFC 4303 3.3.3).
      if (high < 0 || high > 0xffff_ffff) return STALE;
      if (high === 0 && low === 0) return STALE;
    } else if (low === 0) {
      // RFC 4303 3.3.3: the first packet sent is 1 and the counter never cycles, so 0 is never valid.
      return STALE;
    }
    if (high > this.topHigh || (high === this.topHigh && low > this.topLow)) return this.accept(high, low);
    if (this.size === 0) return this.accept(high, low);
    // Exact for any distance that matters: the high halves differ by at most one here.
    const behind = (this.topHigh - high) * TWO_32 + (this.topLow - low);
    if (behind >= this.size) return STALE;
    const bit = 1 << (low & BIT_MASK);
    if ((this.bitmap[(low >>> BLOCK_SHIFT) & this.blockMask]! & bit) !== 0) return REPLAYED;
    return this.accept(high, low);
  }

  private accept(high: number, low: number): ReplayCheck {
    return { ok: true, seq64: (BigInt(high) << 32n) | BigInt(low), seqHigh: high, seqLow: low };
  }

  /** Marks `seq64` as received (after its ICV verified), sliding the window if it is the new top. */
  update(seq64: bigint): void {
    if (seq64 <= 0n || seq64 >= 1n << 64n) throw new RangeError(`sequence number ${seq64} out of range`);
    this.updateParts(Number(seq64 >> 32n), Number(seq64 & 0xffff_ffffn));
  }

  /** update() with the halves as check() returned them, for the per-packet path. */
  updateParts(high: number, low: number): void {
    if (high > this.topHigh || (high === this.topHigh && low > this.topLow)) {
      // RFC 6479 2: clear every block the top moves into; a jump of a whole ring clears all.
      const blocks = this.blockMask + 1;
      const advance = (high - this.topHigh) * BLOCKS_PER_HIGH + ((low >>> BLOCK_SHIFT) - (this.topLow >>> BLOCK_SHIFT));
      if (advance >= blocks) {
        this.bitmap.fill(0);
      } else {
        const from = this.topLow >>> BLOCK_SHIFT;
        for (let i = 1; i <= advance; i++) this.bitmap[(from + i) & this.blockMask] = 0;
      }
      this.topHigh = high;
      this.topLow = low;
    } else if ((this.topHigh - high) * TWO_32 + (this.topLow - low) >= this.size) {
      // Outside the window: its bit would alias a live position in the ring.
      return;
    }
    if (this.size !== 0) this.bitmap[(low >>> BLOCK_SHIFT) & this.blockMask] |= 1 << (low & BIT_MASK);
  }
}
