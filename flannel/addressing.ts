import { formatCidr, formatIp, parseCidr, sizeOf } from '../common/cidr.js';

/**
 * Addresses derived from a host subnet, flannel style: the VXLAN device holds the network address as a /32
 * (the next hop peers route to), the bridge holds the first host address as the containers' gateway.
 */

export interface HostSubnetAddressing {
  /** e.g. 10.128.1.0 — the VXLAN device address and the on-link next hop peers use. */
  vtepIp: string;
  /** e.g. 10.128.1.1 */
  gateway: string;
  /** e.g. 10.128.1.1/25 — the bridge address. */
  gatewayCidr: string;
  prefix: number;
}

export function hostSubnetAddressing(hostSubnet: string): HostSubnetAddressing {
  const c = parseCidr(hostSubnet);
  if (sizeOf(c.prefix) < 4) throw new RangeError(`host subnet too small (needs /30 or larger): ${hostSubnet}`);
  const gateway = formatIp((c.network + 1) >>> 0);
  return { vtepIp: formatIp(c.network), gateway, gatewayCidr: `${gateway}/${c.prefix}`, prefix: c.prefix };
}

/**
 * What a container on this node needs for the overlay: an address with the host-subnet prefix, and a static
 * route for the whole network CIDR via the local gateway (its default route goes through docker_gwbridge).
 */
export function containerRouting(networkCidr: string, hostSubnet: string): { gateway: string; prefix: number; route: { destination: string; nextHop: string } } {
  const a = hostSubnetAddressing(hostSubnet);
  return { gateway: a.gateway, prefix: a.prefix, route: { destination: formatCidr(parseCidr(networkCidr)), nextHop: a.gateway } };
}
