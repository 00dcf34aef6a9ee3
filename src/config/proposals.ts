/**
 * Algorithm proposal strings ('aes128-sha256-x25519', 'aes256gcm16-prfsha384-ecp384',
 * 'aes128gcm16-esn') resolved to IANA transform IDs, and the reverse: the
 * display names used by listings.
 *
 * The keyword style is the one IPsec administrators already know from other
 * IKE daemons, so existing proposal lines can be reused as they are.
 */
import { DhId, EncrId, EsnId, IntegId, PrfId } from '../wire/ikev2/constants.js';
import type { EspProposalConfig, IkeProposalConfig } from './model.js';

interface EncrAlg { id: number; keyLength: number; aead: boolean }

const ENCR = new Map<string, EncrAlg>();
for (const bits of [128, 192, 256]) {
  ENCR.set(`aes${bits}`, { id: EncrId.ENCR_AES_CBC, keyLength: bits, aead: false });
  // The ICV length can be given in octets (8/12/16) or bits (64/96/128); bare 'gcm' means the 16-octet ICV.
  const gcm: [string, number][] = [['8', EncrId.ENCR_AES_GCM_8], ['12', EncrId.ENCR_AES_GCM_12], ['16', EncrId.ENCR_AES_GCM_16],
    ['64', EncrId.ENCR_AES_GCM_8], ['96', EncrId.ENCR_AES_GCM_12], ['128', EncrId.ENCR_AES_GCM_16], ['', EncrId.ENCR_AES_GCM_16]];
  for (const [icv, id] of gcm) ENCR.set(`aes${bits}gcm${icv}`, { id, keyLength: bits, aead: true });
}
// RFC 7634: the ChaCha20-Poly1305 transform carries no key length attribute.
ENCR.set('chacha20poly1305', { id: EncrId.ENCR_CHACHA20_POLY1305, keyLength: 0, aead: true });
// Legacy, for old IKEv1 gateways only (RFC 2409 appendix A); never in a default.
ENCR.set('3des', { id: EncrId.ENCR_3DES, keyLength: 0, aead: false });

const INTEG = new Map<string, number>([
  ['sha1', IntegId.AUTH_HMAC_SHA1_96],
  ['sha256', IntegId.AUTH_HMAC_SHA2_256_128], ['sha2_256', IntegId.AUTH_HMAC_SHA2_256_128],
  ['sha384', IntegId.AUTH_HMAC_SHA2_384_192], ['sha2_384', IntegId.AUTH_HMAC_SHA2_384_192],
  ['sha512', IntegId.AUTH_HMAC_SHA2_512_256], ['sha2_512', IntegId.AUTH_HMAC_SHA2_512_256],
]);

const PRF = new Map<string, number>([
  ['prfsha1', PrfId.PRF_HMAC_SHA1],
  ['prfsha256', PrfId.PRF_HMAC_SHA2_256],
  ['prfsha384', PrfId.PRF_HMAC_SHA2_384],
  ['prfsha512', PrfId.PRF_HMAC_SHA2_512],
]);

/** When an IKE proposal names no PRF, each integrity algorithm implies the PRF built on the same hash. */
const PRF_FOR_INTEG = new Map<number, number>([
  [IntegId.AUTH_HMAC_SHA1_96, PrfId.PRF_HMAC_SHA1],
  [IntegId.AUTH_HMAC_SHA2_256_128, PrfId.PRF_HMAC_SHA2_256],
  [IntegId.AUTH_HMAC_SHA2_384_192, PrfId.PRF_HMAC_SHA2_384],
  [IntegId.AUTH_HMAC_SHA2_512_256, PrfId.PRF_HMAC_SHA2_512],
]);

const DH = new Map<string, number>([
  // modp1024 (group 2) is legacy, for old IKEv1 gateways only; never in a default.
  ['modp1024', DhId.MODP_1024], ['modp2048', DhId.MODP_2048], ['modp3072', DhId.MODP_3072], ['modp4096', DhId.MODP_4096],
  ['ecp256', DhId.ECP_256], ['ecp384', DhId.ECP_384], ['ecp521', DhId.ECP_521],
  ['x25519', DhId.CURVE25519], ['curve25519', DhId.CURVE25519],
]);

const ESN = new Map<string, number>([['esn', EsnId.ESN], ['noesn', EsnId.NO_ESN]]);

/** Thrown by the parsers below; the config loader turns it into a located ConfigError. */
export class ProposalError extends Error {}

interface Parts {
  encr: { id: number; keyLength: number }[];
  aead: boolean[];
  integ: number[];
  prf: number[];
  dh: number[];
  esn: number[];
}

function addOnce<T>(list: T[], item: T, same: (a: T, b: T) => boolean = (a, b) => a === b): void {
  if (!list.some((x) => same(x, item))) list.push(item);
}

function split(text: string, kind: 'IKE' | 'ESP'): Parts {
  const t = text.trim().toLowerCase();
  if (t === '') throw new ProposalError(`empty ${kind} proposal`);
  const p: Parts = { encr: [], aead: [], integ: [], prf: [], dh: [], esn: [] };
  for (const word of t.split('-')) {
    const e = ENCR.get(word);
    if (e) {
      const before = p.encr.length;
      addOnce(p.encr, { id: e.id, keyLength: e.keyLength }, (a, b) => a.id === b.id && a.keyLength === b.keyLength);
      if (p.encr.length > before) p.aead.push(e.aead);
      continue;
    }
    const i = INTEG.get(word);
    if (i !== undefined) { addOnce(p.integ, i); continue; }
    const f = PRF.get(word);
    if (f !== undefined) { addOnce(p.prf, f); continue; }
    const d = DH.get(word);
    if (d !== undefined) { addOnce(p.dh, d); continue; }
    const n = ESN.get(word);
    if (n !== undefined) { addOnce(p.esn, n); continue; }
    throw new ProposalError(word === '' ? `empty algorithm name in '${text}'` : `unknown algorithm '${word}'`);
  }
  if (p.encr.length === 0) throw new ProposalError(`${kind} proposal '${text}' has no encryption algorithm`);
  const aead = p.aead[0]!;
  if (p.aead.some((a) => a !== aead)) {
    throw new ProposalError(`${kind} proposal '${text}' mixes AEAD and non-AEAD ciphers; write them as separate proposals`);
  }
  if (aead && p.integ.length > 0) {
    throw new ProposalError(`${kind} proposal '${text}' combines an AEAD cipher with an integrity algorithm`);
  }
  if (!aead && p.integ.length === 0) {
    throw new ProposalError(`${kind} proposal '${text}' has no integrity algorithm`);
  }
  return p;
}

export function parseIkeProposal(text: string): IkeProposalConfig {
  const p = split(text, 'IKE');
  if (p.esn.length > 0) throw new ProposalError(`IKE proposal '${text}' must not contain esn/noesn (ESP only)`);
  let prf = p.prf;
  if (prf.length === 0) {
    // An AEAD cipher has no integrity algorithm to take the PRF from.
    if (p.integ.length === 0) throw new ProposalError(`IKE proposal '${text}' with an AEAD cipher needs a prf (e.g. prfsha256)`);
    prf = [];
    for (const i of p.integ) addOnce(prf, PRF_FOR_INTEG.get(i)!);
  }
  if (p.dh.length === 0) throw new ProposalError(`IKE proposal '${text}' has no DH group (e.g. x25519, ecp256, modp2048)`);
  return { text: text.trim(), encr: p.encr, integ: p.integ, prf, dh: p.dh };
}

export function parseEspProposal(text: string): EspProposalConfig {
  const p = split(text, 'ESP');
  if (p.prf.length > 0) throw new ProposalError(`ESP proposal '${text}' must not contain a prf (IKE only)`);
  return { text: text.trim(), encr: p.encr, integ: p.integ, dh: p.dh, esn: p.esn.length > 0 ? p.esn : [EsnId.NO_ESN] };
}

export const DEFAULT_IKE_PROPOSALS = ['aes128-sha256-x25519', 'aes256gcm16-prfsha384-ecp384', 'aes128-sha256-modp2048'] as const;
export const DEFAULT_ESP_PROPOSALS = ['aes128gcm16', 'aes128-sha256'] as const;

// ---- display names ---------------------------------------------------------

const ENCR_NAMES: Record<number, string> = {
  [EncrId.ENCR_3DES]: '3DES_CBC',
  [EncrId.ENCR_NULL]: 'NULL',
  [EncrId.ENCR_AES_CBC]: 'AES_CBC',
  [EncrId.ENCR_AES_CTR]: 'AES_CTR',
  [EncrId.ENCR_AES_GCM_8]: 'AES_GCM_8',
  [EncrId.ENCR_AES_GCM_12]: 'AES_GCM_12',
  [EncrId.ENCR_AES_GCM_16]: 'AES_GCM_16',
  [EncrId.ENCR_CHACHA20_POLY1305]: 'CHACHA20_POLY1305',
};
const INTEG_NAMES: Record<number, string> = {
  [IntegId.AUTH_HMAC_MD5_96]: 'HMAC_MD5_96',
  [IntegId.AUTH_HMAC_SHA1_96]: 'HMAC_SHA1_96',
  [IntegId.AUTH_HMAC_SHA2_256_128]: 'HMAC_SHA2_256_128',
  [IntegId.AUTH_HMAC_SHA2_384_192]: 'HMAC_SHA2_384_192',
  [IntegId.AUTH_HMAC_SHA2_512_256]: 'HMAC_SHA2_512_256',
};
const PRF_NAMES: Record<number, string> = {
  [PrfId.PRF_HMAC_MD5]: 'PRF_HMAC_MD5',
  [PrfId.PRF_HMAC_SHA1]: 'PRF_HMAC_SHA1',
  [PrfId.PRF_HMAC_SHA2_256]: 'PRF_HMAC_SHA2_256',
  [PrfId.PRF_HMAC_SHA2_384]: 'PRF_HMAC_SHA2_384',
  [PrfId.PRF_HMAC_SHA2_512]: 'PRF_HMAC_SHA2_512',
};
const DH_NAMES: Record<number, string> = {
  [DhId.MODP_1024]: 'MODP_1024',
  [DhId.MODP_2048]: 'MODP_2048',
  [DhId.MODP_3072]: 'MODP_3072',
  [DhId.MODP_4096]: 'MODP_4096',
  [DhId.ECP_256]: 'ECP_256',
  [DhId.ECP_384]: 'ECP_384',
  [DhId.ECP_521]: 'ECP_521',
  [DhId.CURVE25519]: 'CURVE_25519',
};

/** 'AES_CBC-128', 'AES_GCM_16-256', 'CHACHA20_POLY1305'; unknown IDs show as 'ENCR_<n>'. */
export function encrName(id: number, keyLength: number): string {
  const base = ENCR_NAMES[id] ?? `ENCR_${id}`;
  return keyLength > 0 ? `${base}-${keyLength}` : base;
}
export function integName(id: number): string { return INTEG_NAMES[id] ?? `INTEG_${id}`; }
export function prfName(id: number): string { return PRF_NAMES[id] ?? `PRF_${id}`; }
export function dhName(id: number): string { return DH_NAMES[id] ?? `DH_${id}`; }

/**
 * One proposal as a '/'-joined list of display names, in the order
 * encryption, integrity, PRF, DH, ESN, e.g. 'AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519'.
 */
export function proposalToText(p: IkeProposalConfig | EspProposalConfig): string {
  const parts: string[] = p.encr.map((e) => encrName(e.id, e.keyLength));
  parts.push(...p.integ.map(integName));
  if ('prf' in p) parts.push(...p.prf.map(prfName));
  parts.push(...p.dh.map(dhName));
  if ('esn' in p) parts.push(...p.esn.map((e) => (e === EsnId.ESN ? 'ESN' : 'NO_ESN')));
  return parts.join('/');
}
