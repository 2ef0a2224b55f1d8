import test from 'ava';
import { Etcd3 } from 'etcd3';
import { setLogLevel } from '../../common/log.js';
import { NodeLease } from '../../plugin/state/etcd-client.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { randomPrefix } from '../ipam/setup.js';

setLogLevel('silent');
const run = hasEtcd ? test.serial : test.serial.skip;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

run('a lost lease is replaced once, onRenewed fires, and keys of the old lease are gone', async (t) => {
  const etcd = await TestEtcd.start();
  const client = new Etcd3({ hosts: etcd.endpoint });
  let renewed = 0;
  const lease = new NodeLease(client, 5, () => void renewed++);
  try {
    const first = await lease.id();
    const k = `${randomPrefix()}/owned`;
    await client.put(k).value('x').lease(first).exec();
    await client.leaseClient.leaseRevoke({ ID: first }); // as if the TTL ran out during a partition
    for (let i = 0; i < 1000 && lease.stats.lost === 0; i++) await sleep(10);
    await t.throwsAsync(lease.id(), { message: /lost/ }, 'no dead lease id is handed out before the new grant');
    for (let i = 0; i < 100 && renewed === 0; i++) await sleep(100);
    t.is(renewed, 1);
    const second = await lease.id();
    t.not(second, first);
    t.is(await client.get(k).string(), null, 'the old lease took its keys with it');
    await sleep(1000);
    t.is(lease.stats.lost, 1, 'the new lease is kept alive');
  } finally {
    await lease.close(true);
    client.close();
    await etcd.stop();
  }
});

run('while etcd is down, re-grants back off instead of spinning, and the lease comes back after', async (t) => {
  const etcd = await TestEtcd.start();
  const client = new Etcd3({ hosts: etcd.endpoint, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 500 }) });
  const lease = new NodeLease(client, 2);
  try {
    await lease.id();
    await etcd.stopProcess();
    await sleep(6000);
    t.true(lease.stats.lost >= 1, 'the lease was lost');
    t.true(lease.stats.lost <= 8, `bounded re-grant attempts in 6 s: ${lease.stats.lost}`);
    await t.throwsAsync(lease.id());
    await etcd.startProcess();
    let id: string | undefined;
    for (let i = 0; i < 100 && !id; i++) {
      id = await lease.id().catch(() => undefined);
      if (!id) await sleep(200);
    }
    t.truthy(id, 'a new lease after etcd came back');
  } finally {
    await lease.close().catch(() => undefined);
    client.close();
    await etcd.stop();
  }
});
