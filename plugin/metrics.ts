import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type LabelValues, type Metric, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';
import type { LatencyBuckets } from '../common/latency-buckets.js';
import type { EtcdCallStats } from './state/etcd-client.js';

/** The daemon's Prometheus registry. Components register their own metrics on it. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'swarmnet_process_' });

export const pluginCalls = new Histogram({
  name: 'swarmnet_plugin_call_seconds',
  help: 'Docker plugin protocol calls by endpoint and HTTP status',
  labelNames: ['endpoint', 'status'] as const,
  buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 30],
  registers: [registry],
});

export const ready = new Gauge({
  name: 'swarmnet_ready',
  help: '1 once the daemon has connected to etcd and Docker and reconciled',
  registers: [registry],
});

export const allocationRefusals = new Counter({
  name: 'swarmnet_network_allocation_refusals_total',
  help: 'Network allocations refused (RequestPool, AllocateNetwork): docker network create printed an id, the network is unusable',
  registers: [registry],
});

export const reconcileRepairs = new Counter({
  name: 'swarmnet_reconcile_repairs_total',
  help: 'Kernel objects created, changed or removed by reconcilers, by plane',
  labelNames: ['plane'] as const,
  registers: [registry],
});

export const etcdRoundTrip = new Histogram({
  name: 'swarmnet_etcd_round_trip_seconds',
  help: 'Round trip of a Status request this node sends to etcd every 5 s (plugin/etcd-probe.ts): network, TLS and member responsiveness; a member answers it without consensus, so commit and disk latency are not in it',
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

export const etcdProbeFailures = new Counter({
  name: 'swarmnet_etcd_probe_failures_total',
  help: 'etcd Status probes that failed (etcd unreachable from this node, or slower than ETCD_REQUEST_TIMEOUT_MS)',
  registers: [registry],
});

export const dockerEventLag = new Histogram({
  name: 'swarmnet_docker_event_lag_seconds',
  help: 'From a Docker event (its timeNano, this host\'s clock) to the Docker view having written the change to etcd; events that changed nothing are not observed',
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const overlayReconcileDuration = new Histogram({
  name: 'swarmnet_overlay_reconcile_duration_seconds',
  help: 'Duration of one overlay reconcile pass (read the kernel, apply the difference), failed passes included',
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

/**
 * A Prometheus histogram read at scrape time from counts a hot path keeps itself (common/latency-buckets.ts), so
 * the path never calls prom-client. Registered like any metric; observe() is not used.
 */
export class BucketsHistogram<T extends string> extends Histogram<T> {
  constructor(
    config: { name: string; help: string; labelNames?: readonly T[] },
    private readonly source: () => { labels: LabelValues<T>; buckets: LatencyBuckets }[],
  ) {
    super({ ...config, registers: [] });
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<T>>> {
    const name = (this as unknown as { name: string }).name;
    const values: MetricValueWithName<T>[] = [];
    for (const { labels, buckets } of this.source()) {
      const cumulative = buckets.cumulative();
      buckets.bounds.forEach((le, i) => values.push({ metricName: `${name}_bucket`, labels: { ...labels, le } as LabelValues<T>, value: cumulative[i]! }));
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' } as LabelValues<T>, value: buckets.count });
      values.push({ metricName: `${name}_sum`, labels, value: buckets.sum });
      values.push({ metricName: `${name}_count`, labels, value: buckets.count });
    }
    return { name, help: (this as unknown as { help: string }).help, type: 'histogram' as unknown as MetricObjectWithValues<MetricValueWithName<T>>['type'], values, aggregator: 'sum', collect: () => undefined };
  }

  /** The text exposition asks for this when it exists (prom-client's Histogram has one): same values. */
  getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<T>>> {
    return this.get();
  }
}

/** What the runtime's parts count (plain stats objects; the parts know nothing of prom-client). */
export interface RuntimeParts {
  lease: { stats: { lost: number; granted: number } };
  overlay: { stats: { runs: number; failedRuns: number; drift: Partial<Record<string, { count: number }>>; fastPath?: string } };
  ipam: { stats: { allocated: Record<'local' | 'global', number>; released: Record<'local' | 'global', number> }; owedReleases: number };
  /** What the process asked etcd for (plugin/state/etcd-client.ts). */
  etcd: EtcdCallStats;
  /** The etcd watches by role (docker-view, networks, flannel-networks, node-subnets). */
  watches: Record<string, { stats: { snapshots: number; events: number; disconnects: number; connected: boolean; lastEventAt?: number } }>;
}

/** Registers the metrics read from one runtime's parts; the returned function removes them (the runtime stopped). */
export function registerRuntimeMetrics(p: RuntimeParts): () => void {
  const watches = Object.entries(p.watches);
  const spaces = ['local', 'global'] as const;
  const metrics: Metric[] = [
    new Counter({ name: 'swarmnet_overlay_reconcile_runs_total', help: 'Overlay reconcile passes', registers: [], collect() { this.reset(); this.inc(p.overlay.stats.runs); } }),
    new Counter({ name: 'swarmnet_overlay_reconcile_failures_total', help: 'Overlay reconcile passes that could not apply everything (retried next interval; swarmnet doctor shows the error)', registers: [], collect() { this.reset(); this.inc(p.overlay.stats.failedRuns); } }),
    new Gauge({ name: 'swarmnet_overlay_fast_path', help: 'The overlay\'s flowtable fast path: 1 for the state it is in (on, off, unavailable: the kernel has no flowtable, idle: no network here)', labelNames: ['state'] as const, registers: [], collect() { this.reset(); if (p.overlay.stats.fastPath) this.set({ state: p.overlay.stats.fastPath }, 1); } }),
    new Counter({ name: 'swarmnet_overlay_drift_total', help: 'Overlay kernel objects repaired while the desired state had not changed (something else edited them), by kind; swarmnet_reconcile_repairs_total also counts changes that follow etcd', labelNames: ['kind'] as const, registers: [], collect() { this.reset(); for (const [k, d] of Object.entries(p.overlay.stats.drift)) if (d) this.inc({ kind: k }, d.count); } }),
    new Counter({ name: 'swarmnet_node_lease_lost_total', help: 'Times this node\'s etcd lease was lost (etcd unreachable longer than NODE_LEASE_TTL_SECONDS): etcd dropped the node\'s records until they were written again', registers: [], collect() { this.reset(); this.inc(p.lease.stats.lost); } }),
    new Counter({ name: 'swarmnet_node_lease_grants_total', help: 'Node leases granted (1 at start, then one per loss)', registers: [], collect() { this.reset(); this.inc(p.lease.stats.granted); } }),
    new Counter({ name: 'swarmnet_ipam_addresses_allocated_total', help: 'Address records created by this node, by address space (local: a container\'s address on its node; global: a manager\'s VIP or placeholder); replays and adoptions not counted', labelNames: ['space'] as const, registers: [], collect() { this.reset(); for (const s of spaces) this.inc({ space: s }, p.ipam.stats.allocated[s]); } }),
    new Counter({ name: 'swarmnet_ipam_addresses_released_total', help: 'Address records this node released, by address space (a removed network takes its records with it uncounted)', labelNames: ['space'] as const, registers: [], collect() { this.reset(); for (const s of spaces) this.inc({ space: s }, p.ipam.stats.released[s]); } }),
    new Gauge({ name: 'swarmnet_ipam_owed_releases', help: 'Address releases Docker asked for while etcd was down, retried every 2 s until etcd takes them (their addresses stay taken meanwhile)', registers: [], collect() { this.set(p.ipam.owedReleases); } }),
    new Counter({ name: 'swarmnet_etcd_requests_total', help: 'Unary requests this node sent to etcd, by kind (read: a range, watch listings included; write: put or delete; txn: a transaction)', labelNames: ['kind'] as const, registers: [], collect() { this.reset(); this.inc({ kind: 'read' }, p.etcd.reads); this.inc({ kind: 'write' }, p.etcd.writes); this.inc({ kind: 'txn' }, p.etcd.txns); } }),
    new Counter({ name: 'swarmnet_etcd_keys_read_total', help: 'Keys returned to this node by etcd reads (ranges, watch listings, reads inside transactions): a change should cost a constant number, whatever the cluster size', registers: [], collect() { this.reset(); this.inc(p.etcd.keysRead); } }),
    new Counter({ name: 'swarmnet_etcd_read_bytes_total', help: 'Bytes of keys and values returned to this node by etcd reads', registers: [], collect() { this.reset(); this.inc(p.etcd.bytesRead); } }),
    new Counter({ name: 'swarmnet_etcd_txn_conflicts_total', help: 'Transactions whose compare failed (another writer got there first: a contended allocation retried)', registers: [], collect() { this.reset(); this.inc(p.etcd.txnsFailed); } }),
    new Counter({ name: 'swarmnet_etcd_watch_events_total', help: 'Changes delivered by an etcd watch, by watch', labelNames: ['watch'] as const, registers: [], collect() { this.reset(); for (const [w, x] of watches) this.inc({ watch: w }, x.stats.events); } }),
    new Counter({ name: 'swarmnet_etcd_watch_resyncs_total', help: 'Full re-listings of a watched prefix after a watch could not resume (compaction, error), by watch', labelNames: ['watch'] as const, registers: [], collect() { this.reset(); for (const [w, x] of watches) this.inc({ watch: w }, Math.max(0, x.stats.snapshots - 1)); } }),
    new Counter({ name: 'swarmnet_etcd_watch_disconnects_total', help: 'Watch streams broken and resumed from the last revision seen, by watch', labelNames: ['watch'] as const, registers: [], collect() { this.reset(); for (const [w, x] of watches) this.inc({ watch: w }, x.stats.disconnects); } }),
    new Gauge({ name: 'swarmnet_etcd_watch_connected', help: '1 while a watch\'s stream is attached to etcd; changes made while 0 arrive when it resumes', labelNames: ['watch'] as const, registers: [], collect() { this.reset(); for (const [w, x] of watches) this.set({ watch: w }, x.stats.connected ? 1 : 0); } }),
    new Gauge({ name: 'swarmnet_etcd_watch_last_event_timestamp_seconds', help: 'When a watch last delivered a change (epoch seconds; etcd gives events no time, so this is the receiving end)', labelNames: ['watch'] as const, registers: [], collect() { this.reset(); for (const [w, x] of watches) if (x.stats.lastEventAt !== undefined) this.set({ watch: w }, x.stats.lastEventAt / 1000); } }),
  ];
  for (const m of metrics) registry.registerMetric(m);
  return () => { for (const m of metrics) registry.removeSingleMetric((m as unknown as { name: string }).name); };
}
