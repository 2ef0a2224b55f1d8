import { cidrToKey, contains, formatCidr, keyToCidr, lastAddress, parseCidr, sizeOf, subnets, type Cidr } from '../../common/cidr.js';

/** Which side of Swarm asked: the manager's allocator (global space) or the node that runs the task (local space). */
export type Space = 'global' | 'local';

export interface PoolRef { space: Space; subnet: Cidr }

/** PoolID `global/10.128.0.0-20`: the space and the network's subnet, so both calls on one plugin are told apart. */
export function encodePoolId(space: Space, subnet: Cidr): string {
  return `${space}/${cidrToKey(subnet)}`;
}

export function decodePoolId(poolId: string): PoolRef | undefined {
  const m = /^(global|local)\/(\d+\.\d+\.\d+\.\d+-\d+)$/.exec(poolId);
  if (!m) return undefined;
  try {
    return { space: m[1] as Space, subnet: keyToCidr(m[2]!) };
  } catch {
    return undefined;
  }
}

/** The VIP block: the last host-subnet-sized block of the network, never leased to a host. */
export function vipBlock(network: Cidr, hostPrefix: number): Cidr {
  return { network: lastAddress(network) - sizeOf(hostPrefix) + 1, prefix: hostPrefix };
}

/** Host subnets a node may lease: every /hostPrefix block except the VIP block. */
export function* hostSubnets(network: Cidr, hostPrefix: number): Generator<Cidr> {
  const vip = vipBlock(network, hostPrefix);
  for (const s of subnets(network, hostPrefix)) if (s.network !== vip.network) yield s;
}

/** Usable hosts of a block: not the network or broadcast address. */
export function* hosts(block: Cidr): Generator<number> {
  for (let ip = block.network + 1; ip < lastAddress(block); ip++) yield ip;
}

/** First host of a host subnet: the node's gateway. */
export function gatewayOf(block: Cidr): number {
  return block.network + 1;
}

/** Candidate network subnets in AVAILABLE_SUBNETS order. */
export function* networkCandidates(available: readonly Cidr[], prefix: number): Generator<Cidr> {
  for (const a of available) yield* subnets(a, prefix);
}

/** Parse a `--subnet`/Pool: must be a canonical CIDR inside one of the available ranges with the right size. */
export function validateRequestedPool(text: string, available: readonly Cidr[], prefix: number): Cidr {
  let c: Cidr;
  try {
    c = parseCidr(text);
  } catch (e) {
    throw new RangeError(`malformed pool ${JSON.stringify(text)}: ${(e as Error).message}`);
  }
  // Both conditions in one sentence: the user sees it only in `swarmnet status` (Docker hides the refusal).
  const ranges = available.map(formatCidr).join(', ');
  const inside = available.some((a) => contains(a, c.network) && contains(a, lastAddress(c)));
  if (c.prefix !== prefix || !inside) {
    const why = c.prefix !== prefix ? `is a /${c.prefix}` : 'is outside AVAILABLE_SUBNETS';
    throw new RangeError(`pool ${text} ${why}: a --subnet must be a /${prefix} (NETWORK_SUBNET_SIZE) inside AVAILABLE_SUBNETS (${ranges}); without --subnet the next free one is used`);
  }
  return c;
}
