import { buildResponse, errorResponse, encodeName, parseQuery, FormatError, RCODE, TYPE, type Answer, type Query } from './codec.js';
import type { Addrs, NetIndex, Table } from './table.js';

export const TTL = 600;

export type Outcome =
  | { kind: 'answer'; response: Buffer }
  | { kind: 'forward'; query: Query; upstreams: string[] | undefined };

/** Addresses visible to a view. compat=true: Docker's walk, first attached network with the name wins;
 *  compat=false: union over all attached networks, ordered by network name (deterministic). */
export function lookup(table: Table, view: string, name: string, compat: boolean): Addrs | undefined {
  const nets = (table.views.get(view) ?? []).map((id) => table.nets.get(id)).filter((n): n is NetIndex => !!n);
  if (compat) {
    for (const n of nets) { const a = n.names.get(name); if (a) return a; }
    return undefined;
  }
  let out: Addrs | undefined;
  for (const n of [...nets].sort((x, y) => x.name.localeCompare(y.name))) {
    const a = n.names.get(name);
    if (!a) continue;
    out ??= { v4: [], v6: [] };
    for (const ip of a.v4) if (!out.v4.includes(ip)) out.v4.push(ip);
    for (const ip of a.v6) if (!out.v6.includes(ip)) out.v6.push(ip);
  }
  return out;
}

function ptrTarget(table: Table, view: string, qname: string): string | undefined {
  if (!qname.endsWith('.in-addr.arpa')) return undefined;
  const parts = qname.slice(0, -'.in-addr.arpa'.length).split('.');
  if (parts.length !== 4) return undefined;
  const ip = parts.reverse().join('.');
  for (const id of table.views.get(view) ?? []) {
    const hit = table.nets.get(id)?.ptr.get(ip);
    if (hit) return hit;
  }
  return undefined;
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); [a[i], a[j]] = [a[j]!, a[i]!]; }
  return a;
}

function ipv4(ip: string): Buffer { return Buffer.from(ip.split('.').map(Number)); }
function ipv6(ip: string): Buffer {
  const [head = '', tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return b;
}

/** Answers from the table, or says to forward. Malformed → FORMERR; non-QUERY → NOTIMP. */
export function resolve(table: Table, view: string, req: Buffer, compat: boolean, maxSize?: number): Outcome {
  let q: Query;
  try { q = parseQuery(req); } catch (e) {
    if (e instanceof FormatError) return { kind: 'answer', response: errorResponse(req, RCODE.FORMERR) };
    throw e;
  }
  const size = maxSize ?? q.udpSize;
  if (q.opcode !== 0) return { kind: 'answer', response: errorResponse(req, RCODE.NOTIMP) };
  if (q.qtype === TYPE.PTR) {
    const target = ptrTarget(table, view, q.name);
    if (target) return { kind: 'answer', response: buildResponse(req, q, RCODE.NOERROR, [{ type: TYPE.PTR, ttl: TTL, data: encodeName(target) }], size) };
    return { kind: 'forward', query: q, upstreams: table.upstreams.get(view) };
  }
  const addrs = lookup(table, view, q.name, compat);
  if (!addrs) return { kind: 'forward', query: q, upstreams: table.upstreams.get(view) };
  let answers: Answer[] = [];
  if (q.qtype === TYPE.A) answers = addrs.v4.map((ip) => ({ type: TYPE.A, ttl: TTL, data: ipv4(ip) }));
  else if (q.qtype === TYPE.AAAA) answers = addrs.v6.map((ip) => ({ type: TYPE.AAAA, ttl: TTL, data: ipv6(ip) }));
  // Known name, other type → NODATA (never forwarded).
  return { kind: 'answer', response: buildResponse(req, q, RCODE.NOERROR, shuffle(answers), size) };
}
