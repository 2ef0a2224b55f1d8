/**
 * Service VIP load balancing (lb/), side by side in one run:
 *   1. scale: the nftables backend at SERVICES services × 10 backends in a network namespace: a cold full sync, and
 *      one endpoint change through the product path (model event → reconciler → one `nft -f` delta), vs the
 *      flush-and-reload baseline (the whole table rewritten per change);
 *   2. first packet: TCP connect round trip from a client namespace through a VIP (DNAT in the host namespace) to a
 *      backend namespace, with 1, 1,000 and 10,000 services programmed, and straight to the backend's address;
 *   3. convergence (sandbox, 3 nodes, Docker 28 or SWARMNET_BENCH_DOCKER): from the Docker event of a scale step (task container started /
 *      service updated to stop one) to the rule on every node holding it, seen by `nft monitor` on each node;
 *   4. the same-node path, which decides how a local backend's reply meets conntrack (docs/lb.md): two containers on
 *      one bridge talking directly (plain L2, no conntrack), bridged with conntrack (br_netfilter, swarmnet's choice),
 *      and routed through the host (isolated ports + proxy ARP, the Calico-style alternative): TCP connect round
 *      trip and iperf3 throughput.
 * Run (root): npm run bench -- lb   [SWARMNET_BENCH_PARTS=1234 SWARMNET_BENCH_SERVICES=10000 SWARMNET_BENCH_EVENTS=50
 *   SWARMNET_BENCH_DOCKER=28|20.10]
 */
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { run } from '../../common/exec.js';
import { logger, setLogLevel } from '../../common/log.js';
import type { LbState, VipEntry } from '../../lb/desired.js';
import { LbModel } from '../../lb/model.js';
import { NftablesBackend } from '../../lb/nftables/kernel.js';
import { renderFull } from '../../lb/nftables/render.js';
import { LbReconciler } from '../../lb/reconciler.js';
import type { SandboxNode } from '../../scripts/lab/sandbox.mjs';
import { lab, systemToolsOnly } from '../lab.js';

setLogLevel('silent');
systemToolsOnly();
const PARTS = process.env.SWARMNET_BENCH_PARTS ?? '1234';
const SERVICES = Number(process.env.SWARMNET_BENCH_SERVICES ?? 10_000);
const EVENTS = Number(process.env.SWARMNET_BENCH_EVENTS ?? 50);
const ENGINE = process.env.SWARMNET_BENCH_DOCKER ?? '28';
const log = (m: string): void => console.log(m);
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;
const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
const ns = (n: string, cmd: string, args: string[]): ReturnType<typeof run> => run('ip', ['netns', 'exec', n, cmd, ...args], { timeoutMs: 600_000 });
const ROOT = '/bench/swarmnet/docker';

/** VIP i of the synthetic cluster: 10.200.0.0/16 holds the VIPs, 10.201.0.0/16 + 10.202.0.0/16 the tasks. */
const vipOf = (i: number): string => `10.200.${i >> 8}.${i & 255}`;
const taskIp = (i: number, k: number): string => { const n = i * 10 + k; return `10.${201 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`; };

function model(services: number, backends: number): LbModel {
  const m = new LbModel('/bench', 'n1');
  const kvs = new Map<string, string>();
  for (let i = 0; i < services; i++) {
    kvs.set(`${ROOT}/services/s${i}`, JSON.stringify({ id: `s${i}`, name: `s${i}`, endpointMode: 'vip', vips: { net: vipOf(i) }, aliases: {} }));
    for (let k = 0; k < backends; k++) kvs.set(`${ROOT}/containers/n2/c${i}-${k}`, JSON.stringify({ id: `c${i}-${k}`, name: `c${i}-${k}`, serviceId: `s${i}`, live: true, networks: { net: { address: taskIp(i, k) } } }));
  }
  m.reset(kvs);
  return m;
}

async function scale(): Promise<void> {
  const n = `swbench-lb-${process.pid}`;
  await run('ip', ['netns', 'add', n]);
  try {
    const m = model(SERVICES, 10);
    const backend = new NftablesBackend({ netns: n });
    const rec = new LbReconciler({ backend, model: m, log: logger('lb'), netns: n, intervalMs: 3_600_000 });
    const t0 = performance.now();
    rec.start();
    await rec.settled();
    const cold = performance.now() - t0;
    log(`  cold full sync, ${SERVICES} services × 10 backends: ${ms(cold)} (render ${ms(timeRender(m.state()))}, nft -f the rest)`);
    // One endpoint change at a time: a task turns unhealthy, then healthy again (two deltas), 50 tasks.
    const deltas: number[] = [];
    for (let e = 0; e < 100; e++) {
      const i = (Math.floor(e / 2) * 7919) % SERVICES;
      const k = Math.floor(e / 2) % 10;
      const t1 = performance.now();
      m.apply('put', `${ROOT}/containers/n2/c${i}-${k}`, JSON.stringify({ id: `c${i}-${k}`, name: `c${i}-${k}`, serviceId: `s${i}`, live: e % 2 === 1, networks: { net: { address: taskIp(i, k) } } }));
      rec.changed();
      await rec.settled();
      deltas.push(performance.now() - t1);
    }
    // The baseline: the same change written as a flush-and-reload of the whole table.
    const reloads: number[] = [];
    for (let e = 0; e < 10; e++) {
      const t1 = performance.now();
      await run('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: renderFull(m.state()), timeoutMs: 600_000 });
      reloads.push(performance.now() - t1);
    }
    log(`  one endpoint change: swarmnet delta p50 ${ms(pct(deltas, 0.5))}, p99 ${ms(pct(deltas, 0.99))} (n=100) | flush-and-reload p50 ${ms(pct(reloads, 0.5))}, max ${ms(Math.max(...reloads))} (n=10)`);
    log(`  (writes: ${rec.stats.syncs}, refused deltas: ${rec.stats.failures})`);
  } finally {
    await run('ip', ['netns', 'del', n], { allowFailure: true });
  }
}

function timeRender(s: LbState): number {
  const t = performance.now();
  renderFull(s);
  return performance.now() - t;
}

const CONNECT = `
const net = require('node:net');
const [host, n] = [process.argv[1], Number(process.argv[2])];
const out = [];
(async () => {
  for (let i = 0; i < n; i++) {
    out.push(await new Promise((res, rej) => {
      const t = process.hrtime.bigint();
      const s = net.connect({ host, port: 8080 }, () => { res(Number(process.hrtime.bigint() - t) / 1000); s.destroy(); });
      s.on('error', rej);
    }));
  }
  console.log(JSON.stringify(out));
})();`;
const SERVER = `require('node:net').createServer((s) => s.destroy()).listen(8080, () => console.log('ready'));`;

async function firstPacket(): Promise<void> {
  const [h, c, b] = ['h', 'c', 'b'].map((x) => `swbench-${x}${process.pid}`) as [string, string, string];
  for (const x of [h, c, b]) await run('ip', ['netns', 'add', x]);
  const server = spawn('ip', ['netns', 'exec', b, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await ns(h, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    for (const [x, hv, addr, peer] of [[c, 'vc', '10.210.0.2', '10.210.0.1'], [b, 'vb', '10.211.0.2', '10.211.0.1']] as const) {
      await run('ip', ['-n', h, 'link', 'add', hv, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', x]);
      await run('ip', ['-n', h, 'addr', 'add', `${peer}/24`, 'dev', hv]);
      await run('ip', ['-n', h, 'link', 'set', hv, 'up']);
      await run('ip', ['-n', x, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      for (const l of ['eth0', 'lo']) await run('ip', ['-n', x, 'link', 'set', l, 'up']);
      await run('ip', ['-n', x, 'route', 'add', 'default', 'via', peer]);
    }
    await new Promise((r) => createInterface({ input: server.stdout! }).once('line', r));
    const backend = new NftablesBackend({ netns: h });
    const samples = async (to: string): Promise<number[]> => {
      await ns(c, process.execPath, ['-e', CONNECT, to, '200']); // warm
      return JSON.parse((await ns(c, process.execPath, ['-e', CONNECT, to, '2000'])).stdout) as number[];
    };
    const rows: string[] = [];
    for (const count of [1, 1000, 10_000]) {
      const vips = new Map<string, VipEntry>();
      // The measured VIP is the last one programmed; the others point at ten addresses each, as real services do.
      for (let i = 0; i < count - 1; i++) vips.set(vipOf(i), { vip: vipOf(i), serviceId: `s${i}`, networkId: 'net', backends: Array.from({ length: 10 }, (_, k) => taskIp(i, k)) });
      const target = '10.220.0.1';
      vips.set(target, { vip: target, serviceId: 'measured', networkId: 'net', backends: ['10.211.0.2'] });
      await backend.replace({ vips, local: new Set() });
      const via = await samples(target);
      const direct = await samples('10.211.0.2');
      rows.push(`  ${String(count).padStart(6)} services: through the VIP p50 ${(pct(via, 0.5)).toFixed(0)} µs, p99 ${(pct(via, 0.99)).toFixed(0)} µs | direct to the backend p50 ${(pct(direct, 0.5)).toFixed(0)} µs, p99 ${(pct(direct, 0.99)).toFixed(0)} µs | VIP overhead p50 ${(pct(via, 0.5) - pct(direct, 0.5)).toFixed(0)} µs (n=2000 each)`);
    }
    for (const r of rows) log(r);
  } finally {
    server.kill('SIGKILL');
    for (const x of [h, c, b]) await run('ip', ['netns', 'del', x], { allowFailure: true });
  }
}

// ---- 3. convergence on the sandbox

async function convergence(): Promise<void> {
  const { docker } = await lab<typeof import('../../scripts/lab/dockerd.mjs')>('dockerd.mjs');
  const { down, LAYOUT, up } = await lab<typeof import('../../scripts/lab/sandbox.mjs')>('sandbox.mjs');
  const { changeService, waitServiceRunning } = await lab<typeof import('../../scripts/lab/services.mjs')>('services.mjs');
  const sb = await up({ nodes: 3, managers: 1, docker: ENGINE, log: () => undefined });
  const monitors: ReturnType<typeof spawn>[] = [];
  const events: ReturnType<typeof spawn>[] = [];
  try {
    await docker(sb.manager, ['network', 'create', '--driver', LAYOUT.networkDriver, '--ipam-driver', LAYOUT.networkDriver, 'lbnet']);
    await docker(sb.manager, ['service', 'create', '--detach', '--no-resolve-image', '--name', 'lbsvc', '--replicas', '3', '--stop-grace-period', '1s', '--network', 'lbnet', 'swarmnet/busybox', 'sleep', '1d']);
    await waitServiceRunning(sb.manager, 'lbsvc', 3, 150_000);
    // Every node's VIP → backend slots as they change: `nft monitor` prints each element added or deleted (with its
    // value) and a "new generation" line when a transaction is in; the time of that line is when the rule holds.
    const slots = new Map<string, Map<string, string>>();
    const commits = new Map<string, { at: number; addrs: Set<string> }[]>();
    for (const n of sb.nodes) {
      const p = spawn('nsenter', [`--net=/run/netns/${n.netns}`, 'nft', 'monitor'], { stdio: ['ignore', 'pipe', 'inherit'] });
      monitors.push(p);
      const mine = new Map<string, string>();
      slots.set(n.name, mine);
      commits.set(n.name, []);
      createInterface({ input: p.stdout! }).on('line', (l) => {
        const el = /^(add|delete) element ip swarmnet-lb backends \{ (\S+ \. \d+) : (\S+) \}/.exec(l);
        if (el) { if (el[1] === 'add') mine.set(el[2]!, el[3]!); else mine.delete(el[2]!); }
        else if (/^delete table ip swarmnet-lb/.test(l)) mine.clear();
        else if (l.startsWith('# new generation')) commits.get(n.name)!.push({ at: Date.now(), addrs: new Set(mine.values()) });
      });
    }
    // Docker's events with their own clock (same machine): container starts on every node, service updates on the manager.
    const started = new Map<string, number>();
    const updates: number[] = [];
    for (const n of sb.nodes) {
      const p = spawn('docker', ['-H', `unix://${n.socket}`, 'events', '--format', '{{json .}}'], { stdio: ['ignore', 'pipe', 'inherit'] });
      events.push(p);
      createInterface({ input: p.stdout! }).on('line', (l) => {
        const e = JSON.parse(l) as { Type: string; Action: string; id?: string; timeNano: number };
        if (e.Type === 'container' && e.Action === 'start' && e.id) started.set(e.id, e.timeNano / 1e6);
        if (e.Type === 'service' && e.Action === 'update' && n === sb.manager) updates.push(e.timeNano / 1e6);
      });
    }
    await new Promise((r) => setTimeout(r, 1000));
    const addrOf = async (replicas: number): Promise<Map<string, { node: SandboxNode; address: string }>> => {
      const out = new Map<string, { node: SandboxNode; address: string }>();
      for (const n of sb.nodes) {
        const ids = (await docker(n, ['ps', '-q', '--no-trunc', '--filter', 'label=com.docker.swarm.service.name=lbsvc'])).stdout.split('\n').filter(Boolean);
        for (const id of ids) {
          const a = JSON.parse((await docker(n, ['inspect', id])).stdout)[0].NetworkSettings.Networks.lbnet?.IPAddress as string | undefined;
          if (a) out.set(id, { node: n, address: a });
        }
      }
      if (out.size < replicas) throw new Error(`lbsvc: ${out.size} tasks with addresses, wanted ${replicas}`);
      return out;
    };
    const until = async (cond: () => boolean, ms: number): Promise<boolean> => {
      for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (cond()) return true;
      return cond();
    };
    const lat: number[] = [];
    const byKind: Record<'up' | 'down', number[]> = { up: [], down: [] };
    let missed = 0;
    for (let e = 0; e < EVENTS; e++) {
      const up = e % 2 === 0;
      const before = await addrOf(3 + (up ? 0 : 1));
      const mark = new Map([...commits].map(([k, v]) => [k, v.length]));
      const updatesBefore = updates.length;
      await changeService(sb.manager, ['scale', '--detach', `lbsvc=${up ? 4 : 3}`]);
      await waitServiceRunning(sb.manager, 'lbsvc', up ? 4 : 3, 120_000);
      let changed: { node: SandboxNode; address: string } | undefined;
      let from: number | undefined;
      if (up) {
        const after = await addrOf(4);
        const id = [...after.keys()].find((k) => !before.has(k));
        changed = id ? after.get(id) : undefined;
        from = id ? started.get(id) : undefined;
      } else {
        // The task Swarm stops is the one whose address leaves the rules (before its container is gone).
        const gone = (): { node: SandboxNode; address: string } | undefined => [...before.values()].find((b) => sb.nodes.every((n) => {
          const last = commits.get(n.name)!.at(-1);
          return last !== undefined && !last.addrs.has(b.address);
        }));
        await until(() => gone() !== undefined, 10_000);
        changed = gone();
        from = updates[updatesBefore];
      }
      if (!changed || from === undefined) { missed++; log(`    event ${e}: no ${up ? 'new' : 'stopped'} task or no Docker event found`); continue; }
      const first = (n: SandboxNode): { at: number } | undefined => commits.get(n.name)!.slice(mark.get(n.name)).find((c) => c.addrs.has(changed!.address) === up);
      if (!await until(() => sb.nodes.every((n) => first(n) !== undefined), 10_000)) { missed++; log(`    event ${e}: ${changed.address} not ${up ? 'added' : 'removed'} on every node within 10 s`); continue; }
      const at = Math.max(...sb.nodes.map((n) => first(n)!.at));
      lat.push(at - from);
      byKind[up ? 'up' : 'down'].push(at - from);
    }
    log(`  Docker event → rule on all 3 nodes (Docker ${ENGINE}): p50 ${ms(pct(lat, 0.5))}, p99 ${ms(pct(lat, 0.99))}, max ${ms(Math.max(...lat))} over ${lat.length} scale events (${missed} not observed)`);
    log(`    task started → added: p50 ${ms(pct(byKind.up, 0.5))}, max ${ms(Math.max(...byKind.up))} (n=${byKind.up.length}) | service scaled down → its task removed: p50 ${ms(pct(byKind.down, 0.5))}, max ${ms(Math.max(...byKind.down))} (n=${byKind.down.length})`);
  } finally {
    for (const p of [...monitors, ...events]) p.kill('SIGKILL');
    await down({ log: () => undefined });
  }
}

// ---- 4. the same-node path
async function sameNode(): Promise<void> {
  const [h, c, b] = ['h', 'c', 'b'].map((x) => `swbench-p${x}${process.pid}`) as [string, string, string];
  for (const x of [h, c, b]) await run('ip', ['netns', 'add', x]);
  const server = spawn('ip', ['netns', 'exec', b, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const iperf = spawn('ip', ['netns', 'exec', b, 'iperf3', '-s'], { stdio: 'ignore' });
  try {
    await run('ip', ['-n', h, 'link', 'add', 'br0', 'type', 'bridge']);
    await run('ip', ['-n', h, 'addr', 'add', '10.212.0.1/24', 'dev', 'br0']);
    await run('ip', ['-n', h, 'link', 'set', 'br0', 'address', '02:00:00:00:00:01', 'up']);
    await ns(h, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.br0.send_redirects=0', 'net.ipv4.conf.all.send_redirects=0']);
    for (const [x, hv, addr] of [[c, 'vc', '10.212.0.2'], [b, 'vb', '10.212.0.3']] as const) {
      await run('ip', ['-n', h, 'link', 'add', hv, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', x]);
      await run('ip', ['-n', h, 'link', 'set', hv, 'master', 'br0', 'up']);
      await run('ip', ['-n', x, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      for (const l of ['eth0', 'lo']) await run('ip', ['-n', x, 'link', 'set', l, 'up']);
    }
    await new Promise((r) => createInterface({ input: server.stdout! }).once('line', r));
    const modes: [string, () => Promise<void>][] = [
      ['plain L2 (no conntrack)', async () => {
        await ns(h, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0']);
        await run('ip', ['-n', h, 'link', 'set', 'br0', 'type', 'bridge', 'nf_call_iptables', '0']);
      }],
      ['bridged + conntrack (swarmnet)', async () => {
        await run('ip', ['-n', h, 'link', 'set', 'br0', 'type', 'bridge', 'nf_call_iptables', '1']);
        // A conntrack user in the host namespace, as the load balancer is.
        await ns(h, 'nft', ['add table ip swbench; add chain ip swbench pre { type nat hook prerouting priority -100; }']);
      }],
      ['routed via the host (isolated + proxy ARP)', async () => {
        for (const v of ['vc', 'vb']) await run('ip', ['-n', h, 'link', 'set', 'dev', v, 'type', 'bridge_slave', 'isolated', 'on']);
        await run('ip', ['-n', h, 'link', 'set', 'br0', 'type', 'bridge', 'nf_call_iptables', '0']);
        await ns(h, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0', 'net.ipv4.conf.br0.proxy_arp=1', 'net.ipv4.conf.br0.proxy_arp_pvlan=1']);
        for (const x of [c, b]) await run('ip', ['-n', x, 'neigh', 'flush', 'all']);
      }],
    ];
    for (const [name, setup] of modes) {
      await setup();
      await ns(c, process.execPath, ['-e', CONNECT, '10.212.0.3', '200']);
      const rtt = JSON.parse((await ns(c, process.execPath, ['-e', CONNECT, '10.212.0.3', '2000'])).stdout) as number[];
      const ip = JSON.parse((await ns(c, 'iperf3', ['-c', '10.212.0.3', '-t', '5', '-J'])).stdout) as { end: { sum_received: { bits_per_second: number } } };
      log(`  ${name.padEnd(44)} connect p50 ${pct(rtt, 0.5).toFixed(0)} µs, p99 ${pct(rtt, 0.99).toFixed(0)} µs | iperf3 ${(ip.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
    }
  } finally {
    server.kill('SIGKILL');
    iperf.kill('SIGKILL');
    for (const x of [h, c, b]) await run('ip', ['netns', 'del', x], { allowFailure: true });
  }
}

log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${new Date().toISOString()}`);
if (PARTS.includes('1')) { log('1. nftables at scale'); await scale(); }
if (PARTS.includes('2')) { log('2. first-packet latency'); await firstPacket(); }
if (PARTS.includes('3')) { log('3. convergence on the sandbox'); await convergence(); }
if (PARTS.includes('4')) { log('4. the same-node path'); await sameNode(); }
