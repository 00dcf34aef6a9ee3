/**
 * Human-readable output for the `styx` CLI. The layout is what IPsec
 * administrators are used to reading: one block per IKE SA, its CHILD_SAs
 * indented under it. `now` is a parameter so output can be tested.
 */
import type { CertInfo, CertListInfo, ChildSaInfo, ConnInfo, IkeSaInfo } from './protocol.js';

/** Compact duration: '12s', '5m3s', '3h59m', '2d4h'. Negative input counts as zero. */
export function formatDuration(seconds: number): string {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  // Two units are enough to read at a glance.
  if (d > 0) return h > 0 ? `${d}d${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h${m}m` : `${h}h`;
  if (m > 0) return s > 0 ? `${m}m${s}s` : `${m}m`;
  return `${s}s`;
}

function endpoint(e: { address: string; port: number; id: string }): string {
  const addr = e.address.includes(':') ? `[${e.address}]` : e.address;
  return `'${e.id}' @ ${addr}[${e.port}]`;
}

function algos(parts: (string | null)[]): string {
  return parts.filter((p): p is string => p !== null && p !== '').join('/');
}

function formatChild(c: ChildSaInfo, now: number): string[] {
  const out: string[] = [];
  const proto = c.encap ? 'ESP in UDP' : 'ESP';
  out.push(`  ${c.name}: #${c.uniqueId}, ${c.state}, ${c.mode.toUpperCase()}, ${proto} SPIs: ${c.spiIn}_i ${c.spiOut}_o`);
  out.push(`    ${algos([c.algorithms.encr, c.algorithms.integ, c.algorithms.dh, c.algorithms.esn ? 'ESN' : null])}`);
  if (c.installedAt !== null) out.push(`    installed ${formatDuration((now - c.installedAt) / 1000)} ago`);
  out.push(`    in  ${c.spiIn}, ${c.bytesIn} bytes, ${c.packetsIn} packets`);
  out.push(`    out ${c.spiOut}, ${c.bytesOut} bytes, ${c.packetsOut} packets`);
  out.push(`    local  ${c.localTs.join(' ')}`);
  out.push(`    remote ${c.remoteTs.join(' ')}`);
  return out;
}

export function formatIkeSa(sa: IkeSaInfo, now: number = Date.now()): string {
  const out: string[] = [];
  const mark = (mine: boolean): string => (mine ? '*' : '');
  out.push(`${sa.name}: #${sa.uniqueId}, ${sa.state}, IKEv${sa.version}, ` +
    `${sa.spiI}_i${mark(sa.initiator)} ${sa.spiR}_r${mark(!sa.initiator)}`);
  out.push(`  local  ${endpoint(sa.local)}${sa.nat.local ? ' (behind NAT)' : ''}`);
  out.push(`  remote ${endpoint(sa.remote)}${sa.nat.remote ? ' (behind NAT)' : ''}`);
  out.push(`  ${algos([sa.algorithms.encr, sa.algorithms.integ, sa.algorithms.prf, sa.algorithms.dh])}`);
  const times: string[] = [];
  if (sa.establishedAt !== null) times.push(`established ${formatDuration((now - sa.establishedAt) / 1000)} ago`);
  if (sa.rekeyAt !== null) times.push(`rekeying in ${formatDuration((sa.rekeyAt - now) / 1000)}`);
  if (times.length > 0) out.push(`  ${times.join(', ')}`);
  for (const c of sa.children) out.push(...formatChild(c, now));
  return out.join('\n');
}

export function formatIkeSas(sas: IkeSaInfo[], now: number = Date.now()): string {
  if (sas.length === 0) return 'no IKE SAs';
  return sas.map((sa) => formatIkeSa(sa, now)).join('\n');
}

export function formatConns(conns: ConnInfo[]): string {
  if (conns.length === 0) return 'no connections';
  const out: string[] = [];
  for (const c of conns) {
    out.push(`${c.name}: IKEv${c.version}, ${c.localAddrs.join(',')}...${c.remoteAddrs.join(',')}`);
    out.push(`  local  '${c.localId}'`);
    out.push(`  remote '${c.remoteId}'`);
    for (const ch of c.children) {
      out.push(`  ${ch.name}: ${ch.localTs.join(' ')} === ${ch.remoteTs.join(' ')}`);
    }
  }
  return out.join('\n');
}

export function formatStats(stats: Record<string, number>): string {
  const keys = Object.keys(stats).sort();
  if (keys.length === 0) return 'no counters';
  const width = Math.max(...keys.map((k) => k.length));
  return keys.map((k) => `${k.padEnd(width)}  ${stats[k]}`).join('\n');
}

const day = (iso: string): string => iso.slice(0, 10);

function formatCert(c: CertInfo): string[] {
  const out = [`  ${c.role.padEnd(12)} "${c.subject}"  ${c.status.toUpperCase()}${c.detail ? `: ${c.detail}` : ''}`];
  out.push(`               issuer "${c.issuer}", serial ${c.serial}, ${c.key}`);
  out.push(`               valid ${day(c.notBefore)} to ${day(c.notAfter)}, ${c.file}`);
  if (c.altNames.length > 0) out.push(`               ${c.altNames.join(', ')}`);
  return out;
}

/** Certificates grouped by connection, ours first, then what we send, then whom we trust, then CRLs. */
export function formatCerts(r: CertListInfo): string {
  const conns = [...new Set([...r.certs.map((c) => c.connection), ...r.crls.map((c) => c.connection), ...r.errors.map((e) => e.connection)])];
  if (conns.length === 0) return 'no certificates';
  const order: Record<string, number> = { local: 0, intermediate: 1, ca: 2 };
  const out: string[] = [];
  for (const name of conns) {
    out.push(`${name}:`);
    for (const e of r.errors.filter((x) => x.connection === name)) out.push(`  cannot load: ${e.error}`);
    const certs = r.certs.filter((c) => c.connection === name).sort((a, b) => (order[a.role] ?? 3) - (order[b.role] ?? 3));
    for (const c of certs) out.push(...formatCert(c));
    for (const l of r.crls.filter((x) => x.connection === name)) {
      out.push(`  ${'crl'.padEnd(12)} "${l.issuer}"  ${l.status.toUpperCase()}, ${l.revoked} revoked${l.crlNumber !== undefined ? `, number ${l.crlNumber}` : ''}`);
      out.push(`               issued ${day(l.thisUpdate)}${l.nextUpdate ? `, next update ${day(l.nextUpdate)}` : ''}, ${l.file}`);
    }
  }
  return out.join('\n');
}
