import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { cidrToKey, formatCidr, parseCidr, subnets } from '../../common/cidr.js';
import { callPlugin } from '../helpers/plugin-client.js';

/**
 * The scale guard (docs/performance.md, control plane): a change in the cluster costs a node a constant number of
 * keys read from etcd, whatever the cluster's size, in every plane the daemon runs. Two whole daemons (plain
 * processes in network-namespace hosts, as test/daemon/runtime.test.ts) share a network with LEASES more host
 * leases of other nodes; the observer's own counters (swarmnet_etcd_keys_read_total, read at its metrics endpoint)
 * must stay flat while idle through several reconcile periods, and grow by at most MAX_KEYS per change — a host
 * lease added, one removed, a container of Docker's view — where re-reading a prefix would cost LEASES keys or more.
 */

const MAIN = new URL('../../dist/plugin/main.js', import.meta.url).pathname;
const canRun = process.getuid?.() === 0 && existsSync('/usr/bin/etcd') && existsSync(MAIN);
const run = canRun ? test.serial : test.skip;

const P = 'sner';
const HOSTS = { a: { ns: `${P}-a`, ip: '10.94.0.1', dev: `${P}-ua`, peer: `${P}-ha` }, b: { ns: `${P}-b`, ip: '10.94.0.2', dev: `${P}-ub`, peer: `${P}-hb` } } as const;
type HostName = keyof typeof HOSTS;
const PREFIX = '/sner';
const BRIDGE = `${P}-br`;
const BRIDGE_IP = '10.94.0.254';
const ETCD = `http://${BRIDGE_IP}:23989`;
const LEASES = 300;
/** A change may cost a few single-key reads (a Join reads its network's record); never a listing. */
const MAX_KEYS = 8;
const dir = mkdtempSync(join(tmpdir(), `${P}-`));
const procs: ChildProcess[] = [];

function ip(...args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}
const ipTry = (...args: string[]): void => void spawnSync('ip', args, { encoding: 'utf8' });

function cleanup(): void {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const h of Object.values(HOSTS)) {
    ipTry('link', 'del', h.peer);
    ipTry('netns', 'del', h.ns);
  }
  ipTry('link', 'del', BRIDGE);
  rmSync(dir, { recursive: true, force: true });
}

/** Retries fn; ms is a guard for a busy machine, not an expected time. */
async function waitFor<T>(fn: () => Promise<T>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > end) throw new Error(`${what}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Each daemon's socket in a directory of its own, as Docker gives each plugin: the hook socket goes beside it. */
const sock = (h: HostName): string => {
  mkdirSync(join(dir, h), { recursive: true });
  return join(dir, h, 'plugin.sock');
};
async function call(h: HostName, path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await callPlugin(sock(h), path, JSON.stringify(body));
  if (r.status !== 200) throw new Error(`${h} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body ?? {}) as Record<string, unknown>;
}

function startDaemon(h: HostName): void {
  procs.push(spawn('ip', ['netns', 'exec', HOSTS[h].ns, process.execPath, MAIN], {
    env: {
      ...process.env, PLUGIN_SOCKET: sock(h), NODE_NAME: `host-${h}`, ETCD_ENDPOINTS: ETCD, ETCD_PREFIX: PREFIX,
      DOCKER_SOCKET: join(dir, 'no-docker.sock'), STATE_DIR: join(dir, `state-${h}`), METRICS_ADDRESS: `${HOSTS[h].ip}:9474`,
      UNDERLAY_INTERFACE: HOSTS[h].dev, AVAILABLE_SUBNETS: '10.150.0.0/16', NETWORK_SUBNET_SIZE: '16', DEFAULT_HOST_SUBNET_SIZE: '26',
      RECONCILE_INTERVAL_SECONDS: '2', LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  }));
}

/** The daemon's counters of what it read from etcd, and its watch events, from its /metrics. */
function counters(h: HostName): Promise<{ keys: number; reads: number; viewEvents: number }> {
  // NaN until the runtime registered them (the daemon answers /metrics from its first moment)
  return new Promise((resolve, reject) => {
    const req = request({ host: HOSTS[h].ip, port: 9474, path: '/metrics' }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => {
        const num = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
        resolve({
          keys: num(/^swarmnet_etcd_keys_read_total (\d+)/m),
          reads: num(/^swarmnet_etcd_requests_total\{kind="read"\} (\d+)/m),
          viewEvents: num(/^swarmnet_etcd_watch_events_total\{watch="docker-view"\} (\d+)/m),
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Host subnets the node's namespace routes through its VXLAN device. */
function routed(h: HostName): Set<string> {
  const routes = JSON.parse(ip('-n', HOSTS[h].ns, '-j', 'route', 'show')) as { dst: string; dev: string }[];
  return new Set(routes.filter((r) => r.dev.startsWith('swvx')).map((r) => r.dst));
}

test.before(async () => {
  if (!canRun) return;
  cleanup();
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${BRIDGE_IP}/24`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
  for (const h of Object.values(HOSTS)) {
    ip('netns', 'add', h.ns);
    ip('link', 'add', h.peer, 'type', 'veth', 'peer', 'name', h.dev, 'netns', h.ns);
    ip('link', 'set', h.peer, 'master', BRIDGE, 'up');
    ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', h.dev);
    ip('-n', h.ns, 'link', 'set', h.dev, 'up');
    ip('-n', h.ns, 'link', 'set', 'lo', 'up');
  }
  const peer = `http://${BRIDGE_IP}:23990`;
  procs.push(spawn('/usr/bin/etcd', ['--name', P, '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', ETCD, '--advertise-client-urls', ETCD, '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer, '--initial-cluster', `${P}=${peer}`], { stdio: 'ignore' }));
  startDaemon('a');
  startDaemon('b');
});
test.after.always(() => {
  if (canRun && !process.env.SNER_KEEP) cleanup();
});

/** Docker's calls on a task node that make it lease a host subnet of the network. */
async function joinNetwork(h: HostName, cidr: string, gateway: string): Promise<void> {
  const local = await call(h, '/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetLocal', Pool: cidr, SubPool: '', Options: {}, V6: false });
  const lgw = await call(h, '/IpamDriver.RequestAddress', { PoolID: local.PoolID, Address: gateway, Options: { RequestAddressType: 'com.docker.network.gateway' } });
  await call(h, '/NetworkDriver.CreateNetwork', { NetworkID: 'snernet', Options: { 'com.docker.network.generic': {} }, IPv4Data: [{ AddressSpace: 'l', Gateway: lgw.Address, Pool: cidr }], IPv6Data: [] });
}

run(`a change costs a node at most ${MAX_KEYS} keys read from etcd with ${LEASES} other host leases in its network, and idle costs none`, async (t) => {
  const etcd = new Etcd3({ hosts: ETCD });
  t.teardown(() => etcd.close());
  await waitFor(() => call('a', '/Plugin.Activate', null), 30_000, 'daemon a listening');
  const pool = await waitFor(() => call('a', '/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false }), 60_000, 'manager RequestPool');
  const cidr = pool.Pool as string;
  const gw = ((await call('a', '/IpamDriver.RequestAddress', { PoolID: pool.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })).Address as string).split('/')[0]!;
  await call('a', '/NetworkDriver.AllocateNetwork', { NetworkID: 'snernet', Options: {}, IPv4Data: [{ AddressSpace: '', Gateway: gw, Pool: cidr }], IPv6Data: null });
  await joinNetwork('a', cidr, gw);

  // Other nodes' leases, as their plugins write them (flannel lease + owner record), on the free host subnets.
  const net = cidrToKey(parseCidr(cidr));
  const taken = new Set(Object.keys(await etcd.getAll().prefix(`${PREFIX}/networks/${net}/subnets/`).strings()).map((k) => k.split('/').pop()!));
  const free = [...subnets(parseCidr(cidr), 26)].slice(0, -1).filter((s) => !taken.has(cidrToKey(s))).slice(0, LEASES + 1);
  const vni = (JSON.parse((await etcd.get(`${PREFIX}/swarmnet/networks/${net}`).string())!) as { vni: number }).vni;
  const lease = (i: number): string => JSON.stringify({ PublicIP: `10.94.1.${i % 250}`, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: vni, VtepMAC: `02:aa:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` } });
  const putFake = async (i: number): Promise<void> => {
    await etcd.put(`${PREFIX}/networks/${net}/subnets/${cidrToKey(free[i]!)}`).value(lease(i)).exec();
    await etcd.put(`${PREFIX}/swarmnet/node-subnets/${net}/fake-${i}`).value(cidrToKey(free[i]!)).exec();
  };
  for (let i = 0; i < LEASES; i++) await putFake(i);
  await waitFor(async () => { if (routed('a').size < LEASES) throw new Error(`${routed('a').size} routes`); }, 120_000, 'a routes to every lease');
  await waitFor(() => call('b', '/Plugin.Activate', null), 30_000, 'daemon b listening');
  await waitFor(async () => { if (!((await counters('b')).reads > 0)) throw new Error('b has not listed'); }, 60_000, 'b started');

  const measure = async (what: string, change: () => Promise<void>, settled: () => Promise<void>): Promise<void> => {
    const before = await counters('a');
    await change();
    await waitFor(settled, 60_000, what);
    const after = await counters('a');
    t.log(`${what}: ${after.keys - before.keys} keys in ${after.reads - before.reads} reads`);
    t.true(after.keys - before.keys <= MAX_KEYS, `${what}: ${after.keys - before.keys} keys read (${after.reads - before.reads} reads)`);
  };
  // Idle through three reconcile periods (RECONCILE_INTERVAL_SECONDS=2): nothing is re-read.
  const start = Date.now();
  await measure('idle', async () => {}, async () => { if (Date.now() - start < 7000) throw new Error('waiting'); });
  // Another node joins the network: its lease reaches a as a watch event.
  const bBefore = await counters('b');
  let bSubnet = '';
  await measure('a host lease added', () => joinNetwork('b', cidr, gw), async () => {
    bSubnet = formatCidr(parseCidr(Object.entries(await etcd.getAll().prefix(`${PREFIX}/swarmnet/node-subnets/${net}/`).strings()).find(([k]) => k.endsWith('/host-b'))![1].replace('-', '/')));
    if (!routed('a').has(bSubnet)) throw new Error(`no route to ${bSubnet}`);
  });
  const bAfter = await counters('b');
  t.true(bAfter.keys - bBefore.keys <= 2 * MAX_KEYS, `the joining node read ${bAfter.keys - bBefore.keys} keys for its own join`);
  // A node leaves: its lease goes.
  const gone = formatCidr(free[0]!);
  await measure('a host lease removed', async () => {
    await etcd.delete().key(`${PREFIX}/networks/${net}/subnets/${cidrToKey(free[0]!)}`).exec();
    await etcd.delete().key(`${PREFIX}/swarmnet/node-subnets/${net}/fake-0`).exec();
  }, async () => { if (routed('a').has(gone)) throw new Error(`route to ${gone} still there`); });
  // A container elsewhere starts (Docker's view: DNS and the load balancer take it).
  const events = (await counters('a')).viewEvents;
  await measure('a container in Docker\'s view', async () => {
    const view = { id: 'c'.repeat(64), name: 'web.1', hostname: 'c1', live: true, ndots: false, networks: { snernet: { address: '10.150.0.70', aliases: [], dnsNames: ['web.1'] } } };
    await etcd.put(`${PREFIX}/swarmnet/docker/containers/fake-1/${view.id}`).value(JSON.stringify(view)).exec();
  }, async () => { if ((await counters('a')).viewEvents <= events) throw new Error('not delivered'); });
});
