/**
 * IKE identities (RFC 7296 3.5): turning configured identities into ID
 * payload contents, rendering received ones for logs and matching, and
 * comparing them.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { IdentityConfig } from '../config/model.js';
import { derToDnText, dnEquals, dnToDer } from '../auth/dn.js';
import { IdType } from '../wire/ikev2/constants.js';
import { addrBytes, addrText } from './ts.js';

export interface Identity { type: number; data: Buffer }

/** The identity we send. '%any' (or none given) means our IKE endpoint address, as peers commonly expect. */
export function localIdentity(cfg: IdentityConfig, localAddress: string): Identity {
  switch (cfg.type) {
    case 'ipv4': return { type: IdType.ID_IPV4_ADDR, data: addrBytes(cfg.value) };
    case 'ipv6': return { type: IdType.ID_IPV6_ADDR, data: addrBytes(cfg.value) };
    case 'fqdn': return { type: IdType.ID_FQDN, data: Buffer.from(cfg.value, 'ascii') };
    case 'email': return { type: IdType.ID_RFC822_ADDR, data: Buffer.from(cfg.value, 'ascii') };
    case 'keyid': return { type: IdType.ID_KEY_ID, data: Buffer.from(cfg.value, 'utf8') };
    // RFC 7296 3.5: ID_DER_ASN1_DN carries the binary DER Name, as certificates hold it (RFC 4945 3.1.5).
    case 'dn': return { type: IdType.ID_DER_ASN1_DN, data: dnToDer(cfg.value) };
    case 'any':
      return isIPv4(localAddress) ? { type: IdType.ID_IPV4_ADDR, data: addrBytes(localAddress) }
        : isIPv6(localAddress) ? { type: IdType.ID_IPV6_ADDR, data: addrBytes(localAddress) }
          : { type: IdType.ID_FQDN, data: Buffer.from(localAddress, 'ascii') };
  }
}

/** Text of an identity for logs, listings and PSK lookup. */
export function identityText(id: Identity): string {
  switch (id.type) {
    case IdType.ID_IPV4_ADDR: return id.data.length === 4 ? addrText(id.data) : `0x${id.data.toString('hex')}`;
    case IdType.ID_IPV6_ADDR: return id.data.length === 16 ? addrText(id.data) : `0x${id.data.toString('hex')}`;
    case IdType.ID_FQDN:
    case IdType.ID_RFC822_ADDR:
      return printable(id.data) ? id.data.toString('ascii') : `0x${id.data.toString('hex')}`;
    case IdType.ID_DER_ASN1_DN:
      try { return derToDnText(id.data); } catch { return `0x${id.data.toString('hex')}`; }
    default: return printable(id.data) ? id.data.toString('utf8') : `0x${id.data.toString('hex')}`;
  }
}

const printable = (b: Buffer): boolean => b.every((c) => c >= 0x20 && c < 0x7f);

/** Whether a received identity is the one configured for the peer ('%any' accepts all). */
export function identityMatches(cfg: IdentityConfig, id: Identity): boolean {
  if (cfg.type === 'any') return true;
  const want = localIdentity(cfg, '');
  if (want.type !== id.type) return false;
  // FQDN and e-mail identities compare case-insensitively, as DNS names do.
  if (id.type === IdType.ID_FQDN || id.type === IdType.ID_RFC822_ADDR) return want.data.toString('ascii').toLowerCase() === id.data.toString('ascii').toLowerCase();
  // RFC 5280 7.1 name comparison: case and string type of attribute values do not matter.
  if (id.type === IdType.ID_DER_ASN1_DN) return dnEquals(want.data, id.data);
  return want.data.equals(id.data);
}

export function configIdText(cfg: IdentityConfig): string { return cfg.type === 'any' ? '%any' : cfg.value; }
