// The counts behind the etcd-side metrics against a real etcd: a watch's connected/events/disconnects (its stream
// goes through a proxy the test cuts) and the IPAM's allocations and releases.
import test from 'ava';
import { Etcd3 } from 'etcd3';
import { setLogLevel } from '../../common/log.js';
import { PrefixWatch } from '../../plugin/state/watch.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { until } from '../helpers/wait.js';
import { makeNode, randomPrefix, type TestNode } from '../ipam/setup.js';
import { TcpProxy } from '../state/tcp-proxy.js';

setLogLevel('silent');
let etcd: TestEtcd;
let direct: Etcd3;
const run = hasEtcd ? test.serial : test.serial.skip;

test.before(async (t) => {
  if (!hasEtcd) return t.log('skipped: /usr/bin/etcd not installed');
  etcd = await TestEtcd.start();
  direct = new Etcd3({ hosts: etcd.endpoint });
});
test.after.always(async () => {
  direct?.close();
  await etcd?.stop();
});

run('watch stats: connected, each change counted with its arrival time, a broken stream counted and resumed', async (t) => {
  const p = randomPrefix();
  const proxy = await TcpProxy.start(etcd.clientPort);
  const client = new Etcd3({
    hosts: proxy.endpoint,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }),
    faultHandling: { watchBackoff: { duration: 100, next() { return this; } } },
  });
  const w = await PrefixWatch.start(client, `${p}/`, { onSnapshot: () => undefined, onEvent: () => undefined }, { retryMs: 100, maxRetryMs: 500 });
  t.teardown(async () => { await w.close(); client.close(); await proxy.close(); });
  t.like(w.stats, { snapshots: 1, events: 0, disconnects: 0, connected: true });
  t.is(w.stats.lastEventAt, undefined);

  const before = Date.now();
  await direct.put(`${p}/a`).value('1').exec();
  t.true(await until(() => w.stats.events === 1));
  t.true(w.stats.lastEventAt! >= before);

  proxy.cut();
  t.true(await until(() => !w.stats.connected), 'the break is seen');
  t.true(w.stats.disconnects >= 1);
  await direct.put(`${p}/b`).value('2').exec();
  proxy.restore();
  t.true(await until(() => w.stats.connected && w.stats.events === 2), 'resumed, and the change made meanwhile arrives');
  t.is(w.stats.snapshots, 1, 'resumed without a resync');
  await w.close();
  t.false(w.stats.connected);
});

run('IPAM stats: new address records and releases by space; replays and repeated releases are not counted', async (t) => {
  const prefix = randomPrefix();
  const n: TestNode = makeNode(etcd.endpoint, prefix, 'n1');
  t.teardown(() => n.close());
  const G = 'SwarmnetGlobal';
  const L = 'SwarmnetLocal';
  const pool = await n.ipam.requestPool({ AddressSpace: G, Pool: '', SubPool: '', Options: {}, V6: false });
  const local = await n.ipam.requestPool({ AddressSpace: L, Pool: pool.Pool, SubPool: '', Options: {}, V6: false });
  const mac = { 'com.docker.network.endpoint.macaddress': '02:42:0a:00:00:01' };
  const a = await n.ipam.requestAddress({ PoolID: local.PoolID, Address: '', Options: mac });
  const replay = await n.ipam.requestAddress({ PoolID: local.PoolID, Address: '', Options: mac });
  t.is(replay.Address, a.Address);
  const vip = await n.ipam.requestAddress({ PoolID: pool.PoolID, Address: '', Options: {} });
  await n.ipam.requestAddress({ PoolID: pool.PoolID, Address: vip.Address, Options: {} }); // a leader's replay
  t.deepEqual(n.ipam.stats, { allocated: { local: 1, global: 1 }, released: { local: 0, global: 0 } });

  await n.ipam.releaseAddress({ PoolID: local.PoolID, Address: a.Address });
  await n.ipam.releaseAddress({ PoolID: local.PoolID, Address: a.Address });
  await n.ipam.releaseAddress({ PoolID: pool.PoolID, Address: vip.Address });
  await n.ipam.releaseAddress({ PoolID: pool.PoolID, Address: vip.Address });
  t.deepEqual(n.ipam.stats, { allocated: { local: 1, global: 1 }, released: { local: 1, global: 1 } });
});
