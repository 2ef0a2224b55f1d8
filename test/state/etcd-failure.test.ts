import test from 'ava';
import { etcdFailure } from '../../plugin/state/etcd-client.js';

test('an open circuit breaker is reported as etcd not answering; other etcd errors keep their own words', (t) => {
  t.regex(etcdFailure(new Error('Execution prevented because the circuit breaker is open')), /^no answer from etcd/);
  const broken = Object.assign(new Error('x'), { name: 'BrokenCircuitError' });
  t.regex(etcdFailure(broken), /^no answer from etcd/);
  t.is(etcdFailure(new Error('etcdserver: permission denied')), 'etcdserver: permission denied');
});
