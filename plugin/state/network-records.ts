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
 * Values by key at the etcd revision that wrote them: the newest wins, whichever path brought it first — the watch,
 * or this node's own write or read (so Join sees the host subnet it just leased before the watch delivers it).
 */
class Versioned<T> {
  readonly entries = new Map<string, { value: T; rev: number }>();

  put(key: string, value: T, rev: number): boolean {
    const cur = this.entries.get(key);
    if (cur && cur.rev >= rev) return false;
    this.entries.set(key, { value, rev });
    return true;
  }

  delete(key: string, rev: number): boolean {
    const cur = this.entries.get(key);
    if (!cur || cur.rev > rev) return false;
    return this.entries.delete(key);
  }

  /** The whole set as of `rev`; entries written after it (this node's own) stay. */
  reset(values: Map<string, T>, rev: number): void {
    for (const [k, e] of this.entries) if (e.rev <= rev && !values.has(k)) this.entries.delete(k);
    for (const [k, v] of values) {
      const cur = this.entries.get(k);
      if (!cur || cur.rev <= rev) this.entries.set(k, { value: v, rev });
    }
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
  private readonly networks = new Versioned<NetworkRecord>();
  /** `<network>/<subnet key>` → the flannel lease's reachability. */
  private readonly leases = new Versioned<{ publicIp: string; vtepMac: string }>();
  /** `<network>/<node>` → subnet key. */
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
    const values = new Map<string, unknown>();
    for (const [k, v] of kvs) {
      const e = this.decode(kind, k, v);
      if (e) values.set(e.key, e.value);
    }
    this.set(kind).reset(values as Map<string, never>, rev);
    this.synced.add(kind);
  }

  /** The network a key of this kind belongs to (undefined for keys that are not records). */
  networkOf(kind: RecordKind, key: string): string | undefined {
    const name = this.name(kind, key);
    return name === undefined ? undefined : name.split('/')[0];
  }

  /** One watch event, or this node's own write or read of a key at `rev`. True when the records changed. */
  apply(kind: RecordKind, type: 'put' | 'delete', key: string, value: string | undefined, rev: number): boolean {
    const name = this.name(kind, key);
    if (name === undefined) return false;
    if (type === 'delete') return this.set(kind).delete(name, rev);
    const e = this.decode(kind, key, value ?? '');
    // A record that no longer validates is gone for the planes (and counted), not kept at its old value.
    if (!e) return this.set(kind).delete(name, rev);
    return this.set(kind).put(e.key, e.value as never, rev);
  }

  network(id: string): NetworkRecord | undefined { return this.networks.entries.get(id)?.value; }

  allNetworks(): NetworkRecord[] { return [...this.networks.entries.values()].map((e) => e.value); }

  /** Subnet keys leased in a network (taken for allocation). */
  takenSubnets(networkId: string): Set<string> {
    const out = new Set<string>();
    const p = `${networkId}/`;
    for (const k of this.leases.entries.keys()) if (k.startsWith(p)) out.add(k.slice(p.length));
    return out;
  }

  /** Whether `node` holds a host subnet in the network. */
  holds(networkId: string, node: string): boolean { return this.owners.entries.has(`${networkId}/${node}`); }

  /** Every host lease with its owner. */
  allLeases(): LeaseRecord[] {
    const owner = new Map<string, string>();
    for (const [k, e] of this.owners.entries) owner.set(`${k.slice(0, k.indexOf('/'))}/${e.value}`, k.slice(k.indexOf('/') + 1));
    const out: LeaseRecord[] = [];
    for (const [k, e] of this.leases.entries) {
      const i = k.indexOf('/');
      out.push({ networkId: k.slice(0, i), subnetKey: k.slice(i + 1), ...e.value, node: owner.get(k) ?? '' });
    }
    return out;
  }

  private set(kind: RecordKind): Versioned<unknown> {
    return (kind === 'networks' ? this.networks : kind === 'flannel' ? this.leases : this.owners) as Versioned<unknown>;
  }

  /** The record's name inside its set, or undefined for keys of the prefix that are not records (flannel configs). */
  private name(kind: RecordKind, key: string): string | undefined {
    const root = this.roots[kind];
    if (!key.startsWith(root)) return undefined;
    const parts = key.slice(root.length).split('/');
    if (kind === 'networks') return parts.length === 1 && parts[0] ? parts[0] : undefined;
    if (kind === 'flannel') return parts.length === 3 && parts[1] === 'subnets' && SUBNET_KEY.test(parts[2]!) ? `${parts[0]}/${parts[2]}` : undefined;
    return parts.length === 2 && parts[0] && parts[1] ? `${parts[0]}/${parts[1]}` : undefined;
  }

  private decode(kind: RecordKind, key: string, value: string): { key: string; value: unknown } | undefined {
    const name = this.name(kind, key);
    if (name === undefined) return undefined;
    let decoded: unknown;
    try {
      decoded = kind === 'networks' ? parseNetwork(name, value) : kind === 'flannel' ? parseLease(value) : SUBNET_KEY.test(value) ? value : undefined;
    } catch {
      decoded = undefined;
    }
    if (decoded === undefined) {
      this.stats.rejected++;
      log.warn({ record: key }, 'malformed record in etcd ignored');
      return undefined;
    }
    return { key: name, value: decoded };
  }
}
