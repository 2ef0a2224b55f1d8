import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../common/exec.js';
import { setLogLevel } from '../../common/log.js';
import { Kernel } from '../../flannel/kernel.js';
import type { HostLease, OverlayNetwork, OverlayState } from '../../flannel/model.js';
import { bridgeName, vxlanName } from '../../flannel/names.js';
import { OverlayReconciler } from '../../flannel/reconciler.js';
import { vtepMac } from '../../flannel/vtep-mac.js';
import { Lab, eventually, hasTools, isRoot, ping, sh, type LabContainer, type LabHost } from './lab.js';

setLogLevel('silent');
const ready = isRoot && hasTools;
const serial = ready ? test.serial : test.serial.skip;

const PERIOD = 250;
const net1: OverlayNetwork = { id: 'net-one', vni: 101, subnet: '10.128.0.0/16' };
const net2: OverlayNetwork = { id: 'net-two', vni: 102, subnet: '10.129.0.0/16' };
const lab = new Lab();
const hosts: Record<'a' | 'b' | 'c', LabHost> = {} as never;
const recs: Record<string, OverlayReconciler> = {};
const c: Record<string, LabContainer> = {};
let leases: HostLease[] = [];
let networks: OverlayNetwork[] = [net1, net2];
const servers: ChildProcess[] = [];

const lease = (net: OverlayNetwork, h: LabHost, third: number): HostLease => ({
  networkId: net.id, subnet: `${net.subnet.split('.').slice(0, 2).join('.')}.${third}.0/24`, publicIp: h.node.publicIp, vtepMac: vtepMac(h.node.name, net.vni), node: h.node.name,
});
const stateFor = (h: LabHost): OverlayState => ({ node: h.node, networks, leases });
const updateAll = (): Promise<unknown> => Promise.all(Object.entries(hosts).map(([k, h]) => recs[k]!.update(stateFor(h))));

test.before(async () => {
  if (!ready) return;
  await lab.init();
  hosts.a = await lab.host('a', 11);
  hosts.b = await lab.host('b', 12);
  hosts.c = await lab.host('c', 13);
  // A foreign flannel device in host A: must survive everything we do.
  await run('ip', ['-n', hosts.a.ns, 'link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', '192.168.200.11', 'dev', 'eth0', 'dstport', '8472', 'nolearning']);
  await run('ip', ['-n', hosts.a.ns, 'link', 'set', 'flannel.1', 'up']);
  leases = [lease(net1, hosts.a, 1), lease(net1, hosts.b, 2), lease(net1, hosts.c, 3), lease(net2, hosts.a, 1), lease(net2, hosts.b, 2), lease(net2, hosts.c, 3)];
  for (const [k, h] of Object.entries(hosts)) {
    recs[k] = new OverlayReconciler({ stateDir: h.stateDir, netns: h.ns, intervalMs: PERIOD });
  }
  await updateAll();
  for (const r of Object.values(recs)) r.start();
  // Containers: one per network on every host.
  c.a1 = await lab.container(hosts.a, 'a1', bridgeName(101), '10.128.1.10', 24, '10.128.1.1', 1450);
  c.a2 = await lab.container(hosts.a, 'a2', bridgeName(102), '10.129.1.10', 24, '10.129.1.1', 1450);
  c.b1 = await lab.container(hosts.b, 'b1', bridgeName(101), '10.128.2.10', 24, '10.128.2.1', 1450);
  c.b2 = await lab.container(hosts.b, 'b2', bridgeName(102), '10.129.2.10', 24, '10.129.2.1', 1450);
  c.c1 = await lab.container(hosts.c, 'c1', bridgeName(101), '10.128.3.10', 24, '10.128.3.1', 1450);
  c.c2 = await lab.container(hosts.c, 'c2', bridgeName(102), '10.129.3.10', 24, '10.129.3.1', 1450);
});

test.after.always(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await Promise.all(Object.values(recs).map((r) => r.stop()));
  await lab.destroy();
});

serial('kernel state is flannel-shaped, and a second reconcile changes nothing', async (t) => {
  const k = new Kernel(hosts.a.ns);
  const vx = await k.link(vxlanName(101));
  t.like(vx, { kind: 'vxlan', vni: 101, local: '192.168.200.11', dev: 'eth0', port: 8472, learning: false, mtu: 1450, mac: vtepMac('node-a', 101), up: true });
  const addrs = await k.addresses();
  t.true(addrs.some((x) => x.dev === vxlanName(101) && x.cidr === '10.128.1.0/32'));
  t.true(addrs.some((x) => x.dev === bridgeName(101) && x.cidr === '10.128.1.1/24'));
  const routes = await k.ourRoutes();
  t.deepEqual(routes.filter((r) => r.dev === vxlanName(101)).map((r) => `${r.dst} ${r.via}`).sort(), ['10.128.2.0/24 10.128.2.0', '10.128.3.0/24 10.128.3.0']);
  t.true(routes.every((r) => r.onlink));
  t.deepEqual((await k.fdb(vxlanName(101))).map((f) => `${f.mac} ${f.dst}`).sort(), [`${vtepMac('node-b', 101)} 192.168.200.12`, `${vtepMac('node-c', 101)} 192.168.200.13`].sort());
  t.true((await k.neighbours(vxlanName(101))).some((n) => n.ip === '10.128.2.0' && n.mac === vtepMac('node-b', 101) && n.permanent));
  const again = await recs.a!.reconcile();
  t.true(again.ok, again.errors.join('; '));
  t.deepEqual(again.changes, { links: 0, addresses: 0, routes: 0, neighbours: 0, fdb: 0, rules: 0, fastPath: 0 });
  const record = JSON.parse(readFileSync(join(hosts.a.stateDir, 'overlay-links.json'), 'utf8')) as { links: string[] };
  t.deepEqual(record.links, ['swbr101', 'swbr102', 'swvx101', 'swvx102']);
});

serial('ICMP across hosts on the same network', async (t) => {
  t.true(await ping(c.a1!.ns, c.b1!.ip), 'a1 -> b1');
  t.true(await ping(c.a1!.ns, c.c1!.ip), 'a1 -> c1');
  t.true(await ping(c.c1!.ns, c.b1!.ip), 'c1 -> b1');
  t.true(await ping(c.b2!.ns, c.a2!.ip), 'b2 -> a2');
  t.true(await ping(c.c2!.ns, c.a2!.ip), 'c2 -> a2');
  t.true(await ping(c.b2!.ns, c.c2!.ip), 'b2 -> c2');
});

const SERVER = "const s=require('net').createServer(c=>c.end(c.remoteAddress+'\\n'));s.listen(5000,'0.0.0.0',()=>console.log('ready'))";
// Gives up after argv[2] ms (exit 2).
const CLIENT = "const c=require('net').connect(5000,process.argv[1]);let d='';c.on('data',x=>d+=x);c.on('end',()=>{process.stdout.write(d);process.exit(0)});c.on('error',e=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(2),+process.argv[2])";

async function startServer(ns: string): Promise<void> {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(p);
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
    p.on('exit', () => reject(new Error('server exited')));
  });
}

/** A TCP exchange; waitMs as for ping(): room for a busy machine by default, short where no answer is expected. */
async function tcp(from: string, to: string, waitMs = 10_000): Promise<{ ok: boolean; seenAs: string }> {
  const r = await sh(from, process.execPath, ['-e', CLIENT, to, String(waitMs)], true);
  return { ok: r.code === 0, seenAs: r.stdout.trim() };
}

serial('TCP across hosts keeps the source address (no masquerade)', async (t) => {
  await startServer(c.b1!.ns);
  await startServer(c.c1!.ns);
  t.deepEqual(await tcp(c.a1!.ns, c.b1!.ip), { ok: true, seenAs: c.a1!.ip });
  t.deepEqual(await tcp(c.b1!.ns, c.c1!.ip), { ok: true, seenAs: c.b1!.ip });
  await startServer(c.c2!.ns);
  t.deepEqual(await tcp(c.a2!.ns, c.c2!.ip), { ok: true, seenAs: c.a2!.ip }, 'second network, A -> C');
});

serial('networks are isolated, across hosts and on one host', async (t) => {
  await startServer(c.b2!.ns);
  const blocked = async (): Promise<boolean[]> => Promise.all([
    ping(c.a1!.ns, c.b2!.ip, 1), ping(c.a1!.ns, c.a2!.ip, 1), tcp(c.a1!.ns, c.b2!.ip, 1000).then((r) => r.ok),
    ping(c.c1!.ns, c.c2!.ip, 1), tcp(c.c2!.ns, c.b1!.ip, 1000).then((r) => r.ok), ping(c.b2!.ns, c.c1!.ip, 1),
  ]);
  const none = [false, false, false, false, false, false];
  t.deepEqual(await blocked(), none, 'net1 <-> net2: ping across hosts, ping on one host, TCP, both directions, on every host');
  t.true((await tcp(c.a2!.ns, c.b2!.ip)).ok, 'control: net2 to net2 works');
  // Without Docker's DROP policy our own rules must still keep the networks apart.
  try {
    for (const h of Object.values(hosts)) await sh(h.ns, 'iptables', ['-w', '-P', 'FORWARD', 'ACCEPT']);
    t.deepEqual(await blocked(), none, 'with FORWARD policy ACCEPT');
  } finally {
    for (const h of Object.values(hosts)) await sh(h.ns, 'iptables', ['-w', '-P', 'FORWARD', 'DROP']);
  }
});

serial('hand-deleted FDB, neighbour and route entries and a changed MTU are repaired by the next periodic pass', async (t) => {
  const ns = hosts.a.ns;
  const vx = vxlanName(101);
  // Host A's periodic pass is paused while the entries are deleted and the break is observed, so neither depends on
  // being faster than the period; then the next pass must repair everything.
  await recs.a!.stop();
  const before = { ...recs.a!.stats.repairs };
  const driftBefore = structuredClone(recs.a!.stats.drift);
  const startedAt = Date.now();
  await run('bridge', ['-n', ns, 'fdb', 'del', vtepMac('node-b', 101), 'dev', vx, 'self']);
  await run('ip', ['-n', ns, 'neigh', 'del', '10.128.2.0', 'dev', vx]);
  await run('ip', ['-n', ns, 'route', 'del', '10.128.2.0/24']);
  await run('ip', ['-n', ns, 'link', 'set', vx, 'mtu', '1300']);
  t.false(await ping(c.a1!.ns, c.b1!.ip, 1), 'the deletions break the path');
  const runs = recs.a!.stats.runs;
  recs.a!.start();
  t.true(await eventually(async () => recs.a!.stats.runs > runs, 30_000), 'a periodic pass ran');
  const k = new Kernel(ns);
  const [fdb, neigh, routes, link] = await Promise.all([k.fdb(vx), k.neighbours(vx), k.ourRoutes(), k.link(vx)]);
  t.true(fdb.some((f) => f.mac === vtepMac('node-b', 101) && f.dst === '192.168.200.12') &&
    neigh.some((n) => n.ip === '10.128.2.0' && n.permanent) && routes.some((r) => r.dst === '10.128.2.0/24') && link?.mtu === 1450, 'restored by that pass');
  const after = recs.a!.stats.repairs;
  t.true(after.fdb > before.fdb && after.neighbours > before.neighbours && after.routes > before.routes && after.links > before.links);
  // The desired state did not change, so these changes are drift (what `swarmnet doctor` reports), each kind dated.
  const drift = recs.a!.stats.drift;
  for (const kind of ['fdb', 'neighbours', 'routes', 'links'] as const) {
    t.true((drift[kind]?.count ?? 0) > (driftBefore[kind]?.count ?? 0) && drift[kind]!.lastAt >= startedAt, `drift of ${kind} counted`);
  }
  t.is(drift.addresses?.count ?? 0, driftBefore.addresses?.count ?? 0, 'nothing counted for what was not touched');
  t.true(await ping(c.a1!.ns, c.b1!.ip));
});

serial('a foreign flannel.1 and a foreign swvx link survive reconciles', async (t) => {
  await run('ip', ['-n', hosts.a.ns, 'link', 'add', 'swvx999', 'type', 'vxlan', 'id', '999', 'dev', 'eth0', 'dstport', '8472']);
  await run('ip', ['-n', hosts.a.ns, 'route', 'add', '10.200.0.0/24', 'dev', 'flannel.1', 'proto', 'static']);
  await recs.a!.reconcile();
  await recs.a!.reconcile();
  const names = (await new Kernel(hosts.a.ns).links()).map((l) => l.name);
  t.true(names.includes('flannel.1'));
  t.true(names.includes('swvx999'));
  const r = await run('ip', ['-n', hosts.a.ns, 'route', 'show', '10.200.0.0/24']);
  t.regex(r.stdout, /flannel\.1/);
});

serial("a removed lease's entries are gone on every host, and nothing else", async (t) => {
  t.true(await ping(c.a2!.ns, c.c2!.ip), 'before: a2 -> c2');
  leases = leases.filter((l) => !(l.networkId === net2.id && l.node === 'node-c'));
  await updateAll();
  for (const h of [hosts.a, hosts.b]) {
    const k = new Kernel(h.ns);
    t.false((await k.ourRoutes()).some((r) => r.dst === '10.129.3.0/24'), `route on ${h.node.name}`);
    t.false((await k.neighbours(vxlanName(102))).some((n) => n.ip === '10.129.3.0'), `neigh on ${h.node.name}`);
    t.false((await k.fdb(vxlanName(102))).some((f) => f.dst === '192.168.200.13'), `fdb on ${h.node.name}`);
    t.true((await k.ourRoutes()).some((r) => r.dst === '10.128.3.0/24'), `net1 route to C stays on ${h.node.name}`);
  }
  const kc = new Kernel(hosts.c.ns);
  const names = (await kc.links()).map((l) => l.name);
  t.false(names.includes(vxlanName(102)) || names.includes(bridgeName(102)), 'C no longer programs net2');
  t.false((await kc.forwardChainRules())!.some((r) => r.includes('swarmnet:102')));
  t.true(await ping(c.a1!.ns, c.c1!.ip));
  t.true(await ping(c.b2!.ns, c.a2!.ip));
  t.false(await ping(c.a2!.ns, c.c2!.ip, 1), 'after: no path to the removed lease');
});

serial("a removed network's kernel state is gone, the other network keeps working", async (t) => {
  networks = [net1];
  leases = leases.filter((l) => l.networkId === net1.id);
  const drift = Object.keys(hosts).map((k) => structuredClone(recs[k]!.stats.drift));
  await updateAll();
  t.deepEqual(Object.keys(hosts).map((k) => recs[k]!.stats.drift), drift, 'changes that follow the desired state are not drift');
  for (const h of Object.values(hosts)) {
    const k = new Kernel(h.ns);
    const names = (await k.links()).map((l) => l.name);
    t.false(names.includes(vxlanName(102)) || names.includes(bridgeName(102)), h.node.name);
    t.false((await k.ourRoutes()).some((r) => r.dst.startsWith('10.129.')));
    t.deepEqual((await k.forwardChainRules())!.filter((r) => r.includes('ACCEPT')).length, 3);
  }
  const record = JSON.parse(readFileSync(join(hosts.a.stateDir, 'overlay-links.json'), 'utf8')) as { links: string[] };
  t.deepEqual(record.links, ['swbr101', 'swvx101']);
  t.true(await ping(c.b1!.ns, c.a1!.ip));
  t.true((await run('ip', ['-n', hosts.a.ns, 'link', 'show', 'flannel.1'])).code === 0);
  const ka = new Kernel(hosts.a.ns);
  t.true((await ka.links()).some((l) => l.name === 'swvx999'), 'a foreign link with our prefix stays');
  t.regex((await run('ip', ['-n', hosts.a.ns, 'route', 'show', '10.200.0.0/24'])).stdout, /flannel\.1/, 'a foreign route stays');
  t.is((await ka.fdb(vxlanName(101))).length, 2, "net1's FDB entries stay");
  t.is((await ka.neighbours(vxlanName(101))).filter((n) => n.permanent).length, 2, "net1's neighbour entries stay");
});
