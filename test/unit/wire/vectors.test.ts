/**
 * Real IKEv2 messages captured from other implementations: decode them,
 * check fields against values stated by the capture's own tooling (tcpdump's
 * dissection, the recording's JSON), and re-encode to identical bytes.
 */
import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import {
  AuthMethod, DhId, EncrId, ExchangeType, IdType, IntegId, NotifyType, PayloadType, PrfId, ProtocolId, TransformType, TsType,
  decodeMessage, decodePayloadChain, describe as describeMsg, encodeMessage, encodePayloadChain, findNotify, findPayload,
} from '../../../src/wire/ikev2/index.js';
import type { IkeMessage, Payload, Proposal, SkPayload } from '../../../src/wire/ikev2/index.js';
import { fromHex } from '../../../src/util/index.js';
import { fixture, messages, pcapUdpPayloads, unpad } from './fixtures.js';

function roundTrip(buf: Buffer): IkeMessage {
  const m = decodeMessage(buf);
  assert.deepEqual(encodeMessage(m.header, m.payloads), buf, 're-encoding changed the bytes');
  return m;
}
function chainRoundTrip(first: number, plain: Buffer): Payload[] {
  const inner = decodePayloadChain(first, plain);
  const enc = encodePayloadChain(inner);
  assert.equal(enc.firstType, first);
  assert.deepEqual(enc.bytes, plain);
  return inner;
}
const transformIds = (p: Proposal, type: number): number[] => p.transforms.filter((t) => t.type === type).map((t) => t.id);
function sk(m: IkeMessage): SkPayload {
  const last = m.payloads[m.payloads.length - 1];
  assert.ok(last !== undefined && last.type === PayloadType.SK, 'last payload is SK');
  return last;
}

describe('wire/ikev2 known messages', () => {
  describe('RUB-NDS recorded PSK handshake', () => {
    const v = messages()['rub-nds'];
    const hexOf = (k: string): Buffer => fromHex(v[k]!);

    it('IKE_SA_INIT request', () => {
      const m = roundTrip(hexOf('m1_ike_sa_init_req'));
      assert.deepEqual(m.header.spiI, hexOf('SPIi'));
      assert.deepEqual(m.header.spiR, Buffer.alloc(8));
      assert.equal(m.header.exchangeType, ExchangeType.IKE_SA_INIT);
      assert.deepEqual(m.header.flags, { initiator: true, response: false, version: false });
      assert.equal(m.header.messageId, 0);
      assert.deepEqual(m.payloads.map((p) => p.type), [PayloadType.SA, PayloadType.KE, PayloadType.NONCE]);
      const sa = findPayload(m.payloads, PayloadType.SA)!;
      assert.equal(sa.proposals.length, 1);
      const p = sa.proposals[0]!;
      assert.equal(p.num, 1);
      assert.equal(p.protocol, ProtocolId.IKE);
      assert.equal(p.spi.length, 0);
      assert.deepEqual(transformIds(p, TransformType.ENCR), [EncrId.ENCR_AES_CBC]);
      assert.equal(p.transforms.find((t) => t.type === TransformType.ENCR)!.keyLength, 128);
      assert.deepEqual(transformIds(p, TransformType.PRF), [PrfId.PRF_HMAC_SHA1]);
      assert.deepEqual(transformIds(p, TransformType.INTEG), [IntegId.AUTH_HMAC_SHA1_96]);
      assert.deepEqual(transformIds(p, TransformType.DH), [DhId.MODP_1024]);
      const ke = findPayload(m.payloads, PayloadType.KE)!;
      assert.equal(ke.group, DhId.MODP_1024);
      assert.deepEqual(ke.data, hexOf('g_i'));
      assert.deepEqual(findPayload(m.payloads, PayloadType.NONCE)!.data, hexOf('Ni'));
      assert.equal(describeMsg(m), 'IKE_SA_INIT request 0 [ SA KE No ]');
    });

    it('IKE_SA_INIT response', () => {
      const m = roundTrip(hexOf('m2_ike_sa_init_resp'));
      assert.deepEqual(m.header.spiR, hexOf('SPIr'));
      assert.deepEqual(m.header.flags, { initiator: false, response: true, version: false });
      assert.deepEqual(findPayload(m.payloads, PayloadType.KE)!.data, hexOf('g_r'));
      const nonce = findPayload(m.payloads, PayloadType.NONCE)!;
      assert.equal(nonce.data.length, 32);
      assert.deepEqual(nonce.data, hexOf('Nr'));
      assert.ok(findNotify(m.payloads, NotifyType.MULTIPLE_AUTH_SUPPORTED));
    });

    for (const [msgKey, plainKey, idHex, tsi, tsr] of [
      ['m3_ike_auth_req', 'm3_decrypted', '0a000301', ['00000000', 'ffffffff'], ['00000000', 'ffffffff']],
      ['m4_ike_auth_resp', 'm4_decrypted', '0a00030a', ['0a000100', '0a0001ff'], ['0a000200', '0a0002ff']],
    ] as const) {
      it(`IKE_AUTH ${msgKey.endsWith('req') ? 'request' : 'response'}: SK outer and decrypted inner chain`, () => {
        const buf = hexOf(msgKey);
        const m = roundTrip(buf);
        assert.equal(m.header.exchangeType, ExchangeType.IKE_AUTH);
        assert.equal(m.header.messageId, 1);
        assert.equal(m.payloads.length, 1);
        const s = sk(m);
        const idType = msgKey.startsWith('m3') ? PayloadType.IDi : PayloadType.IDr;
        assert.equal(s.innerFirst, idType);
        // The AAD is the header plus the SK generic header; the body runs to the end.
        assert.deepEqual(s.aad, buf.subarray(0, 32));
        assert.deepEqual(s.body, buf.subarray(32));

        const inner = chainRoundTrip(s.innerFirst, unpad(hexOf(plainKey)));
        assert.deepEqual(inner.map((p) => p.type), [idType, PayloadType.AUTH, PayloadType.SA, PayloadType.TSi, PayloadType.TSr]);
        const id = findPayload(inner, idType)!;
        assert.equal(id.idType, IdType.ID_IPV4_ADDR);
        assert.deepEqual(id.data, fromHex(idHex));
        const auth = findPayload(inner, PayloadType.AUTH)!;
        assert.equal(auth.method, AuthMethod.SHARED_KEY_MIC);
        assert.equal(auth.data.length, 20); // prf output of HMAC-SHA1
        const esp = findPayload(inner, PayloadType.SA)!.proposals[0]!;
        assert.equal(esp.protocol, ProtocolId.ESP);
        assert.equal(esp.spi.toString('hex'), msgKey.startsWith('m3') ? '2a85e115' : 'c2c80c11');
        assert.deepEqual(esp.transforms.map((t) => t.type), [TransformType.ENCR, TransformType.INTEG, TransformType.ESN]);
        for (const [type, range] of [[PayloadType.TSi, tsi], [PayloadType.TSr, tsr]] as const) {
          const sel = findPayload(inner, type)!.selectors;
          assert.equal(sel.length, 1);
          assert.equal(sel[0]!.tsType, TsType.TS_IPV4_ADDR_RANGE);
          assert.equal(sel[0]!.ipProtocol, 0);
          assert.deepEqual([sel[0]!.startPort, sel[0]!.endPort], [0, 65535]);
          assert.deepEqual([sel[0]!.startAddr.toString('hex'), sel[0]!.endAddr.toString('hex')], range);
        }
      });
    }
  });

  describe('tcpdump ikev2four.pcap', () => {
    const pkts = pcapUdpPayloads(fixture('wire', 'ikev2four.pcap'));
    // From tcpdump's ikev2four.out: exchange, initiator flag ([I]/[R]), message ID, SK body length ("v2e: len").
    const I = ExchangeType.IKE_SA_INIT, A = ExchangeType.IKE_AUTH, C = ExchangeType.CREATE_CHILD_SA, N = ExchangeType.INFORMATIONAL;
    const expected: [number, boolean, number, number | undefined][] = [
      [I, true, 0, undefined], [I, false, 0, undefined], [I, true, 0, undefined], [I, false, 0, undefined],
      [A, true, 1, 204], [A, false, 1, 124], [C, true, 2, 220], [C, true, 3, 188], [C, false, 2, 44], [C, false, 3, 44],
      [C, true, 4, 252], [C, true, 5, 220], [C, false, 4, 172], [C, false, 5, 172], [C, true, 6, 252], [C, true, 7, 220],
      [C, false, 6, 172], [C, false, 7, 172], [C, true, 8, 332], [C, false, 8, 284], [N, true, 0, 60],
    ];

    it('every packet decodes, matches tcpdump and re-encodes identically', () => {
      assert.equal(pkts.length, expected.length);
      pkts.forEach((buf, i) => {
        const m = roundTrip(buf);
        const [x, init, mid, skLen] = expected[i]!;
        assert.equal(m.header.exchangeType, x, `packet ${i + 1}`);
        assert.equal(m.header.flags.initiator, init, `packet ${i + 1}`);
        assert.equal(m.header.messageId, mid, `packet ${i + 1}`);
        if (skLen !== undefined) assert.equal(sk(m).body.length, skLen, `packet ${i + 1}`);
        else assert.ok(!m.payloads.some((p) => p.type === PayloadType.SK));
      });
    });

    it('IKE_SA_INIT with twelve transforms and key lengths', () => {
      const m = decodeMessage(pkts[0]!);
      const p = findPayload(m.payloads, PayloadType.SA)!.proposals[0]!;
      assert.equal(p.transforms.length, 12);
      assert.deepEqual(p.transforms.slice(0, 4).map((t) => [t.id, t.keyLength]),
        [[EncrId.ENCR_AES_CBC, 128], [EncrId.ENCR_AES_CBC, 256], [EncrId.ENCR_AES_CBC, 192], [EncrId.ENCR_3DES, undefined]]);
      assert.deepEqual(transformIds(p, TransformType.PRF), [PrfId.PRF_HMAC_SHA1, PrfId.PRF_HMAC_MD5, 4]);
      assert.deepEqual(transformIds(p, TransformType.DH), [DhId.MODP_1024, DhId.MODP_2048]);
      assert.equal(findPayload(m.payloads, PayloadType.KE)!.data.length, 128);
      assert.equal(findPayload(m.payloads, PayloadType.NONCE)!.data.subarray(0, 10).toString('hex'), '6128ebd023a864e94a7f');
      assert.equal(describeMsg(m), 'IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]');
    });

    it('COOKIE round trip (RFC 7296 2.6)', () => {
      const resp = decodeMessage(pkts[1]!);
      assert.equal(resp.payloads.length, 1);
      const cookie = findNotify(resp.payloads, NotifyType.COOKIE)!;
      assert.equal(cookie.data.toString('hex'), '00000001c2221e50c16e123f2b0c71aefcf0cb3b798782c6');
      assert.equal(cookie.spi.length, 0);
      const retry = decodeMessage(pkts[2]!);
      const first = retry.payloads[0]!;
      assert.ok(first.type === PayloadType.NOTIFY && first.notifyType === NotifyType.COOKIE);
      assert.deepEqual(first.data, cookie.data);
    });
  });

  describe('tcpdump ikev2pI2.pcap (libreswan, critical bits set)', () => {
    const pkts = pcapUdpPayloads(fixture('wire', 'ikev2pI2.pcap'));

    it('keeps the critical bit on known payloads and round-trips', () => {
      const m = roundTrip(pkts[0]!);
      assert.deepEqual(m.header.spiI, fromHex('0001020304050607'));
      assert.deepEqual(m.payloads.map((p) => [p.type, p.critical]),
        [[PayloadType.SA, true], [PayloadType.KE, false], [PayloadType.NONCE, true], [PayloadType.VENDOR_ID, false]]);
      const sa = findPayload(m.payloads, PayloadType.SA)!;
      assert.deepEqual(sa.proposals.map((p) => p.num), [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(sa.proposals.map((p) => transformIds(p, TransformType.DH)[0]), [5, 5, 5, 5, 2, 2]);
      assert.equal(findPayload(m.payloads, PayloadType.KE)!.group, 5);
      assert.equal(findPayload(m.payloads, PayloadType.NONCE)!.data.toString('hex'), 'b5ce8419095c6e2b6b62d3055305b3c4');
      assert.equal(findPayload(m.payloads, PayloadType.VENDOR_ID)!.data.toString('latin1'), 'OErlA\\nQukSR');
    });

    it('IKE_AUTH decrypts (AES-128-CBC, key from tcpdump) to IDi fqdn:west + AUTH', () => {
      const m = roundTrip(pkts[1]!);
      assert.deepEqual(m.header.spiR, fromHex('c02e7a3031a03188'));
      const s = sk(m);
      assert.ok(s.critical);
      assert.equal(s.innerFirst, PayloadType.IDi);
      const iv = s.body.subarray(0, 16);
      const ct = s.body.subarray(16, s.body.length - 12); // HMAC-SHA1-96 ICV
      const d = createDecipheriv('aes-128-cbc', fromHex('3f44bf47cafd8150591deb088199fcbf'), iv).setAutoPadding(false);
      const inner = chainRoundTrip(s.innerFirst, unpad(Buffer.concat([d.update(ct), d.final()])));
      const id = findPayload(inner, PayloadType.IDi)!;
      assert.equal(id.idType, IdType.ID_FQDN);
      assert.equal(id.data.toString(), 'west');
      const auth = findPayload(inner, PayloadType.AUTH)!;
      assert.equal(auth.method, AuthMethod.RSA_SIG);
      assert.equal(auth.data.length, 196 - 4);
      assert.equal(describeMsg(m, inner), 'IKE_AUTH request 0 [ IDi AUTH ]');
    });
  });

  describe('Wireshark captures', () => {
    it('AES-CCM frames: SA_INIT pair, encrypted Delete and empty INFORMATIONAL', () => {
      const frames = messages()['wireshark-ccm'];
      const ms = frames.map((f) => roundTrip(fromHex(f.ike_message)));
      assert.deepEqual(ms[0]!.header.spiI, fromHex('ea684d21597afd36'));
      const prop = findPayload(ms[0]!.payloads, PayloadType.SA)!.proposals[0]!;
      assert.deepEqual(transformIds(prop, TransformType.ENCR), [15]); // ENCR_AES_CCM_12 (IANA)
      assert.deepEqual(transformIds(prop, TransformType.DH), [DhId.ECP_256]);
      assert.deepEqual(findNotify(ms[0]!.payloads, NotifyType.SIGNATURE_HASH_ALGORITHMS)!.data, fromHex('0001000200030004'));
      assert.equal(ms[1]!.header.flags.response, true);
      const del = decodePayloadChain(sk(ms[2]!).innerFirst, unpad(fromHex(frames[2]!.plaintext!)));
      assert.equal(del.length, 1);
      const d = findPayload(del, PayloadType.DELETE)!;
      assert.equal(d.protocol, ProtocolId.IKE);
      assert.deepEqual(d.spis, []);
      assert.equal(sk(ms[3]!).innerFirst, PayloadType.NONE);
      assert.deepEqual(decodePayloadChain(sk(ms[3]!).innerFirst, unpad(fromHex(frames[3]!.plaintext!))), []);
      assert.equal(describeMsg(ms[2]!, del), 'INFORMATIONAL request 2 [ D ]');
    });

    it('NCP client IKE_AUTH: CERT, CERTREQ, CP, Vendor IDs inside SK', () => {
      const f = messages()['wireshark-wiki'];
      const m = roundTrip(fromHex(f.ike_message));
      const inner = chainRoundTrip(sk(m).innerFirst, unpad(fromHex(f.plaintext)));
      assert.equal(describeMsg(m, inner), 'IKE_AUTH request 1 [ IDi CERT N(INITIAL_CONTACT) N(HTTP_CERT_LOOKUP_SUPPORTED) '
        + 'CERTREQ AUTH CP(REQ) SA TSi TSr V V V N(MOBIKE_SUPPORTED) N(MULTIPLE_AUTH_SUPPORTED) ]');
      const id = findPayload(inner, PayloadType.IDi)!;
      assert.equal(id.idType, IdType.ID_RFC822_ADDR);
      assert.equal(id.data.toString(), 'ikev2-cert');
      const cert = findPayload(inner, PayloadType.CERT)!;
      assert.equal(cert.encoding, 4);
      assert.equal(cert.data[0], 0x30); // DER SEQUENCE
      const cp = findPayload(inner, PayloadType.CP)!;
      assert.ok(cp.attributes.length > 0);
    });
  });
});
