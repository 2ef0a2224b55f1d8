import { dirname, join } from 'node:path';
import { Gauge, Counter, Histogram, type Metric } from 'prom-client';
import type { Logger } from '../common/log.js';
import { ClusterTable } from '../dns/cluster-table.js';
import { DnsInjector } from '../dns/inject/injector.js';
import { startHookServer } from '../dns/inject/hook-server.js';
import { DnsServer } from '../dns/server.js';
import { BucketsHistogram, registry } from './metrics.js';
import type { ViewConsumer } from './docker-view-watch.js';

/** What Join and Leave tell the DNS plane (plugin/network-endpoints.ts). */
export interface JoinObserver {
  joined(endpointId: string, dockerNetworkId: string, sandboxKey: string): Promise<void>;
  left(endpointId: string): Promise<void>;
}

export interface DnsPlane extends JoinObserver {
  injector: DnsInjector;
  /** Fed by the Docker-view watch (plugin/docker-view-watch.ts). */
  view: ViewConsumer;
  stop(): Promise<void>;
}

export interface DnsPlaneOptions {
  prefix: string;
  node: string;
  compat: boolean;
  /** DNS_MAX_QPS_PER_CONTAINER (0: no cap). */
  maxQpsPerContainer: number;
  /** The plugin's socket: the hook socket goes beside it (the directory Docker shares with the host). */
  pluginSocket: string;
  hookAvailable: boolean;
  log: Logger;
}

/** The hook socket's name; hook/native/hook.c looks for it in /run/docker/plugins/<plugin id>/. */
export const HOOK_SOCKET = 'swarmnet-hook.sock';

/**
 * Starts the DNS plane: the Docker view taken event by event (incremental: a change costs its own size), the
 * resolver, the injector and the hook socket. Stopping hands every container back to Docker's resolver.
 */
export async function startDnsPlane(o: DnsPlaneOptions): Promise<DnsPlane> {
  const cluster = new ClusterTable(o.prefix, o.node);
  const server = new DnsServer(cluster.table, { compat: o.compat, maxQpsPerContainer: o.maxQpsPerContainer });
  const injection = injectionLatency();
  const injector = new DnsInjector({ server, cluster, log: o.log, onJoinServed: (s) => injection.observe(s) });
  const view: ViewConsumer = {
    reset: (kvs) => { cluster.reset(kvs); injector.clusterChanged(); },
    apply: (type, key, value) => { if (cluster.apply(type, key, value)) injector.clusterChanged(); },
  };
  injector.start();
  const hookPath = join(dirname(o.pluginSocket), HOOK_SOCKET);
  let hook: { close(): Promise<void> } | undefined;
  try {
    hook = await startHookServer({ path: hookPath, handle: (ns) => injector.hook(ns), log: o.log });
  } catch (e) {
    o.log.warn({ err: (e as Error).message, path: hookPath }, 'hook socket unavailable: containers are served from Join or when their namespace appears');
  }
  o.log.info({ hookSocket: hook ? hookPath : undefined, hookInstalled: o.hookAvailable }, 'DNS plane started');
  const unregister = registerMetrics(injector, cluster, server, injection);
  return {
    injector,
    view,
    joined: (ep, net, key) => injector.join(ep, net, key),
    left: (ep) => injector.leave(ep),
    async stop() {
      unregister();
      await hook?.close();
      await injector.stop();
    },
  };
}

export function injectionLatency(): Histogram {
  return new Histogram({
    name: 'swarmnet_dns_injection_duration_seconds',
    help: 'From Join to the container\'s namespace being served (at Join on Docker >= 26; by the createContainer hook or a poll on 20.10)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [],
  });
}

/** Stand-ins carrying the same stats fields will do (test/monitoring/metric-names.test.ts). */
export function registerMetrics(
  injector: Pick<DnsInjector, 'stats'>, cluster: Pick<ClusterTable, 'stats'>, server: Pick<DnsServer, 'stats'>, injection: Histogram,
): () => void {
  const q = server.stats;
  const gauges: Metric[] = [
    injection,
    new Counter({ name: 'swarmnet_dns_queries_total', help: 'DNS queries answered or forwarded for containers on this node', registers: [], collect() { this.reset(); this.inc(q.queries); } }),
    new Counter({ name: 'swarmnet_dns_local_answers_total', help: 'DNS queries answered from the table (names, NODATA, malformed or unsupported queries)', registers: [], collect() { this.reset(); this.inc(q.local); } }),
    new Counter({ name: 'swarmnet_dns_forwarded_total', help: 'DNS queries for names swarmnet does not own, forwarded to Docker\'s resolver in the container (or the host\'s servers)', registers: [], collect() { this.reset(); this.inc(q.forwarded); } }),
    new Counter({ name: 'swarmnet_dns_limited_total', help: 'Refused by a per-container limit: forwarded queries past the container\'s in-flight limit (answered REFUSED), TCP connections past its connection limit (closed at once), queries that waited for the container\'s DNS_MAX_QPS_PER_CONTAINER budget', labelNames: ['limit'] as const, registers: [], collect() { this.reset(); this.inc({ limit: 'forwards' }, q.limited.forwards); this.inc({ limit: 'tcp_connections' }, q.limited.tcpConnections); this.inc({ limit: 'qps' }, q.limited.qps); } }),
    new Counter({ name: 'swarmnet_dns_query_failures_total', help: 'DNS queries answered SERVFAIL or REFUSED by swarmnet itself: no upstream answered, too many forwards in flight, or an internal error', registers: [], collect() { this.reset(); this.inc(q.failed); } }),
    new BucketsHistogram({ name: 'swarmnet_dns_query_duration_seconds', help: 'From a DNS query being taken in to its answer being ready to send, by path (local: from the table; forwarded: until the upstream answered)', labelNames: ['path'] as const },
      () => [{ labels: { path: 'local' }, buckets: q.localSeconds }, { labels: { path: 'forwarded' }, buckets: q.forwardedSeconds }]),
    new Gauge({ name: 'swarmnet_dns_namespaces_served', help: 'Container network namespaces whose 127.0.0.11 this node answers', registers: [], collect() { this.set(injector.stats.served); } }),
    new Gauge({ name: 'swarmnet_dns_namespaces_waiting', help: 'Namespaces joined to a swarmnet network and not served yet (not created yet, or failing)', registers: [], collect() { this.set(injector.stats.waiting); } }),
    new Counter({ name: 'swarmnet_dns_serve_failures_total', help: 'Namespaces that could not be served (they keep Docker\'s resolver)', registers: [], collect() { this.reset(); this.inc(injector.stats.serveFailures); } }),
    new Counter({ name: 'swarmnet_dns_takeover_repairs_total', help: 'Served namespaces whose takeover table was gone (removed inside the container) and was put back', registers: [], collect() { this.reset(); this.inc(injector.stats.repairs); } }),
    new Counter({ name: 'swarmnet_dns_hook_requests_total', help: 'createContainer hook requests, by whether the namespace was one this node serves', labelNames: ['matched'] as const, registers: [], collect() { this.reset(); this.inc({ matched: 'true' }, injector.stats.hookMatched); this.inc({ matched: 'false' }, injector.stats.hookOther); } }),
    new Counter({ name: 'swarmnet_dns_table_builds_total', help: 'Resolver tables built from the Docker view', registers: [], collect() { this.reset(); this.inc(injector.stats.tableBuilds); } }),
    new Counter({ name: 'swarmnet_dns_records_rejected_total', help: 'Docker-view records in etcd that failed validation', registers: [], collect() { this.reset(); this.inc(cluster.stats.rejected); } }),
  ];
  for (const g of gauges) registry.registerMetric(g);
  return () => { for (const g of gauges) registry.removeSingleMetric((g as unknown as { name: string }).name); };
}
