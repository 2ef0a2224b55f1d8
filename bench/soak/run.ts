/**
 * Churn soak on the sandbox (3 nodes): containers (`docker run --rm` on every node) and services (created, scaled to
 * 3, removed) come and go on a swarmnet network for a while; then everything they made must be gone. Sampled every
 * SAMPLE_S seconds on every node: the plugin's RSS, open fds and sockets, the nftables/iptables lines and links in the
 * node's namespace, and etcd's keys. Prints the curves and the end against the baseline; exits 1 when a count (fds,
 * sockets, rules, links, keys) did not return to it. RSS is reported, not judged (a heap settles where it settles).
 * Run (root): node scripts/bench.mjs soak  [SWARMNET_SOAK_CONTAINERS=1000 SWARMNET_SOAK_SERVICES=100
 *   SWARMNET_BENCH_DOCKER=28 SWARMNET_SOAK_SAMPLE_S=30 SWARMNET_BENCH_KEEP=1 (leave the sandbox up)
 *   SWARMNET_SOAK_DRIVER=overlay (the same churn on Docker's overlay, for comparison: the plugin's counts are 0)]
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import type { SandboxNode } from '../../scripts/lab/sandbox.mjs';
import { lab, systemToolsOnly } from '../lab.js';

const { docker, execInNode } = await lab<typeof import('../../scripts/lab/dockerd.mjs')>('dockerd.mjs');
const { down, etcdClientOptions, LAYOUT, up } = await lab<typeof import('../../scripts/lab/sandbox.mjs')>('sandbox.mjs');
const { pluginPid, waitServiceRunning } = await lab<typeof import('../../scripts/lab/services.mjs')>('services.mjs');
systemToolsOnly();

const CONTAINERS = Number(process.env.SWARMNET_SOAK_CONTAINERS ?? 1000);
const SERVICES = Number(process.env.SWARMNET_SOAK_SERVICES ?? 100);
const ENGINE = process.env.SWARMNET_BENCH_DOCKER ?? '28';
const SAMPLE_S = Number(process.env.SWARMNET_SOAK_SAMPLE_S ?? 30);
const KEEP = process.env.SWARMNET_BENCH_KEEP === '1';
const OVERLAY = process.env.SWARMNET_SOAK_DRIVER === 'overlay';
const NETWORK = 'soak-net';
const IMAGE = 'swarmnet/busybox';
const log = (m: string): void => console.log(m);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface NodeSample { rssMiB: number; fds: number; sockets: number; nftLines: number; iptLines: number; links: number }
interface Sample { at: number; containers: number; services: number; keys: number; nodes: Record<string, NodeSample> }

async function nodeSample(node: SandboxNode): Promise<NodeSample> {
  const pid = OVERLAY ? undefined : pluginPid(node);
  const rss = pid ? Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024 : 0;
  const fds = pid ? readdirSync(`/proc/${pid}/fd`) : [];
  let sockets = 0;
  for (const f of fds) {
    try { if (readlinkSync(`/proc/${pid}/fd/${f}`).startsWith('socket:')) sockets++; } catch { /* closed meanwhile */ }
  }
  // Counters move with traffic: count lines, not their text.
  const nft = (await execInNode(node, 'nft', ['list', 'ruleset'])).stdout.split('\n').filter((l) => l.trim()).length;
  const ipt = (await execInNode(node, 'iptables-save', [], { allowFailure: true })).stdout.split('\n').filter((l) => l && !l.startsWith('#')).length;
  const links = (await execInNode(node, 'ip', ['-o', 'link', 'show'])).stdout.split('\n').filter(Boolean).length;
  return { rssMiB: Math.round(rss * 10) / 10, fds: fds.length, sockets, nftLines: nft, iptLines: ipt, links };
}

async function sample(nodes: SandboxNode[], etcd: Etcd3, counts: { containers: number; services: number }, t0: number): Promise<Sample> {
  const out: Sample = { at: Math.round((Date.now() - t0) / 1000), ...counts, keys: (await etcd.getAll().prefix('/flannel/').keys()).length, nodes: {} };
  for (const n of nodes) out.nodes[n.name] = await nodeSample(n);
  return out;
}

/** What did not return to the baseline: etcd keys, and per node every count but RSS. */
function differences(base: Sample, end: Sample, nodes: SandboxNode[]): string[] {
  const out: string[] = [];
  if (end.keys !== base.keys) out.push(`etcd keys ${base.keys} → ${end.keys}`);
  for (const n of nodes) {
    const a = base.nodes[n.name]!;
    const b = end.nodes[n.name]!;
    for (const k of ['fds', 'sockets', 'nftLines', 'iptLines', 'links'] as const) if (a[k] !== b[k]) out.push(`${n.name} ${k} ${a[k]} → ${b[k]}`);
  }
  return out;
}

const row = (s: Sample): string => `| ${s.at} | ${s.containers} | ${s.services} | ${s.keys} | ${Object.values(s.nodes).map((n) => `${n.rssMiB} / ${n.fds} / ${n.sockets} / ${n.nftLines} / ${n.iptLines} / ${n.links}`).join(' | ')} |`;

const sb = await up({ nodes: 3, managers: 1, docker: ENGINE, log: (m: string) => log(`  ${m}`) });
const etcd = new Etcd3(etcdClientOptions());
let failed = false;
try {
  const driver = OVERLAY ? ['--driver', 'overlay'] : ['--driver', LAYOUT.networkDriver, '--ipam-driver', LAYOUT.networkDriver];
  await docker(sb.manager, ['network', 'create', ...driver, '--attachable', NETWORK]);
  // The network itself (gateway, host subnets, bridges) stays: the baseline is taken with it in place and one
  // container having used it on every node.
  await Promise.all(sb.nodes.map((n) => docker(n, ['run', '--rm', '--network', NETWORK, IMAGE, 'true'])));
  await sleep(15_000);
  const t0 = Date.now();
  const counts = { containers: 0, services: 0 };
  const base = await sample(sb.nodes, etcd, counts, t0);
  const samples: Sample[] = [base];
  log(`soak: ${CONTAINERS} containers and ${SERVICES} services on ${sb.nodes.length} nodes (Docker ${ENGINE}, ${OVERLAY ? 'Docker\'s overlay' : 'swarmnet'})`);
  const runFailures: string[] = [];
  let done = false;
  const sampler = (async () => {
    while (!done) {
      await sleep(SAMPLE_S * 1000);
      if (!done) samples.push(await sample(sb.nodes, etcd, counts, t0));
      log(row(samples.at(-1)!));
    }
  })();
  // Containers: one stream per node, `docker run --rm` on the network; services: batches of 5, each scaled to 3
  // tasks, then removed.
  const perNode = Math.ceil(CONTAINERS / sb.nodes.length);
  const containerStreams = sb.nodes.map(async (n) => {
    for (let i = 0; i < perNode && counts.containers < CONTAINERS; i++) {
      const r = await docker(n, ['run', '--rm', '--network', NETWORK, IMAGE, 'true'], { allowFailure: true, timeoutMs: 120_000 });
      if (r.code !== 0) { log(`  ${n.name}: docker run failed: ${r.stderr.trim().split('\n')[0]}`); runFailures.push(n.name); failed = true; }
      counts.containers++;
    }
  });
  const serviceStream = (async () => {
    for (let b = 0; counts.services < SERVICES; b++) {
      const names = Array.from({ length: Math.min(5, SERVICES - counts.services) }, (_, k) => `soak-${b}-${k}`);
      await Promise.all(names.map((s) => docker(sb.manager, ['service', 'create', '--detach', '--no-resolve-image', '--name', s, '--replicas', '3',
        '--stop-grace-period', '1s', '--network', NETWORK, IMAGE, 'sleep', '3600'])));
      for (const s of names) await waitServiceRunning(sb.manager, s, 3, 180_000).catch((e: Error) => { log(`  ${s}: ${e.message.split('\n')[0]}`); failed = true; });
      await Promise.all(names.map((s) => docker(sb.manager, ['service', 'rm', s])));
      counts.services += names.length;
    }
  })();
  await Promise.all([...containerStreams, serviceStream]);
  const churnEnd = Date.now();
  // Removed services' tasks stop after their grace period; give the planes a reconcile period or two to settle.
  await sleep(30_000);
  done = true;
  await sampler;
  // A count can be caught mid-way by a short-lived connection (the plugin's periodic Docker and etcd calls): a leak
  // stays, a passing connection does not, so the end is sampled up to 5 times until it matches.
  let end = await sample(sb.nodes, etcd, counts, t0);
  for (let i = 1; i < 5 && differences(base, end, sb.nodes).length; i++) {
    await sleep(3000);
    end = await sample(sb.nodes, etcd, counts, t0);
  }
  samples.push(end);
  log(`\ndocker run failures: ${runFailures.length} of ${CONTAINERS}${runFailures.length ? ` (${runFailures.join(', ')})` : ''}`);
  log(`churn took ${((churnEnd - t0) / 1000).toFixed(0)} s; samples every ${SAMPLE_S} s (per node: plugin RSS MiB / fds / sockets / nft lines / iptables lines / links)`);
  log(`| s | containers | services | etcd keys | ${sb.nodes.map((n) => n.name).join(' | ')} |`);
  log(`|---|---|---|---|${sb.nodes.map(() => '---').join('|')}|`);
  for (const s of samples) log(row(s));
  const diffs = differences(base, end, sb.nodes);
  for (const n of sb.nodes) {
    log(`${n.name}: plugin RSS ${base.nodes[n.name]!.rssMiB} → ${end.nodes[n.name]!.rssMiB} MiB (peak ${Math.max(...samples.map((s) => s.nodes[n.name]!.rssMiB))} MiB)`);
  }
  log(diffs.length ? `NOT back to baseline: ${diffs.join('; ')}` : 'back to baseline: fds, sockets, nft and iptables lines, links and etcd keys as before the churn');
  if (diffs.length) failed = true;
} finally {
  etcd.close();
  if (!KEEP) await down({ log: () => {} });
}
process.exit(failed ? 1 : 0);
