import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { setLogLevel, logger } from '../../common/log.js';
import { readPrefixes, PAGE } from '../../ops/etcd-snapshot.js';
import { NodeStatusPublisher, nodeStatusPrefix } from '../../plugin/node-status.js';
import { NodeLease } from '../../plugin/state/etcd-client.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { randomPrefix } from '../ipam/setup.js';
import { until } from '../helpers/wait.js';

setLogLevel('silent');
const run = hasEtcd ? test.serial : test.serial.skip;
const CLI = new URL('../../dist/plugin/cli.js', import.meta.url).pathname;
const exec = promisify(execFile);

let etcd: TestEtcd | undefined;
let client: Etcd3;
test.before(async () => {
  if (!hasEtcd) return;
  etcd = await TestEtcd.start();
  client = new Etcd3({ hosts: etcd.endpoint });
});
test.after.always(async () => {
  client?.close();
  await etcd?.stop();
});

/** The CLI as an operator runs it: exit code, stdout, stderr. */
async function cli(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [CLI, command, ...args], { env: { PATH: process.env.PATH, DOCKER_HOST: 'unix:///nonexistent', ...env } });
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

run('readPrefixes pages through a prefix at one revision: every key once, (keys / PAGE) + 1 reads, nothing of other prefixes', async (t) => {
  const p = randomPrefix();
  const n = 2 * PAGE + 345;
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(n, i + 200) - i }, (_, j) => i + j);
    await Promise.all(batch.map((j) => client.put(`${p}/a/${String(j).padStart(5, '0')}`).value(String(j)).exec()));
  }
  await client.put(`${p}/b/1`).value('b');
  await client.put(`${p}/ab`).value('not under /a/');
  const { data, reads } = await readPrefixes(client, { a: `${p}/a/`, b: `${p}/b/` });
  t.is(data.a.size, n);
  t.is(data.a.get(`${p}/a/01234`), '1234');
  t.deepEqual([...data.b], [[`${p}/b/1`, 'b']]);
  t.is(reads, Math.ceil(n / PAGE) + 1);
});

run('the node status is published under the node lease, rewritten only when it changed, and again after the lease was lost', async (t) => {
  const p = randomPrefix();
  const lease = new NodeLease(client, 5);
  let served = 1;
  const pub = new NodeStatusPublisher({
    client, lease, prefix: p, intervalMs: 60_000, log: logger('test'),
    collect: () => ({
      node: 'n1', publicIp: '10.0.0.1', version: '0.1.0', manager: true, startedAt: 1,
      overlay: { runs: 1, failedRuns: 0 }, dns: { served, waiting: 0, serveFailures: 0 },
      lb: { backend: 'nftables', vips: 0, backends: 0, failures: 0, repairs: 0 },
    }),
  });
  const key = `${nodeStatusPrefix(p)}n1`;
  try {
    await pub.publish();
    const first = await client.get(key).exec();
    t.is(JSON.parse(first.kvs[0]!.value.toString()).dns.served, 1);
    t.is(first.kvs[0]!.lease.toString(), await lease.id(), 'held by the node lease: it vanishes with the node');
    await pub.publish();
    t.is((await client.get(key).exec()).kvs[0]!.mod_revision, first.kvs[0]!.mod_revision, 'unchanged: not written again');
    served = 3;
    pub.refused('/IpamDriver.RequestPool', 'subnet 192.168.5.0/24 is outside AVAILABLE_SUBNETS');
    await pub.publish();
    const rec = JSON.parse((await client.get(key).string())!);
    t.is(rec.dns.served, 3);
    t.deepEqual(rec.refusals.map((r: { call: string; error: string }) => [r.call, r.error]), [['/IpamDriver.RequestPool', 'subnet 192.168.5.0/24 is outside AVAILABLE_SUBNETS']]);
    // The lease runs out (a partition longer than the TTL): the record goes, and comes back under the new lease.
    const old = await lease.id();
    await client.leaseClient.leaseRevoke({ ID: old });
    t.is(await client.get(key).string(), null);
    t.true(await until(async () => { await pub.publish(); return (await client.get(key).string()) !== null; }));
    t.not((await client.get(key).exec()).kvs[0]!.lease.toString(), old);
  } finally {
    await pub.stop();
    await lease.close(true);
  }
});

run('swarmnet status against etcd: the table, --json, exit 1 with what needs attention, 2 with one line when etcd is away', async (t) => {
  const p = randomPrefix();
  const rec = {
    node: 'n1', publicIp: '10.0.0.1', version: '0.1.0', manager: true, startedAt: Date.now() - 5000,
    overlay: { runs: 1, failedRuns: 0 }, dns: { served: 1, waiting: 0, serveFailures: 0 },
    lb: { backend: 'nftables', vips: 1, backends: 1, failures: 0, repairs: 0 }, refusals: [],
  };
  await client.put(`${p}/swarmnet/nodes/n1`).value(JSON.stringify(rec));
  await client.put(`${p}/swarmnet/networks/10.128.0.0-20`).value(JSON.stringify({ id: '10.128.0.0-20', subnet: '10.128.0.0/20', vni: 4096 }));
  await client.put(`${p}/swarmnet/docker/networks/d1`).value(JSON.stringify({ id: 'd1', name: 'appnet', subnet: '10.128.0.0/20' }));
  const env = { ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: p };

  const ok = await cli('status', [], env);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /^n1\s+10\.0\.0\.1\s+manager\s+0\.1\.0\s/m);
  t.regex(ok.stdout, /^appnet\s+10\.128\.0\.0\/20\s+4096\s/m);
  t.regex(ok.stdout, /OK: nothing needs attention/);

  await client.put(`${p}/swarmnet/nodes/n1`).value(JSON.stringify({ ...rec, refusals: [{ at: Date.now(), call: '/IpamDriver.RequestPool', error: 'requested pool 192.168.5.0/24 is outside AVAILABLE_SUBNETS' }] }));
  const bad = await cli('status', ['--json', '--etcd-endpoints', etcd!.endpoint, '--prefix', p]);
  t.is(bad.code, 1);
  const j = JSON.parse(bad.stdout);
  t.deepEqual(Object.keys(j).sort(), ['attention', 'etcd', 'networks', 'nodes', 'refusals', 'services', 'unreadable']);
  t.is(j.etcd.reads, 5, 'one range read per prefix');
  t.regex(j.attention[0], /node n1 refused IpamDriver\.RequestPool .*192\.168\.5\.0\/24 is outside AVAILABLE_SUBNETS/);

  const away = await cli('status', [], { ETCD_ENDPOINTS: 'http://127.0.0.1:1', ETCD_PREFIX: p });
  t.is(away.code, 2);
  t.regex(away.stderr, /^swarmnet status: cannot read etcd at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
  t.is(away.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  t.is(away.stdout, '');

  const none = await cli('status', []);
  t.is(none.code, 2);
  t.regex(none.stderr, /^swarmnet status: no etcd to read: set ETCD_ENDPOINTS or --etcd-endpoints/);
  const badFlag = await cli('status', ['--etcd-endpoints', 'not a url']);
  t.is(badFlag.code, 2);
  t.regex(badFlag.stderr, /^swarmnet status: .*ETCD_ENDPOINTS/);
});
