import test from 'ava';
import type { StatusSnapshot } from '../../ops/status-model.js';
import { QueryError } from '../../ops/view-records.js';
import { parseDestination, renderTrace, trace, traceOk } from '../../ops/trace.js';

const P = '/flannel';
const c = (id: string, name: string, nets: Record<string, string>, extra: object = {}): string => JSON.stringify({
  id, name, hostname: id, live: true, ndots: false,
  networks: Object.fromEntries(Object.entries(nets).map(([n, address]) => [n, { address, aliases: [], dnsNames: [name] }])), ...extra,
});
const node = (name: string, ip: string, backend: string): string => JSON.stringify({ node: name, publicIp: ip, lb: { backend } });

// front (n1, 10.1.0.0/20) and back (n2, 10.2.0.0/20); service api on front (VIP 10.1.15.130) with a task on each
// node and one Swarm is stopping; the client on node2, on front only; x on back.
function snapshot(): StatusSnapshot {
  const v = (k: string): string => `${P}/swarmnet/docker/${k}`;
  return {
    nodes: new Map([[`${P}/swarmnet/nodes/node1`, node('node1', '10.99.0.11', 'nftables')], [`${P}/swarmnet/nodes/node2`, node('node2', '10.99.0.12', 'nftables')]]),
    networks: new Map([
      [`${P}/swarmnet/networks/10.1.0.0-20`, JSON.stringify({ id: '10.1.0.0-20', subnet: '10.1.0.0/20', vni: 1 })],
      [`${P}/swarmnet/networks/10.2.0.0-20`, JSON.stringify({ id: '10.2.0.0-20', subnet: '10.2.0.0/20', vni: 2 })],
    ]),
    nodeSubnets: new Map([
      [`${P}/swarmnet/node-subnets/10.1.0.0-20/node1`, '10.1.0.0-25'],
      [`${P}/swarmnet/node-subnets/10.1.0.0-20/node2`, '10.1.0.128-25'],
      [`${P}/swarmnet/node-subnets/10.1.0.0-20/node3`, '10.1.1.0-25'],
    ]),
    endpoints: new Map(),
    view: new Map([
      [v('networks/n1'), JSON.stringify({ id: 'n1', name: 'front', subnet: '10.1.0.0/20' })],
      [v('networks/n2'), JSON.stringify({ id: 'n2', name: 'back', subnet: '10.2.0.0/20' })],
      [v('services/s1'), JSON.stringify({ id: 's1', name: 'api', endpointMode: 'vip', vips: { n1: '10.1.15.130' }, aliases: {}, draining: ['t3'] })],
      [v('services/s2'), JSON.stringify({ id: 's2', name: 'db', endpointMode: 'vip', vips: { n2: '10.2.15.130' }, aliases: {} })],
      [v('containers/node1/t1'), c('t1', 'api.1', { n1: '10.1.0.2' }, { serviceId: 's1' })],
      [v('containers/node2/t2'), c('t2', 'api.2', { n1: '10.1.0.130' }, { serviceId: 's1' })],
      [v('containers/node2/t3'), c('t3', 'api.3', { n1: '10.1.0.131' }, { serviceId: 's1' })],
      [v('containers/node2/client1'), c('client1', 'client', { n1: '10.1.0.140' })],
      [v('containers/node1/x1'), c('x1', 'x', { n2: '10.2.0.2' })],
    ]),
  };
}

test('a service name: the DNS answer, then the VIP\'s backends on their nodes, local or over VXLAN to the node; one being stopped is left out', (t) => {
  const r = trace(P, snapshot(), 'client', 'api:8080', true);
  t.deepEqual(r.from, { id: 'client1', name: 'client', node: 'node2', networks: ['front'] });
  t.is(r.port, 8080);
  t.deepEqual(r.dns?.answers, ['10.1.15.130']);
  t.is(r.lb, 'nftables');
  t.is(r.targets.length, 1);
  const v = r.targets[0]!;
  t.is(v.kind, 'vip');
  t.is(v.service, 'api');
  t.deepEqual(v.hops, [
    { address: '10.1.0.2', container: 'api.1', node: 'node1', path: 'vxlan', via: '10.99.0.11' },
    { address: '10.1.0.130', container: 'api.2', node: 'node2', path: 'local' },
  ]);
  t.true(traceOk(r));
  const text = renderTrace(r);
  t.regex(text, /^from client on node2 \(swarmnet networks: front\)\napi → 10\.1\.15\.130 \[DNS: network front\]\n10\.1\.15\.130:8080: the VIP of service api on front: node2's load balancer \(nftables\) sends each connection to one of 2 backend\(s\), same port/);
  t.regex(text, / {2}→ 10\.1\.0\.2 api\.1 on node1: VXLAN to 10\.99\.0\.11\n {2}→ 10\.1\.0\.130 api\.2 on node2: local \(bridge\)$/);
});

test('addresses: a task on another node, a host subnet nobody\'s container holds, another network (isolated), outside swarmnet', (t) => {
  const s = snapshot();
  const direct = trace(P, s, 'client', '10.1.0.2', true);
  t.deepEqual(direct.targets[0]!.hops, [{ address: '10.1.0.2', container: 'api.1', node: 'node1', path: 'vxlan', via: '10.99.0.11' }]);
  t.is(direct.dns, undefined);
  const free = trace(P, s, 'client', '10.1.1.5', true).targets[0]!;
  t.is(free.kind, 'address');
  t.deepEqual(free.hops, [{ address: '10.1.1.5', node: 'node3', path: 'vxlan', via: '(its public address is unknown: no status record)' }]);
  const isolated = trace(P, s, 'client', '10.2.0.2', true);
  t.is(isolated.targets[0]!.kind, 'unreachable');
  t.regex(isolated.targets[0]!.note, /a network client is not on: isolated/);
  t.false(traceOk(isolated));
  t.is(trace(P, s, 'client', '10.2.15.130', true).targets[0]!.kind, 'unreachable', 'a VIP of another network');
  const out = trace(P, s, 'client', '192.0.2.7:443', true);
  t.is(out.targets[0]!.kind, 'outside');
  t.true(traceOk(out));
});

test('a name swarmnet does not answer is forwarded (nothing to trace); bad input is a clear error', (t) => {
  const r = trace(P, snapshot(), 'client', 'example.com', true);
  t.is(r.dns?.outcome, 'forwarded');
  t.deepEqual(r.targets, []);
  t.false(traceOk(r));
  t.regex(renderTrace(r), /example\.com → \(forwarded\)\nnot a name of its swarmnet networks/);
  t.throws(() => parseDestination('api:99999'), { instanceOf: QueryError, message: /bad destination/ });
  t.deepEqual(parseDestination('api'), { host: 'api' });
  t.throws(() => trace(P, snapshot(), 'nobody', 'api', true), { instanceOf: QueryError, message: /no container nobody/ });
});

test('a VIP whose service has no healthy task: refused at once, no path', (t) => {
  const s = snapshot();
  s.view.delete(`${P}/swarmnet/docker/containers/node1/t1`);
  s.view.set(`${P}/swarmnet/docker/containers/node2/t2`, c('t2', 'api.2', { n1: '10.1.0.130' }, { serviceId: 's1', live: false }));
  const r = trace(P, s, 'client', '10.1.15.130', true);
  t.regex(r.targets[0]!.note, /no healthy task: connections are refused at once/);
  t.false(traceOk(r));
});
