// The dashboard, the alert rules and docs/metrics.md name only metrics the daemon really registers, read from the
// registry the code builds (daemon-registry.ts): renaming a metric in the code fails here until they follow.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { daemonMetrics } from './daemon-registry.js';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');
const HISTOGRAM_SERIES = ['_bucket', '_sum', '_count'];

/** Every swarmnet_* token in a text. */
function namesIn(text: string): Set<string> {
  return new Set([...text.matchAll(/\bswarmnet_[a-z0-9_]+/g)].map((m) => m[0]));
}

/** Referenced names that are neither a registered metric nor a series of a registered histogram. */
function unknown(referenced: Set<string>, registered: Map<string, string>): string[] {
  return [...referenced].filter((n) => {
    if (registered.has(n)) return false;
    return !HISTOGRAM_SERIES.some((s) => n.endsWith(s) && registered.get(n.slice(0, -s.length)) === 'histogram');
  }).sort();
}

interface Panel { type: string; title: string; id: number; datasource?: { uid?: string }; targets?: { expr: string; datasource?: { uid?: string } }[]; gridPos: { x: number; w: number } }

function dashboard(): { panels: Panel[]; __inputs: { name: string; pluginId: string }[]; templating: { list: { query: unknown; datasource?: { uid?: string } }[] } } {
  return JSON.parse(read('monitoring/grafana-dashboard.json')) as ReturnType<typeof dashboard>;
}

test('the registry the test reads holds every plane\'s metrics', async (t) => {
  const m = await daemonMetrics();
  for (const n of ['swarmnet_ready', 'swarmnet_lb_vips', 'swarmnet_dns_query_duration_seconds', 'swarmnet_node_lease_lost_total', 'swarmnet_process_process_cpu_seconds_total']) {
    t.true(m.has(n), n);
  }
  t.is(m.get('swarmnet_dns_query_duration_seconds'), 'histogram');
  t.true([...m.keys()].every((n) => n.startsWith('swarmnet_')), 'every metric name starts with swarmnet_');
});

test('every metric in the dashboard\'s queries is registered by the daemon', async (t) => {
  const exprs = dashboard().panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
  t.true(exprs.length > 30, `${exprs.length} queries`);
  const referenced = namesIn(exprs.join('\n'));
  t.true(referenced.size > 30, `${referenced.size} metric names`);
  t.deepEqual(unknown(referenced, await daemonMetrics()), []);
  // The variable and any other text (titles, descriptions) too.
  t.deepEqual(unknown(namesIn(read('monitoring/grafana-dashboard.json')), await daemonMetrics()), []);
});

test('every metric in the alert rules and their unit tests is registered by the daemon', async (t) => {
  const m = await daemonMetrics();
  const rules = namesIn(read('monitoring/alerts.yml'));
  t.true(rules.size >= 12, `${rules.size} metric names`);
  t.deepEqual(unknown(rules, m), []);
  t.deepEqual(unknown(namesIn(read('monitoring/alerts.test.yml')), m), []);
});

test('docs/metrics.md describes every metric the daemon registers, and no other', async (t) => {
  const m = await daemonMetrics();
  const doc = read('docs/metrics.md');
  const documented = namesIn(doc);
  // prom-client's process metrics are described as one group.
  const ours = [...m.keys()].filter((n) => !n.startsWith('swarmnet_process_'));
  t.deepEqual(ours.filter((n) => !documented.has(n)), [], 'missing from docs/metrics.md');
  t.deepEqual(unknown(new Set([...documented].filter((n) => n !== 'swarmnet_process_')), m), [], 'named in docs/metrics.md but not registered');
});

test('the dashboard takes its datasource as the DS_PROMETHEUS input, everywhere', (t) => {
  const d = dashboard();
  t.deepEqual(d.__inputs.map((i) => [i.name, i.pluginId]), [['DS_PROMETHEUS', 'prometheus']]);
  for (const p of d.panels.filter((x) => x.type !== 'row')) {
    t.is(p.datasource?.uid, '${DS_PROMETHEUS}', p.title);
    for (const x of p.targets ?? []) t.is(x.datasource?.uid, '${DS_PROMETHEUS}', p.title);
  }
  for (const v of d.templating.list) t.is(v.datasource?.uid, '${DS_PROMETHEUS}');
  const ids = d.panels.map((p) => p.id);
  t.is(new Set(ids).size, ids.length, 'panel ids are unique');
  t.true(d.panels.every((p) => p.gridPos.x + p.gridPos.w <= 24), 'panels fit the 24-column grid');
});

test('every alert says what to do: summary, and a description pointing at swarmnet doctor and the troubleshooting page', (t) => {
  // One rule per "- alert:" block; the unit-test file checks the rendered annotations of several.
  const blocks = read('monitoring/alerts.yml').split(/\n\s+- alert: /).slice(1);
  t.true(blocks.length >= 12, `${blocks.length} alerts`);
  for (const b of blocks) {
    const name = b.split('\n')[0]!;
    t.regex(b, /\n\s+summary: /, name);
    t.regex(b, /\n\s+description: /, name);
    t.true(b.includes('`swarmnet doctor`'), `${name} points at swarmnet doctor`);
    t.true(b.includes('docs/troubleshooting.md'), `${name} points at docs/troubleshooting.md`);
  }
  const names = blocks.map((b) => b.split('\n')[0]);
  for (const want of ['SwarmnetNotReady', 'SwarmnetPluginCallErrors', 'SwarmnetAllocationRefused', 'SwarmnetEtcdRoundTripHigh', 'SwarmnetNodeLeaseLost',
    'SwarmnetOverlayDrift', 'SwarmnetLbDrift', 'SwarmnetLbSyncFailures', 'SwarmnetDnsServeFailures', 'SwarmnetDnsLatencyHigh']) {
    t.true(names.includes(want), want);
  }
});
