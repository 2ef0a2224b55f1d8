// The counts behind the new metrics, without a kernel, etcd or Docker: latency buckets and their exposition, the DNS
// server's answers/forwards/failures, the Join → served time, the Docker event lag and the etcd probe.
import test from 'ava';
import dnsPacket from 'dns-packet';
import type { Etcd3 } from 'etcd3';
import { Registry } from 'prom-client';
import { LatencyBuckets } from '../../common/latency-buckets.js';
import { logger, setLogLevel } from '../../common/log.js';
import { ClusterTable } from '../../dns/cluster-table.js';
import { errorResponse, RCODE } from '../../dns/codec.js';
import type { Forwarder } from '../../dns/forwarder.js';
import type { InjectorKernel, Served } from '../../dns/inject/kernel.js';
import { DnsInjector } from '../../dns/inject/injector.js';
import { DnsServer } from '../../dns/server.js';
import { buildTable } from '../../dns/table.js';
import { ClusterView } from '../../plugin/docker/cluster-view.js';
import { eventLagSeconds, eventTimeMs } from '../../plugin/docker/resync.js';
import { startEtcdProbe } from '../../plugin/etcd-probe.js';
import { BucketsHistogram } from '../../plugin/metrics.js';
import type { NodeLease } from '../../plugin/state/etcd-client.js';
import { fakeDocker, fakeEtcd } from '../helpers/docker-view-fakes.js';
import { until } from '../helpers/wait.js';

setLogLevel('silent');

// --- latency buckets ------------------------------------------------------------------------------------------

test('latency buckets: a value on a bound counts in that bound (Prometheus le), above every bound only in +Inf', (t) => {
  const b = new LatencyBuckets([0.001, 0.01, 0.1]);
  for (const v of [0.0005, 0.001, 0.002, 0.01, 0.5]) b.observe(v);
  t.deepEqual(b.counts, [2, 2, 0, 1]);
  t.deepEqual(b.cumulative(), [2, 4, 4]);
  t.is(b.count, 5);
  t.is(Math.round(b.sum * 1e6), Math.round(0.5135 * 1e6));
  t.throws(() => new LatencyBuckets([0.1, 0.01]), { instanceOf: RangeError });
});

test('BucketsHistogram exposes the counts as a Prometheus histogram, per label set', async (t) => {
  const fast = new LatencyBuckets([0.001, 0.01]);
  const slow = new LatencyBuckets([0.001, 0.01]);
  fast.observe(0.0001);
  fast.observe(0.005);
  slow.observe(2);
  const reg = new Registry();
  reg.registerMetric(new BucketsHistogram({ name: 'x_seconds', help: 'h', labelNames: ['path'] as const },
    () => [{ labels: { path: 'fast' }, buckets: fast }, { labels: { path: 'slow' }, buckets: slow }]));
  t.deepEqual((await reg.metrics()).trim().split('\n'), [
    '# HELP x_seconds h',
    '# TYPE x_seconds histogram',
    'x_seconds_bucket{path="fast",le="0.001"} 1',
    'x_seconds_bucket{path="fast",le="0.01"} 2',
    'x_seconds_bucket{path="fast",le="+Inf"} 2',
    'x_seconds_sum{path="fast"} 0.0051',
    'x_seconds_count{path="fast"} 2',
    'x_seconds_bucket{path="slow",le="0.001"} 0',
    'x_seconds_bucket{path="slow",le="0.01"} 0',
    'x_seconds_bucket{path="slow",le="+Inf"} 1',
    'x_seconds_sum{path="slow"} 2',
    'x_seconds_count{path="slow"} 1',
  ]);
  const json = await reg.getMetricsAsJSON();
  t.is(json[0]!.name, 'x_seconds');
  t.is(String(json[0]!.type), 'histogram');
});

// --- DNS server counts ------------------------------------------------------------------------------------------

const table = buildTable({
  networks: [{ id: 'n1', name: 'front' }],
  containers: [{ id: 'client', name: 'client', ndots: false, endpoints: [{ networkId: 'n1', ip: '10.0.1.100' }] },
    { id: 'web', name: 'web', endpoints: [{ networkId: 'n1', ip: '10.0.1.2' }] }],
  services: [],
});
const query = (name: string): Buffer => dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] });

/** A forwarder that answers every query with the given rcode (what the real one hands back after its retries). */
function fakeForwarder(rcode: number): Forwarder {
  return {
    forwardCb(req: Buffer, _s: unknown, _p: unknown, done: (r: Buffer) => void) { setImmediate(() => done(errorResponse(req, rcode))); },
  } as unknown as Forwarder;
}

test('DNS server counts table answers, forwards and its own failures, and times each path', async (t) => {
  const ok = new DnsServer(table, { compat: true, defaultUpstreams: [{ host: '192.0.2.53', port: 53 }], forwarder: fakeForwarder(RCODE.NXDOMAIN) });
  t.truthy(await ok.handle(query('web'), 'client', 'udp'));
  t.truthy(await ok.handle(query('web.front'), 'client', 'udp'));
  t.truthy(await ok.handle(query('example.org'), 'client', 'udp'), 'an upstream NXDOMAIN is an answer, not a failure');
  t.is(await ok.handle(Buffer.from([1, 2, 3]), 'client', 'udp'), undefined, 'garbage is dropped');
  t.like(ok.stats, { queries: 4, local: 2, forwarded: 1, failed: 0 });
  t.is(ok.stats.localSeconds.count, 2);
  t.is(ok.stats.forwardedSeconds.count, 1);

  for (const rcode of [RCODE.SERVFAIL, RCODE.REFUSED]) {
    const down = new DnsServer(table, { compat: true, defaultUpstreams: [{ host: '192.0.2.53', port: 53 }], forwarder: fakeForwarder(rcode) });
    const r = await down.handle(query('example.org'), 'client', 'tcp');
    t.is(dnsPacket.decode(r!).rcode, rcode === RCODE.SERVFAIL ? 'SERVFAIL' : 'REFUSED');
    t.like(down.stats, { queries: 1, local: 0, forwarded: 1, failed: 1 });
    t.is(down.stats.forwardedSeconds.count, 1);
  }
});

// --- DNS injection: Join → served ---------------------------------------------------------------------------------

/** Namespaces exist once listed in `exist`; serving them succeeds. */
function fakeKernel(exist: Set<string>): InjectorKernel {
  const ids = new Map<string, number>();
  const id = (p: string) => { if (!ids.has(p)) ids.set(p, ids.size + 1); return { dev: 1, ino: ids.get(p)! }; };
  return {
    netnsId: (p) => (exist.has(p) ? id(p) : undefined),
    serve: async (p) => ({ ns: id(p), listener: {}, forwarder: {} } as unknown as Served),
    unserve: async () => undefined,
    dockerResolver: async () => undefined,
    repairTakeover: async () => false,
  };
}

test('injection time is observed once per namespace Docker joined, when it is served: at Join or later (hook)', async (t) => {
  const exist = new Set(['/run/docker/netns/a']);
  const observed: number[] = [];
  const P = '/p';
  const cluster = new ClusterTable(P, 'n1');
  cluster.apply('put', `${P}/swarmnet/docker/networks/net1`, JSON.stringify({ id: 'net1', name: 'front' }));
  const server = new DnsServer(cluster.table, { compat: true, defaultUpstreams: [] });
  const injector = new DnsInjector({
    server, cluster, log: logger('test'), kernel: fakeKernel(exist), pollMs: 3_600_000, intervalMs: 3_600_000,
    onJoinServed: (s) => observed.push(s),
  });
  injector.start();
  t.teardown(() => injector.stop());

  // Docker >= 26: the namespace exists at Join.
  await injector.join('ep1', 'net1', '/run/docker/netns/a');
  t.is(injector.stats.served, 1);
  t.is(observed.length, 1);
  t.true(observed[0]! >= 0);
  // A second network's Join on a served namespace is not a new injection.
  await injector.join('ep2', 'net1', '/run/docker/netns/a');
  t.is(observed.length, 1);

  // 20.10: Join before the namespace exists; the hook serves it.
  await injector.join('ep3', 'net1', '/run/docker/netns/b');
  t.is(injector.stats.waiting, 1);
  t.is(observed.length, 1, 'nothing observed while it waits');
  exist.add('/run/docker/netns/b');
  t.deepEqual(await injector.hook({ dev: 1, ino: 2 }), { served: true });
  t.is(observed.length, 2);

  // A namespace served from this node's records (a plugin restart: no Join) is not an injection after a Join.
  exist.add('/run/docker/netns/c');
  cluster.apply('put', `${P}/swarmnet/docker/containers/n1/c3`, JSON.stringify({
    id: 'c3', name: 'c3', hostname: 'c3', live: true, ndots: false, sandboxKey: '/run/docker/netns/c',
    networks: { net1: { address: '10.0.1.3', aliases: [], dnsNames: [] } },
  }));
  injector.clusterChanged();
  t.true(await until(() => injector.stats.served === 3, 30_000, 10));
  t.is(observed.length, 2);
});

// --- Docker event lag -----------------------------------------------------------------------------------------------

test('event time: timeNano, else time, else none', (t) => {
  // Docker's int64 timeNano is read as a float (about 256 ns apart at today's dates): fine for seconds of lag.
  t.true(Math.abs(eventTimeMs(JSON.parse('{"time":1700000000,"timeNano":1700000000123456789}'))! - 1_700_000_000_123.457) < 0.001);
  t.is(eventTimeMs({ time: 1_700_000_000 }), 1_700_000_000_000);
  t.is(eventTimeMs({ timeNano: 'x' }), undefined);
  t.is(eventTimeMs(null), undefined);
  t.is(eventLagSeconds(1000, 3500), 2.5);
  t.is(eventLagSeconds(5000, 3500), 0, 'a clock step back is no negative lag');
});

test('Docker event lag: observed from the event\'s timeNano when the refresh it caused wrote etcd, not when nothing changed', async (t) => {
  const d = fakeDocker();
  const e = fakeEtcd();
  const lags: number[] = [];
  const view = new ClusterView({
    docker: d.docker, client: e.client, lease: { id: async () => '1' } as unknown as NodeLease, prefix: '/p', node: 'n1',
    isManager: async () => false, isOurDriver: (x) => x.startsWith('swarmnet'), onEventWritten: (s) => lags.push(s),
  });
  view.start();
  t.teardown(() => view.stop());
  const key = (id: string) => `/p/swarmnet/docker/containers/n1/${id}`;
  // After the first (empty) resync, an event for a new container writes its record.
  await d.followed;
  d.running('c1', '10.0.1.2');
  d.event('c1', 'start', Date.now() - 3000);
  t.true(await until(() => e.kv.has(key('c1')), 30_000, 10));
  t.true(await until(() => lags.length === 1, 30_000, 10));
  // timeNano in JSON is a float: the stamp may read a fraction of a microsecond later than written.
  t.true(lags[0]! > 2.5, `lag ${lags[0]} s counts from Docker's stamp`);
  const before = lags.length;
  // An event that changes nothing (a healthcheck's exec) writes nothing and is not observed; the next change is.
  d.event('c1', 'exec_start', Date.now() - 1000);
  d.running('c2', '10.0.1.3');
  const t2 = Date.now() - 7000;
  d.event('c2', 'start', t2);
  t.true(await until(() => e.kv.has(key('c2')), 30_000, 10));
  t.true(await until(() => lags.length === before + 1, 30_000, 10));
  t.true(lags[before]! > 6.5, 'the second observation is c2\'s');
  // A change of c1 (health) is written and observed again.
  d.running('c1', '10.0.1.2', 'unhealthy');
  d.event('c1', 'health_status: unhealthy', Date.now());
  t.true(await until(() => lags.length === before + 2, 30_000, 10));
  t.true(lags.every((l) => l >= 0));
});

// --- etcd probe -----------------------------------------------------------------------------------------------------

test('etcd probe: reports each round trip or failure, never two requests at once, nothing after stop', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  let calls = 0;
  const results: (number | undefined)[] = [];
  const client = {
    maintenance: {
      status: async () => {
        calls++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        if (calls % 2 === 0) throw new Error('etcd unreachable');
        return {};
      },
    },
  } as unknown as Pick<Etcd3, 'maintenance'>;
  const stop = startEtcdProbe({ client, intervalMs: 1, onResult: (s) => results.push(s) });
  t.true(await until(() => results.length >= 6, 30_000, 5));
  stop();
  const n = calls;
  await new Promise((r) => setTimeout(r, 50));
  t.is(calls, n, 'no request starts after stop');
  t.is(maxInFlight, 1);
  t.true(typeof results[0] === 'number' && results[0] >= 0);
  t.is(results[1], undefined, 'a failed request is reported as undefined');
  t.true(typeof results[2] === 'number');
});
