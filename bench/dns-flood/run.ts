/**
 * `npm run bench -- dns-flood`: does a container flooding its resolver slow down another container's DNS?
 *
 * Setup: two network namespaces (snfl-bench-a, snfl-bench-b, removed at the end), the resolver in one process with
 * one listener per namespace on 127.0.0.11:53, as the plugin serves containers (bench/dns-flood/server.ts).
 * Per round (DNS_FLOOD_ROUNDS, default 2), interleaved, each run DNS_FLOOD_SECONDS (default 10) long:
 *  - B alone: dnsperf in B at a steady DNS_FLOOD_QPS (default 1,000) qps, one client, every query's latency kept
 *    (-v); lost queries count as infinitely slow;
 *  - the same while A floods over UDP: dnsperf in A, 4 clients, 500 queries outstanding, no rate limit;
 *  - the same while A floods over TCP: dnsperf -m tcp in A, 16 connections, 500 queries outstanding;
 *  - both floods again with A's dnsperf confined to CPU 0 (taskset), as a container limited to one core
 *    (--cpuset-cpus); the resolver and B are never pinned.
 * The flood starts a second before B's run and ends a second after it. Besides B's latency: A's answered qps, the
 * resolver's CPU, its event loop's busy share, the share of time its thread waited for a CPU while runnable
 * (/proc/<pid>/task/<pid>/schedstat) and how late a 1 ms timer ran in it. Target (issue 14, item 9): B's p99 with a
 * flood ≤ 2 × B's p99 alone. DNS_FLOOD_PER_TURN sets both per-turn budgets of the resolver, DNS_FLOOD_NICE a nice
 * value for the resolver and B's client (A/B runs: how much is the loop's share, how much CPU contention).
 * The resolver runs with the product's per-container query cap (DNS_MAX_QPS_PER_CONTAINER's default);
 * DNS_FLOOD_MAX_QPS sets another, 0 none.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../common/exec.js';
import { DEFAULT_DNS_MAX_QPS } from '../../plugin/config.js';
import { REPO, runBench, systemToolsOnly } from '../lab.js';

const NS = { a: 'snfl-bench-a', b: 'snfl-bench-b' } as const;
const SECONDS = Number(process.env.DNS_FLOOD_SECONDS ?? 10);
const ROUNDS = Number(process.env.DNS_FLOOD_ROUNDS ?? 2);
const QPS = Number(process.env.DNS_FLOOD_QPS ?? 1000);
/** A nice value (e.g. -10) for the resolver's event-loop thread and B's dnsperf: CPU priority over the flooder. */
const NICE = process.env.DNS_FLOOD_NICE;
/** A's rate limit (dnsperf -Q) instead of as fast as it can: what a per-container cap would leave the resolver. */
const A_QPS = process.env.DNS_FLOOD_A_QPS;
/**
 * DNS_FLOOD_CGROUPS=1: the resolver, A's dnsperf and B's dnsperf each in a CPU cgroup of its own with equal weight,
 * as Docker places every container and the managed plugin (cgroup v1 cpu.shares 1024, v2 cpu.weight 100).
 */
const CGROUPS = process.env.DNS_FLOOD_CGROUPS === '1';
const CG_ROOT = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/cpu';
const cgroupOf = (who: 'resolver' | 'a' | 'b'): string | undefined => (CGROUPS ? join(CG_ROOT, `snfl-bench-${who}`) : undefined);

/** Runs argv, in a cgroup when given (the child is moved there at once; its threads start after): stdout, exit code. */
function runIn(cgroup: string | undefined, cmd: string, args: readonly string[], timeoutMs: number): Promise<{ stdout: string; code: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (cgroup && c.pid) writeFileSync(join(cgroup, 'cgroup.procs'), String(c.pid));
    let stdout = '';
    c.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('exit', (code) => { clearTimeout(timer); resolve({ stdout, code: code ?? 1 }); });
  });
}

systemToolsOnly();
const log = (s: string): void => { process.stdout.write(`${s}\n`); };
const cleanups: (() => Promise<unknown>)[] = [];

/** utime + stime of pid, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // CLK_TCK is 100 on Linux
}

/** Nanoseconds the resolver's main thread spent running and waiting for a CPU while runnable (/proc schedstat). */
function sched(pid: number): { run: number; wait: number } {
  const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  return { run: run ?? NaN, wait: wait ?? NaN };
}

interface Latency { sent: number; lost: number; p50: number; p99: number; p999: number; codes: string }
interface Flood { qps: number; lost: number }
/** What the resolver saw over a run (bench/dns-flood/server.ts, "mark"). */
interface Loop { elu: number; delayP99Ms: number; delayMaxMs: number; queries: number }

/** The resolver's loop figures since the previous mark. */
function mark(server: ChildProcess): Promise<Loop> {
  return new Promise((resolve) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /^mark (.*)$/m.exec(out);
      if (m) { server.stdout!.off('data', onData); resolve(JSON.parse(m[1]!) as Loop); }
    };
    server.stdout!.on('data', onData);
    server.stdin!.write('mark\n');
  });
}

/** B at a steady rate: every query's latency from dnsperf -v (ms); lost ones count as infinitely slow. */
async function victim(queries: string): Promise<Latency> {
  const r = await runIn(cgroupOf('b'), NICE ? 'nice' : 'ip', [...(NICE ? ['-n', NICE, 'ip'] : []), 'netns', 'exec', NS.b, 'dnsperf', '-s', '127.0.0.11', '-d', queries, '-c', '1', '-Q', String(QPS), '-l', String(SECONDS), '-t', '2', '-v'],
    (SECONDS + 30) * 1000);
  const lat = [...r.stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(r.stdout)?.[1] ?? 0);
  const all = [...lat, ...Array<number>(lost).fill(Infinity)].sort((x, y) => x - y);
  const pct = (p: number): number => all[Math.min(all.length - 1, Math.floor(all.length * p))] ?? NaN;
  return { sent: all.length, lost, p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), codes: /Response codes:\s+(.*)/.exec(r.stdout)?.[1]?.trim() ?? '?' };
}

/** A as fast as it can, over proto, for the victim's run plus a margin on both sides; on CPU 0 only if confined. */
function flood(proto: 'udp' | 'tcp', confined: boolean, queries: string): Promise<Flood> {
  const args = ['netns', 'exec', NS.a, 'dnsperf', '-s', '127.0.0.11', '-d', queries, '-l', String(SECONDS + 2), '-q', '500', '-t', '2',
    ...(proto === 'tcp' ? ['-m', 'tcp', '-c', '16'] : ['-c', '4']), ...(A_QPS ? ['-Q', A_QPS] : [])];
  const cmd = confined ? ['taskset', ['-c', '0', 'ip', ...args]] as const : ['ip', args] as const;
  return runIn(cgroupOf('a'), cmd[0], cmd[1], (SECONDS + 30) * 1000).then((r) => ({
    qps: Number(/Queries per second:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN),
    lost: Number(/Queries lost:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN),
  }));
}

function startServer(): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [join(REPO, 'dist/bench/dns-flood/server.js'), `/run/netns/${NS.a}`, `/run/netns/${NS.b}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`resolver not ready after 20 s: ${out}`)), 20_000);
    c.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ready')) { clearTimeout(timer); resolve(c); } });
    c.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    c.on('exit', (code) => { clearTimeout(timer); reject(new Error(`resolver exited (${code}): ${out}`)); });
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  for (const tool of ['dnsperf', 'ip']) {
    if ((await run('which', [tool], { allowFailure: true })).code !== 0) throw new Error(`${tool} is missing (npm run bench installs it, as root)`);
  }
  const kernel = readFileSync('/proc/version', 'utf8').split(' ').slice(0, 3).join(' ');
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${kernel}; node ${process.version}`);
  for (const ns of Object.values(NS)) {
    await run('ip', ['netns', 'add', ns]);
    cleanups.push(() => run('ip', ['netns', 'del', ns], { allowFailure: true }));
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const dir = mkdtempSync(join(tmpdir(), 'snfl-bench-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const queriesA = join(dir, 'a.txt');
  const queriesB = join(dir, 'b.txt');
  // A: local names of several kinds (A, AAAA NODATA, alias, name.network, PTR); B: the same target name throughout.
  writeFileSync(queriesA, ['target A', 'victim A', 'target-alias A', 'target.front A', 'target AAAA', '9.0.0.10.in-addr.arpa PTR'].map((l) => `${l}\n`).join(''));
  writeFileSync(queriesB, 'target A\ntarget-alias A\n');
  const server = await startServer();
  cleanups.push(() => new Promise<void>((resolve) => {
    server.once('exit', () => resolve());
    server.kill('SIGTERM');
    setTimeout(() => { server.kill('SIGKILL'); resolve(); }, 3000).unref();
  }));
  server.removeAllListeners('exit');
  if (CGROUPS) {
    for (const who of ['resolver', 'a', 'b'] as const) {
      const cg = cgroupOf(who)!;
      mkdirSync(cg, { recursive: true });
      writeFileSync(join(cg, CG_ROOT.endsWith('/cpu') ? 'cpu.shares' : 'cpu.weight'), CG_ROOT.endsWith('/cpu') ? '1024' : '100');
      // Removed last (cleanups run in reverse), once the processes in it are gone.
      cleanups.unshift(async () => { try { rmdirSync(cg); } catch { /* still busy: the kernel keeps an empty group */ } });
    }
    writeFileSync(join(cgroupOf('resolver')!, 'cgroup.procs'), String(server.pid));
    log(`cgroups: the resolver, A and B each in its own (${CG_ROOT}, equal weight), as Docker places containers and the plugin`);
  }
  if (NICE) await run('renice', ['-n', NICE, '-p', String(server.pid)]);
  log(`resolver pid ${server.pid}${NICE ? `, nice ${NICE} (and B's dnsperf)` : ''}${process.env.DNS_FLOOD_PER_TURN ? `, per-turn budgets ${process.env.DNS_FLOOD_PER_TURN}` : ''}, per-container query cap ${process.env.DNS_FLOOD_MAX_QPS ?? `${DEFAULT_DNS_MAX_QPS} (the default)`}`);

  const CASES = ['alone', 'udp flood', 'tcp flood', 'udp flood, A on 1 core', 'tcp flood, A on 1 core'] as const;
  type Case = typeof CASES[number];
  interface Run { b: Latency; flood?: Flood; cpu: number; loop: Loop; waited: number }
  const runs = new Map<Case, Run[]>(CASES.map((c) => [c, []]));
  await victim(queriesB); // warm-up (JIT, caches), not counted
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of CASES) {
      const before = cpuSeconds(server.pid!);
      const started = performance.now();
      let a: Promise<Flood> | undefined;
      if (c !== 'alone') {
        a = flood(c.startsWith('udp') ? 'udp' : 'tcp', c.endsWith('1 core'), queriesA);
        await new Promise((r) => setTimeout(r, 1000));
      }
      await mark(server);
      const s0 = sched(server.pid!);
      const t0 = performance.now();
      const b = await victim(queriesB);
      const loop = await mark(server); // over B's run: the flood lasts a second longer
      const waited = (sched(server.pid!).wait - s0.wait) / 1e6 / (performance.now() - t0);
      const f = await a;
      const cpu = (cpuSeconds(server.pid!) - before) / ((performance.now() - started) / 1000);
      runs.get(c)!.push({ b, flood: f, cpu, loop, waited });
      log(`round ${round} ${c.padEnd(22)}: B p50 ${b.p50.toFixed(3)} ms, p99 ${b.p99.toFixed(3)} ms, p99.9 ${b.p999.toFixed(3)} ms, lost ${b.lost}/${b.sent} (${b.codes})` +
        `${f ? `; A answered ${f.qps.toFixed(0)} qps, lost ${f.lost}` : ''}; resolver CPU ${(cpu * 100).toFixed(0)} %, loop busy ${(loop.elu * 100).toFixed(0)} %,` +
        ` waiting for a CPU ${(waited * 100).toFixed(0)} %, 1 ms timer late by p99 ${loop.delayP99Ms.toFixed(2)} / max ${loop.delayMaxMs.toFixed(1)} ms`);
    }
  }
  const mean = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / xs.length;
  const avg = (c: Case, f: (r: Run) => number): number => mean(runs.get(c)!.map(f));
  log('');
  log(`summary (${ROUNDS} rounds × ${SECONDS} s; B at ${QPS} qps over UDP; mean over rounds):`);
  for (const c of CASES) {
    log(`  ${c.padEnd(22)}  B p50 ${avg(c, (r) => r.b.p50).toFixed(3)} ms   p99 ${avg(c, (r) => r.b.p99).toFixed(3)} ms   lost ${runs.get(c)!.reduce((x, r) => x + r.b.lost, 0)}` +
      `${c !== 'alone' ? `   A ${avg(c, (r) => r.flood?.qps ?? NaN).toFixed(0)} qps` : ''}   resolver CPU ${(avg(c, (r) => r.cpu) * 100).toFixed(0)} %` +
      `   loop busy ${(avg(c, (r) => r.loop.elu) * 100).toFixed(0)} %   waiting for a CPU ${(avg(c, (r) => r.waited) * 100).toFixed(0)} %`);
  }
  const ratio = (c: Case): string => (avg(c, (r) => r.b.p99) / avg('alone', (r) => r.b.p99)).toFixed(2);
  log(`dns flood p99 ratio (B with A flooding / B alone; target ≤ 2): udp ${ratio('udp flood')}, tcp ${ratio('tcp flood')}; ` +
    `A on 1 core: udp ${ratio('udp flood, A on 1 core')}, tcp ${ratio('tcp flood, A on 1 core')}`);
}

await runBench('dns-flood', main, cleanups);
