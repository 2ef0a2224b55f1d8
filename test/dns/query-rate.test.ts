import test from 'ava';
import { QueryRate, RateLine } from '../../dns/query-rate.js';

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

test('several queries at once: all or nothing, never more than the burst', (t) => {
  const c = clock();
  const r = new QueryRate(100, 10, c.now);
  t.false(r.take('a', 11), 'more than the burst, even from a full budget');
  t.true(r.take('a', 8));
  t.false(r.take('a', 3), 'two left: nothing taken');
  t.true(r.take('a', 2));
  t.false(r.take('a'));
  c.t += 50;
  t.true(r.take('a', 5));
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

/** A line over a fake clock; timers run when the test advances the clock past them. */
function line(perSecond: number, burst: number) {
  const c = clock();
  const timers: { at: number; fn: () => void }[] = [];
  const l = new RateLine(new QueryRate(perSecond, burst, c.now), (fn, ms) => { timers.push({ at: c.t + ms, fn }); });
  const advance = (ms: number): void => {
    const end = c.t + ms;
    for (;;) {
      timers.sort((x, y) => x.at - y.at);
      if (!timers.length || timers[0]!.at > end) break;
      const next = timers.shift()!;
      c.t = Math.max(c.t, next.at);
      next.fn();
    }
    c.t = end;
  };
  return { l, advance, timers };
}

test('the line: waiters are served in the order they came, each with what it asked for, and nobody takes ahead of them', (t) => {
  const { l, advance, timers } = line(100, 10); // one query every 10 ms
  t.true(l.take('a', 10), 'the burst');
  const served: string[] = [];
  l.wait('a', 5, () => served.push('udp'));
  l.wait('a', 2, () => served.push('tcp1'));
  l.wait('a', 1, () => served.push('tcp2'));
  t.false(l.take('a'), 'a direct take does not jump the line, even when a token has renewed');
  t.true(l.take('b'), 'another container has its own budget and line');
  advance(49);
  t.deepEqual(served, [], 'five tokens take 50 ms');
  advance(1);
  t.deepEqual(served, ['udp']);
  advance(20);
  t.deepEqual(served, ['udp', 'tcp1']);
  advance(10);
  t.deepEqual(served, ['udp', 'tcp1', 'tcp2']);
  t.is(l.size, 0, 'an empty line is forgotten');
  t.is(timers.length, 0, 'and leaves no timer');
  t.false(l.take('a'), 'what each waiter was served was taken from the budget');
  advance(10);
  t.true(l.take('a'));
});

test('the line: a waiter served may wait again at the end; a cancelled one takes nothing; more than the burst waits for the burst', (t) => {
  const { l, advance } = line(100, 10);
  t.true(l.take('a', 10));
  const served: string[] = [];
  const again = (): void => { served.push('flood'); if (served.filter((x) => x === 'flood').length < 3) l.wait('a', 10, again); };
  l.wait('a', 10, again);
  const leave = l.wait('a', 1, () => served.push('closed'));
  l.wait('a', 1, () => served.push('late'));
  leave();
  advance(100);
  t.deepEqual(served, ['flood'], 'the burst is the most one waiter gets');
  advance(10);
  t.deepEqual(served, ['flood', 'late'], 'the late one comes before the flood\'s next turn; the cancelled one is skipped');
  advance(200);
  t.deepEqual(served, ['flood', 'late', 'flood', 'flood']);
  t.is(l.size, 0);
  const big: string[] = [];
  l.wait('b', 50, () => big.push('served'));
  t.deepEqual(big, [], 'never before wait() returns');
  advance(1);
  t.deepEqual(big, ['served'], 'a fresh budget serves the burst at the next timer');
});
