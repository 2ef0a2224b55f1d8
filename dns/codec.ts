// Lean DNS codec for the local-answer hot path: parse one question, build a response.
export const TYPE = { A: 1, PTR: 12, AAAA: 28, OPT: 41 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface Query {
  id: number;
  flags: number;
  opcode: number;
  name: string; // lower-case, no trailing dot
  qtype: number;
  qclass: number;
  questionEnd: number; // offset just past the question
  udpSize: number; // 512 unless EDNS0 OPT present
  edns: boolean;
}

export class FormatError extends Error {}

/** Reads a (possibly compressed) name; bounded so pointer loops and overlong names fail. */
export function readName(buf: Buffer, start: number): { name: string; end: number } {
  const labels: string[] = [];
  let off = start;
  let end = -1;
  let jumps = 0;
  let total = 0;
  for (;;) {
    if (off >= buf.length) throw new FormatError('name past end');
    const len = buf[off]!;
    if (len === 0) { if (end < 0) end = off + 1; break; }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) throw new FormatError('pointer past end');
      if (++jumps > 32) throw new FormatError('pointer loop');
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | buf[off + 1]!;
      continue;
    }
    if (len & 0xc0) throw new FormatError('bad label type');
    if (off + 1 + len > buf.length) throw new FormatError('label past end');
    total += len + 1;
    if (total > 255) throw new FormatError('name too long');
    labels.push(buf.toString('latin1', off + 1, off + 1 + len).toLowerCase());
    off += 1 + len;
  }
  return { name: labels.join('.'), end };
}

export function parseQuery(buf: Buffer): Query {
  if (buf.length < 12) throw new FormatError('short header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) throw new FormatError('not a query');
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
  // EDNS0: look for an OPT record in the additional section (root name, type 41).
  if (ar >= 1 && buf.length >= q.questionEnd + 11 && buf[q.questionEnd] === 0 &&
      buf.readUInt16BE(q.questionEnd + 1) === TYPE.OPT) {
    q.edns = true;
    q.udpSize = Math.min(65535, Math.max(512, buf.readUInt16BE(q.questionEnd + 3)));
  }
  return q;
}

export interface Answer { type: number; ttl: number; data: Buffer } // data = encoded RDATA

/** Builds a response; truncates (TC) when answers exceed maxSize. Owner names point at the question (0xc00c). */
export function buildResponse(req: Buffer, q: Query, rcode: number, answers: Answer[], maxSize: number): Buffer {
  const qlen = q.questionEnd - 12;
  const opt = q.edns ? 11 : 0;
  let size = 12 + qlen + opt;
  let n = 0;
  for (const a of answers) {
    const s = 12 + a.data.length;
    if (size + s > maxSize) break;
    size += s; n++;
  }
  const out = Buffer.alloc(size);
  out.writeUInt16BE(q.id, 0);
  const tc = n < answers.length ? 0x0200 : 0;
  out.writeUInt16BE(0x8000 | (q.opcode << 11) | 0x0400 | tc | (q.flags & 0x0100) | 0x0080 | rcode, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(n, 6);
  out.writeUInt16BE(q.edns ? 1 : 0, 10);
  req.copy(out, 12, 12, q.questionEnd);
  let off = q.questionEnd;
  for (let i = 0; i < n; i++) {
    const a = answers[i]!;
    out.writeUInt16BE(0xc00c, off); out.writeUInt16BE(a.type, off + 2); out.writeUInt16BE(1, off + 4);
    out.writeUInt32BE(a.ttl, off + 6); out.writeUInt16BE(a.data.length, off + 10);
    a.data.copy(out, off + 12); off += 12 + a.data.length;
  }
  // OPT: root name (0), type, class = our UDP size; TTL and RDLENGTH stay zero.
  if (q.edns) { out.writeUInt16BE(TYPE.OPT, off + 1); out.writeUInt16BE(4096, off + 3); }
  return out;
}

/** Header-only error response (FORMERR etc.); echoes the id when at least 2 bytes arrived. */
export function errorResponse(req: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  if (req.length >= 2) out.writeUInt16BE(req.readUInt16BE(0), 0);
  const opcode = req.length >= 3 ? (req[2]! >> 3) & 0xf : 0;
  out.writeUInt16BE(0x8000 | (opcode << 11) | rcode, 2);
  return out;
}

export function encodeName(name: string): Buffer {
  const parts = name.split('.').filter((p) => p.length > 0);
  const bufs = parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')]));
  return Buffer.concat([...bufs, Buffer.from([0])]);
}
