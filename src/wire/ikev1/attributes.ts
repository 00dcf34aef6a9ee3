/**
 * Meaning of transform attributes: RFC 2409 appendix A for the ISAKMP SA
 * (phase 1) and RFC 2407 4.5 for IPsec SAs (Quick Mode). A decoded
 * V1Transform keeps its attributes raw and ordered (the bytes feed SAi_b);
 * these functions read them into typed values or throw. Anything styx does
 * not understand is UnsupportedError, never skipped: an ignored attribute
 * could change what the peer thinks was agreed (RFC 2408 3.14.1:
 * ATTRIBUTES-NOT-SUPPORTED).
 */
import { MalformedError, UnsupportedError } from '../../util/errors.js';
import { EsnValue, IpsecAttr, LifeType, Phase1Attr, nameOf } from './constants.js';
import type { V1Attribute, V1Transform } from './types.js';

/** Lifetimes by type; RFC 2409 appendix A and RFC 2407 4.5 allow one of each. */
export interface V1Life { seconds?: number; kilobytes?: number }

/** RFC 2409 5: the attributes a phase 1 transform MUST carry, plus the optional ones styx knows. */
export interface Phase1Attributes {
  encryption: number;
  /** Bits; RFC 2409 appendix A: absent for fixed-key ciphers. */
  keyLength?: number;
  hash: number;
  authMethod: number;
  group: number;
  life: V1Life;
}

/** RFC 2407 4.5: every attribute is optional; the IKE layer applies the defaults 4.5 gives. */
export interface IpsecAttributes {
  encapsulation?: number;
  authAlgorithm?: number;
  keyLength?: number;
  /** PFS group for Quick Mode (RFC 2409 5.5). */
  group?: number;
  /** RFC 4304 2. */
  esn: boolean;
  life: V1Life;
}

/** Longest variable-length integer accepted: 6 octets stay exact as a JS number. */
const MAX_VARIABLE_OCTETS = 6;

/** RFC 2409 appendix A: "Basic" attributes MUST use the TV form. */
function basic(a: V1Attribute, what: string, name: string): number {
  if (typeof a.value !== 'number') throw new MalformedError(what, `${name} must use the TV form`);
  return a.value;
}

/** A "Variable" attribute may be TV or TLV (RFC 2408 3.3); TLV values are big-endian integers. */
function variable(a: V1Attribute, what: string, name: string): number {
  if (typeof a.value === 'number') return a.value;
  if (a.value.length === 0) throw new MalformedError(what, `${name} is empty`);
  let v = 0;
  for (const [i, byte] of a.value.entries()) {
    if (a.value.length - i > MAX_VARIABLE_OCTETS && byte !== 0) throw new UnsupportedError(`${what} ${name} wider than ${MAX_VARIABLE_OCTETS * 8} bits`);
    v = v * 256 + byte;
  }
  return v;
}

/**
 * Life Type / Life Duration pairs: a duration applies to the type just
 * before it (RFC 2409 appendix A; RFC 2407 4.5 "MUST be immediately
 * followed"), and each type may appear once.
 */
class LifeReader {
  private pending: number | undefined;
  readonly life: V1Life = {};
  constructor(private readonly what: string) {}
  type(v: number): void {
    if (this.pending !== undefined) throw new MalformedError(this.what, 'life type without a duration');
    if (v !== LifeType.SECONDS && v !== LifeType.KILOBYTES) throw new UnsupportedError(`${this.what} life type ${v}`);
    const key = v === LifeType.SECONDS ? 'seconds' : 'kilobytes';
    if (this.life[key] !== undefined) throw new MalformedError(this.what, `two ${key} lifetimes`);
    this.pending = v;
  }
  duration(v: number): void {
    if (this.pending === undefined) throw new MalformedError(this.what, 'life duration without a life type');
    this.life[this.pending === LifeType.SECONDS ? 'seconds' : 'kilobytes'] = v;
    this.pending = undefined;
  }
  done(): V1Life {
    if (this.pending !== undefined) throw new MalformedError(this.what, 'life type without a duration');
    return this.life;
  }
}

function once(seen: Set<number>, type: number, what: string, table: Record<string, number>): void {
  if (seen.has(type)) throw new MalformedError(what, `duplicate ${nameOf(table, type)} attribute`);
  seen.add(type);
}

/** RFC 2409 5 and appendix A: a phase 1 transform's attributes, typed. */
export function phase1Attributes(t: V1Transform): Phase1Attributes {
  const what = `phase 1 transform #${t.num}`;
  const seen = new Set<number>();
  const life = new LifeReader(what);
  let encryption: number | undefined;
  let hash: number | undefined;
  let authMethod: number | undefined;
  let group: number | undefined;
  let keyLength: number | undefined;
  for (const a of t.attributes) {
    const name = nameOf(Phase1Attr, a.type);
    switch (a.type) {
      case Phase1Attr.LIFE_TYPE: life.type(basic(a, what, name)); continue;
      case Phase1Attr.LIFE_DURATION: life.duration(variable(a, what, name)); continue;
      case Phase1Attr.ENCRYPTION_ALGORITHM: once(seen, a.type, what, Phase1Attr); encryption = basic(a, what, name); continue;
      case Phase1Attr.HASH_ALGORITHM: once(seen, a.type, what, Phase1Attr); hash = basic(a, what, name); continue;
      case Phase1Attr.AUTHENTICATION_METHOD: once(seen, a.type, what, Phase1Attr); authMethod = basic(a, what, name); continue;
      case Phase1Attr.GROUP_DESCRIPTION: once(seen, a.type, what, Phase1Attr); group = basic(a, what, name); continue;
      case Phase1Attr.KEY_LENGTH: once(seen, a.type, what, Phase1Attr); keyLength = basic(a, what, name); continue;
      default:
        // Explicit group parameters (5-10, 15, 16) and the undefined PRF class (13) are not supported.
        throw new UnsupportedError(`${what} attribute ${name}`);
    }
  }
  if (encryption === undefined) throw new MalformedError(what, 'missing ENCRYPTION_ALGORITHM');
  if (hash === undefined) throw new MalformedError(what, 'missing HASH_ALGORITHM');
  if (authMethod === undefined) throw new MalformedError(what, 'missing AUTHENTICATION_METHOD');
  if (group === undefined) throw new MalformedError(what, 'missing GROUP_DESCRIPTION');
  const out: Phase1Attributes = { encryption, hash, authMethod, group, life: life.done() };
  if (keyLength !== undefined) out.keyLength = keyLength;
  return out;
}

/** RFC 2407 4.5: an IPsec (AH/ESP) transform's attributes, typed. */
export function ipsecAttributes(t: V1Transform): IpsecAttributes {
  const what = `IPsec transform #${t.num}`;
  const seen = new Set<number>();
  const life = new LifeReader(what);
  const out: IpsecAttributes = { esn: false, life: {} };
  for (const a of t.attributes) {
    const name = nameOf(IpsecAttr, a.type);
    switch (a.type) {
      case IpsecAttr.SA_LIFE_TYPE: life.type(basic(a, what, name)); continue;
      case IpsecAttr.SA_LIFE_DURATION: life.duration(variable(a, what, name)); continue;
      case IpsecAttr.ENCAPSULATION_MODE: once(seen, a.type, what, IpsecAttr); out.encapsulation = basic(a, what, name); continue;
      case IpsecAttr.AUTHENTICATION_ALGORITHM: once(seen, a.type, what, IpsecAttr); out.authAlgorithm = basic(a, what, name); continue;
      case IpsecAttr.KEY_LENGTH: once(seen, a.type, what, IpsecAttr); out.keyLength = basic(a, what, name); continue;
      case IpsecAttr.GROUP_DESCRIPTION: once(seen, a.type, what, IpsecAttr); out.group = basic(a, what, name); continue;
      case IpsecAttr.EXTENDED_SEQUENCE_NUMBER: {
        once(seen, a.type, what, IpsecAttr);
        const v = basic(a, what, name);
        // RFC 4304 2: the only defined value; its absence means 32-bit sequence numbers.
        if (v !== EsnValue.ESN) throw new UnsupportedError(`${what} ESN value ${v}`);
        out.esn = true;
        continue;
      }
      default:
        throw new UnsupportedError(`${what} attribute ${name}`);
    }
  }
  out.life = life.done();
  return out;
}

/** A life duration in the shortest form: TV when it fits 16 bits, else a 4-octet TLV. */
function durationAttr(type: number, v: number): V1Attribute {
  if (v <= 0xffff) return { type, value: v };
  if (v > 0xffffffff) throw new MalformedError('life duration', `${v} does not fit 32 bits`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return { type, value: b };
}

function lifeAttrs(life: V1Life, typeAttr: number, durationType: number): V1Attribute[] {
  const out: V1Attribute[] = [];
  if (life.seconds !== undefined) out.push({ type: typeAttr, value: LifeType.SECONDS }, durationAttr(durationType, life.seconds));
  if (life.kilobytes !== undefined) out.push({ type: typeAttr, value: LifeType.KILOBYTES }, durationAttr(durationType, life.kilobytes));
  return out;
}

/** Inverse of phase1Attributes, in the order most peers send them. */
export function phase1AttributeList(a: Phase1Attributes): V1Attribute[] {
  const out: V1Attribute[] = [{ type: Phase1Attr.ENCRYPTION_ALGORITHM, value: a.encryption }];
  if (a.keyLength !== undefined) out.push({ type: Phase1Attr.KEY_LENGTH, value: a.keyLength });
  out.push(
    { type: Phase1Attr.HASH_ALGORITHM, value: a.hash },
    { type: Phase1Attr.GROUP_DESCRIPTION, value: a.group },
    { type: Phase1Attr.AUTHENTICATION_METHOD, value: a.authMethod },
  );
  out.push(...lifeAttrs(a.life, Phase1Attr.LIFE_TYPE, Phase1Attr.LIFE_DURATION));
  return out;
}

/** Inverse of ipsecAttributes. */
export function ipsecAttributeList(a: IpsecAttributes): V1Attribute[] {
  const out: V1Attribute[] = lifeAttrs(a.life, IpsecAttr.SA_LIFE_TYPE, IpsecAttr.SA_LIFE_DURATION);
  if (a.encapsulation !== undefined) out.push({ type: IpsecAttr.ENCAPSULATION_MODE, value: a.encapsulation });
  if (a.authAlgorithm !== undefined) out.push({ type: IpsecAttr.AUTHENTICATION_ALGORITHM, value: a.authAlgorithm });
  if (a.keyLength !== undefined) out.push({ type: IpsecAttr.KEY_LENGTH, value: a.keyLength });
  if (a.group !== undefined) out.push({ type: IpsecAttr.GROUP_DESCRIPTION, value: a.group });
  if (a.esn) out.push({ type: IpsecAttr.EXTENDED_SEQUENCE_NUMBER, value: EsnValue.ESN });
  return out;
}

/**
 * RFC 2407 4.6.3.1: a RESPONDER-LIFETIME notify carries life type/duration
 * pairs only (phase 1 numbers for an ISAKMP SA, RFC 2407 4.5 numbers for an
 * IPsec SA); anything else in it is refused rather than skipped.
 */
export function lifeAttributes(life: V1Life, isakmp: boolean): V1Attribute[] {
  return isakmp ? lifeAttrs(life, Phase1Attr.LIFE_TYPE, Phase1Attr.LIFE_DURATION) : lifeAttrs(life, IpsecAttr.SA_LIFE_TYPE, IpsecAttr.SA_LIFE_DURATION);
}

export function readLifeAttributes(attrs: readonly V1Attribute[], isakmp: boolean): V1Life {
  const what = 'RESPONDER-LIFETIME';
  const [typeAttr, durAttr, table] = isakmp ? [Phase1Attr.LIFE_TYPE, Phase1Attr.LIFE_DURATION, Phase1Attr] : [IpsecAttr.SA_LIFE_TYPE, IpsecAttr.SA_LIFE_DURATION, IpsecAttr];
  const life = new LifeReader(what);
  for (const a of attrs) {
    const name = nameOf(table, a.type);
    if (a.type === typeAttr) life.type(basic(a, what, name));
    else if (a.type === durAttr) life.duration(variable(a, what, name));
    else throw new UnsupportedError(`${what} attribute ${name}`);
  }
  return life.done();
}
