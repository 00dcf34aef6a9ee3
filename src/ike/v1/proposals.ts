/**
 * IKEv1 SA payloads built from configuration and chosen from a peer's offer:
 * phase 1 (RFC 2409 5, appendix A; one ISAKMP proposal whose transforms are
 * the alternatives) and Quick Mode ESP (RFC 2407 4.4.4, 4.5). The
 * configuration speaks IKEv2 transform IDs; IKEv1 numbers are mapped here,
 * and a chosen ESP transform is mapped back so the CHILD_SA machinery of
 * src/ike/v2/child-sa.ts and the data plane see the same IDs as for IKEv2.
 */
import type { ChildConfig, ConnectionConfig } from '../../config/model.js';
import { V1_DH_GROUPS, v1Cipher, v1SupportedHashes } from '../../crypto/ikev1/index.js';
import { StyxError } from '../../util/errors.js';
import { EncrId, IntegId, PrfId } from '../../wire/ikev2/constants.js';
import {
  Doi, EncapsulationMode, EspTransformId, IpsecAuthAlg, IsakmpTransformId, Situation, V1AuthMethod, V1EncryptionAlg, V1HashAlg,
  V1PayloadType, V1ProtocolId, ipsecAttributeList, ipsecAttributes, phase1AttributeList, phase1Attributes,
  type IpsecAttributes, type Phase1Attributes, type V1Proposal, type V1SaPayload, type V1Transform,
} from '../../wire/ikev1/index.js';
import type { EspSelection } from '../v2/proposals.js';

/** RFC 2409 appendix A: the hash that also makes the PRF; the configuration names it by its IKEv2 PRF. */
const HASH_FOR_PRF: Record<number, number> = {
  [PrfId.PRF_HMAC_SHA1]: V1HashAlg.SHA, [PrfId.PRF_HMAC_SHA2_256]: V1HashAlg.SHA2_256,
  [PrfId.PRF_HMAC_SHA2_384]: V1HashAlg.SHA2_384, [PrfId.PRF_HMAC_SHA2_512]: V1HashAlg.SHA2_512,
};
/** And the other way, for listings that print PRF names. */
export const PRF_FOR_HASH: Record<number, number> = Object.fromEntries(Object.entries(HASH_FOR_PRF).map(([p, h]) => [h, Number(p)]));

/** Phase 1 encryption (RFC 2409 appendix A, RFC 3602) from an IKEv2 ENCR ID; undefined for ciphers IKEv1 phase 1 lacks. */
function v1Encryption(e: { id: number; keyLength: number }): { encryption: number; keyLength?: number } | undefined {
  if (e.id === EncrId.ENCR_AES_CBC) return { encryption: V1EncryptionAlg.AES_CBC, keyLength: e.keyLength };
  if (e.id === EncrId.ENCR_3DES) return { encryption: V1EncryptionAlg.TRIPLE_DES_CBC };
  return undefined;
}

/** The IKEv2 ENCR ID of a phase 1 cipher, for listings. */
export function v2EncrOfPhase1(a: Phase1Attributes): { id: number; keyLength: number } {
  return a.encryption === V1EncryptionAlg.AES_CBC ? { id: EncrId.ENCR_AES_CBC, keyLength: a.keyLength ?? 0 } : { id: EncrId.ENCR_3DES, keyLength: 0 };
}

/**
 * RFC 2409 5: every configured combination of cipher, hash and group
 * becomes one transform of a single KEY_IKE proposal, PSK authenticated,
 * with the connection's lifetime (appendix A life type/duration).
 */
export function phase1Transforms(conn: ConnectionConfig, lifeSeconds: number): Phase1Attributes[] {
  const out: Phase1Attributes[] = [];
  const seen = new Set<string>();
  for (const p of conn.ikeProposals) {
    for (const e of p.encr) {
      const enc = v1Encryption(e);
      if (!enc) continue;
      for (const prf of p.prf) {
        const hash = HASH_FOR_PRF[prf];
        if (hash === undefined || !v1SupportedHashes.includes(hash)) continue;
        for (const group of p.dh) {
          if (!V1_DH_GROUPS.includes(group)) continue;
          const a: Phase1Attributes = { ...enc, hash, authMethod: V1AuthMethod.PRE_SHARED_KEY, group, life: { seconds: lifeSeconds } };
          const k = JSON.stringify(a);
          if (!seen.has(k)) { seen.add(k); out.push(a); }
        }
      }
    }
  }
  return out;
}

export function phase1SaPayload(transforms: Phase1Attributes[]): V1SaPayload {
  if (transforms.length === 0) throw new StyxError('ERR_NO_PROPOSAL', 'no proposal of this connection can be expressed in IKEv1 phase 1 (AES-CBC or 3DES, SHA1/SHA2, MODP/ECP groups)');
  return {
    type: V1PayloadType.SA, doi: Doi.IPSEC, situation: Situation.SIT_IDENTITY_ONLY,
    proposals: [{
      num: 1, protocol: V1ProtocolId.ISAKMP, spi: Buffer.alloc(0),
      transforms: transforms.map((a, i) => ({ num: i + 1, id: IsakmpTransformId.KEY_IKE, attributes: phase1AttributeList(a) })),
    }],
  };
}

/** Whether our configuration accepts a phase 1 transform (its lifetime aside: that is negotiated, not matched). */
export function phase1Acceptable(ours: Phase1Attributes[], a: Phase1Attributes): boolean {
  return ours.some((o) => o.encryption === a.encryption && o.keyLength === a.keyLength && o.hash === a.hash && o.group === a.group && o.authMethod === a.authMethod);
}

export interface Phase1Choice { proposal: V1Proposal; transform: V1Transform; attrs: Phase1Attributes }

/**
 * RFC 2408 4.2: the responder picks the first transform of the offer it
 * accepts, in the initiator's order, and returns it unchanged. Transforms
 * with attributes styx does not understand are passed over, not fatal.
 */
export function selectPhase1(ours: Phase1Attributes[], sa: V1SaPayload): Phase1Choice | null {
  for (const p of sa.proposals) {
    if (p.protocol !== V1ProtocolId.ISAKMP) continue;
    for (const t of p.transforms) {
      if (t.id !== IsakmpTransformId.KEY_IKE) continue;
      let attrs: Phase1Attributes;
      try { attrs = phase1Attributes(t); v1Cipher(attrs.encryption, attrs.keyLength); } catch (e) { if (e instanceof StyxError) continue; throw e; }
      if (phase1Acceptable(ours, attrs)) return { proposal: p, transform: t, attrs };
    }
  }
  return null;
}

/** RFC 2409 5: the responder's SA holds one proposal with the one transform it chose; it must be one we offered. */
export function acceptPhase1Reply(offered: Phase1Attributes[], sa: V1SaPayload): Phase1Attributes | null {
  const p = sa.proposals[0];
  if (sa.proposals.length !== 1 || !p || p.transforms.length !== 1 || p.protocol !== V1ProtocolId.ISAKMP) return null;
  let attrs: Phase1Attributes;
  try { attrs = phase1Attributes(p.transforms[0]!); } catch (e) { if (e instanceof StyxError) return null; throw e; }
  return phase1Acceptable(offered, attrs) ? attrs : null;
}

/** The offer as text for logs: AES_CBC_128/SHA2_256/14, ... */
export function describePhase1(a: Phase1Attributes): string {
  const enc = a.encryption === V1EncryptionAlg.AES_CBC ? `AES_CBC_${a.keyLength ?? '?'}` : a.encryption === V1EncryptionAlg.TRIPLE_DES_CBC ? '3DES_CBC' : `encr${a.encryption}`;
  const hash = Object.entries(V1HashAlg).find(([, v]) => v === a.hash)?.[0] ?? `hash${a.hash}`;
  return `${enc}/${hash}/${a.group}`;
}

// ---------------------------------------------------------------------------
// Quick Mode ESP

/** RFC 2407 4.5 authentication algorithm for an IKEv2 integrity ID (RFC 4868 2.4 for SHA-2). */
const AUTH_FOR_INTEG: Record<number, number> = {
  [IntegId.AUTH_HMAC_SHA1_96]: IpsecAuthAlg.HMAC_SHA, [IntegId.AUTH_HMAC_SHA2_256_128]: IpsecAuthAlg.HMAC_SHA2_256,
  [IntegId.AUTH_HMAC_SHA2_384_192]: IpsecAuthAlg.HMAC_SHA2_384, [IntegId.AUTH_HMAC_SHA2_512_256]: IpsecAuthAlg.HMAC_SHA2_512,
};
const INTEG_FOR_AUTH: Record<number, number> = Object.fromEntries(Object.entries(AUTH_FOR_INTEG).map(([i, a]) => [a, Number(i)]));

/**
 * RFC 2407 4.4.4: the ESP transform IDs styx uses carry the same numbers as
 * the IKEv2 ENCR IDs (ESP_3DES 3, ESP_AES 12, ESP_AES_GCM_* 18-20).
 */
const ESP_IDS: readonly number[] = [EspTransformId.ESP_3DES, EspTransformId.ESP_AES, EspTransformId.ESP_AES_GCM_8, EspTransformId.ESP_AES_GCM_12, EspTransformId.ESP_AES_GCM_16];

/** RFC 2407 4.5 and RFC 3947 5.1: the encapsulation mode for our mode, UDP-encapsulated behind a NAT. */
export function encapsulationMode(mode: 'tunnel' | 'transport', natT: boolean): number {
  if (mode === 'tunnel') return natT ? EncapsulationMode.UDP_ENCAPSULATED_TUNNEL : EncapsulationMode.TUNNEL;
  return natT ? EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT : EncapsulationMode.TRANSPORT;
}

export function modeOfEncapsulation(v: number): { mode: 'tunnel' | 'transport'; udp: boolean } | null {
  switch (v) {
    case EncapsulationMode.TUNNEL: return { mode: 'tunnel', udp: false };
    case EncapsulationMode.TRANSPORT: return { mode: 'transport', udp: false };
    case EncapsulationMode.UDP_ENCAPSULATED_TUNNEL:
    case EncapsulationMode.UDP_ENCAPSULATED_TUNNEL_DRAFT: return { mode: 'tunnel', udp: true };
    case EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT:
    case EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT_DRAFT: return { mode: 'transport', udp: true };
    default: return null;
  }
}

/** RFC 2409 5.5: one PFS group for the whole offer, since Quick Mode carries a single KE. */
export function pfsGroup(child: ChildConfig): number {
  return child.espProposals.find((p) => p.dh.length > 0)?.dh[0] ?? 0;
}

/** One ESP transform in both numberings. */
export interface EspChoice { transformId: number; attrs: IpsecAttributes }

/**
 * RFC 2407 4.5 counts IPsec SA volume in "kilobytes" without saying how
 * big one is. styx counts 1000 bytes, as strongSwan does; a peer that
 * counts 1024 only ends its SA a little after ours.
 */
export const V1_KILOBYTE = 1000;

/** A child's hard byte limit as the RFC 2407 4.5 kilobytes life, when it has one. */
export function lifeKilobytes(child: ChildConfig): { kilobytes?: number } {
  return child.lifeBytes > 0 ? { kilobytes: Math.max(1, Math.ceil(child.lifeBytes / V1_KILOBYTE)) } : {};
}

/**
 * Every configured cipher/integrity combination as an ESP transform with
 * our mode, lifetime and PFS group; all in one proposal (RFC 2408 4.2: the
 * transforms of a proposal are alternatives).
 */
export function espTransforms(child: ChildConfig, natT: boolean, lifeSeconds: number): EspChoice[] {
  const group = pfsGroup(child);
  const out: EspChoice[] = [];
  for (const p of child.espProposals) {
    for (const e of p.encr) {
      if (!ESP_IDS.includes(e.id)) continue;
      const integs = p.integ.length ? p.integ.map((i) => AUTH_FOR_INTEG[i]).filter((a): a is number => a !== undefined) : [undefined];
      for (const auth of integs) {
        for (const esn of p.esn.length ? p.esn : [0]) {
          const attrs: IpsecAttributes = { encapsulation: encapsulationMode(child.mode, natT), esn: esn === 1, life: { seconds: lifeSeconds, ...lifeKilobytes(child) } };
          if (auth !== undefined) attrs.authAlgorithm = auth;
          if (e.id !== EspTransformId.ESP_3DES) attrs.keyLength = e.keyLength;
          if (group) attrs.group = group;
          out.push({ transformId: e.id, attrs });
        }
      }
    }
  }
  return out;
}

export function espSaPayload(choices: EspChoice[], spi: Buffer): V1SaPayload {
  if (choices.length === 0) throw new StyxError('ERR_NO_PROPOSAL', 'no ESP proposal of this child can be expressed in IKEv1 (ESP_AES CBC/GCM, 3DES with HMAC-SHA1/SHA2)');
  return {
    type: V1PayloadType.SA, doi: Doi.IPSEC, situation: Situation.SIT_IDENTITY_ONLY,
    proposals: [{ num: 1, protocol: V1ProtocolId.IPSEC_ESP, spi, transforms: choices.map((c, i) => ({ num: i + 1, id: c.transformId, attributes: ipsecAttributeList(c.attrs) })) }],
  };
}

/** The chosen transform as the v2-numbered selection the CHILD_SA code installs with. */
export function espSelection(c: EspChoice, num: number, spi: Buffer): EspSelection {
  const integ = c.attrs.authAlgorithm === undefined ? 0 : INTEG_FOR_AUTH[c.attrs.authAlgorithm] ?? -1;
  if (integ < 0) throw new StyxError('ERR_UNSUPPORTED', `ESP authentication algorithm ${c.attrs.authAlgorithm}`);
  return { num, spi, encr: { id: c.transformId, keyLength: c.attrs.keyLength ?? 0 }, integ, dh: c.attrs.group ?? 0, esn: c.attrs.esn ? 1 : 0 };
}

/** Whether a received ESP transform is one our child config would have offered (mode and lifetime aside). */
function espAcceptable(child: ChildConfig, c: EspChoice): boolean {
  return child.espProposals.some((p) => p.encr.some((e) => e.id === c.transformId && (c.transformId === EspTransformId.ESP_3DES || e.keyLength === c.attrs.keyLength))
    && (p.integ.length === 0 ? c.attrs.authAlgorithm === undefined : p.integ.some((i) => AUTH_FOR_INTEG[i] === c.attrs.authAlgorithm))
    && (p.esn.length ? p.esn : [0]).includes(c.attrs.esn ? 1 : 0));
}

export interface EspOfferChoice { proposal: V1Proposal; transform: V1Transform; choice: EspChoice }

/**
 * The responder's pick among a Quick Mode offer (RFC 2408 4.2): the first
 * ESP-only proposal and transform we accept, with a mode matching ours and
 * a PFS group consistent with the child's (a group we require must be
 * there; one we do not require is taken if we support it).
 */
export function selectEsp(child: ChildConfig, sa: V1SaPayload): EspOfferChoice | null {
  const ourGroup = pfsGroup(child);
  const ourGroups = child.espProposals.flatMap((p) => p.dh);
  const nums = new Map<number, number>();
  for (const p of sa.proposals) nums.set(p.num, (nums.get(p.num) ?? 0) + 1);
  for (const p of sa.proposals) {
    // Bundles (AH+ESP, IPComp) share a number; styx negotiates plain ESP only.
    if (p.protocol !== V1ProtocolId.IPSEC_ESP || p.spi.length !== 4 || nums.get(p.num) !== 1) continue;
    for (const t of p.transforms) {
      let attrs: IpsecAttributes;
      try { attrs = ipsecAttributes(t); } catch (e) { if (e instanceof StyxError) continue; throw e; }
      const c: EspChoice = { transformId: t.id, attrs };
      if (!ESP_IDS.includes(t.id) || !espAcceptable(child, c)) continue;
      const m = modeOfEncapsulation(attrs.encapsulation ?? EncapsulationMode.TUNNEL);
      if (!m || m.mode !== child.mode) continue;
      if (ourGroup && attrs.group === undefined) continue;
      if (attrs.group !== undefined && !(ourGroups.includes(attrs.group) || (ourGroups.length === 0 && V1_DH_GROUPS.includes(attrs.group)))) continue;
      return { proposal: p, transform: t, choice: c };
    }
  }
  return null;
}

/** The responder's single transform must be one of ours (RFC 2409 5.5); returns it typed. */
export function acceptEspReply(offered: EspChoice[], sa: V1SaPayload): { choice: EspChoice; spi: Buffer } | null {
  const p = sa.proposals[0];
  if (sa.proposals.length !== 1 || !p || p.protocol !== V1ProtocolId.IPSEC_ESP || p.spi.length !== 4 || p.transforms.length !== 1) return null;
  let attrs: IpsecAttributes;
  try { attrs = ipsecAttributes(p.transforms[0]!); } catch (e) { if (e instanceof StyxError) return null; throw e; }
  const t = p.transforms[0]!;
  const mine = offered.find((o) => o.transformId === t.id && o.attrs.keyLength === attrs.keyLength && o.attrs.authAlgorithm === attrs.authAlgorithm
    && o.attrs.group === attrs.group && o.attrs.esn === attrs.esn && o.attrs.encapsulation === attrs.encapsulation);
  return mine ? { choice: { transformId: t.id, attrs }, spi: p.spi } : null;
}
