import type Docker from 'dockerode';
import type { Etcd3 } from 'etcd3';
import { logger } from '../../common/log.js';
import type { NodeLease } from '../state/etcd-client.js';
import { containerView, networkView, serviceView, viewRoot, type ContainerView } from '../../common/docker-view.js';
import { NdjsonSplitter } from './ndjson.js';
import { eventLagSeconds, eventTargets, eventTimeMs, planReplace, type Refresh } from './resync.js';

const log = logger('docker-view');
/** After a service event, when to look at its tasks again (Swarm's orchestrator acts on the update a moment later;
 * Docker waits 2 s between taking a task out of DNS and stopping it). */
const DRAIN_RECHECK_MS = [300, 1000];

/** Keys of Docker's view (docs/etcd-layout.md): managers write networks/services, each node its own containers. */
export class ViewKeys {
  constructor(readonly prefix: string) {}
  networks(): string { return `${viewRoot(this.prefix)}networks/`; }
  services(): string { return `${viewRoot(this.prefix)}services/`; }
  containers(node: string): string { return `${viewRoot(this.prefix)}containers/${node}/`; }
}

export interface ClusterViewOptions {
  docker: Docker;
  client: Etcd3;
  lease: NodeLease;
  prefix: string;
  node: string;
  /** Asked at every full resync: a node can be promoted or demoted while the plugin runs. */
  isManager: () => Promise<boolean>;
  /** Only networks of this driver are mirrored (Docker records the name the user gave, e.g. `swarmnet:latest`). */
  isOurDriver: (driver: string) => boolean;
  /** A refresh a Docker event asked for changed etcd: seconds since the earliest event it covers (metrics). */
  onEventWritten?: (seconds: number) => void;
}

/**
 * Mirrors Docker's networks, services and containers into etcd. Events only say "something changed": each one
 * triggers a re-inspect of that object. When the event stream breaks, it reconnects with backoff and does a full
 * resync (list everything, write it, delete what is gone), so no change is lost silently.
 */
export class ClusterView {
  private readonly keys: ViewKeys;
  private stopped = false;
  private stream?: NodeJS.ReadableStream;
  /** Ids of this driver's networks: only containers attached to one of them are mirrored. */
  private ourNetworks = new Set<string>();
  private manager = false;
  /** Records as this node last wrote them (its containers; services on a manager): a healthcheck's exec events
   * re-inspect an unchanged container, and an unchanged record must not become an etcd event every node processes. */
  private written = new Map<string, string>();
  /** Event handling, one at a time. */
  private queue: Promise<void> = Promise.resolve();
  /** Refreshes queued and not started yet ("kind/id" → whether a service's tasks are to be looked at again). */
  private readonly waiting = new Map<string, boolean>();
  /** Of those, when the earliest event that asked for each happened (epoch ms, Docker's stamp). */
  private readonly eventAt = new Map<string, number>();

  constructor(private readonly o: ClusterViewOptions) {
    this.keys = new ViewKeys(o.prefix);
  }

  start(): void {
    void this.loop();
  }

  /** The node lease was replaced (etcd dropped this node's records): write everything again. */
  invalidate(): void {
    this.written.clear();
    (this.stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
  }

  stop(): void {
    this.stopped = true;
    (this.stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
  }

  private async loop(): Promise<void> {
    let delay = 500;
    while (!this.stopped) {
      try {
        const since = Math.floor(Date.now() / 1000);
        await this.resync();
        await this.follow(since);
        delay = 500;
      } catch (e) {
        log.warn({ err: (e as Error).message, retryMs: delay }, 'docker view interrupted; will resync');
      }
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30_000);
    }
  }

  /**
   * An endpoint on this node left its container (libnetwork's Leave: the container stopped or was disconnected).
   * Its address leaves the container's record at once, as Docker's overlay takes a task out of load balancing and
   * DNS on Leave, instead of when Docker's event comes: a dockerd that shuts down closes its event stream before it
   * stops the containers, and then no event comes at all. Docker's next word on the container (its event, or the
   * resync) writes the record it has then. Queued with the event refreshes; never throws.
   */
  endpointLeft(networkId: string, address: string): Promise<void> {
    const run = async (): Promise<void> => {
      const prefix = this.keys.containers(this.o.node);
      for (const [key, value] of this.written) {
        if (!key.startsWith(prefix)) continue;
        const v = JSON.parse(value) as ContainerView;
        if (v.networks[networkId]?.address !== address) continue;
        delete v.networks[networkId];
        if (!Object.keys(v.networks).some((n) => this.ourNetworks.has(n))) {
          this.written.delete(key);
          await this.o.client.delete().key(key).exec();
        } else {
          const next = JSON.stringify(v);
          await this.o.client.put(key).value(next).lease(await this.o.lease.id()).exec();
          this.written.set(key, next);
        }
        log.debug({ container: v.id.slice(0, 12), network: networkId.slice(0, 12) }, 'endpoint left: its address left the container record');
        return;
      }
    };
    const p = this.queue.then(run).catch((e: Error) => log.warn({ err: e.message }, 'endpoint left: container record not updated; Docker\'s event or the next resync will'));
    this.queue = p;
    return p;
  }

  /** Full resync: Docker trumps etcd. */
  async resync(): Promise<void> {
    const { docker } = this.o;
    this.manager = await this.o.isManager();
    const nets = (await docker.listNetworks()).filter((n) => this.o.isOurDriver(n.Driver));
    const netIds = new Set(nets.map((n) => n.Id));
    this.ourNetworks = netIds;
    const written = new Map<string, string>();
    if (this.manager) {
      await this.replace(this.keys.networks(), new Map(nets.map((n) => [n.Id, JSON.stringify(networkView(n))])), false);
      const services = await docker.listServices();
      const tasks = (await docker.listTasks()) as { ServiceID?: string }[];
      const want = new Map(services.map((s) => [s.ID ?? '', JSON.stringify(serviceView(s, tasks.filter((t) => t.ServiceID === s.ID)))]));
      await this.replace(this.keys.services(), want, false);
      for (const [id, v] of want) written.set(this.keys.services() + id, v);
    }
    const containers = await docker.listContainers();
    const views = new Map<string, string>();
    for (const c of containers) {
      const v = containerView(await docker.getContainer(c.Id).inspect());
      if (Object.keys(v.networks).some((id) => netIds.has(id))) views.set(v.id, JSON.stringify(v));
    }
    await this.replace(this.keys.containers(this.o.node), views, true);
    for (const [id, v] of views) written.set(this.keys.containers(this.o.node) + id, v);
    this.written = written;
  }

  private async replace(prefix: string, want: Map<string, string>, leased: boolean): Promise<void> {
    const { client } = this.o;
    const plan = planReplace(prefix, await client.getAll().prefix(prefix).strings(), want, leased);
    const leaseId = leased ? await this.o.lease.id() : undefined;
    for (const [k, v] of plan.puts) {
      const put = client.put(k).value(v);
      await (leaseId ? put.lease(leaseId) : put).exec();
    }
    for (const k of plan.deletes) await client.delete().key(k).exec();
  }

  private async follow(since: number): Promise<void> {
    const stream = await this.o.docker.getEvents({ since, filters: { type: ['network', 'service', 'container'] } } as Docker.GetEventsOptions);
    this.stream = stream;
    const splitter = new NdjsonSplitter(
      (ev) => {
        // A failed apply must not lose the change: break the stream so the loop resyncs everything.
        this.enqueue(ev, (e: Error) => {
          log.warn({ err: e.message }, 'event not applied; resyncing');
          (stream as unknown as { destroy: () => void }).destroy();
        });
      },
      (line) => log.warn({ line }, 'undecodable docker event'),
    );
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => splitter.push(chunk));
      stream.on('error', reject);
      stream.on('end', () => reject(new Error('docker event stream ended')));
      stream.on('close', () => reject(new Error('docker event stream closed')));
    });
  }

  /**
   * Queues a refresh of each object the event names. A container's start brings several events (create, network
   * connect, start): while a refresh of it is still waiting, later events need no second inspect.
   */
  private enqueue(ev: unknown, onError: (e: Error) => void): void {
    const at = eventTimeMs(ev);
    for (const target of eventTargets(ev)) this.schedule(target, onError, true, at);
  }

  /**
   * Queues one refresh unless one of the same object is still waiting. `recheck`: a service update (scale, rolling
   * update) sets tasks' desired state to shutdown a moment after the event, so look at its tasks again shortly: the
   * ones being stopped leave DNS before their containers stop.
   */
  private schedule(target: Refresh, onError: (e: Error) => void, recheck: boolean, eventAt?: number): void {
    const k = `${target.kind}/${target.id}`;
    if (eventAt !== undefined && !this.eventAt.has(k)) this.eventAt.set(k, eventAt);
    const waiting = this.waiting.get(k);
    if (waiting !== undefined) { this.waiting.set(k, waiting || recheck); return; }
    this.waiting.set(k, recheck);
    this.queue = this.queue.then(async () => {
      const again = this.waiting.get(k) === true;
      const at = this.eventAt.get(k);
      this.waiting.delete(k);
      this.eventAt.delete(k);
      if (await this.refresh(target) && at !== undefined) this.o.onEventWritten?.(eventLagSeconds(at, Date.now()));
      if (!again || target.kind !== 'service' || !this.manager) return;
      const warn = (e: Error): void => log.warn({ err: e.message, service: target.id }, 'service recheck failed');
      for (const ms of DRAIN_RECHECK_MS) setTimeout(() => { if (!this.stopped) this.schedule(target, warn, false); }, ms).unref();
    }).catch(onError);
  }

  /** Re-inspects one object and writes (or deletes) its record; true when it wrote to etcd. */
  private async refresh({ kind, id }: Refresh): Promise<boolean> {
    const { docker, client } = this.o;
    if (kind === 'container') {
      const key = this.keys.containers(this.o.node) + id;
      const inspect = await docker.getContainer(id).inspect().catch(gone);
      const view = inspect?.State.Running ? containerView(inspect) : undefined;
      if (!view || !Object.keys(view.networks).some((n) => this.ourNetworks.has(n))) {
        if (!this.written.delete(key)) return false;
        await client.delete().key(key).exec();
        return true;
      }
      const value = JSON.stringify(view);
      if (this.written.get(key) === value) return false;
      await client.put(key).value(value).lease(await this.o.lease.id()).exec();
      this.written.set(key, value);
      return true;
    } else if (kind === 'service') {
      if (!this.manager) return false;
      const s = await docker.getService(id).inspect().catch(gone);
      if (!s) {
        this.written.delete(this.keys.services() + id);
        return Number((await client.delete().key(this.keys.services() + id).exec()).deleted) > 0;
      }
      const tasks = await docker.listTasks({ filters: JSON.stringify({ service: [id] }) });
      const value = JSON.stringify(serviceView(s, tasks));
      if (this.written.get(this.keys.services() + id) === value) return false;
      await client.put(this.keys.services() + id).value(value).exec();
      this.written.set(this.keys.services() + id, value);
      return true;
    } else {
      const n = await docker.getNetwork(id).inspect().catch(gone);
      const ours = !!n && this.o.isOurDriver(n.Driver);
      if (ours) this.ourNetworks.add(id);
      else this.ourNetworks.delete(id);
      if (!this.manager) return false;
      // Any network's event comes here: only a record that existed counts as written.
      if (!ours) return Number((await client.delete().key(this.keys.networks() + id).exec()).deleted) > 0;
      await client.put(this.keys.networks() + id).value(JSON.stringify(networkView(n))).exec();
      return true;
    }
  }
}

/** Docker said 404: the object is gone. Any other failure (Docker unreachable) propagates: nothing is deleted. */
function gone(err: { statusCode?: number }): undefined {
  if (err.statusCode === 404) return undefined;
  throw err as Error;
}
