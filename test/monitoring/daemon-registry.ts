// The daemon's registry with every metric registered, from the code that registers them: plugin/metrics.ts (the
// process-wide ones), and the registerMetrics functions of the DNS plane, the LB plane and the runtime fed with
// stand-in stats objects (their shapes are the planes' own types, so the stand-ins cannot drift either).
import { ClusterTable } from '../../dns/cluster-table.js';
import { DnsServer } from '../../dns/server.js';
import { LbModel } from '../../lb/model.js';
import type { LbStats } from '../../lb/reconciler.js';
import { injectionLatency, registerMetrics as registerDns } from '../../plugin/dns-plane.js';
import { programmingLatency, registerMetrics as registerLb } from '../../plugin/lb-plane.js';
import { registerRuntimeMetrics, registry } from '../../plugin/metrics.js';

let registered = false;

/** Registers everything once per process (a name registered twice throws). */
export function registerAll(): void {
  if (registered) return;
  registered = true;
  const lbStats: LbStats = { syncs: 2, failures: 1, repairs: 0, flowsDeleted: 3, vips: 1, backends: 2, lastSyncMs: 4 };
  registerLb({ stats: lbStats }, new LbModel('/p', 'n1'), programmingLatency());
  const cluster = new ClusterTable('/p', 'n1');
  const server = new DnsServer(cluster.table, { compat: true, defaultUpstreams: [] });
  server.stats.localSeconds.observe(0.00003);
  server.stats.forwardedSeconds.observe(0.02);
  const injector = { stats: { served: 1, waiting: 0, serveFailures: 0, hookMatched: 1, hookOther: 0, tableBuilds: 2, repairs: 0 } };
  registerDns(injector, cluster, server, injectionLatency());
  registerRuntimeMetrics({
    lease: { stats: { lost: 1, granted: 2 } },
    overlay: { stats: { runs: 5, failedRuns: 1, drift: { fdb: { count: 2 } } } },
    ipam: { stats: { allocated: { local: 3, global: 1 }, released: { local: 1, global: 0 } }, owedReleases: 0 },
    etcd: { reads: 4, keysRead: 9, bytesRead: 900, writes: 3, txns: 2, txnsFailed: 1 },
    watches: {
      'docker-view': { stats: { snapshots: 1, events: 7, disconnects: 0, connected: true, lastEventAt: Date.now() } },
      networks: { stats: { snapshots: 2, events: 1, disconnects: 1, connected: false } },
    },
  });
}

/** Name → type of every metric the daemon registers. */
export async function daemonMetrics(): Promise<Map<string, string>> {
  registerAll();
  return new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
}

/** The /metrics text the daemon serves. */
export async function exposition(): Promise<string> {
  registerAll();
  return registry.metrics();
}
