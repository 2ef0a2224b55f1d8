import { cidrToKey, type Cidr } from '../../common/cidr.js';

/**
 * The etcd key layout (see docs/etcd-layout.md). Flannel-compatible keys live under `<prefix>/networks/<id>/`;
 * our own records under `<prefix>/swarmnet/`. Addresses are keyed by 8 hex digits so a range read is numeric.
 */
export class Keys {
  constructor(readonly prefix: string) {}

  flannelConfig(net: string): string { return `${this.prefix}/networks/${net}/config`; }
  flannelLease(net: string, host: Cidr): string { return `${this.prefix}/networks/${net}/subnets/${cidrToKey(host)}`; }
  flannelLeases(net: string): string { return `${this.prefix}/networks/${net}/subnets/`; }
  network(net: string): string { return `${this.prefix}/swarmnet/networks/${net}`; }
  networks(): string { return `${this.prefix}/swarmnet/networks/`; }
  vni(vni: number): string { return `${this.prefix}/swarmnet/vnis/${vni}`; }
  vnis(): string { return `${this.prefix}/swarmnet/vnis/`; }
  /** Which node holds which host subnet (companion of the flannel lease, same etcd lease). */
  nodeSubnet(net: string, node: string): string { return `${this.prefix}/swarmnet/node-subnets/${net}/${node}`; }
  nodeSubnets(net: string): string { return `${this.prefix}/swarmnet/node-subnets/${net}/`; }
  address(net: string, ip: number): string { return `${this.addresses(net)}${hex(ip)}`; }
  addresses(net: string): string { return `${this.prefix}/swarmnet/addresses/${net}/`; }
  /** Replay key of a node-side allocation (MAC or the leader's address) → address. */
  addressKey(net: string, node: string, key: string): string { return `${this.prefix}/swarmnet/address-keys/${net}/${node}/${key}`; }
  addressKeys(net: string, node: string): string { return `${this.prefix}/swarmnet/address-keys/${net}/${node}/`; }
  /** Cluster-wide leader-side allocations (VIPs and task placeholders) from the VIP block. */
  leaderAddress(net: string, ip: number): string { return `${this.leaderAddresses(net)}${hex(ip)}`; }
  leaderAddresses(net: string): string { return `${this.prefix}/swarmnet/leader-addresses/${net}/`; }
  endpoint(node: string, endpointId: string): string { return `${this.prefix}/swarmnet/endpoints/${node}/${endpointId}`; }
  endpoints(node: string): string { return `${this.prefix}/swarmnet/endpoints/${node}/`; }
}

export function hex(ip: number): string {
  return ip.toString(16).padStart(8, '0');
}
