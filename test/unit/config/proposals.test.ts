import assert from 'node:assert/strict';
import {
  parseIkeProposal, parseEspProposal, proposalToText, ProposalError,
} from '../../../src/config/index.js';
import { DhId, EncrId, EsnId, IntegId, PrfId } from '../../../src/wire/ikev2/constants.js';

describe('config/proposals', () => {
  it('maps every encryption keyword to its IANA ID and key length', () => {
    const cases: [string, number, number][] = [
      ['aes128', EncrId.ENCR_AES_CBC, 128], ['aes192', EncrId.ENCR_AES_CBC, 192], ['aes256', EncrId.ENCR_AES_CBC, 256],
      ['aes128gcm8', EncrId.ENCR_AES_GCM_8, 128], ['aes128gcm12', EncrId.ENCR_AES_GCM_12, 128],
      ['aes128gcm16', EncrId.ENCR_AES_GCM_16, 128], ['aes128gcm', EncrId.ENCR_AES_GCM_16, 128],
      ['aes192gcm16', EncrId.ENCR_AES_GCM_16, 192], ['aes256gcm16', EncrId.ENCR_AES_GCM_16, 256],
      ['aes256gcm8', EncrId.ENCR_AES_GCM_8, 256], ['aes256gcm64', EncrId.ENCR_AES_GCM_8, 256],
      ['aes256gcm96', EncrId.ENCR_AES_GCM_12, 256], ['aes256gcm128', EncrId.ENCR_AES_GCM_16, 256],
      ['chacha20poly1305', EncrId.ENCR_CHACHA20_POLY1305, 0],
    ];
    for (const [word, id, len] of cases) {
      const aead = id !== EncrId.ENCR_AES_CBC;
      const p = parseEspProposal(aead ? word : `${word}-sha256`);
      assert.deepEqual(p.encr, [{ id, keyLength: len }], word);
      assert.deepEqual(p.integ, aead ? [] : [IntegId.AUTH_HMAC_SHA2_256_128], word);
    }
  });

  it('maps integrity keywords and derives the PRF from each of them', () => {
    const cases: [string, number, number][] = [
      ['sha1', IntegId.AUTH_HMAC_SHA1_96, PrfId.PRF_HMAC_SHA1],
      ['sha256', IntegId.AUTH_HMAC_SHA2_256_128, PrfId.PRF_HMAC_SHA2_256],
      ['sha384', IntegId.AUTH_HMAC_SHA2_384_192, PrfId.PRF_HMAC_SHA2_384],
      ['sha512', IntegId.AUTH_HMAC_SHA2_512_256, PrfId.PRF_HMAC_SHA2_512],
    ];
    for (const [word, integ, prf] of cases) {
      const p = parseIkeProposal(`aes128-${word}-modp2048`);
      assert.deepEqual(p.integ, [integ], word);
      assert.deepEqual(p.prf, [prf], word);
    }
    const multi = parseIkeProposal('aes128-sha256-sha1-x25519');
    assert.deepEqual(multi.integ, [IntegId.AUTH_HMAC_SHA2_256_128, IntegId.AUTH_HMAC_SHA1_96]);
    assert.deepEqual(multi.prf, [PrfId.PRF_HMAC_SHA2_256, PrfId.PRF_HMAC_SHA1]);
  });

  it('an explicit prf wins over the derived one', () => {
    const p = parseIkeProposal('aes256-sha256-prfsha512-ecp521');
    assert.deepEqual(p.prf, [PrfId.PRF_HMAC_SHA2_512]);
  });

  it('maps prf and DH keywords', () => {
    const prfs: [string, number][] = [['prfsha1', PrfId.PRF_HMAC_SHA1], ['prfsha256', PrfId.PRF_HMAC_SHA2_256],
      ['prfsha384', PrfId.PRF_HMAC_SHA2_384], ['prfsha512', PrfId.PRF_HMAC_SHA2_512]];
    for (const [word, id] of prfs) assert.deepEqual(parseIkeProposal(`aes128gcm16-${word}-ecp256`).prf, [id], word);
    const dhs: [string, number][] = [['modp2048', DhId.MODP_2048], ['modp3072', DhId.MODP_3072], ['modp4096', DhId.MODP_4096],
      ['ecp256', DhId.ECP_256], ['ecp384', DhId.ECP_384], ['ecp521', DhId.ECP_521],
      ['x25519', DhId.CURVE25519], ['curve25519', DhId.CURVE25519]];
    for (const [word, id] of dhs) assert.deepEqual(parseIkeProposal(`aes128-sha256-${word}`).dh, [id], word);
  });

  it('keeps the order of several algorithms of one kind and ignores repeats', () => {
    const p = parseIkeProposal('aes256-aes128-aes256-sha256-x25519-ecp256');
    assert.deepEqual(p.encr.map((e) => e.keyLength), [256, 128]);
    assert.deepEqual(p.dh, [DhId.CURVE25519, DhId.ECP_256]);
  });

  it('ESP: PFS groups, ESN, and the no-ESN default', () => {
    assert.deepEqual(parseEspProposal('aes128gcm16').esn, [EsnId.NO_ESN]);
    assert.deepEqual(parseEspProposal('aes128gcm16').dh, []);
    assert.deepEqual(parseEspProposal('aes128gcm16-esn').esn, [EsnId.ESN]);
    assert.deepEqual(parseEspProposal('aes128gcm16-esn-noesn').esn, [EsnId.ESN, EsnId.NO_ESN]);
    assert.deepEqual(parseEspProposal('aes128-sha256-modp2048').dh, [DhId.MODP_2048]);
    assert.equal(parseEspProposal('AES128-SHA256').encr[0]!.keyLength, 128, 'keywords are case-insensitive');
  });

  it('rejects bad proposals with a reason', () => {
    const bad: [() => unknown, RegExp][] = [
      [() => parseIkeProposal('aes127-sha256-x25519'), /unknown algorithm 'aes127'/],
      [() => parseIkeProposal('aes128gcm16-sha256-prfsha256-x25519'), /AEAD cipher with an integrity/],
      [() => parseIkeProposal('aes128gcm16-aes128-sha256-x25519'), /mixes AEAD and non-AEAD/],
      [() => parseIkeProposal('aes128-sha256'), /no DH group/],
      [() => parseIkeProposal('aes128-x25519'), /no integrity/],
      [() => parseIkeProposal('aes128gcm16-x25519'), /needs a prf/],
      [() => parseIkeProposal('sha256-prfsha256-x25519'), /no encryption/],
      [() => parseIkeProposal('aes128-sha256-x25519-esn'), /esn/],
      [() => parseIkeProposal('aes128--sha256-x25519'), /empty algorithm/],
      [() => parseEspProposal('aes128'), /no integrity/],
      [() => parseEspProposal('aes128gcm16-prfsha256'), /must not contain a prf/],
      [() => parseEspProposal('aes128gcm16-sha1'), /AEAD cipher with an integrity/],
      [() => parseEspProposal(''), /empty/],
    ];
    for (const [fn, re] of bad) assert.throws(fn, (e: unknown) => e instanceof ProposalError && re.test(e.message));
  });

  it('proposalToText names the transforms', () => {
    assert.equal(proposalToText(parseIkeProposal('aes128-sha256-x25519')), 'AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519');
    assert.equal(proposalToText(parseEspProposal('aes256gcm16-ecp384-esn')), 'AES_GCM_16-256/ECP_384/ESN');
    assert.equal(proposalToText(parseEspProposal('chacha20poly1305')), 'CHACHA20_POLY1305/NO_ESN');
  });
});
