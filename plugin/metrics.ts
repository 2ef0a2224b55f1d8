import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

export const reconcileRepairs = new Counter({
  name: 'swarmnet_reconcile_repairs_total',
  help: 'Kernel objects created, changed or removed by reconcilers, by plane',
  labelNames: ['plane'] as const,
  registers: [registry],
});
