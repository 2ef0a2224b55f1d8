import { isIPv4 } from 'node:net';
import { isName, isRecord, parseViewEvent, viewRoot, type NetworkView } from '../common/docker-view.js';
import { endpointContribution, LiveNet, vipContribution, walkOrder, type Contribution, type NamedService, type Table } from './table.js';

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

/** What the resolver keeps of a container record (a node may hold 100,000: only what answers need). */
export interface ContainerRecord {
  id: string;
  name: string;
  hostname: string;
  serviceId?: string;
  sandboxKey?: string;
  live: boolean;
  ndots: boolean;
  networks: Record<string, { address: string; aliases: string[] }>;
}
const NO_ALIASES: string[] = Object.freeze([]) as unknown as string[];

/** A service record in the form its names are built from, validated once. */
interface ServiceRecord extends NamedService {
  /** Containers of its tasks Swarm is stopping: they have no names (docs/dns.md). */
  draining: ReadonlySet<string>;
}

export class ClusterTable {
  private readonly root: string;
  private readonly networks = new Map<string, NetworkView>();
  private readonly services = new Map<string, ServiceRecord>();
  /**
   * etcd key → the container's record, kept as compact JSON (a node may hold 100,000; a string is a
   * fraction of the object graph). Parsed again only to re-index it (its service changed, a network became wanted).
   */
  private readonly containers = new Map<string, string>();
  /** Docker network id → keys of the containers with an endpoint on it. */
  private readonly byNetwork = new Map<string, Set<string>>();
  /** This node's containers by their namespace's path. */
  private readonly local = new Map<string, ContainerRecord>();
  /** Service id → keys of its tasks' records. */
  private readonly tasksOf = new Map<string, Set<string>>();
  /** The indexed networks (those some view is attached to). */
  private readonly nets = new Map<string, LiveNet>();
  private viewList: SandboxView[] = [];
  readonly table: Table = { nets: this.nets, views: new Map(), viewByIp: new Map() };
  readonly stats = { rejected: 0 };
  /** Bumped when this node's records or the set of networks change: what decides which namespaces are served. */
  localVersion = 0;

  constructor(prefix: string, private readonly node: string) {
    this.root = viewRoot(prefix);
  }

  /** Replaces everything with a watch snapshot. */
  reset(kvs: Map<string, string>): void {
    this.networks.clear();
    this.services.clear();
    this.containers.clear();
    this.byNetwork.clear();
    this.local.clear();
    this.localVersion++;
    this.tasksOf.clear();
    this.nets.clear();
    for (const [k, v] of kvs) this.apply('put', k, v);
    this.setViews(this.viewList);
  }

  /** One watch event; returns whether it was one of ours. */
  apply(type: 'put' | 'delete', key: string, value?: string): boolean {
    const ev = parseViewEvent(this.root, type, key, value);
    if (!ev) return false;
    if (ev.kind === 'networks') this.putNetwork(ev.id, ev.raw, type);
    else if (ev.kind === 'services') this.putService(ev.id, ev.raw, type);
    else if (ev.kind === 'containers') this.putContainer(key, ev.node, ev.raw, type);
    return true;
  }

  private putNetwork(id: string, raw: unknown, type: 'put' | 'delete'): void {
    const n = type === 'put' ? validNetwork(raw) : undefined;
    if (type === 'put' && !n) this.stats.rejected++;
    this.localVersion++;
    if (!n) { this.networks.delete(id); return; }
    this.networks.set(id, n);
    const net = this.nets.get(id);
    // Indexed under its id until its record came: `<name>.<network>` and PTR answers take the name from here.
    if (net && net.name !== n.name.toLowerCase()) { net.name = n.name.toLowerCase(); this.setViews(this.viewList); }
  }

  /** A service's VIP names and its tasks' `tasks.`/DNSRR names: out with the old record, in with the new one. */
  private putService(id: string, raw: unknown, type: 'put' | 'delete'): void {
    const next = type === 'put' ? validService(raw) : undefined;
    if (type === 'put' && !next) this.stats.rejected++;
    const tasks = [...(this.tasksOf.get(id) ?? [])].map((key) => this.record(key));
    this.index(-1, this.services.get(id), tasks);
    if (next) this.services.set(id, next); else this.services.delete(id);
    this.index(1, next, tasks);
  }

  private index(sign: 1 | -1, s: ServiceRecord | undefined, tasks: ContainerRecord[]): void {
    for (const net of this.nets.values()) {
      const op = sign > 0 ? net.add.bind(net) : net.remove.bind(net);
      if (s) op(vipContribution(s, net.id));
      for (const c of tasks) op(this.contribution(c, net, s ?? null));
    }
  }

  private putContainer(key: string, node: string, raw: unknown, type: 'put' | 'delete'): void {
    const next = type === 'put' ? validContainer(raw) : undefined;
    if (type === 'put' && !next) this.stats.rejected++;
    const json = this.containers.get(key);
    if (json !== undefined) {
      const old = decode(json);
      for (const net of this.nets.values()) net.remove(this.contribution(old, net));
      this.containers.delete(key);
      if (node === this.node && old.sandboxKey && this.local.get(old.sandboxKey)?.id === old.id) { this.local.delete(old.sandboxKey); this.localVersion++; }
      for (const id of Object.keys(old.networks)) removeFrom(this.byNetwork, id, key);
      if (old.serviceId) removeFrom(this.tasksOf, old.serviceId, key);
    }
    if (!next) return;
    this.containers.set(key, encode(next));
    if (node === this.node && next.sandboxKey) { this.local.set(next.sandboxKey, next); this.localVersion++; }
    for (const id of Object.keys(next.networks)) addTo(this.byNetwork, id, key);
    if (next.serviceId) addTo(this.tasksOf, next.serviceId, key);
    for (const net of this.nets.values()) net.add(this.contribution(next, net));
  }

  private record(key: string): ContainerRecord {
    return decode(this.containers.get(key)!);
  }

  /** What a container puts into one network's index, with its service as it is now unless given (null: none). */
  private contribution(c: ContainerRecord, net: LiveNet, given?: ServiceRecord | null): Contribution | undefined {
    const e = c.networks[net.id];
    if (!e) return undefined;
    const svc = given === undefined ? (c.serviceId ? this.services.get(c.serviceId) : undefined) : given ?? undefined;
    // A task Swarm is stopping leaves every name at once, as in Docker (its container stops two seconds later).
    if (svc?.draining.has(c.id)) return undefined;
    return endpointContribution(c, { networkId: net.id, ip: e.address, aliases: e.aliases }, svc);
  }

  /**
   * The namespaces this node serves and the networks each is attached to: indexes networks that became wanted
   * (O(their records)), forgets the others, and rebuilds the views (O(views), in walk order).
   */
  setViews(views: SandboxView[]): void {
    this.viewList = views;
    const wanted = new Set(views.flatMap((v) => v.networks));
    for (const id of this.nets.keys()) if (!wanted.has(id)) this.nets.delete(id);
    for (const id of wanted) {
      if (this.nets.has(id)) continue;
      const net = new LiveNet(id, (this.networks.get(id)?.name ?? id).toLowerCase());
      this.nets.set(id, net);
      for (const key of this.byNetwork.get(id) ?? []) net.add(this.contribution(this.record(key), net));
      for (const s of this.services.values()) net.add(vipContribution(s, id));
    }
    this.table.views.clear();
    for (const v of views) {
      const nets = walkOrder(v.networks.map((id) => this.nets.get(id)).filter((n): n is LiveNet => !!n));
      this.table.views.set(v.id, { nets, upstreams: undefined, ndots: this.local.get(v.id)?.ndots ?? false });
    }
  }

  /** This node's container record whose namespace is `sandboxKey`, if Docker's view has it yet. */
  localContainer(sandboxKey: string): ContainerRecord | undefined {
    return this.local.get(sandboxKey);
  }

  /** This node's container records by namespace path (what it serves after a restart, before Docker says anything). */
  localContainers(): ReadonlyMap<string, ContainerRecord> {
    return this.local;
  }

  /** Whether a Docker network id is a swarmnet network (the managers mirror only those). */
  isOurNetwork(id: string): boolean {
    return this.networks.has(id);
  }
}

function addTo(m: Map<string, Set<string>>, k: string, v: string): void {
  let set = m.get(k);
  if (!set) m.set(k, (set = new Set()));
  set.add(v);
}

function removeFrom(m: Map<string, Set<string>>, k: string, v: string): void {
  const set = m.get(k);
  set?.delete(v);
  if (set?.size === 0) m.delete(k);
}

/** Compact JSON: [id, name, hostname, serviceId, sandboxKey, flags, [network, address, ...aliases], ...]. */
function encode(c: ContainerRecord): string {
  const flags = (c.live ? 1 : 0) | (c.ndots ? 2 : 0);
  return JSON.stringify([c.id, c.name, c.hostname, c.serviceId ?? '', c.sandboxKey ?? '', flags, ...Object.entries(c.networks).map(([n, e]) => [n, e.address, ...e.aliases])]);
}

function decode(json: string): ContainerRecord {
  const [id, name, hostname, serviceId, sandboxKey, flags, ...nets] = JSON.parse(json) as [string, string, string, string, string, number, ...string[][]];
  const networks: ContainerRecord['networks'] = {};
  for (const [n, address, ...aliases] of nets) networks[n!] = { address: address!, aliases: aliases.length ? aliases : NO_ALIASES };
  return { id, name, hostname, ...(serviceId ? { serviceId } : {}), ...(sandboxKey ? { sandboxKey } : {}), live: (flags & 1) === 1, ndots: (flags & 2) === 2, networks };
}

const names = (v: unknown): string[] => (Array.isArray(v) ? v.filter(isName) : []);

function validNetwork(v: unknown): NetworkView | undefined {
  if (!isRecord(v) || !isName(v.id) || !isName(v.name)) return undefined;
  return { id: v.id, name: v.name };
}

/** A ServiceView record (common/docker-view.ts) → the form names are built from. */
function validService(v: unknown): ServiceRecord | undefined {
  if (!isRecord(v) || !isName(v.id) || !isName(v.name) || !isRecord(v.vips) || !isRecord(v.aliases)) return undefined;
  const vips = v.vips;
  const aliases = v.aliases;
  const networks = [...new Set([...Object.keys(vips), ...Object.keys(aliases)])].map((networkId) => {
    const vip = vips[networkId];
    return { networkId, ...(typeof vip === 'string' && isIPv4(vip) ? { vip } : {}), aliases: names(aliases[networkId]) };
  });
  return { id: v.id, name: v.name, mode: v.endpointMode === 'dnsrr' ? 'dnsrr' : 'vip', networks, draining: new Set(names(v.draining)) };
}

function validContainer(v: unknown): ContainerRecord | undefined {
  if (!isRecord(v) || !isName(v.id) || !isName(v.name) || !isRecord(v.networks)) return undefined;
  const networks: ContainerRecord['networks'] = {};
  for (const [net, e] of Object.entries(v.networks)) {
    if (!isRecord(e) || typeof e.address !== 'string' || !isIPv4(e.address)) continue;
    const aliases = names(e.aliases);
    networks[net] = { address: e.address, aliases: aliases.length ? aliases : NO_ALIASES };
  }
  return {
    id: v.id, name: v.name, hostname: isName(v.hostname) ? v.hostname : '',
    ...(isName(v.serviceId) ? { serviceId: v.serviceId } : {}),
    ...(typeof v.sandboxKey === 'string' && v.sandboxKey.startsWith('/') ? { sandboxKey: v.sandboxKey } : {}),
    live: v.live !== false, ndots: v.ndots === true, networks,
  };
}
