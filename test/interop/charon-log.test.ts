/**
 * The harness's parsers, checked on hand-written text in charon's formats so a
 * parsing mistake shows up here rather than as a confusing interop failure.
 * Needs neither root nor strongSwan.
 */
import assert from 'node:assert/strict';
import { childKeysFromLogText, ikeKeysFromLogText, parseHexDumps, parseListSas, renderConf } from './harness.js';

// Two threads interleaved: 07 is the responder side of an IKE_AUTH, 09 an unrelated vici client.
const LOG = [
  '10:00:00 07[ENC] parsed IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ]',
  '10:00:00 07[IKE] SKEYSEED => 4 bytes @ 0x55aa00',
  '10:00:00 09[CFG] vici client 3 connected',
  '10:00:00 07[IKE]    0: DE AD BE EF                                      ....',
  '10:00:00 07[IKE] Sk_ei secret => 2 bytes @ 0x55aa10',
  '10:00:00 07[IKE]    0: 0A 0B                                            ..',
  '10:00:00 07[CHD] CHILD_SA net{3} state change: CREATED => INSTALLING',
  '10:00:00 07[CHD]   using AES_CBC for encryption',
  '10:00:00 07[CHD] encryption initiator key => 18 bytes @ 0x7f01',
  '10:00:00 09[CFG] vici client 3 requests: list-sas',
  '10:00:00 07[CHD]    0: 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11  ................',
  '10:00:00 07[CHD]   16: 41 42                                            AB',
  '10:00:00 07[CHD] encryption responder key => 2 bytes @ 0x7f02',
  '10:00:00 07[CHD]    0: 22 22                                            ""',
  '10:00:00 07[CHD] integrity initiator key => 2 bytes @ 0x7f03',
  '10:00:00 07[CHD]    0: 33 33                                            33',
  '10:00:00 07[CHD] integrity responder key => 2 bytes @ 0x7f04',
  '10:00:00 07[CHD]    0: 44 44                                            DD',
  '10:00:00 07[CHD] adding inbound ESP SA',
  '10:00:00 07[CHD]   SPI 0xc1000001, src 192.0.2.1 dst 192.0.2.2',
  '10:00:00 07[IKE] CHILD_SA net{3} established with SPIs c1000001_i c2000002_o and TS 10.2.0.0/24 === 10.1.0.0/24',
  '10:00:01 05[ENC] parsed CREATE_CHILD_SA response 2 [ SA No TSi TSr ]',
  '10:00:01 05[CHD] CHILD_SA net{4} state change: CREATED => INSTALLING',
  '10:00:01 05[CHD] encryption initiator key => 1 bytes @ 0x7f05',
  '10:00:01 05[CHD]    0: 55                                               U',
  '10:00:01 05[CHD] encryption responder key => 1 bytes @ 0x7f06',
  '10:00:01 05[CHD]    0: 66                                               f',
  '10:00:01 05[IKE] inbound CHILD_SA net{4} established with SPIs c3000003_i c4000004_o and TS 10.2.0.0/24 === 10.1.0.0/24',
  '10:00:01 06[IKE] outbound CHILD_SA net{4} established with SPIs c3000003_i c4000004_o and TS 10.2.0.0/24 === 10.1.0.0/24',
  '',
].join('\n');

describe('interop harness: charon log and swanctl parsers', function () {
  it('joins hex dumps per thread, ignoring interleaved lines and the ASCII column', function () {
    const d = parseHexDumps(LOG).find((x) => x.label === 'encryption initiator key');
    assert.equal(d?.hex, '11'.repeat(16) + '4142');
    assert.equal(d?.length, 18);
  });

  it('maps initiator/responder keys to in/out by the role of the side', function () {
    const keys = childKeysFromLogText(LOG);
    assert.equal(keys.length, 2, 'the outbound-installed line of a rekey is not a second SA');
    const [a, b] = keys;
    assert.deepEqual(a, {
      name: 'net', uniqueId: 3, role: 'responder', spiIn: 'c1000001', spiOut: 'c2000002',
      encIn: '11'.repeat(16) + '4142', encOut: '2222', integIn: '3333', integOut: '4444',
      encInitiator: '11'.repeat(16) + '4142', encResponder: '2222', integInitiator: '3333', integResponder: '4444',
    });
    assert.equal(b!.role, 'initiator');
    assert.equal(b!.encOut, '55');
    assert.equal(b!.encIn, '66');
    assert.equal(b!.integOut, undefined);
  });

  it('collects IKE SA keys', function () {
    assert.deepEqual(ikeKeysFromLogText(LOG), [{ thread: 7, skeyseed: 'deadbeef', skEi: '0a0b' }]);
  });

  it('parses swanctl --list-sas --pretty', function () {
    const text = [
      'list-sa event {', '  conn {', '    uniqueid = 1', '    version = 2', '    state = ESTABLISHED',
      '    local-host = 192.0.2.1', '    local-id = C=CH, O=styx test, CN=left', '    initiator = yes',
      '    initiator-spi = 0011223344556677', '    responder-spi = 8899aabbccddeeff', '    child-sas {',
      '      net-1 {', '        name = net', '        uniqueid = 1', '        state = INSTALLED', '        encap = yes',
      '        spi-in = c1000001', '        spi-out = c2000002', '        packets-in = 3', '        local-ts = [',
      '          10.1.0.0/24', '          10.1.1.0/24', '        ]', '      }', '    }', '  }', '}',
      'list-sas reply {', '}', '',
    ].join('\n');
    const [sa] = parseListSas(text);
    assert.equal(sa?.name, 'conn');
    assert.equal(sa?.localId, 'C=CH, O=styx test, CN=left');
    assert.equal(sa?.initiator, true);
    assert.equal(sa?.children[0]?.key, 'net-1');
    assert.equal(sa?.children[0]?.spiOut, 'c2000002');
    assert.equal(sa?.children[0]?.packetsIn, 3);
    assert.deepEqual(sa?.children[0]?.localTs, ['10.1.0.0/24', '10.1.1.0/24']);
    assert.deepEqual(parseListSas('list-sas reply {\n}\n'), []);
  });

  it('renders swanctl.conf values, quoting only where the syntax needs it', function () {
    const text = renderConf({ a: { b: 'x-y', c: ['p', 'q'], d: true, e: 'has "quote" # hash', f: undefined, g: 4 } });
    assert.equal(text, 'a {\n  b = x-y\n  c = p, q\n  d = yes\n  e = "has \\"quote\\" # hash"\n  g = 4\n}\n');
  });
});
