/**
 * SA payload proposals (RFC 7296 3.3) built from configuration, and proposal
 * selection as a responder (2.7) and checking of the single proposal a
 * responder returns (3.3.6: it must be one the initiator offered).
 */
import type { EspProposalConfig, IkeProposalConfig } from '../../config/model.js';
import { EncrId, ProtocolId, TransformType } from '../../wire/ikev2/constants.js';
import type { Proposal, Transform } from '../../wire/ikev2/types.js';

export interface Encr { id: number; keyLength: number }
export interface IkeSelection { num: number; encr: Encr; integ: number; prf: number; dh: number }
export interface EspSelection { num: number; spi: Buffer; encr: Encr; integ: number; dh: number; esn: number }

const AEAD = new Set<number>([EncrId.ENCR_AES_GCM_8, EncrId.ENCR_AES_GCM_12, EncrId.ENCR_AES_GCM_16, EncrId.ENCR_CHACHA20_POLY1305]);
export const isAeadId = (id: number): boolean => AEAD.has(id);

const encrTransform = (e: Encr): Transform =>
  e.keyLength > 0 && e.id !== EncrId.ENCR_CHACHA20_POLY1305 ? { type: TransformType.ENCR, id: e.id, keyLength: e.keyLength } : { type: TransformType.ENCR, id: e.id };

export function ikeProposals(cfg: IkeProposalConfig[], spi: Buffer = Buffer.alloc(0), firstDh?: number): Proposal[] {
  return cfg.map((p, i) => {
    // When a group was asked for by INVALID_KE_PAYLOAD (1.2), offer it first so the KE matches.
    const dh = firstDh !== undefined && p.dh.includes(firstDh) ? [firstDh, ...p.dh.filter((d) => d !== firstDh)] : p.dh;
    return {
      num: i + 1,
      protocol: ProtocolId.IKE,
      spi,
      transforms: [
        ...p.encr.map(encrTransform),
        ...p.prf.map((id) => ({ type: TransformType.PRF, id })),
        ...p.integ.map((id) => ({ type: TransformType.INTEG, id })),
        ...dh.map((id) => ({ type: TransformType.DH, id })),
      ],
    };
  });
}

export function espProposals(cfg: EspProposalConfig[], spi: Buffer, withDh: boolean): Proposal[] {
  return cfg.map((p, i) => ({
    num: i + 1,
    protocol: ProtocolId.ESP,
    spi,
    transforms: [
      ...p.encr.map(encrTransform),
      ...p.integ.map((id) => ({ type: TransformType.INTEG, id })),
      // 1.3.1: PFS groups are offered only in CREATE_CHILD_SA; in IKE_AUTH the keys come from the IKE SA.
      ...(withDh ? p.dh.map((id) => ({ type: TransformType.DH, id })) : []),
      ...(p.esn.length ? p.esn : [0]).map((id) => ({ type: TransformType.ESN, id })),
    ],
  }));
}

const ofType = (p: Proposal, t: number): Transform[] => p.transforms.filter((x) => x.type === t);
const sameEncr = (t: Transform, e: Encr): boolean => t.id === e.id && (t.keyLength ?? 0) === (e.id === EncrId.ENCR_CHACHA20_POLY1305 ? 0 : e.keyLength);
const encrOf = (t: Transform): Encr => ({ id: t.id, keyLength: t.keyLength ?? (t.id === EncrId.ENCR_CHACHA20_POLY1305 ? 256 : 0) });

/** Picks, in the order of our configuration, the first proposal of the peer's that we accept (2.7). */
export function selectIke(ours: IkeProposalConfig[], theirs: Proposal[]): IkeSelection | null {
  for (const o of ours) {
    for (const p of theirs) {
      if (p.protocol !== ProtocolId.IKE) continue;
      const encrT = o.encr.find((e) => ofType(p, TransformType.ENCR).some((t) => sameEncr(t, e)));
      const prf = o.prf.find((id) => ofType(p, TransformType.PRF).some((t) => t.id === id));
      const dh = o.dh.find((id) => ofType(p, TransformType.DH).some((t) => t.id === id));
      if (!encrT || prf === undefined || dh === undefined) continue;
      const theirInteg = ofType(p, TransformType.INTEG).filter((t) => t.id !== 0);
      let integ = 0;
      if (isAeadId(encrT.id)) {
        if (theirInteg.length && !ofType(p, TransformType.INTEG).some((t) => t.id === 0)) continue;
      } else {
        const i = o.integ.find((id) => theirInteg.some((t) => t.id === id));
        if (i === undefined) continue;
        integ = i;
      }
      return { num: p.num, encr: encrT, integ, prf, dh };
    }
  }
  return null;
}

/** ESP selection; `pfs` is true in CREATE_CHILD_SA, where a DH group may be required. */
export function selectEsp(ours: EspProposalConfig[], theirs: Proposal[], pfs: boolean): EspSelection | null {
  for (const o of ours) {
    for (const p of theirs) {
      if (p.protocol !== ProtocolId.ESP || p.spi.length !== 4) continue;
      const encrT = o.encr.find((e) => ofType(p, TransformType.ENCR).some((t) => sameEncr(t, e)));
      if (!encrT) continue;
      let integ = 0;
      const theirInteg = ofType(p, TransformType.INTEG).filter((t) => t.id !== 0);
      if (!isAeadId(encrT.id)) {
        const i = o.integ.find((id) => theirInteg.some((t) => t.id === id));
        if (i === undefined) continue;
        integ = i;
      } else if (theirInteg.length) continue;
      const theirEsn = ofType(p, TransformType.ESN).map((t) => t.id);
      const esn = (o.esn.length ? o.esn : [0]).find((id) => (theirEsn.length ? theirEsn : [0]).includes(id));
      if (esn === undefined) continue;
      let dh = 0;
      const theirDh = ofType(p, TransformType.DH).map((t) => t.id).filter((id) => id !== 0);
      if (pfs && o.dh.length) {
        const d = o.dh.find((id) => theirDh.includes(id));
        if (d === undefined) continue;
        dh = d;
      } else if (pfs && theirDh.length && !ofType(p, TransformType.DH).some((t) => t.id === 0)) continue;
      return { num: p.num, spi: p.spi, encr: encrT, integ, dh, esn };
    }
  }
  return null;
}

/** 3.3.6: the responder's SA must hold exactly one proposal with one transform per type, taken from our offer. */
export function acceptIkeResponse(offered: Proposal[], reply: Proposal[]): IkeSelection | null {
  if (reply.length !== 1) return null;
  const r = reply[0]!;
  const mine = offered.find((p) => p.num === r.num);
  if (!mine || !withinOffer(mine, r)) return null;
  const one = (t: number): Transform | undefined => { const l = ofType(r, t); return l.length === 1 ? l[0] : undefined; };
  const encr = one(TransformType.ENCR), prf = one(TransformType.PRF), dh = one(TransformType.DH);
  if (!encr || !prf || !dh) return null;
  const integ = ofType(r, TransformType.INTEG);
  if (isAeadId(encr.id) ? integ.some((t) => t.id !== 0) : integ.length !== 1) return null;
  return { num: r.num, encr: encrOf(encr), integ: isAeadId(encr.id) ? 0 : integ[0]!.id, prf: prf.id, dh: dh.id };
}

export function acceptEspResponse(offered: Proposal[], reply: Proposal[]): EspSelection | null {
  if (reply.length !== 1) return null;
  const r = reply[0]!;
  const mine = offered.find((p) => p.num === r.num);
  if (!mine || r.protocol !== ProtocolId.ESP || r.spi.length !== 4 || !withinOffer(mine, r)) return null;
  const encr = ofType(r, TransformType.ENCR);
  if (encr.length !== 1) return null;
  const integ = ofType(r, TransformType.INTEG).filter((t) => t.id !== 0);
  if (isAeadId(encr[0]!.id) ? integ.length !== 0 : integ.length !== 1) return null;
  const dh = ofType(r, TransformType.DH).filter((t) => t.id !== 0);
  const esn = ofType(r, TransformType.ESN);
  return { num: r.num, spi: r.spi, encr: encrOf(encr[0]!), integ: integ[0]?.id ?? 0, dh: dh[0]?.id ?? 0, esn: esn[0]?.id ?? 0 };
}

function withinOffer(mine: Proposal, r: Proposal): boolean {
  return r.transforms.every((t) => mine.transforms.some((m) => m.type === t.type && m.id === t.id && (m.keyLength ?? 0) === (t.keyLength ?? 0)));
}
