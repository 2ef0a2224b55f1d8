import test from 'ava';
import { readFileSync } from 'node:fs';
import { contains, parseCidr, parseIp } from '../../common/cidr.js';
import { PluginError } from '../../plugin/driver.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { checkInvariants } from '../helpers/invariants.js';
import { makeNode, randomPrefix, type TestNode } from './setup.js';

const G = 'SwarmnetGlobal';
const L = 'SwarmnetLocal';
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
  const pools = (await Promise.all(nodes.flatMap((n) => [1, 2, 3].map(() => n.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: {}, V6: false })))));
  t.is(new Set(pools.map((p) => p.Pool)).size, 9);
  const addrs: string[] = [];
  const vips: string[] = [];
  await Promise.all(nodes.flatMap((n, ni) => pools.map(async (p) => {
    const local = await n.ipam.requestPool({ AddressSpace: L, Pool: p.Pool, SubPool: '', Options: {}, V6: false });
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
});

/** Replays the recorded Docker 20.10 call sequence, translating the stub's 10.77.0.N answers to ours. */
test('re-homing: the fixture sequence gets local addresses on the task node and leaks nothing', async (t) => {
  const prefix = randomPrefix();
  const n = node(prefix, 'task-node');
  const lines = readFileSync(new URL('../../../shared/fixtures/docker-20.10-swarm-plugin-calls.jsonl', import.meta.url), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { endpoint: string; request: Record<string, unknown> | null });
  let stubN = 2;
  const ours = new Map<string, { address: string; poolId: string }>();
  const pool: Record<string, string> = {};
  let network = '';
  const local: string[] = [];
  for (const { endpoint, request } of lines) {
    const r = request ?? {};
    if (endpoint === '/IpamDriver.RequestPool') {
      const space = r.AddressSpace === 'g' ? G : L;
      const res = await n.ipam.requestPool({ AddressSpace: space, Pool: r.Pool ? network : '', SubPool: '', Options: (r.Options ?? {}) as Record<string, string>, V6: false });
      if (space === G) network = res.Pool;
      pool[space] = res.PoolID;
    } else if (endpoint === '/IpamDriver.RequestAddress') {
      const opts = (r.Options ?? {}) as Record<string, string>;
      const preferred = r.Address ? ours.get(r.Address as string)?.address ?? '' : '';
      const poolId = r.Address || (opts.RequestAddressType && !opts['com.docker.network.ipam.serial']) ? pool[L]! : pool[G]!;
      const res = await n.ipam.requestAddress({ PoolID: poolId, Address: preferred.split('/')[0] ?? '', Options: opts });
      ours.set(`10.77.0.${stubN++}`, { address: res.Address, poolId });
      if (poolId === pool[L] && !opts.RequestAddressType) local.push(res.Address);
    } else if (endpoint === '/IpamDriver.ReleaseAddress') {
      const a = ours.get(r.Address as string);
      if (!a) return t.fail(`fixture releases unknown ${String(r.Address)}`);
      await n.ipam.releaseAddress({ PoolID: a.poolId, Address: a.address.split('/')[0]! });
    } else if (endpoint === '/IpamDriver.ReleasePool') {
      // As recorded, Docker releases the manager-side pool first and the node's later: both orders must be safe.
      const space = pool[G] ? G : L;
      await n.ipam.releasePool({ PoolID: pool[space]! });
      delete pool[space];
    }
  }
  t.true(local.length >= 6, `task addresses: ${local.join(' ')}`);
  for (const a of local) {
    t.true(a.endsWith('/25'), a);
    t.true(contains(parseCidr('10.128.0.0/25'), ip(a)) || contains(parseCidr('10.128.16.0/25'), ip(a)), `${a} in the node's host subnet`);
  }
  const left = await n.client.getAll().prefix(`${prefix}/`).keys();
  t.deepEqual(left, [], 'nothing left in etcd after the network is removed');
});

test('leader change: a new leader replaying RequestPool/RequestAddress gets the same answers and allocates nothing new', async (t) => {
  const prefix = randomPrefix();
  const a = node(prefix, 'mgr-a');
  const b = node(prefix, 'mgr-b');
  const p = await a.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: { 'flannel-id': 'x' }, V6: false });
  const vip = await a.ipam.requestAddress({ PoolID: p.PoolID, Address: '', Options: {} });
  const before = await a.client.getAll().prefix(`${prefix}/`).strings();
  const p2 = await b.ipam.requestPool({ AddressSpace: G, Pool: p.Pool, SubPool: '', Options: { 'flannel-id': 'x' }, V6: false });
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
  const p = await first.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: {}, V6: false });
  const lp = await first.ipam.requestPool({ AddressSpace: L, Pool: p.Pool, SubPool: '', Options: {}, V6: false });
  const mac = { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:05' };
  const kept = await first.ipam.requestAddress({ PoolID: lp.PoolID, Address: '10.128.15.130', Options: mac });
  const dead = await first.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:06' } });
  await first.close(); // process gone, lease not revoked
  const second = node(prefix, 'w1', { ttl: 3 });
  const released = await second.ipam.reconcileNode({ macs: new Set(['02:42:0a:80:00:05']), addresses: new Set() });
  t.deepEqual(released, [dead.Address.split('/')[0]]);
  await new Promise((r) => setTimeout(r, 5000)); // the old lease expires
  const again = await second.ipam.requestAddress({ PoolID: lp.PoolID, Address: '10.128.15.130', Options: mac });
  t.is(again.Address, kept.Address);
  t.deepEqual(await checkInvariants(second.client, prefix), []);
  const addrs = await second.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).keys();
  t.is(addrs.length, 1);
});

test('a dead node: its host subnet and addresses are reclaimed after the lease TTL', async (t) => {
  const prefix = randomPrefix();
  const mgr = node(prefix, 'mgr');
  const dying = node(prefix, 'dying', { ttl: 3 });
  const p = await mgr.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: {}, V6: false });
  const lp = await dying.ipam.requestPool({ AddressSpace: L, Pool: p.Pool, SubPool: '', Options: {}, V6: false });
  await dying.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} });
  t.is((await mgr.ipam.overlayState()).leases.length, 1);
  await dying.close();
  await new Promise((r) => setTimeout(r, 5000));
  t.deepEqual((await mgr.ipam.overlayState()).leases, []);
  t.deepEqual(await mgr.client.getAll().prefix(`${prefix}/swarmnet/addresses/`).keys(), []);
  const other = node(prefix, 'other');
  const olp = await other.ipam.requestPool({ AddressSpace: L, Pool: p.Pool, SubPool: '', Options: {}, V6: false });
  t.is((await other.ipam.localHostLease(parseCidr(p.Pool))).subnet.network, parseCidr(p.Pool).network, 'the freed host subnet is reused');
  t.truthy(olp.PoolID);
});

test('etcd restart: calls fail with 503 while it is down and nothing is lost after', async (t) => {
  const own = await TestEtcd.start();
  const n = makeNode(own.endpoint, randomPrefix(), 'w');
  try {
    const p = await n.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: {}, V6: false });
    const lp = await n.ipam.requestPool({ AddressSpace: L, Pool: p.Pool, SubPool: '', Options: {}, V6: false });
    const mac = { 'com.docker.network.endpoint.macaddress': '02:42:0a:80:00:07' };
    const a = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: mac });
    await own.stopProcess();
    const err = await t.throwsAsync(n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} }));
    t.is((err as PluginError).status, 503);
    await own.startProcess();
    let again;
    for (let i = 0; i < 100 && !again; i++) {
      again = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: mac }).catch(() => undefined);
      if (!again) await new Promise((r) => setTimeout(r, 200));
    }
    t.is(again?.Address, a.Address);
    const b = await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} });
    t.not(b.Address, a.Address);
  } finally {
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
  await bad(n.ipam.requestPool({ AddressSpace: G, Pool: '10.1.0.0/20', SubPool: '', Options: {}, V6: false }), /outside AVAILABLE_SUBNETS/);
  await bad(n.ipam.requestPool({ AddressSpace: G, Pool: '10.128.0.0/33', SubPool: '', Options: {}, V6: false }), /malformed pool/);
  await bad(n.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: { 'flannel-id': 'a b' }, V6: false }), /malformed flannel-id/);
  await bad(n.ipam.requestPool({ AddressSpace: L, Pool: '10.128.0.0/20', SubPool: '', Options: {}, V6: false }), /unknown pool/);
  const p = await n.ipam.requestPool({ AddressSpace: G, Pool: '10.128.0.0/20', SubPool: '', Options: {}, V6: false });
  await bad(n.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: {}, V6: false }), /no free \/20/);
  const lp = await n.ipam.requestPool({ AddressSpace: L, Pool: p.Pool, SubPool: '', Options: {}, V6: false });
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
  const p = await n.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: {}, V6: false });
  t.deepEqual(await checkInvariants(n.client, prefix), []);
  await n.client.put(`${prefix}/swarmnet/addresses/10.128.0.0-20/0a800005`).value('{"node":"ghost"}').exec();
  const rec = JSON.parse((await n.client.get(`${prefix}/swarmnet/networks/10.128.0.0-20`).string())!) as Record<string, unknown>;
  await n.client.put(`${prefix}/swarmnet/networks/10.128.16.0-20`).value(JSON.stringify({ ...rec, id: '10.128.16.0-20', subnet: '10.128.16.0/20' })).exec();
  const bad = await checkInvariants(n.client, prefix);
  t.true(bad.some((b) => b.includes('no owner host subnet')), bad.join('; '));
  t.true(bad.some((b) => b.includes(`VNI 6514 used twice`)), bad.join('; '));
  t.truthy(p.PoolID);
});
