/**
 * The control listing of an ISAKMP SA (src/control/protocol.ts IkeSaInfo,
 * version 1): cookies as spiI/spiR, the phase 1 step while connecting,
 * installed IPsec SAs as children, and Quick Modes still under way as
 * children in QUICK_I1 / QUICK_R1 so `styx list` shows phase 2 progress.
 */
import type { ChildSaInfo, IkeSaInfo } from '../../control/protocol.js';
import { dhName, encrName, integName, prfName } from '../../crypto/index.js';
import type { DataplaneBackend } from '../../dataplane/api.js';
import { configIdText, identityText } from '../identity.js';
import { tsText } from '../ts.js';
import { spiHex } from '../v2/child-sa.js';
import type { IkeSaV1 } from './ike-sa.js';
import { describeChild } from '../describe-child.js';
import { PRF_FOR_HASH, espSelection, v2EncrOfPhase1 } from './proposals.js';
import { quickStates } from './quick.js';

export async function describeV1Sa(dp: DataplaneBackend, sa: IkeSaV1): Promise<IkeSaInfo> {
  const children: ChildSaInfo[] = await Promise.all(sa.children.map((c) => describeChild(dp, c)));
  for (const q of quickStates(sa).values()) {
    const acc = q.accepted;
    const sel = acc ? espSelection(acc.choice, 1, Buffer.alloc(4)) : null;
    children.push({
      name: q.cfg.name, uniqueId: 0, state: q.step, mode: acc?.mode ?? q.cfg.mode, protocol: 'esp',
      spiIn: spiHex(q.spiIn), spiOut: acc ? spiHex(acc.spiOut) : '00000000', encap: acc?.encap ?? false,
      algorithms: sel ? { encr: encrName(sel.encr.id, sel.encr.keyLength), integ: sel.integ ? integName(sel.integ) : null, dh: sel.dh ? dhName(sel.dh) : null, esn: sel.esn === 1 }
        : { encr: '-', integ: null, dh: null, esn: false },
      localTs: [tsText(q.localTs)], remoteTs: [tsText(q.remoteTs)], installedAt: null,
      bytesIn: '0', bytesOut: '0', packetsIn: '0', packetsOut: '0',
    });
  }
  const a = sa.attrs;
  const encr = a ? v2EncrOfPhase1(a) : null;
  const prf = a ? PRF_FOR_HASH[a.hash] : undefined;
  return {
    name: sa.conn.name, uniqueId: sa.uniqueId, version: 1,
    state: sa.state === 'CONNECTING' ? sa.step : sa.state, initiator: sa.initiator,
    local: { address: sa.local.address, port: sa.local.port, id: sa.localId ? identityText(sa.localId) : configIdText(sa.conn.local.id) },
    remote: { address: sa.remote.address, port: sa.remote.port, id: sa.remoteId ? identityText(sa.remoteId) : configIdText(sa.conn.remote.id) },
    spiI: sa.cookieI.toString('hex'), spiR: sa.cookieR.toString('hex'),
    // IKEv1 has no separate integrity algorithm: the hash is both PRF and integrity (RFC 2409 4).
    algorithms: a && encr ? { encr: encrName(encr.id, encr.keyLength), integ: null, prf: prf !== undefined ? prfName(prf) : `hash ${a.hash}`, dh: dhName(a.group) } : { encr: '-', integ: null, prf: '-', dh: '-' },
    establishedAt: sa.establishedAt, rekeyAt: sa.rekeyAt, nat: { ...sa.nat }, children,
  };
}
