/**
 * `npm run bench:dns`: our resolver against Docker's embedded resolver, side by side, same client, same query mix.
 *
 * Setup (all in namespaces this bench makes, removed at the end):
 *  - netns sndns-d: a Debian dockerd (scripts/lab/dockerd.mjs; data /var/lib/sndns, socket /run/sndns.sock) and the
 *    stand-in upstream (bench/dns/upstream.ts) on 10.253.0.53:53 (an address on that netns' loopback), which is the
 *    dockerd's only nameserver, so Docker forwards misses there;
 *  - user-defined bridge network sndns-net, containers target and client (busybox-static imported as an image);
 *  - our resolver (`swarmnet dns serve`, the built CLI, 1 process) inside the client container's netns bound to
 *    127.0.0.11:53 itself, with a table equivalent to Docker's (from docker inspect), forwarding misses to the same
 *    upstream; dns/takeover.ts's NOTRACK table makes queries from 127.0.2.0/24 skip conntrack and with it Docker's
 *    DNAT — the path the product uses;
 *  - like for like, a second instance on 127.0.0.13:53 reached from 127.0.4.0/24 through an nft DNAT (priority -150,
 *    before Docker's), as Docker's resolver is reached through Docker's DNAT.
 *  dnsperf runs in the client netns (nsenter --net) against 127.0.0.11:53 for all: from 127.0.1.x it reaches
 *  Docker's resolver, from 127.0.2.x ours, from 127.0.4.x ours behind the DNAT (a fresh source address per run also
 *  keeps conntrack entries of one run from steering the next).
 * Measurements per round (2 rounds, interleaved): saturated qps with dnsperf -c 4 -l 10; latency at a fixed 2,000 qps
 * (dnsperf -Q 2000 -c 1 -v: every query's latency, percentiles computed here, lost queries count as infinitely
 * slow); server CPU per query from /proc/<pid>/stat utime+stime over the saturated run (dockerd's pid for Docker).
 * Last line: `dns qps ratio swarmnet/docker = <x.xx>` (mean saturated qps, ours on the product's path / Docker's).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from '../../common/exec.js';
import { lab, REPO, runBench, systemToolsOnly } from '../lab.js';

const PREFIX = 'sndns';
const NETNS = `${PREFIX}-d`;
const DATA = `/var/lib/${PREFIX}`;
const SOCKET = `/run/${PREFIX}.sock`;
const NETWORK = `${PREFIX}-net`;
const UPSTREAM = '10.253.0.53';
/** Where the like-for-like instance listens, reached through a DNAT as Docker's resolver is. */
const DNAT_LISTEN = '127.0.0.13';
const NFT_TABLE = `${PREFIX}-bench`;
const TAKEOVER_TABLE = `${PREFIX}-takeover`;
const PROBE_NAME = `${PREFIX}-probe`;
const PROBE_IP = '10.253.9.9';
const SECONDS = Number(process.env.DNS_BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.DNS_BENCH_ROUNDS ?? 2);
/**
 * Our resolver's processes. One: with batched UDP a single process answers more here than two (the client and the
 * stand-in upstream need the other core; docs/performance.md has the A/B).
 */
const WORKERS = Number(process.env.DNS_BENCH_WORKERS ?? 1);

interface LabNode { name: string; pid: number; startTime: number; socket: string; stop: () => Promise<void> }
interface Lab {
  startDockerd(o: { name: string; netns: string; dataRoot: string; socket: string; nameserver?: string; daemonConfig?: object }): Promise<LabNode>;
  docker(socket: string, args: string[], opts?: { allowFailure?: boolean }): Promise<{ code: number; stdout: string; stderr: string }>;
  createNetns(name: string): Promise<void>;
  deleteNetns(name: string): Promise<void>;
  buildBusyboxTar(dir: string): Promise<string>;
  importBusybox(node: LabNode, tar: string): Promise<void>;
  IMAGE: string;
}

async function loadLab(): Promise<Lab> {
  const d = await lab<Partial<Lab>>('dockerd.mjs');
  const b = await lab<Partial<Lab>>('busybox-image.mjs');
  return { ...d, ...b } as Lab;
}

systemToolsOnly();

const cleanups: (() => Promise<unknown>)[] = [];
const log = (s: string): void => { process.stdout.write(`${s}\n`); };

function statFields(pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime (fields 14, 15) of pid and its direct children (our resolver's workers). */
function cpuTicks(pid: number): number {
  let ticks = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const f = statFields(p);
      if (Number(p) === pid || Number(f[1]) === pid) ticks += Number(f[11]) + Number(f[12]);
    } catch { /* exited meanwhile */ }
  }
  return ticks;
}

/** Starts a long-running child and resolves when its stdout shows `ready`. */
function startChild(cmd: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} ${args.join(' ')}: not ready after 20 s: ${out}`)), 20_000);
    const onData = (d: Buffer): void => { out += d.toString(); if (ready.test(out)) { clearTimeout(timer); resolve(c); } };
    c.stdout!.on('data', onData);
    c.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    c.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${cmd} exited (${code}): ${out}`)); });
  });
}

function stopChild(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) { resolve(); return; }
    c.removeAllListeners('exit');
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
    setTimeout(() => { c.kill('SIGKILL'); resolve(); }, 3000).unref();
  });
}

interface PerfResult { qps: number; completed: number; lost: number; avgMs: number; cpuUsPerQuery: number; codes: string }

async function inNetns(pid: number, cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; allowFailure?: boolean } = {}) {
  return run('nsenter', [`--net=/proc/${pid}/ns/net`, cmd, ...args], { timeoutMs: 60_000, ...opts });
}

/** Pids of a process and its direct children. */
function family(pid: number): number[] {
  const out = [pid];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try { if (Number(statFields(p)[1]) === pid) out.push(Number(p)); } catch { /* gone */ }
  }
  return out;
}

/** Pins every thread of the server (and its workers) to the given CPU list. */
async function pin(pid: number, cpuList: string): Promise<void> {
  for (const p of family(pid)) await run('taskset', ['-a', '-p', '-c', cpuList, String(p)], { allowFailure: true });
}

/**
 * dnsperf -c 4 for SECONDS. pinned: server on CPU 1, dnsperf on CPU 0 (per-core efficiency, the setup of
 * libraries.md §4.2); otherwise nothing is pinned and the server may use every core, as Docker's resolver does.
 */
async function saturated(clientPid: number, source: string, queries: string, serverPid: number, pinned = false): Promise<PerfResult> {
  if (pinned) await pin(serverPid, '1');
  const before = cpuTicks(serverPid);
  const perf = ['dnsperf', '-s', '127.0.0.11', '-a', source, '-d', queries, '-c', '4', '-l', String(SECONDS)];
  const r = await inNetns(clientPid, pinned ? 'taskset' : perf[0]!, pinned ? ['-c', '0', ...perf] : perf.slice(1), { timeoutMs: (SECONDS + 30) * 1000 })
    .finally(() => (pinned ? pin(serverPid, `0-${cpus().length - 1}`) : undefined));
  const ticks = cpuTicks(serverPid) - before;
  if (ticks <= 0) throw new Error(`server pid ${serverPid} used no CPU during the run from ${source}: the queries did not reach it`);
  const hz = Number((await run('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
  const num = (re: RegExp): number => Number(re.exec(r.stdout)?.[1] ?? NaN);
  const completed = num(/Queries completed:\s+(\d+)/);
  if ((ticks / hz) * 1e6 < 1 * (completed || 0)) {
    throw new Error(`server pid ${serverPid} used under 1 µs of CPU per query during the run from ${source}: the queries went elsewhere`);
  }
  return {
    qps: num(/Queries per second:\s+([\d.]+)/), completed, lost: num(/Queries lost:\s+(\d+)/),
    avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    cpuUsPerQuery: (ticks / hz) * 1e6 / completed,
    codes: /Response codes:\s+(.*)/.exec(r.stdout)?.[1]?.trim() ?? '?',
  };
}

interface LatencyResult { sent: number; lost: number; p50: number; p99: number; p999: number; max: number; avg: number }

async function fixedRate(clientPid: number, source: string, queries: string): Promise<LatencyResult> {
  const r = await inNetns(clientPid, 'dnsperf', ['-s', '127.0.0.11', '-a', source, '-d', queries, '-c', '1', '-Q', '2000', '-l', String(SECONDS), '-v'], { timeoutMs: (SECONDS + 30) * 1000 });
  const lat = [...r.stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(r.stdout)?.[1] ?? 0);
  const all = [...lat, ...Array<number>(lost).fill(Infinity)].sort((a, b) => a - b);
  const pct = (p: number): number => all[Math.min(all.length - 1, Math.floor(all.length * p))] ?? NaN;
  return { sent: all.length, lost, p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), max: lat.reduce((a, b) => Math.max(a, b), 0), avg: lat.reduce((a, b) => a + b, 0) / (lat.length || 1) };
}

/** rcode + sorted answer data for one query, as dig sees it; used to check both resolvers answer the same. */
async function digAnswer(clientPid: number, source: string, name: string, type: string): Promise<string> {
  const r = await inNetns(clientPid, 'dig', ['-b', source, '@127.0.0.11', '+tries=2', '+time=2', '+noall', '+comments', '+answer', name, type], { allowFailure: true });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? 'no-answer';
  const rdata = r.stdout.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/).slice(3).join(' ')).sort();
  return `${status} ${rdata.join(',')}`;
}

async function main(): Promise<void> {
  for (const tool of ['dnsperf', 'dockerd', 'nft', 'dig', 'nsenter', 'busybox']) {
    if ((await run('which', [tool], { allowFailure: true })).code !== 0) throw new Error(`${tool} is missing (npm run bench installs it from scripts/lab/prereqs.mjs, as root)`);
  }
  if (process.getuid?.() !== 0) throw new Error('needs root (namespaces, dockerd)');
  if (!existsSync(join(REPO, 'dist/plugin/cli.js'))) throw new Error('dist/ missing: run through `npm run bench:dns`');
  if (existsSync(`/run/netns/${NETNS}`)) throw new Error(`netns ${NETNS} exists: a previous run did not clean up (ip netns del ${NETNS}; rm -rf ${DATA})`);
  const lab = await loadLab();
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  // --- namespaces, upstream, dockerd --------------------------------------------------------------------------
  await lab.createNetns(NETNS);
  cleanups.push(() => lab.deleteNetns(NETNS));
  await run('ip', ['-n', NETNS, 'addr', 'add', `${UPSTREAM}/32`, 'dev', 'lo']);
  const upstream = await startChild('nsenter', [`--net=/run/netns/${NETNS}`, process.execPath, join(REPO, 'dist/bench/dns/upstream.js'), UPSTREAM, '53'], /ready/);
  cleanups.push(() => stopChild(upstream));
  mkdirSync(DATA, { recursive: true });
  cleanups.push(async () => rmSync(DATA, { recursive: true, force: true }));
  const node = await lab.startDockerd({ name: PREFIX, netns: NETNS, dataRoot: join(DATA, 'docker'), socket: SOCKET, nameserver: UPSTREAM });
  cleanups.push(() => node.stop());
  const docker = async (...args: string[]): Promise<string> => (await lab.docker(SOCKET, args)).stdout.trim();
  const version = await docker('version', '--format', '{{.Server.Version}}');
  await lab.importBusybox(node, await lab.buildBusyboxTar(DATA));
  await docker('network', 'create', NETWORK);
  const ids: Record<string, string> = {};
  for (const name of ['target', 'client']) {
    ids[name] = await docker('run', '-d', '--name', name, '--network', NETWORK, '--network-alias', `${name}-alias`, `${lab.IMAGE}:latest`, 'sleep', '3600');
  }
  cleanups.push(() => lab.docker(SOCKET, ['rm', '-f', 'target', 'client'], { allowFailure: true }));

  // --- a table equivalent to Docker's, from inspect --------------------------------------------------------------
  interface Inspect { Id: string; Name: string; State: { Pid: number }; NetworkSettings: { Networks: Record<string, { NetworkID: string; IPAddress: string; Aliases: string[] | null }> } }
  const inspected = JSON.parse(await docker('inspect', 'target', 'client')) as Inspect[];
  const net = (c: Inspect) => c.NetworkSettings.Networks[NETWORK]!;
  const table = {
    networks: [{ id: net(inspected[0]!).NetworkID, name: NETWORK }],
    containers: inspected.map((c) => ({
      id: c.Id, name: c.Name.replace(/^\//, ''),
      endpoints: [{ networkId: net(c).NetworkID, ip: net(c).IPAddress, aliases: net(c).Aliases ?? [] }],
    })).concat([{ // known only to our table (not in the query mix): proves a query reached our resolver
      id: 'probe', name: PROBE_NAME, endpoints: [{ networkId: net(inspected[0]!).NetworkID, ip: PROBE_IP, aliases: [] }],
    }]),
  };
  const tableFile = join(DATA, 'table.json');
  writeFileSync(tableFile, JSON.stringify(table, null, 2));
  const target = inspected.find((c) => c.Name === '/target')!;
  const client = inspected.find((c) => c.Name === '/client')!;
  const clientPid = client.State.Pid;
  const targetIp = net(target).IPAddress;
  const ptr = `${targetIp.split('.').reverse().join('.')}.in-addr.arpa`;

  // Query mix: 10 local A/AAAA (names, alias, short id, name.network, NODATA), 2 PTR, 3 forwarded misses (1 NXDOMAIN).
  const mix: [string, string][] = [
    ['target', 'A'], ['client', 'A'], ['target', 'A'], ['target-alias', 'A'], [target.Id.slice(0, 12), 'A'],
    [`target.${NETWORK}`, 'A'], ['client-alias', 'A'], ['target', 'AAAA'], ['target', 'A'], ['client', 'A'],
    [ptr, 'PTR'], [ptr, 'PTR'],
    ['ext1.example.com', 'A'], ['ext2.example.com', 'A'], ['nxname.example.com', 'A'],
  ];
  const queries = join(DATA, 'queries.txt');
  writeFileSync(queries, mix.map(([n, t]) => `${n} ${t}\n`).join(''));

  // --- our resolver in the client's netns, on 127.0.0.11:53 itself, and the takeover ------------------------------
  // The product's path (dns/takeover.ts): our sockets are bound to 127.0.0.11:53 in the container's netns and a
  // NOTRACK table makes that traffic skip conntrack, so Docker's DNAT never applies. Limited here to sources
  // 127.0.2.0/24 so that Docker's resolver stays reachable from 127.0.1.x for the side-by-side runs.
  const serveArgs = (listen: string): string[] => [`--net=/proc/${clientPid}/ns/net`, process.execPath, join(REPO, 'dist/plugin/cli.js'),
    'dns', 'serve', '--table', tableFile, '--listen', `${listen}:53`, '--view', client.Id, '--upstream', UPSTREAM,
    '--workers', String(WORKERS)];
  const ours = await startChild('nsenter', serveArgs('127.0.0.11'), /listening/);
  cleanups.push(() => stopChild(ours));
  // Like for like: a second instance reached through a DNAT in front of Docker's, as Docker's own resolver is.
  const oursDnat = await startChild('nsenter', serveArgs(DNAT_LISTEN), /listening/);
  cleanups.push(() => stopChild(oursDnat));
  const takeover = await import(pathToFileURL(join(REPO, 'dist/dns/takeover.js')).href) as typeof import('../../dns/takeover.js');
  const netnsPath = `/proc/${clientPid}/ns/net`;
  // Seen here: a table added in the first seconds after the container started was gone a little later. So: wait
  // for Docker's own DNAT rule, and before every run of ours check the tables and that a probe name only our table
  // has answers through 127.0.0.11 (re-adding the tables once if they vanished).
  const deadline = Date.now() + 90_000;
  while (!(await inNetns(clientPid, 'nft', ['list', 'table', 'ip', 'nat'], { allowFailure: true })).stdout.includes('dnat to 127.0.0.11:')) {
    if (Date.now() > deadline) {
      const r = await inNetns(clientPid, 'nft', ['list', 'table', 'ip', 'nat'], { allowFailure: true });
      throw new Error(`Docker's DNS rules did not appear in the client netns: ${r.code} ${r.stdout} ${r.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const addTables = async (): Promise<void> => {
    await takeover.applyTakeover(netnsPath, { table: TAKEOVER_TABLE, sources: ['127.0.2.0/24'] });
    await inNetns(clientPid, 'nft', ['-f', '-'], { input:
      `table ip ${NFT_TABLE} {\n chain out {\n  type nat hook output priority -150;\n` +
      `  ip saddr 127.0.4.0/24 ip daddr 127.0.0.11 udp dport 53 counter dnat to ${DNAT_LISTEN}:53\n` +
      `  ip saddr 127.0.4.0/24 ip daddr 127.0.0.11 tcp dport 53 counter dnat to ${DNAT_LISTEN}:53\n }\n}\n` });
  };
  cleanups.push(() => takeover.removeTakeover(netnsPath, { table: TAKEOVER_TABLE }));
  await addTables();
  const ensureOurs = async (range: '127.0.2' | '127.0.4'): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const probe = await inNetns(clientPid, 'dig', ['-b', `${range}.254`, '@127.0.0.11', '+short', '+tries=2', '+time=1', PROBE_NAME, 'A'], { allowFailure: true });
      if (probe.stdout.trim() === PROBE_IP) return;
      if (attempt > 0) throw new Error(`queries from ${range}.0/24 to 127.0.0.11 do not reach our resolver (probe answered "${probe.stdout.trim()}")`);
      const tables = (await inNetns(clientPid, 'nft', ['list', 'tables'])).stdout;
      log(`takeover check failed (tables: ${tables.trim().replace(/\n/g, ', ')}); re-adding ours`);
      await inNetns(clientPid, 'nft', ['delete', 'table', 'ip', NFT_TABLE], { allowFailure: true });
      await addTables();
    }
  };
  await ensureOurs('127.0.2');
  await ensureOurs('127.0.4');

  if (process.env.DNS_BENCH_PAUSE) { log(`paused: client pid ${clientPid}, ours ${ours.pid}, ours behind DNAT ${oursDnat.pid}`); await new Promise((r) => setTimeout(r, Number(process.env.DNS_BENCH_PAUSE) * 1000)); }
  // --- same answers? -------------------------------------------------------------------------------------------
  let mismatches = 0;
  for (const [n, t] of new Map(mix.map((q) => [q.join(' '), q])).values()) {
    const d = await digAnswer(clientPid, '127.0.1.250', n, t);
    for (const from of ['127.0.2.250', '127.0.4.250']) {
      const o = await digAnswer(clientPid, from, n, t);
      if (d !== o) { mismatches++; log(`answer differs for ${n} ${t}: docker "${d}" ours (from ${from}) "${o}"`); }
    }
  }
  log(`answers compared for ${new Set(mix.map((q) => q.join(' '))).size} distinct queries: ${mismatches ? `${mismatches} differ` : 'identical (rcode and records)'}`);

  // --- runs ------------------------------------------------------------------------------------------------------
  type Who = 'docker' | 'ours' | 'ours-dnat';
  const sat: Record<Who, PerfResult[]> = { docker: [], ours: [], 'ours-dnat': [] };
  const satPinned = { docker: [] as PerfResult[], ours: [] as PerfResult[] };
  const pinnable = cpus().length >= 2 && (await run('which', ['taskset'], { allowFailure: true })).code === 0;
  const fixed = { docker: [] as LatencyResult[], ours: [] as LatencyResult[] };
  const range: Record<Who, string> = { docker: '127.0.1', ours: '127.0.2', 'ours-dnat': '127.0.4' };
  const pid: Record<Who, number> = { docker: node.pid, ours: ours.pid!, 'ours-dnat': oursDnat.pid! };
  const ready = async (who: Who): Promise<void> => { if (who !== 'docker') await ensureOurs(range[who] as '127.0.2' | '127.0.4'); };
  let src = 1;
  for (let round = 1; round <= ROUNDS; round++) {
    for (const who of ['docker', 'ours', 'ours-dnat'] as const) {
      await ready(who);
      const s = await saturated(clientPid, `${range[who]}.${src++}`, queries, pid[who]);
      sat[who].push(s);
      log(`round ${round} ${who.padEnd(9)} saturated: ${s.qps.toFixed(0)} qps, avg ${s.avgMs.toFixed(2)} ms, lost ${s.lost}, CPU ${s.cpuUsPerQuery.toFixed(1)} µs/query, ${s.codes}`);
    }
    for (const who of pinnable ? (['docker', 'ours'] as const) : []) {
      await ready(who);
      const s = await saturated(clientPid, `${range[who]}.${src++}`, queries, pid[who], true);
      satPinned[who].push(s);
      log(`round ${round} ${who.padEnd(9)} pinned (server CPU 1, dnsperf CPU 0): ${s.qps.toFixed(0)} qps, avg ${s.avgMs.toFixed(2)} ms, lost ${s.lost}, CPU ${s.cpuUsPerQuery.toFixed(1)} µs/query`);
    }
    for (const who of ['docker', 'ours'] as const) {
      await ready(who);
      const f = await fixedRate(clientPid, `${range[who]}.${src++}`, queries);
      fixed[who].push(f);
      log(`round ${round} ${who.padEnd(9)} 2000 qps: p50 ${f.p50.toFixed(3)} ms, p99 ${f.p99.toFixed(3)} ms, p99.9 ${f.p999.toFixed(3)} ms, max ${f.max.toFixed(1)} ms, avg ${f.avg.toFixed(3)} ms, lost ${f.lost}/${f.sent}`);
    }
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const qD = mean(sat.docker.map((s) => s.qps));
  const qO = mean(sat.ours.map((s) => s.qps));
  log('');
  log(`summary (${ROUNDS} rounds × ${SECONDS} s, Docker ${version}, dnsperf in the client container's netns, same 15-query mix):`);
  log(`  saturated qps (dnsperf -c 4):   docker ${qD.toFixed(0)}   swarmnet ${qO.toFixed(0)}`);
  const qN = mean(sat['ours-dnat'].map((s) => s.qps));
  log(`  like for like, ours behind a DNAT as Docker's is: swarmnet ${qN.toFixed(0)} qps (ratio ${(qN / qD).toFixed(2)})`);
  if (pinnable) {
    const pD = mean(satPinned.docker.map((s) => s.qps));
    const pO = mean(satPinned.ours.map((s) => s.qps));
    log(`  pinned, server on 1 core (qps): docker ${pD.toFixed(0)}   swarmnet ${pO.toFixed(0)}   (ratio ${(pO / pD).toFixed(2)})`);
  }
  log(`  p99 at 2,000 qps (ms):          docker ${mean(fixed.docker.map((f) => f.p99)).toFixed(3)}   swarmnet ${mean(fixed.ours.map((f) => f.p99)).toFixed(3)}`);
  log(`  p50 at 2,000 qps (ms):          docker ${mean(fixed.docker.map((f) => f.p50)).toFixed(3)}   swarmnet ${mean(fixed.ours.map((f) => f.p50)).toFixed(3)}`);
  log(`  server CPU per query (µs):      docker ${mean(sat.docker.map((s) => s.cpuUsPerQuery)).toFixed(1)}   swarmnet ${mean(sat.ours.map((s) => s.cpuUsPerQuery)).toFixed(1)}`);
  log(`dns qps ratio swarmnet/docker = ${(qO / qD).toFixed(2)}`);
}

await runBench('dns', main, cleanups);
