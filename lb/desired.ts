/**
 * The load balancer's desired state: a pure value both backends render (lb/nftables, lb/ipvs). Swarm VIPs are
 * port-agnostic, so a VIP maps to addresses only: a backend receives the port the client asked for.
 */

export interface VipEntry {
  vip: string;
  serviceId: string;
  networkId: string;
  /** The running, healthy, not-draining tasks' addresses on the VIP's network, sorted; empty → reject at once. */
  backends: readonly string[];
}

export interface LbState {
  vips: ReadonlyMap<string, VipEntry>;
  /**
   * This node's task addresses: a client reaching its own task through a VIP (hairpin) must be SNATed, or its
   * kernel drops a packet whose source is its own address.
   */
  local: ReadonlySet<string>;
}

export const EMPTY_STATE: LbState = { vips: new Map(), local: new Set() };
/** What a backend's read() returns for objects of ours it cannot parse (edited by hand): never equal to a desired state. */
export const DAMAGED: LbState = { vips: new Map(), local: new Set() };

/** What changed between two states, per VIP (undefined `next`: the VIP is gone) and per local address. */
export interface LbDelta {
  vips: Map<string, { prev?: VipEntry; next?: VipEntry }>;
  localAdded: string[];
  localRemoved: string[];
}

const sameBackends = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

function sameEntry(a: VipEntry | undefined, b: VipEntry | undefined): boolean {
  if (!a || !b) return a === b;
  return a.serviceId === b.serviceId && a.networkId === b.networkId && sameBackends(a.backends, b.backends);
}

/**
 * The delta from `prev` to `next`, looking only at `vips` (all when omitted) and at the local addresses only when
 * `local` — O(the change) when both are given.
 */
export function diffStates(prev: LbState, next: LbState, vips?: Iterable<string>, local = true): LbDelta {
  const out: LbDelta = { vips: new Map(), localAdded: [], localRemoved: [] };
  const keys = vips ?? new Set([...prev.vips.keys(), ...next.vips.keys()]);
  for (const v of keys) {
    const a = prev.vips.get(v);
    const b = next.vips.get(v);
    if (!sameEntry(a, b)) out.vips.set(v, { prev: a, next: b });
  }
  if (!local) return out;
  for (const a of next.local) if (!prev.local.has(a)) out.localAdded.push(a);
  for (const a of prev.local) if (!next.local.has(a)) out.localRemoved.push(a);
  return out;
}

export function isEmptyDelta(d: LbDelta): boolean {
  return d.vips.size === 0 && d.localAdded.length === 0 && d.localRemoved.length === 0;
}

/** A state the applier owns and changes in place (its copy of what it wrote): O(the delta) per change. */
export interface WrittenState extends LbState { vips: Map<string, VipEntry>; local: Set<string> }

export function copyState(s: LbState): WrittenState {
  return { vips: new Map(s.vips), local: new Set(s.local) };
}

export function applyDelta(s: WrittenState, d: LbDelta): void {
  for (const [v, { next }] of d.vips) {
    if (next) s.vips.set(v, next); else s.vips.delete(v);
  }
  for (const a of d.localAdded) s.local.add(a);
  for (const a of d.localRemoved) s.local.delete(a);
}

/** Whether the kernel holds `desired`: VIPs, their backends and the local addresses (ids are not in the kernel). */
export function holds(actual: LbState, desired: LbState): boolean {
  // Without a VIP nothing of ours belongs in the kernel (local addresses only matter for VIP traffic).
  if (desired.vips.size === 0) return actual !== DAMAGED && actual.vips.size === 0 && actual.local.size === 0;
  if (actual === DAMAGED || actual.vips.size !== desired.vips.size || actual.local.size !== desired.local.size) return false;
  for (const [v, e] of desired.vips) {
    const a = actual.vips.get(v);
    if (!a || !sameBackends(a.backends, e.backends)) return false;
  }
  for (const x of desired.local) if (!actual.local.has(x)) return false;
  return true;
}
