import test from 'ava';
import { setLogLevel } from '../../common/log.js';
import { ClusterView } from '../../plugin/docker/cluster-view.js';
import type { NodeLease } from '../../plugin/state/etcd-client.js';
import { fakeDocker, fakeEtcd } from '../helpers/docker-view-fakes.js';
import { until } from '../helpers/wait.js';

setLogLevel('silent');
const key = (id: string) => `/p/swarmnet/docker/containers/n1/${id}`;

async function started() {
  const d = fakeDocker();
  const e = fakeEtcd();
  const view = new ClusterView({
    docker: d.docker, client: e.client, lease: { id: async () => '1' } as unknown as NodeLease, prefix: '/p', node: 'n1',
    isManager: async () => false, isOurDriver: (x) => x.startsWith('swarmnet'),
  });
  d.running('c1', '10.0.1.2');
  d.running('c2', '10.0.1.3', 'healthy', '10.0.2.3');
  view.start();
  await d.followed;
  return { d, e, view };
}

test('an endpoint that leaves takes its address out of its container\'s record at once, without a Docker event', async (t) => {
  const { e, view } = await started();
  t.teardown(() => view.stop());
  t.true(e.kv.has(key('c1')) && e.kv.has(key('c2')));

  // c1 stopped (dockerd shutting down: its event stream is gone, no event comes): its only network of ours left.
  await view.endpointLeft('net1', '10.0.1.2');
  t.false(e.kv.has(key('c1')), 'its record is gone: its address leaves every node\'s VIPs and DNS');

  // c2 disconnected from net2 only: the record keeps net1.
  await view.endpointLeft('net2', '10.0.2.3');
  const c2 = JSON.parse(e.kv.get(key('c2'))!) as { networks: Record<string, { address: string }> };
  t.deepEqual(Object.keys(c2.networks), ['net1']);
  t.is(c2.networks.net1!.address, '10.0.1.3');

  // An address no record has (a container the view never wrote): nothing changes.
  const before = [...e.kv];
  await view.endpointLeft('net1', '10.0.1.99');
  t.deepEqual([...e.kv], before);
});

test('Docker has the last word: a container still running after its Leave is written again by its next event', async (t) => {
  const { d, e, view } = await started();
  t.teardown(() => view.stop());
  await view.endpointLeft('net1', '10.0.1.2');
  t.false(e.kv.has(key('c1')));
  // Docker restarted it in place (restart policy): Leave, then Join and a start event.
  d.event('c1', 'start', Date.now());
  t.true(await until(() => e.kv.has(key('c1')), 30_000, 10));
  t.is((JSON.parse(e.kv.get(key('c1'))!) as { networks: Record<string, { address: string }> }).networks.net1!.address, '10.0.1.2');
});
