/**
 * The overlay data plane side by side on the sandbox (2 nodes, one Docker Engine): Docker's own overlay network vs
 * swarmnet vs the sandbox underlay, between node1 and node2, in one run with interleaved rounds:
 *   - TCP throughput, one stream and PARALLEL streams (iperf3, SECONDS each), with CPU per Gbit/s (/proc/stat);
 *   - TCP request/response: a 1-byte ping-pong over one connection (Node, TCP_NODELAY) for RR_SECONDS: round trips
 *     per second, p50 and p99;
 *   - the VIP path: a swarmnet service VIP to its one backend on node2 vs that backend's task address.
 * Every tool runs inside a container's network namespace (nsenter on the container's PID; iperf3 is the host's
 * binary) or a node's (the underlay). Docker's overlay is measured container to container (its VIPs need IPVS).
 * Run (root): node scripts/bench.mjs overlay-swarm  [SWARMNET_BENCH_DOCKER=20.10|28 SWARMNET_BENCH_ROUNDS=6
 *   SWARMNET_BENCH_SECONDS=5 SWARMNET_BENCH_RR_SECONDS=3 SWARMNET_BENCH_PARALLEL=4 SWARMNET_BENCH_KEEP=1 (leave the
 *   sandbox up) SWARMNET_BENCH_PATHS=underlay,docker,swarmnet,vip SWARMNET_BENCH_MAX_LOAD=0.8 (wait for it before a round)]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { run } from '../../common/exec.js';
import type { SandboxNode } from '../../scripts/lab/sandbox.mjs';
import { lab, systemToolsOnly } from '../lab.js';

const { docker } = await lab<typeof import('../../scripts/lab/dockerd.mjs')>('dockerd.mjs');
const { down, LAYOUT, up } = await lab<typeof import('../../scripts/lab/sandbox.mjs')>('sandbox.mjs');
const { serviceContainers, waitServiceRunning } = await lab<typeof import('../../scripts/lab/services.mjs')>('services.mjs');
systemToolsOnly();

const ENGINE = process.env.SWARMNET_BENCH_DOCKER ?? '20.10';
const ROUNDS = Number(process.env.SWARMNET_BENCH_ROUNDS ?? 6);
const SECONDS = Number(process.env.SWARMNET_BENCH_SECONDS ?? 5);
const RR_SECONDS = Number(process.env.SWARMNET_BENCH_RR_SECONDS ?? 3);
const PARALLEL = Number(process.env.SWARMNET_BENCH_PARALLEL ?? 4);
const KEEP = process.env.SWARMNET_BENCH_KEEP === '1';
const WANTED = (process.env.SWARMNET_BENCH_PATHS ?? 'underlay,docker,swarmnet,vip').split(',');
const DRIVER = LAYOUT.networkDriver;
const IMAGE = 'swarmnet/busybox';
const log = (m: string): void => console.log(m);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;
const load1 = (): number => loadavg()[0]!;

/** A place to run a tool: a network namespace file and the address others reach it at. */
interface Endpoint { netns: string; address: string }
/** One measured path: a client and a server namespace, and the address the client dials (a VIP, or the server's). */
interface Path { key: string; label: string; client: Endpoint; server: Endpoint; target: string }

const inNs = (netns: string, cmd: string, args: string[], timeoutMs = 120_000): ReturnType<typeof run> =>
  run('nsenter', [`--net=${netns}`, cmd, ...args], { timeoutMs });

async function containerNetns(node: SandboxNode, container: string): Promise<string> {
  const pid = JSON.parse((await docker(node, ['inspect', container])).stdout)[0].State.Pid as number;
  return `/proc/${pid}/ns/net`;
}

async function containerAddress(node: SandboxNode, container: string, network: string): Promise<string> {
  return JSON.parse((await docker(node, ['inspect', container])).stdout)[0].NetworkSettings.Networks[network].IPAddress as string;
}

/** Starts a server in a namespace, waits until it listens on `port`, runs `body`, and kills it by PID in any case. */
async function withServer<T>(netns: string, argv: string[], port: number, body: () => Promise<T>): Promise<T> {
  const srv = spawn('nsenter', [`--net=${netns}`, ...argv], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100; i++) {
      if ((await inNs(netns, 'ss', ['-Hltn', 'sport', '=', `:${port}`])).stdout.trim()) break;
      await sleep(50);
    }
    return await body();
  } finally {
    srv.kill('SIGKILL');
  }
}

/** Busy and total jiffies of all CPUs (/proc/stat's first line). */
function cpuTimes(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

interface Throughput { gbps: number; cores: number }

async function iperf(p: Path, streams: number): Promise<Throughput> {
  return withServer(p.server.netns, ['iperf3', '-s', '-1', '-p', '5201'], 5201, async () => {
    const before = cpuTimes();
    const r = await inNs(p.client.netns, 'iperf3', ['-c', p.target, '-p', '5201', '-t', String(SECONDS), '-P', String(streams), '-J'], (SECONDS + 30) * 1000);
    const after = cpuTimes();
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    const cores = ((after.busy - before.busy) / (after.total - before.total)) * cpus().length;
    return { gbps: j.end.sum_received.bits_per_second / 1e9, cores };
  });
}

/** Echo server and 1-byte ping-pong client (one connection, TCP_NODELAY); the client prints its count and p50/p99 in µs. */
const ECHO = `require('node:net').createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); s.on('error', () => {}); }).listen(5202, '0.0.0.0');`;
const PINGPONG = `
const [host, seconds] = [process.argv[1], Number(process.argv[2])];
const s = require('node:net').connect(5202, host, () => {
  s.setNoDelay(true);
  const rtts = []; const warm = process.hrtime.bigint() + 300000000n; const end = warm + BigInt(seconds * 1e9);
  let t0 = process.hrtime.bigint();
  s.on('data', () => {
    const t = process.hrtime.bigint();
    if (t >= warm) rtts.push(Number(t - t0) / 1000);
    if (t >= end) {
      rtts.sort((a, b) => a - b);
      const at = (p) => rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * p))];
      process.stdout.write(JSON.stringify({ n: rtts.length, p50: at(0.5), p99: at(0.99) }) + '\\n', () => process.exit(0));
      return;
    }
    t0 = process.hrtime.bigint(); s.write('x');
  });
  s.write('x');
});`;

interface Rr { rps: number; p50: number; p99: number }

async function pingPong(p: Path): Promise<Rr> {
  return withServer(p.server.netns, [process.execPath, '-e', ECHO], 5202, async () => {
    const r = await inNs(p.client.netns, process.execPath, ['-e', PINGPONG, p.target, String(RR_SECONDS)], (RR_SECONDS + 30) * 1000);
    const { n, p50, p99 } = JSON.parse(r.stdout) as { n: number; p50: number; p99: number };
    return { rps: n / RR_SECONDS, p50, p99 };
  });
}

/**
 * Waits (bounded) for a quiet machine, since every path here is CPU-bound: before a round, until the 1-minute load
 * average is below SWARMNET_BENCH_MAX_LOAD (when set); before each measurement, until the CPUs were at least 90 %
 * idle over one second (our own previous measurement has ended; nobody else runs).
 */
async function quiet(beforeRound: boolean): Promise<void> {
  const limit = Number(process.env.SWARMNET_BENCH_MAX_LOAD ?? 0);
  for (let i = 0; beforeRound && limit > 0 && load1() >= limit && i < 240; i++) await sleep(5000);
  for (let i = 0; i < 600; i++) {
    const a = cpuTimes();
    await sleep(1000);
    const b = cpuTimes();
    if ((b.busy - a.busy) / (b.total - a.total) < 0.1) return;
  }
}

interface Sample { value: number; load: number }
type Metric = 'tcp1' | 'tcpN' | 'cpu1' | 'cpuN' | 'rps' | 'p50' | 'p99';

async function measure(paths: Path[]): Promise<Map<string, Record<Metric, Sample[]>>> {
  const out = new Map(paths.map((p) => [p.key, { tcp1: [], tcpN: [], cpu1: [], cpuN: [], rps: [], p50: [], p99: [] } as Record<Metric, Sample[]>]));
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts with another path, so no path always runs right after the same one.
    const order = paths.map((_, i) => paths[(i + round) % paths.length]!);
    await quiet(true);
    for (const kind of ['tcp1', 'tcpN', 'rr'] as const) {
      for (const p of order) {
        await quiet(false);
        const load = load1();
        const m = out.get(p.key)!;
        if (kind === 'rr') {
          const r = await pingPong(p);
          m.rps.push({ value: r.rps, load });
          m.p50.push({ value: r.p50, load });
          m.p99.push({ value: r.p99, load });
          log(`  round ${round + 1} ${p.label}: ${r.rps.toFixed(0)} round trips/s, p50 ${r.p50.toFixed(0)} µs, p99 ${r.p99.toFixed(0)} µs (load ${load.toFixed(2)})`);
        } else {
          const t = await iperf(p, kind === 'tcp1' ? 1 : PARALLEL);
          m[kind].push({ value: t.gbps, load });
          m[kind === 'tcp1' ? 'cpu1' : 'cpuN'].push({ value: (t.cores * 100) / t.gbps, load });
          log(`  round ${round + 1} ${p.label}: ${kind === 'tcp1' ? '1 stream' : `${PARALLEL} streams`} ${t.gbps.toFixed(2)} Gbit/s, ${(t.cores * 100).toFixed(0)} % CPU (load ${load.toFixed(2)})`);
        }
      }
    }
  }
  return out;
}

function table(title: string, unit: string, paths: Path[], data: Map<string, Record<Metric, Sample[]>>, metric: Metric, higherIsBetter: boolean): void {
  const med = (k: string): number => pct(data.get(k)![metric].map((s) => s.value), 0.5);
  const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  const ratio = (k: string, ref: string): string => {
    if (!data.has(ref) || k === ref) return '';
    const r = higherIsBetter ? med(k) / med(ref) : med(ref) / med(k);
    return `${r.toFixed(2)}×`;
  };
  log(`\n${title} (median of ${ROUNDS}; ratio: higher is better for swarmnet)`);
  log(`| path | median ${unit} | rounds | load avg (1 min) per round | vs Docker overlay | vs underlay |`);
  log('|---|---|---|---|---|---|');
  for (const p of paths) {
    const s = data.get(p.key)![metric];
    log(`| ${p.label} | ${fmt(med(p.key))} | ${s.map((x) => fmt(x.value)).join(', ')} | ${s.map((x) => x.load.toFixed(2)).join(', ')} | ${ratio(p.key, 'docker')} | ${ratio(p.key, 'underlay')} |`);
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (the sandbox)');
  const started = new Date();
  const kernel = readFileSync('/proc/version', 'utf8').split(' ')[2];
  const sb = await up({ nodes: 2, managers: 1, docker: ENGINE, prometheus: false, log: (m: string) => log(`  sandbox: ${m}`) });
  try {
    const [n1, n2] = sb.nodes as [SandboxNode, SandboxNode];
    const m = sb.manager;
    await docker(m, ['network', 'create', '--driver', DRIVER, '--ipam-driver', DRIVER, '--attachable', 'snet']);
    await docker(m, ['network', 'create', '--driver', 'overlay', '--attachable', 'dover']);
    // The VIP's one backend, on node2; the client containers on node1 (and Docker's server container on node2).
    await docker(m, ['service', 'create', '--detach', '--no-resolve-image', '--name', 'ssvc', '--replicas', '1', '--constraint', `node.hostname==${n2.name}`, '--network', 'snet', IMAGE, 'sleep', '1d']);
    await waitServiceRunning(m, 'ssvc', 1, 120_000);
    await docker(n1, ['run', '-d', '--name', 'sw-client', '--network', 'snet', IMAGE, 'sleep', '1d']);
    await docker(n1, ['run', '-d', '--name', 'ov-client', '--network', 'dover', IMAGE, 'sleep', '1d']);
    await docker(n2, ['run', '-d', '--name', 'ov-server', '--network', 'dover', IMAGE, 'sleep', '1d']);
    const [task] = await serviceContainers([n2], 'ssvc', 'snet');
    if (!task?.address) throw new Error('no ssvc task with an address on node2');
    const vip = (JSON.parse((await docker(m, ['service', 'inspect', 'ssvc'])).stdout)[0].Endpoint.VirtualIPs as { Addr: string }[])[0]!.Addr.split('/')[0]!;
    const swClient: Endpoint = { netns: await containerNetns(n1, 'sw-client'), address: await containerAddress(n1, 'sw-client', 'snet') };
    const swServer: Endpoint = { netns: await containerNetns(n2, task.id), address: task.address };
    const ovServer: Endpoint = { netns: await containerNetns(n2, 'ov-server'), address: await containerAddress(n2, 'ov-server', 'dover') };
    const all: Path[] = [
      { key: 'underlay', label: 'underlay (node1 → node2)', client: { netns: `/run/netns/${n1.netns}`, address: n1.address }, server: { netns: `/run/netns/${n2.netns}`, address: n2.address }, target: n2.address },
      { key: 'docker', label: "Docker's overlay", client: { netns: await containerNetns(n1, 'ov-client'), address: '' }, server: ovServer, target: ovServer.address },
      { key: 'swarmnet', label: 'swarmnet (task address)', client: swClient, server: swServer, target: swServer.address },
      { key: 'vip', label: 'swarmnet (service VIP)', client: swClient, server: swServer, target: vip },
    ];
    const paths = all.filter((p) => WANTED.includes(p.key));
    // The MTU of the interface a client uses towards its target (read with ip: /sys would be this namespace's).
    const mtu = async (p?: Path): Promise<string> => {
      if (!p) return '-';
      const dev = (JSON.parse((await inNs(p.client.netns, 'ip', ['-j', 'route', 'get', p.target])).stdout) as { dev: string }[])[0]?.dev ?? '';
      return String((JSON.parse((await inNs(p.client.netns, 'ip', ['-j', 'link', 'show', 'dev', dev])).stdout) as { mtu: number }[])[0]?.mtu);
    };
    log(`\noverlay side by side: ${started.toISOString()}; machine ${cpus().length} × ${cpus()[0]?.model ?? '?'}, kernel ${kernel}; Docker ${n1.engine} on both nodes`);
    log(`  MTU: Docker's overlay ${await mtu(all[1])}, swarmnet ${await mtu(all[2])}, underlay ${await mtu(all[0])}; VIP ${vip} → ${swServer.address}; iperf3 ${SECONDS} s (1 and ${PARALLEL} streams), ping-pong ${RR_SECONDS} s, ${ROUNDS} rounds interleaved`);
    const data = await measure(paths);
    log(`\n${started.toISOString()} · ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}) · kernel ${kernel} · Docker ${n1.engine}`);
    table('TCP throughput, one stream', 'Gbit/s', paths, data, 'tcp1', true);
    table(`TCP throughput, ${PARALLEL} streams`, 'Gbit/s', paths, data, 'tcpN', true);
    table('CPU per Gbit/s, one stream (all CPUs busy, % of one core per Gbit/s)', '%/Gbit/s', paths, data, 'cpu1', false);
    table(`CPU per Gbit/s, ${PARALLEL} streams`, '%/Gbit/s', paths, data, 'cpuN', false);
    table('TCP request/response (1 byte, one connection): round trips per second', 'round trips/s', paths, data, 'rps', true);
    table('TCP request/response: p50 round trip', 'µs', paths, data, 'p50', false);
    table('TCP request/response: p99 round trip', 'µs', paths, data, 'p99', false);
  } finally {
    if (KEEP) log('\nsandbox left up (SWARMNET_BENCH_KEEP=1): npm run sandbox -- down');
    else await down({ log: () => {} });
  }
}

main().catch((e: Error) => {
  console.error(`bench overlay-swarm: ${e.stack ?? e.message}`);
  process.exit(1);
});
