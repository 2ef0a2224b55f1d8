import { contains, formatCidr, formatIp, lastAddress, maskOf, parseIp, type Cidr } from '../../common/cidr.js';

/**
 * Restart reconciliation, "Docker trumps etcd trumps memory" (pure): which of this node's address records a
 * restarted plugin keeps and which it releases, given what Docker says runs on the node.
 */

export interface AddressRecordRef {
  networkId: string;
  /** Dotted address without prefix. */
  address: string;
  node: string;
  /** Replay key: `mac-<mac>` or `ip-<hex>`. */
  key?: string;
}

/** Containers running on this node according to a complete, successful Docker listing. */
export interface LiveEndpoints {
  macs: Set<string>;
  addresses: Set<string>;
  /** Address and MAC pairs (optional): lets a node re-record addresses whose records vanished with a lost lease. */
  endpoints?: LiveAddress[];
}

export interface RestartPlan<T extends AddressRecordRef> { keep: T[]; release: T[] }

/**
 * Keep: records of a running container (by MAC, else by address) and records this process itself allocated since
 * it started (a container Docker is creating right now may be missing from the listing). Release: the rest of this
 * node's records. Other nodes' records are never touched.
 */
export function planRestart<T extends AddressRecordRef>(records: T[], node: string, live: LiveEndpoints, allocatedSinceStart: (r: T) => boolean): RestartPlan<T> {
  const plan: RestartPlan<T> = { keep: [], release: [] };
  for (const r of records) {
    if (r.node !== node) continue;
    const mac = r.key?.startsWith('mac-') ? r.key.slice(4).toLowerCase() : undefined;
    if (live.addresses.has(r.address) || (mac !== undefined && live.macs.has(mac)) || allocatedSinceStart(r)) plan.keep.push(r);
    else plan.release.push(r);
  }
  return plan;
}

/** A running container's address on some network, from Docker (MAC lower-case). */
export interface LiveAddress { address: string; mac?: string }

export interface ReclaimNetwork {
  id: string;
  subnet: Cidr;
  /** The cluster-wide VIP block: never a node's. */
  vipBlock: Cidr;
  /** The host subnet this node holds now, if any. */
  own?: Cidr;
  /** Addresses recorded in etcd → owning node. */
  recorded: Map<number, string>;
}

export interface ReclaimPlan {
  /** Per network: the host subnet to hold (claimed if `own` was empty) and the addresses to record again. */
  claims: { networkId: string; hostSubnet: Cidr; addresses: { ip: number; mac?: string }[] }[];
  /** Live addresses that cannot be re-recorded without taking them from someone, with the reason. */
  conflicts: string[];
}

/**
 * Running containers whose address records vanished (the node lease expired while the node was cut off from etcd):
 * their addresses are recorded again, in the host subnet that contains them, unless that would take a recorded
 * address or a second host subnet. Addresses outside every swarmnet network (other Docker networks) are ignored.
 */
export function planReclaim(nets: ReclaimNetwork[], node: string, hostPrefix: number, live: LiveAddress[]): ReclaimPlan {
  const plan: ReclaimPlan = { claims: [], conflicts: [] };
  for (const n of nets) {
    const inNet = live.map((l) => ({ ip: parseIp(l.address), mac: l.mac })).filter((l) => contains(n.subnet, l.ip));
    for (const l of inNet) {
      const owner = n.recorded.get(l.ip);
      if (owner !== undefined && owner !== node) plan.conflicts.push(`${formatIp(l.ip)} of network ${formatCidr(n.subnet)} is recorded for node ${owner}`);
    }
    const mine = inNet.filter((l) => !n.recorded.has(l.ip));
    if (mine.length === 0) continue;
    const blockOf = (ip: number): number => (ip & maskOf(hostPrefix)) >>> 0;
    const target = n.own ?? { network: blockOf(mine[0]!.ip), prefix: hostPrefix };
    const addresses: { ip: number; mac?: string }[] = [];
    for (const l of mine) {
      const where = `${formatIp(l.ip)} of network ${formatCidr(n.subnet)}`;
      if (contains(n.vipBlock, l.ip)) plan.conflicts.push(`${where} is in the VIP block`);
      else if (!contains(target, l.ip)) plan.conflicts.push(`${where} is outside this node's host subnet ${formatCidr(target)}`);
      else if (l.ip === target.network + 1 || l.ip === target.network || l.ip === lastAddress(target)) plan.conflicts.push(`${where} is a reserved address of ${formatCidr(target)}`);
      else addresses.push(l.mac ? { ip: l.ip, mac: l.mac.toLowerCase() } : { ip: l.ip });
    }
    if (addresses.length) plan.claims.push({ networkId: n.id, hostSubnet: target, addresses });
  }
  return plan;
}
