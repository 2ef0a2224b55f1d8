/**
 * `swarmnet status`, the pure part: the cluster as its etcd prefixes hold it → one summary. No I/O here; the reader
 * (ops/etcd-snapshot.ts) fetches the prefixes with a bounded number of range reads and this file never asks for more.
 */
import { isRecord } from '../common/docker-view.js';
import { ALLOCATION_CALLS, type NodeStatusRecord, type Refusal } from '../plugin/node-status.js';
import { takesTraffic, viewRecords, type ViewContainer } from './view-records.js';

type KV = Map<string, string>;

/** A refusal needs attention this long (the user is likely still looking at what failed); `refusals` keeps it. */
export const RECENT_REFUSAL_MS = 15 * 60_000;


/** The prefixes `status` reads (keys relative to ETCD_PREFIX), each with one paginated range read. */
export const STATUS_PREFIXES = {
  nodes: '/swarmnet/nodes/',
  networks: '/swarmnet/networks/',
  nodeSubnets: '/swarmnet/node-subnets/',
  endpoints: '/swarmnet/endpoints/',
  view: '/swarmnet/docker/',
} as const;
export type StatusSnapshot = Record<keyof typeof STATUS_PREFIXES, KV>;

export interface NodeSummary extends Omit<NodeStatusRecord, 'refusals'> {
  /** Host subnets this node holds, by network (subnet). */
  hostSubnets: Record<string, string>;
  endpoints: number;
}
export interface NetworkSummary {
  subnet: string;
  /** Docker's name and id, where a manager mirrored them. */
  name?: string;
  dockerId?: string;
  vni: number;
  flannelId?: string;
  mtu?: number;
  /** node → host subnet */
  hosts: Record<string, string>;
  /** node → endpoints */
  endpoints: Record<string, number>;
}
export interface ServiceSummary {
  id: string;
  name: string;
  mode: 'vip' | 'dnsrr';
  /** network name (or id) → VIP */
  vips: Record<string, string>;
  tasks: number;
  /** Tasks whose containers are healthy (or have no healthcheck) and not being stopped: what the VIP sends to. */
  healthy: number;
}
export interface ClusterStatus {
  nodes: NodeSummary[];
  networks: NetworkSummary[];
  services: ServiceSummary[];
  refusals: (Refusal & { node: string })[];
  /** Plain sentences, one per thing an operator should look at; empty when all is well. */
  attention: string[];
  /** Records that could not be read (a bad value in etcd): counted, never fatal. */
  unreadable: number;
}

export const parseJson = (v: string): unknown => {
  try { return JSON.parse(v); } catch { return undefined; }
};
const rest = (key: string, prefix: string): string[] => key.slice(prefix.length).split('/');
const keyToCidr = (k: string): string => k.replace(/-(\d+)$/, '/$1');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const optNum = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
/** A plane's `failing` (a reconciler that cannot complete: its error and since when), kept only when present. */
const failingOf = (v: unknown): { failing?: { error: string; since: number } } => (isRecord(v) ? { failing: { error: str(v.error), since: num(v.since) } } : {});
export const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** A node's status record as published (plugin/node-status.ts), validated; undefined if it is none. */
export function nodeRecord(v: unknown): NodeStatusRecord | undefined {
  if (!isRecord(v) || !str(v.node)) return undefined;
  const o = isRecord(v.overlay) ? v.overlay : {};
  const d = isRecord(v.dns) ? v.dns : {};
  const l = isRecord(v.lb) ? v.lb : {};
  const refusals = Array.isArray(v.refusals) ? v.refusals.filter(isRecord).map((r) => ({ at: num(r.at), call: str(r.call), error: str(r.error) })) : [];
  return {
    node: str(v.node), publicIp: str(v.publicIp), version: str(v.version), manager: v.manager === true, startedAt: num(v.startedAt),
    overlay: {
      checkedAt: optNum(o.checkedAt), changedAt: optNum(o.changedAt), runs: num(o.runs), failedRuns: num(o.failedRuns),
      drift: isRecord(o.drift) ? Object.fromEntries(Object.entries(o.drift).filter(([, d]) => isRecord(d)).map(([k, d]) => [k, { count: num((d as Record<string, unknown>).count), lastAt: num((d as Record<string, unknown>).lastAt) }])) : {},
      ...failingOf(o.failing),
      ...(str(o.fastPath) ? { fastPath: str(o.fastPath) } : {}),
    },
    dns: { served: num(d.served), waiting: num(d.waiting), serveFailures: num(d.serveFailures), repairs: num(d.repairs), ...(optNum(d.repairedAt) ? { repairedAt: optNum(d.repairedAt) } : {}) },
    lb: {
      backend: str(l.backend), vips: num(l.vips), backends: num(l.backends), checkedAt: optNum(l.checkedAt), changedAt: optNum(l.changedAt),
      repairedAt: optNum(l.repairedAt), failures: num(l.failures), repairs: num(l.repairs), refusedAt: optNum(l.refusedAt),
      ...failingOf(l.failing),
    },
    ...(isRecord(v.ipam) ? { ipam: { unused: num(v.ipam.unused), sample: Array.isArray(v.ipam.sample) ? v.ipam.sample.filter((x): x is string => typeof x === 'string') : [], checkedAt: optNum(v.ipam.checkedAt) } } : {}),
    refusals,
  };
}

/** Builds the summary. `prefix` is ETCD_PREFIX; `now` (epoch ms) dates what is stale. */
export function buildStatus(prefix: string, s: StatusSnapshot, now: number, staleMs: number): ClusterStatus {
  const p = (k: keyof typeof STATUS_PREFIXES): string => `${prefix}${STATUS_PREFIXES[k]}`;
  let unreadable = 0;
  const attention: string[] = [];

  const nodes = new Map<string, NodeSummary>();
  const refusals: ClusterStatus['refusals'] = [];
  for (const [k, v] of s.nodes) {
    const rec = nodeRecord(parseJson(v));
    if (!rec || rest(k, p('nodes'))[0] !== rec.node) { unreadable++; continue; }
    const { refusals: r, ...summary } = rec;
    nodes.set(rec.node, { ...summary, hostSubnets: {}, endpoints: 0 });
    for (const x of r) refusals.push({ node: rec.node, ...x });
  }

  // Docker's names for networks, services and their tasks (the view the managers and nodes mirror).
  const view = viewRecords(prefix, s.view);
  unreadable += view.unreadable;
  const dockerNets = view.networks;
  const tasks = new Map<string, ViewContainer[]>();
  for (const c of view.containers) {
    if (!c.serviceId) continue;
    const list = tasks.get(c.serviceId) ?? [];
    list.push(c);
    tasks.set(c.serviceId, list);
  }

  const networks = new Map<string, NetworkSummary>();
  const bySubnet = new Map([...dockerNets].map(([id, n]) => [n.subnet, id]));
  for (const [k, v] of s.networks) {
    const val = parseJson(v);
    if (!isRecord(val) || !str(val.subnet)) { unreadable++; continue; }
    const dockerId = str(val.dockerNetworkId) || bySubnet.get(str(val.subnet));
    networks.set(rest(k, p('networks'))[0]!, {
      subnet: str(val.subnet), vni: num(val.vni), hosts: {}, endpoints: {},
      ...(dockerId ? { dockerId, ...(dockerNets.get(dockerId)?.name ? { name: dockerNets.get(dockerId)!.name } : {}) } : {}),
      ...(str(val.flannelId) ? { flannelId: str(val.flannelId) } : {}),
      ...(optNum(val.mtu) ? { mtu: optNum(val.mtu) } : {}),
    });
  }
  for (const [k, v] of s.nodeSubnets) {
    const [net, node] = rest(k, p('nodeSubnets'));
    const n = networks.get(net ?? '');
    if (!n || !node) { unreadable++; continue; }
    n.hosts[node] = keyToCidr(v);
    const ns = nodes.get(node);
    if (ns) ns.hostSubnets[n.subnet] = keyToCidr(v);
    else attention.push(`node ${node} holds host subnet ${keyToCidr(v)} of ${n.name ?? n.subnet} but publishes no status: its plugin is older than this CLI or not running`);
  }
  for (const [k, v] of s.endpoints) {
    const [node] = rest(k, p('endpoints'));
    const val = parseJson(v);
    if (!node || !isRecord(val)) { unreadable++; continue; }
    const n = networks.get(str(val.networkId));
    if (n) n.endpoints[node] = (n.endpoints[node] ?? 0) + 1;
    const ns = nodes.get(node);
    if (ns) ns.endpoints++;
  }

  const netName = (dockerId: string): string => dockerNets.get(dockerId)?.name || dockerId;
  const serviceSummaries: ServiceSummary[] = [...view.services].map(([id, svc]) => {
    const list = tasks.get(id) ?? [];
    const healthy = list.filter((t) => takesTraffic(svc, t)).length;
    return {
      id, name: svc.name, mode: svc.mode, tasks: list.length, healthy,
      vips: Object.fromEntries(Object.entries(svc.vips).map(([net, ip]) => [netName(net), ip])),
    };
  });

  for (const n of nodes.values()) {
    if (n.dns.serveFailures > 0) attention.push(`node ${n.node}: ${n.dns.serveFailures} container namespace(s) could not be served by swarmnet's DNS (they keep Docker's resolver); see its plugin log`);
    if (n.lb.failing) attention.push(`node ${n.node}: its load balancer cannot write the kernel since ${ago(now, n.lb.failing.since)}: ${n.lb.failing.error}`);
    for (const [what, at] of [['overlay', n.overlay.checkedAt], ['load balancer', n.lb.checkedAt]] as const) {
      if (at !== undefined && now - at > staleMs) attention.push(`node ${n.node}: its ${what} was last checked ${ago(now, at)}: its reconciler may be stuck`);
    }
  }
  for (const svc of serviceSummaries) {
    if (svc.tasks > 0 && svc.healthy === 0) attention.push(`service ${svc.name}: none of its ${svc.tasks} task(s) is healthy: ${svc.mode === 'vip' ? 'its VIP refuses connections' : 'its name has no address'}`);
  }
  for (const r of refusals) {
    if (now - r.at <= RECENT_REFUSAL_MS && ALLOCATION_CALLS.has(r.call)) attention.push(`node ${r.node} refused ${r.call.replace(/^\//, '')} ${ago(now, r.at)}: ${r.error}`);
  }

  const byName = <T>(f: (x: T) => string) => (a: T, b: T) => f(a).localeCompare(f(b));
  return {
    nodes: [...nodes.values()].sort(byName((n) => n.node)),
    networks: [...networks.values()].sort(byName((n) => n.name ?? n.subnet)),
    services: serviceSummaries.sort(byName((x) => x.name)),
    refusals: refusals.sort((a, b) => a.at - b.at),
    attention,
    unreadable,
  };
}

/** "12 s ago", "3 min ago", "2 h ago". */
export function ago(now: number, at: number): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
