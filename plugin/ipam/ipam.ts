import type { Etcd3 } from 'etcd3';
import { cidrToKey, contains, formatCidr, formatIp, keyToCidr, lastAddress, parseCidr, parseIp, type Cidr } from '../../common/cidr.js';
import { logger } from '../../common/log.js';
import { ADDRESS_SPACE_GLOBAL, ADDRESS_SPACE_LOCAL, PluginError, type IpamDriver } from '../protocol/contract.js';
import type { PoolRequest, ReleaseAddressRequest, RequestAddressRequest, RequestPoolRequest } from '../protocol/schemas.js';
import { Keys, hex } from '../state/keys.js';
import { etcdFailure, type NodeLease } from '../state/etcd-client.js';
import { NetworkRecords, type NetworkRecord, type RecordKind } from '../state/network-records.js';
import { PrefixWatch } from '../state/watch.js';
import { planReclaim, planRestart, type LiveEndpoints } from './restart-plan.js';
import {
  decodePoolId, encodePoolId, gatewayOf, hostSubnets, hosts, networkCandidates, validateRequestedPool, vipBlock, type Space,
} from './plan.js';

const log = logger('ipam');
const GATEWAY = 'com.docker.network.gateway';
const MAC_OPTION = 'com.docker.network.endpoint.macaddress';
const MAX_ATTEMPTS = 20;

export type { NetworkRecord };

export interface HostLease {
  networkId: string;
  subnet: Cidr;
  gateway: number;
  vni: number;
  vtepMac: string;
  publicIp: string;
  node: string;
}

export interface EndpointRecord {
  networkId: string;
  endpointId: string;
  address: string;
  mac: string;
  sandboxKey?: string;
}

/** What the overlay reconciler needs: every network and every host lease in the cluster. */
export interface OverlayState {
  networks: { id: string; vni: number; subnet: Cidr; mtu?: number }[];
  leases: { networkId: string; subnet: Cidr; publicIp: string; vtepMac: string; node: string }[];
}

export interface IpamOptions {
  client: Etcd3;
  lease: NodeLease;
  prefix: string;
  node: string;
  publicIp: string;
  availableSubnets: Cidr[];
  networkSubnetSize: number;
  hostSubnetSize: number;
  vniStart: number;
  vtepMac: (node: string, vni: number) => string;
}

interface AddressValue { node: string; key?: string }

/** Cancels the record watches when called; `watches` by role, for their counters. */
export type RecordsWatch = (() => Promise<void>) & { watches: Record<'networks' | 'flannel-networks' | 'node-subnets', PrefixWatch> };

/** Where a node starts looking for a free host subnet: spread by its name, so nodes joining at once rarely collide. */
export function startIndex(node: string, count: number): number {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < node.length; i++) h = Math.imul(h ^ node.charCodeAt(i), 0x01000193) >>> 0;
  return count > 0 ? h % count : 0;
}

/**
 * IPAM over etcd. Network ids are the network's subnet key (`10.128.0.0-20`): the subnet is what both the manager
 * (after allocation) and the task nodes (RequestPool with Pool given) see, so a missing or reused flannel-id cannot
 * make two networks share state. Leader-side addresses (VIPs and task placeholders — indistinguishable in the
 * request) come from the network's cluster-wide VIP block; node-side addresses from the node's host subnet.
 */
export class Ipam implements IpamDriver {
  private readonly keys: Keys;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly hostLeases = new Map<string, HostLease>();
  private readonly used = new Map<string, Set<number>>();
  /** Addresses this process allocated or re-attached: a request Docker is serving now, never released by reconcileNode. */
  private readonly fresh = new Set<string>();
  /** Docker network id → our network id, learned from lookups: Join and CreateEndpoint then read one key instead of
   * every network. Only a hint: the record read must still carry that Docker id. */
  private readonly byDockerId = new Map<string, string>();
  /** Address records this process created or released, by address space (metrics). */
  readonly stats = { allocated: { local: 0, global: 0 }, released: { local: 0, global: 0 } };
  /** Networks and host leases cluster-wide, from watch events (watchRecords); etcd is asked while it is not ready. */
  readonly records: NetworkRecords;
  /** Releases etcd could not take yet, by pool and address (releaseAddress). */
  private readonly owed = new Map<string, ReleaseAddressRequest>();
  private owedTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: IpamOptions) {
    this.keys = new Keys(o.prefix);
    this.records = new NetworkRecords(o.prefix);
  }

  /** Forget cached node-owned state (after the node lease was lost and re-granted). */
  resetCache(): void {
    this.hostLeases.clear();
    this.used.clear();
  }

  async requestPool(req: RequestPoolRequest): Promise<{ PoolID: string; Pool: string; Data: Record<string, string> }> {
    if (req.V6) throw new PluginError('IPv6 pools are not supported by swarmnet', 400);
    if (req.SubPool) throw new PluginError('SubPool (--ip-range) is not supported: each node gets its own host subnet', 400);
    const space = spaceOf(req.AddressSpace);
    const flannelId = req.Options?.['flannel-id'];
    if (flannelId !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(flannelId)) {
      throw new PluginError(`malformed flannel-id ${JSON.stringify(flannelId)}: letters, digits, ".", "_", "-"`, 400);
    }
    return this.guard(async () => {
      let net: NetworkRecord;
      if (req.Pool) {
        let subnet: Cidr;
        try {
          subnet = validateRequestedPool(req.Pool, this.o.availableSubnets, this.o.networkSubnetSize);
        } catch (e) {
          throw new PluginError((e as Error).message, 400);
        }
        const existing = await this.network(subnet);
        if (existing) {
          if (space === 'global' && flannelId && existing.flannelId && existing.flannelId !== flannelId) {
            throw new PluginError(`subnet ${req.Pool} is already used by network flannel-id=${existing.flannelId}`, 400);
          }
          net = existing; // a replay by a new leader, or the task node's call
        } else if (space === 'local') {
          throw new PluginError(`unknown pool ${req.Pool}: no swarmnet network has this subnet`, 400);
        } else {
          net = await this.createNetwork(subnet, flannelId);
        }
      } else {
        if (space === 'local') throw new PluginError('a local-scope pool needs the network subnet (Pool)', 400);
        net = await this.createNetwork(undefined, flannelId);
      }
      const subnet = keyToCidr(net.id);
      if (space === 'local') await this.ensureHostLease(net);
      return { PoolID: encodePoolId(space, subnet), Pool: formatCidr(subnet), Data: {} };
    });
  }

  async releasePool(req: PoolRequest): Promise<void> {
    const ref = this.pool(req.PoolID);
    await this.guard(async () => {
      const id = cidrToKey(ref.subnet);
      if (ref.space === 'local') return this.releaseHostLease(id);
      const net = await this.network(ref.subnet);
      if (!net) return;
      const k = this.keys;
      // The whole network goes: record, VNI, config, leases and every address record. The record first: every
      // allocation in the network is conditional on it (networkExists), so none lands after the sweep below and
      // outlives the network (the plugin API fuzz found host subnets and VIPs of released networks).
      await this.o.client.delete().key(k.network(id)).exec();
      await this.o.client.if(k.vni(net.vni), 'Value', '==', id).then(this.o.client.delete().key(k.vni(net.vni))).commit();
      await this.o.client.delete().prefix(`${this.o.prefix}/networks/${id}/`).exec();
      for (const p of [k.nodeSubnets(id), k.addresses(id), k.leaderAddresses(id), `${this.o.prefix}/swarmnet/address-keys/${id}/`]) {
        await this.o.client.delete().prefix(p).exec();
      }
      this.hostLeases.delete(id);
      this.used.delete(id);
    });
  }

  async requestAddress(req: RequestAddressRequest): Promise<{ Address: string; Data: Record<string, string> }> {
    const r = await this.allocate(req);
    // Handed out again (a replay of the same key): a release still owed for it must not take it away.
    this.owed.delete(owedKey(req.PoolID, r.Address));
    return r;
  }

  private async allocate(req: RequestAddressRequest): Promise<{ Address: string; Data: Record<string, string> }> {
    const ref = this.pool(req.PoolID);
    const opts = req.Options ?? {};
    let wanted: number | undefined;
    if (req.Address) {
      try {
        wanted = parseIp(req.Address.split('/')[0]!);
      } catch {
        throw new PluginError(`malformed address ${JSON.stringify(req.Address)}`, 400);
      }
      if (!contains(ref.subnet, wanted)) throw new PluginError(`address ${req.Address} is outside pool ${formatCidr(ref.subnet)}`, 400);
    }
    const mac = opts[MAC_OPTION];
    if (mac !== undefined && !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new PluginError(`malformed MAC address ${JSON.stringify(mac)}`, 400);
    const isGateway = opts.RequestAddressType === GATEWAY;
    return this.guard(async () => {
      const net = await this.network(ref.subnet);
      if (!net) throw new PluginError(`unknown pool ${req.PoolID}`, 400);
      if (ref.space === 'global') {
        if (isGateway) return { Address: `${formatIp(gatewayOf(ref.subnet))}/${ref.subnet.prefix}`, Data: {} };
        const ip = await this.leaderAddress(net, wanted);
        return { Address: `${formatIp(ip)}/${ref.subnet.prefix}`, Data: {} };
      }
      const host = await this.ensureHostLease(net);
      if (isGateway) return { Address: `${formatIp(host.gateway)}/${host.subnet.prefix}`, Data: {} };
      const key = mac ? `mac-${mac.toLowerCase()}` : wanted !== undefined ? `ip-${hex(wanted)}` : undefined;
      const ip = await this.lock(net.id, () => this.nodeAddress(net, host, wanted, key));
      return { Address: `${formatIp(ip)}/${host.subnet.prefix}`, Data: {} };
    });
  }

  /**
   * Docker releases an address once and never again: a release that etcd cannot take now (it is down) is owed, not
   * failed. It is retried until etcd answers, unless the address is handed out again meanwhile; until then the
   * record keeps the address taken, so nothing else can get it. A plugin restart forgets what is owed: the restart
   * reconciliation releases those records then.
   */
  async releaseAddress(req: ReleaseAddressRequest): Promise<void> {
    const key = owedKey(req.PoolID, req.Address);
    try {
      await this.release(req);
      this.owed.delete(key);
    } catch (e) {
      if (!(e instanceof PluginError) || e.status !== 503) throw e;
      if (!this.owed.has(key)) log.warn({ pool: req.PoolID, address: req.Address, err: e.message }, 'address release owed until etcd answers');
      this.owed.set(key, { PoolID: req.PoolID, Address: req.Address });
      this.payOwedLater();
    }
  }

  /** Releases owed because etcd was down (see releaseAddress). */
  get owedReleases(): number {
    return this.owed.size;
  }

  private payOwedLater(): void {
    if (this.owedTimer || this.closed) return;
    this.owedTimer = setTimeout(() => {
      this.owedTimer = undefined;
      void this.payOwed().finally(() => { if (this.owed.size) this.payOwedLater(); });
    }, OWED_RETRY_MS);
    this.owedTimer.unref();
  }

  private async payOwed(): Promise<void> {
    for (const [k, req] of [...this.owed]) {
      try {
        await this.release(req);
        if (this.owed.get(k) === req) this.owed.delete(k);
        log.info({ pool: req.PoolID, address: req.Address }, 'owed address release done');
      } catch (e) {
        if (e instanceof PluginError && e.status === 503) return; // etcd still away: try again later
        this.owed.delete(k);
        log.warn({ pool: req.PoolID, address: req.Address, err: (e as Error).message }, 'owed address release dropped');
      }
    }
  }

  /** Stops retrying owed releases (the runtime stops). */
  close(): void {
    this.closed = true;
    clearTimeout(this.owedTimer);
    this.owedTimer = undefined;
  }

  private async release(req: ReleaseAddressRequest): Promise<void> {
    const ref = this.pool(req.PoolID);
    let ip: number;
    try {
      ip = parseIp(req.Address.split('/')[0]!);
    } catch {
      throw new PluginError(`malformed address ${JSON.stringify(req.Address)}`, 400);
    }
    if (!contains(ref.subnet, ip)) throw new PluginError(`address ${req.Address} is outside pool ${formatCidr(ref.subnet)}`, 400);
    const id = cidrToKey(ref.subnet);
    await this.guard(async () => {
      if (ref.space === 'global') {
        const res = await this.o.client.delete().key(this.keys.leaderAddress(id, ip)).exec();
        if (Number(res.deleted) > 0) this.stats.released.global++;
        return;
      }
      await this.lock(id, async () => {
        const k = this.keys.address(id, ip);
        const res = await this.o.client.get(k).exec();
        const kv = res.kvs[0];
        if (!kv) return; // already released: idempotent
        const value = JSON.parse(kv.value.toString()) as AddressValue;
        if (value.node !== this.o.node) {
          log.warn({ address: req.Address, owner: value.node }, 'not releasing an address owned by another node');
          return;
        }
        const ops = [this.o.client.delete().key(k)];
        if (value.key) ops.push(this.o.client.delete().key(this.keys.addressKey(id, this.o.node, value.key)));
        // Owner check: only the exact record we read is deleted.
        const txn = await this.o.client.if(k, 'Mod', '==', Number(kv.mod_revision)).then(...ops).commit();
        if (txn.succeeded) this.stats.released.local++;
        this.used.get(id)?.delete(ip);
        this.fresh.delete(`${id}/${hex(ip)}`);
      });
    });
  }

  // ---- lookups for the network driver and the overlay ----

  async network(subnet: Cidr): Promise<NetworkRecord | undefined> {
    return this.readNetwork(cidrToKey(subnet));
  }

  /** One network record from etcd (what was read is noted in the records: it may be ahead of the watch). */
  private async readNetwork(id: string): Promise<NetworkRecord | undefined> {
    const key = this.keys.network(id);
    const res = await this.o.client.get(key).exec();
    const kv = res.kvs[0];
    if (!kv) {
      this.records.apply('networks', 'delete', key, undefined, Number(res.header.revision));
      return undefined;
    }
    this.records.apply('networks', 'put', key, kv.value.toString(), Number(kv.mod_revision));
    return JSON.parse(kv.value.toString()) as NetworkRecord;
  }

  /**
   * This node's address records with no running container in `live` (what a restart reconciliation would release),
   * read from the node's own replay-key index (`address-keys/<net>/<node>/`): O(this node's records) per network.
   */
  async unusedRecords(live: LiveEndpoints): Promise<{ network: string; address: string }[]> {
    const out: { network: string; address: string }[] = [];
    for (const net of await this.networks()) {
      if (this.records.ready && !this.records.holds(net.id, this.o.node)) continue; // no host subnet here: no records
      const prefix = this.keys.addressKeys(net.id, this.o.node);
      const kvs = await this.o.client.getAll().prefix(prefix).strings();
      const records = Object.entries(kvs).map(([k, ip]) => ({ networkId: net.id, address: formatIp(parseInt(ip, 16)), node: this.o.node, key: k.slice(prefix.length) }));
      for (const r of planRestart(records, this.o.node, live, () => false).release) out.push({ network: net.subnet, address: r.address });
    }
    return out;
  }

  /** Every network: from the watched records once they are ready, else (at start) from etcd. */
  async networks(): Promise<NetworkRecord[]> {
    return this.records.ready ? this.records.allNetworks() : this.listNetworks();
  }

  /** Every network record, read from etcd. */
  private async listNetworks(): Promise<NetworkRecord[]> {
    const all = await this.o.client.getAll().prefix(this.keys.networks()).strings();
    return Object.values(all).map((v) => JSON.parse(v) as NetworkRecord);
  }

  /**
   * The record behind a Docker network id: the candidate comes from memory and the record itself is read (one key).
   * A miss reads every network record once, as the watch may not have brought a binding made elsewhere yet.
   */
  async networkByDockerId(dockerNetworkId: string): Promise<NetworkRecord | undefined> {
    const find = (nets: NetworkRecord[]): string | undefined => nets.find((n) => n.dockerNetworkId === dockerNetworkId)?.id;
    let hint = this.byDockerId.get(dockerNetworkId) ?? find(await this.networks());
    if (hint === undefined && this.records.ready) hint = find(await this.listNetworks());
    if (hint === undefined) return undefined;
    const net = await this.readNetwork(hint);
    if (net?.dockerNetworkId !== dockerNetworkId) {
      this.byDockerId.delete(dockerNetworkId); // deleted or re-created: look again next time
      return undefined;
    }
    this.remember(dockerNetworkId, net.id);
    return net;
  }

  private remember(dockerNetworkId: string, id: string): void {
    if (this.byDockerId.size >= 4096) this.byDockerId.clear();
    this.byDockerId.set(dockerNetworkId, id);
  }

  /**
   * Record what CreateNetwork learned (Docker's network id, -o mtu). The write is conditional on the record read: a
   * plain put after a concurrent ReleasePool brought the network back without its VNI and flannel config, and after a
   * re-creation it wrote the old VNI over the new one, leaving the new VNI's key without a network (found by the
   * plugin API fuzz). Records are always written as JSON.stringify of the record, so the one read re-serialises to
   * the stored bytes.
   */
  async updateNetwork(subnet: Cidr, patch: { dockerNetworkId?: string; mtu?: number }): Promise<NetworkRecord> {
    return this.guard(async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const net = await this.network(subnet);
        if (!net) throw new PluginError(`unknown network ${formatCidr(subnet)}`, 400);
        const key = this.keys.network(net.id);
        const next = { ...net, ...patch };
        const value = JSON.stringify(next);
        const res = await this.o.client.if(key, 'Value', '==', JSON.stringify(net)).then(this.o.client.put(key).value(value)).commit();
        if (!res.succeeded) continue; // changed or deleted since the read: read again
        this.records.apply('networks', 'put', key, value, Number(res.header.revision));
        if (next.dockerNetworkId) this.remember(next.dockerNetworkId, next.id);
        return next;
      }
      throw new PluginError('could not update the network record: too much contention, try again', 503);
    });
  }

  /** This node's host lease in a network (creates it if missing). */
  async localHostLease(subnet: Cidr): Promise<HostLease> {
    return this.guard(async () => {
      const net = await this.network(subnet);
      if (!net) throw new PluginError(`unknown network ${formatCidr(subnet)}`, 400);
      return this.ensureHostLease(net);
    });
  }

  /** The networks `wanted` picks (default all) and their host leases, from memory (the records the watches keep current). */
  overlayState(wanted: (networkId: string) => boolean = () => true): OverlayState {
    const networks: OverlayState['networks'] = [];
    for (const n of this.records.allNetworks()) {
      if (!wanted(n.id)) continue;
      try {
        networks.push({ id: n.id, vni: n.vni, subnet: parseCidr(n.subnet), mtu: n.mtu });
      } catch {
        // a record with an unparsable subnet cannot be programmed; desiredKernelState reports what it skips
      }
    }
    const leases = this.records.leasesOf(wanted).map((l) => ({ networkId: l.networkId, subnet: keyToCidr(l.subnetKey), publicIp: l.publicIp, vtepMac: l.vtepMac, node: l.node }));
    return { networks, leases };
  }

  /**
   * Keeps `records` current from three watches (networks, flannel leases, their owners) and calls `onChange` after
   * every change (with the network it concerns) and every full listing (start, compaction, a watch that could not
   * resume; no network). A change costs its own size: nothing is re-read. Address changes do not reach it.
   */
  async watchRecords(onChange: (networkId?: string) => void): Promise<RecordsWatch> {
    const watches: PrefixWatch[] = [];
    const close = async (): Promise<void> => { await Promise.all(watches.map((w) => w.close())); };
    // Until all three listings are in, the records are partial (networks without their leases): a consumer acting on
    // them would take down routes to other nodes for a moment. One call once they are whole.
    let whole = false;
    const start = (kind: RecordKind): Promise<PrefixWatch> => PrefixWatch.start(this.o.client, this.records.root(kind), {
      onSnapshot: (kvs, rev) => { this.records.reset(kind, kvs, rev); if (whole) onChange(); },
      onEvent: (ev) => { if (this.records.apply(kind, ev.type, ev.key, ev.value, ev.revision) && whole) onChange(this.records.networkOf(kind, ev.key)); },
    });
    try {
      for (const kind of ['networks', 'flannel', 'owners'] as const) watches.push(await start(kind));
    } catch (e) {
      await close();
      throw e;
    }
    whole = true;
    onChange();
    return Object.assign(close, { watches: { networks: watches[0]!, 'flannel-networks': watches[1]!, 'node-subnets': watches[2]! } });
  }

  async putEndpoint(rec: EndpointRecord): Promise<void> {
    await this.guard(async () => {
      await this.o.client.put(this.keys.endpoint(this.o.node, rec.endpointId)).value(JSON.stringify(rec)).lease(await this.o.lease.id()).exec();
    });
  }

  async getEndpoint(endpointId: string): Promise<EndpointRecord | undefined> {
    return this.guard(async () => {
      const v = await this.o.client.get(this.keys.endpoint(this.o.node, endpointId)).string();
      return v === null ? undefined : (JSON.parse(v) as EndpointRecord);
    });
  }

  async deleteEndpoint(endpointId: string): Promise<void> {
    await this.guard(async () => { await this.o.client.delete().key(this.keys.endpoint(this.o.node, endpointId)).exec(); });
  }

  /**
   * Restart reconciliation, "Docker trumps etcd trumps memory" (decision: planRestart). `live` must come from a
   * complete, successful Docker listing of this node: never call this while Docker is unreachable. An etcd failure
   * throws (503) before or between releases; each release is owner-checked, so a retry is safe. Kept addresses, their
   * host subnets and their endpoint records are re-attached to the current node lease. With `live.endpoints`, running
   * containers whose records vanished (the node lease expired while cut off from etcd) get them back when nobody took
   * their host subnet or address meanwhile (planReclaim): call it again after NodeLease's `onRenewed`. Returns the
   * released addresses.
   */
  async reconcileNode(live: LiveEndpoints): Promise<string[]> {
    return this.guard(async () => {
      const released: string[] = [];
      for (const net of await this.networks()) {
        const records = await this.addressRecords(net.id);
        const plan = planRestart(records, this.o.node, live, (r) => this.fresh.has(`${net.id}/${hex(r.ip)}`));
        if (plan.keep.length) await this.ensureHostLease(net);
        for (const r of plan.keep) await this.adopt(net.id, r.ip, r.key);
        for (const r of plan.release) {
          await this.releaseAddress({ PoolID: encodePoolId('local', keyToCidr(net.id)), Address: r.address });
          released.push(r.address);
        }
        if (live.endpoints?.length) {
          const own = await this.o.client.get(this.keys.nodeSubnet(net.id, this.o.node)).string();
          const recorded = new Map(records.filter((r) => !plan.release.includes(r)).map((r) => [r.ip, r.node]));
          const subnet = keyToCidr(net.id);
          const re = planReclaim([{ id: net.id, subnet, vipBlock: vipBlock(subnet, this.o.hostSubnetSize), recorded, ...(own !== null ? { own: keyToCidr(own) } : {}) }], this.o.node, this.o.hostSubnetSize, live.endpoints);
          for (const c of re.conflicts) log.error({ network: net.id, conflict: c }, 'a running container\'s address cannot be recorded again');
          for (const claim of re.claims) await this.reclaim(net, claim.hostSubnet, claim.addresses, own === null);
        }
      }
      await this.adoptEndpoints((rec) => live.macs.has(rec.mac.toLowerCase()) || live.addresses.has(rec.address.split('/')[0]!));
      return released;
    });
  }

  /**
   * At start: moves this node's records (host subnets, addresses, endpoints) that a previous run of the plugin left
   * under its own etcd lease onto this run's lease, releasing nothing. Without it they expire with the old lease
   * (NODE_LEASE_TTL_SECONDS after the old process died), possibly before the restart reconciliation records them
   * again, and an address still in use could be handed out twice meanwhile. What no longer runs is released later,
   * by that reconciliation, once Docker has answered.
   */
  async holdNodeRecords(): Promise<number> {
    return this.guard(async () => {
      let held = 0;
      for (const net of await this.networks()) {
        if ((await this.o.client.get(this.keys.nodeSubnet(net.id, this.o.node)).string()) === null) continue;
        await this.ensureHostLease(net);
        for (const r of await this.addressRecords(net.id)) if (r.node === this.o.node && await this.adopt(net.id, r.ip, r.key)) held++;
      }
      await this.adoptEndpoints(() => true);
      return held;
    });
  }

  /**
   * Records again the addresses of running containers whose records vanished with a lost node lease: the host subnet
   * first (only if nobody took it meanwhile), then each address (only if still free).
   */
  private async reclaim(net: NetworkRecord, hostSubnet: Cidr, addresses: { ip: number; mac?: string }[], claimSubnet: boolean): Promise<void> {
    const c = this.o.client;
    const leaseId = await this.o.lease.id();
    const ownerKey = this.keys.nodeSubnet(net.id, this.o.node);
    if (claimSubnet) {
      const leaseKey = this.keys.flannelLease(net.id, hostSubnet);
      const flannel = JSON.stringify({ PublicIP: this.o.publicIp, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: net.vni, VtepMAC: this.o.vtepMac(this.o.node, net.vni) } });
      const res = await c.if(ownerKey, 'Create', '==', 0).and(leaseKey, 'Create', '==', 0).and(...this.networkExists(net.id))
        .then(c.put(leaseKey).value(flannel).lease(leaseId), c.put(ownerKey).value(cidrToKey(hostSubnet)).lease(leaseId)).commit();
      if (!res.succeeded) {
        log.error({ network: net.id, subnet: formatCidr(hostSubnet) }, 'host subnet of running containers was taken by another node; their addresses are not recorded');
        return;
      }
      this.hostLeases.delete(net.id);
      this.used.delete(net.id);
    }
    await this.ensureHostLease(net);
    for (const a of addresses) {
      const key = a.mac ? `mac-${a.mac}` : undefined;
      const addrKey = this.keys.address(net.id, a.ip);
      let txn = c.if(addrKey, 'Create', '==', 0).and(ownerKey, 'Value', '==', cidrToKey(hostSubnet));
      const ops = [c.put(addrKey).value(JSON.stringify({ node: this.o.node, ...(key ? { key } : {}) })).lease(leaseId)];
      if (key) {
        txn = txn.and(this.keys.addressKey(net.id, this.o.node, key), 'Create', '==', 0);
        ops.push(c.put(this.keys.addressKey(net.id, this.o.node, key)).value(hex(a.ip)).lease(leaseId));
      }
      const res = await txn.then(...ops).commit();
      if (res.succeeded) {
        this.used.get(net.id)?.add(a.ip);
        log.info({ network: net.id, address: formatIp(a.ip) }, 'address of a running container recorded again');
      } else log.error({ network: net.id, address: formatIp(a.ip) }, 'address of a running container is taken; not recorded');
    }
  }

  /** A network's address records, as stored. */
  private async addressRecords(id: string): Promise<{ networkId: string; address: string; ip: number; node: string; key?: string }[]> {
    const all = await this.o.client.getAll().prefix(this.keys.addresses(id)).exec();
    return all.kvs.map((kv) => {
      const value = JSON.parse(kv.value.toString()) as AddressValue;
      const ip = parseInt(kv.key.toString().slice(this.keys.addresses(id).length), 16);
      return { networkId: id, address: formatIp(ip), ip, node: value.node, ...(value.key ? { key: value.key } : {}) };
    });
  }

  /** Re-attach this node's endpoint records that `keep` picks to the current node lease. */
  private async adoptEndpoints(keep: (rec: EndpointRecord) => boolean): Promise<void> {
    const c = this.o.client;
    const leaseId = await this.o.lease.id();
    const records = await c.getAll().prefix(this.keys.endpoints(this.o.node)).exec();
    for (const kv of records.kvs) {
      const rec = JSON.parse(kv.value.toString()) as EndpointRecord;
      if (!keep(rec)) continue;
      const v = kv.value.toString();
      await c.if(kv.key.toString(), 'Value', '==', v).then(c.put(kv.key.toString()).value(v).lease(leaseId)).commit();
    }
  }

  // ---- internals ----

  private pool(poolId: string) {
    const ref = decodePoolId(poolId);
    if (!ref) throw new PluginError(`unknown pool ${JSON.stringify(poolId)}`, 400);
    return ref;
  }

  private async createNetwork(wanted: Cidr | undefined, flannelId: string | undefined): Promise<NetworkRecord> {
    const c = this.o.client;
    // Subnets found taken by a failed transaction: the records may not have seen them yet.
    const conflicts = new Set<string>();
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const taken = new Set([...(await this.networks()).map((n) => n.id), ...conflicts]);
      let subnet = wanted;
      if (!subnet) {
        for (const cand of networkCandidates(this.o.availableSubnets, this.o.networkSubnetSize)) {
          if (!taken.has(cidrToKey(cand))) { subnet = cand; break; }
        }
        if (!subnet) throw new PluginError(`no free /${this.o.networkSubnetSize} left in AVAILABLE_SUBNETS`, 400);
      }
      const vnis = new Set(Object.values(await c.getAll().prefix(this.keys.vnis()).keys()).map((k) => Number(k.slice(this.keys.vnis().length))));
      let vni = this.o.vniStart;
      while (vnis.has(vni)) vni++;
      const id = cidrToKey(subnet);
      const rec: NetworkRecord = { id, subnet: formatCidr(subnet), vni, vipBlock: formatCidr(vipBlock(subnet, this.o.hostSubnetSize)), ...(flannelId ? { flannelId } : {}) };
      const res = await c
        .if(this.keys.network(id), 'Create', '==', 0)
        .and(this.keys.vni(vni), 'Create', '==', 0)
        .then(
          c.put(this.keys.network(id)).value(JSON.stringify(rec)),
          c.put(this.keys.vni(vni)).value(id),
          c.put(this.keys.flannelConfig(id)).value(JSON.stringify({ Network: rec.subnet, SubnetLen: this.o.hostSubnetSize, Backend: { Type: 'vxlan', VNI: vni } })),
        )
        .commit();
      if (res.succeeded) {
        this.records.apply('networks', 'put', this.keys.network(id), JSON.stringify(rec), Number(res.header.revision));
        log.info({ network: id, vni }, 'network created');
        return rec;
      }
      conflicts.add(id);
      if (wanted) {
        const existing = await this.network(wanted);
        if (existing) return existing; // a concurrent replay created it
      }
    }
    throw new PluginError('could not allocate a network subnet: too much contention, try again', 503);
  }

  private async ensureHostLease(net: NetworkRecord): Promise<HostLease> {
    const cached = this.hostLeases.get(net.id);
    if (cached) return cached;
    return this.lock(`lease/${net.id}`, async () => {
      const again = this.hostLeases.get(net.id);
      if (again) return again;
      const c = this.o.client;
      const candidates = [...hostSubnets(keyToCidr(net.id), this.o.hostSubnetSize)];
      const from = startIndex(this.o.node, candidates.length);
      const leaseId = await this.o.lease.id();
      const ownerKey = this.keys.nodeSubnet(net.id, this.o.node);
      // Subnets a failed transaction found taken that the records had not seen yet (nodes joining at once).
      const conflicts = new Set<string>();
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const mine = await c.get(ownerKey).string();
        let subnet: Cidr | undefined = mine !== null ? keyToCidr(mine) : undefined;
        if (!subnet) {
          const taken = this.records.ready ? this.records.takenSubnets(net.id) : await this.takenSubnets(net.id);
          for (let i = 0; i < candidates.length && !subnet; i++) {
            const cand = candidates[(from + i) % candidates.length]!;
            const k = cidrToKey(cand);
            if (!taken.has(k) && !conflicts.has(k)) subnet = cand;
          }
          if (!subnet) throw new PluginError(`network ${net.subnet} has no free /${this.o.hostSubnetSize} host subnet for node ${this.o.node}`, 400);
        }
        const lease: HostLease = {
          networkId: net.id, subnet, gateway: gatewayOf(subnet), vni: net.vni, vtepMac: this.o.vtepMac(this.o.node, net.vni), publicIp: this.o.publicIp, node: this.o.node,
        };
        const flannel = JSON.stringify({ PublicIP: lease.publicIp, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: net.vni, VtepMAC: lease.vtepMac } });
        const leaseKey = this.keys.flannelLease(net.id, subnet);
        const txn = (mine !== null
          ? c.if(ownerKey, 'Value', '==', mine) // ours already: refresh the flannel record (and its lease)
          : c.if(ownerKey, 'Create', '==', 0).and(leaseKey, 'Create', '==', 0)).and(...this.networkExists(net.id));
        const res = await txn.then(c.put(leaseKey).value(flannel).lease(leaseId), c.put(ownerKey).value(cidrToKey(subnet)).lease(leaseId)).commit();
        if (res.succeeded) {
          // Join builds the bridge from the records next: they must hold this lease before the watch brings it.
          const rev = Number(res.header.revision);
          this.records.apply('flannel', 'put', leaseKey, flannel, rev);
          this.records.apply('owners', 'put', ownerKey, cidrToKey(subnet), rev);
          this.hostLeases.set(net.id, lease);
          return lease;
        }
        await this.throwIfReleased(net);
        if (mine === null) conflicts.add(cidrToKey(subnet));
      }
      throw new PluginError('could not lease a host subnet: too much contention, try again', 503);
    });
  }

  /** Host subnets leased in a network, read from etcd (before the records are ready). */
  private async takenSubnets(id: string): Promise<Set<string>> {
    const prefix = this.keys.flannelLeases(id);
    return new Set((await this.o.client.getAll().prefix(prefix).keys()).map((k) => k.slice(prefix.length)));
  }

  private async releaseHostLease(id: string): Promise<void> {
    const c = this.o.client;
    const ownerKey = this.keys.nodeSubnet(id, this.o.node);
    const mine = await c.get(ownerKey).string();
    this.hostLeases.delete(id);
    if (mine === null) return;
    // This node's addresses are in its own host subnet: read that range only, not the network's every record.
    const block = keyToCidr(mine);
    const left = await c.getAll().inRange({ start: this.keys.address(id, block.network), end: this.keys.address(id, lastAddress(block) + 1) }).strings();
    if (Object.values(left).some((v) => (JSON.parse(v) as AddressValue).node === this.o.node)) return; // still in use here
    await c.if(ownerKey, 'Value', '==', mine).then(c.delete().key(ownerKey), c.delete().key(this.keys.flannelLease(id, keyToCidr(mine)))).commit();
    this.used.delete(id);
  }

  /**
   * Node-side address: replay key first, then the preferred address when it is ours and free, else first free.
   * Every write is conditional on this node still holding the host subnet, so a node whose lease expired while
   * its cache still names the subnet (now another node's) cannot allocate in it: it re-leases and retries.
   */
  private async nodeAddress(net: NetworkRecord, first: HostLease, wanted: number | undefined, key: string | undefined): Promise<number> {
    const c = this.o.client;
    const vip = vipBlock(keyToCidr(net.id), this.o.hostSubnetSize);
    let host = first;
    if (key) {
      const prior = await c.get(this.keys.addressKey(net.id, this.o.node, key)).string();
      if (prior !== null) {
        const ip = parseInt(prior, 16);
        if (await this.adopt(net.id, ip, key)) return ip;
        // A stale replay key (its address now belongs to another record): drop it and allocate afresh.
        await c.if(this.keys.addressKey(net.id, this.o.node, key), 'Value', '==', prior).then(c.delete().key(this.keys.addressKey(net.id, this.o.node, key))).commit();
      }
    }
    const placeholder = wanted !== undefined && contains(vip, wanted);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      if (wanted !== undefined && !placeholder && !contains(host.subnet, wanted)) {
        throw new PluginError(`address ${formatIp(wanted)} is not in this node's host subnet ${formatCidr(host.subnet)} (--ip must be inside it)`, 400);
      }
      if (wanted !== undefined && wanted === host.gateway) throw new PluginError(`address ${formatIp(wanted)} is the host subnet gateway`, 400);
      const leaseId = await this.o.lease.id();
      const used = await this.usedSet(net.id, host.subnet);
      let ip: number | undefined;
      if (wanted !== undefined && !placeholder) {
        if (used.has(wanted)) throw new PluginError(`address ${formatIp(wanted)} is already in use`, 400);
        ip = wanted;
      } else {
        for (const h of hosts(host.subnet)) if (h !== host.gateway && !used.has(h)) { ip = h; break; }
        if (ip === undefined) throw new PluginError(`host subnet ${formatCidr(host.subnet)} of network ${net.subnet} is exhausted`, 400);
      }
      const value: AddressValue = { node: this.o.node, ...(key ? { key } : {}) };
      const addrKey = this.keys.address(net.id, ip);
      const ownerKey = this.keys.nodeSubnet(net.id, this.o.node);
      let txn = c.if(addrKey, 'Create', '==', 0).and(ownerKey, 'Value', '==', cidrToKey(host.subnet));
      const ops = [c.put(addrKey).value(JSON.stringify(value)).lease(leaseId)];
      if (key) {
        txn = txn.and(this.keys.addressKey(net.id, this.o.node, key), 'Create', '==', 0);
        ops.push(c.put(this.keys.addressKey(net.id, this.o.node, key)).value(hex(ip)).lease(leaseId));
      }
      const res = await txn.then(...ops).commit();
      if (res.succeeded) {
        used.add(ip);
        this.fresh.add(`${net.id}/${hex(ip)}`);
        this.stats.allocated.local++;
        return ip;
      }
      this.used.delete(net.id); // someone else wrote: re-read
      if ((await c.get(ownerKey).string()) !== cidrToKey(host.subnet)) {
        log.warn({ network: net.id, subnet: formatCidr(host.subnet) }, 'host subnet no longer ours (node lease expired); leasing again');
        this.hostLeases.delete(net.id);
        host = await this.ensureHostLease(net);
      }
    }
    throw new PluginError('could not allocate an address: too much contention, try again', 503);
  }

  /**
   * Re-attach one of our addresses to the current node lease (after a plugin restart granted a new lease).
   * False when the address record is not ours (any more).
   */
  private async adopt(id: string, ip: number, key: string | undefined): Promise<boolean> {
    const c = this.o.client;
    const leaseId = await this.o.lease.id();
    const value: AddressValue = { node: this.o.node, ...(key ? { key } : {}) };
    const ops = [c.put(this.keys.address(id, ip)).value(JSON.stringify(value)).lease(leaseId)];
    if (key) ops.push(c.put(this.keys.addressKey(id, this.o.node, key)).value(hex(ip)).lease(leaseId));
    const res = await c.if(this.keys.address(id, ip), 'Value', '==', JSON.stringify(value)).then(...ops).commit();
    if (res.succeeded) this.fresh.add(`${id}/${hex(ip)}`);
    return res.succeeded;
  }

  private async usedSet(id: string, block: Cidr): Promise<Set<number>> {
    let set = this.used.get(id);
    if (set) return set;
    const res = await this.o.client.getAll().inRange({ start: this.keys.address(id, block.network), end: this.keys.address(id, lastAddress(block) + 1) }).keys();
    set = new Set(res.map((k) => parseInt(k.slice(this.keys.addresses(id).length), 16)));
    this.used.set(id, set);
    return set;
  }

  /** Leader-side address from the cluster-wide VIP block; a given address is claimed idempotently (replays). */
  private async leaderAddress(net: NetworkRecord, wanted: number | undefined): Promise<number> {
    const c = this.o.client;
    const vip = vipBlock(keyToCidr(net.id), this.o.hostSubnetSize);
    if (wanted !== undefined) {
      // Addresses outside the VIP block are a user's --ip: the task node enforces them against its host subnet.
      if (contains(vip, wanted)) {
        const res = await c.if(this.keys.leaderAddress(net.id, wanted), 'Create', '==', 0).and(...this.networkExists(net.id))
          .then(c.put(this.keys.leaderAddress(net.id, wanted)).value('leader')).commit();
        if (res.succeeded) this.stats.allocated.global++;
        else await this.throwIfReleased(net);
      }
      return wanted;
    }
    return this.lock(`vip/${net.id}`, async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const used = new Set((await c.getAll().prefix(this.keys.leaderAddresses(net.id)).keys()).map((k) => parseInt(k.slice(this.keys.leaderAddresses(net.id).length), 16)));
        let ip: number | undefined;
        for (const h of hosts(vip)) if (!used.has(h)) { ip = h; break; }
        if (ip === undefined) throw new PluginError(`VIP block ${formatCidr(vip)} of network ${net.subnet} is exhausted`, 400);
        const k = this.keys.leaderAddress(net.id, ip);
        const res = await c.if(k, 'Create', '==', 0).and(...this.networkExists(net.id)).then(c.put(k).value('leader')).commit();
        if (res.succeeded) { this.stats.allocated.global++; return ip; }
        await this.throwIfReleased(net);
      }
      throw new PluginError('could not allocate a VIP: too much contention, try again', 503);
    });
  }

  /** After a conditional write failed: a network released meanwhile is the caller's 400, not contention to retry. */
  private async throwIfReleased(net: NetworkRecord): Promise<void> {
    if (!(await this.readNetwork(net.id))) throw new PluginError(`unknown network ${net.subnet}: it was released`, 400);
  }

  /** The comparison that makes a write conditional on the network record still existing (see releasePool). */
  private networkExists(id: string): [string, 'Create', '>', number] {
    return [this.keys.network(id), 'Create', '>', 0];
  }

  /** Serialise per key within this process (the txns guard across processes). */
  private lock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(key, tail);
    void tail.then(() => { if (this.locks.get(key) === tail) this.locks.delete(key); });
    return next;
  }

  /** etcd failures become 503 (Docker retries); our own PluginErrors pass through. */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof PluginError) throw e;
      log.error({ err: (e as Error).message }, 'etcd operation failed');
      throw new PluginError(`etcd is unavailable: ${etcdFailure(e as Error)}`, 503);
    }
  }
}

/** How often releases owed while etcd was down are tried again. */
const OWED_RETRY_MS = 2000;
const owedKey = (poolId: string, address: string): string => `${poolId} ${address.split('/')[0]}`;

/** Jittered exponential delay between optimistic-transaction retries: 2, 4, 8 … capped at 100 ms. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.min(2 ** attempt, 100) * (0.5 + Math.random());
  return new Promise((r) => setTimeout(r, ms));
}

function spaceOf(addressSpace: string): Space {
  // 'g'/'l' are what the recorded fixture's stub advertised.
  if (addressSpace === ADDRESS_SPACE_GLOBAL || addressSpace === 'g') return 'global';
  if (addressSpace === ADDRESS_SPACE_LOCAL || addressSpace === 'l') return 'local';
  throw new PluginError(`unknown address space ${JSON.stringify(addressSpace)}`, 400);
}
