import { z } from 'zod';
import { ipv6Bytes } from './codec.js';
import { parseUpstream } from './upstreams.js';

const isUpstream = (s: string): boolean => { try { parseUpstream(s); return true; } catch { return false; } };

// JSON form of the name table (docs/dns.md); the plugin feeds the same shape from its cluster state.
const name = z.string().min(1).max(253);
export const tableSchema = z.object({
  networks: z.array(z.object({
    id: z.string().min(1),
    name,
    /** Internal networks sort after the others in a container's walk, as in libnetwork's endpoint order. */
    internal: z.boolean().default(false),
  })),
  containers: z.array(z.object({
    id: z.string().min(1),
    name: name.transform((n) => n.replace(/^\//, '')),
    hostname: name.optional(),
    /** Swarm task: the service it belongs to (by id). */
    serviceId: z.string().optional(),
    /** The container's --dns servers ("ip" or "ip:port"); absent → the host's resolv.conf. */
    upstreams: z.array(z.string().min(1).refine(isUpstream, { message: 'not an IP literal, "ip:port" or "[ipv6]:port"' })).max(3).optional(),
    /** The container's resolv.conf had its own ndots option (Docker's sb.ndotsSet). */
    ndots: z.boolean().default(false),
    /** False: a task whose HEALTHCHECK has not reported healthy yet. It has a view but no names (Docker's rule). */
    live: z.boolean().default(true),
    endpoints: z.array(z.object({
      networkId: z.string().min(1),
      ip: z.ipv4(),
      ipv6: z.ipv6().optional(),
      aliases: z.array(name).default([]),
    })),
  })),
  services: z.array(z.object({
    id: z.string().min(1),
    name,
    mode: z.enum(['vip', 'dnsrr']),
    networks: z.array(z.object({
      networkId: z.string().min(1),
      vip: z.ipv4().optional(),
      /** Service-spec network aliases (a stack's short names are these). */
      aliases: z.array(name).default([]),
    })),
  })).default([]),
});
export type TableInput = z.input<typeof tableSchema>;
type TableParsed = z.output<typeof tableSchema>;

export interface Addrs { v4: string[]; v6: string[] }
/**
 * Per network: lower-case name → addresses (one IPv4 address as a plain string: most names have exactly one, and a
 * node may index 100,000 containers); address (dotted IPv4 / 32 hex digits IPv6) → the owner's name, which answers
 * PTR as `<name>.<network>`.
 */
export interface NetIndex { id: string; name: string; internal: boolean; names: Map<string, string | Addrs>; ptr: Map<string, string> }

/** A name's addresses of one family. */
export function addresses(a: string | Addrs, family: 4 | 6): string[] {
  if (typeof a === 'string') return family === 4 ? [a] : [];
  return family === 4 ? a.v4 : a.v6;
}
export interface View {
  /** Attached networks in Docker's walk order: non-internal first, then by network name. */
  nets: NetIndex[];
  upstreams: string[] | undefined;
  ndots: boolean;
}
export interface Table { nets: Map<string, NetIndex>; views: Map<string, View>; viewByIp: Map<string, string> }

export const EMPTY_VIEW: View = { nets: [], upstreams: undefined, ndots: false };

/** What one owner (a container's endpoint, a service's VIP) puts into a network's index. */
export interface Contribution {
  /** (lower-case name, address) pairs, in Docker's order, each pair once. */
  names: [string, string][];
  /** (address key, PTR name): the first owner of an address names it. */
  ptr: [string, string][];
}

/**
 * A network's index, kept up to date contribution by contribution: the caller removes exactly what it added (it
 * recomputes the old contribution from the old record before changing it), so a change costs the size of that
 * record's names, not of the network. Memory matters here (a node may index 100,000 tasks): nothing per owner is
 * kept, a single address is a plain string, an address two owners give one name is listed twice (answers are
 * de-duplicated when read, dns/resolver.ts), and PTR contention is tracked only where it happens.
 */
export class LiveNet implements NetIndex {
  readonly names = new Map<string, string | Addrs>();
  readonly ptr = new Map<string, string>();
  /** Further PTR names of an address that already has one, in arrival order. */
  private readonly ptrWaiting = new Map<string, string[]>();

  constructor(readonly id: string, public name: string, public internal = false) {}

  add(c: Contribution | undefined): void {
    if (!c) return;
    for (const [k, ip] of c.names) {
      const a = this.names.get(k);
      if (a === undefined && !ip.includes(':')) this.names.set(k, ip);
      else {
        const addrs = typeof a === 'object' ? a : { v4: a === undefined ? [] : [a], v6: [] as string[] };
        (ip.includes(':') ? addrs.v6 : addrs.v4).push(ip);
        if (addrs !== a) this.names.set(k, addrs);
      }
    }
    for (const [key, name] of c.ptr) {
      if (!this.ptr.has(key)) { this.ptr.set(key, name); continue; }
      const w = this.ptrWaiting.get(key);
      if (w) w.push(name); else this.ptrWaiting.set(key, [name]);
    }
  }

  remove(c: Contribution | undefined): void {
    if (!c) return;
    for (const [k, ip] of c.names) {
      const a = this.names.get(k);
      if (a === undefined) continue;
      if (typeof a === 'string') { if (a === ip) this.names.delete(k); continue; }
      const list = ip.includes(':') ? a.v6 : a.v4;
      const at = list.lastIndexOf(ip);
      if (at >= 0) list.splice(at, 1);
      if (!a.v6.length && a.v4.length === 1) this.names.set(k, a.v4[0]!);
      else if (!a.v4.length && !a.v6.length) this.names.delete(k);
    }
    for (const [key, name] of c.ptr) {
      const w = this.ptrWaiting.get(key);
      const at = w ? w.indexOf(name) : -1;
      if (at >= 0) w!.splice(at, 1);
      else if (this.ptr.get(key) === name) {
        const next = w?.shift();
        if (next === undefined) this.ptr.delete(key); else this.ptr.set(key, next);
      }
      if (w && !w.length) this.ptrWaiting.delete(key);
    }
  }
}

/** What a container's names are made of (a validated table entry, or the plugin's compact record). */
export type NamedContainer = Pick<TableParsed['containers'][number], 'id' | 'name' | 'hostname' | 'live'>;
/** A service as its names need it (a validated table entry, or the plugin's record). */
export type NamedService = TableParsed['services'][number];
export type Endpoint = TableParsed['containers'][number]['endpoints'][number];

/**
 * A container's names on one network (Docker's DNSNames order: container name, which is also the PTR name, network
 * aliases, short ID, hostname) and, for a task, its service's `tasks.` names (and the service names under DNSRR).
 * Nothing while a task is not healthy yet.
 */
export function endpointContribution(c: NamedContainer, e: Endpoint, svc: NamedService | undefined): Contribution | undefined {
  if (!c.live) return undefined;
  const names: [string, string][] = [];
  const ptr: [string, string][] = [];
  const addrs = e.ipv6 ? [e.ip, e.ipv6] : [e.ip];
  // The same name twice (the hostname is the short id by default) is one name.
  const own = [...new Set([c.name, ...e.aliases, c.id.slice(0, 12), ...(c.hostname ? [c.hostname] : [])].map((n) => n.toLowerCase()))];
  for (const n of own) for (const ip of addrs) names.push([n, ip]);
  ptr.push([e.ip, c.name]);
  if (e.ipv6) ptr.push([ipv6Bytes(e.ipv6).toString('hex'), c.name]);
  if (svc) {
    const svcAliases = svc.networks.find((x) => x.networkId === e.networkId)?.aliases ?? [];
    for (const n of new Set([svc.name, ...svcAliases].map((x) => x.toLowerCase()))) {
      for (const ip of addrs) {
        names.push([`tasks.${n}`, ip]);
        if (svc.mode === 'dnsrr') names.push([n, ip]);
      }
    }
  }
  return { names, ptr };
}

/** VIP mode: the service name and its aliases resolve to the VIP on that network (no PTR, as Docker's ipMapUpdate=false). */
export function vipContribution(s: NamedService, networkId: string): Contribution | undefined {
  const sn = s.networks.find((x) => x.networkId === networkId);
  if (s.mode !== 'vip' || !sn?.vip) return undefined;
  return { names: [...new Set([s.name, ...sn.aliases].map((n) => n.toLowerCase()))].map((n) => [n, sn.vip!] as [string, string]), ptr: [] };
}

/** Docker's walk order of a container's networks: non-internal first, then by network name. */
export function walkOrder(nets: NetIndex[]): NetIndex[] {
  return nets.sort((a, b) => (a.internal === b.internal ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.internal ? 1 : -1));
}

/** Validates the JSON form (throws a ZodError with the path of the first problem) and indexes it. */
export function buildTable(raw: unknown): Table {
  const t = tableSchema.parse(raw);
  const nets = new Map<string, LiveNet>();
  for (const n of t.networks) nets.set(n.id, new LiveNet(n.id, n.name.toLowerCase(), n.internal));
  const svcById = new Map(t.services.map((s) => [s.id, s]));
  const views = new Map<string, View>();
  const viewByIp = new Map<string, string>();
  const walk = (ids: string[]): NetIndex[] => walkOrder([...new Set(ids)].map((id) => nets.get(id)).filter((n): n is LiveNet => !!n));
  // A source address two containers claim (networks with overlapping subnets) identifies neither: last-one-wins would
  // answer one container from the other's networks.
  const shared = new Set<string>();
  const claim = (ip: string, id: string): void => {
    const had = viewByIp.get(ip);
    if (had === id) return;
    if (had === undefined && !shared.has(ip)) { viewByIp.set(ip, id); return; }
    viewByIp.delete(ip);
    shared.add(ip);
  };
  for (const c of t.containers) {
    views.set(c.id, { nets: walk(c.endpoints.map((e) => e.networkId)), upstreams: c.upstreams, ndots: c.ndots });
    const svc = c.serviceId ? svcById.get(c.serviceId) : undefined;
    for (const e of c.endpoints) {
      const net = nets.get(e.networkId);
      if (!net) continue;
      claim(e.ip, c.id);
      if (e.ipv6) claim(e.ipv6, c.id);
      net.add(endpointContribution(c, e, svc));
    }
  }
  for (const s of t.services) for (const sn of s.networks) nets.get(sn.networkId)?.add(vipContribution(s, sn.networkId));
  return { nets, views, viewByIp };
}
