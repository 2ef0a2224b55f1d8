// The alert rules, their unit tests, the dashboard's queries and the daemon's /metrics text, checked by Prometheus'
// own tool. promtool comes from Debian's prometheus package; without it these tests are skipped and say so.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { run } from '../../common/exec.js';
import { exposition } from './daemon-registry.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PROMTOOL = '/usr/bin/promtool';
const hasPromtool = existsSync(PROMTOOL);
const withPromtool = hasPromtool ? test : test.skip;
if (!hasPromtool) process.stderr.write(`test/monitoring: ${PROMTOOL} is missing (Debian package prometheus): promtool checks skipped\n`);
const skipNote = hasPromtool ? '' : ' [skipped: no promtool, install Debian\'s prometheus package]';

const promtool = (args: string[], input?: string) => run(PROMTOOL, args, { allowFailure: true, ...(input !== undefined ? { input } : {}) });

withPromtool(`promtool check rules: monitoring/alerts.yml is valid${skipNote}`, async (t) => {
  const r = await promtool(['check', 'rules', join(ROOT, 'monitoring/alerts.yml')]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /SUCCESS: \d+ rules found/);
});

withPromtool(`promtool test rules: the alerts fire on failing series and not on healthy ones${skipNote}`, async (t) => {
  const r = await promtool(['test', 'rules', join(ROOT, 'monitoring/alerts.test.yml')]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /SUCCESS/);
});

withPromtool(`every dashboard query is valid PromQL (as recording rules, Grafana's variables filled in)${skipNote}`, async (t) => {
  const d = JSON.parse(readFileSync(join(ROOT, 'monitoring/grafana-dashboard.json'), 'utf8')) as { panels: { id: number; targets?: { expr: string; refId: string }[] }[] };
  const rules = d.panels.flatMap((p) => (p.targets ?? []).map((x) => ({
    record: `dashboard:panel_${p.id}_${x.refId}`,
    expr: x.expr.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '6h').replaceAll('$instance', '.*'),
  })));
  t.true(rules.length > 30);
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-dashboard-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // JSON is YAML: no YAML library needed to write a rule file.
  writeFileSync(join(dir, 'rules.yml'), JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
  const r = await promtool(['check', 'rules', join(dir, 'rules.yml')]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

withPromtool(`promtool check metrics: the daemon's /metrics text parses, and its own metrics pass the lint${skipNote}`, async (t) => {
  const text = await exposition();
  t.true(text.includes('swarmnet_dns_query_duration_seconds_bucket{path="local",le="+Inf"} 1'), 'the precomputed histogram is exposed');
  const r = await promtool(['check', 'metrics'], text);
  // 0: clean; 3: lint findings; anything else (1) is a parse error.
  t.true(r.code === 0 || r.code === 3, r.stdout + r.stderr);
  // prom-client's default Node.js metrics carry lint findings of their own (gauges named *_total): not ours to fix.
  const findings = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() && !l.startsWith('swarmnet_process_'));
  t.deepEqual(findings, []);
});
