/**
 * Every payload type built by hand and round-tripped, hex written by hand
 * from the RFC diagrams (not from the encoder), and the structural checks.
 */
import assert from 'node:assert/strict';
import {
  CfgType, ExchangeType, NotifyType, PayloadType, ProtocolId, TransformType, TsType,
  decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain, notify,
} from '../../../src/wire/ikev2/index.js';
import type { HeaderInit, Payload } from '../../../src/wire/ikev2/index.js';
import { MalformedError, TruncatedError, fromHex } from '../../../src/util/index.js';

const b = (h: string): Buffer => fromHex(h);
const hdr: HeaderInit = {
  spiI: b('0102030405060708'), spiR: b('1112131415161718'), exchangeType: ExchangeType.INFORMATIONAL,
  flags: { initiator: true, response: false, version: false }, messageId: 7,
};

/** One of each payload type that can sit in a plaintext chain. */
const everyPayload: Payload[] = [
  {
    type: PayloadType.SA, critical: false, proposals: [
      { num: 1, protocol: ProtocolId.IKE, spi: Buffer.alloc(0), transforms: [
        { type: TransformType.ENCR, id: 20, keyLength: 256 },
        { type: TransformType.PRF, id: 7 },
        { type: TransformType.DH, id: 31, attributes: [{ type: 100, value: 7 }, { type: 101, value: b('cafe') }] },
      ] },
      { num: 2, protocol: ProtocolId.ESP, spi: b('deadbeef'), transforms: [{ type: TransformType.ESN, id: 0 }] },
      { num: 3, protocol: ProtocolId.IKE, spi: b('0102030405060708'), transforms: [{ type: 9, id: 1 }] },
    ],
  },
  { type: PayloadType.KE, critical: false, group: 31, data: Buffer.alloc(32, 9) },
  { type: PayloadType.IDi, critical: false, idType: 2, data: Buffer.from('styx.example') },
  { type: PayloadType.IDr, critical: false, idType: 1, data: b('c0000201') },
  { type: PayloadType.CERT, critical: false, encoding: 4, data: b('3003020101') },
  { type: PayloadType.CERTREQ, critical: false, encoding: 4, data: Buffer.alloc(0) },
  { type: PayloadType.AUTH, critical: false, method: 2, data: Buffer.alloc(20, 1) },
  { type: PayloadType.NONCE, critical: true, data: Buffer.alloc(16, 2) },
  notify(NotifyType.REKEY_SA, undefined, ProtocolId.ESP, b('01020304')),
  notify(NotifyType.COOKIE, b('00112233')),
  { type: PayloadType.DELETE, critical: false, protocol: ProtocolId.ESP, spiSize: 4, spis: [b('aabbccdd'), b('00000001')] },
  { type: PayloadType.DELETE, critical: false, protocol: ProtocolId.IKE, spiSize: 0, spis: [] },
  { type: PayloadType.VENDOR_ID, critical: false, data: Buffer.from('styx') },
  { type: PayloadType.TSi, critical: false, selectors: [
    { tsType: TsType.TS_IPV4_ADDR_RANGE, ipProtocol: 6, startPort: 80, endPort: 443, startAddr: b('0a000000'), endAddr: b('0a0000ff') },
    { tsType: TsType.TS_IPV6_ADDR_RANGE, ipProtocol: 0, startPort: 0, endPort: 65535,
      startAddr: b('20010db8000000000000000000000000'), endAddr: b('20010db8ffffffffffffffffffffffff') },
  ] },
  { type: PayloadType.TSr, critical: false, selectors: [
    { tsType: TsType.TS_IPV4_ADDR_RANGE, ipProtocol: 0, startPort: 65535, endPort: 0, startAddr: b('00000000'), endAddr: b('ffffffff') },
  ] },
  { type: PayloadType.CP, critical: false, cfgType: CfgType.CFG_REPLY, attributes: [{ type: 1, value: b('0a000001') }, { type: 3, value: Buffer.alloc(0) }] },
  { type: PayloadType.EAP, critical: false, data: b('0101000501') },
  { type: 'unknown', rawType: 200, critical: true, data: b('010203') },
  { type: 'unknown', rawType: 12, critical: false, data: Buffer.alloc(0) },
];

describe('wire/ikev2 payloads', () => {
  it('round-trips every payload type through a chain and a message', () => {
    const { firstType, bytes } = encodePayloadChain(everyPayload);
    assert.equal(firstType, PayloadType.SA);
    assert.deepEqual(decodePayloadChain(firstType, bytes), everyPayload);
    const msg = encodeMessage(hdr, everyPayload);
    const back = decodeMessage(msg);
    assert.deepEqual(back.payloads, everyPayload);
    assert.equal(back.header.length, msg.length);
    assert.deepEqual(encodeMessage(back.header, back.payloads), msg);
  });

  it('round-trips SK and SKF as the last payload', () => {
    const skMsg = encodeMessage(hdr, [notify(NotifyType.INITIAL_CONTACT), { type: PayloadType.SK, critical: false, innerFirst: PayloadType.DELETE, body: b('00112233445566') }]);
    const m = decodeMessage(skMsg);
    const last = m.payloads[1]!;
    assert.ok(last.type === PayloadType.SK);
    assert.equal(last.innerFirst, PayloadType.DELETE);
    assert.deepEqual(last.body, b('00112233445566'));
    assert.deepEqual(last.aad, skMsg.subarray(0, skMsg.length - 7));
    const skfMsg = encodeMessage(hdr, [{ type: PayloadType.SKF, critical: false, innerFirst: 0, fragmentNumber: 2, totalFragments: 3, body: b('abcdef') }]);
    const f = decodeMessage(skfMsg).payloads[0]!;
    assert.ok(f.type === PayloadType.SKF);
    assert.deepEqual([f.fragmentNumber, f.totalFragments, f.innerFirst], [2, 3, 0]);
    assert.deepEqual(f.aad, skfMsg.subarray(0, 28 + 8));
    assert.throws(() => encodePayloadChain([{ type: PayloadType.SK, critical: false, innerFirst: 0, body: b('00') }, notify(1)]), /must be the last/);
  });

  describe('hex written from the RFC diagrams', () => {
    it('SA with a KEY_LENGTH TV attribute and an ESP proposal (3.3)', () => {
      const hex = [
        '00 00 0034', // generic: last payload, length 52
        '02 00 001c 01 01 00 02', // proposal 1: more follows, len 28, IKE, SPI size 0, 2 transforms
        '03 00 000c 01 00 0014 800e 0100', // ENCR 20 (AES-GCM-16), KEY_LENGTH 256
        '00 00 0008 04 00 001f', // DH 31, last
        '00 00 0014 02 03 04 01 aabbccdd', // proposal 2: last, len 20, ESP, SPI size 4, 1 transform, SPI
        '00 00 0008 05 00 0000', // ESN none
      ].join('');
      const [sa] = decodePayloadChain(PayloadType.SA, b(hex));
      assert.ok(sa !== undefined && sa.type === PayloadType.SA);
      assert.deepEqual(sa.proposals, [
        { num: 1, protocol: 1, spi: Buffer.alloc(0), transforms: [{ type: 1, id: 20, keyLength: 256 }, { type: 4, id: 31 }] },
        { num: 2, protocol: 3, spi: b('aabbccdd'), transforms: [{ type: 5, id: 0 }] },
      ]);
    });

    it('Notify with SPI, Delete with two SPIs, TS IPv6, CP, unknown critical (3.10, 3.11, 3.13, 3.15, 2.5)', () => {
      const hex = [
        '2a 00 000d 03 04 4009 01020304 00', // Notify: ESP, SPI size 4, REKEY_SA (16393), SPI, data 00 -> Delete
        '2c 00 0010 03 04 0002 aabbccdd 11223344', // Delete: ESP, 4, 2 SPIs -> TSi
        '2f 00 0030 01 000000 08 11 0028 0035 0035', // TSi: 1 selector, IPv6, UDP, len 40, port 53-53 -> CP
        '20010db8000000000000000000000001 20010db8000000000000000000000002',
        'c8 00 0014 01 000000 0001 0004 0a000001 8003 0000', // CP: REQUEST, attr 1 len 4, attr 3 (R bit set) len 0 -> 200
        '00 80 0006 beef', // unknown 200, critical, 2 bytes
      ].join('');
      const ps = decodePayloadChain(PayloadType.NOTIFY, b(hex));
      assert.deepEqual(ps, [
        { type: 41, critical: false, protocol: 3, spi: b('01020304'), notifyType: 16393, data: b('00') },
        { type: 42, critical: false, protocol: 3, spiSize: 4, spis: [b('aabbccdd'), b('11223344')] },
        { type: 44, critical: false, selectors: [{ tsType: 8, ipProtocol: 17, startPort: 53, endPort: 53,
          startAddr: b('20010db8000000000000000000000001'), endAddr: b('20010db8000000000000000000000002') }] },
        { type: 47, critical: false, cfgType: 1, attributes: [{ type: 1, value: b('0a000001') }, { type: 3, value: Buffer.alloc(0) }] },
        { type: 'unknown', rawType: 200, critical: true, data: b('beef') },
      ]);
    });

    it('header and SK from hand-written bytes (3.1, 3.14)', () => {
      const hex = '0102030405060708 0000000000000000 2e 20 25 20 00000003 00000024 00 00 0008 01020304';
      const m = decodeMessage(b(hex));
      assert.deepEqual(m.header, {
        spiI: b('0102030405060708'), spiR: Buffer.alloc(8), nextPayload: 46, majorVersion: 2, minorVersion: 0,
        exchangeType: 37, flags: { initiator: false, response: true, version: false }, messageId: 3, length: 36,
      });
      assert.deepEqual(m.payloads, [{ type: 46, critical: false, innerFirst: 0, body: b('01020304'), aad: b(hex).subarray(0, 32) }]);
    });
  });

  describe('structural checks', () => {
    const chain = (first: number, hex: string): Payload[] => decodePayloadChain(first, b(hex));
    const bad: [string, number, string, RegExp][] = [
      ['payload length < 4', PayloadType.NONCE, '00 00 0003', /malformed Nonce: payload length 3 < 4/],
      ['payload length past the end', PayloadType.NONCE, '00 00 0020 0000', /malformed Nonce: payload length 32 runs/],
      ['bytes after the last payload', PayloadType.VENDOR_ID, '00 00 0004 00', /malformed payload chain: 1 bytes after/],
      ['next payload with nothing left', PayloadType.VENDOR_ID, '29 00 0004', /malformed Notify: 0 bytes left/],
      ['short nonce', PayloadType.NONCE, '00 00 0013 ' + '00'.repeat(15), /malformed Nonce: nonce of 15 bytes/],
      ['long nonce', PayloadType.NONCE, '00 00 0105 ' + '00'.repeat(257), /nonce of 257 bytes/],
      ['KE without data', PayloadType.KE, '00 00 0008 0002 0000', /malformed KE: no key exchange data/],
      ['KE too short for its fields', PayloadType.KE, '00 00 0006 0002', /malformed KE: payload too short/],
      ['IPv4 ID of 3 bytes', PayloadType.IDi, '00 00 000b 01 000000 0a0000', /malformed IDi: ID_IPV4_ADDR of 3 bytes/],
      ['empty AUTH', PayloadType.AUTH, '00 00 0008 02 000000', /malformed AUTH: no authentication data/],
      ['empty CERT', PayloadType.CERT, '00 00 0005 04', /malformed CERT: no certificate data/],
      ['Notify SPI size 3', PayloadType.NOTIFY, '00 00 000b 03 03 4009 010203', /malformed Notify: SPI size 3/],
      ['Delete IKE with SPIs', PayloadType.DELETE, '00 00 000c 01 04 0001 01020304', /malformed Delete: IKE delete with SPI size 4/],
      ['Delete SPI count mismatch', PayloadType.DELETE, '00 00 000c 03 04 0002 01020304', /malformed Delete: 2 SPIs of 4 bytes need 8/],
      ['Delete protocol 0', PayloadType.DELETE, '00 00 0008 00 00 0000', /malformed Delete: protocol ID 0/],
      ['TS without selectors', PayloadType.TSi, '00 00 0008 00 000000', /malformed TSi: no traffic selectors/],
      ['unknown TS type', PayloadType.TSr, '00 00 0018 01 000000 09 00 0010 0000ffff 00000000 ffffffff', /malformed TSr selector 1: unknown TS type 9/],
      ['TS selector length wrong', PayloadType.TSi, '00 00 0018 01 000000 07 00 0011 0000ffff 00000000 ffffffff', /selector length 17, expected 16/],
      ['TS count larger than content', PayloadType.TSi, '00 00 0018 02 000000 07 00 0010 0000ffff 00000000 ffffffff', /announces 2 selectors but holds 1/],
      ['CP attribute past the end', PayloadType.CP, '00 00 000c 01 000000 0001 0008', /malformed CP: attribute 1 length 8 exceeds/],
      ['EAP shorter than its header', PayloadType.EAP, '00 00 0006 0301', /malformed EAP/],
      ['SA without proposals', PayloadType.SA, '00 00 0004', /malformed SA: no proposals/],
      ['proposal last flag 1', PayloadType.SA, '00 00 0014 01 00 0010 01 01 00 01 00 00 0008 01 00 000c', /last substruc 1, expected 0 or 2/],
      ['proposal says more, none follow', PayloadType.SA, '00 00 0014 02 00 0010 01 01 00 01 00 00 0008 01 00 000c', /announces more proposals but none follow/],
      ['proposal number 0', PayloadType.SA, '00 00 0014 00 00 0010 00 01 00 01 00 00 0008 01 00 000c', /proposal number 0/],
      ['proposal numbers skip', PayloadType.SA, '00 00 0024 02 00 0010 01 01 00 01 00 00 0008 01 00 000c 00 00 0010 03 01 00 01 00 00 0008 01 00 000c', /#3 follows #1/],
      ['ESP SPI size 8', PayloadType.SA, '00 00 001c 00 00 0018 01 03 08 01 0102030405060708 00 00 0008 01 00 000c', /SPI size 8 invalid for protocol 3/],
      ['IKE SPI size 4', PayloadType.SA, '00 00 0018 00 00 0014 01 01 04 01 01020304 00 00 0008 01 00 000c', /SPI size 4 invalid for protocol 1/],
      ['proposal without transforms', PayloadType.SA, '00 00 000c 00 00 0008 01 01 00 00', /no transforms/],
      ['transform count too high', PayloadType.SA, '00 00 0014 00 00 0010 01 01 00 02 00 00 0008 01 00 000c', /marked last but the transform count says more/],
      ['transform count too low', PayloadType.SA, '00 00 001c 00 00 0018 01 01 00 01 03 00 0008 01 00 000c 00 00 0008 02 00 0002', /marked "more" but it is the last/],
      ['transform last flag 2', PayloadType.SA, '00 00 0014 00 00 0010 01 01 00 01 02 00 0008 01 00 000c', /last substruc 2, expected 0 or 3/],
      ['transform length 7', PayloadType.SA, '00 00 0014 00 00 0010 01 01 00 01 00 00 0007 01 00 000c', /transform length 7 < 8/],
      ['transform type 0', PayloadType.SA, '00 00 0014 00 00 0010 01 01 00 01 00 00 0008 00 00 000c', /transform type 0 is reserved/],
      ['KEY_LENGTH as TLV', PayloadType.SA, '00 00 001a 00 00 0016 01 01 00 01 00 00 000e 01 00 000c 000e 0002 0080', /KEY_LENGTH attribute must use the TV format/],
      ['duplicate KEY_LENGTH', PayloadType.SA, '00 00 001c 00 00 0018 01 01 00 01 00 00 0010 01 00 000c 800e 0080 800e 0100', /duplicate KEY_LENGTH/],
      ['attribute past the transform', PayloadType.SA, '00 00 0016 00 00 0012 01 01 00 01 00 00 000a 01 00 000c 800e', /malformed SA: payload too short/],
      ['SK inside decrypted contents', PayloadType.SK, '00 00 0008 00000000', /encrypted payload inside an encrypted payload/],
    ];
    for (const [name, first, hex, re] of bad) {
      it(`rejects: ${name}`, () => {
        assert.throws(() => chain(first, hex), (e: unknown) => e instanceof MalformedError && re.test(e.message));
      });
    }

    it('SK must be last and non-empty; SKF numbering', () => {
      const h = (next: number, rest: string, len: number): Buffer =>
        b(`0102030405060708 0000000000000000 ${next.toString(16).padStart(2, '0')} 20 25 08 00000000 ${len.toString(16).padStart(8, '0')} ${rest}`);
      assert.throws(() => decodeMessage(h(46, '00 00 0004', 32)), /malformed SK: empty encrypted payload/);
      assert.throws(() => decodeMessage(h(46, '00 00 0005 00 00', 34)), /malformed SK: 1 bytes after the encrypted payload/);
      assert.throws(() => decodeMessage(h(53, '00 00 0009 0000 0001 00', 37)), /malformed SKF: fragment 0 of 1/);
      assert.throws(() => decodeMessage(h(53, '00 00 0009 0003 0002 00', 37)), /malformed SKF: fragment 3 of 2/);
      assert.throws(() => decodeMessage(h(53, '00 00 0008 0001 0001', 36)), /malformed SKF: payload length 8 leaves no encrypted content/);
      const ok = decodeMessage(h(53, '21 00 0009 0001 0002 ff', 37));
      assert.deepEqual(ok.payloads[0], { type: 53, critical: false, innerFirst: 33, fragmentNumber: 1, totalFragments: 2, body: b('ff'),
        aad: h(53, '21 00 0009 0001 0002 ff', 37).subarray(0, 36) });
    });

    it('reads past a truncated payload as TruncatedError only at the message level', () => {
      const msg = encodeMessage(hdr, [notify(NotifyType.INITIAL_CONTACT)]);
      assert.throws(() => decodeMessage(msg.subarray(0, msg.length - 1)), TruncatedError);
    });

    it('encoder refuses values that do not fit their fields', () => {
      assert.throws(() => encodePayloadChain([{ type: PayloadType.KE, critical: false, group: 70000, data: b('00') }]), /group 70000 does not fit 16 bits/);
      assert.throws(() => encodePayloadChain([{ type: PayloadType.VENDOR_ID, critical: false, data: Buffer.alloc(65532) }]), /payload length 65536/);
      assert.throws(() => encodePayloadChain([{ type: PayloadType.SA, critical: false, proposals: [] }]), /no proposals/);
      assert.throws(() => encodePayloadChain([{ type: PayloadType.TSi, critical: false, selectors: [
        { tsType: TsType.TS_IPV4_ADDR_RANGE, ipProtocol: 0, startPort: 0, endPort: 0, startAddr: b('00'), endAddr: b('00') }] }]), /4-byte addresses/);
      assert.throws(() => encodePayloadChain([{ type: PayloadType.SA, critical: false, proposals: [
        { num: 1, protocol: 1, spi: Buffer.alloc(0), transforms: [{ type: 1, id: 12, attributes: [{ type: 14, value: 128 }] }] }] }]), /KEY_LENGTH belongs in keyLength/);
    });
  });
});
