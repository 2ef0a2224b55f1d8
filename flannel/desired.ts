import { containsCidr, formatCidr, isIp, overlaps, parseCidr, type Cidr } from '../common/cidr.js';
import { hostSubnetAddressing } from './addressing.js';
import type { HostLease, OverlayNetwork, OverlayState } from './model.js';
import { BRIDGE_PREFIX, RULE_COMMENT_PREFIX, VXLAN_OVERHEAD, VXLAN_PREFIX, bridgeName, vxlanName } from './names.js';

/** The kernel state one node should have for the overlay: a pure function of the control-plane state. */

export interface VxlanLink {
  kind: 'vxlan';
  name: string;
  vni: number;
  local: string;
  dev: string;
  port: number;
  mac: string;
  mtu: number;
}

export interface BridgeLink {
  kind: 'bridge';
  name: string;
  /** Fixed, so the gateway's MAC does not change when the first port joins (the kernel would adopt the port's). */
  mac: string;
  mtu: number;
}

export type DesiredLink = VxlanLink | BridgeLink;

/** An IPv4 interface address, `ip/prefix`. */
export interface AddressEntry { dev: string; cidr: string }
/** `<dst> via <via> dev <dev> onlink proto 83`. */
export interface RouteEntry { dst: string; via: string; dev: string }
/** Permanent neighbour (ARP) entry. */
export interface NeighEntry { dev: string; ip: string; mac: string }
/** `bridge fdb <mac> dev <dev> dst <dst> self permanent`. */
export interface FdbEntry { dev: string; mac: string; dst: string }

export interface Skipped { networkId: string; node?: string; subnet?: string; reason: string }

export interface DesiredState {
  links: DesiredLink[];
  addresses: AddressEntry[];
  routes: RouteEntry[];
  neighbours: NeighEntry[];
  fdb: FdbEntry[];
  /** Rules of FORWARD_CHAIN in `iptables -S` form without `-A <chain> ` (order matters). */
  filterRules: string[];
  /** Input the node cannot program, with the reason (logged by the reconciler). */
  skipped: Skipped[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const MAX_VNI = 0xffffff;

function networkProblem(n: OverlayNetwork): string | undefined {
  if (!Number.isInteger(n.vni) || n.vni < 1 || n.vni > MAX_VNI) return `VNI out of range 1..${MAX_VNI}: ${n.vni}`;
  try {
    parseCidr(n.subnet);
  } catch (e) {
    return (e as Error).message;
  }
  if (n.mtu !== undefined && (!Number.isInteger(n.mtu) || n.mtu < 576 || n.mtu > 65485)) return `MTU out of range 576..65485: ${n.mtu}`;
  return undefined;
}

function leaseProblem(l: HostLease, net: Cidr): string | undefined {
  let sub: Cidr;
  try {
    sub = parseCidr(l.subnet);
    hostSubnetAddressing(l.subnet);
  } catch (e) {
    return (e as Error).message;
  }
  if (!containsCidr(net, sub)) return `host subnet ${l.subnet} is outside the network ${formatCidr(net)}`;
  if (!isIp(l.publicIp)) return `bad public IP ${JSON.stringify(l.publicIp)}`;
  if (!MAC.test(l.vtepMac.toLowerCase())) return `bad VTEP MAC ${JSON.stringify(l.vtepMac)}`;
  return undefined;
}

/** Accept our bridge <-> our VXLAN device of the same network; drop anything else that enters or leaves an overlay. */
function filterRules(vnis: number[]): string[] {
  const rules: string[] = [];
  for (const vni of vnis) {
    const br = bridgeName(vni);
    const vx = vxlanName(vni);
    const mark = `-m comment --comment ${RULE_COMMENT_PREFIX}${vni}`;
    rules.push(`-i ${br} -o ${br} ${mark} -j ACCEPT`, `-i ${br} -o ${vx} ${mark} -j ACCEPT`, `-i ${vx} -o ${br} ${mark} -j ACCEPT`);
  }
  // Isolation: the host routes between bridges, and a container's default route (docker_gwbridge) reaches the host too.
  const iso = `-m comment --comment ${RULE_COMMENT_PREFIX}isolation -j DROP`;
  for (const prefix of [BRIDGE_PREFIX, VXLAN_PREFIX]) rules.push(`-i ${prefix}+ ${iso}`, `-o ${prefix}+ ${iso}`);
  return rules;
}

/** The VTEP MAC with one more locally administered bit flipped: stable per node and network, distinct from every VTEP. */
function bridgeMac(vtep: string): string {
  const first = parseInt(vtep.slice(0, 2), 16) ^ 0x04;
  return first.toString(16).padStart(2, '0') + vtep.slice(2);
}

export function desiredKernelState(state: OverlayState, underlay: { mtu: number }): DesiredState {
  const out: DesiredState = { links: [], addresses: [], routes: [], neighbours: [], fdb: [], filterRules: [], skipped: [] };
  const byNetwork = new Map<string, HostLease[]>();
  for (const l of state.leases) {
    const list = byNetwork.get(l.networkId) ?? [];
    list.push(l);
    byNetwork.set(l.networkId, list);
  }
  const seenVni = new Set<number>();
  const programmed: number[] = [];
  const networks = [...state.networks].sort((a, b) => a.vni - b.vni);
  for (const net of networks) {
    const problem = networkProblem(net);
    if (problem) {
      out.skipped.push({ networkId: net.id, reason: problem });
      continue;
    }
    if (seenVni.has(net.vni)) {
      out.skipped.push({ networkId: net.id, reason: `VNI ${net.vni} is used by another network` });
      continue;
    }
    seenVni.add(net.vni);
    const netCidr = parseCidr(net.subnet);
    const valid: HostLease[] = [];
    for (const l of byNetwork.get(net.id) ?? []) {
      const p = leaseProblem(l, netCidr);
      if (p) out.skipped.push({ networkId: net.id, node: l.node, subnet: l.subnet, reason: p });
      else valid.push(l);
    }
    const local = valid.find((l) => l.node === state.node.name);
    if (!local) continue; // no local container: this node does not program the network
    const vx = vxlanName(net.vni);
    const br = bridgeName(net.vni);
    const mtu = net.mtu ?? underlay.mtu - VXLAN_OVERHEAD;
    const addr = hostSubnetAddressing(local.subnet);
    out.links.push(
      { kind: 'vxlan', name: vx, vni: net.vni, local: state.node.publicIp, dev: state.node.underlayInterface, port: state.node.vxlanPort, mac: local.vtepMac.toLowerCase(), mtu },
      { kind: 'bridge', name: br, mac: bridgeMac(local.vtepMac.toLowerCase()), mtu },
    );
    out.addresses.push({ dev: vx, cidr: `${addr.vtepIp}/32` }, { dev: br, cidr: addr.gatewayCidr });
    programmed.push(net.vni);
    const taken: Cidr[] = [parseCidr(local.subnet)];
    for (const l of valid) {
      if (l === local) continue;
      const sub = parseCidr(l.subnet);
      const skip = (reason: string): void => void out.skipped.push({ networkId: net.id, node: l.node, subnet: l.subnet, reason });
      if (l.node === state.node.name) skip('a second lease of this node');
      else if (l.publicIp === state.node.publicIp) skip(`remote lease has this node's public IP ${l.publicIp}`);
      else if (taken.some((t) => overlaps(t, sub))) skip('host subnet overlaps another lease');
      else {
        taken.push(sub);
        const peer = hostSubnetAddressing(l.subnet);
        const mac = l.vtepMac.toLowerCase();
        out.neighbours.push({ dev: vx, ip: peer.vtepIp, mac });
        out.fdb.push({ dev: vx, mac, dst: l.publicIp });
        out.routes.push({ dst: formatCidr(sub), via: peer.vtepIp, dev: vx });
      }
    }
  }
  // No network programmed here: no rules at all, so a node without swarmnet networks carries nothing of ours.
  out.filterRules = programmed.length ? filterRules(programmed) : [];
  return out;
}
