/**
 * The typed, immutable configuration model that config/ produces from
 * etc/styx.yaml. Every other module reads configuration only through these types.
 */
import type { Level, Subsystem } from '../util/log.js';

/** One algorithm proposal, resolved to IANA transform IDs. */
export interface IkeProposalConfig {
  text: string;                     // as written, e.g. 'aes128-sha256-x25519'
  encr: { id: number; keyLength: number }[];   // keyLength in bits (0 where the cipher has none)
  integ: number[];                  // empty for AEAD
  prf: number[];
  dh: number[];                     // first is the group to send a KE for
}
export interface EspProposalConfig {
  text: string;                     // e.g. 'aes128gcm16', 'aes256-sha256-modp2048'
  encr: { id: number; keyLength: number }[];
  integ: number[];                  // empty for AEAD
  dh: number[];                     // PFS groups; empty = no PFS
  esn: number[];                    // [0] by default
}

export type AuthConfig = PskAuthConfig | PubkeyAuthConfig;

export interface PskAuthConfig { method: 'psk'; id: IdentityConfig }

/**
 * How styx signs its AUTH payload: 'auto' uses RFC 7427 (method 14) with
 * PKCS#1 v1.5 or ECDSA when the peer announced SIGNATURE_HASH_ALGORITHMS and
 * the key's RFC 7296 3.8 method (1, 9-11) otherwise; 'pss' is 'auto' with
 * RSASSA-PSS in method 14; 'legacy' always uses the RFC 7296 method.
 */
export type SignaturePolicy = 'auto' | 'pss' | 'legacy';

/** Certificate authentication (RFC 7296 2.15, 3.6-3.8); paths are absolute (resolved against the configuration file). */
export interface PubkeyAuthConfig {
  method: 'pubkey';
  id: IdentityConfig;
  /** Local: our certificate, optionally followed in the same PEM file by the intermediates to send. Remote: a peer certificate trusted as it is. */
  cert?: string;
  /** Local: our private key. */
  key?: string;
  /** Remote: trust anchors the peer's certificate must chain to (files or directories). */
  cacerts: string[];
  /** Remote: CRLs of those CAs (files or directories). */
  crls: string[];
  /** Local: which AUTH method to sign with. */
  signature: SignaturePolicy;
}

/** An identity: the ID type and its textual value ('%any' allowed on the remote side). */
export interface IdentityConfig { type: 'ipv4' | 'ipv6' | 'fqdn' | 'email' | 'dn' | 'keyid' | 'any'; value: string }

export interface TrafficSelectorConfig {
  text: string;                     // '10.1.0.0/24', '10.1.0.0/24[tcp/80]', 'dynamic'
  dynamic: boolean;                 // 'dynamic' = the tunnel endpoint's own address
  family: 4 | 6;
  startAddr: Buffer; endAddr: Buffer;
  protocol: number;                 // 0 = any
  startPort: number; endPort: number;
}

export interface ChildConfig {
  name: string;
  localTs: TrafficSelectorConfig[];
  remoteTs: TrafficSelectorConfig[];
  espProposals: EspProposalConfig[];
  mode: 'tunnel' | 'transport';
  startAction: 'start' | 'trap' | 'none';
  lifetime: number;                 // seconds
  rekeyTime: number;                // seconds
  /** Volume limits counted by the data plane; 0 = none. */
  rekeyBytes: number; lifeBytes: number; rekeyPackets: number; lifePackets: number;
}

export interface ConnectionConfig {
  name: string;
  version: 1 | 2;
  localAddrs: string[];             // '%any' or addresses
  remoteAddrs: string[];            // '%any' or addresses / hostnames
  localPort: number;                // 500 by default
  remotePort: number;               // 500 by default
  ikeProposals: IkeProposalConfig[];
  local: AuthConfig;
  remote: AuthConfig;
  children: ChildConfig[];
  startAction: 'start' | 'none';    // initiate when the daemon starts
  aggressive: boolean;              // IKEv1 only
  encap: boolean;                   // force UDP encapsulation
  rekeyTime: number;                // IKE SA, seconds
  lifetime: number;                 // IKE SA, seconds
  dpdDelay: number;                 // seconds, 0 = off
  dpdTimeout: number;               // seconds
  dpdAction: 'clear' | 'restart' | 'trap';
  /** Seconds until the IKE SA is replaced by a freshly authenticated one (make-before-break); 0 = off. */
  reauthTime: number;
  /** RFC 7296 2.4: retransmission policy. */
  retransmit: { timeout: number; tries: number; base: number };
  /** RFC 7383: announce IKEV2_FRAGMENTATION_SUPPORTED and fragment large messages when the peer does too. */
  fragmentation: boolean;
  /** RFC 7383 2.5.1: the largest IP datagram an IKE fragment may fill (the daemon's fragment_size unless set here). */
  fragmentSize: number;
}

export interface SecretConfig {
  /** Identities this PSK applies to; empty means any peer. */
  ids: string[];
  psk: Buffer;
}

export interface DaemonConfig {
  listen: string[];                 // local addresses to bind; ['0.0.0.0', '::'] by default
  port: number;                     // 500
  natPort: number;                  // 4500
  controlSocket: string;            // path of the UNIX control socket
  dataplane: 'memory' | 'userspace' | 'xfrm';
  /** The userspace data plane's TUN device. */
  tun: { name: string; mtu: number };
  logLevels: Partial<Record<Subsystem, Level>>;
  defaultLogLevel: Level;
  /** RFC 7296 2.6: half-open IKE SAs above which the responder asks for a cookie. */
  cookieThreshold: number;
  /** RFC 7383 2.5.1: default largest IP datagram for an IKE fragment, IP and UDP headers included. */
  fragmentSize: number;
  /** Seconds between NAT keepalives sent from behind a NAT (RFC 3948 2.3); 0 = off. */
  keepalive: number;
}

export interface StyxConfig {
  file: string;
  daemon: DaemonConfig;
  connections: ConnectionConfig[];
  secrets: SecretConfig[];
}
