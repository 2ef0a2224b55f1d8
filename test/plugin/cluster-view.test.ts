import test from 'ava';
import { Etcd3 } from 'etcd3';
import { setLogLevel } from '../../common/log.js';
import { ClusterView } from '../../plugin/docker/cluster-view.js';
import { NodeLease } from '../../plugin/state/etcd-client.js';
import { fakeDocker } from '../helpers/docker-view-fakes.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { until } from '../helpers/wait.js';

// Docker's view as the plugin writes it, into a real etcd; Docker is a stand-in (the e2e and chaos suites run real
// dockerds, whose restarts exercise the Leave path end to end).
setLogLevel('silent');
const etcdTest = hasEtcd ? test.serial : test.serial.skip;
let etcd: TestEtcd;
test.before(async () => { if (hasEtcd) etcd = await TestEtcd.start(); });
test.after.always(async () => { await etcd?.stop(); });

async function started(t: import('ava').ExecutionContext, prefix: string) {
  const d = fakeDocker();
  const client = new Etcd3({ hosts: etcd.endpoint });
  const lease = new NodeLease(client, 60);
  const view = new ClusterView({ docker: d.docker, client, lease, prefix, node: 'n1', isManager: async () => false, isOurDriver: (x) => x.startsWith('swarmnet') });
  t.teardown(async () => { view.stop(); await lease.close(true).catch(() => undefined); client.close(); });
  d.running('c1', '10.0.1.2');
  d.running('c2', '10.0.1.3', 'healthy', '10.0.2.3');
  view.start();
  await d.followed;
  const record = async (id: string) => {
    const v = await client.get(`${prefix}/swarmnet/docker/containers/n1/${id}`).string();
    return v === null ? undefined : (JSON.parse(v) as { networks: Record<string, { address: string }> });
  };
  return { d, client, view, record };
}

etcdTest('an endpoint that leaves takes its address out of its container\'s record at once, without a Docker event', async (t) => {
  const { client, view, record } = await started(t, '/cv1');
  t.truthy(await record('c1'));
  t.truthy(await record('c2'));

  // c1 stopped (dockerd shutting down: its event stream is gone, no event comes): its only network of ours left.
  await view.endpointLeft('net1', '10.0.1.2');
  t.is(await record('c1'), undefined, 'its record is gone: its address leaves every node\'s VIPs and DNS');

  // c2 disconnected from net2 only: the record keeps net1, still under the node lease.
  await view.endpointLeft('net2', '10.0.2.3');
  const c2 = await record('c2');
  t.deepEqual(Object.keys(c2!.networks), ['net1']);
  t.is(c2!.networks.net1!.address, '10.0.1.3');
  const kv = (await client.get('/cv1/swarmnet/docker/containers/n1/c2').exec()).kvs[0]!;
  t.not(kv.lease, '0', 'the rewritten record stays under the node lease');

  // An address no record has (a container the view never wrote): nothing changes.
  const before = await client.getAll().prefix('/cv1/').strings();
  await view.endpointLeft('net1', '10.0.1.99');
  t.deepEqual(await client.getAll().prefix('/cv1/').strings(), before);
});

etcdTest('Docker has the last word: a container still running after its Leave is written again by its next event', async (t) => {
  const { d, view, record } = await started(t, '/cv2');
  await view.endpointLeft('net1', '10.0.1.2');
  t.is(await record('c1'), undefined);
  // Docker restarted it in place (restart policy): Leave, then Join and a start event.
  d.event('c1', 'start', Date.now());
  t.true(await until(async () => (await record('c1')) !== undefined, 30_000, 10));
  t.is((await record('c1'))!.networks.net1!.address, '10.0.1.2');
});
