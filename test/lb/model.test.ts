import test from 'ava';
import { diffStates, EMPTY_STATE, holds, DAMAGED } from '../../lb/desired.js';
import { LbModel } from '../../lb/model.js';

const ROOT = '/p/swarmnet/docker';
const svc = (id: string, vips: Record<string, string>, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ id, name: id, endpointMode: 'vip', vips, aliases: {}, ...extra });
const ctr = (id: string, serviceId: string | undefined, nets: Record<string, string>, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ id, name: id, ...(serviceId ? { serviceId } : {}), live: true, networks: Object.fromEntries(Object.entries(nets).map(([n, a]) => [n, { address: a, aliases: [] }])), ...extra });

function model(): LbModel {
  const m = new LbModel('/p', 'n1', () => 0);
  m.reset(new Map());
  m.takeChange();
  return m;
}
const backends = (m: LbModel, vip: string): readonly string[] | undefined => m.state().vips.get(vip)?.backends;

test('a service\'s VIP per network, with its running tasks on that network as backends, sorted', (t) => {
  const m = model();
  m.apply('put', `${ROOT}/services/s1`, svc('s1', { netA: '10.0.255.2', netB: '10.1.255.2' }));
  m.apply('put', `${ROOT}/containers/n2/c2`, ctr('c2', 's1', { netA: '10.0.2.5', netB: '10.1.2.5' }));
  m.apply('put', `${ROOT}/containers/n1/c1`, ctr('c1', 's1', { netA: '10.0.1.5' }));
  m.apply('put', `${ROOT}/containers/n1/other`, ctr('other', undefined, { netA: '10.0.1.9' }));
  t.deepEqual(backends(m, '10.0.255.2'), ['10.0.1.5', '10.0.2.5']);
  t.deepEqual(backends(m, '10.1.255.2'), ['10.1.2.5']);
  t.like(m.state().vips.get('10.0.255.2'), { serviceId: 's1', networkId: 'netA' });
  t.deepEqual([...m.state().local], ['10.0.1.5'], 'only this node\'s task addresses are hairpin candidates');
  const ch = m.takeChange();
  t.deepEqual([...ch.vips].sort(), ['10.0.255.2', '10.1.255.2']);
  t.true(ch.local);
});

test('unhealthy, draining and deleted tasks leave; a deleted one is reported gone (its flows may be cut)', (t) => {
  const m = model();
  m.apply('put', `${ROOT}/services/s1`, svc('s1', { netA: '10.0.255.2' }));
  for (const [id, a] of [['c1', '10.0.1.5'], ['c2', '10.0.1.6'], ['c3', '10.0.1.7']]) m.apply('put', `${ROOT}/containers/n2/${id}`, ctr(id!, 's1', { netA: a! }));
  m.takeChange();
  m.apply('put', `${ROOT}/containers/n2/c1`, ctr('c1', 's1', { netA: '10.0.1.5' }, { live: false }));
  t.deepEqual(backends(m, '10.0.255.2'), ['10.0.1.6', '10.0.1.7']);
  t.is(m.takeChange().gone.size, 0, 'unhealthy is not gone');
  m.apply('put', `${ROOT}/services/s1`, svc('s1', { netA: '10.0.255.2' }, { draining: ['c2'] }));
  t.deepEqual(backends(m, '10.0.255.2'), ['10.0.1.7']);
  m.takeChange();
  m.apply('delete', `${ROOT}/containers/n2/c3`);
  t.deepEqual(backends(m, '10.0.255.2'), []);
  t.deepEqual([...m.takeChange().gone.get('10.0.255.2')!], ['10.0.1.7']);
});

test('dnsrr services and removed services have no VIP; switching back restores it', (t) => {
  const m = model();
  m.apply('put', `${ROOT}/services/s1`, svc('s1', { netA: '10.0.255.2' }));
  m.apply('put', `${ROOT}/containers/n2/c1`, ctr('c1', 's1', { netA: '10.0.1.5' }));
  m.apply('put', `${ROOT}/services/s1`, svc('s1', {}, { endpointMode: 'dnsrr' }));
  t.is(m.state().vips.size, 0);
  m.apply('put', `${ROOT}/services/s1`, svc('s1', { netA: '10.0.255.3' }));
  t.deepEqual(backends(m, '10.0.255.3'), ['10.0.1.5']);
  m.apply('delete', `${ROOT}/services/s1`);
  t.is(m.state().vips.size, 0);
});

test('bad records are dropped and counted; a VIP claimed by two services stays with the first', (t) => {
  const m = model();
  t.true(m.apply('put', `${ROOT}/services/s1`, '{not json'));
  m.apply('put', `${ROOT}/containers/n1/c1`, JSON.stringify({ id: 'c1' }));
  m.apply('put', `${ROOT}/containers/n1/c2`, '[broken');
  m.apply('put', `${ROOT}/containers/n1/c3`, JSON.stringify({ id: 'c3', name: 'c3', networks: {} }));
  t.is(m.stats.rejected, 3, 'a plain container (no service) is not a rejected record');
  m.apply('put', `${ROOT}/services/s1`, svc('s1', { netA: '10.0.255.2' }));
  m.apply('put', `${ROOT}/services/s2`, svc('s2', { netA: '10.0.255.2' }));
  t.is(m.state().vips.get('10.0.255.2')?.serviceId, 's1');
  t.is(m.stats.rejected, 4);
  t.false(m.apply('put', '/elsewhere/x', '{}'));
});

test('a snapshot replaces everything and marks every old and new VIP changed', (t) => {
  const m = model();
  m.apply('put', `${ROOT}/services/s1`, svc('s1', { netA: '10.0.255.2' }));
  m.takeChange();
  const kvs = new Map([[`${ROOT}/services/s2`, svc('s2', { netA: '10.0.255.3' })], [`${ROOT}/containers/n1/c1`, ctr('c1', 's2', { netA: '10.0.1.5' })]]);
  m.reset(kvs);
  t.deepEqual([...m.state().vips.keys()], ['10.0.255.3']);
  t.deepEqual([...m.takeChange().vips].sort(), ['10.0.255.2', '10.0.255.3']);
  t.deepEqual(backends(m, '10.0.255.3'), ['10.0.1.5']);
});

test('diff and holds: only what changed, and no VIP means nothing of ours in the kernel', (t) => {
  const a = { vips: new Map([['v1', { vip: 'v1', serviceId: 's', networkId: 'n', backends: ['1', '2'] }]]), local: new Set(['1']) };
  const b = { vips: new Map([['v1', { vip: 'v1', serviceId: 's', networkId: 'n', backends: ['2'] }], ['v2', { vip: 'v2', serviceId: 't', networkId: 'n', backends: [] }]]), local: new Set(['3']) };
  const d = diffStates(a, b);
  t.deepEqual([...d.vips.keys()].sort(), ['v1', 'v2']);
  t.deepEqual(d.localAdded, ['3']);
  t.deepEqual(d.localRemoved, ['1']);
  t.is(diffStates(a, b, ['v2'], false).vips.size, 1);
  t.true(holds({ vips: new Map([['v1', { vip: 'v1', serviceId: '', networkId: '', backends: ['1', '2'] }]]), local: new Set(['1']) }, a), 'ids are not compared');
  t.false(holds(a, b));
  t.true(holds(EMPTY_STATE, { vips: new Map(), local: new Set(['1']) }));
  t.false(holds(DAMAGED, EMPTY_STATE));
});
