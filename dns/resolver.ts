import {
  buildResponse, encodeName, errorResponse, FormatError, ipv4Bytes, ipv6Bytes, isResponse, parseQuery, RCODE, TYPE,
  type Answer, type Query,
} from './codec.js';
import { addresses, EMPTY_VIEW, type Table, type View } from './table.js';

/** TTL of every locally generated record (Docker's respTTL). */
export const TTL = 600;
const CLASS_IN = 1;
const CACHE_MAX = 100_000;

export type Outcome =
  | { kind: 'answer'; response: Buffer }
  | { kind: 'drop' }
  | { kind: 'forward'; query: Query; upstreams: string[] | undefined };

/** Local result for one family: the addresses, "name known but no such records" (NODATA), or unknown. */
type Hit = Answer[] | 'nodata' | undefined;

/** The candidate (name, network-name) splits Docker tries, in order: `a.b.c`; `a.b` on `c`; `a` on `b.c`. */
export function variations(name: string): [string, string][] {
  const out: [string, string][] = [[name, '']];
  if (name.includes('\\')) return out; // escaped dots are not label boundaries; such names never carry a network part
  for (let i = name.lastIndexOf('.'); i > 0; i = name.lastIndexOf('.', i - 1)) out.push([name.slice(0, i), name.slice(i + 1)]);
  return out;
}

/**
 * Addresses of one family for `name` in a view.
 * compat=true (Docker): walk the attached networks in order; the first with addresses of that family wins.
 * compat=false: the union over every attached network (walk order, de-duplicated).
 * Both: the first name variation that matches anything (either family) ends the search; a match without the
 * asked family is NODATA, never forwarded.
 */
export function lookup(view: View, name: string, family: 4 | 6, compat: boolean): string[] | 'nodata' | undefined {
  for (const [req, netName] of variations(name)) {
    let known = false;
    let union: string[] | undefined;
    for (const net of view.nets) {
      if (netName && net.name !== netName) continue;
      const a = net.names.get(req);
      if (a === undefined) continue;
      known = true;
      const ips = addresses(a, family);
      if (!ips.length) continue;
      // An address two owners give one name is listed twice in the index (dns/table.ts LiveNet).
      if (compat) return ips.length > 1 ? [...new Set(ips)] : ips.slice();
      union ??= [];
      for (const ip of ips) if (!union.includes(ip)) union.push(ip);
    }
    if (union) return union;
    if (known) return 'nodata';
  }
  return undefined;
}

/** PTR query name → table key (dotted IPv4, or 32 hex digits for IPv6); undefined if it is no address. */
export function reverseKey(qname: string): string | undefined {
  if (qname.endsWith('.in-addr.arpa')) {
    const parts = qname.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) < 256)) return undefined;
    return parts.reverse().join('.');
  }
  if (qname.endsWith('.ip6.arpa')) {
    const parts = qname.slice(0, -'.ip6.arpa'.length).split('.');
    if (parts.length !== 32 || !parts.every((p) => /^[0-9a-f]$/.test(p))) return undefined;
    return parts.reverse().join('');
  }
  return undefined;
}

export function ptrLookup(view: View, key: string): string | undefined {
  for (const net of view.nets) { const hit = net.ptr.get(key); if (hit) return `${hit.toLowerCase()}.${net.name}`; }
  return undefined;
}

function shuffled(a: Answer[]): Answer[] {
  if (a.length < 2) return a;
  const b = a.slice();
  for (let i = b.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); const x = b[i]!; b[i] = b[j]!; b[j] = x; }
  return b;
}

export interface ResolverOptions { compat: boolean }

/**
 * Answers queries from an immutable table; a new table means a new Resolver (the per-view cache of encoded answers
 * lives and dies with it).
 */
export class Resolver {
  /** view id → qtype → name → answer: nested maps, so a lookup builds no key string (measurable at 100k qps). */
  private readonly cache = new Map<string, Map<number, Map<string, Hit>>>();
  private cached = 0;
  constructor(readonly table: Table, private readonly opts: ResolverOptions) {}

  view(id: string): View { return this.table.views.get(id) ?? EMPTY_VIEW; }

  /** The view of the container owning a source address (one listener shared by many containers). */
  viewOfAddress(ip: string): string { return this.table.viewByIp.get(ip.startsWith('::ffff:') ? ip.slice(7) : ip) ?? ''; }

  private hit(viewId: string, view: View, name: string, qtype: number): Hit {
    let byType = this.cache.get(viewId);
    if (!byType) { byType = new Map(); this.cache.set(viewId, byType); }
    let byName = byType.get(qtype);
    if (!byName) { byName = new Map(); byType.set(qtype, byName); }
    if (byName.has(name)) return byName.get(name);
    let hit: Hit;
    if (qtype === TYPE.A || qtype === TYPE.AAAA) {
      const r = lookup(view, name, qtype === TYPE.A ? 4 : 6, this.opts.compat);
      hit = Array.isArray(r) ? r.map((ip) => ({ type: qtype, data: qtype === TYPE.A ? ipv4Bytes(ip) : ipv6Bytes(ip) })) : r;
    } else if (qtype === TYPE.PTR) {
      const k = reverseKey(name);
      const target = k === undefined ? undefined : ptrLookup(view, k);
      hit = target === undefined ? undefined : [{ type: TYPE.PTR, data: encodeName(target) }];
    } else {
      // Any other type for a name we own: NODATA (Docker's "implicit MX"; for TXT & co. Docker forwards, which lets
      // an upstream NXDOMAIN deny a name that exists, so we do not).
      hit = lookup(view, name, 4, true) !== undefined || lookup(view, name, 6, true) !== undefined ? 'nodata' : undefined;
    }
    if (++this.cached > CACHE_MAX) { this.cache.clear(); this.cached = 1; byName = new Map([[name, hit]]); this.cache.set(viewId, new Map([[qtype, byName]])); }
    else byName.set(name, hit);
    return hit;
  }

  /**
   * Query bytes → response, or a decision to forward. Responses (QR set) and sub-header garbage are dropped;
   * malformed queries get FORMERR, opcodes other than QUERY get NOTIMP. maxSize: 65535 over TCP, else the
   * client's UDP size.
   */
  resolve(req: Buffer, viewId: string, maxSize?: number): Outcome {
    if (req.length < 12 || isResponse(req)) return { kind: 'drop' };
    let q: Query;
    try { q = parseQuery(req); } catch (e) {
      if (e instanceof FormatError) return { kind: 'answer', response: errorResponse(req, RCODE.FORMERR) };
      throw e;
    }
    if (q.opcode !== 0) return { kind: 'answer', response: errorResponse(req, RCODE.NOTIMP) };
    const view = this.view(viewId);
    const local = q.qclass === CLASS_IN && q.name !== '';
    const hit = local ? this.hit(viewId, view, q.name, q.qtype) : undefined;
    const size = Math.min(65535, maxSize ?? q.udpSize);
    if (hit === 'nodata') return { kind: 'answer', response: buildResponse(req, q, RCODE.NOERROR, [], TTL, size) };
    if (hit) return { kind: 'answer', response: buildResponse(req, q, RCODE.NOERROR, shuffled(hit), TTL, size) };
    // Docker's ndots rule: the container set its own ndots, so a bare name goes back to it to retry with search domains.
    if (view.ndots && local && (q.qtype === TYPE.A || q.qtype === TYPE.AAAA) && !q.name.includes('.')) {
      return { kind: 'answer', response: buildResponse(req, q, RCODE.NOERROR, [], TTL, size) };
    }
    return { kind: 'forward', query: q, upstreams: view.upstreams };
  }
}

