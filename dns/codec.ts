// Lean DNS codec for the hot path: parse the one question of a query, build a response around it. Only what the
// resolver needs; forwarded messages stay raw bytes (see truncate()).
export const TYPE = { A: 1, PTR: 12, MX: 15, AAAA: 28, OPT: 41 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** Largest UDP payload we advertise in our OPT record. */
export const OUR_UDP_SIZE = 4096;

export interface Query {
  id: number;
  flags: number;
  opcode: number;
  /** Lower-case (ASCII), dotted, no trailing dot; a '.' or '\' inside a label is escaped with '\'. */
  name: string;
  qtype: number;
  qclass: number;
  /** Offset just past the question. */
  questionEnd: number;
  /** 512 unless an EDNS0 OPT record asks for more. */
  udpSize: number;
  edns: boolean;
}

export class FormatError extends Error {}

const MAX_JUMPS = 64;

/** One label, ASCII-lowercased, '.' and '\\' escaped; the common all-lowercase label is one latin1 slice. */
function readLabel(buf: Buffer, from: number, to: number): string {
  let plain = true;
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if ((c >= 0x41 && c <= 0x5a) || c === 0x2e || c === 0x5c) { plain = false; break; }
  }
  if (plain) return buf.toString('latin1', from, to);
  let label = '';
  for (let i = from; i < to; i++) {
    let c = buf[i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20; // ASCII-only case folding, as DNS defines it
    else if (c === 0x2e || c === 0x5c) label += '\\';
    label += String.fromCharCode(c);
  }
  return label;
}

/** Reads a (possibly compressed) name; bounded so pointer loops, forward loops and overlong names fail. */
export function readName(buf: Buffer, start: number): { name: string; end: number } {
  let name = '';
  let off = start;
  let end = -1;
  let jumps = 0;
  let total = 1;
  for (;;) {
    if (off >= buf.length) throw new FormatError('name past end');
    const len = buf[off]!;
    if (len === 0) { if (end < 0) end = off + 1; break; }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) throw new FormatError('pointer past end');
      if (++jumps > MAX_JUMPS) throw new FormatError('pointer loop');
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | buf[off + 1]!;
      continue;
    }
    if (len & 0xc0) throw new FormatError('bad label type');
    if (off + 1 + len > buf.length) throw new FormatError('label past end');
    total += len + 1;
    if (total > 255) throw new FormatError('name too long');
    if (name.length) name += '.';
    name += readLabel(buf, off + 1, off + 1 + len);
    off += 1 + len;
  }
  return { name, end };
}

/** Parses a query's header and single question. Throws FormatError; callers answer FORMERR (or drop, see isResponse). */
export function parseQuery(buf: Buffer): Query {
  if (buf.length < 12) throw new FormatError('short header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4);
  const ar = buf.readUInt16BE(10);
  if (qd !== 1) throw new FormatError('need exactly one question');
  const { name, end } = readName(buf, 12);
  if (end + 4 > buf.length) throw new FormatError('question past end');
  const q: Query = {
    id, flags, opcode: (flags >> 11) & 0xf, name,
    qtype: buf.readUInt16BE(end), qclass: buf.readUInt16BE(end + 2),
    questionEnd: end + 4, udpSize: 512, edns: false,
  };
  // EDNS0: an OPT record (root owner, type 41) right after the question, as every client sends it.
  const o = q.questionEnd;
  if (ar >= 1 && buf.length >= o + 11 && buf[o] === 0 && buf.readUInt16BE(o + 1) === TYPE.OPT) {
    q.edns = true;
    q.udpSize = Math.max(512, buf.readUInt16BE(o + 3));
  }
  return q;
}

/** A response (QR set) must never be answered: that is how two resolvers end up in a loop. */
export function isResponse(buf: Buffer): boolean {
  return buf.length >= 3 && (buf[2]! & 0x80) !== 0;
}

/** One answer record: owner is always the question name (pointer 0xc00c). */
export interface Answer { type: number; data: Buffer }

/**
 * Builds a response to q with the given answers (all with the same TTL). Answers that do not fit maxSize are left
 * out and TC is set, as miekg's Truncate does for A/AAAA. The OPT record is echoed when the query had one.
 */
export function buildResponse(req: Buffer, q: Query, rcode: number, answers: readonly Answer[], ttl: number, maxSize: number): Buffer {
  const opt = q.edns ? 11 : 0;
  let size = q.questionEnd + opt;
  let n = 0;
  for (const a of answers) {
    const s = 12 + a.data.length;
    if (size + s > maxSize) break;
    size += s; n++;
  }
  const out = Buffer.allocUnsafe(size);
  out.writeUInt16BE(q.id, 0);
  const tc = n < answers.length ? 0x0200 : 0;
  // QR, opcode, TC, RD copied, RA; AA clear (Docker's resolver is not authoritative).
  out.writeUInt16BE(0x8000 | (q.opcode << 11) | tc | (q.flags & 0x0100) | 0x0080 | rcode, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(n, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(q.edns ? 1 : 0, 10);
  req.copy(out, 12, 12, q.questionEnd);
  let off = q.questionEnd;
  for (let i = 0; i < n; i++) {
    const a = answers[i]!;
    out.writeUInt16BE(0xc00c, off); out.writeUInt16BE(a.type, off + 2); out.writeUInt16BE(1, off + 4);
    out.writeUInt32BE(ttl, off + 6); out.writeUInt16BE(a.data.length, off + 10);
    a.data.copy(out, off + 12); off += 12 + a.data.length;
  }
  if (q.edns) {
    // OPT: root owner, type 41, class = our UDP size, extended rcode/version/flags 0, no options.
    out[off] = 0; out.writeUInt16BE(TYPE.OPT, off + 1); out.writeUInt16BE(OUR_UDP_SIZE, off + 3);
    out.writeUInt32BE(0, off + 5); out.writeUInt16BE(0, off + 9);
  }
  return out;
}

/** Header-only error response (FORMERR, NOTIMP, SERVFAIL, REFUSED); echoes id, opcode and RD when present. */
export function errorResponse(req: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  if (req.length >= 2) out.writeUInt16BE(req.readUInt16BE(0), 0);
  const b2 = req.length >= 3 ? req[2]! : 0;
  out[2] = 0x80 | (b2 & 0x78) | (b2 & 0x01);
  out[3] = 0x80 | rcode;
  return out;
}

/**
 * Error response that keeps the question (SERVFAIL/REFUSED to a parsed query), which stub resolvers prefer.
 */
export function errorWithQuestion(req: Buffer, q: Query, rcode: number): Buffer {
  return buildResponse(req, q, rcode, [], 0, 65535);
}

/**
 * Fits a raw response into maxSize: if it is larger, keep header + question, drop all records and set TC
 * (RFC 2181 §9: the client retries over TCP). Returns the input when it already fits or cannot be parsed.
 */
export function truncate(resp: Buffer, maxSize: number): Buffer {
  if (resp.length <= maxSize) return resp;
  let end = 12;
  if (resp.length < 12) return resp;
  const qd = resp.readUInt16BE(4);
  try {
    for (let i = 0; i < qd; i++) end = readName(resp, end).end + 4;
  } catch { end = 12; }
  if (end > resp.length || end > maxSize) end = 12;
  const out = Buffer.from(resp.subarray(0, end));
  out[2] = out[2]! | 0x02;
  out.writeUInt16BE(end === 12 ? 0 : qd, 4);
  out.writeUInt16BE(0, 6); out.writeUInt16BE(0, 8); out.writeUInt16BE(0, 10);
  return out;
}

/** Encodes a dotted name (escapes as produced by readName) to wire form. */
export function encodeName(name: string): Buffer {
  const labels: number[][] = [];
  let cur: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x5c && i + 1 < name.length) { cur.push(name.charCodeAt(++i) & 0xff); continue; }
    if (c === 0x2e) { if (cur.length) labels.push(cur); cur = []; continue; }
    cur.push(c & 0xff);
  }
  if (cur.length) labels.push(cur);
  const out: number[] = [];
  for (const l of labels) out.push(Math.min(l.length, 63), ...l.slice(0, 63));
  out.push(0);
  return Buffer.from(out);
}

export function ipv4Bytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

export function ipv6Bytes(ip: string): Buffer {
  let s = ip;
  let tail4: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) { tail4 = dotted[1]!.split('.').map(Number); s = s.slice(0, -dotted[1]!.length) + '0:0'; }
  const [head = '', tail] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.slice(0, 8).forEach((g, i) => b.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  if (tail4.length) Buffer.from(tail4).copy(b, 12);
  return b;
}
