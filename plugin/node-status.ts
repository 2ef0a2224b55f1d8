import type { Etcd3 } from 'etcd3';
import type { Logger } from '../common/log.js';
import type { NodeLease } from './state/etcd-client.js';

/**
 * What each node tells the cluster about itself, for `swarmnet status` (ops/): one small record under the node's
 * etcd lease at `<prefix>/swarmnet/nodes/<node>`, so a node whose plugin died or was cut off drops out within the
 * lease TTL. Nothing watches these keys; `status` reads them with one range read.
 */
export interface NodeStatusRecord {
  node: string;
  publicIp: string;
  version: string;
  manager: boolean;
  startedAt: number;
  overlay: {
    checkedAt?: number; changedAt?: number; runs: number; failedRuns: number;
    /** Kernel objects changed outside swarmnet and put back, by kind (flannel/reconciler.ts). */
    drift?: Record<string, { count: number; lastAt: number }>;
    failing?: { error: string; since: number };
    /** The flowtable fast path: on, off, unavailable, idle (flannel/reconciler.ts FastPathState). */
    fastPath?: string;
  };
  dns: { served: number; waiting: number; serveFailures: number; repairs?: number; repairedAt?: number };
  lb: {
    backend: string; vips: number; backends: number; checkedAt?: number; changedAt?: number; repairedAt?: number; failures: number; repairs: number;
    refusedAt?: number; failing?: { error: string; since: number };
  };
  /** This node's address records no running container holds (plugin/address-audit.ts). */
  ipam?: { unused: number; sample: string[]; checkedAt?: number };
  /** The latest plugin calls this node refused with an error Docker may hide from the user (newest last). */
  refusals: Refusal[];
}

export interface Refusal { at: number; call: string; error: string }

/**
 * Calls whose refusal Docker hides from the user: `docker network create` prints an id anyway and the network stays
 * unusable. The plugin logs and counts these; `swarmnet status` lists them (every other failed call Docker shows).
 */
export const ALLOCATION_CALLS: ReadonlySet<string> = new Set(['/IpamDriver.RequestPool', '/NetworkDriver.AllocateNetwork']);

export const nodeStatusPrefix = (prefix: string): string => `${prefix}/swarmnet/nodes/`;

/** Times that change on every periodic check are published at this resolution, so an idle node writes rarely. */
export const CHECK_RESOLUTION_MS = 60_000;
const MAX_REFUSALS = 5;

export interface NodeStatusOptions {
  client: Etcd3;
  lease: NodeLease;
  prefix: string;
  intervalMs: number;
  log: Logger;
  /** The record as of now, refusals aside. */
  collect: () => Omit<NodeStatusRecord, 'refusals'>;
}

/**
 * Publishes the node's record every interval when it changed (and after a lost lease took it away). Write failures
 * are logged once per streak and retried at the next tick: status must never disturb the data path.
 */
export class NodeStatusPublisher {
  private readonly refusals: Refusal[] = [];
  private written = '';
  private writtenLease = '';
  private timer?: NodeJS.Timeout;
  private failing = false;
  private running?: Promise<void>;

  constructor(private readonly o: NodeStatusOptions) {}

  start(): void {
    const tick = (): void => {
      this.running = this.publish().finally(() => {
        if (this.timer === undefined) return;
        this.timer = setTimeout(tick, this.o.intervalMs);
        this.timer.unref();
      });
    };
    this.timer = setTimeout(tick, 0);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  refused(call: string, error: string): void {
    this.refusals.push({ at: Date.now(), call, error: error.slice(0, 300) });
    if (this.refusals.length > MAX_REFUSALS) this.refusals.shift();
  }

  async publish(): Promise<void> {
    const record = this.o.collect();
    const value = JSON.stringify({ ...record, refusals: this.refusals });
    try {
      const leaseId = await this.o.lease.id();
      if (value === this.written && leaseId === this.writtenLease) return;
      await this.o.client.put(`${nodeStatusPrefix(this.o.prefix)}${record.node}`).value(value).lease(leaseId).exec();
      this.written = value;
      this.writtenLease = leaseId;
      if (this.failing) this.o.log.info('node status published again');
      this.failing = false;
    } catch (e) {
      if (!this.failing) this.o.log.warn({ err: (e as Error).message }, 'cannot publish the node status; retrying');
      this.failing = true;
    }
  }
}

/** A time rounded down to the check resolution (undefined stays undefined). */
export const coarse = (t: number | undefined): number | undefined => (t === undefined ? undefined : t - (t % CHECK_RESOLUTION_MS));
