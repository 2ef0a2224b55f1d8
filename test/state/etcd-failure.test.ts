import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEtcdClient, etcdFailure } from '../../plugin/state/etcd-client.js';

test('an open circuit breaker is reported as etcd not answering; other etcd errors keep their own words', (t) => {
  t.regex(etcdFailure(new Error('Execution prevented because the circuit breaker is open')), /^no answer from etcd/);
  const broken = Object.assign(new Error('x'), { name: 'BrokenCircuitError' });
  t.regex(etcdFailure(broken), /^no answer from etcd/);
  t.is(etcdFailure(new Error('etcdserver: permission denied')), 'etcdserver: permission denied');
});

test('with TLS to an etcd dialled by IP, Node\'s warning about an IP as TLS server name (DEP0123) is dropped; other warnings stay', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'snt-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.pem'), '');
  const client = createEtcdClient({ endpoints: ['https://127.0.0.1:1'], prefix: '/x', requestTimeoutMs: 1000, caFile: join(dir, 'ca.pem') } as Parameters<typeof createEtcdClient>[0]);
  client.close();
  const seen: string[] = [];
  const onWarning = (w: Error & { code?: string }): void => void seen.push(w.code ?? w.message);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  process.emitWarning('Setting the TLS ServerName to an IP address is not permitted by RFC 6066.', 'DeprecationWarning', 'DEP0123');
  process.emitWarning('something else', 'DeprecationWarning', 'DEP9999');
  await new Promise((r) => setImmediate(r));
  t.deepEqual(seen, ['DEP9999']);
});
