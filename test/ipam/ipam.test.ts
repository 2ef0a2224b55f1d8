import test, { type ExecutionContext } from 'ava';
import type Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import { logger, setLogLevel } from '../../common/log.js';
import { contains, formatCidr, formatIp, parseCidr, parseIp, type Cidr } from '../../common/cidr.js';
import { PluginError } from '../../plugin/protocol/contract.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { checkInvariants } from '../helpers/invariants.js';
import { beforeGuard, retry, until } from '../helpers/wait.js';
import { makeNode, nameStartingLike, randomPrefix, type TestNode } from './setup.js';
import { AddressAudit } from '../../plugin/address-audit.js';

setLogLevel('silent');
const G = 'SwarmnetGlobal';
const L = 'SwarmnetLocal';
/** A RequestPool as Docker sends it: the global (Swarm) or local space, a pool or none, options. */
const poolRequest = (space: string, p = '', options: Record<string, string> = {}) => ({ AddressSpace: space, Pool: p, SubPool: '', Options: options, V6: false });
let etcd: TestEtcd;
const opened: TestNode[] = [];
const node = (prefix: string, name: string, o?: Parameters<typeof makeNode>[3]): TestNode => {
  const n = makeNode(etcd.endpoint, prefix, name, o);
  opened.push(n);
  return n;
};

test.before(async (t) => {
  if (!hasEtcd) return t.log('skipped: /usr/bin/etcd not installed');
  etcd = await TestEtcd.start();
});
test.after.always(async () => {
  for (const n of opened) await n.close();
  await etcd?.stop();
});

const ip = (cidr: string): number => parseIp(cidr.split('/')[0]!);

test('three instances racing: no duplicate subnet, VNI, VIP or address; no allocation without an owner', async (t) => {
  const prefix = randomPrefix();
  const nodes = ['n1', 'n2', 'n3'].map((n) => node(prefix, n));
  const pools = (await Promise.all(nodes.flatMap((n) => [1, 2, 3].map(() => n.ipam.requestPool(poolRequest(G))))));
  t.is(new Set(pools.map((p) => p.Pool)).size, 9);
  const addrs: string[] = [];
  const vips: string[] = [];
  await Promise.all(nodes.flatMap((n, ni) => pools.map(async (p) => {
    const local = await n.ipam.requestPool(poolRequest(L, p.Pool));
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const mac = `02:42:0a:${ni.toString(16).padStart(2, '0')}:${(i + 1).toString(16).padStart(2, '0')}:01`;
      addrs.push(`${p.Pool} ${(await n.ipam.requestAddress({ PoolID: local.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': mac } })).Address}`);
    }));
    await Promise.all(Array.from({ length: 5 }, async () => {
      vips.push(`${p.Pool} ${(await n.ipam.requestAddress({ PoolID: p.PoolID, Address: '', Options: {} })).Address}`);
    }));
  })));
  t.is(addrs.length, 540);
  t.is(new Set(addrs).size, 540);
  t.is(new Set(vips).size, 135);
  t.deepEqual(await checkInvariants(nodes[0]!.client, prefix), []);
  // Second round: every instance releases a third of its addresses while all three allocate again.
  const locals = await Promise.all(nodes.map((n) => Promise.all(pools.map((p) => n.ipam.requestPool(poolRequest(L, p.Pool))))));
  const byNode = new Map<number, { pool: string; address: string }[]>();
  for (const line of addrs) {
    const [pool, address] = line.split(' ') as [string, string];
    const owner = JSON.parse((await nodes[0]!.client.get(`${prefix}/swarmnet/addresses/${pool.replace('/', '-')}/${ip(address).toString(16).padStart(8, '0')}`).string())!) as { node: string };
    const ni = Number(owner.node.slice(1)) - 1;
    const list = byNode.get(ni) ?? [];
    list.push({ pool, address });
    byNode.set(ni, list);
  }
  const again: string[] = [];
  await Promise.all(nodes.flatMap((n, ni) => [
    ...(byNode.get(ni) ?? []).filter((_, i) => i % 3 === 0).map(async ({ pool, address }) => {
      const lp = locals[ni]!.find((l) => l.Pool === pool)!;
      await n.ipam.releaseAddress({ PoolID: lp.PoolID, Address: address.split('/')[0]! });
    }),
    ...locals[ni]!.flatMap((lp, j) => Array.from({ length: 6 }, async (_, i) => {
      const mac = `02:42:0b:${ni.toString(16).padStart(2, '0')}:${(j + 1).toString(16).padStart(2, '0')}:${(i + 1).toString(16).padStart(2, '0')}`;
      again.push(`${lp.Pool} ${(await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': mac } })).Address}`);
    })),
  ]));
  t.is(again.length, 162);
  const live = await nodes[0]!.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).keys();
  t.is(live.length, 540 - 180 + 162, 'every release freed exactly one record, every allocation added one');
  t.deepEqual(await checkInvariants(nodes[0]!.client, prefix), []);
});

/**
 * Replays the recorded Docker 20.10 call sequence, translating the stub's 10.77.0.N answers to ours. Global-space
 * calls go to the manager's instance, local-space calls to the task node's (the same one on a single-node swarm).
 */
async function replayFixture(t: ExecutionContext, mgr: TestNode, task: TestNode, prefix: string): Promise<void> {
  const lines = readFileSync(new URL('../fixtures/docker-20.10-swarm-plugin-calls.jsonl', import.meta.url), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { endpoint: string; request: Record<string, unknown> | null });
  let stubN = 2;
  const ours = new Map<string, { address: string; poolId: string }>();
  const pool: Record<string, string> = {};
  let network = '';
  const local: string[] = [];
  const held: Cidr[] = [];
  const on = (poolId: string): TestNode => (poolId.startsWith('global/') ? mgr : task);
  for (const { endpoint, request } of lines) {
    const r = request ?? {};
    if (endpoint === '/IpamDriver.RequestPool') {
      const space = r.AddressSpace === 'g' ? G : L;
      const res = await (space === G ? mgr : task).ipam.requestPool(poolRequest(space, r.Pool ? network : '', (r.Options ?? {}) as Record<string, string>));
      if (space === G) network = res.Pool;
      else held.push((await task.ipam.localHostLease(parseCidr(network))).subnet);
      pool[space] = res.PoolID;
    } else if (endpoint === '/IpamDriver.RequestAddress') {
      const opts = (r.Options ?? {}) as Record<string, string>;
      const preferred = r.Address ? ours.get(r.Address as string)?.address ?? '' : '';
      const poolId = r.Address || (opts.RequestAddressType && !opts['com.docker.network.ipam.serial']) ? pool[L]! : pool[G]!;
      const res = await on(poolId).ipam.requestAddress({ PoolID: poolId, Address: preferred.split('/')[0] ?? '', Options: opts });
      ours.set(`10.77.0.${stubN++}`, { address: res.Address, poolId });
      if (poolId === pool[L] && !opts.RequestAddressType) local.push(res.Address);
    } else if (endpoint === '/IpamDriver.ReleaseAddress') {
      const a = ours.get(r.Address as string);
      if (!a) return void t.fail(`fixture releases unknown ${String(r.Address)}`);
      await on(a.poolId).ipam.releaseAddress({ PoolID: a.poolId, Address: a.address.split('/')[0]! });
    } else if (endpoint === '/IpamDriver.ReleasePool') {
      // As recorded, Docker releases the manager-side pool first and the node's later: both orders must be safe.
      const space = pool[G] ? G : L;
      await (space === G ? mgr : task).ipam.releasePool({ PoolID: pool[space]! });
      delete pool[space];
    }
  }
  t.true(local.length >= 6, `task addresses: ${local.join(' ')}`);
  for (const a of local) {
    t.true(a.endsWith('/25'), a);
    t.true(held.some((h) => contains(h, ip(a))), `${a} in the task node's host subnet`);
  }
  t.true(local.every((a) => !contains(parseCidr('10.128.15.128/25'), ip(a)) && !contains(parseCidr('10.128.31.128/25'), ip(a))), 'no task keeps a placeholder from the VIP block');
  const left = await mgr.client.getAll().prefix(`${prefix}/`).keys();
  t.deepEqual(left, [], 'nothing left in etcd after the network is removed');
}

test('re-homing: the fixture sequence gets local addresses on the task node and leaks nothing (single node)', async (t) => {
  const prefix = randomPrefix();
  const n = node(prefix, 'task-node');
  await replayFixture(t, n, n, prefix);
});

test('re-homing: the fixture sequence with the manager and the task node as separate instances', async (t) => {
  const prefix = randomPrefix();
  const mgr = node(prefix, 'manager');
  const task = node(prefix, 'worker');
  await replayFixture(t, mgr, task, prefix);
});

test('leader change: a new leader replaying RequestPool/RequestAddress gets the same answers and allocates nothing new', async (t) => {
  const prefix = randomPrefix();
  const a = node(prefix, 'mgr-a');
  const b = node(prefix, 'mgr-b');
  const p = await a.ipam.requestPool(poolRequest(G, '', { 'flannel-id': 'x' }));
  const vip = await a.ipam.requestAddress({ PoolID: p.PoolID, Address: '', Options: {} });
  const before = await a.client.getAll().prefix(`${prefix}/`).strings();
  const p2 = await b.ipam.requestPool(poolRequest(G, p.Pool, { 'flannel-id': 'x' }));
  t.deepEqual(p2, p);
  const vip2 = await b.ipam.requestAddress({ PoolID: p2.PoolID, Address: vip.Address.split('/')[0]!, Options: {} });
  t.is(vip2.Address, vip.Address);
  t.deepEqual(await b.client.getAll().prefix(`${prefix}/`).strings(), before);
  const next = await b.ipam.requestAddress({ PoolID: p2.PoolID, Address: '', Options: {} });
  t.not(next.Address, vip.Address, 'the replayed VIP is not handed out again');
});

test('plugin restart: a replay returns the same address and live addresses survive the old lease', async (t) => {
  const prefix = randomPrefix();
  const first = node(prefix, 'w1', { ttl: 3 });
  const p = await first.ipam.requestPool(poolRequest(G));
  const lp = await first.ipam.requestPool(poolRequest(L, p.Pool));
  const mac = { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:05' };
  const kept = await first.ipam.requestAddress({ PoolID: lp.PoolID, Address: '10.128.15.130', Options: mac });
  const dead = await first.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:06' } });
  const oldLease = await first.lease.id();
  await first.close(); // process gone, lease not revoked
  const second = node(prefix, 'w1', { ttl: 3 });
  const released = await second.ipam.reconcileNode({ macs: new Set(['02:42:0a:80:00:05']), addresses: new Set() });
  t.deepEqual(released, [dead.Address.split('/')[0]]);
  // the old lease expires (etcd says so: TTL -1), however long that takes here
  t.true(await until(async () => Number((await second.client.leaseClient.leaseTimeToLive({ ID: oldLease })).TTL) < 0, 60_000, 200), 'the old lease expired');
  const again = await second.ipam.requestAddress({ PoolID: lp.PoolID, Address: '10.128.15.130', Options: mac });
  t.is(again.Address, kept.Address);
  t.deepEqual(await checkInvariants(second.client, prefix), []);
  const addrs = await second.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).keys();
  t.is(addrs.length, 1);
});

test('plugin restart: the new run holds the old run\'s records under its lease before Docker answers, releasing nothing', async (t) => {
  const prefix = randomPrefix();
  const first = node(prefix, 'w1', { ttl: 3 });
  const p = await first.ipam.requestPool(poolRequest(G));
  const lp = await first.ipam.requestPool(poolRequest(L, p.Pool));
  const a = await first.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:07' } });
  const b = await first.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:08' } });
  const oldLease = await first.lease.id();
  const before = await first.client.getAll().prefix(`${prefix}/`).strings();
  await first.close(); // process gone, lease not revoked
  const second = node(prefix, 'w1', { ttl: 3 });
  t.is(await second.ipam.holdNodeRecords(), 2);
  t.true(await until(async () => Number((await second.client.leaseClient.leaseTimeToLive({ ID: oldLease })).TTL) < 0, 60_000, 200), 'the old lease expired');
  // Everything the first run wrote for this node is still there (the network itself was never under a lease).
  t.deepEqual(await second.client.getAll().prefix(`${prefix}/`).strings(), before);
  // And is still this node's: a new request gets neither address.
  const c = await second.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:09' } });
  t.false([a.Address, b.Address].includes(c.Address));
  t.deepEqual(await checkInvariants(second.client, prefix), []);
  await second.close(true);
});

test('watching the records: the first change a consumer hears of already holds every network with all its leases (a restarted plugin never programs a partial view)', async (t) => {
  const prefix = randomPrefix();
  const a = node(prefix, 'a');
  const b = node(prefix, 'b');
  const p = await a.ipam.requestPool(poolRequest(G));
  for (const n of [a, b]) await n.ipam.requestPool(poolRequest(L, p.Pool));
  const fresh = node(prefix, 'a');
  const seen: string[] = [];
  const cancel = await fresh.ipam.watchRecords(() => {
    const s = fresh.ipam.overlayState((id) => fresh.ipam.records.holds(id, 'a'));
    seen.push(`${s.networks.length} network(s), leases of ${s.leases.map((l) => l.node).sort().join(',')}`);
  });
  t.teardown(cancel);
  t.true(seen.length > 0);
  t.deepEqual([...new Set(seen)], ['1 network(s), leases of a,b'], 'every view the consumer was told of');
});

test('a dead node: its host subnet and addresses are reclaimed after the lease TTL', async (t) => {
  const prefix = randomPrefix();
  const mgr = node(prefix, 'mgr');
  const dying = node(prefix, 'dying', { ttl: 3 });
  const p = await mgr.ipam.requestPool(poolRequest(G));
  const lp = await dying.ipam.requestPool(poolRequest(L, p.Pool));
  await dying.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} });
  const held = (await dying.ipam.localHostLease(parseCidr(p.Pool))).subnet;
  const cancel = await mgr.ipam.watchRecords(() => {});
  t.teardown(cancel);
  t.deepEqual(mgr.ipam.overlayState().leases.map((l) => [l.node, l.subnet]), [['dying', held]]);
  await dying.close();
  // reclaimed when etcd expires the lease (TTL 3 s), however long after that this machine gets to it
  t.true(await until(async () => mgr.ipam.overlayState().leases.length === 0, 60_000, 200), 'the dead node\'s host subnet lease is gone');
  t.deepEqual(await mgr.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).keys(), []);
  // The node comes back under a new lease: it starts its search where it did before and finds the subnet free.
  const back = node(prefix, 'dying');
  const blp = await back.ipam.requestPool(poolRequest(L, p.Pool));
  t.deepEqual((await back.ipam.localHostLease(parseCidr(p.Pool))).subnet, held, 'the freed host subnet is reused');
  t.truthy(blp.PoolID);
});

test('etcd restart: calls fail with 503 while it is down and nothing is lost after', async (t) => {
  const own = await TestEtcd.start();
  const n = makeNode(own.endpoint, randomPrefix(), 'w');
  try {
    const p = await n.ipam.requestPool(poolRequest(G));
    const lp = await n.ipam.requestPool(poolRequest(L, p.Pool));
    const mac = { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:07' };
    const a = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: mac });
    await own.stopProcess();
    // Bounded retries under the call deadline (5 s): the call gives up by itself, long before the test's guard.
    const err = await t.throwsAsync(beforeGuard(n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} }), 90_000, 'the call kept retrying'));
    t.is((err as PluginError).status, 503);
    t.regex(err!.message, /etcd is unavailable/);
    await own.startProcess();
    const again = await retry(() => n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: mac }), 60_000, 200);
    t.is(again.Address, a.Address);
    const b = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} });
    t.not(b.Address, a.Address);
  } finally {
    await n.close();
    await own.stop();
  }
});

test('a release while etcd is down is owed, not lost: answered, retried until etcd takes it; an address handed out again meanwhile keeps its record', async (t) => {
  const own = await TestEtcd.start();
  const prefix = randomPrefix();
  const n = makeNode(own.endpoint, prefix, 'w');
  try {
    const p = await n.ipam.requestPool(poolRequest(G));
    const lp = await n.ipam.requestPool(poolRequest(L, p.Pool));
    const macA = { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:0a' };
    const macB = { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:0b' };
    const a = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: macA });
    const b = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: macB });
    const vip = await n.ipam.requestAddress({ PoolID: p.PoolID, Address: '', Options: {} });
    await own.stopProcess();
    // Docker never asks twice: each release is answered, and owed.
    await beforeGuard(n.ipam.releaseAddress({ PoolID: lp.PoolID, Address: a.Address }), 90_000, 'the release kept retrying');
    await n.ipam.releaseAddress({ PoolID: lp.PoolID, Address: b.Address });
    await n.ipam.releaseAddress({ PoolID: p.PoolID, Address: vip.Address });
    t.is(n.ipam.owedReleases, 3);
    await own.startProcess();
    // B's container comes back first (a replay of its MAC): its release is no longer owed.
    const again = await retry(() => n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: macB }), 60_000, 200);
    t.is(again.Address, b.Address);
    t.true(await until(() => n.ipam.owedReleases === 0, 60_000), `${n.ipam.owedReleases} release(s) still owed`);
    const hexOf = (addr: string): string => parseIp(addr.split('/')[0]!).toString(16).padStart(8, '0');
    const local = await n.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).keys();
    t.deepEqual(local.map((k) => k.slice(k.lastIndexOf('/') + 1)), [hexOf(b.Address)], 'A released, B kept');
    t.deepEqual(await n.client.getAll().prefix(`${prefix}/swarmnet/leader-addresses/`).keys(), [], 'the VIP released');
    t.deepEqual(await checkInvariants(n.client, prefix), []);
  } finally {
    n.ipam.close();
    await n.close();
    await own.stop();
  }
});

test('bad input gets a clear 400', async (t) => {
  const prefix = randomPrefix();
  const n = node(prefix, 'b', { available: '10.128.0.0/20' });
  const bad = async (p: Promise<unknown>, re: RegExp) => {
    const e = await t.throwsAsync(p);
    t.true(e instanceof PluginError && e.status === 400, String(e));
    t.regex(e!.message, re);
  };
  await bad(n.ipam.requestAddress({ PoolID: 'nope', Address: '', Options: {} }), /unknown pool/);
  await bad(n.ipam.requestAddress({ PoolID: 'global/10.128.0.0-20', Address: '', Options: {} }), /unknown pool/);
  await bad(n.ipam.requestPool(poolRequest(G, '10.1.0.0/20')), /outside AVAILABLE_SUBNETS/);
  await bad(n.ipam.requestPool(poolRequest(G, '10.128.0.0/33')), /malformed pool/);
  await bad(n.ipam.requestPool(poolRequest(G, '', { 'flannel-id': 'a b' })), /malformed flannel-id/);
  await bad(n.ipam.requestPool(poolRequest(L, '10.128.0.0/20')), /unknown pool/);
  const p = await n.ipam.requestPool(poolRequest(G, '10.128.0.0/20'));
  await bad(n.ipam.requestPool(poolRequest(G)), /no free \/20/);
  const lp = await n.ipam.requestPool(poolRequest(L, p.Pool));
  await bad(n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '10.9.9.9', Options: {} }), /outside pool/);
  await bad(n.ipam.requestAddress({ PoolID: lp.PoolID, Address: 'x', Options: {} }), /malformed address/);
  await bad(n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '10.128.3.3', Options: {} }), /not in this node's host subnet/);
  await bad(n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': 'zz' } }), /malformed MAC/);
  await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '10.128.0.10', Options: {} });
  await bad(n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '10.128.0.10', Options: { 'com.docker.network.endpoint.macaddress': '02:42:00:00:00:01' } }), /already in use/);
  for (let i = 0; i < 124; i++) await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} });
  await bad(n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} }), /exhausted/);
});

test('the invariant checker catches an address without an owner and a duplicate VNI', async (t) => {
  const prefix = randomPrefix();
  const n = node(prefix, 'inv');
  const p = await n.ipam.requestPool(poolRequest(G));
  t.deepEqual(await checkInvariants(n.client, prefix), []);
  await n.client.put(`${prefix}/swarmnet/addresses/10.128.0.0-20/0a800005`).value('{"node":"ghost"}').exec();
  const rec = JSON.parse((await n.client.get(`${prefix}/swarmnet/networks/10.128.0.0-20`).string())!) as Record<string, unknown>;
  await n.client.put(`${prefix}/swarmnet/networks/10.128.16.0-20`).value(JSON.stringify({ ...rec, id: '10.128.16.0-20', subnet: '10.128.16.0/20' })).exec();
  await n.client.put(`${prefix}/swarmnet/address-keys/10.128.0.0-20/inv/mac-02:42:00:00:00:01`).value('0a800005').exec();
  const bad = await checkInvariants(n.client, prefix);
  t.true(bad.some((b) => b.includes('no owner host subnet')), bad.join('; '));
  t.true(bad.some((b) => b.includes('which is not its record')), bad.join('; '));
  t.true(bad.some((b) => b.includes(`VNI 6514 used twice`)), bad.join('; '));
  t.truthy(p.PoolID);
});

const MAC = 'com.docker.network.endpoint.macaddress';

test('owner-checked release: a late ReleaseAddress from a node whose lease expired never frees the new owner\'s address', async (t) => {
  const prefix = randomPrefix();
  const mgr = node(prefix, 'mgr');
  const x = node(prefix, 'x');
  // 31 host subnets in a /20 of /25s (the last block is the VIP block); y searches from where x did
  const y = node(prefix, nameStartingLike('x', 31, 'y'));
  const p = await mgr.ipam.requestPool(poolRequest(G));
  const xl = await x.ipam.requestPool(poolRequest(L, p.Pool));
  const old = await x.ipam.requestAddress({ PoolID: xl.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:00:0a' } });
  // x's etcd lease ends (partitioned longer than the TTL): its host subnet and address vanish; y takes them over.
  await x.client.leaseClient.leaseRevoke({ ID: await x.lease.id() });
  const yl = await y.ipam.requestPool(poolRequest(L, p.Pool));
  const taken = await y.ipam.requestAddress({ PoolID: yl.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:00:0b' } });
  t.is(taken.Address, old.Address, 'y got the same host subnet and first address');
  // x comes back and Docker's late release for its old container arrives.
  await x.ipam.releaseAddress({ PoolID: xl.PoolID, Address: old.Address.split('/')[0]! });
  await x.ipam.releaseAddress({ PoolID: xl.PoolID, Address: old.Address.split('/')[0]! });
  const rec = await y.client.get(`${prefix}/swarmnet/addresses/10.128.0.0-20/${ip(taken.Address).toString(16).padStart(8, '0')}`).string();
  t.deepEqual(JSON.parse(rec!), { node: nameStartingLike('x', 31, 'y'), key: 'mac-02:42:00:00:00:0b' }, "y's address survives the late release");
  // x still caches the host subnet it lost: a new allocation must not land in y's subnet.
  // until x's lease was re-granted (found lost at the next keep-alive, then a backoff)
  const next = await retry(() => x.ipam.requestAddress({ PoolID: xl.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:00:0c' } }), 60_000);
  t.false(contains({ network: ip(taken.Address) & ~127 >>> 0, prefix: 25 }, ip(next.Address)), `${next.Address} is outside y's host subnet`);
  t.deepEqual(await checkInvariants(mgr.client, prefix), []);
});

test('owner-checked release: a release of an already released or never allocated address is a no-op', async (t) => {
  const prefix = randomPrefix();
  const n = node(prefix, 'r');
  const p = await n.ipam.requestPool(poolRequest(G));
  const lp = await n.ipam.requestPool(poolRequest(L, p.Pool));
  const a = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:01:01' } });
  await n.ipam.releaseAddress({ PoolID: lp.PoolID, Address: a.Address.split('/')[0]! });
  const b = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:01:02' } });
  await n.ipam.releaseAddress({ PoolID: lp.PoolID, Address: '10.128.0.77' });
  await n.ipam.releaseAddress({ PoolID: p.PoolID, Address: '10.128.15.200' });
  const replay = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:01:02' } });
  t.is(replay.Address, b.Address, 'b is still allocated to its MAC');
  const keys = await n.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).keys();
  t.is(keys.length, 1);
});

test('--subnet: honoured when inside AVAILABLE_SUBNETS and free; refused when outside, misaligned or held by another flannel-id', async (t) => {
  const prefix = randomPrefix();
  const n = node(prefix, 's');
  const got = await n.ipam.requestPool(poolRequest(G, '10.128.48.0/20', { 'flannel-id': 'one' }));
  t.is(got.Pool, '10.128.48.0/20', 'the user subnet, not the first free one');
  const next = await n.ipam.requestPool(poolRequest(G));
  t.is(next.Pool, '10.128.0.0/20', 'automatic allocation skips nothing and takes the first free');
  const again = await n.ipam.requestPool(poolRequest(G, '', { 'flannel-id': 'one' }));
  t.is(again.Pool, '10.128.16.0/20', 'a reused flannel-id is only an attribute: a network of its own');
  const recs = await n.ipam.networks();
  t.is(new Set(recs.map((r) => r.vni)).size, 3, 'three networks, three VNIs');
  const refused = async (pool: string, opts: Record<string, string>, re: RegExp): Promise<void> => {
    const e = await t.throwsAsync(n.ipam.requestPool(poolRequest(G, pool, opts)));
    t.is((e as PluginError).status, 400);
    t.regex(e!.message, re);
  };
  await refused('10.128.48.0/20', { 'flannel-id': 'two' }, /already used by network flannel-id=one/);
  await refused('10.128.48.0/21', {}, /must be a \/20/);
  await refused('10.128.49.0/20', {}, /host bits set/);
  await refused('172.16.0.0/20', {}, /outside AVAILABLE_SUBNETS/);
  const e = await t.throwsAsync(n.ipam.requestPool({ AddressSpace: G, Pool: '10.128.0.0/20', SubPool: '10.128.0.0/24', Options: {}, V6: false }));
  t.regex(e!.message, /SubPool/);
  const v6 = await t.throwsAsync(n.ipam.requestPool({ ...poolRequest(G), V6: true }));
  t.regex(v6!.message, /IPv6/);
  const sp = await t.throwsAsync(n.ipam.requestPool(poolRequest('nope')));
  t.regex(sp!.message, /unknown address space/);
  t.deepEqual(await checkInvariants(n.client, prefix), []);
});

test('--ip: honoured when free and in the node\'s host subnet; refused clearly otherwise', async (t) => {
  const prefix = randomPrefix();
  const a = node(prefix, 'ipa');
  const b = node(prefix, 'ipb');
  const p = await a.ipam.requestPool(poolRequest(G));
  const al = await a.ipam.requestPool(poolRequest(L, p.Pool));
  const bl = await b.ipam.requestPool(poolRequest(L, p.Pool));
  const aSub = await a.ipam.localHostLease(parseCidr(p.Pool));
  const bSub = await b.ipam.localHostLease(parseCidr(p.Pool));
  t.notDeepEqual(aSub.subnet, bSub.subnet);
  // The leader passes a user's --ip through; the task node enforces it.
  const mine = formatIp(aSub.subnet.network + 50);
  const leader = await a.ipam.requestAddress({ PoolID: p.PoolID, Address: mine, Options: {} });
  t.is(leader.Address, `${mine}/20`);
  const got = await a.ipam.requestAddress({ PoolID: al.PoolID, Address: mine, Options: { [MAC]: '02:42:00:00:02:01' } });
  t.is(got.Address, `${mine}/25`, 'honoured, with the host-subnet prefix');
  const replay = await a.ipam.requestAddress({ PoolID: al.PoolID, Address: mine, Options: { [MAC]: '02:42:00:00:02:01' } });
  t.is(replay.Address, got.Address, 'a replay of the same container gets it again');
  const taken = await t.throwsAsync(a.ipam.requestAddress({ PoolID: al.PoolID, Address: mine, Options: { [MAC]: '02:42:00:00:02:02' } }));
  t.true(taken!.message.includes(`${mine} is already in use`), taken!.message);
  const elsewhere = await t.throwsAsync(b.ipam.requestAddress({ PoolID: bl.PoolID, Address: formatIp(aSub.subnet.network + 51), Options: {} }));
  t.true(elsewhere!.message.includes(`not in this node's host subnet ${formatCidr(bSub.subnet)} (--ip must be inside it)`), elsewhere!.message);
  const gw = await t.throwsAsync(a.ipam.requestAddress({ PoolID: al.PoolID, Address: formatIp(aSub.gateway), Options: {} }));
  t.regex(gw!.message, /gateway/);
  t.deepEqual(await checkInvariants(a.client, prefix), []);
});

test('restart reconciliation: Docker trumps etcd trumps memory; nothing is released while etcd is unreachable', async (t) => {
  const own = await TestEtcd.start();
  const prefix = randomPrefix();
  let n = makeNode(own.endpoint, prefix, 'rr');
  try {
    const p = await n.ipam.requestPool(poolRequest(G));
    const lp = await n.ipam.requestPool(poolRequest(L, p.Pool));
    const live = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:03:01' } });
    const dead = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:03:02' } });
    await n.ipam.putEndpoint({ networkId: '10.128.0.0-20', endpointId: 'e-live', address: live.Address, mac: '02:42:00:00:03:01' });
    await n.close();
    n = makeNode(own.endpoint, prefix, 'rr'); // the restarted plugin
    // Docker is creating a container right now: its address is not in the listing taken a moment ago.
    const creating = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:03:03' } });
    const listing = { macs: new Set(['02:42:00:00:03:01']), addresses: new Set<string>() };
    await own.stopProcess();
    const e = await t.throwsAsync(n.ipam.reconcileNode(listing));
    t.is((e as PluginError).status, 503);
    await own.startProcess();
    const released = await retry(() => n.ipam.reconcileNode(listing), 60_000, 200);
    t.deepEqual(released, [dead.Address.split('/')[0]], 'only the address with no owner in Docker');
    const left = await n.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).strings();
    t.deepEqual(Object.values(left).map((v) => (JSON.parse(v) as { key: string }).key).sort(), ['mac-02:42:00:00:03:01', 'mac-02:42:00:00:03:03']);
    // Everything kept now hangs on the new node lease: revoking the old one (as its TTL would) loses nothing.
    const all = await n.client.getAll().prefix(`${prefix}/`).exec();
    const newLease = await n.lease.id();
    for (const kv of all.kvs) if (kv.lease !== '0') t.is(kv.lease, newLease, kv.key.toString());
    t.truthy(all.kvs.find((kv) => kv.key.toString().endsWith('/endpoints/rr/e-live')), 'the live endpoint record is kept');
    t.is(creating.Address.split('/')[0], formatIp((await n.ipam.localHostLease(parseCidr(p.Pool))).subnet.network + 4), 'the fourth address of the host subnet: gateway, live, dead, then this');
    t.deepEqual(await checkInvariants(n.client, prefix), []);
  } finally {
    await n.close();
    await own.stop();
  }
});

test('lost node lease: running containers get their address records back; a host subnet taken meanwhile is not stolen', async (t) => {
  const prefix = randomPrefix();
  const mgr = node(prefix, 'mgr');
  const x = node(prefix, 'lx');
  const p = await mgr.ipam.requestPool(poolRequest(G));
  const p2 = await mgr.ipam.requestPool(poolRequest(G));
  const xl = await x.ipam.requestPool(poolRequest(L, p.Pool));
  const xl2 = await x.ipam.requestPool(poolRequest(L, p2.Pool));
  const a1 = await x.ipam.requestAddress({ PoolID: xl.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:04:01' } });
  const a2 = await x.ipam.requestAddress({ PoolID: xl.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:04:02' } });
  const b1 = await x.ipam.requestAddress({ PoolID: xl2.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:04:03' } });
  // x is cut off longer than its TTL: etcd drops its records (containers keep running); y takes x's subnet in net 2.
  await x.client.leaseClient.leaseRevoke({ ID: await x.lease.id() });
  const yName = nameStartingLike('lx', 31, 'ly');
  const y = node(prefix, yName);
  const yl2 = await y.ipam.requestPool(poolRequest(L, p2.Pool));
  t.is((await y.ipam.localHostLease(parseCidr(p2.Pool))).subnet.network, ip(b1.Address) & ~127 >>> 0, "y now holds x's old host subnet of net 2");
  const live = {
    macs: new Set(['02:42:00:00:04:01', '02:42:00:00:04:02', '02:42:00:00:04:03']),
    addresses: new Set([a1.Address, a2.Address, b1.Address].map((a) => a.split('/')[0]!)),
    endpoints: [[a1, '01'], [a2, '02'], [b1, '03']].map(([a, m]) => ({ address: (a as { Address: string }).Address.split('/')[0]!, mac: `02:42:00:00:04:${m as string}` })),
  };
  const released = await retry(() => x.ipam.reconcileNode(live), 60_000); // until x's lease was re-granted
  t.deepEqual(released, []);
  const replay1 = await x.ipam.requestAddress({ PoolID: xl.PoolID, Address: '', Options: { [MAC]: '02:42:00:00:04:02' } });
  t.is(replay1.Address, a2.Address, 'a replay by MAC finds the re-recorded address');
  t.is((await x.ipam.localHostLease(parseCidr(p.Pool))).subnet.network, ip(a1.Address) & ~127 >>> 0, 'x holds its old host subnet of net 1 again');
  const owners = await mgr.client.getAll().prefix(`${prefix}/swarmnet/node-subnets/`).strings();
  t.is(owners[`${prefix}/swarmnet/node-subnets/${p2.Pool.replace('/', '-')}/${yName}`], cidrKey(b1.Address), 'y keeps the subnet it took');
  t.false(`${prefix}/swarmnet/node-subnets/${p2.Pool.replace('/', '-')}/lx` in owners, 'x did not claim a second one for the conflicting container');
  t.truthy(yl2.PoolID);
  t.deepEqual(await checkInvariants(mgr.client, prefix), []);
});

function cidrKey(address: string): string {
  const n = ip(address) & ~127 >>> 0;
  return `${[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')}-25`;
}

test('exhausted host subnets and an exhausted VIP block get clear errors and leave the plan intact', async (t) => {
  const prefix = randomPrefix();
  const small = { available: '10.130.0.0/23', networkSize: 24, hostSize: 26 }; // 3 host subnets + the VIP block
  const nodes = ['h1', 'h2', 'h3', 'h4'].map((n) => node(prefix, n, small));
  const p = await nodes[0]!.ipam.requestPool(poolRequest(G));
  for (const n of nodes.slice(0, 3)) await n.ipam.requestPool(poolRequest(L, p.Pool));
  const e = await t.throwsAsync(nodes[3]!.ipam.requestPool(poolRequest(L, p.Pool)));
  t.is((e as PluginError).status, 400);
  t.regex(e!.message, /network 10\.130\.0\.0\/24 has no free \/26 host subnet for node h4/);
  for (let i = 0; i < 62; i++) await nodes[0]!.ipam.requestAddress({ PoolID: p.PoolID, Address: '', Options: {} });
  const v = await t.throwsAsync(nodes[1]!.ipam.requestAddress({ PoolID: p.PoolID, Address: '', Options: {} }));
  t.regex(v!.message, /VIP block 10\.130\.0\.192\/26 of network 10\.130\.0\.0\/24 is exhausted/);
  t.deepEqual(await checkInvariants(nodes[0]!.client, prefix), []);
});

test('networkByDockerId: one key read once known; a re-pointed or deleted network is not answered from the hint', async (t) => {
  const prefix = randomPrefix();
  const a = node(prefix, 'm1');
  const b = node(prefix, 'm2');
  const p = await a.ipam.requestPool(poolRequest(G));
  await a.ipam.updateNetwork(parseCidr(p.Pool), { dockerNetworkId: 'd1' });
  let rangeReads = 0;
  const getAll = a.client.getAll.bind(a.client);
  a.client.getAll = () => { rangeReads++; return getAll(); };
  t.is((await a.ipam.networkByDockerId('d1'))?.subnet, p.Pool);
  t.is((await a.ipam.networkByDockerId('d1'))?.subnet, p.Pool);
  t.is((await a.ipam.networkByDockerId('d1'))?.subnet, p.Pool);
  t.is(rangeReads, 0, 'a binding this node made is known: the network is read by its key');
  // Another manager re-points the record (Docker re-created the network): the hint must not answer for d1.
  await b.ipam.updateNetwork(parseCidr(p.Pool), { dockerNetworkId: 'd2' });
  t.is(await a.ipam.networkByDockerId('d1'), undefined);
  t.is((await a.ipam.networkByDockerId('d2'))?.subnet, p.Pool);
  await b.ipam.releasePool({ PoolID: p.PoolID });
  t.is(await a.ipam.networkByDockerId('d2'), undefined);
  t.is(await a.ipam.networkByDockerId('unknown'), undefined);
});

test('updateNetwork racing ReleasePool and a re-creation (found by the plugin API fuzz): the record is never written back stale', async (t) => {
  const prefix = randomPrefix();
  const a = node(prefix, 'm1');
  const b = node(prefix, 'm2');
  const other = await b.ipam.requestPool(poolRequest(G)); // holds VNI 6514
  const p = await a.ipam.requestPool(poolRequest(G));
  const subnet = parseCidr(p.Pool);
  const before = (await a.ipam.network(subnet))!.vni;
  // Between a's read of the record and its write, b releases the network, frees the first VNI and creates the
  // network again: it gets that VNI, not the one a read.
  const read = a.ipam.network.bind(a.ipam);
  let raced = false;
  a.ipam.network = async (s) => {
    const r = await read(s);
    if (!raced) {
      raced = true;
      await b.ipam.releasePool({ PoolID: p.PoolID });
      await b.ipam.releasePool({ PoolID: other.PoolID });
      await b.ipam.requestPool(poolRequest(G, p.Pool));
    }
    return r;
  };
  const updated = await a.ipam.updateNetwork(subnet, { dockerNetworkId: 'd1' });
  const now = (await b.ipam.network(subnet))!;
  t.not(now.vni, before, 'the record keeps the re-created network\'s VNI (a stale write put the old one back)');
  t.deepEqual(updated, now, 'the update went into the re-created record');
  t.is(now.dockerNetworkId, 'd1');
  t.deepEqual(await checkInvariants(a.client, prefix), []);
  // Released while a reads: the update is refused, nothing is brought back.
  a.ipam.network = read;
  const gone = await a.ipam.requestPool(poolRequest(G));
  a.ipam.network = async (s) => {
    const r = await read(s);
    a.ipam.network = read;
    await b.ipam.releasePool({ PoolID: gone.PoolID });
    return r;
  };
  await t.throwsAsync(a.ipam.updateNetwork(parseCidr(gone.Pool), { dockerNetworkId: 'd2' }), { message: /unknown network/ });
  t.is(await b.ipam.network(parseCidr(gone.Pool)), undefined);
  const vnis = Object.values(await a.client.getAll().prefix(`${prefix}/swarmnet/vnis/`).strings());
  t.deepEqual(vnis, [now.id], 'every VNI key belongs to a network');
});

test('allocations racing ReleasePool (found by the plugin API fuzz): no host subnet or VIP outlives its network', async (t) => {
  const prefix = randomPrefix();
  const a = node(prefix, 'w1');
  const b = node(prefix, 'm1');
  const read = a.ipam.network.bind(a.ipam);
  /** a's next read of a network record is followed at once by b releasing that network. */
  const releaseAfterRead = (poolId: string) => {
    a.ipam.network = async (s) => {
      const r = await read(s);
      a.ipam.network = read;
      await b.ipam.releasePool({ PoolID: poolId });
      return r;
    };
  };
  const p1 = await b.ipam.requestPool(poolRequest(G));
  releaseAfterRead(p1.PoolID);
  await t.throwsAsync(a.ipam.requestPool(poolRequest(L, p1.Pool)), { message: /unknown network .*released/ });
  const p2 = await b.ipam.requestPool(poolRequest(G));
  releaseAfterRead(p2.PoolID);
  await t.throwsAsync(a.ipam.requestAddress({ PoolID: p2.PoolID, Address: '', Options: {} }), { message: /unknown network .*released/ });
  const p3 = await b.ipam.requestPool(poolRequest(G));
  const vip = formatIp(ip(p3.Pool) + 2 ** (32 - Number(p3.Pool.split('/')[1])) - 3); // in the VIP block (the last /25)
  releaseAfterRead(p3.PoolID);
  await t.throwsAsync(a.ipam.requestAddress({ PoolID: p3.PoolID, Address: vip, Options: {} }), { message: /unknown network .*released/ });
  const left = Object.keys(await a.client.getAll().prefix(`${prefix}/`).strings()).filter((k) => !k.includes('/nodes/'));
  t.deepEqual(left, [], 'nothing of the released networks is left');
});

test('address audit: a record no running container holds is reported at the second audit that finds it, never one in use; nothing is released', async (t) => {
  const prefix = randomPrefix();
  const n = node(prefix, 'w1');
  const p = await n.ipam.requestPool(poolRequest(G));
  const lp = await n.ipam.requestPool(poolRequest(L, p.Pool));
  const used = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:11' } });
  const orphan = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:12' } });
  // `docker ps` as the audit reads it: the container holding `used` runs; nothing holds `orphan`.
  let containers = [{ State: 'running', NetworkSettings: { Networks: { net: { IPAddress: used.Address.split('/')[0], MacAddress: '02:42:0A:80:00:11' } } } }];
  const docker = { listContainers: async () => containers } as unknown as Docker;
  const audit = new AddressAudit({ docker, ipam: n.ipam, intervalMs: 60_000, log: logger('test') });
  await audit.check();
  t.is(audit.stats.unused, 0, 'seen once: it may be a container being created');
  await audit.check();
  t.is(audit.stats.unused, 1);
  t.deepEqual(audit.stats.sample, [`${orphan.Address.split('/')[0]} (${p.Pool})`]);
  t.truthy(audit.stats.checkedAt);
  t.deepEqual(await n.ipam.unusedRecords({ macs: new Set(['02:42:0a:80:00:11', '02:42:0a:80:00:12']), addresses: new Set() }), [], 'held by MAC: in use');
  // Its container appears (a slow start): no longer reported.
  containers = [...containers, { State: 'running', NetworkSettings: { Networks: { net: { IPAddress: orphan.Address.split('/')[0], MacAddress: '02:42:0a:80:00:12' } } } }];
  await audit.check();
  t.is(audit.stats.unused, 0);
  t.true(Object.keys(await n.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).strings()).length >= 2, 'the audit releases nothing');
  await n.close(true);
});
