import { isIPv4 } from 'node:net';
import type { ContainerView, NetworkView, ServiceView } from '../common/docker-view.js';
import { endpointContribution, LiveNet, vipContribution, walkOrder, type NetIndex, type Table, type TableParsed } from './table.js';

/**
 * Docker's view as every node's resolver needs it, kept from the etcd watch of `<prefix>/swarmnet/docker/`
 * (networks and services written by the managers, containers by the node that runs them: plugin/docker/cluster-view.ts).
 * `table` is the resolver's table, kept live: only the networks this node serves (`setViews`) are indexed, and an
 * event changes only what its record contributed (a container: its names on those networks; a service: its VIP
 * names and its tasks' names), so its cost is the size of the change, not of the cluster. Records are validated
 * once, as they arrive: a bad record is dropped (and counted), it never breaks the table.
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
  /** Service id → keys of its tasks' records. */
  private readonly tasksOf = new Map<string, Set<string>>();
  /** The indexed networks (those some view is attached to). */
  private readonly nets = new Map<string, LiveNet>();
  private viewList: SandboxView[] = [];
  readonly table: Table = { nets: this.nets, views: new Map(), viewByIp: new Map() };
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
    this.tasksOf.clear();
    this.nets.clear();
    for (const [k, v] of kvs) this.put(k, v);
    this.setViews(this.viewList);
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
      if (!n) { this.stats.rejected++; return true; }
      this.networks.set(k.id, n);
      if (this.nets.has(k.id) && this.nets.get(k.id)!.name !== n.name.toLowerCase()) this.setViews(this.viewList, k.id);
    } else if (k.kind === 'services') {
      const s = validService(raw);
      if (!s) { this.stats.rejected++; return true; }
      this.services.set(k.id, s);
      this.indexService(k.id);
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
      if (c.serviceId) {
        let set = this.tasksOf.get(c.serviceId);
        if (!set) this.tasksOf.set(c.serviceId, (set = new Set()));
        set.add(key);
      }
      this.indexContainer(key);
    }
    return true;
  }

  private remove(key: string): boolean {
    const k = this.parse(key);
    if (!k) return false;
    if (k.kind === 'networks') this.networks.delete(k.id);
    else if (k.kind === 'services') {
      if (this.services.delete(k.id)) this.indexService(k.id);
    } else {
      const c = this.containers.get(key);
      if (c) {
        this.containers.delete(key);
        if (c.sandboxKey && this.local.get(c.sandboxKey) === c) this.local.delete(c.sandboxKey);
        for (const net of Object.keys(c.networks)) {
          const set = this.byNetwork.get(net);
          set?.delete(key);
          if (set?.size === 0) this.byNetwork.delete(net);
        }
        if (c.serviceId) {
          const set = this.tasksOf.get(c.serviceId);
          set?.delete(key);
          if (set?.size === 0) this.tasksOf.delete(c.serviceId);
        }
        for (const net of this.nets.values()) net.drop(key);
      }
    }
    return true;
  }

  /** A container record's names on every indexed network (none when it is gone). */
  private indexContainer(key: string): void {
    const c = this.containers.get(key);
    for (const net of this.nets.values()) net.set(key, c ? this.contribution(c, net) : undefined);
  }

  private contribution(c: ContainerView, net: LiveNet): ReturnType<typeof endpointContribution> {
    const e = c.networks[net.id];
    if (!e) return undefined;
    const svc = c.serviceId ? this.services.get(c.serviceId) : undefined;
    return endpointContribution(parsedContainer(c), { networkId: net.id, ip: e.address, aliases: e.aliases }, net.name, svc && parsedService(svc));
  }

  /** A service's VIP names and its tasks' names on every indexed network. */
  private indexService(id: string): void {
    const s = this.services.get(id);
    for (const net of this.nets.values()) net.set(`s/${id}`, s ? vipContribution(parsedService(s), net.id) : undefined);
    for (const key of this.tasksOf.get(id) ?? []) this.indexContainer(key);
  }

  /**
   * The namespaces this node serves and the networks each is attached to: indexes networks that became wanted
   * (O(their records)), forgets the others, and rebuilds the views (O(views)). `rebuild` forces one network's index
   * to be rebuilt (its name changed).
   */
  setViews(views: SandboxView[], rebuild?: string): void {
    this.viewList = views;
    const wanted = new Set(views.flatMap((v) => v.networks));
    for (const id of this.nets.keys()) if (!wanted.has(id) || id === rebuild) this.nets.delete(id);
    for (const id of wanted) {
      if (this.nets.has(id)) continue;
      const net = new LiveNet(id, (this.networks.get(id)?.name ?? id).toLowerCase());
      this.nets.set(id, net);
      for (const key of this.byNetwork.get(id) ?? []) net.set(key, this.contribution(this.containers.get(key)!, net));
      for (const [sid, s] of this.services) net.set(`s/${sid}`, vipContribution(parsedService(s), id));
    }
    this.table.views.clear();
    for (const v of views) {
      const nets = walkOrder(v.networks.map((id) => this.nets.get(id)).filter((n): n is LiveNet => !!n) as NetIndex[]);
      this.table.views.set(v.id, { nets, upstreams: undefined, ndots: this.local.get(v.id)?.ndots ?? false });
    }
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
}

type ParsedContainer = TableParsed['containers'][number];
type ParsedService = TableParsed['services'][number];

function parsedContainer(c: ContainerView): ParsedContainer {
  return { id: c.id, name: c.name, ...(c.hostname ? { hostname: c.hostname } : {}), ...(c.serviceId ? { serviceId: c.serviceId } : {}), ndots: c.ndots, live: c.live, endpoints: [] };
}

function parsedService(s: ServiceView): ParsedService {
  const nets = [...new Set([...Object.keys(s.vips), ...Object.keys(s.aliases)])];
  return { id: s.id, name: s.name, mode: s.endpointMode, networks: nets.map((networkId) => ({ networkId, ...(s.vips[networkId] ? { vip: s.vips[networkId] } : {}), aliases: s.aliases[networkId] ?? [] })) };
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
