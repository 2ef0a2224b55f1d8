import type { DesiredLink, DesiredState } from './desired.js';
import type { AddressInfo, FdbInfo, LinkInfo, NeighInfo, RouteInfo } from './kernel.js';
import { ROUTE_PROTO, isOurLinkName } from './names.js';

/**
 * Pure diff of desired against actual kernel state, as iproute2 batch lines: the minimal repair. Links are planned
 * first (phase 1); entries are planned against a fresh read once the links exist (phase 2).
 */

export interface LinkPlan {
  /** Links to add to the ownership record before the commands run. */
  record: string[];
  /** Links to drop from the record after the commands ran. */
  forget: string[];
  commands: string[];
  /** Number of links created, recreated, modified or deleted. */
  changed: number;
  /** Links with our prefix that we did not create and will not touch (unless desired: then they are adopted). */
  foreign: string[];
}

function createCommands(l: DesiredLink): string[] {
  if (l.kind === 'vxlan') {
    return [
      `link add ${l.name} type vxlan id ${l.vni} local ${l.local} dev ${l.dev} dstport ${l.port} nolearning`,
      `link set ${l.name} address ${l.mac} mtu ${l.mtu} up`,
    ];
  }
  // Conntrack on bridged frames even where the host turned it off globally: a reply from a local VIP backend is
  // bridged straight to its client, and must be un-NATed on the way (docs/lb.md).
  return [`link add ${l.name} type bridge nf_call_iptables 1`, `link set ${l.name} address ${l.mac} mtu ${l.mtu} up`];
}

/** Attributes that cannot be changed on a live device: a mismatch means delete and recreate. */
function incompatible(want: DesiredLink, have: LinkInfo): boolean {
  if (have.kind !== want.kind) return true;
  if (want.kind !== 'vxlan') return false;
  return have.vni !== want.vni || have.local !== want.local || have.dev !== want.dev || have.port !== want.port || have.learning !== false;
}

export function planLinks(desired: DesiredState, actual: LinkInfo[], owned: (name: string) => boolean): LinkPlan {
  const plan: LinkPlan = { record: [], forget: [], commands: [], changed: 0, foreign: [] };
  const byName = new Map(actual.map((l) => [l.name, l]));
  const wanted = new Set(desired.links.map((l) => l.name));
  for (const have of actual) {
    if (!isOurLinkName(have.name) || wanted.has(have.name)) continue;
    if (owned(have.name)) {
      plan.commands.push(`link del ${have.name}`);
      plan.forget.push(have.name);
      plan.changed++;
    } else plan.foreign.push(have.name);
  }
  for (const want of desired.links) {
    const have = byName.get(want.name);
    if (!owned(want.name)) plan.record.push(want.name);
    if (!have) {
      plan.commands.push(...createCommands(want));
    } else if (incompatible(want, have)) {
      plan.commands.push(`link del ${want.name}`, ...createCommands(want));
    } else if (have.mac !== want.mac || have.mtu !== want.mtu || !have.up) {
      plan.commands.push(`link set ${want.name} address ${want.mac} mtu ${want.mtu} up`);
    } else continue;
    plan.changed++;
  }
  return plan;
}

export interface EntriesActual {
  /** Names of links present now. */
  links: Set<string>;
  addresses: AddressInfo[];
  routes: RouteInfo[];
  /** Per VXLAN device. */
  neighbours: Map<string, NeighInfo[]>;
  fdb: Map<string, FdbInfo[]>;
}

export interface EntriesPlan {
  ip: string[];
  bridge: string[];
  counts: { addresses: number; routes: number; neighbours: number; fdb: number };
}

export function planEntries(desired: DesiredState, actual: EntriesActual): EntriesPlan {
  const plan: EntriesPlan = { ip: [], bridge: [], counts: { addresses: 0, routes: 0, neighbours: 0, fdb: 0 } };
  const dels: string[] = [];
  const adds: string[] = [];
  const present = (dev: string): boolean => actual.links.has(dev);

  // Addresses: exactly the desired IPv4 addresses on each of our links.
  const ourDevs = new Set(desired.links.map((l) => l.name).filter(present));
  const wantAddr = new Set(desired.addresses.filter((a) => ourDevs.has(a.dev)).map((a) => `${a.dev} ${a.cidr}`));
  const haveAddr = new Set(actual.addresses.filter((a) => ourDevs.has(a.dev)).map((a) => `${a.dev} ${a.cidr}`));
  for (const k of haveAddr) {
    if (wantAddr.has(k)) continue;
    const [dev, cidr] = k.split(' ');
    dels.push(`addr del ${cidr} dev ${dev}`);
    plan.counts.addresses++;
  }
  for (const k of wantAddr) {
    if (haveAddr.has(k)) continue;
    const [dev, cidr] = k.split(' ');
    adds.push(`addr add ${cidr} dev ${dev}`);
    plan.counts.addresses++;
  }

  // Neighbours: permanent entries on our VXLAN devices; stray permanent ones go.
  const vxlans = desired.links.filter((l) => l.kind === 'vxlan' && present(l.name)).map((l) => l.name);
  for (const dev of vxlans) {
    const have = new Map((actual.neighbours.get(dev) ?? []).map((n) => [n.ip, n]));
    const want = desired.neighbours.filter((n) => n.dev === dev);
    const wantIps = new Set(want.map((n) => n.ip));
    for (const n of have.values()) {
      if (n.permanent && !wantIps.has(n.ip)) {
        dels.push(`neigh del ${n.ip} dev ${dev}`);
        plan.counts.neighbours++;
      }
    }
    for (const n of want) {
      const h = have.get(n.ip);
      if (h?.permanent && h.mac === n.mac) continue;
      adds.push(`neigh replace ${n.ip} lladdr ${n.mac} dev ${dev} nud permanent`);
      plan.counts.neighbours++;
    }

    // FDB: one remote per VTEP MAC.
    const haveFdb = actual.fdb.get(dev) ?? [];
    const wantFdb = new Map(desired.fdb.filter((f) => f.dev === dev).map((f) => [f.mac, f.dst]));
    for (const f of haveFdb) {
      const dst = wantFdb.get(f.mac);
      if (dst === f.dst) continue;
      if (dst === undefined) plan.bridge.push(`fdb del ${f.mac} dev ${dev} self${f.dst ? ` dst ${f.dst}` : ''}`);
      else if (haveFdb.some((o) => o.mac === f.mac && o.dst === dst)) plan.bridge.push(`fdb del ${f.mac} dev ${dev} self dst ${f.dst}`);
      else continue; // the replace below rewrites it
      plan.counts.fdb++;
    }
    for (const [mac, dst] of wantFdb) {
      if (haveFdb.some((f) => f.mac === mac && f.dst === dst && f.self && f.permanent)) continue;
      plan.bridge.push(`fdb replace ${mac} dev ${dev} dst ${dst} self permanent`);
      plan.counts.fdb++;
    }
  }

  // Routes: ours are exactly those with our protocol id.
  const wantRoutes = new Map(desired.routes.filter((r) => present(r.dev)).map((r) => [r.dst, r]));
  for (const r of actual.routes) {
    const w = wantRoutes.get(r.dst);
    if (w && w.via === r.via && w.dev === r.dev && r.onlink) continue;
    if (!w) {
      dels.unshift(`route del ${r.dst} table main proto ${ROUTE_PROTO}`);
      plan.counts.routes++;
    }
  }
  const haveRoutes = new Map(actual.routes.map((r) => [r.dst, r]));
  for (const w of wantRoutes.values()) {
    const r = haveRoutes.get(w.dst);
    if (r && w.via === r.via && w.dev === r.dev && r.onlink) continue;
    adds.push(`route replace ${w.dst} via ${w.via} dev ${w.dev} onlink table main proto ${ROUTE_PROTO}`);
    plan.counts.routes++;
  }
  plan.ip = [...dels, ...adds];
  return plan;
}

/**
 * The entries a complete, successful run left in the kernel: exactly what the desired state it applied describes.
 * A change of leases is planned against it without reading the kernel (the periodic pass reads it and repairs drift).
 */
export function entriesOf(d: DesiredState): EntriesActual {
  const neighbours = new Map<string, NeighInfo[]>();
  const fdb = new Map<string, FdbInfo[]>();
  for (const n of d.neighbours) neighbours.set(n.dev, [...(neighbours.get(n.dev) ?? []), { dev: n.dev, ip: n.ip, mac: n.mac, permanent: true }]);
  for (const f of d.fdb) fdb.set(f.dev, [...(fdb.get(f.dev) ?? []), { mac: f.mac, dst: f.dst, self: true, permanent: true }]);
  return {
    links: new Set(d.links.map((l) => l.name)),
    addresses: d.addresses,
    routes: d.routes.map((r) => ({ dst: r.dst, via: r.via, dev: r.dev, onlink: true })),
    neighbours, fdb,
  };
}
