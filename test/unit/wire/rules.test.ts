/** Exchange payload rules (rules.ts) and the helpers the IKE layer uses. */
import assert from 'node:assert/strict';
import {
  ExchangeType, NotifyType, PayloadType, ProtocolId, checkExchangePayloads, decodeMessage, decodePayloadChain,
  describe as describeMsg, findNotify, findNotifies, findPayload, findPayloads, notify, unsupportedCritical,
} from '../../../src/wire/ikev2/index.js';
import type { Payload, SkPayload } from '../../../src/wire/ikev2/index.js';
import { MalformedError, UnsupportedError, fromHex } from '../../../src/util/index.js';
import { fixture, messages, pcapUdpPayloads, unpad } from './fixtures.js';

const { IKE_SA_INIT: INIT, IKE_AUTH: AUTH, CREATE_CHILD_SA: CHILD, INFORMATIONAL: INFO } = ExchangeType;
const P = PayloadType;
const sa: Payload = { type: P.SA, critical: false, proposals: [{ num: 1, protocol: ProtocolId.ESP, spi: fromHex('01020304'), transforms: [{ type: 1, id: 12 }] }] };
const ke: Payload = { type: P.KE, critical: false, group: 14, data: Buffer.alloc(256) };
const nonce: Payload = { type: P.NONCE, critical: false, data: Buffer.alloc(32) };
const idi: Payload = { type: P.IDi, critical: false, idType: 2, data: Buffer.from('a') };
const idr: Payload = { type: P.IDr, critical: false, idType: 2, data: Buffer.from('b') };
const auth: Payload = { type: P.AUTH, critical: false, method: 2, data: Buffer.alloc(20) };
const eap: Payload = { type: P.EAP, critical: false, data: fromHex('01010005 01') };
const ts = (type: typeof P.TSi | typeof P.TSr): Payload => ({ type, critical: false, selectors: [
  { tsType: 7, ipProtocol: 0, startPort: 0, endPort: 65535, startAddr: Buffer.alloc(4), endAddr: Buffer.alloc(4, 255) }] });
const tsi = ts(P.TSi), tsr = ts(P.TSr);
const del: Payload = { type: P.DELETE, critical: false, protocol: 1, spiSize: 0, spis: [] };
const vid: Payload = { type: P.VENDOR_ID, critical: false, data: Buffer.from('x') };
const skp: SkPayload = { type: P.SK, critical: false, innerFirst: 0, body: Buffer.alloc(16) };

const ok = (x: number, resp: boolean, ps: Payload[], inner?: Payload[]): void => checkExchangePayloads(x, resp, ps, inner);
const bad = (x: number, resp: boolean, ps: Payload[], re: RegExp, inner?: Payload[]): void => {
  assert.throws(() => checkExchangePayloads(x, resp, ps, inner), (e: unknown) => e instanceof MalformedError && re.test(e.message));
};

describe('wire/ikev2 rules', () => {
  it('accepts the real messages in the fixtures', () => {
    const v = messages()['rub-nds'];
    const m1 = decodeMessage(fromHex(v['m1_ike_sa_init_req']!));
    ok(INIT, false, m1.payloads);
    ok(INIT, true, decodeMessage(fromHex(v['m2_ike_sa_init_resp']!)).payloads);
    for (const [k, pk, resp] of [['m3_ike_auth_req', 'm3_decrypted', false], ['m4_ike_auth_resp', 'm4_decrypted', true]] as const) {
      const m = decodeMessage(fromHex(v[k]!));
      const s = m.payloads[0] as SkPayload;
      const inner = decodePayloadChain(s.innerFirst, unpad(fromHex(v[pk]!)));
      ok(AUTH, resp, m.payloads, inner);
      ok(AUTH, resp, inner);
    }
    const four = pcapUdpPayloads(fixture('wire', 'ikev2four.pcap')).map((b) => decodeMessage(b));
    ok(INIT, false, four[0]!.payloads);
    ok(INIT, true, four[1]!.payloads); // only N(COOKIE)
    ok(INIT, false, four[2]!.payloads); // N(COOKIE) first
    ok(INIT, true, four[3]!.payloads);
    const w = messages()['wireshark-wiki'];
    const wm = decodeMessage(fromHex(w.ike_message));
    ok(AUTH, false, wm.payloads, decodePayloadChain((wm.payloads[0] as SkPayload).innerFirst, unpad(fromHex(w.plaintext))));
  });

  it('IKE_SA_INIT (RFC 7296 1.2)', () => {
    ok(INIT, false, [sa, ke, nonce, notify(NotifyType.NAT_DETECTION_SOURCE_IP), vid, vid]);
    bad(INIT, false, [sa, nonce], /malformed IKE_SA_INIT request: missing KE payload/);
    bad(INIT, false, [sa, ke, nonce, nonce], /2 Nonce payloads, at most 1/);
    bad(INIT, false, [sa, ke, nonce, idi], /unexpected IDi payload/);
    bad(INIT, false, [sa, ke, nonce, skp], /encrypted payload before any keys/, []);
    ok(INIT, true, [notify(NotifyType.INVALID_KE_PAYLOAD, fromHex('000e'))]);
    ok(INIT, true, [notify(NotifyType.NO_PROPOSAL_CHOSEN)]);
    ok(INIT, true, [notify(NotifyType.COOKIE, Buffer.alloc(16))]);
    ok(INIT, true, [sa, ke, nonce, { type: P.CERTREQ, critical: false, encoding: 4, data: Buffer.alloc(20) }]);
    bad(INIT, true, [notify(NotifyType.NAT_DETECTION_SOURCE_IP)], /IKE_SA_INIT response: missing SA/);
    // Unknown payloads are not the rules' business (unsupportedCritical handles critical ones).
    ok(INIT, false, [sa, ke, nonce, { type: 'unknown', rawType: 99, critical: false, data: Buffer.alloc(0) }]);
  });

  it('IKE_AUTH (RFC 7296 1.2, 2.16; RFC 6023)', () => {
    ok(AUTH, false, [idi, auth, sa, tsi, tsr]);
    ok(AUTH, false, [idi, sa, tsi, tsr]); // EAP: no AUTH in the first request
    ok(AUTH, false, [eap]);
    ok(AUTH, false, [auth]);
    ok(AUTH, false, [idi, auth]); // childless
    ok(AUTH, true, [idr, auth, eap]);
    ok(AUTH, true, [notify(NotifyType.AUTHENTICATION_FAILED)]);
    ok(AUTH, true, [idr, auth, notify(NotifyType.TS_UNACCEPTABLE)]);
    bad(AUTH, false, [idi, auth, sa, tsi], /malformed IKE_AUTH request: SA, TSi without TSr/);
    bad(AUTH, false, [sa, tsi, tsr], /needs at least one of IDi, AUTH, EAP/);
    bad(AUTH, false, [idi, idi, auth], /2 IDi payloads/);
    bad(AUTH, true, [idr, auth, ke], /unexpected KE/);
    // With the outer chain given, content must be inside SK.
    ok(AUTH, false, [notify(NotifyType.INITIAL_CONTACT), skp], [idi, auth]);
    bad(AUTH, false, [idi, skp], /IDi must be inside SK/, [auth]);
    bad(AUTH, false, [idi, auth], /missing SK payload/, []);
    assert.throws(() => checkExchangePayloads(AUTH, false, [skp]), /pass the decrypted SK contents/);
  });

  it('CREATE_CHILD_SA and INFORMATIONAL (RFC 7296 1.3, 1.4)', () => {
    ok(CHILD, false, [notify(NotifyType.REKEY_SA), sa, nonce, ke, tsi, tsr]);
    ok(CHILD, false, [sa, nonce, ke]); // IKE SA rekey
    bad(CHILD, false, [sa, ke, tsi, tsr], /CREATE_CHILD_SA request: missing Nonce/);
    bad(CHILD, false, [sa, nonce, tsi], /TSi without TSr/);
    ok(CHILD, true, [notify(NotifyType.NO_ADDITIONAL_SAS)]);
    bad(CHILD, true, [nonce], /missing SA/);
    ok(INFO, false, []);
    ok(INFO, false, [del, del, notify(16384)]);
    ok(INFO, true, []);
    bad(INFO, true, [sa], /INFORMATIONAL response: unexpected SA/);
    assert.throws(() => checkExchangePayloads(43, false, []), UnsupportedError);
  });
});

describe('wire/ikev2 helpers', () => {
  const ps: Payload[] = [idi, notify(NotifyType.COOKIE, fromHex('01')), tsi, notify(NotifyType.COOKIE, fromHex('02')), idr,
    { type: 'unknown', rawType: 60, critical: false, data: Buffer.alloc(0) }, { type: 'unknown', rawType: 61, critical: true, data: Buffer.alloc(0) }];

  it('findPayload / findPayloads are typed by discriminant', () => {
    const id = findPayload(ps, P.IDr);
    assert.equal(id?.data.toString(), 'b'); // .data exists only if the type narrowed to IdPayload
    assert.equal(findPayload(ps, P.IDi)?.data.toString(), 'a');
    assert.equal(findPayload(ps, P.KE), undefined);
    assert.deepEqual(findPayloads(ps, P.NOTIFY).map((n) => n.data.toString('hex')), ['01', '02']);
    assert.equal(findPayloads(ps, 'unknown')[0]?.rawType, 60);
    assert.equal(findNotify(ps, NotifyType.COOKIE)?.data.toString('hex'), '01');
    assert.equal(findNotifies(ps, NotifyType.COOKIE).length, 2);
    assert.equal(findNotify(ps, NotifyType.INITIAL_CONTACT), undefined);
  });

  it('unsupportedCritical returns the first unknown critical type (RFC 7296 2.5)', () => {
    assert.equal(unsupportedCritical(ps), 61);
    assert.equal(unsupportedCritical([{ ...sa, critical: true }, idi]), undefined); // known payloads are understood
  });

  it('notify() builds an IKE-SA notify by default', () => {
    assert.deepEqual(notify(NotifyType.INITIAL_CONTACT), { type: P.NOTIFY, critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: 16384, data: Buffer.alloc(0) });
    assert.deepEqual(notify(NotifyType.REKEY_SA, undefined, ProtocolId.ESP, fromHex('01020304')).spi, fromHex('01020304'));
  });

  it('describe() prints one line', () => {
    const m = decodeMessage(pcapUdpPayloads(fixture('wire', 'ikev2four.pcap'))[1]!);
    assert.equal(describeMsg(m), 'IKE_SA_INIT response 0 [ N(COOKIE) ]');
    assert.equal(describeMsg({ header: { ...m.header, exchangeType: 99, flags: { ...m.header.flags, response: false } }, payloads: [...ps, del, eap] }),
      'EXCHANGE(99) request 0 [ IDi N(COOKIE) TSi N(COOKIE) IDr U(60) U(61,critical) D EAP ]');
    assert.equal(describeMsg({ header: m.header, payloads: [] }), 'IKE_SA_INIT response 0 [ ]');
  });
});
