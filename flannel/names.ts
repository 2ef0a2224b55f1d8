/**
 * Names and markers of the kernel objects the overlay owns. The prefixes never collide with flannel (`flannel.N`)
 * or Docker (`docker0`, `br-*`, `veth*`, `vx-*`); every name fits IFNAMSIZ (15 characters).
 */

export const VXLAN_PREFIX = 'swvx';
export const BRIDGE_PREFIX = 'swbr';
export const VETH_HOST_PREFIX = 'swve';
export const VETH_PEER_PREFIX = 'swvp';

/** Route protocol id of our routes (`ip route ... proto 83`), so reads and deletes never see anyone else's. */
export const ROUTE_PROTO = 0x53;

/** Filter chain in the `ip filter` table (the one Docker's iptables-nft uses), jumped to from FORWARD. */
export const FORWARD_CHAIN = 'SWARMNET-FORWARD';
export const RULE_COMMENT_PREFIX = 'swarmnet:';

/** VXLAN encapsulation overhead over IPv4: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;

export const vxlanName = (vni: number): string => `${VXLAN_PREFIX}${vni}`;
export const bridgeName = (vni: number): string => `${BRIDGE_PREFIX}${vni}`;

/** True for interface names the overlay may own (it still only deletes those in its ownership record). */
export function isOurLinkName(name: string): boolean {
  return /^(swvx|swbr)\d{1,8}$/.test(name);
}
