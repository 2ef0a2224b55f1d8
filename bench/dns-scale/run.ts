/**
 * The DNS plane at scale, in one process as the plugin runs it (dns/cluster-table.ts + dns/inject/): a cluster view
 * of SERVICES services × TASKS tasks on one network, fed as etcd watch events, and LOCAL network namespaces served
 * (real namespaces: our sockets on 127.0.0.11:53 and the takeover table in each). Reports the process's RSS, the cost
 * of one watch event (a task starting, a service changing) and of indexing the network, and checks answers with dig.
 * Run (root): npm run bench -- dns-scale   [SWARMNET_BENCH_SERVICES=10000 SWARMNET_BENCH_TASKS=10 SWARMNET_BENCH_LOCAL=200]
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { logger, setLogLevel } from '../../common/log.js';
import { ClusterTable } from '../../dns/cluster-table.js';
import { DnsInjector } from '../../dns/inject/injector.js';
import { DnsServer } from '../../dns/server.js';

const SERVICES = Number(process.env.SWARMNET_BENCH_SERVICES ?? 10_000);
const TASKS = Number(process.env.SWARMNET_BENCH_TASKS ?? 10);
const LOCAL = Number(process.env.SWARMNET_BENCH_LOCAL ?? 200);
const P = '/bench';
/** A Docker network id (25 characters). */
const NET = 'n8x1k2j3h4g5f6d7s8a9q0w1e';
const key = (k: string): string => `${P}/swarmnet/docker/${k}`;
const ip = (i: number): string => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const mb = (): string => {
  global.gc?.();
  const m = process.memoryUsage();
  return `${(m.rss / 2 ** 20).toFixed(0)} MB (JavaScript heap ${(m.heapUsed / 2 ** 20).toFixed(0)} MB used of ${(m.heapTotal / 2 ** 20).toFixed(0)} MB, external ${(m.external / 2 ** 20).toFixed(0)} MB)`;
};
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const ms = (xs: number[]): string => `p50 ${pct(xs, 0.5).toFixed(3)} ms, p99 ${pct(xs, 0.99).toFixed(3)} ms`;

/** Record sizes as Docker's: 64-hex container ids, task names `<service>.<slot>.<25-char task id>`, the short id
 * as hostname, 25-char service ids. */
const hex = (n: number, len: number): string => createHash('sha256').update(String(n)).digest('hex').slice(0, len);
const serviceId = (s: number): string => `s${hex(-s - 1, 24)}`;
function task(s: number, t: number, node: string, sandboxKey?: string): [string, string] {
  const id = hex(s * 1000 + t, 64);
  const name = `svc${s}`;
  return [key(`containers/${node}/${id}`), JSON.stringify({
    id, name: `${name}.${t + 1}.${hex(s * 1000 + t, 25)}`, hostname: id.slice(0, 12), service: name, serviceId: serviceId(s), live: true, ndots: false,
    ...(sandboxKey ? { sandboxKey } : {}), networks: { [NET]: { address: ip(s * TASKS + t + 1), aliases: [], dnsNames: [] } },
  })];
}
const service = (s: number, name = `svc${s}`): [string, string] => [key(`services/${serviceId(s)}`), JSON.stringify({
  id: serviceId(s), name, endpointMode: 'vip', vips: { [NET]: ip(4_000_000 + s) }, aliases: { [NET]: [] },
})];

/** Asynchronous: the resolver answering it runs in this process's event loop. */
async function dig(ns: string, name: string): Promise<string> {
  const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', ns, 'dig', '@127.0.0.11', name, '+short', '+tries=1', '+time=10'], { encoding: 'utf8' });
  return stdout.trim().split('\n').sort().join(' ');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  setLogLevel('warn');
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${readFileSync('/proc/version', 'utf8').split(' ').slice(0, 3).join(' ')}; node ${process.version}`);
  console.log(`cluster: ${SERVICES} services × ${TASKS} tasks on one network; ${LOCAL} local namespaces served`);
  const rss0 = mb();
  const cluster = new ClusterTable(P, 'me');
  const server = new DnsServer(cluster.table, { compat: true, defaultUpstreams: [] });
  const injector = new DnsInjector({ server, cluster, log: logger('bench'), intervalMs: 3_600_000 });

  // The watch snapshot at start.
  let t0 = performance.now();
  const kvs = new Map<string, string>([[key(`networks/${NET}`), JSON.stringify({ id: NET, name: 'front' })]]);
  for (let s = 0; s < SERVICES; s++) {
    kvs.set(...service(s));
    for (let t = 0; t < TASKS; t++) kvs.set(...task(s, t, `node${t}`));
  }
  cluster.reset(kvs);
  kvs.clear();
  console.log(`snapshot of ${SERVICES * TASKS + SERVICES + 1} records applied in ${(performance.now() - t0).toFixed(0)} ms (no network indexed yet)`);

  // LOCAL namespaces on this node, each a task of its own service: served from their records (as after a restart).
  const names: string[] = [];
  try {
    for (let i = 0; i < LOCAL; i++) {
      const ns = `snb-dns-${i}`;
      execFileSync('ip', ['netns', 'add', ns]);
      names.push(ns);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    injector.start();
    t0 = performance.now();
    for (let i = 0; i < LOCAL; i++) cluster.apply('put', ...task(SERVICES + i, 0, 'me', `/run/netns/${names[i]}`));
    injector.clusterChanged();
    while (injector.stats.served < LOCAL) {
      if (injector.stats.serveFailures) throw new Error('a namespace could not be served');
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`${LOCAL} namespaces served in ${(performance.now() - t0).toFixed(0)} ms (network indexed with them: ${SERVICES * TASKS} tasks)`);
    global.gc?.();
    console.log(`RSS: ${mb()} (at start ${rss0})`);

    // One task starting elsewhere (a put), then stopping (a delete): what every node does per task event.
    const starts: number[] = [];
    const stops: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const [k, v] = task(i % SERVICES, TASKS, 'nodeX');
      let a = performance.now();
      cluster.apply('put', k, v);
      injector.clusterChanged();
      starts.push(performance.now() - a);
      a = performance.now();
      cluster.apply('delete', k);
      injector.clusterChanged();
      stops.push(performance.now() - a);
      await new Promise((r) => setImmediate(r)); // the coalesced view refresh runs here, as between watch events
    }
    console.log(`task start event: ${ms(starts)}; task stop event: ${ms(stops)}`);
    // A service renamed (its VIP names and its tasks' names change): O(its tasks).
    const renames: number[] = [];
    for (let i = 0; i < 200; i++) {
      const a = performance.now();
      cluster.apply('put', ...service(i, `svc${i}-renamed`));
      renames.push(performance.now() - a);
      cluster.apply('put', ...service(i));
    }
    console.log(`service change event (${TASKS} tasks): ${ms(renames)}`);
    // The network forgotten and indexed again with the same views the injector gave (its served namespaces).
    const served = names.map((ns) => ({ id: `/run/netns/${ns}`, networks: [NET] }));
    cluster.setViews([]);
    t0 = performance.now();
    cluster.setViews(served);
    console.log(`indexing the network from scratch (a first local container on it): ${(performance.now() - t0).toFixed(0)} ms`);
    injector.clusterChanged();
    await new Promise((r) => setImmediate(r));
    const probe = names[0]!;
    const vip = await dig(probe, 'svc42');
    const tasks = (await dig(probe, 'tasks.svc42')).split(' ').filter(Boolean).length;
    if (vip !== ip(4_000_042) || tasks !== TASKS) throw new Error(`wrong answers from ${probe}: svc42 → "${vip}", tasks.svc42 → ${tasks} addresses`);
    console.log(`answers from ${probe}: svc42 → ${vip}; tasks.svc42 → ${tasks} addresses`);
    console.log(`RSS right after the load: ${mb()}`);
    // V8 returns the pages the snapshot's peak left behind once the process idles (its memory reducer).
    for (let i = 0; i < 6; i++) await new Promise((r) => setTimeout(r, 5000));
    console.log(`RSS after 30 s idle (steady state, ${LOCAL} namespaces still served): ${mb()}`);
  } finally {
    await injector.stop();
    for (const ns of names) execFileSync('ip', ['netns', 'del', ns]);
  }
}

main().catch((e: Error) => {
  console.error(`bench dns-scale: ${e.message}`);
  process.exit(1);
});
