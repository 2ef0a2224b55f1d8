import test from 'ava';
import { QueryRate } from '../../dns/query-rate.js';

const clock = () => {
  const c = { t: 1000, now: () => c.t };
  return c;
};

test('a container gets its burst at once, then its rate; another container has its own budget', (t) => {
  const c = clock();
  const r = new QueryRate(100, 10, c.now);
  const taken = Array.from({ length: 12 }, () => r.take('a'));
  t.deepEqual(taken.map(Number).join(''), '111111111100', 'the burst of 10, then nothing');
  t.true(r.take('b'), 'b is not a\'s budget');
  t.is(r.waitMs('a'), 10, 'one query every 10 ms at 100/s');
  t.is(r.waitMs('a', 5), 50);
  t.is(r.waitMs('a', 50), 100, 'never more than the burst is waited for');
  c.t += 10;
  t.true(r.take('a'));
  t.false(r.take('a'));
  c.t += 35;
  t.deepEqual([r.take('a'), r.take('a'), r.take('a'), r.take('a')], [true, true, true, false], '3.5 queries renewed: 3');
  t.is(r.waitMs('unknown'), 0);
});

test('budget renews up to the burst, not beyond: a long idle time does not bank queries', (t) => {
  const c = clock();
  const r = new QueryRate(100, 10, c.now);
  for (let i = 0; i < 10; i++) r.take('a');
  c.t += 60_000;
  let n = 0;
  while (r.take('a')) n++;
  t.is(n, 10);
});

test('full buckets are forgotten: idle and gone containers cost no memory', (t) => {
  const c = clock();
  const r = new QueryRate(1000, 1000, c.now);
  for (let i = 0; i < 5000; i++) r.take(`c${i}`);
  t.true(r.size > 900, 'recent containers are tracked');
  c.t += 2000;
  for (let i = 0; i < 4096; i++) r.take('busy');
  t.is(r.size, 1, 'after a sweep only the container still short of budget is left');
  t.throws(() => new QueryRate(0), { message: /positive/ });
});
