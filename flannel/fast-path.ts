/**
 * The overlay's fast path (pure rendering and listing checks): an nftables flowtable over each network's bridge, its
 * ports (the containers' veth host ends) and its VXLAN device. An established TCP/UDP flow between a network's
 * bridge and its VXLAN device is offloaded after its first packets passed the FORWARD hook (our isolation chain,
 * DOCKER-USER, the host's own rules); its later packets go from the container's veth straight to the VXLAN device
 * and back (the kernel resolves the path through the bridge), skipping the bridge, br_netfilter, routing and the
 * forward and postrouting hooks on both nodes. Conntrack stays in charge of the flow, so a VIP's NAT is applied in
 * the fast path too, and deleting a flow's conntrack entry (a backend leaving) returns it to the slow path.
 * Flows between two networks are never offloaded: the chain adds only bridge <-> VXLAN pairs of one network.
 */

export const FAST_TABLE = 'swarmnet-fast';
const T = `inet ${FAST_TABLE}`;

/**
 * After every filter chain of the forward hook (iptables-nft's FORWARD is at priority 0), so only a flow the host's
 * rules accepted can be offloaded.
 */
const PRIORITY = 'filter + 10';

/** A programmed network's bridge and VXLAN device: the chain offloads flows between the two. */
export interface FastPathPair { bridge: string; vxlan: string }

/** The flowtable's devices: every pair's bridge and VXLAN device, and the bridges' ports. Sorted, no repeats. */
export function fastPathDevices(pairs: FastPathPair[], ports: string[]): string[] {
  return [...new Set([...pairs.flatMap((p) => [p.bridge, p.vxlan]), ...ports])].sort();
}

/** The whole table, replacing whatever is there in one transaction (created first so the delete never fails). */
export function renderFastPath(pairs: FastPathPair[], devices: string[]): string {
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

/** A change of the flowtable's devices only, in one transaction: flows offloaded through the others stay. */
export function renderDeviceChange(add: string[], remove: string[]): string {
  const hook = (verb: string, ds: string[]): string => `${verb} flowtable ${T} overlay { hook ingress priority filter; devices = { ${ds.join(', ')} }; }`;
  return [...(add.length ? [hook('add', add)] : []), ...(remove.length ? [hook('delete', remove)] : [])].join('\n') + '\n';
}

const DEVICES = /devices = \{([^}]*)\}/;

/**
 * A listing split into the flowtable's devices and the rest (devices blanked): the rest must equal what we wrote,
 * while devices follow containers coming and going.
 */
export function splitListing(listing: string): { shape: string; devices: string[] } {
  const m = DEVICES.exec(listing);
  const devices = (m?.[1] ?? '').split(',').map((d) => d.trim().replace(/^"|"$/g, '')).filter(Boolean).sort();
  return { shape: listing.replace(DEVICES, 'devices = {}'), devices };
}

export function renderFastPathRemoval(): string {
  return `add table ${T}\ndelete table ${T}\n`;
}

/**
 * Whether the kernel has flowtables, checked without changing anything (`nft -c`): a device-less flowtable in a
 * table of its own. The kernel loads nf_flow_table on demand, so a modular kernel passes.
 */
export const FLOWTABLE_PROBE = 'table inet swarmnet-probe {\n  flowtable probe { hook ingress priority filter; }\n}\n';
