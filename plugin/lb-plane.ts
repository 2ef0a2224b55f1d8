import { existsSync } from 'node:fs';
import { Counter, Gauge, Histogram } from 'prom-client';
import { run } from '../common/exec.js';
import type { Logger } from '../common/log.js';
import type { LbBackend } from '../lb/backend.js';
import { IpvsBackend } from '../lb/ipvs/kernel.js';
import { LbModel } from '../lb/model.js';
import { NftablesBackend } from '../lb/nftables/kernel.js';
import { LbReconciler } from '../lb/reconciler.js';
import type { Config } from './config.js';
import type { ViewConsumer } from './docker-view-watch.js';
import { reconcileRepairs, registry } from './metrics.js';

export interface LbPlane {
  backend: LbBackend['kind'];
  reconciler: LbReconciler;
  /** Fed by the Docker-view watch (plugin/docker-view-watch.ts). */
  view: ViewConsumer;
  stop(): Promise<void>;
}

export interface LbPlaneOptions {
  prefix: string;
  node: string;
  setting: Config['lbBackend'];
  intervalMs: number;
  log: Logger;
}

/**
 * Whether the kernel has IPVS. Its module may not be loaded yet: asking over its netlink family (ipvsadm) makes the
 * kernel load it where it exists.
 */
async function kernelHasIpvs(): Promise<boolean> {
  if (existsSync('/proc/net/ip_vs')) return true;
  const r = await run('ipvsadm', ['-Ln'], { allowFailure: true }).catch(() => undefined);
  return r?.code === 0 || existsSync('/proc/net/ip_vs');
}

/** Starts the load balancer: VIP → backends on this node, from the Docker view, through IPVS or nftables. */
export async function startLbPlane(o: LbPlaneOptions): Promise<LbPlane> {
  const ipvs = o.setting !== 'nftables' && await kernelHasIpvs();
  if (o.setting === 'ipvs' && !ipvs) throw new Error('LB_BACKEND=ipvs but this kernel has no IPVS (use auto or nftables)');
  const backend: LbBackend = ipvs ? new IpvsBackend() : new NftablesBackend();
  const model = new LbModel(o.prefix, o.node);
  const latency = programmingLatency();
  const reconciler = new LbReconciler({
    backend, model, log: o.log, intervalMs: o.intervalMs,
    onProgrammed: (s) => latency.observe(s), onRepair: () => reconcileRepairs.inc({ plane: 'lb' }),
  });
  let started = false;
  const view: ViewConsumer = {
    // Nothing is written before the first snapshot: an empty model would erase what a restarted plugin finds.
    reset: (kvs) => {
      model.reset(kvs);
      if (started) reconciler.changed(); else { started = true; reconciler.start(); }
    },
    apply: (type, key, value) => { if (model.apply(type, key, value) && model.hasChange()) reconciler.changed(); },
  };
  const unregister = registerMetrics(reconciler, model, latency);
  // A local backend's reply is bridged to its client and must meet conntrack there (docs/lb.md).
  const bridgeConntrack = existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables');
  if (!bridgeConntrack) o.log.warn('br_netfilter is not loaded: a VIP connection that lands on a backend on the client\'s own node gets no answer (load it: modprobe br_netfilter; dockerd does)');
  o.log.info({ backend: backend.kind, setting: o.setting, bridgeConntrack }, 'load balancer started');
  return {
    backend: backend.kind, reconciler, view,
    async stop() {
      unregister();
      await reconciler.stop();
    },
  };
}

export function programmingLatency(): Histogram {
  return new Histogram({
    name: 'swarmnet_lb_programming_duration_seconds',
    help: 'From a change of Docker\'s view reaching this node to the load balancer rules holding it',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [],
  });
}

/** Stand-ins carrying the same stats fields will do (test/monitoring/metric-names.test.ts). */
export function registerMetrics(r: Pick<LbReconciler, 'stats'>, model: Pick<LbModel, 'stats'>, latency: Histogram): () => void {
  const metrics = [
    latency,
    new Counter({ name: 'swarmnet_lb_syncs_total', help: 'Load balancer writes (deltas and whole-state writes)', registers: [], collect() { this.reset(); this.inc(r.stats.syncs); } }),
    new Counter({ name: 'swarmnet_lb_sync_failures_total', help: 'Deltas the kernel refused (the whole state was written instead)', registers: [], collect() { this.reset(); this.inc(r.stats.failures); } }),
    new Gauge({ name: 'swarmnet_lb_write_failing', help: '1 while load balancer writes fail (retried whole at every check), else 0', registers: [], collect() { this.set(r.stats.failing ? 1 : 0); } }),
    new Gauge({ name: 'swarmnet_lb_sync_duration_seconds', help: 'Duration of the last load balancer write', registers: [], collect() { this.set(r.stats.lastSyncMs / 1000); } }),
    new Gauge({ name: 'swarmnet_lb_vips', help: 'Service VIPs programmed on this node', registers: [], collect() { this.set(r.stats.vips); } }),
    new Gauge({ name: 'swarmnet_lb_backends', help: 'VIP backends programmed on this node', registers: [], collect() { this.set(r.stats.backends); } }),
    new Counter({ name: 'swarmnet_lb_flows_deleted_total', help: 'Conntrack entries deleted for backends that left', registers: [], collect() { this.reset(); this.inc(r.stats.flowsDeleted); } }),
    new Counter({ name: 'swarmnet_lb_records_rejected_total', help: 'Docker-view records the load balancer could not use', registers: [], collect() { this.reset(); this.inc(model.stats.rejected); } }),
  ];
  for (const m of metrics) registry.registerMetric(m);
  return () => { for (const m of metrics) registry.removeSingleMetric((m as unknown as { name: string }).name); };
}
