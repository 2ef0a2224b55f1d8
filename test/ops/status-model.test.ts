import test from 'ava';
import { buildStatus, STATUS_PREFIXES, type StatusSnapshot } from '../../ops/status-model.js';
import { renderStatus } from '../../ops/status-render.js';
import type { NodeStatusRecord } from '../../plugin/node-status.js';

const P = '/flannel';
const NOW = 1_800_000_000_000;
const STALE = 150_000;

function node(name: string, over: Partial<NodeStatusRecord> = {}): NodeStatusRecord {
  return {
    node: name, publicIp: `10.0.0.${name.slice(-1)}`, version: '0.1.0', manager: name === 'node1', startedAt: NOW - 600_000,
    overlay: { checkedAt: NOW - 60_000, changedAt: NOW - 300_000, runs: 40, failedRuns: 0, fastPath: 'on' },
    dns: { served: 2, waiting: 0, serveFailures: 0 },
    lb: { backend: 'nftables', vips: 1, backends: 3, checkedAt: NOW - 60_000, changedAt: NOW - 30_000, failures: 0, repairs: 0 },
    refusals: [], ...over,
  };
}

function snapshot(): StatusSnapshot {
  const s: StatusSnapshot = { nodes: new Map(), networks: new Map(), nodeSubnets: new Map(), endpoints: new Map(), view: new Map() };
  const k = (what: keyof typeof STATUS_PREFIXES, rest: string): string => `${P}${STATUS_PREFIXES[what]}${rest}`;
  for (const n of ['node1', 'node2']) s.nodes.set(k('nodes', n), JSON.stringify(node(n)));
  s.networks.set(k('networks', '10.128.0.0-20'), JSON.stringify({ id: '10.128.0.0-20', subnet: '10.128.0.0/20', vni: 4096, vipBlock: '10.128.15.128/25' }));
  s.nodeSubnets.set(k('nodeSubnets', '10.128.0.0-20/node1'), '10.128.0.0-25');
  s.nodeSubnets.set(k('nodeSubnets', '10.128.0.0-20/node2'), '10.128.0.128-25');
  s.endpoints.set(k('endpoints', 'node1/ep1'), JSON.stringify({ networkId: '10.128.0.0-20', endpointId: 'ep1', address: '10.128.0.2' }));
  s.endpoints.set(k('endpoints', 'node2/ep2'), JSON.stringify({ networkId: '10.128.0.0-20', endpointId: 'ep2', address: '10.128.0.130' }));
  s.view.set(k('view', 'networks/dn1'), JSON.stringify({ id: 'dn1', name: 'appnet', subnet: '10.128.0.0/20' }));
  s.view.set(k('view', 'services/s1'), JSON.stringify({ id: 's1', name: 'web', endpointMode: 'vip', vips: { dn1: '10.128.15.130' }, aliases: {}, draining: ['c3'] }));
  s.view.set(k('view', 'services/s2'), JSON.stringify({ id: 's2', name: 'db', endpointMode: 'dnsrr', vips: {}, aliases: {} }));
  s.view.set(k('view', 'containers/node1/c1'), JSON.stringify({ id: 'c1', serviceId: 's1', live: true, networks: {} }));
  s.view.set(k('view', 'containers/node2/c2'), JSON.stringify({ id: 'c2', serviceId: 's1', live: false, networks: {} }));
  s.view.set(k('view', 'containers/node2/c3'), JSON.stringify({ id: 'c3', serviceId: 's1', live: true, networks: {} }));
  s.view.set(k('view', 'containers/node2/c4'), JSON.stringify({ id: 'c4', serviceId: 's2', live: false, networks: {} }));
  return s;
}

test('nodes, networks with Docker names, host subnets and endpoints, services with VIPs and healthy tasks', (t) => {
  const st = buildStatus(P, snapshot(), NOW, STALE);
  t.deepEqual(st.nodes.map((n) => [n.node, n.manager, n.endpoints, n.hostSubnets]), [
    ['node1', true, 1, { '10.128.0.0/20': '10.128.0.0/25' }],
    ['node2', false, 1, { '10.128.0.0/20': '10.128.0.128/25' }],
  ]);
  t.deepEqual(st.networks, [{ subnet: '10.128.0.0/20', vni: 4096, dockerId: 'dn1', name: 'appnet', hosts: { node1: '10.128.0.0/25', node2: '10.128.0.128/25' }, endpoints: { node1: 1, node2: 1 } }]);
  // web: c1 live, c2 not healthy yet, c3 being stopped by Swarm → 1 of 3 takes VIP traffic.
  t.deepEqual(st.services.map((s) => [s.name, s.mode, s.vips, `${s.healthy}/${s.tasks}`]), [
    ['db', 'dnsrr', {}, '0/1'],
    ['web', 'vip', { appnet: '10.128.15.130' }, '1/3'],
  ]);
  t.deepEqual(st.attention, ['service db: none of its 1 task(s) is healthy: its name has no address']);
  t.is(st.unreadable, 0);
});

test('attention: refusals with their error, DNS and LB failures, a stuck reconciler, a lease holder without status', (t) => {
  const s = snapshot();
  s.nodes.set(`${P}/swarmnet/nodes/node1`, JSON.stringify(node('node1', {
    refusals: [
      { at: NOW - 3_600_000, call: '/IpamDriver.RequestPool', error: 'an hour old' },
      { at: NOW - 30_000, call: '/IpamDriver.RequestPool', error: 'subnet 192.168.5.0/24 is outside AVAILABLE_SUBNETS' },
      { at: NOW - 20_000, call: '/NetworkDriver.Join', error: 'shown to the user by Docker' },
    ],
    dns: { served: 1, waiting: 1, serveFailures: 2 },
  })));
  s.nodes.set(`${P}/swarmnet/nodes/node2`, JSON.stringify(node('node2', {
    lb: { backend: 'ipvs', vips: 1, backends: 3, checkedAt: NOW - 600_000, failures: 1, repairs: 0, failing: { error: 'ipvsadm: Memory allocation problem', since: NOW - 90_000 } },
  })));
  s.nodeSubnets.set(`${P}/swarmnet/node-subnets/10.128.0.0-20/node3`, '10.128.1.0-25');
  const st = buildStatus(P, s, NOW, STALE);
  t.deepEqual(st.refusals.slice(0, 2), [{ node: 'node1', at: NOW - 3_600_000, call: '/IpamDriver.RequestPool', error: 'an hour old' }, { node: 'node1', at: NOW - 30_000, call: '/IpamDriver.RequestPool', error: 'subnet 192.168.5.0/24 is outside AVAILABLE_SUBNETS' }]);
  const text = st.attention.join('\n');
  t.regex(text, /node node3 holds host subnet 10\.128\.1\.0\/25 of appnet but publishes no status/);
  t.regex(text, /node node1: 2 container namespace\(s\) could not be served/);
  t.regex(text, /node node2: its load balancer cannot write the kernel since 90 s ago: ipvsadm: Memory allocation problem/);
  t.regex(text, /node node2: its load balancer was last checked 10 min ago/);
  t.notRegex(text, /node node2: its overlay/, 'a recent check is not stale');
  t.notRegex(text, /an hour old/, 'an old refusal stays in refusals only');
  t.notRegex(text, /shown to the user/, 'a refusal Docker shows the user is not repeated');
  t.is(st.refusals.length, 3);
  t.regex(text, /node node1 refused IpamDriver\.RequestPool 30 s ago: subnet 192\.168\.5\.0\/24 is outside AVAILABLE_SUBNETS/);
});

test('bad records are counted, never fatal; a record under another node\'s key is not believed', (t) => {
  const s = snapshot();
  s.nodes.set(`${P}/swarmnet/nodes/node9`, '{not json');
  s.nodes.set(`${P}/swarmnet/nodes/node8`, JSON.stringify(node('node1')));
  s.networks.set(`${P}/swarmnet/networks/x`, JSON.stringify({ vni: 'seven' }));
  s.view.set(`${P}/swarmnet/docker/services/s9`, '[]');
  s.endpoints.set(`${P}/swarmnet/endpoints/node1/bad`, 'null');
  const st = buildStatus(P, s, NOW, STALE);
  t.is(st.unreadable, 5);
  t.deepEqual(st.nodes.map((n) => n.node), ['node1', 'node2']);
});

test('the table shows every node, network and service and says when nothing needs attention', (t) => {
  const s = snapshot();
  s.view.delete(`${P}/swarmnet/docker/containers/node2/c4`);
  s.view.set(`${P}/swarmnet/docker/containers/node1/c4`, JSON.stringify({ id: 'c4', serviceId: 's2', live: true, networks: {} }));
  const text = renderStatus(buildStatus(P, s, NOW, STALE), NOW);
  t.regex(text, /^node1\s+10\.0\.0\.1\s+manager\s+0\.1\.0\s+10 min\s+60 s ago\s+on\s+2\s+nftables\s+1\s+3\s+30 s ago\s+-$/m);
  t.regex(text, /^appnet\s+10\.128\.0\.0\/20\s+4096\s+node1=10\.128\.0\.0\/25 node2=10\.128\.0\.128\/25\s+node1=1 node2=1$/m);
  t.regex(text, /^web\s+vip\s+appnet=10\.128\.15\.130\s+1\/3$/m);
  t.regex(text, /^OK: nothing needs attention$/m);
});
