import test from 'ava';
import { request } from 'node:http';
import { Etcd3 } from 'etcd3';
import { cidrToKey, formatCidr, parseCidr, subnets } from '../../common/cidr.js';
import { canRunDaemons, DaemonHosts, ip } from '../helpers/daemon-hosts.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The scale guard (docs/performance.md, control plane): a change in the cluster costs a node a constant number of
 * keys read from etcd, whatever the cluster's size, in every plane the daemon runs. Two whole daemons (plain
 * processes in network-namespace hosts, as test/daemon/runtime.test.ts) share a network with LEASES more host
 * leases of other nodes; the observer's own counters (swarmnet_etcd_keys_read_total, read at its metrics endpoint)
 * must stay flat while idle through several reconcile periods, and grow by at most MAX_KEYS per change — a host
 * lease added, one removed, a container of Docker's view — where re-reading a prefix would cost LEASES keys or more.
 */

const run = canRunDaemons ? test.serial : test.skip;

const lab = new DaemonHosts('sner', '10.94.0', ['a', 'b'] as const, 23989);
type HostName = 'a' | 'b';
const { hosts: HOSTS, prefix: PREFIX } = lab;
const LEASES = 300;
/** A change may cost a few single-key reads (a Join reads its network's record); never a listing. */
const MAX_KEYS = 8;
const call = (h: HostName, path: string, body: unknown): Promise<Record<string, unknown>> => lab.call(h, path, body);

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

test.before(() => {
  if (!canRunDaemons) return;
  lab.setup();
  for (const h of ['a', 'b'] as const) {
    lab.startDaemon(h, {
      METRICS_ADDRESS: `${HOSTS[h].ip}:9474`, AVAILABLE_SUBNETS: '10.150.0.0/16', NETWORK_SUBNET_SIZE: '16', DEFAULT_HOST_SUBNET_SIZE: '26',
      RECONCILE_INTERVAL_SECONDS: '2',
    });
  }
});
test.after.always(() => {
  if (canRunDaemons && !process.env.SNER_KEEP) lab.cleanup();
});

/** Docker's calls on a task node that make it lease a host subnet of the network. */
async function joinNetwork(h: HostName, cidr: string, gateway: string): Promise<void> {
  const local = await call(h, '/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetLocal', Pool: cidr, SubPool: '', Options: {}, V6: false });
  const lgw = await call(h, '/IpamDriver.RequestAddress', { PoolID: local.PoolID, Address: gateway, Options: { RequestAddressType: 'com.docker.network.gateway' } });
  await call(h, '/NetworkDriver.CreateNetwork', { NetworkID: 'snernet', Options: { 'com.docker.network.generic': {} }, IPv4Data: [{ AddressSpace: 'l', Gateway: lgw.Address, Pool: cidr }], IPv6Data: [] });
}

run(`a change costs a node at most ${MAX_KEYS} keys read from etcd with ${LEASES} other host leases in its network, and idle costs none`, async (t) => {
  const etcd = new Etcd3({ hosts: lab.etcd });
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
