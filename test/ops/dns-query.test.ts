import test from 'ava';
import { queryAsContainer, renderQuery } from '../../ops/dns-query.js';
import { QueryError } from '../../ops/view-records.js';

const P = '/flannel';
const key = (k: string): string => `${P}/swarmnet/docker/${k}`;
const c = (id: string, name: string, nets: Record<string, string>, extra: object = {}): string => JSON.stringify({
  id, name, hostname: id.slice(0, 12), live: true, ndots: false,
  networks: Object.fromEntries(Object.entries(nets).map(([n, address]) => [n, { address, aliases: [], dnsNames: [name, id.slice(0, 12)] }])), ...extra,
});
// front (n1) and back (n2): the API's task t1 on both, x1 on back only, a service api with a VIP on each.
const view = new Map([
  [key('networks/n1'), JSON.stringify({ id: 'n1', name: 'front' })],
  [key('networks/n2'), JSON.stringify({ id: 'n2', name: 'back' })],
  [key('services/s1'), JSON.stringify({ id: 's1', name: 'api', endpointMode: 'vip', vips: { n1: '10.1.0.250', n2: '10.2.0.250' }, aliases: {} })],
  [key('containers/node1/aaaa1111bbbb2222'), c('aaaa1111bbbb2222', 'api.1.xyz', { n1: '10.1.0.2', n2: '10.2.0.2' }, { serviceId: 's1', service: 'api' })],
  [key('containers/node2/cccc3333dddd4444'), c('cccc3333dddd4444', 'worker', { n2: '10.2.0.9' })],
  [key('containers/node2/cccc3333eeee5555'), c('cccc3333eeee5555', 'other', { n2: '10.2.0.10' })],
]);

test('a service name: the VIP of the first network in Docker\'s order that has it; the answering network is named', (t) => {
  const r = queryAsContainer(P, view, 'api.1.xyz', 'api', 'A', true);
  t.is(r.outcome, 'answered');
  t.deepEqual(r.answers, ['10.2.0.250'], 'back before front (by name)');
  t.is(r.network, 'back');
  t.deepEqual(r.container, { id: 'aaaa1111bbbb2222', name: 'api.1.xyz', node: 'node1', networks: ['back', 'front'] });
  t.deepEqual(queryAsContainer(P, view, 'api.1.xyz', 'api.front', 'A', true).answers, ['10.1.0.250'], '<name>.<network>');
  t.deepEqual(queryAsContainer(P, view, 'api.1.xyz', 'API.', 'A', true).answers, ['10.2.0.250'], 'case and the root dot do not matter');
  t.deepEqual(queryAsContainer(P, view, 'api.1.xyz', 'api', 'A', false).answers.sort(), ['10.1.0.250', '10.2.0.250'], 'without compatibility: every network');
});

test('tasks.<svc>, PTR by address, NODATA for a swarmnet name, forwarded otherwise, from the container\'s own networks only', (t) => {
  t.deepEqual(queryAsContainer(P, view, 'worker', 'tasks.api', 'A', true).answers, ['10.2.0.2']);
  const ptr = queryAsContainer(P, view, 'worker', '10.2.0.2', 'PTR', true);
  t.is(ptr.qname, '2.0.2.10.in-addr.arpa');
  t.deepEqual(ptr.answers, ['api.1.xyz.back']);
  const mx = queryAsContainer(P, view, 'worker', 'api', 'MX', true);
  t.is(mx.outcome, 'nodata');
  t.regex(mx.explanation, /never forwarded/);
  const ext = queryAsContainer(P, view, 'worker', 'example.com', 'A', true);
  t.is(ext.outcome, 'forwarded');
  t.regex(renderQuery(ext), /example\.com A → \(forwarded\)/);
  t.is(queryAsContainer(P, view, 'worker', 'api.front', 'A', true).outcome, 'forwarded', 'worker is not on front');
  t.regex(renderQuery(queryAsContainer(P, view, 'aaaa1111', 'worker', 'A', true)), /^container api\.1\.xyz \(aaaa1111bbbb\) on node1, swarmnet networks: back, front\nworker A → 10\.2\.0\.9 \[network back\]/);
});

test('a container is named by name, id or a unique id prefix; anything else is a clear error', (t) => {
  t.is(queryAsContainer(P, view, 'cccc3333dddd4444', 'api', 'A', true).container.name, 'worker');
  t.is(queryAsContainer(P, view, '/other', 'api', 'A', true).container.id, 'cccc3333eeee5555');
  t.throws(() => queryAsContainer(P, view, 'cccc3333', 'api', 'A', true), { instanceOf: QueryError, message: /names 2 containers/ });
  t.throws(() => queryAsContainer(P, view, 'nope', 'api', 'A', true), { instanceOf: QueryError, message: /no container nope on a swarmnet network/ });
  t.throws(() => queryAsContainer(P, view, 'ccc', 'api', 'A', true), { instanceOf: QueryError }, 'a prefix needs 4 characters');
});
