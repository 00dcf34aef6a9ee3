import assert from 'node:assert/strict';
import { IdType } from '../../../src/wire/ikev2/constants.js';
import {
  certIdentities, certMatchesIdentity, checkCertIdentity, defaultCertIdentity, derToDnText, describeIdentity, dnEquals, dnIdentity, dnToDer,
} from '../../../src/auth/identity.js';
import { AuthError } from '../../../src/auth/errors.js';
import type { Identity } from '../../../src/ike/identity.js';
import type { Cert } from '../../../src/auth/x509.js';
import { cert, hasOpenssl, openssl, pki } from './pki.js';

const id = (type: number, data: Buffer | string): Identity => ({ type, data: typeof data === 'string' ? Buffer.from(data, 'latin1') : data });
const ip = (...b: number[]): Buffer => Buffer.from(b);

describe('auth/identity: DN text and DER', () => {
  it('encodes a DN with the string types RFC 5280 asks for', () => {
    // SEQUENCE { SET { C PrintableString "CH" } SET { O UTF8String "styx" } SET { CN UTF8String "moon" } },
    // as `openssl req -subj /C=CH/O=styx/CN=moon` encodes it.
    const want = '302b310b3009060355040613024348310d300b060355040a0c0473747978310d300b06035504030c046d6f6f6e';
    assert.equal(dnToDer('C=CH, O=styx, CN=moon').toString('hex'), want);
    assert.equal(dnToDer('  C = CH ,O=styx;CN=moon ').toString('hex'), want);
    assert.equal(dnToDer('/C=CH/O=styx/CN=moon').toString('hex'), want);
  });

  it('encodes exactly the subject DER of the test certificates', async () => {
    for (const name of ['moon', 'sun', 'root-ca', 'intermediate-ca']) {
      const c = await cert(name);
      assert.ok(dnToDer(c.subject).equals(c.subjectDer), name);
      assert.equal(derToDnText(c.subjectDer), c.subject);
    }
  });

  it('round-trips escapes, quotes, multi-valued RDNs, e-mail and unknown OIDs', () => {
    const cases: [string, string][] = [
      ['CN=a\\, b', 'CN=a\\, b'],
      ['CN="a, b"', 'CN=a\\, b'],
      ['O=x + OU=y, CN=z', 'O=x + OU=y, CN=z'],
      ['E=moon@styx.example, CN=moon', 'E=moon@styx.example, CN=moon'],
      ['emailAddress=a@b', 'E=a@b'],
      ['CN=Z\\C3\\BCrich', 'CN=Zürich'],
      ['CN=Zürich', 'CN=Zürich'],
      ['1.2.3.4=#0403616263', '1.2.3.4=#0403616263'],
      ['2.5.4.3=moon', 'CN=moon'],
      ['', ''],
    ];
    for (const [text, printed] of cases) {
      const der = dnToDer(text);
      assert.equal(derToDnText(der), printed, text);
      assert.ok(dnToDer(printed).equals(der), `re-encoding ${printed}`);
    }
  });

  it('sorts the attributes of a multi-valued RDN (DER SET OF)', () => {
    assert.ok(dnToDer('OU=y+O=x').equals(dnToDer('O=x+OU=y')));
  });

  it('rejects malformed text with ERR_DN_SYNTAX', () => {
    for (const bad of ['CN', 'XX=1', 'C=Zürich', 'CN=a,,O=b', 'CN="open', 'CN=x\\', '1.2.3=#zz']) {
      assert.throws(() => dnToDer(bad), (e: unknown) => e instanceof AuthError && e.code === 'ERR_DN_SYNTAX', bad);
    }
  });

  it('compares names as RFC 5280 7.1 does', () => {
    const printable = Buffer.from('302b310b3009060355040613024348310d300b060355040a130473747978310d300b0603550403130 46d6f6f6e'.replace(/ /g, ''), 'hex');
    assert.equal(derToDnText(printable), 'C=CH, O=styx, CN=moon');
    assert.ok(dnEquals(printable, dnToDer('C=CH, O=styx, CN=moon')), 'PrintableString vs UTF8String');
    assert.ok(dnEquals(dnToDer('C=CH, O=Styx,  CN=MOON '), dnToDer('C=CH, O=styx, CN=moon')), 'case and spaces');
    assert.ok(!dnEquals(dnToDer('C=CH, O=styx, CN=moon'), dnToDer('C=CH, O=styx, CN=sun')));
    assert.ok(!dnEquals(dnToDer('C=CH, O=styx, CN=moon'), dnToDer('O=styx, C=CH, CN=moon')), 'order matters');
    assert.ok(!dnEquals(dnToDer('C=CH, O=styx'), dnToDer('C=CH, O=styx, CN=moon')));
  });

  it('reads the text form OpenSSL prints for the same subject', async function () {
    if (!hasOpenssl()) this.skip();
    const subj = openssl(['x509', '-in', pki('moon.pem'), '-noout', '-subject', '-nameopt', 'RFC2253']).trim().replace(/^subject=/, '');
    // RFC 2253 order is reversed; the attribute set is the same.
    assert.equal(subj, 'CN=moon.styx.example,O=styx,C=CH');
    assert.ok(dnToDer(subj.split(',').reverse().join(', ')).equals((await cert('moon')).subjectDer));
  });
});

describe('auth/identity: matching IDs to certificates (RFC 4945 3.1)', () => {
  let moon: Cert;
  let sun: Cert;
  let jupiter: Cert;
  before(async () => { moon = await cert('moon'); sun = await cert('sun'); jupiter = await cert('jupiter'); });

  const positives = (): [string, Identity][] => [
    ['DN as DER', id(IdType.ID_DER_ASN1_DN, moon.subjectDer)],
    ['IPv4', id(IdType.ID_IPV4_ADDR, ip(192, 0, 2, 1))],
    ['IPv6', id(IdType.ID_IPV6_ADDR, Buffer.from('20010db8000000000000000000000001', 'hex'))],
    ['FQDN', id(IdType.ID_FQDN, 'moon.styx.example')],
    ['FQDN, other case', id(IdType.ID_FQDN, 'Moon.STYX.example')],
    ['RFC822', id(IdType.ID_RFC822_ADDR, 'moon@styx.example')],
    ['RFC822, domain case', id(IdType.ID_RFC822_ADDR, 'moon@STYX.example')],
    ['DN from text', dnIdentity('C=CH, O=styx, CN=moon.styx.example')],
  ];

  it('matches each ID type against its field', () => {
    for (const [what, i] of positives()) {
      assert.ok(certMatchesIdentity(i, moon), what);
      assert.doesNotThrow(() => checkCertIdentity(i, moon));
    }
  });

  it('does not match another host\'s identities (the wrong-identity certificate)', () => {
    for (const [what, i] of positives()) {
      assert.ok(!certMatchesIdentity(i, jupiter), what);
      assert.throws(() => checkCertIdentity(i, jupiter), (e: unknown) => e instanceof AuthError && e.code === 'ERR_ID_MISMATCH' && /jupiter/.test(e.message), what);
    }
  });

  it('does not cross ID types or accept near misses', () => {
    const no: [string, Identity][] = [
      ['IPv4 of sun', id(IdType.ID_IPV4_ADDR, ip(192, 0, 2, 2))],
      ['IPv4 bytes as IPv6', id(IdType.ID_IPV6_ADDR, ip(192, 0, 2, 1))],
      ['FQDN that is the e-mail', id(IdType.ID_FQDN, 'moon@styx.example')],
      ['FQDN suffix', id(IdType.ID_FQDN, 'styx.example')],
      ['FQDN empty', id(IdType.ID_FQDN, '')],
      ['e-mail local part case', id(IdType.ID_RFC822_ADDR, 'Moon@styx.example')],
      ['e-mail that is the FQDN', id(IdType.ID_RFC822_ADDR, 'moon.styx.example')],
      ['DN of sun', dnIdentity('C=CH, O=styx, CN=sun.styx.example')],
      ['DN of the issuer', id(IdType.ID_DER_ASN1_DN, moon.issuerDer)],
      ['empty DN', id(IdType.ID_DER_ASN1_DN, dnToDer(''))],
      ['garbage DN', id(IdType.ID_DER_ASN1_DN, Buffer.from('moon'))],
      ['KEY_ID', id(IdType.ID_KEY_ID, moon.subjectKeyId!)],
    ];
    for (const [what, i] of no) assert.ok(!certMatchesIdentity(i, moon), what);
    assert.ok(certMatchesIdentity(id(IdType.ID_IPV4_ADDR, ip(192, 0, 2, 2)), sun));
  });

  it('does not take an FQDN from the subject CN', async () => {
    assert.ok(!certMatchesIdentity(id(IdType.ID_FQDN, 'styx Intermediate CA'), await cert('intermediate-ca')));
  });

  it('makes the subject DN the default identity', () => {
    const d = defaultCertIdentity(moon);
    assert.equal(d.type, IdType.ID_DER_ASN1_DN);
    assert.ok(d.data.equals(moon.subjectDer));
    assert.ok(certMatchesIdentity(d, moon));
    assert.equal(describeIdentity(d), 'C=CH, O=styx, CN=moon.styx.example');
  });

  it('lists every identity a certificate backs', () => {
    const ids = certIdentities(moon);
    assert.deepEqual(ids.map((i) => i.type), [IdType.ID_DER_ASN1_DN, IdType.ID_FQDN, IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR, IdType.ID_RFC822_ADDR]);
    for (const i of ids) assert.ok(certMatchesIdentity(i, moon));
  });
});
