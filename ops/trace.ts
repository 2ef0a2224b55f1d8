/**
 * `swarmnet trace`, the pure part: the path a connection from a container takes, from the cluster state in etcd
 * (the same snapshot `status` reads): the DNS answer when the destination is a name (ops/dns-query.ts), a service
 * VIP → the backends this node's load balancer picks from, and for each address the node that holds it — on the
 * client's own node (the bridge) or across VXLAN to that node's public address — or Docker's egress for anything
 * outside swarmnet's networks.
 */
import { isIPv4 } from 'node:net';
import { contains, keyToCidr, parseCidr, parseIp } from '../common/cidr.js';
import { isRecord } from '../common/docker-view.js';
import { queryAsContainer, type DnsQueryResult } from './dns-query.js';
import { nodeRecord, parseJson, str, STATUS_PREFIXES, type StatusSnapshot } from './status-model.js';
import { findContainer, QueryError, takesTraffic, viewRecords, type ViewContainer } from './view-records.js';

export interface Hop {
  address: string;
  /** The container holding the address, where Docker's view has it. */
  container?: string;
  node?: string;
  /** local: on the client's node, through its bridge; vxlan: to `via` (that node's public address); unknown: nobody holds it. */
  path: 'local' | 'vxlan' | 'unknown';
  via?: string;
}

export interface TraceTarget {
  address: string;
  kind: 'vip' | 'address' | 'outside' | 'unreachable';
  network?: string;
  service?: string;
  /** vip: the backends the client node's load balancer picks from (same port); address: the one hop. */
  hops: Hop[];
  note: string;
}

export interface TraceResult {
  from: { id: string; name: string; node: string; networks: string[] };
  to: string;
  port?: number;
  dns?: DnsQueryResult;
  /** The client node's load balancer backend (nftables / ipvs), from its status record. */
  lb?: string;
  targets: TraceTarget[];
}


/** `to` as given: `name`, `ip`, `name:port` or `ip:port`. */
export function parseDestination(to: string): { host: string; port?: number } {
  const m = /^(.+?)(?::(\d{1,5}))?$/.exec(to.trim());
  const host = m?.[1] ?? '';
  const port = m?.[2] !== undefined ? Number(m[2]) : undefined;
  if (!host || (port !== undefined && (port < 1 || port > 65535))) throw new QueryError(`bad destination ${JSON.stringify(to)}: <name|ip>[:port]`);
  return { host, ...(port !== undefined ? { port } : {}) };
}

export function trace(prefix: string, s: StatusSnapshot, fromTarget: string, to: string, compat: boolean): TraceResult {
  const { host, port } = parseDestination(to);
  const p = (k: keyof typeof STATUS_PREFIXES): string => `${prefix}${STATUS_PREFIXES[k]}`;

  // Docker's view: networks by id, services, containers with their addresses.
  const view = viewRecords(prefix, s.view);
  const netName = (id: string): string => view.networks.get(id)?.name || id;
  const netSubnets = new Map<string, ReturnType<typeof parseCidr>>();
  for (const [id, n] of view.networks) {
    try { if (n.subnet) netSubnets.set(id, parseCidr(n.subnet)); } catch { /* no subnet: no address lookup */ }
  }
  const containers = view.containers;
  // Nodes' public addresses and LB backends (their status records), host subnets by owner.
  const publicIp = new Map<string, string>();
  const lbOf = new Map<string, string>();
  for (const v of s.nodes.values()) {
    const rec = nodeRecord(parseJson(v));
    if (!rec) continue;
    publicIp.set(rec.node, rec.publicIp);
    if (rec.lb.backend) lbOf.set(rec.node, rec.lb.backend);
  }
  const subnets: { node: string; cidr: ReturnType<typeof parseCidr> }[] = [];
  for (const [k, v] of s.nodeSubnets) {
    const node = k.slice(p('nodeSubnets').length).split('/')[1];
    try { if (node) subnets.push({ node, cidr: keyToCidr(v) }); } catch { /* a bad record: not a path */ }
  }
  const networks: { id: string; cidr: ReturnType<typeof parseCidr> }[] = [];
  for (const v of s.networks.values()) {
    const rec = parseJson(v);
    try { if (isRecord(rec) && str(rec.subnet)) networks.push({ id: str(rec.id), cidr: parseCidr(str(rec.subnet)) }); } catch { /* idem */ }
  }

  // The client (an unknown one is a clear error), and the name's answer as its resolver gives it.
  const fromRec = findContainer(containers, fromTarget);
  const fromNets = new Set(Object.keys(fromRec.networks).filter((id) => view.networks.has(id)));
  const from = { id: fromRec.id, name: fromRec.name, node: fromRec.node, networks: [...fromNets].map(netName).sort() };
  const dns = isIPv4(host) ? undefined : queryAsContainer(prefix, s.view, fromRec.id, host, 'A', compat);
  const addresses = dns ? dns.answers : [host];
  const hop = (address: string, c: ViewContainer | undefined, node: string | undefined): Hop => ({
    address, ...(c ? { container: c.name || c.id.slice(0, 12) } : {}), ...(node ? { node } : {}),
    ...(node === undefined ? { path: 'unknown' as const } : node === from.node ? { path: 'local' as const } : { path: 'vxlan' as const, via: publicIp.get(node) || '(its public address is unknown: no status record)' }),
  });

  const targets = addresses.map((address): TraceTarget => {
    const ip = parseIp(address);
    const found = [...view.services].find(([, x]) => Object.values(x.vips).includes(address));
    if (found) {
      const [sid, svc] = found;
      const netId = Object.entries(svc.vips).find(([, v]) => v === address)![0];
      const network = netName(netId);
      if (!fromNets.has(netId)) return { address, kind: 'unreachable', network, service: svc.name, hops: [], note: `the VIP of ${svc.name} on ${network}, a network ${from.name} is not on: isolated` };
      const backends = containers.filter((c) => c.serviceId === sid && takesTraffic(svc, c) && c.networks[netId]);
      const hops = backends.map((c) => hop(c.networks[netId]!, c, c.node));
      const note = hops.length
        ? `the VIP of service ${svc.name} on ${network}: ${from.node}'s load balancer (${lbOf.get(from.node) || 'backend unknown'}) sends each connection to one of ${hops.length} backend(s), same port; the backend sees the client's own address (its node's gateway when the client lands on itself)`
        : `the VIP of service ${svc.name} on ${network}, which has no healthy task: connections are refused at once`;
      return { address, kind: 'vip', network, service: svc.name, hops, note };
    }
    const net = networks.find((n) => contains(n.cidr, ip));
    if (!net) return { address, kind: 'outside', hops: [], note: 'not in a swarmnet network: leaves through docker_gwbridge (Docker\'s egress, masqueraded to the node\'s address)' };
    const holder = containers.find((c) => Object.values(c.networks).includes(address));
    const holderNet = holder ? Object.entries(holder.networks).find(([, a]) => a === address)![0] : [...netSubnets].find(([, c]) => contains(c, ip))?.[0];
    const network = holderNet ? netName(holderNet) : net.id;
    if (holderNet && !fromNets.has(holderNet)) return { address, kind: 'unreachable', network, hops: [], note: `an address of ${network}, a network ${from.name} is not on: isolated` };
    const owner = holder?.node ?? subnets.find((x) => contains(x.cidr, ip))?.node;
    const h = hop(address, holder, owner);
    const note = h.path === 'local' ? `on ${from.node} itself: through its bridge` : h.path === 'vxlan' ? `on ${owner}: routed to its host subnet over VXLAN to ${h.via}` : 'in a swarmnet network, but no node holds that host subnet: no answer';
    return { address, kind: h.path === 'unknown' ? 'unreachable' : 'address', network, hops: [h], note };
  });
  return {
    from: { id: from.id, name: from.name, node: from.node, networks: from.networks }, to, ...(port !== undefined ? { port } : {}),
    ...(dns ? { dns } : {}), ...(lbOf.get(from.node) ? { lb: lbOf.get(from.node)! } : {}), targets,
  };
}

export function renderTrace(r: TraceResult): string {
  const out = [`from ${r.from.name || r.from.id.slice(0, 12)} on ${r.from.node} (swarmnet networks: ${r.from.networks.join(', ') || 'none'})`];
  if (r.dns) {
    out.push(`${r.dns.qname} → ${r.dns.outcome === 'answered' ? r.dns.answers.join(' ') : `(${r.dns.outcome})`}${r.dns.network ? ` [DNS: network ${r.dns.network}]` : ''}`);
    if (r.dns.outcome !== 'answered') out.push(r.dns.explanation);
  }
  for (const t of r.targets) {
    out.push(`${t.address}${r.port ? `:${r.port}` : ''}: ${t.note}`);
    for (const h of t.hops) out.push(`  → ${h.address}${h.container ? ` ${h.container}` : ''}${h.node ? ` on ${h.node}` : ''}: ${h.path === 'local' ? 'local (bridge)' : h.path === 'vxlan' ? `VXLAN to ${h.via}` : 'no node holds it'}`);
  }
  return out.join('\n');
}

/** Exit status: 0 when every traced address has a path, 1 otherwise. */
export const traceOk = (r: TraceResult): boolean => r.targets.length > 0 && r.targets.every((t) => t.kind === 'outside' || t.hops.some((h) => h.path !== 'unknown'));
