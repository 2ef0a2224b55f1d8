import { logger } from '../../common/log.js';

const log = logger('network-records');

/** A swarmnet network as stored in etcd (`<prefix>/swarmnet/networks/<id>`). */
export interface NetworkRecord {
  id: string;
  subnet: string;
  vni: number;
  vipBlock: string;
  flannelId?: string;
  dockerNetworkId?: string;
  mtu?: number;
}

/** A flannel-format host-subnet lease with the node that holds it ('' while its owner record is not seen yet). */
export interface LeaseRecord { networkId: string; subnetKey: string; publicIp: string; vtepMac: string; node: string }

/** Which of the watched prefixes a key came from. */
export type RecordKind = 'networks' | 'flannel' | 'owners';

/**
 * Values by (group, name) at the etcd revision that wrote them: the newest wins, whichever path brought it first —
 * the watch, or this node's own write or read (so Join sees the host subnet it just leased before the watch delivers
 * it). Grouped by network, so what concerns one network is found without walking the others.
 */
class Versioned<T> {
  readonly groups = new Map<string, Map<string, { value: T; rev: number }>>();

  put(group: string, name: string, value: T, rev: number): boolean {
    let g = this.groups.get(group);
    const cur = g?.get(name);
    if (cur && cur.rev >= rev) return false;
    if (!g) this.groups.set(group, (g = new Map()));
    g.set(name, { value, rev });
    return true;
  }

  delete(group: string, name: string, rev: number): boolean {
    const g = this.groups.get(group);
    const cur = g?.get(name);
    if (!g || !cur || cur.rev > rev) return false;
    g.delete(name);
    if (g.size === 0) this.groups.delete(group);
    return true;
  }

  /** The whole set as of `rev`; entries written after it (this node's own) stay. */
  reset(values: Map<string, Map<string, T>>, rev: number): void {
    for (const [group, g] of this.groups) {
      for (const [name, e] of g) if (e.rev <= rev && !values.get(group)?.has(name)) this.delete(group, name, rev);
    }
    for (const [group, g] of values) for (const [name, v] of g) this.put(group, name, v, rev);
  }
}

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const SUBNET_KEY = /^\d+\.\d+\.\d+\.\d+-\d+$/;

function parseNetwork(id: string, value: string): NetworkRecord | undefined {
  const v = JSON.parse(value) as Partial<NetworkRecord>;
  if (v.id !== id || typeof v.subnet !== 'string' || typeof v.vni !== 'number' || typeof v.vipBlock !== 'string') return undefined;
  if (v.mtu !== undefined && typeof v.mtu !== 'number') return undefined;
  return v as NetworkRecord;
}

function parseLease(value: string): { publicIp: string; vtepMac: string } | undefined {
  const v = JSON.parse(value) as { PublicIP?: unknown; BackendData?: { VtepMAC?: unknown } };
  const mac = v.BackendData?.VtepMAC;
  if (typeof v.PublicIP !== 'string' || typeof mac !== 'string' || !MAC.test(mac)) return undefined;
  return { publicIp: v.PublicIP, vtepMac: mac };
}

/**
 * The cluster's networks and host-subnet leases, held in memory and kept current from watch events: a change costs
 * its own size, never a re-read of a prefix (docs/performance.md, control plane). Three prefixes feed it — swarmnet's
 * network records, flannel's leases (`<prefix>/networks/<id>/subnets/`) and their owners
 * (`<prefix>/swarmnet/node-subnets/<id>/<node>`); keys are validated here, once.
 */
export class NetworkRecords {
  readonly stats = { rejected: 0 };
  /** '' → network id → record. */
  private readonly networks = new Versioned<NetworkRecord>();
  /** network → subnet key → the flannel lease's reachability. */
  private readonly leases = new Versioned<{ publicIp: string; vtepMac: string }>();
  /** network → node → subnet key. */
  private readonly owners = new Versioned<string>();
  private readonly roots: Record<RecordKind, string>;
  private readonly synced = new Set<RecordKind>();

  constructor(prefix: string) {
    this.roots = { networks: `${prefix}/swarmnet/networks/`, flannel: `${prefix}/networks/`, owners: `${prefix}/swarmnet/node-subnets/` };
  }

  /** The prefix each kind is watched under. */
  root(kind: RecordKind): string { return this.roots[kind]; }

  /** True once every prefix was listed: until then a reader must ask etcd. */
  get ready(): boolean { return this.synced.size === 3; }

  /** A whole prefix as of `rev` (a watch's listing). */
  reset(kind: RecordKind, kvs: Map<string, string>, rev: number): void {
    const values = new Map<string, Map<string, unknown>>();
    for (const [k, v] of kvs) {
      const at = this.locate(kind, k);
      const value = at && this.decode(kind, k, at[1], v);
      if (!at || value === undefined) continue;
      let g = values.get(at[0]);
      if (!g) values.set(at[0], (g = new Map()));
      g.set(at[1], value);
    }
    this.set(kind).reset(values as Map<string, Map<string, never>>, rev);
    this.synced.add(kind);
  }

  /** The network a key of this kind belongs to (undefined for keys that are not records). */
  networkOf(kind: RecordKind, key: string): string | undefined {
    const at = this.locate(kind, key);
    return at && (kind === 'networks' ? at[1] : at[0]);
  }

  /** One watch event, or this node's own write or read of a key at `rev`. True when the records changed. */
  apply(kind: RecordKind, type: 'put' | 'delete', key: string, value: string | undefined, rev: number): boolean {
    const at = this.locate(kind, key);
    if (!at) return false;
    if (type === 'delete') return this.set(kind).delete(at[0], at[1], rev);
    const decoded = this.decode(kind, key, at[1], value ?? '');
    // A record that no longer validates is gone for the planes (and counted), not kept at its old value.
    if (decoded === undefined) return this.set(kind).delete(at[0], at[1], rev);
    return this.set(kind).put(at[0], at[1], decoded as never, rev);
  }

  network(id: string): NetworkRecord | undefined { return this.networks.groups.get('')?.get(id)?.value; }

  allNetworks(): NetworkRecord[] { return [...(this.networks.groups.get('')?.values() ?? [])].map((e) => e.value); }

  /** Subnet keys leased in a network (taken for allocation). */
  takenSubnets(networkId: string): Set<string> { return new Set(this.leases.groups.get(networkId)?.keys()); }

  /** Whether `node` holds a host subnet in the network. */
  holds(networkId: string, node: string): boolean { return this.owners.groups.get(networkId)?.has(node) ?? false; }

  /** The host leases of the networks `wanted` picks (default all), with their owners: O(those leases). */
  leasesOf(wanted: (networkId: string) => boolean = () => true): LeaseRecord[] {
    const out: LeaseRecord[] = [];
    for (const [networkId, leases] of this.leases.groups) {
      if (!wanted(networkId)) continue;
      const owner = new Map<string, string>();
      for (const [node, e] of this.owners.groups.get(networkId) ?? []) owner.set(e.value, node);
      for (const [subnetKey, e] of leases) out.push({ networkId, subnetKey, ...e.value, node: owner.get(subnetKey) ?? '' });
    }
    return out;
  }

  private set(kind: RecordKind): Versioned<unknown> {
    return (kind === 'networks' ? this.networks : kind === 'flannel' ? this.leases : this.owners) as Versioned<unknown>;
  }

  /** The record's group and name, or undefined for keys of the prefix that are not records (flannel configs). */
  private locate(kind: RecordKind, key: string): [string, string] | undefined {
    const root = this.roots[kind];
    if (!key.startsWith(root)) return undefined;
    const parts = key.slice(root.length).split('/');
    if (kind === 'networks') return parts.length === 1 && parts[0] ? ['', parts[0]] : undefined;
    if (kind === 'flannel') return parts.length === 3 && parts[0] && parts[1] === 'subnets' && SUBNET_KEY.test(parts[2]!) ? [parts[0], parts[2]!] : undefined;
    return parts.length === 2 && parts[0] && parts[1] ? [parts[0], parts[1]] : undefined;
  }

  private decode(kind: RecordKind, key: string, name: string, value: string): unknown {
    let decoded: unknown;
    try {
      decoded = kind === 'networks' ? parseNetwork(name, value) : kind === 'flannel' ? parseLease(value) : SUBNET_KEY.test(value) ? value : undefined;
    } catch {
      decoded = undefined;
    }
    if (decoded === undefined) {
      this.stats.rejected++;
      log.warn({ record: key }, 'malformed record in etcd ignored');
    }
    return decoded;
  }
}
