/**
 * Legacy phase-1 algorithms for old IKEv1 gateways: 3DES-CBC and MODP-1024
 * (group 2) work when a connection names them, and nowhere else.
 */
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config/index.js';
import { ConfigError } from '../../../src/util/errors.js';
import { V1Peers, v1Config } from './two-peers.js';

describe('ike/v1 legacy phase-1 algorithms', function () {
  it('establishes Main Mode with 3des-sha1-modp1024 when both sides configure it', async function () {
    const proposals = '3des-sha1-modp1024';
    const p = new V1Peers(v1Config('left', { proposals }), v1Config('right', { proposals }));
    await p.establish();
    const [l, r] = [p.left.sas[0]!, p.right.sas[0]!];
    assert.equal(l.state, 'ESTABLISHED');
    assert.deepEqual(l.keys, r.keys);
    assert.equal(l.children.length, 1);
  });

  it('refuses 3des and modp1024 for IKEv2 connections and for ESP, naming the line', function () {
    const v2 = v1Config('left', { proposals: '3des-sha1-modp1024' }).replace('version: 1', 'version: 2');
    assert.throws(() => parseConfig(v2, 'v2.yaml'), (e: unknown) => e instanceof ConfigError && /legacy and allowed only with version: 1/.test(e.message) && e.line !== undefined);
    const esp = v1Config('left', { esp: '3des-sha1' });
    assert.throws(() => parseConfig(esp, 'esp.yaml'), (e: unknown) => e instanceof ConfigError && /not offered for ESP/.test(e.message));
  });
});
