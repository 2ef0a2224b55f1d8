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
  /** Views that are not a container's record: the plugin serves a network namespace (by its path) from the moment
   * Docker joins it, before the container's record exists. */
  views: z.array(z.object({
    id: z.string().min(1),
    networks: z.array(z.string().min(1)),
    ndots: z.boolean().default(false),
    upstreams: z.array(z.string().min(1).refine(isUpstream, { message: 'not an IP literal, "ip:port" or "[ipv6]:port"' })).max(3).optional(),
  })).default([]),
});
export type TableInput = z.input<typeof tableSchema>;
/** The validated form: what the plugin's cluster view produces directly (its records are validated as they arrive). */
export type TableParsed = z.output<typeof tableSchema>;

export interface Addrs { v4: string[]; v6: string[] }
/** Per network: lower-case name → addresses; address (dotted IPv4 / 32 hex digits IPv6) → PTR name. */
export interface NetIndex { id: string; name: string; internal: boolean; names: Map<string, Addrs>; ptr: Map<string, string> }
export interface View {
  /** Attached networks in Docker's walk order: non-internal first, then by network name. */
  nets: NetIndex[];
  upstreams: string[] | undefined;
  ndots: boolean;
}
export interface Table { nets: Map<string, NetIndex>; views: Map<string, View>; viewByIp: Map<string, string> }

export const EMPTY_VIEW: View = { nets: [], upstreams: undefined, ndots: false };

function add(m: Map<string, Addrs>, key: string, v4?: string, v6?: string): void {
  const k = key.toLowerCase();
  let a = m.get(k);
  if (!a) { a = { v4: [], v6: [] }; m.set(k, a); }
  if (v4 && !a.v4.includes(v4)) a.v4.push(v4);
  if (v6 && !a.v6.includes(v6)) a.v6.push(v6);
}

/** Validates the JSON form (throws a ZodError with the path of the first problem) and indexes it. */
export function buildTable(raw: unknown): Table {
  return indexTable(tableSchema.parse(raw));
}

/** Indexes an already validated table. */
export function indexTable(t: TableParsed): Table {
  const nets = new Map<string, NetIndex>();
  for (const n of t.networks) nets.set(n.id, { id: n.id, name: n.name.toLowerCase(), internal: n.internal, names: new Map(), ptr: new Map() });
  const svcById = new Map(t.services.map((s) => [s.id, s]));
  const views = new Map<string, View>();
  const viewByIp = new Map<string, string>();
  const walk = (ids: string[]): NetIndex[] => {
    const attached = [...new Set(ids)].map((id) => nets.get(id)).filter((n): n is NetIndex => !!n);
    return attached.sort((a, b) => (a.internal === b.internal ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.internal ? 1 : -1));
  };
  for (const v of t.views) views.set(v.id, { nets: walk(v.networks), upstreams: v.upstreams, ndots: v.ndots });
  for (const c of t.containers) {
    views.set(c.id, { nets: walk(c.endpoints.map((e) => e.networkId)), upstreams: c.upstreams, ndots: c.ndots });
    if (!c.live) continue;
    const svc = c.serviceId ? svcById.get(c.serviceId) : undefined;
    for (const e of c.endpoints) {
      const net = nets.get(e.networkId);
      if (!net) continue;
      viewByIp.set(e.ip, c.id);
      if (e.ipv6) viewByIp.set(e.ipv6, c.id);
      // Docker's DNSNames order: container name (also the PTR name), network aliases, short ID, hostname.
      for (const n of [c.name, ...e.aliases, c.id.slice(0, 12), ...(c.hostname ? [c.hostname] : [])]) add(net.names, n, e.ip, e.ipv6);
      const ptrName = `${c.name.toLowerCase()}.${net.name}`;
      if (!net.ptr.has(e.ip)) net.ptr.set(e.ip, ptrName);
      const v6key = e.ipv6 ? ipv6Bytes(e.ipv6).toString('hex') : undefined;
      if (v6key && !net.ptr.has(v6key)) net.ptr.set(v6key, ptrName);
      if (!svc) continue;
      const svcAliases = svc.networks.find((x) => x.networkId === e.networkId)?.aliases ?? [];
      for (const n of [svc.name, ...svcAliases]) {
        add(net.names, `tasks.${n}`, e.ip, e.ipv6);
        if (svc.mode === 'dnsrr') add(net.names, n, e.ip, e.ipv6);
      }
    }
  }
  // VIP mode: the service name and its aliases resolve to the VIP (which has no PTR, like Docker's ipMapUpdate=false).
  for (const s of t.services) {
    if (s.mode !== 'vip') continue;
    for (const sn of s.networks) {
      const net = nets.get(sn.networkId);
      if (!net || !sn.vip) continue;
      for (const n of [s.name, ...sn.aliases]) add(net.names, n, sn.vip);
    }
  }
  return { nets, views, viewByIp };
}
