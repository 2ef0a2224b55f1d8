import test from 'ava';
import { Readiness } from '../../plugin/readiness.js';

test('calls wait for readiness, bounded, with an error naming what is missing', async (t) => {
  const r = new Readiness();
  r.setWaitingFor('etcd at http://10.0.0.1:2379');
  const err = await t.throwsAsync(r.wait(50));
  t.regex(err?.message ?? '', /not ready yet \(waiting for etcd at http:\/\/10\.0\.0\.1:2379\)/);
  t.is((err as { status?: number }).status, 503);
  const waiting = r.wait(5000);
  setTimeout(() => r.markReady(), 20);
  await t.notThrowsAsync(waiting);
  t.deepEqual(r.status, { ready: true });
  await t.notThrowsAsync(r.wait(1), 'ready is immediate afterwards');
});
