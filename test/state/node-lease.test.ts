import test from 'ava';
import { Etcd3, type Lease } from 'etcd3';
import { setLogLevel } from '../../common/log.js';
import { NodeLease } from '../../plugin/state/etcd-client.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { randomPrefix } from '../ipam/setup.js';
import { retry, until } from '../helpers/wait.js';

setLogLevel('silent');
const run = hasEtcd ? test.serial : test.serial.skip;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

run('a lost lease is replaced once, onRenewed fires, and keys of the old lease are gone', async (t) => {
  const etcd = await TestEtcd.start();
  const client = new Etcd3({ hosts: etcd.endpoint });
  // The etcd3 leases NodeLease creates, so the test hears of a loss in the same turn as NodeLease does.
  const made: Lease[] = [];
  const lease0 = client.lease.bind(client);
  client.lease = (...args: Parameters<Etcd3['lease']>) => { const l = lease0(...args); made.push(l); return l; };
  let renewed = 0;
  const lease = new NodeLease(client, 5, () => void renewed++);
  try {
    const first = await lease.id();
    // Asked right after NodeLease saw the loss (its listener runs first), i.e. before any re-grant could start.
    const idAfterLoss = new Promise<string>((resolve, reject) => made[0]!.once('lost', () => lease.id().then(resolve, reject)));
    idAfterLoss.catch(() => undefined); // it may reject before the assertion below attaches
    const k = `${randomPrefix()}/owned`;
    await client.put(k).value('x').lease(first).exec();
    await client.leaseClient.leaseRevoke({ ID: first }); // as if the TTL ran out during a partition
    await t.throwsAsync(idAfterLoss, { message: /lost/ }, 'no dead lease id is handed out before the new grant');
    t.true(await until(() => renewed > 0), 'a new lease is granted');
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
  const client = new Etcd3({ hosts: etcd.endpoint, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }) });
  const lease = new NodeLease(client, 2);
  try {
    await lease.id();
    await etcd.stopProcess();
    t.true(await until(() => lease.stats.lost >= 1), 'the lease was lost');
    // An upper bound on attempts in a window: a busy machine only makes fewer (the backoff is 0.2, 0.4, 0.8 … s).
    const lostBefore = lease.stats.lost;
    await sleep(6000);
    t.true(lease.stats.lost - lostBefore <= 8, `bounded re-grant attempts in 6 s: ${lease.stats.lost - lostBefore}`);
    await t.throwsAsync(lease.id());
    await etcd.startProcess();
    const id = await retry(() => lease.id(), 60_000, 200);
    t.truthy(id, 'a new lease after etcd came back');
  } finally {
    await lease.close().catch(() => undefined);
    client.close();
    await etcd.stop();
  }
});
