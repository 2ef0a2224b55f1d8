import test from 'ava';
import { parseCidr } from '../../common/cidr.js';
import { isSwarmnetDriver } from '../../plugin/driver-name.js';
import { nodeIdentity } from '../../plugin/node-identity.js';
import { toOverlayState } from '../../plugin/overlay-sync.js';
import { liveEndpoints } from '../../plugin/restart-reconcile.js';

test('node identity: NODE_NAME wins, then Docker\'s name, then the hostname; swarm role and size', (t) => {
  const manager = { Name: 'node1', Swarm: { LocalNodeState: 'active', ControlAvailable: true, Nodes: 3, NodeAddr: '10.99.0.11' } };
  t.deepEqual(nodeIdentity(manager, '', 'h'), { name: 'node1', isManager: true, swarmAddress: '10.99.0.11', swarmNodes: 3 });
  t.is(nodeIdentity(manager, 'override', 'h').name, 'override');
  const worker = { Name: 'node2', Swarm: { LocalNodeState: 'active', ControlAvailable: false, Nodes: 0 } };
  t.deepEqual(nodeIdentity(worker, '', 'h'), { name: 'node2', isManager: false, swarmNodes: 2 }, 'a worker implies a manager elsewhere');
  t.deepEqual(nodeIdentity({ Name: 'solo', Swarm: { LocalNodeState: 'inactive' } }, '', 'h'), { name: 'solo', isManager: false, swarmNodes: 1 });
  t.is(nodeIdentity({}, '', 'fallback-host').name, 'fallback-host', 'Docker unreachable: the hostname');
  t.is(nodeIdentity({ Name: 'bad/name' }, '', 'host2').name, 'host2', 'a name unusable as a key part is not taken from Docker');
  t.throws(() => nodeIdentity({}, 'a b', 'h'), { message: /NODE_NAME/ });
});

test('live endpoints: only running containers, MACs lower-cased', (t) => {
  const live = liveEndpoints([
    { State: { Running: true }, NetworkSettings: { Networks: { n1: { MacAddress: '02:42:0A:00:00:02', IPAddress: '10.128.0.2' }, n2: { MacAddress: '', IPAddress: '' } } } },
    { State: { Running: false }, NetworkSettings: { Networks: { n1: { MacAddress: '02:42:0a:00:00:03', IPAddress: '10.128.0.3' } } } },
    null,
    { State: { Running: true } },
  ]);
  t.deepEqual([...live.macs], ['02:42:0a:00:00:02']);
  t.deepEqual([...live.addresses], ['10.128.0.2']);
  t.deepEqual(live.endpoints, [{ address: '10.128.0.2', mac: '02:42:0a:00:00:02' }], 'pairs let a node re-record addresses after a lost lease');
});

test('IPAM records become the overlay input with the local node attached', (t) => {
  const node = { name: 'n1', publicIp: '10.99.0.11', underlayInterface: 'eth0', vxlanPort: 8472 };
  const s = toOverlayState({
    networks: [{ id: '10.128.0.0-20', vni: 6514, subnet: parseCidr('10.128.0.0/20'), mtu: 1400 }, { id: '10.128.16.0-20', vni: 6515, subnet: parseCidr('10.128.16.0/20') }],
    leases: [{ networkId: '10.128.0.0-20', subnet: parseCidr('10.128.0.0/25'), publicIp: '10.99.0.11', vtepMac: '02:00:00:00:00:01', node: 'n1' }],
  }, node);
  t.deepEqual(s, {
    node,
    networks: [{ id: '10.128.0.0-20', vni: 6514, subnet: '10.128.0.0/20', mtu: 1400 }, { id: '10.128.16.0-20', vni: 6515, subnet: '10.128.16.0/20' }],
    leases: [{ networkId: '10.128.0.0-20', subnet: '10.128.0.0/25', publicIp: '10.99.0.11', vtepMac: '02:00:00:00:00:01', node: 'n1' }],
  });
});

test('our networks are recognised by driver name, with or without tag and registry path', (t) => {
  for (const d of ['swarmnet', 'swarmnet:latest', 'swarmnet:0.1.0', 'registry.example:5000/ops/swarmnet:1.2', 'ops/swarmnet']) t.true(isSwarmnetDriver(d), d);
  for (const d of ['overlay', 'bridge', 'swarmnet2', 'notswarmnet:latest', 'swarmnet:', 'swarmnet:latest/x', '']) t.false(isSwarmnetDriver(d), d);
});
