/**
 * The control listing of one installed CHILD_SA / IPsec SA, shared by the
 * IKEv2 and IKEv1 listings: algorithms, selectors, and the data plane's
 * counters for both directions.
 */
import type { ChildSaInfo } from '../control/protocol.js';
import { dhName, encrName, integName } from '../crypto/index.js';
import type { DataplaneBackend } from '../dataplane/api.js';
import { tsText } from './ts.js';
import { spiHex, type ChildSa } from './v2/child-sa.js';

export async function describeChild(dp: DataplaneBackend, c: ChildSa): Promise<ChildSaInfo> {
  const [inC, outC] = await Promise.all([dp.querySa(c.spiIn, 'in'), dp.querySa(c.spiOut, 'out')]);
  const s = c.selection;
  return {
    name: c.config.name, uniqueId: c.uniqueId, state: c.state, mode: c.mode, protocol: 'esp',
    spiIn: spiHex(c.spiIn), spiOut: spiHex(c.spiOut), encap: c.encap,
    algorithms: { encr: encrName(s.encr.id, s.encr.keyLength), integ: s.integ ? integName(s.integ) : null, dh: s.dh ? dhName(s.dh) : null, esn: s.esn === 1 },
    localTs: c.localTs.map(tsText), remoteTs: c.remoteTs.map(tsText), installedAt: c.installedAt,
    bytesIn: String(inC?.bytes ?? 0n), bytesOut: String(outC?.bytes ?? 0n), packetsIn: String(inC?.packets ?? 0n), packetsOut: String(outC?.packets ?? 0n),
  };
}
