// The DNS plane (dns/inject/) against real namespaces: a "container" namespace with Docker's embedded-DNS NAT and a
// stand-in Docker resolver, served from Join (Docker 28's order), from the createContainer hook before the process
// would start (20.10's order: the namespace appears after Join), or from this node's records after a restart; fresh
// answers from cluster changes; misses to Docker's resolver over UDP and TCP; leave and stop hand back.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { logger } from '../../common/log.js';
import { run } from '../../common/exec.js';
import { ClusterTable } from '../../dns/cluster-table.js';
import { startHookServer } from '../../dns/inject/hook-server.js';
import { DnsInjector } from '../../dns/inject/injector.js';
import { kernel, type NetnsId } from '../../dns/inject/kernel.js';
import { DnsServer } from '../../dns/server.js';
import { nativeUdp } from '../../dns/udp-batch.js';
import { until } from '../helpers/wait.js';
import { dockerNat, fakeDockerResolver } from './docker-stand-in.js';
import { tempNetns } from './helpers.js';

const HOOK = join(import.meta.dirname, '..', '..', 'dist', 'hook', 'swarmnet-hook');
const ready = process.getuid?.() === 0 && typeof nativeUdp()?.connectTcp === 'function' && existsSync(HOOK)
  && ['/usr/sbin/ip', '/usr/sbin/nft', '/usr/bin/nsenter', '/usr/bin/dig', '/usr/bin/ss'].every((p) => existsSync(p));
const rootTest = ready ? test.serial : test.serial.skip;

const P = '/sn-test';
const NODE = 'n1';
const put = (c: ClusterTable, key: string, v: object): boolean => c.apply('put', `${P}/swarmnet/docker/${key}`, JSON.stringify(v));
const container = (id: string, ip: string, extra: object = {}) => ({
  id, name: `web.${id}`, hostname: id, service: 'web', serviceId: 's1', live: true, ndots: false,
  networks: { n1: { address: ip, aliases: [], dnsNames: [] } }, ...extra,
});

/** A cluster: network front (n1), VIP service web (10.0.1.250) with one task on another node. */
function cluster(): ClusterTable {
  const c = new ClusterTable(P, NODE);
  put(c, 'networks/n1', { id: 'n1', name: 'front' });
  put(c, 'services/s1', { id: 's1', name: 'web', endpointMode: 'vip', vips: { n1: '10.0.1.250' }, aliases: { n1: [] } });
  put(c, 'containers/n2/t1', container('t1', '10.0.1.2'));
  return c;
}

interface Plane { injector: DnsInjector; server: DnsServer; cluster: ClusterTable }
function plane(t: ExecutionContext, c = cluster(), pollMs = 20): Plane {
  const server = new DnsServer(c.table, { compat: true, defaultUpstreams: [] });
  const injector = new DnsInjector({ server, cluster: c, log: logger('test-dns'), pollMs, intervalMs: 3_600_000 });
  injector.start();
  t.teardown(() => injector.stop());
  return { injector, server, cluster: c };
}

/** A namespace as dockerd leaves it: Docker's DNAT of 127.0.0.11:53 to its own resolver (a stand-in answering 192.0.2.99). */
async function containerNetns(t: ExecutionContext): Promise<{ name: string; path: string }> {
  const ns = await tempNetns(t, 'sninj');
  const port = await fakeDockerResolver(t, ns.path);
  await run('ip', ['netns', 'exec', ns.name, 'nft', '-f', '-'], { input: dockerNat(port) });
  return ns;
}

function dig(ns: string, name: string, extra: string[] = []): Promise<string[]> {
  return run('ip', ['netns', 'exec', ns, 'dig', '@127.0.0.11', name, 'A', '+short', '+tries=1', '+time=15', ...extra], { allowFailure: true })
    .then((r) => r.stdout.trim().split('\n').filter(Boolean).sort());
}

const tables = async (ns: string): Promise<string> => (await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'])).stdout;
const listening53 = async (ns: string): Promise<number> =>
  (await run('ip', ['netns', 'exec', ns, 'ss', '-Hlnu', 'sport', '=', ':53'])).stdout.split('\n').filter(Boolean).length;

rootTest('Join of an existing namespace (Docker 28): served before Join returns; misses reach Docker\'s resolver over UDP and TCP; changes are answered; leave hands back', async (t) => {
  const ns = await containerNetns(t);
  const { injector, cluster: c } = plane(t);
  t.deepEqual(await dig(ns.name, 'web'), ['192.0.2.99'], 'before: Docker\'s resolver answers');

  await injector.join('ep1', 'n1', ns.path);
  t.regex(await tables(ns.name), /swarmnet-dns/);
  t.deepEqual(await dig(ns.name, 'web'), ['10.0.1.250'], 'the VIP, from the cluster view');
  t.deepEqual(await dig(ns.name, 'tasks.web'), ['10.0.1.2']);
  t.deepEqual(await dig(ns.name, 'web.front'), ['10.0.1.250'], '<name>.<network>');
  t.deepEqual(await dig(ns.name, 'bridge-peer.example'), ['192.0.2.99'], 'a miss goes to Docker\'s resolver (UDP)');
  t.deepEqual(await dig(ns.name, 'bridge-peer.example', ['+tcp']), ['192.0.2.99'], 'and over TCP');
  t.deepEqual(await dig(ns.name, 'web', ['+tcp']), ['10.0.1.250']);

  // A task starts elsewhere, one turns unhealthy: every change is answered.
  put(c, 'containers/n3/t2', container('t2', '10.0.1.3'));
  injector.clusterChanged();
  t.true(await until(async () => (await dig(ns.name, 'tasks.web')).length === 2, 20_000, 20));
  put(c, 'containers/n2/t1', container('t1', '10.0.1.2', { live: false }));
  injector.clusterChanged();
  t.true(await until(async () => (await dig(ns.name, 'tasks.web')).join() === '10.0.1.3', 20_000, 20));
  c.apply('delete', `${P}/swarmnet/docker/services/s1`);
  injector.clusterChanged();
  t.true(await until(async () => (await dig(ns.name, 'web')).join() === '192.0.2.99', 20_000, 20), 'a removed service is no longer ours to answer');

  await injector.leave('ep1');
  t.notRegex(await tables(ns.name), /swarmnet-dns/);
  t.true(await until(async () => (await listening53(ns.name)) === 0, 20_000, 20), 'our sockets are closed');
  t.deepEqual(await dig(ns.name, 'tasks.web'), ['192.0.2.99'], 'Docker\'s resolver again');
  t.is(injector.stats.served, 0);
});

rootTest('a Join whose namespace cannot be served within its wait lets the container start (Docker\'s resolver answers), says so once, and serves it when it can', async (t) => {
  const ns = await containerNetns(t);
  const c = cluster();
  const server = new DnsServer(c.table, { compat: true, defaultUpstreams: [] });
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  const slow = { ...kernel, serve: async (path: string, id: NetnsId) => { await held; return kernel.serve(path, id); } };
  const warnings: { msg: string; netns?: string }[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(JSON.parse(line)); } });
  const injector = new DnsInjector({ server, cluster: c, log, kernel: slow, joinWaitMs: 200, intervalMs: 3_600_000 });
  injector.start();
  t.teardown(() => injector.stop());

  await injector.join('ep1', 'n1', ns.path);
  t.is(injector.stats.served, 0, 'Join returned before the namespace was served');
  t.deepEqual(warnings.map((w) => [w.msg, w.netns]), [['Join: DNS not served in the container\'s namespace yet; its first queries go to Docker\'s resolver', ns.path]]);
  t.deepEqual(await dig(ns.name, 'web'), ['192.0.2.99'], 'meanwhile Docker\'s resolver answers');
  release();
  t.true(await until(async () => injector.stats.served === 1, 20_000, 20), 'served once the kernel lets it');
  t.deepEqual(await dig(ns.name, 'web'), ['10.0.1.250'], 'then swarmnet answers');
  t.is(warnings.length, 1);
  await injector.leave('ep1');
});

/** Docker 20.10: the SandboxKey Join names is a file that becomes the namespace (a bind mount) during runc create. */
async function laterNamespace(t: ExecutionContext): Promise<{ key: string; appear: () => Promise<{ name: string; path: string }> }> {
  const dir = mkdtempSync(join(tmpdir(), 'sninj-'));
  const key = join(dir, randomBytes(6).toString('hex'));
  t.teardown(async () => {
    await run('umount', [key], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    key,
    appear: async () => {
      const ns = await containerNetns(t);
      closeSync(openSync(key, 'w'));
      await run('mount', ['--bind', ns.path, key]);
      return ns;
    },
  };
}

/** Runs the real hook inside the namespace, as runc does: OCI state on stdin; resolves once it has exited. */
function runHook(ns: string, pluginsDir: string, bundle: string): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, HOOK, 'swarmnet-hook', 'createContainer'], { env: { SWARMNET_PLUGINS_DIR: pluginsDir, PATH: process.env.PATH }, stdio: ['pipe', 'ignore', 'inherit'] });
    child.on('close', resolve);
    child.stdin.end(JSON.stringify({ ociVersion: '1.0.2', id: 'c0ffee', status: 'creating', pid: 1, bundle }));
  });
}

rootTest('Join before the namespace exists (Docker 20.10) + the createContainer hook: served by the time the hook exits; other containers\' hooks are answered at once', async (t) => {
  const later = await laterNamespace(t);
  // No polling: only the hook can serve it here.
  const { injector } = plane(t, cluster(), 3_600_000);
  const pluginsDir = mkdtempSync(join(tmpdir(), 'sninj-plugins-'));
  t.teardown(() => rmSync(pluginsDir, { recursive: true, force: true }));
  mkdirSync(join(pluginsDir, 'abc'));
  const hook = await startHookServer({ path: join(pluginsDir, 'abc', 'swarmnet-hook.sock'), handle: (n) => injector.hook(n), log: logger('test-hook') });
  t.teardown(() => hook.close());
  t.is(statSync(join(pluginsDir, 'abc', 'swarmnet-hook.sock')).mode & 0o777, 0o600, 'root only');

  await injector.join('ep1', 'n1', later.key);
  t.is(injector.stats.waiting, 1);
  const ns = await later.appear();
  const bundle = mkdtempSync(join(tmpdir(), 'sninj-bundle-'));
  t.teardown(() => rmSync(bundle, { recursive: true, force: true }));
  t.is(await runHook(ns.name, pluginsDir, bundle), 0);
  // The container's first instruction: no wait, no retry.
  t.deepEqual(await dig(ns.name, 'web', ['+tries=1']), ['10.0.1.250']);
  t.false(existsSync(join(bundle, 'log.json')), 'nothing to report');
  t.is(injector.stats.hookMatched, 1);

  // A container with no swarmnet endpoint: answered at once, untouched.
  const other = await containerNetns(t);
  t.is(await runHook(other.name, pluginsDir, bundle), 0);
  t.is(injector.stats.hookOther, 1);
  t.notRegex(await tables(other.name), /swarmnet-dns/);
});

rootTest('without the hook, a namespace that appears after Join is found by polling', async (t) => {
  const later = await laterNamespace(t);
  const { injector } = plane(t);
  await injector.join('ep1', 'n1', later.key);
  const ns = await later.appear();
  t.true(await until(() => injector.stats.served === 1, 20_000, 10));
  t.deepEqual(await dig(ns.name, 'web'), ['10.0.1.250']);
});

rootTest('after a restart: this node\'s records are served without any Join; stop hands every namespace back', async (t) => {
  const ns = await containerNetns(t);
  const c = cluster();
  put(c, `containers/${NODE}/c1`, container('c1', '10.0.1.9', { sandboxKey: ns.path }));
  // A record of another node with the same path is not ours to serve.
  const other = await containerNetns(t);
  put(c, 'containers/n9/c9', container('c9', '10.0.1.10', { sandboxKey: other.path }));
  const { injector } = plane(t, c);
  t.true(await until(() => injector.stats.served === 1, 20_000, 10));
  t.deepEqual(await dig(ns.name, 'tasks.web'), ['10.0.1.10', '10.0.1.2', '10.0.1.9'], 'names cluster-wide');
  t.notRegex(await tables(other.name), /swarmnet-dns/);

  await injector.stop();
  t.notRegex(await tables(ns.name), /swarmnet-dns/);
  t.deepEqual(await dig(ns.name, 'web'), ['192.0.2.99']);
});

rootTest('a namespace that cannot be served keeps Docker\'s resolver (port 53 taken there)', async (t) => {
  const ns = await containerNetns(t);
  const squatter = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', "require('node:dgram').createSocket('udp4').bind(53, '127.0.0.11'); setInterval(() => {}, 1e6)"], { stdio: 'ignore' });
  t.teardown(() => { squatter.kill('SIGKILL'); });
  t.true(await until(async () => (await listening53(ns.name)) === 1, 20_000, 20));
  const { injector } = plane(t);
  await injector.join('ep1', 'n1', ns.path);
  t.is(injector.stats.serveFailures, 1);
  t.notRegex(await tables(ns.name), /swarmnet-dns/);
  t.deepEqual(await dig(ns.name, 'web'), ['192.0.2.99']);
});

/** Sends UDP queries for `name` to 127.0.0.11:53 from inside the namespace as fast as it can, until killed. */
const FLOOD = `
const s = require('node:dgram').createSocket('udp4');
const name = process.argv[1];
const q = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
  ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
s.on('message', () => {});
const burst = () => { for (let i = 0; i < 256; i++) s.send(q, 53, '127.0.0.11'); setImmediate(burst); };
s.bind(0, () => { console.log('flooding'); burst(); });`;

rootTest('a container flooding its resolver does not starve another container\'s', async (t) => {
  const a = await containerNetns(t);
  const b = await containerNetns(t);
  const { injector, server } = plane(t);
  await injector.join('epA', 'n1', a.path);
  await injector.join('epB', 'n1', b.path);
  const floods = ['web', 'miss.example'].map((name) => spawn('ip', ['netns', 'exec', a.name, process.execPath, '-e', FLOOD, name], { stdio: ['ignore', 'pipe', 'ignore'] }));
  t.teardown(() => { for (const f of floods) f.kill('SIGKILL'); });
  await Promise.all(floods.map((f) => new Promise((r) => f.stdout.once('data', r))));
  const before = server.stats.queries;
  t.true(await until(() => server.stats.queries > before + 20_000, 60_000, 20), 'the flood reaches the resolver');
  // Meanwhile B resolves: every lookup answered, right, the first time (dig +tries=1).
  for (let i = 0; i < 30; i++) {
    t.deepEqual(await dig(b.name, i % 2 ? 'web' : 'tasks.web'), [i % 2 ? '10.0.1.250' : '10.0.1.2'], `lookup ${i} from B`);
  }
  t.deepEqual(await dig(b.name, 'bridge-peer.example'), ['192.0.2.99'], 'B\'s misses still forwarded');
});

rootTest('a takeover removed inside a served namespace (nft flush ruleset there) is put back by the next check, counted; an intact one is left alone', async (t) => {
  const ns = await containerNetns(t);
  const { injector } = plane(t);
  await injector.join('ep1', 'n1', ns.path);
  t.deepEqual(await dig(ns.name, 'web'), ['10.0.1.250']);
  await injector.verifyAll();
  t.is(injector.stats.repairs, 0, 'intact: nothing to do');
  await run('ip', ['netns', 'exec', ns.name, 'nft', 'delete', 'table', 'ip', 'swarmnet-dns']);
  t.deepEqual(await dig(ns.name, 'web'), ['192.0.2.99'], 'without it the container asks Docker\'s resolver');
  await injector.verifyAll();
  t.is(injector.stats.repairs, 1);
  t.truthy(injector.stats.repairedAt);
  t.regex(await tables(ns.name), /swarmnet-dns/);
  t.deepEqual(await dig(ns.name, 'web'), ['10.0.1.250'], 'answered by swarmnet again');
  await injector.leave('ep1');
});
