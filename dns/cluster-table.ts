import { isIPv4 } from 'node:net';
import type { ContainerView, NetworkView, ServiceView } from '../common/docker-view.js';
import type { TableParsed } from './table.js';

/**
 * Docker's view as every node's resolver needs it, kept from the etcd watch of `<prefix>/swarmnet/docker/`
 * (networks and services written by the managers, containers by the node that runs them: plugin/docker/cluster-view.ts).
 * Each watch event costs O(1) here; `input()` renders the table for the networks this node serves, indexed by
 * network so that its cost follows what this node needs, not the cluster. Records are validated once, as they
 * arrive: a bad record is dropped (and counted), it never breaks the table.
 */
export interface SandboxView {
  /** The network namespace's path (Join's SandboxKey): the view's id. */
  id: string;
  /** Docker network ids of the swarmnet endpoints joined in it. */
  networks: string[];
}

type Kind = 'networks' | 'services' | 'containers';

export class ClusterTable {
  private readonly root: string;
  private readonly networks = new Map<string, NetworkView>();
  private readonly services = new Map<string, ServiceView>();
  /** Full etcd key → container record. */
  private readonly containers = new Map<string, ContainerView>();
  /** Docker network id → keys of the containers with an endpoint on it. */
  private readonly byNetwork = new Map<string, Set<string>>();
  /** This node's containers by their namespace's path. */
  private readonly local = new Map<string, ContainerView>();
  readonly stats = { rejected: 0 };

  constructor(prefix: string, private readonly node: string) {
    this.root = `${prefix}/swarmnet/docker/`;
  }

  get prefix(): string { return this.root; }

  /** Replaces everything with a watch snapshot. */
  reset(kvs: Map<string, string>): void {
    this.networks.clear();
    this.services.clear();
    this.containers.clear();
    this.byNetwork.clear();
    this.local.clear();
    for (const [k, v] of kvs) this.put(k, v);
  }

  /** One watch event; returns whether it was one of ours. */
  apply(type: 'put' | 'delete', key: string, value?: string): boolean {
    if (type === 'put' && value !== undefined) return this.put(key, value);
    return this.remove(key);
  }

  private parse(key: string): { kind: Kind; id: string; node?: string } | undefined {
    if (!key.startsWith(this.root)) return undefined;
    const parts = key.slice(this.root.length).split('/');
    if (parts[0] === 'containers' && parts.length === 3 && parts[1] && parts[2]) return { kind: 'containers', node: parts[1], id: parts[2] };
    if ((parts[0] === 'networks' || parts[0] === 'services') && parts.length === 2 && parts[1]) return { kind: parts[0], id: parts[1] };
    return undefined;
  }

  private put(key: string, value: string): boolean {
    const k = this.parse(key);
    if (!k) return false;
    this.remove(key);
    let raw: unknown;
    try { raw = JSON.parse(value); } catch { this.stats.rejected++; return true; }
    if (k.kind === 'networks') {
      const n = validNetwork(raw);
      if (n) this.networks.set(k.id, n); else this.stats.rejected++;
    } else if (k.kind === 'services') {
      const s = validService(raw);
      if (s) this.services.set(k.id, s); else this.stats.rejected++;
    } else {
      const c = validContainer(raw);
      if (!c) { this.stats.rejected++; return true; }
      this.containers.set(key, c);
      if (k.node === this.node && c.sandboxKey) this.local.set(c.sandboxKey, c);
      for (const net of Object.keys(c.networks)) {
        let set = this.byNetwork.get(net);
        if (!set) this.byNetwork.set(net, (set = new Set()));
        set.add(key);
      }
    }
    return true;
  }

  private remove(key: string): boolean {
    const k = this.parse(key);
    if (!k) return false;
    if (k.kind === 'networks') this.networks.delete(k.id);
    else if (k.kind === 'services') this.services.delete(k.id);
    else {
      const c = this.containers.get(key);
      if (c) {
        this.containers.delete(key);
        if (c.sandboxKey && this.local.get(c.sandboxKey) === c) this.local.delete(c.sandboxKey);
        for (const net of Object.keys(c.networks)) {
          const set = this.byNetwork.get(net);
          set?.delete(key);
          if (set?.size === 0) this.byNetwork.delete(net);
        }
      }
    }
    return true;
  }

  /** This node's container record whose namespace is `sandboxKey`, if Docker's view has it yet. */
  localContainer(sandboxKey: string): ContainerView | undefined {
    return this.local.get(sandboxKey);
  }

  /** This node's container records by namespace path (what it serves after a restart, before Docker says anything). */
  localContainers(): ReadonlyMap<string, ContainerView> {
    return this.local;
  }

  /** Whether a Docker network id is a swarmnet network (the managers mirror only those). */
  isOurNetwork(id: string): boolean {
    return this.networks.has(id);
  }

  /** The resolver's table for these views: only the networks they are attached to, cluster-wide. */
  input(views: SandboxView[]): TableParsed {
    const wanted = new Set(views.flatMap((v) => v.networks));
    const networks = [...wanted].map((id) => ({ id, name: this.networks.get(id)?.name ?? id, internal: false }));
    const containers: TableParsed['containers'] = [];
    const seen = new Set<string>();
    for (const net of wanted) {
      for (const key of this.byNetwork.get(net) ?? []) {
        if (seen.has(key)) continue;
        seen.add(key);
        const c = this.containers.get(key)!;
        const endpoints = Object.entries(c.networks)
          .filter(([id]) => wanted.has(id))
          .map(([networkId, e]) => ({ networkId, ip: e.address, aliases: e.aliases }));
        containers.push({
          id: c.id, name: c.name, ...(c.hostname ? { hostname: c.hostname } : {}), ...(c.serviceId ? { serviceId: c.serviceId } : {}),
          ndots: c.ndots, live: c.live, endpoints,
        });
      }
    }
    const services: TableParsed['services'] = [];
    for (const s of this.services.values()) {
      const nets = Object.keys({ ...s.vips, ...s.aliases }).filter((id) => wanted.has(id));
      if (!nets.length) continue;
      services.push({
        id: s.id, name: s.name, mode: s.endpointMode,
        networks: nets.map((networkId) => ({ networkId, ...(s.vips[networkId] ? { vip: s.vips[networkId] } : {}), aliases: s.aliases[networkId] ?? [] })),
      });
    }
    const sandboxViews = views.map((v) => ({ id: v.id, networks: v.networks, ndots: this.localContainer(v.id)?.ndots ?? false }));
    return { networks, containers, services, views: sandboxViews };
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);
const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 253;
const names = (v: unknown): string[] => (Array.isArray(v) ? v.filter(isName) : []);

function validNetwork(v: unknown): NetworkView | undefined {
  if (!isObj(v) || !isName(v.id) || !isName(v.name)) return undefined;
  return { id: v.id, name: v.name };
}

function validService(v: unknown): ServiceView | undefined {
  if (!isObj(v) || !isName(v.id) || !isName(v.name) || !isObj(v.vips) || !isObj(v.aliases)) return undefined;
  const vips: Record<string, string> = {};
  for (const [net, ip] of Object.entries(v.vips)) if (typeof ip === 'string' && isIPv4(ip)) vips[net] = ip;
  const aliases: Record<string, string[]> = {};
  for (const [net, a] of Object.entries(v.aliases)) aliases[net] = names(a);
  return { id: v.id, name: v.name, endpointMode: v.endpointMode === 'dnsrr' ? 'dnsrr' : 'vip', vips, aliases };
}

function validContainer(v: unknown): ContainerView | undefined {
  if (!isObj(v) || !isName(v.id) || !isName(v.name) || !isObj(v.networks)) return undefined;
  const networks: ContainerView['networks'] = {};
  for (const [net, e] of Object.entries(v.networks)) {
    if (isObj(e) && typeof e.address === 'string' && isIPv4(e.address)) networks[net] = { address: e.address, aliases: names(e.aliases), dnsNames: names(e.dnsNames) };
  }
  return {
    id: v.id, name: v.name, hostname: isName(v.hostname) ? v.hostname : '',
    ...(isName(v.service) ? { service: v.service } : {}), ...(isName(v.serviceId) ? { serviceId: v.serviceId } : {}),
    ...(typeof v.sandboxKey === 'string' && v.sandboxKey.startsWith('/') ? { sandboxKey: v.sandboxKey } : {}),
    live: v.live !== false, ndots: v.ndots === true, networks,
  };
}
