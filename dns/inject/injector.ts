import type { Logger } from '../../common/log.js';
import type { ClusterTable, SandboxView } from '../cluster-table.js';
import type { DnsServer, Route } from '../server.js';
import { kernel as realKernel, type InjectorKernel, type NetnsId, type Served } from './kernel.js';

/**
 * The DNS plane: every local network namespace with a swarmnet endpoint has 127.0.0.11:53 answered by this
 * process, from that namespace's view (its swarmnet networks, cluster-wide names from the Docker view in etcd).
 *
 * Desired state: namespaces Docker joined to a swarmnet network (Join, before the container's process starts)
 * plus this node's container records in etcd (what is running, also after a plugin restart, when Docker sends no
 * Join). A namespace is served once it exists: at Join on Docker ≥ 26 (the container's namespace exists), on the
 * createContainer hook or the first poll that finds it on 20.10 (the namespace appears during `runc create`).
 * Misses go to Docker's own resolver inside the namespace, so names swarmnet does not own (bridge networks, the
 * ingress, external names with the container's --dns) resolve as they did.
 */
export interface InjectorOptions {
  server: DnsServer;
  cluster: ClusterTable;
  log: Logger;
  kernel?: InjectorKernel;
  /** How often a wanted namespace that does not exist yet is looked for (default 20 ms). */
  pollMs?: number;
  /** How long after it is first wanted a namespace is polled for (default 2 min); then only on `intervalMs`. */
  pollForMs?: number;
  /** How long Join waits for the namespace to be served; past it the container starts anyway, never failed by DNS (default 5 s). */
  joinWaitMs?: number;
  /** Drift check: served namespaces still the same, failed ones retried (default 10 s). */
  intervalMs?: number;
  /** Takeover check: each served namespace still holds its takeover table, put back if not (default 30 s; one nft per namespace). */
  verifyMs?: number;
  /** A namespace Docker joined is served: seconds from the first Join that found it unserved (metrics). */
  onJoinServed?: (seconds: number) => void;
}

interface Entry {
  key: string;
  /** Endpoint id → Docker network id, from Join. */
  joined: Map<string, string>;
  served?: Served;
  /** Docker's resolver in the namespace, once found (or being looked for). */
  route?: Route | Promise<Route | undefined>;
  routeCheckedAt?: number;
  since: number;
  /** When a Join found the namespace unserved (performance.now()), until it is served. */
  joinedAt?: number;
  /** The serialised work on this namespace (serve/unserve never overlap). */
  work: Promise<unknown>;
  lastError?: string;
}

export interface InjectorStats {
  served: number;
  waiting: number;
  serveFailures: number;
  hookMatched: number;
  hookOther: number;
  tableBuilds: number;
  /** Takeover tables found missing in a served namespace and put back, and when last (epoch ms). */
  repairs: number;
  repairedAt?: number;
}

export interface HookAnswer { served: boolean; error?: string }

export class DnsInjector {
  private readonly entries = new Map<string, Entry>();
  private readonly kernel: InjectorKernel;
  private readonly pollMs: number;
  private readonly pollForMs: number;
  private readonly intervalMs: number;
  private pollTimer?: NodeJS.Timeout;
  private intervalTimer?: NodeJS.Timeout;
  private rebuildQueued = false;
  private seenLocalVersion = -1;
  private stopped = false;
  private counters: Omit<InjectorStats, 'served' | 'waiting'> = { serveFailures: 0, hookMatched: 0, hookOther: 0, tableBuilds: 0, repairs: 0 };
  private verifyTimer?: NodeJS.Timeout;
  /** The set of served namespaces or their networks changed since the views were last given to the table. */
  private viewsDirty = true;
  /**
   * Namespace → networks Docker detached it from (Leave) that this node's record of the container may still list:
   * the record follows Docker's event through etcd, later (or much later while etcd is away), and until then the
   * container must not resolve that network's names. Forgotten at a Join on it, once the record no longer lists it,
   * or when the namespace is gone.
   */
  private readonly left = new Map<string, Set<string>>();

  constructor(private readonly o: InjectorOptions) {
    this.kernel = o.kernel ?? realKernel;
    this.pollMs = o.pollMs ?? 20;
    this.pollForMs = o.pollForMs ?? 120_000;
    this.intervalMs = o.intervalMs ?? 10_000;
  }

  get stats(): InjectorStats {
    let served = 0;
    for (const e of this.entries.values()) if (e.served) served++;
    return { served, waiting: this.entries.size - served, ...this.counters };
  }

  start(): void {
    this.intervalTimer = setInterval(() => this.checkAll(), this.intervalMs);
    this.intervalTimer.unref();
    this.verifyTimer = setInterval(() => void this.verifyAll(), this.o.verifyMs ?? 30_000);
    this.verifyTimer.unref();
    this.clusterChanged();
  }

  /**
   * Puts back the takeover of every served namespace where it is gone (someone ran `nft flush ruleset` in the
   * container): without it the container silently falls back to Docker's resolver. Counted for `swarmnet doctor`.
   */
  async verifyAll(): Promise<void> {
    // One namespace at a time: a node with hundreds of containers spawns one nft at a time, not a burst.
    for (const e of [...this.entries.values()].filter((x) => x.served)) await this.run(e, async () => {
      const served = e.served;
      const ns = this.kernel.netnsId(e.key);
      if (!served || this.stopped || !ns || ns.dev !== served.ns.dev || ns.ino !== served.ns.ino) return;
      try {
        if (!(await this.kernel.repairTakeover(e.key))) return;
        this.counters.repairs++;
        this.counters.repairedAt = Date.now();
        this.o.log.warn({ netns: e.key }, 'the DNS takeover of a served namespace was gone (removed inside the container); put back');
      } catch (err) {
        this.o.log.warn({ netns: e.key, err: (err as Error).message }, 'cannot check or restore the DNS takeover');
      }
    });
  }

  /** Join: serve the namespace now if it exists (bounded; a failure leaves the container on Docker's resolver). */
  async join(endpointId: string, networkId: string, sandboxKey: string): Promise<void> {
    if (this.stopped || !sandboxKey.startsWith('/')) return;
    for (const e of this.entries.values()) e.joined.delete(endpointId);
    const entry = this.entry(sandboxKey);
    entry.joined.set(endpointId, networkId);
    this.left.get(sandboxKey)?.delete(networkId);
    if (!entry.served) entry.joinedAt ??= performance.now();
    this.viewsDirty = true;
    this.rebuild();
    const waitMs = this.o.joinWaitMs ?? 5000;
    await this.bounded(this.ensure(sandboxKey), waitMs);
    // The namespace exists at Join (Docker ≥ 26) and serving it is still under way (a failure was said already):
    // the container starts on Docker's resolver.
    if (!entry.served && !entry.lastError && !this.stopped && this.entries.get(sandboxKey) === entry && this.kernel.netnsId(sandboxKey)) {
      this.o.log.warn({ netns: sandboxKey, waitedMs: waitMs }, 'Join: DNS not served in the container\'s namespace yet; its first queries go to Docker\'s resolver');
    }
  }

  async leave(endpointId: string): Promise<void> {
    for (const e of [...this.entries.values()]) {
      const net = e.joined.get(endpointId);
      if (net === undefined) continue;
      e.joined.delete(endpointId);
      if (![...e.joined.values()].includes(net)) {
        const left = this.left.get(e.key) ?? new Set<string>();
        this.left.set(e.key, left.add(net));
      }
      this.viewsDirty = true;
      this.rebuild();
      if (!this.wanted(e)) await this.bounded(this.drop(e), 5000);
    }
  }

  /** The Docker view changed (any watch event or snapshot): serve what this node runs, drop what is gone, rebuild. */
  clusterChanged(): void {
    if (this.stopped) return;
    // Only this node's records and the network list decide what is served: other changes skip the scan.
    if (this.o.cluster.localVersion !== this.seenLocalVersion) {
      this.seenLocalVersion = this.o.cluster.localVersion;
      this.viewsDirty = true;
      for (const [key, nets] of this.left) {
        const record = this.o.cluster.localContainer(key);
        if (record) for (const n of nets) if (!record.networks[n]) nets.delete(n);
        if (!nets.size) this.left.delete(key);
      }
      for (const key of this.o.cluster.localContainers().keys()) if (!this.entries.has(key)) { this.entry(key); void this.ensure(key); }
      for (const e of [...this.entries.values()]) if (!this.wanted(e)) void this.drop(e);
    }
    this.scheduleRebuild();
  }

  /**
   * The createContainer hook of a container whose network namespace is `ns`: serve it before its process starts
   * when it is one of ours (20.10: Join came first). Otherwise answer at once (not ours; or Docker ≥ 26, where the
   * hook comes before Join and Join serves it).
   */
  async hook(ns: NetnsId): Promise<HookAnswer> {
    for (const e of this.entries.values()) {
      const id = e.served?.ns ?? this.kernel.netnsId(e.key);
      if (!id || id.dev !== ns.dev || id.ino !== ns.ino) continue;
      this.counters.hookMatched++;
      await this.ensure(e.key);
      return e.served ? { served: true } : { served: false, error: e.lastError ?? 'not served' };
    }
    this.counters.hookOther++;
    return { served: false };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.intervalTimer);
    clearInterval(this.verifyTimer);
    clearTimeout(this.pollTimer);
    await Promise.all([...this.entries.values()].map((e) => this.drop(e)));
  }

  private entry(key: string): Entry {
    let e = this.entries.get(key);
    if (!e) {
      e = { key, joined: new Map(), since: Date.now(), work: Promise.resolve() };
      this.entries.set(key, e);
      this.viewsDirty = true;
    }
    return e;
  }

  private networks(e: Entry): string[] {
    const record = this.o.cluster.localContainer(e.key);
    const left = this.left.get(e.key);
    const fromRecord = record ? Object.keys(record.networks).filter((id) => this.o.cluster.isOurNetwork(id) && !left?.has(id)) : [];
    return [...new Set([...e.joined.values(), ...fromRecord])];
  }

  private wanted(e: Entry): boolean {
    return !this.stopped && (e.joined.size > 0 || this.networks(e).length > 0);
  }

  /** Serialises work per namespace. */
  private run<T>(e: Entry, fn: () => Promise<T>): Promise<T> {
    const next = e.work.then(fn, fn);
    e.work = next.catch(() => undefined);
    return next;
  }

  private async bounded(p: Promise<unknown>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([p.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, ms); })]);
    clearTimeout(timer);
  }

  /** Serves the namespace if it is wanted and exists; re-serves it if the path now names another namespace. */
  private ensure(key: string): Promise<void> {
    const e = this.entries.get(key);
    if (!e) return Promise.resolve();
    return this.run(e, async () => {
      if (!this.wanted(e) || this.entries.get(key) !== e) return;
      const ns = this.kernel.netnsId(key);
      if (e.served && ns && ns.dev === e.served.ns.dev && ns.ino === e.served.ns.ino) return;
      if (e.served) await this.unserve(e);
      if (!ns) { this.schedulePoll(); return; }
      this.rebuild(); // the view must exist before the first query can arrive
      try {
        e.served = await this.kernel.serve(key, ns);
        e.lastError = undefined;
        this.o.server.addListener({ ...e.served.listener, view: key, route: () => this.route(e) });
        if (e.joinedAt !== undefined) this.o.onJoinServed?.((performance.now() - e.joinedAt) / 1000);
        e.joinedAt = undefined;
        this.o.log.debug({ netns: key }, 'serving DNS');
      } catch (err) {
        e.lastError = (err as Error).message;
        this.counters.serveFailures++;
        this.o.log.warn({ netns: key, err: e.lastError }, 'cannot serve DNS in this namespace; it keeps Docker\'s resolver');
      }
    });
  }

  private async unserve(e: Entry): Promise<void> {
    const served = e.served;
    if (!served) return;
    e.served = undefined;
    e.route = undefined;
    try {
      await this.kernel.unserve(e.key, served);
    } catch (err) {
      this.o.log.warn({ netns: e.key, err: (err as Error).message }, 'cannot hand the namespace back to Docker\'s resolver');
    }
  }

  private drop(e: Entry): Promise<void> {
    return this.run(e, async () => {
      if (this.wanted(e)) return;
      await this.unserve(e);
      if (this.entries.get(e.key) === e) { this.entries.delete(e.key); this.viewsDirty = true; }
      this.scheduleRebuild();
    });
  }

  /** Docker's resolver in the namespace; looked for at most once a second while Docker has not added it yet. */
  private route(e: Entry): Route | undefined | Promise<Route | undefined> {
    if (e.route) return e.route;
    const served = e.served;
    if (!served || (e.routeCheckedAt && Date.now() - e.routeCheckedAt < 1000)) return undefined;
    e.routeCheckedAt = Date.now();
    const p = this.kernel.dockerResolver(e.key).then((up) => {
      const r = up && e.served === served ? { forwarder: served.forwarder, servers: [up] } : undefined;
      e.route = r;
      return r;
    }, () => { e.route = undefined; return undefined; });
    e.route = p;
    return p;
  }

  private schedulePoll(): void {
    if (this.pollTimer || this.stopped) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      const now = Date.now();
      for (const e of this.entries.values()) {
        if (!e.served && this.wanted(e) && now - e.since < this.pollForMs) void this.ensure(e.key);
      }
    }, this.pollMs);
  }

  private checkAll(): void {
    for (const key of this.left.keys()) if (!this.kernel.netnsId(key)) this.left.delete(key);
    for (const e of [...this.entries.values()]) {
      if (this.wanted(e)) void this.ensure(e.key);
      else void this.drop(e);
    }
  }

  private scheduleRebuild(): void {
    if (this.rebuildQueued) return;
    this.rebuildQueued = true;
    setImmediate(() => { if (this.rebuildQueued) this.rebuild(); });
  }

  /**
   * The views of the namespaces this node serves or is about to (only when those changed: a change elsewhere in the
   * cluster is already in the live table), and a fresh answer cache.
   */
  private rebuild(): void {
    this.rebuildQueued = false;
    if (this.viewsDirty) {
      this.viewsDirty = false;
      const views: SandboxView[] = [];
      for (const e of this.entries.values()) if (this.wanted(e)) views.push({ id: e.key, networks: this.networks(e) });
      this.o.cluster.setViews(views);
    }
    // The same live table: a new resolver over it only drops the cache of encoded answers.
    this.o.server.setTable(this.o.cluster.table);
    this.counters.tableBuilds++;
  }
}
