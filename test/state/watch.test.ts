import test from 'ava';
import { Etcd3 } from 'etcd3';
import { setLogLevel } from '../../common/log.js';
import { PrefixWatch, type WatchEvent } from '../../plugin/state/watch.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { TcpProxy } from './tcp-proxy.js';
import { randomPrefix } from '../ipam/setup.js';
import { beforeGuard } from '../helpers/wait.js';

/** PrefixWatch against a real etcd: the watcher's connection goes through a proxy the test cuts. */

setLogLevel('silent');
let etcd: TestEtcd;
let direct: Etcd3;
const run = hasEtcd ? test.serial : test.serial.skip;

test.before(async () => {
  if (!hasEtcd) return;
  etcd = await TestEtcd.start();
  direct = new Etcd3({ hosts: etcd.endpoint });
});
test.after.always(async () => {
  direct?.close();
  await etcd?.stop();
});

/** A watcher client whose only path to etcd is the proxy; the view is rebuilt from snapshots and events. */
async function watched(prefix: string) {
  const proxy = await TcpProxy.start(etcd.clientPort);
  const client = new Etcd3({
    hosts: proxy.endpoint,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }), // the product's default
    faultHandling: { watchBackoff: { duration: 100, next() { return this; } } },
  });
  const view = new Map<string, string>();
  const events: WatchEvent[] = [];
  const w = await PrefixWatch.start(client, prefix, {
    onSnapshot(kvs) { view.clear(); for (const [k, v] of kvs) view.set(k, v); },
    onEvent(ev) { events.push(ev); if (ev.type === 'put') view.set(ev.key, ev.value!); else view.delete(ev.key); },
  }, { retryMs: 100, maxRetryMs: 500 });
  return {
    proxy, view, events, w,
    async close() { await w.close(); client.close(); await proxy.close(); },
  };
}

/** Polls check; ms is a guard for a busy machine, not an expected time. */
async function until(check: () => boolean, ms = 30_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

run('a snapshot, then every change in order', async (t) => {
  const p = randomPrefix();
  await direct.put(`${p}/a`).value('1').exec();
  const x = await watched(`${p}/`);
  try {
    t.deepEqual([...x.view], [[`${p}/a`, '1']]);
    await direct.put(`${p}/b`).value('2').exec();
    await direct.delete().key(`${p}/a`).exec();
    t.true(await until(() => x.events.length === 2));
    t.deepEqual(x.events.map((e) => `${e.type} ${e.key}`), [`put ${p}/b`, `delete ${p}/a`]);
    t.true(x.events[0]!.revision < x.events[1]!.revision);
    t.is(x.w.stats.snapshots, 1);
  } finally {
    await x.close();
  }
});

run('a broken stream resumes from its revision: changes made meanwhile arrive as events, no resync', async (t) => {
  const p = randomPrefix();
  const x = await watched(`${p}/`);
  try {
    x.proxy.cut();
    await new Promise((r) => setTimeout(r, 300));
    await direct.put(`${p}/missed`).value('m').exec();
    await direct.put(`${p}/missed`).value('m2').exec();
    x.proxy.restore();
    t.true(await until(() => x.view.get(`${p}/missed`) === 'm2'), 'the changes made while cut arrive');
    t.deepEqual(x.events.map((e) => e.value), ['m', 'm2'], 'both revisions, in order');
    t.is(x.w.stats.snapshots, 1, 'resumed without a resync');
  } finally {
    await x.close();
  }
});

run('after a compaction past its revision the watch fully resyncs and keeps watching', async (t) => {
  const p = randomPrefix();
  await direct.put(`${p}/gone`).value('g').exec();
  const x = await watched(`${p}/`);
  try {
    x.proxy.cut();
    await new Promise((r) => setTimeout(r, 300));
    await direct.delete().key(`${p}/gone`).exec();
    await direct.put(`${p}/new`).value('n').exec();
    await direct.put(`${p}/filler`).value('f').exec();
    const rev = (await direct.get(`${p}/filler`).exec()).header.revision;
    await direct.kv.compact({ revision: rev, physical: true });
    x.proxy.restore();
    t.true(await until(() => x.w.stats.snapshots === 2), 'a second snapshot after the compaction');
    t.deepEqual(Object.fromEntries(x.view), { [`${p}/new`]: 'n', [`${p}/filler`]: 'f' }, 'the view equals etcd: the delete is not lost');
    await direct.put(`${p}/after`).value('a').exec();
    t.true(await until(() => x.view.get(`${p}/after`) === 'a'), 'watching again after the resync');
  } finally {
    await x.close();
  }
});

run('start fails clearly when etcd is unreachable', async (t) => {
  const proxy = await TcpProxy.start(etcd.clientPort);
  proxy.cut();
  const client = new Etcd3({ hosts: proxy.endpoint, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 500 }) });
  try {
    // bounded by the call deadline and retries: it fails by itself, long before the test's guard
    await t.throwsAsync(beforeGuard(PrefixWatch.start(client, '/x/', { onSnapshot() {}, onEvent() {} }), 60_000, 'start kept waiting'), { message: /^(?!guard)/ });
  } finally {
    client.close();
    await proxy.close();
  }
});
