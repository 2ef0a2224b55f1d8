import test from 'ava';
import { eventTargets, planReplace } from '../../plugin/docker/resync.js';

// The Docker view's reconnect path (list everything, write it, delete what is gone) as a pure plan. The real event
// stream against dockerd is covered by the sandbox e2e suite.

const P = '/p/swarmnet/docker/containers/n1/';

test('full resync: writes new and changed records, deletes vanished ones, leaves the rest', (t) => {
  const have = { [`${P}a`]: '{"v":1}', [`${P}b`]: '{"v":1}', [`${P}gone`]: '{"v":1}' };
  const want = new Map([['a', '{"v":1}'], ['b', '{"v":2}'], ['new', '{"v":1}']]);
  t.deepEqual(planReplace(P, have, want, false), { puts: [[`${P}b`, '{"v":2}'], [`${P}new`, '{"v":1}']], deletes: [`${P}gone`] });
});

test('full resync of node-owned records rewrites them all (to attach them to the current lease)', (t) => {
  const plan = planReplace(P, { [`${P}a`]: 'x' }, new Map([['a', 'x']]), true);
  t.deepEqual(plan, { puts: [[`${P}a`, 'x']], deletes: [] });
});

test('an empty Docker listing deletes everything under the prefix, and nothing outside it', (t) => {
  const plan = planReplace(P, { [`${P}a`]: 'x', '/p/swarmnet/docker/containers/n10/b': 'y' }, new Map(), false);
  t.deepEqual(plan.deletes, [`${P}a`]);
});

test('event targets: a network connect refreshes the network and the container', (t) => {
  t.deepEqual(eventTargets({ Type: 'network', Action: 'connect', Actor: { ID: 'n1', Attributes: { container: 'c1', name: 'x' } } }), [
    { kind: 'network', id: 'n1' }, { kind: 'container', id: 'c1' },
  ]);
  t.deepEqual(eventTargets({ Type: 'container', Action: 'die', Actor: { ID: 'c1' } }), [{ kind: 'container', id: 'c1' }]);
  t.deepEqual(eventTargets({ Type: 'service', Action: 'update', Actor: { ID: 's1' } }), [{ kind: 'service', id: 's1' }]);
  t.deepEqual(eventTargets({ Type: 'image', Actor: { ID: 'i' } }), []);
  t.deepEqual(eventTargets({ Type: 'container' }), []);
  t.deepEqual(eventTargets(null), []);
});
