import { isIPv4 } from 'node:net';
import { isName, isRecord, parseViewEvent, viewRoot } from '../common/docker-view.js';
import type { LbState, VipEntry } from './desired.js';

/**
 * The load balancer's model: Docker's view (plugin/docker/cluster-view.ts writes it under
 * `<prefix>/swarmnet/docker/`) reduced to what VIPs need, kept event by event. A service's VIP entries are
 * recomputed only when the service or one of its tasks changed (O(its tasks)); everything else is untouched.
 * Records are validated once, here: a bad record is dropped and counted.
 *
 * A task is a backend while its container runs, is healthy (or has no HEALTHCHECK) and Swarm is not stopping it
 * (`draining`): the same rule DNS applies (dns/cluster-table.ts), so a name and its VIP never disagree.
 */

interface Service { mode: 'vip' | 'dnsrr'; vips: [networkId: string, vip: string][]; draining: ReadonlySet<string> }
interface Task { id: string; serviceId: string; live: boolean; addrs: [networkId: string, address: string][]; local: boolean }

export interface ModelChange {
  /** VIPs whose entry may have changed. */
  vips: Set<string>;
  /** Whether this node's task addresses changed. */
  local: boolean;
  /** Backends that left for good (their container is gone), per VIP: their connections may be cut. */
  gone: Map<string, Set<string>>;
  /** When the oldest change in this batch arrived (ms, performance.now()): programming latency starts there. */
  since?: number;
}

export class LbModel {
  private readonly root: string;
  private readonly services = new Map<string, Service>();
  private readonly tasks = new Map<string, Task>();
  private readonly tasksOf = new Map<string, Set<string>>();
  private readonly vips = new Map<string, VipEntry>();
  /** Service id → the VIPs it has entries for (so a recompute never scans other services). */
  private readonly vipsOf = new Map<string, string[]>();
  /** This node's task addresses, counted (one address may briefly belong to two records). */
  private readonly localAddrs = new Map<string, number>();
  private change: ModelChange = newChange();
  /** During reset: services to recompute once at the end (one pass per service, not one per task). */
  private bulk?: Set<string>;
  readonly stats = { rejected: 0 };

  constructor(prefix: string, private readonly node: string, private readonly now: () => number = () => performance.now()) {
    this.root = viewRoot(prefix);
  }

  /** The whole state, as the kernel should hold it. */
  state(): LbState {
    return { vips: this.vips, local: new Set(this.localAddrs.keys()) };
  }

  /** What changed since the last call (and resets it). */
  takeChange(): ModelChange {
    const c = this.change;
    this.change = newChange();
    return c;
  }

  hasChange(): boolean {
    return this.change.vips.size > 0 || this.change.local;
  }

  reset(kvs: Map<string, string>): void {
    const before = new Set(this.vips.keys());
    this.services.clear();
    this.tasks.clear();
    this.tasksOf.clear();
    this.vips.clear();
    this.vipsOf.clear();
    this.localAddrs.clear();
    this.bulk = new Set();
    for (const [k, v] of kvs) this.apply('put', k, v);
    const services = this.bulk;
    this.bulk = undefined;
    for (const id of services) this.recompute(id);
    for (const v of before) this.touch(v);
    this.change.local = true;
  }

  /** One watch event; returns whether it was one of ours. */
  apply(type: 'put' | 'delete', key: string, value?: string): boolean {
    const ev = parseViewEvent(this.root, type, key, value);
    if (ev?.kind === 'services') this.putService(ev.id, ev.raw, type);
    else if (ev?.kind === 'containers') this.putTask(key, ev.node === this.node, ev.raw, type);
    return ev !== undefined;
  }

  private putService(id: string, raw: unknown, type: 'put' | 'delete'): void {
    const next = type === 'put' ? validService(raw) : undefined;
    if (type === 'put' && !next) this.stats.rejected++;
    if (next) this.services.set(id, next); else this.services.delete(id);
    this.recompute(id);
  }

  private putTask(key: string, local: boolean, raw: unknown, type: 'put' | 'delete'): void {
    const next = type === 'put' ? validTask(raw, local) : undefined;
    if (type === 'put' && next === null) this.stats.rejected++;
    const old = this.tasks.get(key);
    if (old) {
      this.tasks.delete(key);
      const set = this.tasksOf.get(old.serviceId);
      set?.delete(key);
      if (set?.size === 0) this.tasksOf.delete(old.serviceId);
      if (old.local) for (const [, a] of old.addrs) this.countLocal(a, -1);
      // The container is gone (not just unhealthy or draining): its connections have nowhere to go.
      if (!next || next.id !== old.id) this.markGone(old);
    }
    if (next) {
      this.tasks.set(key, next);
      let set = this.tasksOf.get(next.serviceId);
      if (!set) this.tasksOf.set(next.serviceId, (set = new Set()));
      set.add(key);
      if (next.local) for (const [, a] of next.addrs) this.countLocal(a, 1);
      if (old && old.serviceId !== next.serviceId) this.recompute(old.serviceId);
      this.recompute(next.serviceId);
    } else if (old) {
      this.recompute(old.serviceId);
    }
  }

  private markGone(t: Task): void {
    const s = this.services.get(t.serviceId);
    if (!s) return;
    for (const [net, vip] of s.vips) {
      const addr = t.addrs.find(([n]) => n === net)?.[1];
      if (!addr) continue;
      let set = this.change.gone.get(vip);
      if (!set) this.change.gone.set(vip, (set = new Set()));
      set.add(addr);
    }
  }

  private countLocal(addr: string, d: 1 | -1): void {
    const n = (this.localAddrs.get(addr) ?? 0) + d;
    if (n > 0) this.localAddrs.set(addr, n); else this.localAddrs.delete(addr);
    if (n === 0 || (n === 1 && d === 1)) this.touchLocal();
  }

  /** A service's VIP entries from its record and its tasks: O(its tasks). */
  private recompute(serviceId: string): void {
    if (this.bulk) { this.bulk.add(serviceId); return; }
    for (const vip of this.vipsOf.get(serviceId) ?? []) { this.vips.delete(vip); this.touch(vip); }
    this.vipsOf.delete(serviceId);
    const s = this.services.get(serviceId);
    if (!s || s.mode !== 'vip') return;
    const owned: string[] = [];
    const tasks = [...(this.tasksOf.get(serviceId) ?? [])].map((k) => this.tasks.get(k)!);
    for (const [networkId, vip] of s.vips) {
      const other = this.vips.get(vip);
      if (other && other.serviceId !== serviceId) { this.stats.rejected++; continue; } // a VIP is one service's
      const backends = new Set<string>();
      for (const t of tasks) {
        if (!t.live || s.draining.has(t.id)) continue;
        const a = t.addrs.find(([n]) => n === networkId)?.[1];
        if (a) backends.add(a);
      }
      this.vips.set(vip, { vip, serviceId, networkId, backends: [...backends].sort() });
      owned.push(vip);
      this.touch(vip);
    }
    if (owned.length) this.vipsOf.set(serviceId, owned);
  }

  private touch(vip: string): void {
    this.change.vips.add(vip);
    this.change.since ??= this.now();
  }

  private touchLocal(): void {
    this.change.local = true;
    this.change.since ??= this.now();
  }
}

function newChange(): ModelChange {
  return { vips: new Set(), local: false, gone: new Map() };
}


/** A ServiceView record (common/docker-view.ts). */
function validService(v: unknown): Service | undefined {
  if (!isRecord(v) || !isName(v.id) || !isRecord(v.vips)) return undefined;
  const vips: Service['vips'] = [];
  for (const [net, vip] of Object.entries(v.vips)) if (typeof vip === 'string' && isIPv4(vip)) vips.push([net, vip]);
  const draining = new Set(Array.isArray(v.draining) ? v.draining.filter(isName) : []);
  return { mode: v.endpointMode === 'dnsrr' ? 'dnsrr' : 'vip', vips, draining };
}

/** A ContainerView record: a task when it names its service; null when invalid, undefined when not a task. */
function validTask(v: unknown, local: boolean): Task | undefined | null {
  if (!isRecord(v) || !isName(v.id) || !isRecord(v.networks)) return null;
  if (!isName(v.serviceId)) return undefined;
  const addrs: Task['addrs'] = [];
  for (const [net, e] of Object.entries(v.networks)) if (isRecord(e) && typeof e.address === 'string' && isIPv4(e.address)) addrs.push([net, e.address]);
  return { id: v.id, serviceId: v.serviceId, live: v.live !== false, addrs, local };
}
