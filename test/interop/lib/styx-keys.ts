/**
 * Parsers for the key material styxd prints at `ike=secret`, so interop tests
 * can compare it with what charon derived for the same SA. Pure functions
 * over log text.
 *
 * styxd prints one line per IKE SA and per CHILD_SA, tagged with the IKE SA:
 *   `... [ike] peer[1] 0011.._i 8899.._r: SKEYSEED <hex> SK_d <hex> ... SK_pr <hex>`
 *   `... [ike] peer[1] 0011.._i 8899.._r: CHILD_SA net keys encr_i <hex> integ_i <hex> encr_r <hex> integ_r <hex>`
 * Integrity keys are empty for AEAD ciphers, which leaves two spaces in a row.
 */

export interface StyxSaTag {
  conn: string;
  uniqueId: number;
  /** IKE SPIs, lowercase hex, as `styx list --json` shows them in spiI/spiR. */
  spiI: string;
  spiR: string;
}

/** One CHILD_SA's keys; `_i`/`_r` name the direction relative to the exchange that created the SA. */
export interface StyxChildKeys extends StyxSaTag {
  child: string;
  /** Initiator-to-responder encryption key (with the AEAD salt, if any). */
  encrI: string;
  integI: string;
  encrR: string;
  integR: string;
}

export interface StyxIkeKeys extends StyxSaTag {
  skeyseed: string;
  skD: string; skAi: string; skAr: string; skEi: string; skEr: string; skPi: string; skPr: string;
}

const TAG = String.raw`(\S+)\[(\d+)\] ([0-9a-f]{16})_i ([0-9a-f]{16})_r: `;
const HEX = '([0-9a-f]*)';
const CHILD_RE = new RegExp(`${TAG}CHILD_SA (\\S+) keys encr_i ${HEX} integ_i ${HEX} encr_r ${HEX} integ_r ${HEX}\\s*$`);
const IKE_RE = new RegExp(`${TAG}SKEYSEED ${HEX} SK_d ${HEX} SK_ai ${HEX} SK_ar ${HEX} SK_ei ${HEX} SK_er ${HEX} SK_pi ${HEX} SK_pr ${HEX}\\s*$`);

function tagOf(m: RegExpExecArray): StyxSaTag {
  return { conn: m[1]!, uniqueId: Number(m[2]), spiI: m[3]!, spiR: m[4]! };
}

/** Every CHILD_SA key line in log order. */
export function styxChildKeysFromLogText(text: string): StyxChildKeys[] {
  const out: StyxChildKeys[] = [];
  for (const line of text.split('\n')) {
    const m = CHILD_RE.exec(line);
    if (m) out.push({ ...tagOf(m), child: m[5]!, encrI: m[6]!, integI: m[7]!, encrR: m[8]!, integR: m[9]! });
  }
  return out;
}

/** Every IKE SA key line in log order (an INVALID_KE or COOKIE retry logs only the final derivation). */
export function styxIkeKeysFromLogText(text: string): StyxIkeKeys[] {
  const out: StyxIkeKeys[] = [];
  for (const line of text.split('\n')) {
    const m = IKE_RE.exec(line);
    if (m) {
      out.push({
        ...tagOf(m), skeyseed: m[5]!, skD: m[6]!, skAi: m[7]!, skAr: m[8]!, skEi: m[9]!, skEr: m[10]!, skPi: m[11]!, skPr: m[12]!,
      });
    }
  }
  return out;
}
