/**
 * swarmnet's resolver in containers, side by side with Docker's embedded resolver on a Docker overlay network, in one
 * sandbox swarm (node1 Docker 28 manager, node2 Docker 20.10 worker; the runtime wrapper + hook installed):
 *   1. container start: `docker run --rm` on the swarmnet network and on the default bridge, through the wrapper + hook
 *      (the nodes' default runtime) vs plain runc (`--runtime runc`), interleaved;
 *   2. DNS from inside a container (the product path): dnsperf in a container on the swarmnet network against
 *      127.0.0.11 (swarmnet) vs in a container on an overlay network (Docker's resolver): saturated qps and p99 at a
 *      fixed rate;
 *   3. freshness: the same scale events on a service of each network; every node's observer container polls
 *      `tasks.<service>` every 10 ms; the delay from a task's container start (or stop) to each observer's answer;
 *   4. leaks: CYCLES container start/stop cycles on the swarmnet network: the plugin's open fds and RSS before and
 *      after;
 *   5. crash: lookups every 20 ms from a container while its node's plugin is SIGKILLed: how long DNS is gone.
 * Run (root): npm run bench -- dns-inject  [SWARMNET_BENCH_STARTS=50 SWARMNET_BENCH_EVENTS=10 SWARMNET_BENCH_CYCLES=1000
 *   SWARMNET_BENCH_PARTS=12345]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { run } from '../../common/exec.js';
import type { SandboxNode } from '../../scripts/lab/sandbox.mjs';
import { lab, systemToolsOnly } from '../lab.js';

const { docker } = await lab<typeof import('../../scripts/lab/dockerd.mjs')>('dockerd.mjs');
const { down, LAYOUT, up } = await lab<typeof import('../../scripts/lab/sandbox.mjs')>('sandbox.mjs');
const { changeService, pluginPid, waitServiceRunning } = await lab<typeof import('../../scripts/lab/services.mjs')>('services.mjs');
systemToolsOnly();

const STARTS = Number(process.env.SWARMNET_BENCH_STARTS ?? 50);
const EVENTS = Number(process.env.SWARMNET_BENCH_EVENTS ?? 10);
const CYCLES = Number(process.env.SWARMNET_BENCH_CYCLES ?? 1000);
/** Which parts to run (digits 1–5). */
const PARTS = process.env.SWARMNET_BENCH_PARTS ?? '12345';
const DRIVER = LAYOUT.networkDriver;
const IMAGE = 'swarmnet/busybox';
const log = (m: string): void => console.log(m);
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function pidOf(node: SandboxNode, container: string): Promise<number> {
  return JSON.parse((await docker(node, ['inspect', container])).stdout)[0].State.Pid as number;
}
const inNetns = (pid: number, cmd: string, args: string[], timeoutMs = 120_000) => run('nsenter', [`--net=/proc/${pid}/ns/net`, cmd, ...args], { timeoutMs });

// ---- 1. container start
async function startTimes(node: SandboxNode): Promise<void> {
  const time = async (args: string[]): Promise<number> => {
    const t0 = performance.now();
    await docker(node, ['run', '--rm', ...args, IMAGE, 'true']);
    return performance.now() - t0;
  };
  for (const [what, net] of [['swarmnet network', 'bnet'], ['default bridge', 'bridge']] as const) {
    const wrapped: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      wrapped.push(await time(['--network', net]));
      plain.push(await time(['--network', net, '--runtime', 'runc']));
    }
    const m = (xs: number[]): string => `median ${pct(xs, 0.5).toFixed(0)} ms, p95 ${pct(xs, 0.95).toFixed(0)} ms`;
    log(`  ${node.name} (Docker ${node.engine}) ${what.padEnd(16)} runc ${m(plain)} | wrapper + hook ${m(wrapped)} | added: median ${(pct(wrapped, 0.5) - pct(plain, 0.5)).toFixed(1)} ms, p95 ${(pct(wrapped, 0.95) - pct(plain, 0.95)).toFixed(1)} ms (n=${STARTS} each)`);
  }
}

// ---- 2. DNS from inside a container
async function dnsperf(pid: number, queries: string): Promise<{ qps: number; p99: number; lost: number }> {
  const sat = await inNetns(pid, 'dnsperf', ['-s', '127.0.0.11', '-d', queries, '-c', '4', '-l', '10']);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(sat.stdout)?.[1] ?? NaN);
  const fixed = await inNetns(pid, 'dnsperf', ['-s', '127.0.0.11', '-d', queries, '-c', '1', '-Q', '2000', '-l', '10', '-v']);
  const lat = [...fixed.stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(fixed.stdout)?.[1] ?? 0);
  return { qps, p99: pct([...lat, ...Array<number>(lost).fill(Infinity)], 0.99), lost };
}

// ---- 3. freshness
/** For the scripts below: `name` (their first argument) and `q(id)`, an A query for it. */
const QUERY = `
const dgram = require('node:dgram');
const name = process.argv[1];
const q = (id) => Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
  ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
`;

/** Polls `name` (A) on 127.0.0.11 every 10 ms from the namespace it runs in; prints "<ms since epoch> <ips>" on change. */
const POLLER = `${QUERY}
function skip(b, o) { for (;;) { const l = b[o]; if (l === 0) return o + 1; if ((l & 0xc0) === 0xc0) return o + 2; o += l + 1; } }
function ips(b) {
  const an = b.readUInt16BE(6); let o = skip(b, 12) + 4; const out = [];
  for (let i = 0; i < an; i++) { o = skip(b, o); const type = b.readUInt16BE(o); const len = b.readUInt16BE(o + 8); if (type === 1) out.push(b.subarray(o + 10, o + 14).join('.')); o += 10 + len; }
  return out.sort().join(',');
}
const s = dgram.createSocket('udp4');
let last; let id = 1;
s.on('message', (m) => { try { const v = ips(m); if (v !== last) { last = v; console.log(Date.now() + ' ' + v); } } catch {} });
s.bind(0, () => setInterval(() => { id = (id + 1) & 0xffff; s.send(q(id), 53, '127.0.0.11'); }, 10));`;

interface Observer { node: SandboxNode; child: ChildProcess; seen: { at: number; ips: Set<string> }[] }

async function observe(node: SandboxNode, container: string, name: string): Promise<Observer> {
  const pid = await pidOf(node, container);
  const child = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, '-e', POLLER, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  const o: Observer = { node, child, seen: [] };
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const [at, ips] = l.split(' ');
    o.seen.push({ at: Number(at), ips: new Set((ips ?? '').split(',').filter(Boolean)) });
  });
  return o;
}

/** The service's running tasks: container id → { node, ip, started/finished (ms) }. */
async function tasks(nodes: SandboxNode[], service: string, network: string): Promise<Map<string, { node: SandboxNode; ip: string; startedAt: number }>> {
  const out = new Map<string, { node: SandboxNode; ip: string; startedAt: number }>();
  for (const node of nodes) {
    const ids = (await docker(node, ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).stdout.trim().split('\n').filter(Boolean);
    for (const id of ids) {
      const c = JSON.parse((await docker(node, ['inspect', id])).stdout)[0];
      out.set(c.Id, { node, ip: c.NetworkSettings.Networks[network].IPAddress, startedAt: Date.parse(c.State.StartedAt) });
    }
  }
  return out;
}

/** When each observer first saw `ip` present (or absent) at or after `since`; Infinity (and a line) when never. */
function delays(observers: Observer[], ip: string, present: boolean, since: number): number[] {
  return observers.map((o) => {
    const hit = o.seen.find((s) => s.ips.has(ip) === present && s.at >= since);
    if (!hit) log(`    ${o.node.name}: ${ip} never ${present ? 'appeared' : 'went'} after ${new Date(since).toISOString()}; answers seen: ${o.seen.slice(-4).map((s) => `${new Date(s.at).toISOString()} [${[...s.ips].join(' ')}]`).join('; ')}`);
    return hit ? hit.at - since : Infinity;
  });
}

async function freshness(nodes: SandboxNode[], manager: SandboxNode): Promise<void> {
  const result: Record<string, { up: number[]; down: number[] }> = { swarmnet: { up: [], down: [] }, docker: { up: [], down: [] } };
  const kinds = [
    { who: 'swarmnet', service: 'bsvc', network: 'bnet', observer: 'obs-sw' },
    { who: 'docker', service: 'osvc', network: 'bover', observer: 'obs-ov' },
  ] as const;
  const observers = new Map<string, Observer[]>();
  for (const k of kinds) observers.set(k.who, await Promise.all(nodes.map((n) => observe(n, k.observer, `tasks.${k.service}`))));
  try {
    await sleep(1000);
    for (let e = 0; e < EVENTS * 2; e++) {
      const upward = e % 2 === 0;
      await Promise.all(kinds.map(async (k) => {
        const before = await tasks(nodes, k.service, k.network);
        const scaledAt = Date.now();
        await changeService(manager, ['scale', '--detach', `${k.service}=${before.size + (upward ? 1 : -1)}`]);
        let after = before;
        for (let i = 0; i < 300 && after.size === before.size; i++) { await sleep(100); after = await tasks(nodes, k.service, k.network); }
        if (upward) {
          const [, t] = [...after].find(([id]) => !before.has(id)) ?? [];
          if (!t) throw new Error(`${k.service}: no new task`);
          await sleep(3000);
          result[k.who]!.up.push(...delays(observers.get(k.who)!, t.ip, true, t.startedAt));
        } else {
          const [id, t] = [...before].find(([x]) => !after.has(x)) ?? [];
          if (!t || !id) throw new Error(`${k.service}: no task went`);
          await sleep(3000);
          // From the scale command: Docker takes a task out of DNS, waits 2 s, then stops it.
          result[k.who]!.down.push(...delays(observers.get(k.who)!, t.ip, false, scaledAt));
        }
      }));
    }
  } finally {
    for (const list of observers.values()) for (const o of list) o.child.kill('SIGKILL');
  }
  const f = (xs: number[]): string => `p50 ${pct(xs, 0.5).toFixed(0)} ms, p99 ${pct(xs, 0.99).toFixed(0)} ms`;
  for (const k of kinds) {
    const { up, down } = result[k.who]!;
    log(`  ${k.who.padEnd(8)} (${k.who === 'swarmnet' ? 'etcd watch' : 'Docker gossip'}): new task, from its container start: ${f(up)}; task scaled away, from the scale command: ${f(down)}; all: ${f([...up, ...down])} (${up.length + down.length} observations)`);
  }
}

// ---- 5. crash
/** Asks `name` every 20 ms for `ms`; prints one JSON line: each query's send time and whether it was answered. */
const PROBE = `${QUERY}
const ms = Number(process.argv[2]);
const sent = new Map(); const s = dgram.createSocket('udp4'); let id = 0;
s.on('message', (m) => { const e = sent.get(m.readUInt16BE(0)); if (e && (m[3] & 15) === 0 && m.readUInt16BE(6) > 0) e.ok = true; });
s.on('error', () => {});
s.bind(0, () => {
  const t = setInterval(() => { id = (id + 1) & 0xffff; sent.set(id, { at: Date.now(), ok: false }); s.send(q(id), 53, '127.0.0.11', () => {}); }, 20);
  setTimeout(() => { clearInterval(t); setTimeout(() => { console.log(JSON.stringify([...sent.values()])); process.exit(0); }, 1000); }, ms);
});`;

async function crash(node: SandboxNode): Promise<void> {
  const pid = await pidOf(node, 'obs-sw');
  const probe = run('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, '-e', PROBE, 'tasks.bsvc', '30000'], { timeoutMs: 60_000 });
  await sleep(3000);
  const killedAt = Date.now();
  process.kill(pluginPid(node), 'SIGKILL');
  const results = JSON.parse((await probe).stdout) as { at: number; ok: boolean }[];
  const failed = results.filter((r) => !r.ok);
  const after = failed.map((r) => r.at - killedAt);
  log(`  ${node.name} (Docker ${node.engine}): ${results.length} lookups 20 ms apart, the plugin SIGKILLed 3 s in: ${failed.length} failed` +
    (failed.length ? `, from ${Math.min(...after)} ms to ${Math.max(...after)} ms after the kill` : '') + `; plugin back as pid ${pluginPid(node)}`);
}

// ---- 4. leaks
function processState(pid: number): { fds: number; rssMb: number } {
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssMb: rss };
}

async function leaks(node: SandboxNode): Promise<void> {
  const pid = pluginPid(node);
  const before = processState(pid);
  const t0 = Date.now();
  let done = 0;
  const worker = async (): Promise<void> => { while (done < CYCLES) { done++; await docker(node, ['run', '--rm', '--network', 'bnet', IMAGE, 'true']); } };
  await Promise.all([worker(), worker(), worker(), worker()]);
  await sleep(15_000); // leave/cleanup and the plugin's periodic check
  const after = processState(pid);
  log(`  ${node.name} (Docker ${node.engine}): ${CYCLES} cycles in ${((Date.now() - t0) / 1000).toFixed(0)} s; plugin fds ${before.fds} → ${after.fds}, RSS ${before.rssMb.toFixed(0)} → ${after.rssMb.toFixed(0)} MB`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (the sandbox)');
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${readFileSync('/proc/version', 'utf8').split(' ').slice(0, 3).join(' ')}; ${new Date().toISOString()}`);
  const sb = await up({ nodes: 2, managers: 1, docker: '28,20.10', log: (m: string) => log(`  sandbox: ${m}`) });
  try {
    const m = sb.manager;
    await docker(m, ['network', 'create', '--driver', DRIVER, '--ipam-driver', DRIVER, '--attachable', 'bnet']);
    await docker(m, ['network', 'create', '--driver', 'overlay', '--attachable', 'bover']);
    for (const [svc, net] of [['bsvc', 'bnet'], ['osvc', 'bover']]) {
      await docker(m, ['service', 'create', '--detach', '--no-resolve-image', '--name', svc!, '--replicas', '2', '--stop-grace-period', '1s', '--network', net!, IMAGE, 'sleep', '1d']);
      await waitServiceRunning(m, svc!, 2, 120_000);
    }
    for (const n of sb.nodes) {
      await docker(n, ['run', '-d', '--name', 'obs-sw', '--network', 'bnet', IMAGE, 'sleep', '1d']);
      await docker(n, ['run', '-d', '--name', 'obs-ov', '--network', 'bover', IMAGE, 'sleep', '1d']);
    }

    if (PARTS.includes('1')) log(`\n1. container start (docker run --rm ${IMAGE} true), interleaved`);
    if (PARTS.includes('1')) for (const n of sb.nodes) await startTimes(n);

    if (PARTS.includes('2')) log('\n2. DNS from inside a container against 127.0.0.11 (dnsperf, 10 s each, interleaved, 2 rounds)');
    const file = (svc: string): string => {
      const f = `/tmp/snbench-queries-${svc}`;
      writeFileSync(f, [`${svc} A`, `tasks.${svc} A`, `${svc} AAAA`, `tasks.${svc} AAAA`].join('\n') + '\n');
      return f;
    };
    const sw = await pidOf(m, 'obs-sw');
    const ov = await pidOf(m, 'obs-ov');
    for (let round = 1; round <= 2 && PARTS.includes('2'); round++) {
      const a = await dnsperf(ov, file('osvc'));
      const b = await dnsperf(sw, file('bsvc'));
      log(`  round ${round} (node1, Docker ${m.engine}): Docker's resolver (overlay) ${a.qps.toFixed(0)} qps, p99 ${a.p99.toFixed(2)} ms at 2,000 qps | swarmnet ${b.qps.toFixed(0)} qps, p99 ${b.p99.toFixed(2)} ms`);
    }

    if (PARTS.includes('3')) log(`\n3. freshness of tasks.<service> on every node after a scale event (${EVENTS} up + ${EVENTS} down, both services at once)`);
    if (PARTS.includes('3')) await freshness(sb.nodes, m);

    if (PARTS.includes('4')) log(`\n4. leaks: ${CYCLES} docker run --rm on the swarmnet network per node (4 at a time)`);
    if (PARTS.includes('4')) for (const n of sb.nodes) await leaks(n);

    if (PARTS.includes('5')) log('\n5. plugin crash: lookups from a container on the swarmnet network while its node\'s plugin is killed (Docker restarts it)');
    if (PARTS.includes('5')) for (const n of sb.nodes) await crash(n);
  } finally {
    await down({ log: () => {} });
  }
}

main().catch((e: Error) => {
  console.error(`bench dns-inject: ${e.stack ?? e.message}`);
  process.exit(1);
});
