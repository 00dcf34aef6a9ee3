/**
 * Real IKEv1 traffic from other projects' test suites (see
 * test/fixtures/ikev1/README.md): every datagram decodes, every plaintext
 * message re-encodes to its bytes, and fields match what those projects'
 * dissectors expect.
 */
import assert from 'node:assert/strict';
import {
  V1AuthMethod, V1EncryptionAlg, V1ExchangeType, V1Group, V1HashAlg, V1PayloadType, checkV1Message, decodeIsakmp, encodeIsakmp,
  findV1Payload, findV1Payloads, phase1Attributes, vendorIdName,
} from '../../../src/wire/ikev1/index.js';
import type { IsakmpMessage, IsakmpPlainMessage, V1Payload, V1SaPayload } from '../../../src/wire/ikev1/index.js';
import { MalformedError } from '../../../src/util/errors.js';
import { fixture, pcapIsakmp } from './fixtures.js';

const P = V1PayloadType;
const hex = (b: Buffer): string => b.toString('hex');
const CAPTURES = ['suricata-ikev1-isakmp-main-mode.pcap', 'tcpdump-ISAKMP_sa_setup.pcap', 'tcpdump-isakmp4500.pcap', 'wireshark-wiki-ikev1-main-mode.pcap'];

function decodeAll(name: string): { raw: Buffer; msg: IsakmpMessage }[] {
  return pcapIsakmp(fixture(name)).map((raw) => ({ raw, msg: decodeIsakmp(raw) }));
}
function plainPayloads(m: IsakmpMessage): V1Payload[] {
  assert.equal(m.encrypted, false);
  return (m as IsakmpPlainMessage).payloads;
}
function must<T>(v: T | undefined, what: string): T {
  assert.ok(v !== undefined, `missing ${what}`);
  return v;
}
const KE_CLIENT = '3504d3d2ed14e0ca03b851a51a9da2e5a4c14c1d7ec3e1fbe950025424514b3c69ed7fbb44e09225da52d2a92604a99bf61b7beed7fbfa635e82f065f4fe780751354dbe474c3de7207dcf69fdbbed32c1691cc149b318eee00370e65fc3069bbacfb013467173966e9d5f4bc4f3857e359bba3adbb6efeea516f3897d8534f3';
const KE_SERVER = '6d026d5616c45be05e5b898411e9f95d195cea009ad22c62bef06c571b7cfbc4792f45564ec710ac584aa18d20cbc8f5f8910666b89e4ee2f95abc0230e2cba1b88ac4bba7fcc818a986c01a4ca865a5eb82884dbec85bfd7d1a303b09894dcf2e3785fd79dba225377cf8cca009ceffbb6aa38b648c4b05404f1cfaac361aff';
const chosenSa = (payloads: V1Payload[]) => must(must(findV1Payload(payloads, P.SA), 'SA').proposals[0], 'proposal').transforms;

describe('IKEv1 captures: decode and re-encode', () => {
  for (const name of CAPTURES) {
    it(`${name}: every datagram decodes; plaintext ones re-encode byte for byte`, () => {
      const all = decodeAll(name);
      assert.ok(all.length >= 9);
      for (const { raw, msg } of all) {
        if (msg.encrypted) continue;
        assert.equal(hex(encodeIsakmp(msg.header, msg.payloads)), hex(raw));
      }
    });
  }
});

describe('IKEv1 captures: field checks against the source projects', () => {
  it('suricata-verify ikev1-rules: cookies, nonces, KE values, chosen attributes, vendor ID', () => {
    const all = decodeAll('suricata-ikev1-isakmp-main-mode.pcap').map((x) => x.msg);
    for (const m of all) {
      assert.ok([V1ExchangeType.IDENTITY_PROTECTION, V1ExchangeType.QUICK].includes(m.header.exchangeType as 2 | 32));
      assert.equal(hex(m.header.cookieI), 'e47a591fd057587f');
    }
    assert.equal(hex(all[1]!.header.cookieR), 'a00b8ef0902bb8ec');
    const [m1, m2, m3, m4] = all.slice(0, 4).map(plainPayloads) as [V1Payload[], V1Payload[], V1Payload[], V1Payload[]];
    for (const [i, p] of [m1, m2, m3, m4].entries()) checkV1Message(V1ExchangeType.IDENTITY_PROTECTION, i + 1, false, p);
    assert.deepEqual(phase1Attributes(must(chosenSa(m2)[0], 'transform')), {
      encryption: V1EncryptionAlg.AES_CBC, keyLength: 128, hash: V1HashAlg.SHA, group: V1Group.MODP_1024,
      authMethod: V1AuthMethod.PRE_SHARED_KEY, life: { seconds: 86400 },
    });
    assert.ok(findV1Payloads(m2, P.VID).some((v) => hex(v.data) === '4a131c81070358455c5728f20e95452f'));
    assert.equal(hex(must(findV1Payload(m3, P.NONCE), 'Ni').data), '89d7c8fbf94b515b521d5d9589c2602021e1a709');
    assert.equal(hex(must(findV1Payload(m4, P.NONCE), 'Nr').data), '15b688421ed5c3dd92d3b86e47a76f0d39cc09e0');
    // test.rules quotes both KE payloads in full.
    assert.equal(hex(must(findV1Payload(m3, P.KE), 'KEi').data), KE_CLIENT);
    assert.equal(hex(must(findV1Payload(m4, P.KE), 'KEr').data), KE_SERVER);
    assert.equal(findV1Payloads(m3, P.NAT_D).length, 2);
    for (const m of all.slice(4)) {
      assert.ok(m.encrypted);
      assert.equal(m.firstPayload, m.header.exchangeType === V1ExchangeType.QUICK ? P.HASH : P.ID);
    }
  });

  it('suricata-verify ikev1-duplicate-proposals: decodes, but a second Life Duration without a Life Type is refused', () => {
    const [only] = decodeAll('suricata-ikev1-duplicate-proposals.pcap');
    const t = must(chosenSa(plainPayloads(must(only, 'message').msg))[0], 'transform');
    assert.deepEqual(t.attributes.filter((a) => a.type === 12).map((a) => (typeof a.value === 'number' ? a.value : hex(a.value))), ['00015180', '0000ffff']);
    assert.throws(() => phase1Attributes(t), (e: unknown) => e instanceof MalformedError && /life duration without a life type/.test(e.message));
  });

  it("tcpdump ISAKMP_sa_setup (isakmp5-v.out): MM1's transform, MM3's payload sizes and the pre-RFC NAT-D numbers", () => {
    const all = decodeAll('tcpdump-ISAKMP_sa_setup.pcap').map((x) => x.msg);
    const m1 = plainPayloads(all[0]!);
    assert.deepEqual(phase1Attributes(must(chosenSa(m1)[0], 'transform')), {
      encryption: V1EncryptionAlg.AES_CBC, keyLength: 128, hash: V1HashAlg.SHA, group: V1Group.MODP_768,
      authMethod: V1AuthMethod.PRE_SHARED_KEY, life: { seconds: 86400 },
    });
    assert.equal(findV1Payloads(m1, P.VID).length, 3);
    const m3 = plainPayloads(all[2]!);
    assert.equal(must(findV1Payload(m3, P.KE), 'KE').data.length, 96);
    assert.equal(must(findV1Payload(m3, P.NONCE), 'Nonce').data.length, 20);
    assert.deepEqual(findV1Payloads(m3, P.VID).map((v) => v.data.length), [16, 16, 16, 8]);
    assert.deepEqual(findV1Payloads(m3, 'unknown').map((u) => u.rawType), [15, 15]);
    // Type 15 is not NAT-D in any published numbering styx accepts, so the rules refuse the message.
    assert.throws(() => checkV1Message(V1ExchangeType.IDENTITY_PROTECTION, 3, false, m3), /unexpected payload type 15/);
    const qm = all.filter((m) => m.header.exchangeType === V1ExchangeType.QUICK);
    assert.equal(qm.length, 3);
    for (const m of qm) assert.equal(m.header.messageId, 0x0f2b7862);
  });

  it('tcpdump isakmp4500: four offered transforms, NAT-D in messages 3/4, then encrypted traffic on 4500', () => {
    const all = decodeAll('tcpdump-isakmp4500.pcap').map((x) => x.msg);
    const m1 = plainPayloads(all[0]!);
    const sa = must(findV1Payload(m1, P.SA), 'SA') as V1SaPayload;
    assert.deepEqual(sa.proposals[0]!.transforms.map((t) => [t.num, phase1Attributes(t).hash, phase1Attributes(t).group]), [[0, 1, 5], [1, 2, 5], [2, 2, 2], [3, 1, 2]]);
    assert.ok(findV1Payloads(m1, P.VID).map((v) => vendorIdName(v.data)).includes('NAT_T_RFC3947'));
    for (const i of [2, 3]) {
      const p = plainPayloads(all[i]!);
      assert.equal(findV1Payloads(p, P.NAT_D).length, 2);
      checkV1Message(V1ExchangeType.IDENTITY_PROTECTION, i + 1, false, p);
    }
    assert.ok(all.slice(4).every((m) => m.encrypted));
    assert.ok(all.some((m) => m.header.exchangeType === V1ExchangeType.INFORMATIONAL));
  });
});
