import { z } from 'zod';

// JSON form of the name table; the plugin will feed the same shape from etcd.
export const tableSchema = z.object({
  networks: z.array(z.object({ id: z.string().min(1), name: z.string().min(1) })),
  containers: z.array(z.object({
    id: z.string().min(1),
    name: z.string().min(1),
    hostname: z.string().optional(),
    serviceId: z.string().optional(),
    serviceName: z.string().optional(),
    upstreams: z.array(z.string()).optional(),
    endpoints: z.array(z.object({
      networkId: z.string().min(1), ip: z.string().min(1), ipv6: z.string().optional(),
      aliases: z.array(z.string()).default([]),
    })),
  })),
  services: z.array(z.object({
    id: z.string().min(1), name: z.string().min(1), mode: z.enum(['vip', 'dnsrr']),
    networks: z.array(z.object({ networkId: z.string().min(1), vip: z.string().optional(), aliases: z.array(z.string()).default([]) })),
  })).default([]),
});
export type TableInput = z.infer<typeof tableSchema>;

export interface Addrs { v4: string[]; v6: string[] }
/** Per-network index: lower-case name → addresses; ip → PTR name. Built once per table change. */
export interface NetIndex { id: string; name: string; names: Map<string, Addrs>; ptr: Map<string, string> }
export interface Table { nets: Map<string, NetIndex>; views: Map<string, string[]>; upstreams: Map<string, string[]> }

function add(m: Map<string, Addrs>, name: string, v4?: string, v6?: string): void {
  const k = name.toLowerCase();
  let a = m.get(k);
  if (!a) { a = { v4: [], v6: [] }; m.set(k, a); }
  if (v4 && !a.v4.includes(v4)) a.v4.push(v4);
  if (v6 && !a.v6.includes(v6)) a.v6.push(v6);
}

export function buildTable(raw: unknown): Table {
  const t = tableSchema.parse(raw);
  const nets = new Map<string, NetIndex>();
  for (const n of t.networks) nets.set(n.id, { id: n.id, name: n.name, names: new Map(), ptr: new Map() });
  const views = new Map<string, string[]>();
  const upstreams = new Map<string, string[]>();
  const svcById = new Map(t.services.map((s) => [s.id, s]));
  for (const c of t.containers) {
    views.set(c.id, c.endpoints.map((e) => e.networkId));
    if (c.upstreams) upstreams.set(c.id, c.upstreams);
    for (const e of c.endpoints) {
      const net = nets.get(e.networkId);
      if (!net) continue;
      const names = [c.name, c.id.slice(0, 12), ...e.aliases];
      if (c.hostname) names.push(c.hostname);
      for (const n of names) add(net.names, n, e.ip, e.ipv6);
      net.ptr.set(e.ip, `${c.name}.${net.name}`);
      if (e.ipv6) net.ptr.set(e.ipv6, `${c.name}.${net.name}`);
      const svc = c.serviceId ? svcById.get(c.serviceId) : undefined;
      const svcName = svc?.name ?? c.serviceName;
      if (svcName) {
        add(net.names, `tasks.${svcName}`, e.ip, e.ipv6);
        if (svc?.mode === 'dnsrr') {
          add(net.names, svcName, e.ip, e.ipv6);
          for (const a of svc.networks.find((x) => x.networkId === e.networkId)?.aliases ?? []) add(net.names, a, e.ip, e.ipv6);
        }
      }
    }
  }
  for (const s of t.services) {
    if (s.mode !== 'vip') continue;
    for (const sn of s.networks) {
      const net = nets.get(sn.networkId);
      if (!net || !sn.vip) continue;
      for (const n of [s.name, ...sn.aliases]) add(net.names, n, sn.vip);
    }
  }
  // `<name>.<network>` form for every name on each network.
  for (const net of nets.values()) {
    for (const [k, v] of [...net.names]) {
      const full = `${k}.${net.name.toLowerCase()}`;
      for (const ip of v.v4) add(net.names, full, ip);
      for (const ip of v.v6) add(net.names, full, undefined, ip);
    }
  }
  return { nets, views, upstreams };
}
