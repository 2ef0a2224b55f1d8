/**
 * Control plane at scale (issue "Control plane that scales to 1,000 nodes"): N swarmnet daemons as plain processes,
 * each in its own network namespace "host" on one etcd 3.4, driven through their plugin sockets with Docker's call
 * sequence (as test/daemon/runtime.test.ts does for two hosts). Per N, with fresh etcd data and fresh daemons:
 *   burst: once the manager answers (the others may still be starting, as after a swarm-wide restart), all N nodes
 *          join one network at once (local RequestPool, gateway, CreateNetwork, each retried on failure like a
 *          rescheduled task) → seconds until every host routes every other host subnet over its VXLAN device, etcd
 *          Txn per host lease, slowest call, calls that failed or outlived the plugin's 25 s deadline;
 *   idle:  after 15 s to settle, etcd bytes sent to clients, Range calls and keep-alive messages per second over
 *          three reconcile periods (30 s) with nothing changing;
 *   event: one more host (started with the others, idle until now) joins → etcd bytes and Range reads from just
 *          before until all N+1 are converged and etcd is back at its idle rate, over whole reconcile periods, minus
 *          the idle rate × that time;
 *   RSS of the N+1 daemons (node processes) and of etcd.
 * etcd's own Prometheus counters (GET /metrics on its client URL) are the meter.
 * Run (root): npm run --silent build && node dist/bench/scale/run.js [--nodes 5,20,50] [--warm] [--baseline DIST]
 *   --warm: the burst starts only when every daemon is initialised, plus 15 s (their start-up work out of the way).
 *   --baseline: also run the daemons of another build (its dist/ directory, e.g. a checkout of an older commit),
 *     alternating with this one per N, so both are measured side by side in one run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { get, request } from 'node:http';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatIp, maskOf, parseIp } from '../../common/cidr.js';
import { run, toolEnv } from '../../common/exec.js';
import { waitFor as retryFor } from '../../test/helpers/wait.js';

/** Retries fn; ms is a guard for a busy machine, not an expected time. */
const waitFor = <T>(fn: () => Promise<T>, ms: number, what: string): Promise<T> => retryFor(fn, ms, what, 250);

const TAG = 'snsc';
/** Everything on disk (sockets, state, etcd data, logs, the PID list a later run cleans up with). */
const DIR = join(tmpdir(), `${TAG}-scale`);
const PIDS = join(DIR, 'pids');
const MAIN = new URL('../../plugin/main.js', import.meta.url).pathname;
const BRIDGE = `${TAG}-br`;
const BRIDGE_IP = '10.95.255.254';
const ETCD = `http://${BRIDGE_IP}:23985`;
const NET = 'snscbench0000000000000001'; // a Docker network id: 25 characters
const HOST_PREFIX = 24;
/** The daemons' reconcile interval (RECONCILE_INTERVAL_SECONDS, the default): each re-reads etcd that often. */
const PERIOD_S = 10;
/** The plugin's deadline of one call (plugin/protocol/server.ts). */
const DEADLINE_S = 25;
const GATEWAY = { RequestAddressType: 'com.docker.network.gateway' };

/** --warm: the burst waits until every daemon is initialised, plus 15 s; by default it starts once the manager answers. */
const WARM = process.argv.includes('--warm');
const base = process.argv.indexOf('--baseline');
const BUILDS: { label: string; main: string }[] = [
  ...(base > 0 ? [{ label: 'baseline', main: join(process.argv[base + 1] ?? '', 'plugin', 'main.js') }] : []),
  { label: 'this build', main: MAIN },
];
/** The daemon entry point of the scenario running now. */
let daemonMain = MAIN;
const arg = process.argv.indexOf('--nodes');
const SIZES = (arg > 0 ? process.argv[arg + 1] ?? '' : '5,20,50').split(',').map(Number);
if (SIZES.some((n) => !Number.isInteger(n) || n < 2 || n > 250)) throw new Error('--nodes: comma-separated node counts from 2 to 250');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now() / 1000;
const procs: ChildProcess[] = [];

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}
const ipTry = (...args: string[]): void => void spawnSync('ip', args, { stdio: 'ignore' });

interface Host { i: number; ns: string; dev: string; peer: string; ip: string; sock: string; log: string; proc?: ChildProcess }
const makeHost = (i: number): Host => ({
  i, ns: `${TAG}-h${i}`, dev: `${TAG}-u${i}`, peer: `${TAG}-p${i}`, ip: formatIp(parseIp('10.95.0.1') + i), sock: join(DIR, `h${i}`, 'plugin.sock'), log: join(DIR, `h${i}.log`),
});

/** Starts a process with its output in a file; its PID goes to the list a later run's cleanup reads. */
function start(cmd: string, args: string[], log: string, env: NodeJS.ProcessEnv = toolEnv()): ChildProcess {
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  procs.push(child);
  appendFileSync(PIDS, `${child.pid}\n`);
  return child;
}

/** A process of ours: its command line or environment names DIR (a recycled PID of someone else's does not). */
function ours(pid: number): boolean {
  try {
    return [`/proc/${pid}/cmdline`, `/proc/${pid}/environ`].some((f) => readFileSync(f, 'latin1').includes(DIR));
  } catch {
    return false;
  }
}

/** Removes what this bench creates: its processes, namespaces, links and directory (also a crashed run's). */
function cleanup(): void {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  if (existsSync(PIDS)) for (const pid of readFileSync(PIDS, 'utf8').split('\n').filter(Boolean).map(Number)) if (ours(pid)) process.kill(pid, 'SIGKILL');
  const links = JSON.parse(spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }).stdout || '[]') as { ifname: string }[];
  for (const l of links) if (l.ifname.startsWith(`${TAG}-`)) ipTry('link', 'del', l.ifname); // a veth pair goes at once
  for (const ns of existsSync('/run/netns') ? readdirSync('/run/netns') : []) if (ns.startsWith(`${TAG}-`)) ipTry('netns', 'del', ns);
  rmSync(DIR, { recursive: true, force: true });
}

/** The underlay: a bridge in the root namespace with etcd on its address, one veth per host namespace. */
function underlay(hosts: Host[]): void {
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${BRIDGE_IP}/16`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
  for (const h of hosts) {
    ip('netns', 'add', h.ns);
    ip('link', 'add', h.peer, 'type', 'veth', 'peer', 'name', h.dev, 'netns', h.ns);
    ip('link', 'set', h.peer, 'master', BRIDGE, 'up');
    ip('-n', h.ns, 'addr', 'add', `${h.ip}/16`, 'dev', h.dev);
    ip('-n', h.ns, 'link', 'set', h.dev, 'up');
    ip('-n', h.ns, 'link', 'set', 'lo', 'up');
  }
}

function startEtcd(n: number): ChildProcess {
  const peer = `http://${BRIDGE_IP}:23986`;
  return start('/usr/bin/etcd', ['--name', TAG, '--data-dir', join(DIR, `etcd-${n}`), '--listen-client-urls', ETCD, '--advertise-client-urls', ETCD,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${TAG}=${peer}`], join(DIR, 'etcd.log'));
}

function startDaemon(h: Host): void {
  mkdirSync(join(DIR, `h${h.i}`)); // the plugin socket's directory also holds the hook socket: one per daemon
  h.proc = start('ip', ['netns', 'exec', h.ns, process.execPath, daemonMain], h.log, {
    ...toolEnv(), PLUGIN_SOCKET: h.sock, NODE_NAME: `${TAG}-${h.i}`, ETCD_ENDPOINTS: ETCD, ETCD_PREFIX: `/${TAG}`,
    DOCKER_SOCKET: join(DIR, 'no-docker.sock'), STATE_DIR: join(DIR, `state-${h.i}`), METRICS_ADDRESS: '', UNDERLAY_INTERFACE: h.dev,
    AVAILABLE_SUBNETS: '10.140.0.0/16', NETWORK_SUBNET_SIZE: '16', DEFAULT_HOST_SUBNET_SIZE: String(HOST_PREFIX),
    RECONCILE_INTERVAL_SECONDS: String(PERIOD_S), LOG_LEVEL: 'warn',
  });
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
    }).on('error', reject).on('timeout', function (this: { destroy(e: Error): void }) { this.destroy(new Error(`${url}: timeout`)); });
  });
}

/** The etcd counters we read: bytes sent to clients, unary calls by method, stream messages. */
interface Counters { t: number; sent: number; calls: Record<string, number>; keepAlives: number; watchMsgs: number }
async function counters(): Promise<Counters> {
  const c: Counters = { t: now(), sent: 0, calls: {}, keepAlives: 0, watchMsgs: 0 };
  for (const line of (await httpGet(`${ETCD}/metrics`)).split('\n')) {
    const m = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const [, name, labels = '', value] = m;
    const method = /grpc_method="(\w+)"/.exec(labels)?.[1] ?? '';
    if (name === 'etcd_network_client_grpc_sent_bytes_total') c.sent = Number(value);
    else if (name === 'grpc_server_handled_total') c.calls[method] = (c.calls[method] ?? 0) + Number(value);
    else if (name === 'grpc_server_msg_sent_total' && method === 'LeaseKeepAlive') c.keepAlives = Number(value);
    else if (name === 'grpc_server_msg_sent_total' && method === 'Watch') c.watchMsgs = Number(value);
  }
  return c;
}
const delta = (a: Counters, b: Counters) => ({
  s: b.t - a.t, sent: b.sent - a.sent, range: (b.calls.Range ?? 0) - (a.calls.Range ?? 0), txn: (b.calls.Txn ?? 0) - (a.calls.Txn ?? 0),
  keepAlives: b.keepAlives - a.keepAlives, watchMsgs: b.watchMsgs - a.watchMsgs,
});

interface Reply { status: number; body: Record<string, unknown> }
/** POSTs to a plugin endpoint over its unix socket, as Docker does. */
function call(h: Host, path: string, body: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: h.sock, path, method: 'POST', timeout: 120_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> }));
    });
    req.on('error', reject).on('timeout', () => req.destroy(new Error(`${path}: no reply in 120 s`)));
    req.end(JSON.stringify(body));
  });
}
async function ok(h: Host, path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await call(h, path, body);
  if (r.status !== 200) throw new Error(`host ${h.i} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}


interface CallStat { host: number; path: string; status: number; s: number; err?: string }

/** A task node's calls for the network, each retried until it succeeds (as Docker reschedules a failed task). */
async function joinNetwork(h: Host, net: { cidr: string; gateway: string; options: unknown }, stats: CallStat[], subnets: Map<number, string>): Promise<void> {
  const timed = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    for (let attempt = 0; ; attempt++) {
      const t0 = now();
      const r = await call(h, path, body).catch((e: Error) => ({ status: 0, body: { Err: e.message } }));
      stats.push({ host: h.i, path, status: r.status, s: now() - t0, err: r.status === 200 ? undefined : String(r.body.Err) });
      if (r.status === 200) return r.body;
      if (attempt === 20) throw new Error(`host ${h.i} ${path}: ${r.status} ${String(r.body.Err)} (21 attempts)`);
      await sleep(1000);
    }
  };
  const local = await timed('/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetLocal', Pool: net.cidr, SubPool: '', Options: {}, V6: false });
  const gw = await timed('/IpamDriver.RequestAddress', { PoolID: local.PoolID, Address: net.gateway.split('/')[0], Options: GATEWAY });
  subnets.set(h.i, `${formatIp((parseIp(String(gw.Address).split('/')[0]!) & maskOf(HOST_PREFIX)) >>> 0)}/${HOST_PREFIX}`);
  await timed('/NetworkDriver.CreateNetwork', { NetworkID: NET, Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': net.options }, IPv4Data: [{ AddressSpace: 'l', Gateway: gw.Address, Pool: net.cidr }], IPv6Data: [] });
}

/** A host is converged when its namespace routes every other member's host subnet over its VXLAN device. */
async function routed(h: Host, others: string[]): Promise<boolean> {
  const r = await run('ip', ['-n', h.ns, '-j', 'route', 'show'], { allowFailure: true, timeoutMs: 60_000 });
  const vx = new Set((JSON.parse(r.stdout || '[]') as { dst: string; dev?: string }[]).filter((x) => x.dev?.startsWith('swvx')).map((x) => x.dst));
  return others.every((s) => vx.has(s));
}

/** Seconds from t0 until every member is converged (polled; NaN after the guard). */
async function converge(members: Host[], subnets: Map<number, string>, t0: number, gaveUp = (): boolean => false, guardS = 600): Promise<number> {
  const pending = new Set(members);
  while (pending.size) {
    if (now() - t0 > guardS || gaveUp()) return NaN;
    if (members.every((h) => subnets.has(h.i))) {
      const all = members.map((h) => subnets.get(h.i)!);
      await Promise.all([...pending].map(async (h) => { if (await routed(h, all.filter((s) => s !== subnets.get(h.i)))) pending.delete(h); }));
      if (!pending.size) break;
    }
    await sleep(250);
  }
  return now() - t0;
}

/** VmRSS of the node (or etcd) process: `ip netns exec` execs in place, but look at its children too. */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const read = (p: string): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  try {
    if (!/\/(ip)$/.test(readlinkSync(`/proc/${pid}/exe`))) return read(String(pid));
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids.length ? read(kids[0]!) : NaN;
  } catch {
    return NaN;
  }
}

/** Problems the daemons logged (warn and above) and daemons that exited, for the report; the warnings about the
 * absent Docker socket (expected here) are only counted. */
function daemonTrouble(hosts: Host[]): string[] {
  const seen = new Map<string, number>();
  let noDocker = 0;
  for (const h of hosts) {
    if (h.proc && (h.proc.exitCode !== null || h.proc.signalCode !== null)) seen.set(`daemon exited (code ${h.proc.exitCode})`, (seen.get(`daemon exited (code ${h.proc.exitCode})`) ?? 0) + 1);
    for (const line of existsSync(h.log) ? readFileSync(h.log, 'utf8').split('\n').filter(Boolean) : []) {
      if (line.includes(join(DIR, 'no-docker.sock'))) { noDocker++; continue; }
      let key = line.slice(0, 160);
      try {
        const j = JSON.parse(line) as { level: number; msg?: string; err?: unknown; path?: string };
        key = `${j.level >= 50 ? 'error' : 'warn'}: ${j.msg ?? ''}${j.path ? ` ${j.path}` : ''}${j.err ? ` (${String(j.err).replace(/\d+/g, '#').slice(0, 120)})` : ''}`;
      } catch { /* not JSON: stderr */ }
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
  }
  return [...[...seen].sort((a, b) => b[1] - a[1]).map(([k, c]) => `${c}× ${k}`), `${noDocker} warnings about the absent Docker socket (expected)`];
}

/** "0", or e.g. "3 (2× 504, 1× 503)": calls that failed or outlived the plugin's deadline, by status. */
function failedSummary(bad: CallStat[]): string {
  const by = new Map<number, number>();
  for (const s of bad) by.set(s.status, (by.get(s.status) ?? 0) + 1);
  return bad.length ? `${bad.length} (${[...by].map(([st, c]) => `${c}× ${st === 200 ? `>${DEADLINE_S} s` : st || 'no reply'}`).join(', ')})` : '0';
}

interface Row {
  build: string; n: number; eventBytes: number; eventRange: number; idleBytes: number; idleRange: number; idleKeepAlives: number;
  converge: number; txnPerLease: number; slowest: number; failed: string; rssSum: number; rssMax: number; etcdRss: number;
}

async function scenario(n: number): Promise<Row> {
  cleanup();
  mkdirSync(DIR, { recursive: true });
  const hosts = Array.from({ length: n + 1 }, (_, i) => makeHost(i));
  try {
    return await measure(n, hosts);
  } catch (e) {
    for (const line of daemonTrouble(hosts).slice(0, 8)) console.log(`  daemon log: ${line}`);
    throw e;
  } finally {
    cleanup();
  }
}

async function measure(n: number, hosts: Host[]): Promise<Row> {
  const members = hosts.slice(0, n);
  const extra = hosts[n]!;
  underlay(hosts);
  const etcd = startEtcd(n);
  await waitFor(() => httpGet(`${ETCD}/health`), 30_000, 'etcd');
  let t = now();
  hosts.forEach(startDaemon);
  for (const h of hosts) await waitFor(() => ok(h, '/Plugin.Activate', null), 120_000, `daemon ${h.i} listening`);
  const mgr = hosts[0]!;
  const pool = await waitFor(() => ok(mgr, '/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false }), 300_000, 'manager RequestPool');
  if (WARM) {
    // Every daemon initialised (a call that needs the runtime answers something else than 503), then their start-up work.
    await Promise.all(hosts.map((h) => waitFor(async () => {
      const r = await call(h, '/NetworkDriver.EndpointOperInfo', { NetworkID: NET, EndpointID: 'none' });
      if (r.status === 503) throw new Error(String(r.body.Err));
    }, 300_000, `daemon ${h.i} ready`)));
    await sleep(15_000);
  }
  const gw = await ok(mgr, '/IpamDriver.RequestAddress', { PoolID: pool.PoolID, Address: '', Options: GATEWAY });
  const alloc = await ok(mgr, '/NetworkDriver.AllocateNetwork', { NetworkID: NET, Options: {}, IPv4Data: [{ AddressSpace: '', Gateway: gw.Address, Pool: pool.Pool }], IPv6Data: null });
  const net = { cidr: String(pool.Pool), gateway: String(gw.Address), options: alloc.Options ?? {} };
  console.log(`N=${n}: ${n + 1} daemons started, manager ready${WARM ? ', all ready + 15 s' : ''} in ${(now() - t).toFixed(1)} s; network ${net.cidr}`);

  // Burst: all N task nodes at once.
  const stats: CallStat[] = [];
  const subnets = new Map<number, string>();
  const b0 = await counters();
  t = now();
  let joinFailed = false;
  const joins = Promise.all(members.map((h) => joinNetwork(h, net, stats, subnets)));
  joins.catch(() => (joinFailed = true)); // awaited below
  const convergeS = await converge(members, subnets, t, () => joinFailed);
  await joins;
  const burst = delta(b0, await counters());
  const slow = stats.filter((s) => s.status !== 200 || s.s > DEADLINE_S);
  const slowest = stats.reduce((a, s) => (s.s > a.s ? s : a));
  console.log(`  burst: converged ${convergeS.toFixed(1)} s, ${burst.txn} Txn, ${burst.range} Range, ${(burst.sent / 1024).toFixed(0)} KiB sent; slowest ${slowest.path} ${slowest.s.toFixed(1)} s`);
  for (const path of [...new Set(stats.map((s) => s.path))]) {
    const xs = stats.filter((s) => s.path === path);
    const sorted = xs.map((s) => s.s).sort((a, b) => a - b);
    const bad = xs.filter((s) => s.status !== 200).map((s) => s.status);
    console.log(`    ${path}: ${xs.length} calls, p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} s, max ${sorted[sorted.length - 1]!.toFixed(1)} s${bad.length ? `, failed: ${bad.join(' ')}` : ''}`);
  }
  for (const s of slow.slice(0, 10)) console.log(`    host ${s.host} ${s.path}: ${s.status} after ${s.s.toFixed(1)} s${s.err ? ` (${s.err.slice(0, 120)})` : ''}`);

  // Settle, then idle over three reconcile periods.
  await sleep(15_000);
  const i0 = await counters();
  await sleep(3 * PERIOD_S * 1000);
  const idle = delta(i0, await counters());
  const rate = { sent: idle.sent / idle.s, range: idle.range / idle.s };
  console.log(`  idle ${idle.s.toFixed(0)} s: ${(rate.sent / 1000).toFixed(1)} KB/s sent, ${rate.range.toFixed(1)} Range/s, ${(idle.keepAlives / idle.s).toFixed(1)} keep-alive msgs/s, ${(idle.watchMsgs / idle.s).toFixed(1)} watch msgs/s`);

  // One host-lease event: the extra host joins; settled = all converged and 5 s at no more than 1.5 × the idle rate.
  const e0 = await counters();
  t = now();
  const eventStats: CallStat[] = [];
  await joinNetwork(extra, net, eventStats, subnets);
  const eventConverge = await converge(hosts, subnets, t);
  const window: Counters[] = [await counters()];
  while (now() - t < 120) {
    await sleep(1000);
    window.push(await counters());
    const w = window.length > 5 ? delta(window[window.length - 6]!, window[window.length - 1]!) : undefined;
    if (w && w.range <= rate.range * w.s * 1.5 + 2 && w.sent <= rate.sent * w.s * 1.5 + 2048) break;
  }
  // A whole number of reconcile periods: each daemon's periodic reads fall into the window as often as into the idle
  // rate (over a shorter window, whether a daemon's next periodic read lands in it or not is noise of ±N reads).
  await sleep((Math.ceil((now() - e0.t) / PERIOD_S) * PERIOD_S - (now() - e0.t)) * 1000);
  const ev = delta(e0, await counters());
  const eventBytes = ev.sent - rate.sent * ev.s;
  const eventRange = ev.range - rate.range * ev.s;
  console.log(`  event: converged ${eventConverge.toFixed(1)} s, window ${ev.s.toFixed(1)} s: ${(ev.sent / 1024).toFixed(1)} KiB, ${ev.range} Range raw; minus idle: ${(eventBytes / 1024).toFixed(1)} KiB, ${eventRange.toFixed(0)} Range; failed calls ${failedSummary(eventStats.filter((s) => s.status !== 200))}`);

  const rss = hosts.map((h) => rssMiB(h.proc?.pid));
  for (const line of daemonTrouble(hosts).slice(0, 8)) console.log(`  daemon log: ${line}`);
  const row: Row = {
    build: '', n, eventBytes, eventRange, idleBytes: rate.sent, idleRange: rate.range, idleKeepAlives: idle.keepAlives / idle.s,
    converge: convergeS, txnPerLease: burst.txn / n, slowest: slowest.s, failed: failedSummary(slow),
    rssSum: rss.reduce((a, b) => a + b, 0), rssMax: Math.max(...rss), etcdRss: rssMiB(etcd.pid),
  };
  return row;
}

const HEADER = ['build', 'N', 'bytes / host-lease event', 'range reads / event', 'idle bytes/s', 'idle range/s', 'idle keep-alives/s', 'burst: converge s', 'txn per lease', 'slowest call s', 'failed calls', 'daemon RSS sum / max MiB', 'etcd RSS MiB'];
const cells = (r: Row): string[] => [
  r.build, String(r.n), `${(r.eventBytes / 1024).toFixed(1)} KiB`, r.eventRange.toFixed(0), `${(r.idleBytes / 1000).toFixed(1)} KB/s`, r.idleRange.toFixed(1), r.idleKeepAlives.toFixed(1),
  r.converge.toFixed(1), r.txnPerLease.toFixed(1), r.slowest.toFixed(1), r.failed, `${r.rssSum.toFixed(0)} / ${r.rssMax.toFixed(0)}`, r.etcdRss.toFixed(0),
];
const mdRow = (xs: string[]): string => `| ${xs.join(' | ')} |`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  for (const b of BUILDS) if (!existsSync(b.main)) throw new Error(`needs ${b.main} (npm run build)`);
  if (!existsSync('/usr/bin/etcd')) throw new Error('needs /usr/bin/etcd');
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { console.error(`bench scale: ${sig}, cleaning up`); cleanup(); process.exit(130); });
  console.log(`machine: nproc ${cpus().length}, kernel ${release()}, node ${process.version}; ${new Date().toISOString()}`);
  console.log(`swarmnet daemons on one etcd (${spawnSync('/usr/bin/etcd', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]}), /16 network, /24 host subnets, reconcile ${PERIOD_S} s; node counts ${SIZES.join(', ')}`);
  console.log('(N task nodes in the burst; one more host for the event; RSS over all N+1 daemons; idle bytes include keep-alive replies)');
  const rows: Row[] = [];
  try {
    for (const n of SIZES) {
      for (const b of BUILDS) {
        daemonMain = b.main;
        if (BUILDS.length > 1) console.log(`${b.label}: ${b.main}`);
        const r = { ...(await scenario(n)), build: b.label };
        rows.push(r);
        console.log(mdRow(cells(r)));
      }
    }
  } finally {
    cleanup();
  }
  console.log(`\n${mdRow(HEADER)}\n${mdRow(HEADER.map(() => '---'))}`);
  for (const r of rows) console.log(mdRow(cells(r)));
}

const started = Date.now();
main().then(
  () => console.log(`\nbench scale: ${((Date.now() - started) / 60_000).toFixed(1)} min`),
  (e: Error) => {
    console.error(`bench scale: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);
