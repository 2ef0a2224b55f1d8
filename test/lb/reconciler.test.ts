import test from 'ava';
import { logger, setLogLevel } from '../../common/log.js';
import { run } from '../../common/exec.js';
import type { LbBackend } from '../../lb/backend.js';
import { LbModel } from '../../lb/model.js';
import { NftablesBackend } from '../../lb/nftables/kernel.js';
import { LbReconciler } from '../../lb/reconciler.js';
import { hasTools, isRoot } from '../flannel/lab.js';

/**
 * The reconciler against the real nftables backend in a namespace of its own, with events arriving while the
 * kernel is being written (a loaded node: nft takes long, Docker's view keeps changing).
 */
setLogLevel('silent');
const serial = isRoot && hasTools ? test.serial : test.serial.skip;
const ROOT = '/lbr/swarmnet/docker';
const NET = 'net-one';
const VIP = '10.128.255.2';
const ns = `sn-lbrec-${process.pid}`;

test.before(async () => {
  if (isRoot && hasTools) await run('ip', ['netns', 'add', ns]);
});
test.after.always(async () => {
  if (isRoot && hasTools) await run('ip', ['netns', 'del', ns], { allowFailure: true });
});

const put = (model: LbModel, key: string, value: unknown): void => void model.apply('put', `${ROOT}/${key}`, JSON.stringify(value));
const task = (model: LbModel, name: string, address: string): void =>
  put(model, `containers/node-b/${name}`, { id: name, name, hostname: name, serviceId: 'web', live: true, ndots: false, networks: { [NET]: { address, aliases: [] } } });

serial('an event that arrives while the whole state is written is the next delta: nothing refused, nothing lost, no false drift', async (t) => {
  const model = new LbModel('/lbr', 'node-a');
  const nft = new NftablesBackend({ netns: ns });
  let during: (() => void) | undefined;
  // The real backend; `during` runs after nft wrote the table and before the reconciler records what it wrote.
  const backend: LbBackend = {
    kind: nft.kind,
    apply: (d) => nft.apply(d),
    read: () => nft.read(),
    remove: () => nft.remove(),
    async replace(s) {
      await nft.replace(s);
      const f = during;
      during = undefined;
      f?.();
    },
  };
  const rec = new LbReconciler({ backend, model, log: logger('lb'), netns: ns, intervalMs: 200 });
  put(model, 'services/web', { id: 'web', name: 'web', endpointMode: 'vip', vips: { [NET]: VIP }, aliases: {}, draining: [] });
  // The first check writes the whole state (the table is created); the service's first task arrives meanwhile.
  let arrived = false;
  during = () => {
    arrived = true;
    task(model, 't1', '10.128.1.10');
    rec.changed();
  };
  rec.start();
  await rec.settled();
  await rec.settled();
  t.true(arrived, 'the task arrived during the whole write');
  task(model, 't2', '10.128.1.11');
  rec.changed();
  await rec.settled();

  const kernel = await nft.read();
  t.deepEqual(kernel && [...kernel.vips.values()].map((e) => [e.vip, e.backends]), [[VIP, ['10.128.1.10', '10.128.1.11']]], 'the kernel holds both tasks behind the VIP');
  t.is(rec.stats.failures, 0, 'no delta was refused');
  // Two periodic checks later: the kernel is what the reconciler believes it wrote.
  const checked = rec.stats.lastCheckAt ?? 0;
  while ((rec.stats.lastCheckAt ?? 0) === checked) await new Promise((r) => setTimeout(r, 50));
  await rec.settled();
  t.is(rec.stats.repairs, 0, 'no drift found');
  await rec.remove();
});

serial('a write the kernel fails is retried whole at the next check: the failure is reported until then, its changes are not lost', async (t) => {
  const model = new LbModel('/lbr', 'node-a');
  const nft = new NftablesBackend({ netns: ns });
  let breakWrites = false;
  const broken = (): Promise<never> => Promise.reject(new Error('Error: Could not process rule: No buffer space available'));
  const backend: LbBackend = {
    kind: nft.kind,
    apply: (d) => (breakWrites ? broken() : nft.apply(d)),
    replace: (s) => (breakWrites ? broken() : nft.replace(s)),
    read: () => nft.read(),
    remove: () => nft.remove(),
  };
  const rec = new LbReconciler({ backend, model, log: logger('lb'), netns: ns, intervalMs: 200 });
  put(model, 'services/web', { id: 'web', name: 'web', endpointMode: 'vip', vips: { [NET]: VIP }, aliases: {}, draining: [] });
  task(model, 't1', '10.128.1.10');
  rec.start();
  await rec.settled();

  breakWrites = true;
  task(model, 't2', '10.128.1.11');
  rec.changed();
  await rec.settled();
  t.is(rec.stats.failures, 1, 'the delta was refused');
  t.truthy(rec.stats.lastRefusedAt);
  t.regex(rec.stats.failing?.error ?? '', /No buffer space/, 'the whole write failed too: reported with the kernel\'s error');
  const before = await nft.read();
  t.deepEqual(before && [...before.vips.values()].map((e) => e.backends), [['10.128.1.10']], 'the kernel kept what it had');

  breakWrites = false;
  // No new event: the periodic check alone must bring the lost change.
  const checked = rec.stats.lastCheckAt ?? 0;
  while ((rec.stats.lastCheckAt ?? 0) === checked || rec.stats.failing) await new Promise((r) => setTimeout(r, 50));
  await rec.settled();
  const after = await nft.read();
  t.deepEqual(after && [...after.vips.values()].map((e) => e.backends), [['10.128.1.10', '10.128.1.11']], 'the change that failed is in the kernel');
  t.is(rec.stats.failing, undefined);
  t.is(rec.stats.repairs, 0, 'a retried write is not drift');
  await rec.remove();
});
