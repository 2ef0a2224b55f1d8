// Chaos: faults made on purpose on a real 3-manager sandbox swarm, with a steady client in a container on every node
// (DNS lookups of a service, HTTP to its VIP and to a task on another node, about 10 rounds a second each) measuring
// what users see. Every scenario prints its failed requests and convergence time, asserts what must not fail, and
// ends with the invariant checker (test/chaos/cluster-invariants.ts). docs/reliability.md lists the measured bounds.
// Runs with SWARMNET_CHAOS=1 (scripts/run-tests.mjs sets it when the end-to-end suite can run).
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { readFileSync } from 'node:fs';
import { docker, execInNode } from '../../scripts/lab/dockerd.mjs';
import { DEFAULT_ENGINE } from '../../scripts/lab/engines.mjs';
import {
  down, etcdClientOptions, LAYOUT, loadSandbox, startNode, startSandboxEtcd, stopNode, stopSandboxEtcd, up, type Sandbox, type SandboxNode,
} from '../../scripts/lab/sandbox.mjs';
import { changeService, pluginPid, waitServiceRunning } from '../../scripts/lab/services.mjs';
import { backendsOn, hexIp } from '../helpers/sandbox-state.js';
import { attached, converge, lookupIn, PREFIX, serviceView, violations, type ChaosNetwork } from './cluster-invariants.js';
import { clientName, describe, samples, startClient, summarize, type Kind, type Summary } from './steady-client.js';

const enabled = process.env.SWARMNET_CHAOS === '1';
const ENGINE = process.env.SWARMNET_DOCKER ?? DEFAULT_ENGINE;
const NETWORK = 'chaos-net';
const WEB = 'chaos-web';
const BURST = 'chaos-burst';
/** NODE_LEASE_TTL_SECONDS of the sandbox's plugins (scripts/lab/sandbox.mjs). */
const LEASE_TTL_S = 15;
const HTTPD = ['swarmnet/busybox', 'sh', '-c', 'hostname > /www/index.html && exec httpd -f -p 8080 -h /www'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Ctx { sb: Sandbox; etcd: Etcd3; network: ChaosNetwork; vip: string }
let ctx: Ctx | undefined;
const need = (): Ctx => {
  if (!ctx) throw new Error('chaos setup failed (see the before hook)');
  return ctx;
};
/** The sandbox's node records now (a restarted dockerd has a new PID). */
const nodes = (): SandboxNode[] => loadSandbox()!.nodes;
const node = (name: string): SandboxNode => nodes().find((n) => n.name === name)!;
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The invariant checker on the live nodes, polled until it holds: the time it took. */
async function settle(t: ExecutionContext, what: string, live = nodes(), services = [WEB], guardMs = 90_000): Promise<number> {
  const c = need();
  const probes = new Map(live.map((n) => [n.name, clientName(n)]));
  const r = await converge(() => violations({ etcd: c.etcd, live, network: c.network, services, probes }), guardMs);
  if (r.bad.length) t.log(`${what}: still violated after ${secs(r.ms)}:\n  ${r.bad.slice(0, 12).join('\n  ')}`);
  t.deepEqual(r.bad, [], `${what}: invariants after ${secs(r.ms)}`);
  t.log(`${what}: invariants hold ${secs(r.ms)} after the check began`);
  return r.ms;
}

/** What each node's client saw within [from, to], logged; the summaries by node name. */
async function seen(t: ExecutionContext, what: string, from: number, to: number, live = nodes()): Promise<Map<string, Summary>> {
  const out = new Map<string, Summary>();
  for (const n of live) {
    const s = summarize(await samples(n), from, to);
    out.set(n.name, s);
    t.log(`${what}, ${n.name}'s client over ${secs(to - from)}: ${describe(s)}`);
  }
  return out;
}
/** Asserts no failed round of the given kinds on the given nodes. */
function noFailures(t: ExecutionContext, what: string, seenBy: Map<string, Summary>, kinds: Kind[], names = [...seenBy.keys()]): void {
  for (const name of names) {
    const s = seenBy.get(name)!;
    for (const k of kinds) {
      t.true(s[k].total > 0, `${what}: ${name}'s client logged no ${k} round`);
      t.is(s[k].failed, 0, `${what}: ${name}'s ${k} requests failed`);
    }
  }
}
/** Restarts each node's client (a container on a restarted node stopped with its dockerd). */
async function clientsUp(t: ExecutionContext, live = nodes()): Promise<void> {
  const c = need();
  const web = await attached(live, c.network);
  const tasks = new Set((await serviceView(live[0]!, live, c.network, WEB)).tasks);
  for (const n of live) {
    const running = (await docker(n, ['inspect', '--format', '{{.State.Running}}', clientName(n)], { allowFailure: true })).stdout.trim() === 'true';
    const target = web.find((a) => tasks.has(a.address) && a.node !== n.name)?.address ?? c.vip;
    if (!running) await startClient(n, NETWORK, WEB, c.vip, target, (m) => t.log(m));
  }
}

if (!enabled) {
  test.skip('chaos suite (runs with SWARMNET_CHAOS=1, as root with dockerd and unshare: npm test does this)', () => {});
} else {
  test.before('sandbox up: 3 managers, a network, a web service on every node, a steady client on every node', async (t) => {
    t.timeout(15 * 60_000, 'sandbox up');
    const sb = await up({ nodes: 3, managers: 3, docker: ENGINE, logLevel: 'info', log: (m: string) => t.log(m) });
    const etcd = new Etcd3(etcdClientOptions());
    await docker(sb.manager, ['network', 'create', '--driver', LAYOUT.networkDriver, '--ipam-driver', LAYOUT.networkDriver, '--attachable', NETWORK]);
    const info = JSON.parse((await docker(sb.manager, ['network', 'inspect', NETWORK])).stdout)[0];
    await docker(sb.manager, ['service', 'create', '--detach', '--no-resolve-image', '--name', WEB, '--replicas', '3', '--replicas-max-per-node', '1',
      '--stop-grace-period', '2s', '--network', NETWORK, ...HTTPD]);
    await waitServiceRunning(sb.manager, WEB, 3, 150_000);
    const subnet = JSON.parse((await docker(sb.manager, ['network', 'inspect', NETWORK])).stdout)[0].IPAM.Config[0].Subnet as string;
    const network = { name: NETWORK, id: info.Id as string, flannelId: subnet.replace('/', '-') };
    const web = await serviceView(sb.manager, sb.nodes, network, WEB);
    ctx = { sb, etcd, network, vip: web.vip };
    // Each client asks for the VIP and for the web task of the next node (traffic over VXLAN).
    const byNode = new Map((await attached(sb.nodes, network)).filter((a) => web.tasks.includes(a.address)).map((a) => [a.node, a.address]));
    for (const [i, n] of sb.nodes.entries()) await startClient(n, NETWORK, WEB, web.vip, byNode.get(sb.nodes[(i + 1) % sb.nodes.length]!.name)!, (m) => t.log(m));
    await settle(t, 'setup');
  });

  test.after.always('sandbox down', async (t) => {
    t.timeout(5 * 60_000);
    ctx?.etcd.close();
    if (process.env.SWARMNET_E2E_KEEP === '1') return;
    await down({ log: (m: string) => t.log(m) });
  });

  test.serial('graceful plugin disable + enable on a node with traffic: no failed request on any node (data plane, VIP, DNS handed back to Docker and taken again)', async (t) => {
    t.timeout(4 * 60_000);
    const victim = node('node3');
    await sleep(2000);
    const from = Date.now();
    await docker(victim, ['plugin', 'disable', '-f', LAYOUT.pluginName]);
    await docker(victim, ['plugin', 'enable', LAYOUT.pluginName]);
    await sleep(5000);
    const to = Date.now();
    t.log(`${victim.name}: plugin disabled and enabled in ${secs(to - from - 5000)}`);
    noFailures(t, 'plugin disable + enable', await seen(t, 'plugin disable + enable', from, to), ['dns', 'vip', 'task']);
    await settle(t, 'plugin disable + enable');
  });

  test.serial('plugin SIGKILL during a scale from 0 to 30 replicas: all 30 run with distinct addresses, running tasks keep talking, DNS on that node is back within a measured bound', async (t) => {
    t.timeout(6 * 60_000);
    const c = need();
    const victim = node('node2');
    await docker(c.sb.manager, ['service', 'create', '--detach', '--no-resolve-image', '--name', BURST, '--replicas', '0', '--stop-grace-period', '1s', '--network', NETWORK, ...HTTPD]);
    const from = Date.now();
    try {
      await changeService(c.sb.manager, ['scale', '--detach', `${BURST}=30`]);
      await sleep(1500);
      const old = pluginPid(victim);
      process.kill(old, 'SIGKILL');
      const killedAt = Date.now();
      let back = 0;
      for (let end = Date.now() + 60_000; !back && Date.now() < end; await sleep(100)) {
        try { if (pluginPid(victim) !== old) back = Date.now(); } catch { /* not yet */ }
      }
      t.true(back > 0, `${victim.name}: Docker restarted the killed plugin`);
      t.log(`${victim.name}: plugin killed; Docker started it again after ${secs(back - killedAt)}`);
      await waitServiceRunning(c.sb.manager, BURST, 30, 300_000);
      t.log(`${BURST}: 30 running ${secs(Date.now() - from)} after the scale`);
      const burst = await serviceView(c.sb.manager, nodes(), c.network, BURST);
      t.is(burst.tasks.length, 30);
      t.is(new Set(burst.tasks).size, 30, `distinct addresses: ${burst.tasks.join(' ')}`);
      const to = Date.now();
      const s = await seen(t, 'plugin SIGKILL during a scale to 30', from, to);
      noFailures(t, 'plugin SIGKILL', s, ['vip', 'task']);
      noFailures(t, 'plugin SIGKILL', s, ['dns'], nodes().filter((n) => n.name !== victim.name).map((n) => n.name));
      const dns = s.get(victim.name)!.dns;
      t.log(`${victim.name}: DNS in its containers failed ${dns.failed} time(s), for at most ${secs(dns.longestOutageMs)}`);
      await settle(t, 'plugin SIGKILL', nodes(), [WEB, BURST]);
    } finally {
      await docker(c.sb.manager, ['service', 'rm', BURST], { allowFailure: true });
    }
  });

  test.serial('etcd down 60 s: running tasks keep talking and DNS answers from memory; a new container fails with a clear error, then starts once etcd is back; everything converges', async (t) => {
    t.timeout(6 * 60_000);
    const c = need();
    await settle(t, 'before the etcd outage');
    const from = Date.now();
    const logged = node('node1').logFile;
    const before = readFileSync(logged, 'utf8').length;
    await stopSandboxEtcd();
    let backAt = 0;
    try {
      await sleep(10_000);
      const refused = await docker(c.sb.manager, ['run', '--rm', '--network', NETWORK, 'swarmnet/busybox', 'true'], { allowFailure: true, timeoutMs: 120_000 });
      t.not(refused.code, 0, 'a new container on the network while etcd is down');
      t.log(`a new container while etcd is down: exit ${refused.code}: ${refused.stderr.trim().split('\n')[0]}`);
      // Docker tells the user to "check manager logs": the plugin's reason is there, and in `docker service ps`.
      const reason = /IpamDriver\.RequestAddress: (etcd is unavailable[^"]*)/.exec(readFileSync(logged, 'utf8').slice(before))?.[1];
      t.truthy(reason, 'the manager log gives the plugin\'s reason');
      t.log(`the manager's log: IpamDriver.RequestAddress: ${reason}`);
      await sleep(Math.max(0, from + 60_000 - Date.now()));
    } finally {
      await startSandboxEtcd();
      backAt = Date.now();
    }
    let started = -1;
    for (let end = Date.now() + 120_000; started < 0 && Date.now() < end;) {
      const r = await docker(c.sb.manager, ['run', '--rm', '--network', NETWORK, 'swarmnet/busybox', 'true'], { allowFailure: true, timeoutMs: 120_000 });
      if (r.code === 0) started = Date.now() - backAt;
      else await sleep(1000);
    }
    t.true(started >= 0, 'a new container starts after etcd is back');
    t.log(`etcd back: a new container started ${secs(started)} later`);
    const converged = await settle(t, 'etcd back');
    t.log(`etcd outage: converged ${secs(Date.now() - backAt)} after etcd came back (checker ${secs(converged)})`);
    noFailures(t, 'etcd down 60 s', await seen(t, 'etcd down 60 s', from, backAt), ['dns', 'vip', 'task']);
  });

  test.serial('underlay partition of one node for 30 s (its VXLAN and etcd traffic dropped), then heal: no address taken twice, its tasks leave and rejoin the VIP, convergence measured', async (t) => {
    t.timeout(6 * 60_000);
    const c = need();
    const victim = node('node3');
    const others = nodes().filter((n) => n.name !== victim.name);
    const ours = (await attached([victim], c.network)).map((a) => a.address);
    const rules = ['add table inet sn-chaos', 'add chain inet sn-chaos in { type filter hook input priority -300; }',
      'add chain inet sn-chaos out { type filter hook output priority -300; }',
      'add rule inet sn-chaos in udp dport 8472 drop', 'add rule inet sn-chaos in tcp sport 2379 drop',
      'add rule inet sn-chaos out udp dport 8472 drop', 'add rule inet sn-chaos out tcp dport 2379 drop'];
    const from = Date.now();
    let healedAt = 0;
    try {
      for (const r of rules) await execInNode(victim, 'nft', r.split(' '));
      // Meanwhile containers start on both sides: the cut-off node cannot allocate; the others allocate without it.
      await sleep(5000);
      const inside = await docker(victim, ['run', '-d', '--network', NETWORK, '--name', 'chaos-partitioned', 'swarmnet/busybox', 'sleep', '600'], { allowFailure: true, timeoutMs: 60_000 });
      t.log(`${victim.name} partitioned: a new container there: exit ${inside.code} ${inside.stderr.trim().split('\n').at(-1) ?? ''}`);
      const outside = await docker(others[0]!, ['run', '-d', '--network', NETWORK, '--name', 'chaos-outside', 'swarmnet/busybox', 'sleep', '600'], { allowFailure: true, timeoutMs: 60_000 });
      t.is(outside.code, 0, `${others[0]!.name}: a new container while ${victim.name} is partitioned: ${outside.stderr}`);
      // Past the lease TTL the other nodes drop the partitioned node's tasks from the VIP.
      let dropped = 0;
      for (let end = from + (LEASE_TTL_S + 30) * 1000; !dropped && Date.now() < end; await sleep(500)) {
        const still = await Promise.all(others.map(async (n) => (await backendsOn(n, c.vip)).some((b) => ours.includes(b))));
        if (!still.some(Boolean)) dropped = Date.now();
      }
      t.true(dropped > 0, `${victim.name}'s tasks left the other nodes' VIP`);
      t.log(`${victim.name}'s tasks left the VIP on ${others.map((n) => n.name).join(' and ')} ${secs(dropped - from)} after the partition (lease TTL ${LEASE_TTL_S} s)`);
      await sleep(Math.max(0, from + 30_000 - Date.now()));
    } finally {
      await execInNode(victim, 'nft', ['delete', 'table', 'inet', 'sn-chaos'], { allowFailure: true });
      healedAt = Date.now();
      for (const name of ['chaos-partitioned', 'chaos-outside']) for (const n of nodes()) await docker(n, ['rm', '-f', name], { allowFailure: true });
    }
    let rejoined = 0;
    for (let end = healedAt + 90_000; !rejoined && Date.now() < end; await sleep(500)) {
      const back = await Promise.all(others.map(async (n) => (await backendsOn(n, c.vip)).some((b) => ours.includes(b))));
      if (back.every(Boolean)) rejoined = Date.now();
    }
    t.true(rejoined > 0, `${victim.name}'s task is a VIP backend again after the heal`);
    t.log(`healed: ${victim.name}'s task back behind the VIP on every other node ${secs(rejoined - healedAt)} later`);
    const converged = await settle(t, 'partition healed');
    t.log(`partition: converged ${secs(Date.now() - healedAt)} after the heal (checker ${secs(converged)})`);
    const s = await seen(t, 'partition of node3 for 30 s', from, Date.now());
    // The other nodes' DNS never depends on the partitioned node.
    noFailures(t, 'partition', s, ['dns'], others.map((n) => n.name));
  });

  test.serial('dockerd restart of a node that is not the leader (what a worker sees): its tasks come back with addresses of its own, nothing is taken twice, the other nodes\' DNS never fails', async (t) => {
    t.timeout(6 * 60_000);
    const c = need();
    const leaderName = (await docker(c.sb.manager, ['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}'])).stdout.split('\n').find((l) => / Leader$/.test(l))!.split(' ')[0]!;
    const victim = nodes().find((n) => n.name !== leaderName && n.name !== c.sb.manager.name) ?? nodes().find((n) => n.name !== leaderName)!;
    const others = nodes().filter((n) => n.name !== victim.name);
    const from = Date.now();
    await stopNode(victim.name);
    const stoppedAt = Date.now();
    try {
      await sleep(3000);
    } finally {
      await startNode(victim.name);
    }
    const restartedAt = Date.now();
    await waitServiceRunning(others[0]!, WEB, 3, 180_000);
    await clientsUp(t);
    t.log(`${victim.name}'s dockerd stopped and started again (${secs(restartedAt - stoppedAt)}): ${WEB} runs 3/3 ${secs(Date.now() - restartedAt)} after`);
    await settle(t, 'dockerd restarted');
    const s = await seen(t, `${victim.name}'s dockerd restart`, from, Date.now(), others);
    noFailures(t, 'dockerd restart', s, ['dns'], others.map((n) => n.name));
  });

  test.serial('dockerd restart of the leader (3 managers): a new leader takes over, replays answered with the same VIPs and no duplicate address, services keep working, a new service gets a fresh VIP', async (t) => {
    t.timeout(8 * 60_000);
    const c = need();
    const leaderName = (await docker(c.sb.manager, ['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}'])).stdout.split('\n').find((l) => / Leader$/.test(l))!.split(' ')[0]!;
    const others = nodes().filter((n) => n.name !== leaderName);
    const vipBefore = (await serviceView(others[0]!, nodes(), c.network, WEB)).vip;
    const from = Date.now();
    await stopNode(leaderName);
    const stoppedAt = Date.now();
    let manager = others[0]!;
    try {
      let newLeader = '';
      for (let end = Date.now() + 60_000; !newLeader && Date.now() < end; await sleep(500)) {
        const ls = await docker(others[0]!, ['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}'], { allowFailure: true });
        newLeader = ls.stdout.split('\n').find((l) => / Leader$/.test(l))?.split(' ')[0] ?? '';
        if (newLeader === leaderName) newLeader = '';
      }
      t.truthy(newLeader, 'a new leader');
      t.log(`${leaderName}'s dockerd stopped: ${newLeader} leads ${secs(Date.now() - stoppedAt)} later`);
      manager = node(newLeader);
      await docker(manager, ['service', 'create', '--detach', '--no-resolve-image', '--name', BURST, '--replicas', '2', '--stop-grace-period', '1s', '--network', NETWORK, ...HTTPD]);
      await waitServiceRunning(manager, BURST, 2, 150_000);
      const burst = await serviceView(manager, others, c.network, BURST);
      t.not(burst.vip, vipBefore, 'the new service has a VIP of its own');
      t.is((await serviceView(manager, others, c.network, WEB)).vip, vipBefore, `${WEB} keeps its VIP under the new leader`);
    } finally {
      await startNode(leaderName);
    }
    const restartedAt = Date.now();
    await waitServiceRunning(manager, WEB, 3, 180_000);
    await clientsUp(t);
    t.log(`${leaderName} back: ${WEB} runs 3/3 ${secs(Date.now() - restartedAt)} after its dockerd started`);
    await settle(t, 'leader restarted', nodes(), [WEB, BURST]);
    const s = await seen(t, 'leader dockerd restart', from, Date.now(), others);
    // The clients on the other nodes ask DNS of their own node: the leader's restart does not touch it.
    noFailures(t, 'leader restart', s, ['dns'], others.map((n) => n.name));
    await docker(manager, ['service', 'rm', BURST], { allowFailure: true });
  });

  test.serial('node loss (dockerd, plugin and containers killed): its tasks leave DNS and the VIP on the other nodes within the lease TTL, Swarm replaces them, its addresses stay reserved until the TTL', async (t) => {
    t.timeout(6 * 60_000);
    const c = need();
    const all = nodes();
    const victim = all.find((n) => n.name === 'node3')!;
    const survivors = all.filter((n) => n !== victim);
    const manager = survivors.find((n) => n.role === 'manager')!;
    // Unlimited per node, so Swarm can replace the lost node's task (a placement change: no task restarts).
    await changeService(manager, ['update', '--detach', '--replicas-max-per-node', '0', WEB]);
    await waitServiceRunning(manager, WEB, 3, 120_000);
    const lostAddresses = (await attached([victim], c.network)).map((a) => a.address);
    const lostWeb = (await serviceView(manager, [victim], c.network, WEB)).tasks;
    t.true(lostWeb.length > 0, `${victim.name} runs a ${WEB} task`);
    const recordKeys = lostAddresses.map((a) => `${PREFIX}/swarmnet/addresses/${c.network.flannelId}/${hexIp(a)}`);
    const from = Date.now();
    await stopNode(victim.name, { crash: true });
    // Its tasks leave every survivor's DNS and load balancer.
    let left = 0;
    let still: string[] = [];
    for (let end = from + (LEASE_TTL_S + 30) * 1000; !left && Date.now() < end; await sleep(500)) {
      still = [];
      for (const n of survivors) {
        const tasks = await lookupIn(n, clientName(n), `tasks.${WEB}`);
        if (tasks.some((a) => lostWeb.includes(a))) still.push(`${n.name} DNS [${tasks.join(' ')}]`);
        const backends = await backendsOn(n, c.vip);
        if (backends.some((a) => lostWeb.includes(a))) still.push(`${n.name} VIP [${backends.join(' ')}]`);
      }
      if (!still.length) left = Date.now();
    }
    t.true(left > 0, `${victim.name}'s tasks [${lostWeb.join(' ')}] left DNS and the VIP on the survivors; still in: ${still.join('; ')}`);
    t.log(`${victim.name} lost: its tasks left DNS and the VIP on ${survivors.map((n) => n.name).join(' and ')} after ${secs(left - from)} (lease TTL ${LEASE_TTL_S} s)`);
    // Its address records go with its lease, not before the TTL.
    let recordsGone = 0;
    for (let end = from + (LEASE_TTL_S + 30) * 1000; !recordsGone && Date.now() < end; await sleep(250)) {
      const present = await Promise.all(recordKeys.map((k) => c.etcd.get(k).string()));
      if (present.every((v) => v === null)) recordsGone = Date.now();
    }
    t.true(recordsGone > 0, `${victim.name}'s address records expired`);
    // The lease was last renewed up to a keep-alive interval (a third of the TTL) before the crash: it ends between
    // two thirds of the TTL and the TTL after it, and the addresses with it, never earlier.
    t.true(recordsGone - from >= (LEASE_TTL_S * 2 / 3 - 1) * 1000, `address records reserved until the lease ends: gone after ${secs(recordsGone - from)}`);
    t.log(`${victim.name}'s address records expired ${secs(recordsGone - from)} after the loss`);
    // Counted on the survivors themselves: until Swarm marks the lost node down (later when it was the leader: an
    // election comes first) its task still shows as running there.
    let replaced = await serviceView(manager, survivors, c.network, WEB);
    for (let end = Date.now() + 180_000; replaced.tasks.length < 3 && Date.now() < end; await sleep(1000)) replaced = await serviceView(manager, survivors, c.network, WEB);
    t.is(new Set(replaced.tasks).size, 3, `the replacements' addresses: ${replaced.tasks.join(' ')}`);
    t.log(`Swarm runs ${WEB} 3/3 on the survivors ${secs(Date.now() - from)} after the loss`);
    const s = await seen(t, 'node loss', from, Date.now(), survivors);
    noFailures(t, 'node loss', s, ['dns'], survivors.map((n) => n.name));
    await settle(t, 'node lost', survivors);
  });
}
