/**
 * Parsers for what charon prints: its file log at ike=4/chd=4 (hex dumps of
 * derived keys) and `swanctl --list-sas --pretty`. Pure functions over text so
 * they can be checked without a running charon.
 *
 * Log lines look like `HH:MM:SS TT[SUB] message`, where TT is charon's thread
 * number. Threads interleave, so every multi-line construct is followed per
 * thread. A key is printed as
 *   `TT[CHD] encryption initiator key => 20 bytes @ 0x7f...`
 * followed by hex dump lines on the same thread
 *   `TT[CHD]    0: 29 9E 3D D1 ...  ascii`.
 */

export interface LogLine { thread: number; subsystem: string; message: string; index: number }

const LINE_RE = /^(?:\S+ )?(\d+)\[([A-Z]+)\] (.*)$/;
const DUMP_HEAD_RE = /^(.*\S) => (\d+) bytes @ (?:0x)?[0-9a-fA-F]+$/;
const DUMP_ROW_RE = /^\s+\d+: ((?:[0-9A-F]{2} ){0,15}[0-9A-F]{2})(?:\s|$)/;

export function parseLogLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  text.split('\n').forEach((raw, index) => {
    const m = LINE_RE.exec(raw.replace(/\r$/, ''));
    if (m) out.push({ thread: Number(m[1]), subsystem: m[2]!, message: m[3]!, index });
  });
  return out;
}

export interface HexDump { thread: number; subsystem: string; label: string; length: number; hex: string; index: number }

/** Every `label => N bytes @ addr` block with its bytes as lowercase hex. */
export function parseHexDumps(text: string): HexDump[] {
  const done: HexDump[] = [];
  const open = new Map<number, HexDump>();
  for (const l of parseLogLines(text)) {
    const cur = open.get(l.thread);
    const row = DUMP_ROW_RE.exec(l.message);
    if (cur && row) {
      cur.hex += row[1]!.replace(/ /g, '').toLowerCase();
      if (cur.hex.length >= cur.length * 2) { done.push(cur); open.delete(l.thread); }
      continue;
    }
    if (cur) { done.push(cur); open.delete(l.thread); }
    const head = DUMP_HEAD_RE.exec(l.message);
    if (head) {
      const d: HexDump = { thread: l.thread, subsystem: l.subsystem, label: head[1]!.trim(), length: Number(head[2]), hex: '', index: l.index };
      if (d.length === 0) done.push(d); else open.set(l.thread, d);
    }
  }
  for (const d of open.values()) done.push(d);
  return done.sort((a, b) => a.index - b.index);
}

/** Keys of one CHILD_SA as this charon derived them; hex, lowercase. */
export interface ChildKeys {
  name: string;
  uniqueId: number;
  /** Whether this charon initiated the exchange that created the SA (which decides in/out). */
  role: 'initiator' | 'responder';
  spiIn: string;
  spiOut: string;
  encIn: string;
  encOut: string;
  integIn?: string;
  integOut?: string;
  /** As labelled in the log: initiator = keys for initiator-to-responder traffic. */
  encInitiator: string;
  encResponder: string;
  integInitiator?: string;
  integResponder?: string;
}

interface PendingChild {
  name: string; uniqueId: number; role: 'initiator' | 'responder';
  dumps: Map<string, string>;
}

const STATE_INSTALLING_RE = /^CHILD_SA (\S+)\{(\d+)\} state change: CREATED => INSTALLING$/;
const ESTABLISHED_RE = /^(?:inbound |outbound )?CHILD_SA (\S+)\{(\d+)\} established with SPIs ([0-9a-f]+)_i ([0-9a-f]+)_o/;
const PARSED_RE = /^parsed \S+ (request|response) \d+/;
const CHILD_KEY_LABELS = ['encryption initiator key', 'encryption responder key', 'integrity initiator key', 'integrity responder key'];

/**
 * CHILD_SA keys from a chd=4 log, one entry per CHILD_SA that reached
 * "established", in log order (rekeyed SAs appear as new entries).
 *
 * The role comes from the last IKE message the same thread parsed: keys are
 * derived while handling the response on the side that sent the request, and
 * while handling the request on the other side.
 */
export function childKeysFromLogText(text: string): ChildKeys[] {
  const lines = parseLogLines(text);
  const dumps = parseHexDumps(text);
  const dumpAt = new Map<number, HexDump>(dumps.map((d) => [d.index, d]));
  const lastParsed = new Map<number, 'request' | 'response'>();
  const pending = new Map<number, PendingChild>();
  const seen = new Set<number>();
  const out: ChildKeys[] = [];
  for (const l of lines) {
    const p = PARSED_RE.exec(l.message);
    if (p) { lastParsed.set(l.thread, p[1] as 'request' | 'response'); continue; }
    const s = STATE_INSTALLING_RE.exec(l.message);
    if (s) {
      pending.set(l.thread, {
        name: s[1]!, uniqueId: Number(s[2]),
        role: lastParsed.get(l.thread) === 'response' ? 'initiator' : 'responder',
        dumps: new Map(),
      });
      continue;
    }
    const d = dumpAt.get(l.index);
    const pc = pending.get(l.thread);
    if (d && pc && CHILD_KEY_LABELS.includes(d.label)) { pc.dumps.set(d.label, d.hex); continue; }
    const e = ESTABLISHED_RE.exec(l.message);
    if (e && pc && pc.uniqueId === Number(e[2])) {
      pending.delete(l.thread);
      if (seen.has(pc.uniqueId)) continue;
      seen.add(pc.uniqueId);
      const encI = pc.dumps.get('encryption initiator key') ?? '';
      const encR = pc.dumps.get('encryption responder key') ?? '';
      const intI = pc.dumps.get('integrity initiator key');
      const intR = pc.dumps.get('integrity responder key');
      const init = pc.role === 'initiator';
      const k: ChildKeys = {
        name: pc.name, uniqueId: pc.uniqueId, role: pc.role,
        spiIn: e[3]!, spiOut: e[4]!,
        encIn: init ? encR : encI, encOut: init ? encI : encR,
        encInitiator: encI, encResponder: encR,
      };
      if (intI !== undefined && intR !== undefined) {
        k.integIn = init ? intR : intI; k.integOut = init ? intI : intR;
        k.integInitiator = intI; k.integResponder = intR;
      }
      out.push(k);
    }
  }
  return out;
}

/** IKE SA key material (ike=4), one entry per SKEYSEED computed (initial and IKE rekeys). */
export interface IkeKeys {
  thread: number;
  skeyseed: string;
  skD?: string; skAi?: string; skAr?: string; skEi?: string; skEr?: string; skPi?: string; skPr?: string;
}

const IKE_LABELS: Record<string, keyof Omit<IkeKeys, 'thread' | 'skeyseed'>> = {
  'Sk_d secret': 'skD', 'Sk_ai secret': 'skAi', 'Sk_ar secret': 'skAr', 'Sk_ei secret': 'skEi',
  'Sk_er secret': 'skEr', 'Sk_pi secret': 'skPi', 'Sk_pr secret': 'skPr',
};

export function ikeKeysFromLogText(text: string): IkeKeys[] {
  const out: IkeKeys[] = [];
  const current = new Map<number, IkeKeys>();
  for (const d of parseHexDumps(text)) {
    if (d.label === 'SKEYSEED') {
      const k: IkeKeys = { thread: d.thread, skeyseed: d.hex };
      current.set(d.thread, k);
      out.push(k);
      continue;
    }
    const field = IKE_LABELS[d.label];
    const k = current.get(d.thread);
    if (field && k && k[field] === undefined) k[field] = d.hex;
  }
  return out;
}

// ---------------------------------------------------------------------------
// swanctl --pretty output: `key = value` lines, `name {` ... `}` sections and
// `name [` ... `]` lists. Values run to the end of the line, which is why this
// format is parsed rather than --raw (where a value with spaces is ambiguous).

export type VNode = string | string[] | VSection;
export interface VSection { [key: string]: VNode }

/** The top-level messages in order, e.g. [['list-sa event', {...}], ['list-sas reply', {}]]. */
export function parsePretty(text: string): [string, VSection][] {
  const top: [string, VSection][] = [];
  const stack: VSection[] = [];
  let list: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (list) {
      if (line === ']') list = undefined; else list.push(line);
      continue;
    }
    if (line === '}') { stack.pop(); continue; }
    let m = /^(.*?) \{$/.exec(line);
    if (m) {
      const sec: VSection = {};
      if (stack.length === 0) top.push([m[1]!, sec]); else stack[stack.length - 1]![m[1]!] = sec;
      stack.push(sec);
      continue;
    }
    m = /^(.*?) = \[$/.exec(line) ?? /^(.*?) \[$/.exec(line);
    if (m && stack.length > 0) {
      list = [];
      stack[stack.length - 1]![m[1]!] = list;
      continue;
    }
    m = /^(.*?) = (.*)$/.exec(line);
    if (m && stack.length > 0) stack[stack.length - 1]![m[1]!] = m[2]!;
  }
  return top;
}

export interface ParsedChildSa {
  name: string;
  /** The key charon lists it under, e.g. `net-2`. */
  key: string;
  uniqueId: number;
  reqid: number;
  state: string;
  mode: string;
  protocol: string;
  encap: boolean;
  spiIn: string;
  spiOut: string;
  encrAlg: string;
  encrKeysize?: number;
  integAlg?: string;
  dhGroup?: string;
  bytesIn: number; bytesOut: number; packetsIn: number; packetsOut: number;
  localTs: string[];
  remoteTs: string[];
  raw: VSection;
}

export interface ParsedSa {
  name: string;
  uniqueId: number;
  version: number;
  state: string;
  initiator: boolean;
  localHost: string; localPort: number; localId: string;
  remoteHost: string; remotePort: number; remoteId: string;
  initiatorSpi: string;
  responderSpi: string;
  encrAlg?: string; encrKeysize?: number; integAlg?: string; prfAlg?: string; dhGroup?: string;
  children: ParsedChildSa[];
  raw: VSection;
}

function str(s: VSection, k: string): string {
  const v = s[k];
  return typeof v === 'string' ? v : '';
}
function optStr(s: VSection, k: string): string | undefined {
  const v = s[k];
  return typeof v === 'string' ? v : undefined;
}
function num(s: VSection, k: string): number {
  const v = s[k];
  return typeof v === 'string' && v !== '' ? Number(v) : 0;
}
function optNum(s: VSection, k: string): number | undefined {
  const v = s[k];
  return typeof v === 'string' && v !== '' ? Number(v) : undefined;
}
function list(s: VSection, k: string): string[] {
  const v = s[k];
  return Array.isArray(v) ? v : [];
}
function section(v: VNode | undefined): VSection | undefined {
  return v !== undefined && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
}

export function parseListSas(text: string): ParsedSa[] {
  const out: ParsedSa[] = [];
  for (const [kind, body] of parsePretty(text)) {
    if (kind !== 'list-sa event') continue;
    for (const [name, node] of Object.entries(body)) {
      const s = section(node);
      if (!s) continue;
      const children: ParsedChildSa[] = [];
      for (const [key, cnode] of Object.entries(section(s['child-sas']) ?? {})) {
        const c = section(cnode);
        if (!c) continue;
        const child: ParsedChildSa = {
          name: str(c, 'name') || key, key,
          uniqueId: num(c, 'uniqueid'), reqid: num(c, 'reqid'),
          state: str(c, 'state'), mode: str(c, 'mode'), protocol: str(c, 'protocol'),
          encap: str(c, 'encap') === 'yes',
          spiIn: str(c, 'spi-in'), spiOut: str(c, 'spi-out'),
          encrAlg: str(c, 'encr-alg'),
          bytesIn: num(c, 'bytes-in'), bytesOut: num(c, 'bytes-out'),
          packetsIn: num(c, 'packets-in'), packetsOut: num(c, 'packets-out'),
          localTs: list(c, 'local-ts'), remoteTs: list(c, 'remote-ts'),
          raw: c,
        };
        const ks = optNum(c, 'encr-keysize'); if (ks !== undefined) child.encrKeysize = ks;
        const ia = optStr(c, 'integ-alg'); if (ia !== undefined) child.integAlg = ia;
        const dh = optStr(c, 'dh-group'); if (dh !== undefined) child.dhGroup = dh;
        children.push(child);
      }
      const sa: ParsedSa = {
        name, uniqueId: num(s, 'uniqueid'), version: num(s, 'version'), state: str(s, 'state'),
        initiator: str(s, 'initiator') === 'yes',
        localHost: str(s, 'local-host'), localPort: num(s, 'local-port'), localId: str(s, 'local-id'),
        remoteHost: str(s, 'remote-host'), remotePort: num(s, 'remote-port'), remoteId: str(s, 'remote-id'),
        initiatorSpi: str(s, 'initiator-spi'), responderSpi: str(s, 'responder-spi'),
        children, raw: s,
      };
      const ea = optStr(s, 'encr-alg'); if (ea !== undefined) sa.encrAlg = ea;
      const ia = optStr(s, 'integ-alg'); if (ia !== undefined) sa.integAlg = ia;
      const pa = optStr(s, 'prf-alg'); if (pa !== undefined) sa.prfAlg = pa;
      const dh = optStr(s, 'dh-group'); if (dh !== undefined) sa.dhGroup = dh;
      const ks = optNum(s, 'encr-keysize'); if (ks !== undefined) sa.encrKeysize = ks;
      out.push(sa);
    }
  }
  return out;
}
