/**
 * The overlay's fast path (pure rendering): an nftables flowtable over each network's bridge and VXLAN device. An
 * established TCP/UDP flow between a network's bridge and its VXLAN device is offloaded after its first packets
 * passed the FORWARD hook (our isolation chain, DOCKER-USER, the host's own rules); its later packets skip routing,
 * FORWARD and POSTROUTING on both nodes. Conntrack stays in charge of the flow, so a VIP's NAT is applied in the
 * fast path too, and deleting a flow's conntrack entry (a backend leaving) returns it to the slow path.
 * Flows between two networks are never offloaded: the chain adds only bridge <-> VXLAN pairs of one network.
 */

export const FAST_TABLE = 'swarmnet-fast';
const T = `inet ${FAST_TABLE}`;

/**
 * After every filter chain of the forward hook (iptables-nft's FORWARD is at priority 0), so only a flow the host's
 * rules accepted can be offloaded.
 */
const PRIORITY = 'filter + 10';

/** The devices of the fast path: each programmed network's bridge and VXLAN device, bridge first. */
export interface FastPathPair { bridge: string; vxlan: string }

/** The whole table, replacing whatever is there in one transaction (created first so the delete never fails). */
export function renderFastPath(pairs: FastPathPair[]): string {
  const devices = pairs.flatMap((p) => [p.bridge, p.vxlan]);
  const ways = pairs.flatMap((p) => [`"${p.bridge}" . "${p.vxlan}"`, `"${p.vxlan}" . "${p.bridge}"`]);
  return [
    `add table ${T}`,
    `delete table ${T}`,
    `table ${T} {`,
    `  flowtable overlay { hook ingress priority filter; devices = { ${devices.join(', ')} }; }`,
    `  chain forward { type filter hook forward priority ${PRIORITY}; policy accept;`,
    `    iifname . oifname { ${ways.join(', ')} } ct state established meta l4proto { tcp, udp } flow add @overlay; }`,
    '}',
    '',
  ].join('\n');
}

export function renderFastPathRemoval(): string {
  return `add table ${T}\ndelete table ${T}\n`;
}

/**
 * Whether the kernel has flowtables, checked without changing anything (`nft -c`): a device-less flowtable in a
 * table of its own. The kernel loads nf_flow_table on demand, so a modular kernel passes.
 */
export const FLOWTABLE_PROBE = 'table inet swarmnet-probe {\n  flowtable probe { hook ingress priority filter; }\n}\n';
