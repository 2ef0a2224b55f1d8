import test from 'ava';
import { spawnSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { canRunDaemons, DaemonHosts, ip } from '../helpers/daemon-hosts.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The whole daemon (dist/plugin/main.js as a plain process) on two hosts in network namespaces, talking to a real
 * etcd, driven through its unix socket with the call sequence Docker's swarm makes (manager side, then task nodes).
 * The test does what dockerd would do with the replies (moves the veth into a container namespace, sets the address
 * and routes), then checks cross-host traffic, etcd and the kernel, and that teardown leaves nothing behind.
 */

const run = canRunDaemons ? test.serial : test.skip;

const lab = new DaemonHosts('snrt', '10.97.0', ['a', 'b'] as const, 23979);
const HOSTS = lab.hosts;
const PREFIX = lab.prefix;
const call = (h: 'a' | 'b', path: string, body: unknown): Promise<Record<string, unknown>> => lab.call(h, path, body);
/** The namespaces plumbContainer makes for the containers on hosts a and b. */
const CONTAINER_NS = { a: `${lab.prefix.slice(1)}-ca`, b: `${lab.prefix.slice(1)}-cb` } as const;
const inNs = (ns: string, cmd: string, args: string[]) => spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', timeout: 20_000 });

test.before(() => {
  if (!canRunDaemons) return;
  lab.setup();
  for (const h of ['a', 'b'] as const) lab.startDaemon(h, { AVAILABLE_SUBNETS: '10.140.0.0/16', RECONCILE_INTERVAL_SECONDS: '2' });
});
test.after.always(() => {
  if (canRunDaemons && !process.env.SNRT_KEEP) lab.cleanup();
});

/** What dockerd does with a Join reply: move the peer into the sandbox, rename, address, routes. */
function plumbContainer(name: string, join: Record<string, unknown>, address: string, mac: string, hostNs: string): void {
  const ns = lab.addNamespace(name);
  const src = (join.InterfaceName as { SrcName: string }).SrcName;
  ip('-n', hostNs, 'link', 'set', src, 'netns', ns);
  ip('-n', ns, 'link', 'set', src, 'name', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'address', mac);
  ip('-n', ns, 'addr', 'add', address, 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  for (const r of join.StaticRoutes as { Destination: string; NextHop: string }[]) ip('-n', ns, 'route', 'add', r.Destination, 'via', r.NextHop);
}

const links = (ns: string): string[] => (JSON.parse(ip('-n', ns, '-json', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname);

run('swarm call sequence on two hosts: local addresses, cross-host traffic, clean teardown', async (t) => {
  for (const h of ['a', 'b'] as const) {
    const act = await waitFor(() => call(h, '/Plugin.Activate', null), 30_000, `daemon ${h} listening`);
    t.deepEqual(act, { Implements: ['NetworkDriver', 'IpamDriver'] });
  }
  // Manager (host a): the allocator's calls. Wait for readiness: the first call may 503 while etcd starts.
  const pool = await waitFor(() => call('a', '/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false }), 60_000, 'manager RequestPool');
  const poolId = pool.PoolID as string;
  const cidr = pool.Pool as string;
  t.regex(cidr, /^10\.140\.\d+\.0\/20$/);
  const gw = await call('a', '/IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  const alloc = await call('a', '/NetworkDriver.AllocateNetwork', { NetworkID: 'swarmnet0net1', Options: { mtu: '1400' }, IPv4Data: [{ AddressSpace: '', Gateway: gw.Address, Pool: cidr }], IPv6Data: null });
  t.deepEqual(alloc.Options, { mtu: '1400' }, 'driver options echoed for the workers');
  const vip = (await call('a', '/IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: { 'com.docker.network.ipam.serial': 'true' } })).Address as string;
  const placeholders = [];
  for (let i = 0; i < 2; i++) placeholders.push((await call('a', '/IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null })).Address as string);

  // Each task node: local pool, gateway, CreateNetwork, task address (the leader's placeholder), endpoint, join.
  const eps: Record<string, { address: string; mac: string; join: Record<string, unknown>; id: string; poolId: string }> = {};
  for (const [i, h] of (['a', 'b'] as const).entries()) {
    const local = await waitFor(() => call(h, '/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetLocal', Pool: cidr, SubPool: '', Options: {}, V6: false }), 30_000, `${h} local RequestPool`);
    const lgw = await call(h, '/IpamDriver.RequestAddress', { PoolID: local.PoolID, Address: (gw.Address as string).split('/')[0], Options: { RequestAddressType: 'com.docker.network.gateway' } });
    await call(h, '/NetworkDriver.CreateNetwork', { NetworkID: 'swarmnet0net1', Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { mtu: '1400' } }, IPv4Data: [{ AddressSpace: 'l', Gateway: lgw.Address, Pool: cidr }], IPv6Data: [] });
    const address = (await call(h, '/IpamDriver.RequestAddress', { PoolID: local.PoolID, Address: placeholders[i]!.split('/')[0], Options: null })).Address as string;
    t.not(address.split('/')[0], placeholders[i]!.split('/')[0], 'the task node re-homes the leader placeholder');
    const again = (await call(h, '/IpamDriver.RequestAddress', { PoolID: local.PoolID, Address: placeholders[i]!.split('/')[0], Options: null })).Address;
    t.is(again, address, 'a replay returns the same local address');
    const id = `${i + 1}`.repeat(64);
    const mac = `02:42:0a:00:00:0${i + 1}`;
    t.deepEqual(await call(h, '/NetworkDriver.CreateEndpoint', { NetworkID: 'swarmnet0net1', EndpointID: id, Interface: { Address: address, AddressIPv6: '', MacAddress: mac }, Options: {} }), {});
    const join = await call(h, '/NetworkDriver.Join', { NetworkID: 'swarmnet0net1', EndpointID: id, SandboxKey: `/var/run/docker/netns/${h}`, Options: {} });
    t.deepEqual(join.StaticRoutes, [{ Destination: cidr, RouteType: 0, NextHop: (lgw.Address as string).split('/')[0] }]);
    plumbContainer(`c${h}`, join, address, mac, HOSTS[h].ns);
    eps[h] = { address, mac, join, id, poolId: local.PoolID as string };
  }
  const [aIp, bIp] = [eps.a!.address.split('/')[0]!, eps.b!.address.split('/')[0]!];
  t.not(eps.a!.address, eps.b!.address);
  t.is(links(HOSTS.a.ns).filter((l) => /^sw(vx|br)/.test(l)).length, 2, 'one VXLAN device and one bridge per network');

  // etcd: flannel-format leases name each host's public IP; the VIP is outside both host subnets.
  const etcd = new Etcd3({ hosts: lab.etcd });
  t.teardown(() => etcd.close());
  const leases = await etcd.getAll().prefix(`${PREFIX}/networks/`).strings();
  const hostLeases = Object.entries(leases).filter(([k]) => k.includes('/subnets/'));
  t.deepEqual(hostLeases.map(([, v]) => (JSON.parse(v) as { PublicIP: string }).PublicIP).sort(), [HOSTS.a.ip, HOSTS.b.ip]);
  for (const [, v] of hostLeases) t.is((JSON.parse(v) as { BackendType: string }).BackendType, 'vxlan');
  t.false([aIp, bIp].includes(vip.split('/')[0]!), 'the VIP is not a task address');

  // Cross-host traffic over VXLAN, both ways (the overlay converges on the lease watch, so allow a moment).
  await waitFor(async () => {
    const r = inNs(CONTAINER_NS.a, 'busybox', ['ping', '-c', '1', '-W', '1', bIp]);
    if (r.status !== 0) throw new Error(r.stdout + r.stderr);
  }, 30_000, 'ping a → b');
  t.is(inNs(CONTAINER_NS.b, 'busybox', ['ping', '-c', '2', '-W', '5', aIp]).status, 0, 'ping b → a');
  const mtu = JSON.parse(ip('-n', CONTAINER_NS.a, '-json', 'link', 'show', 'eth0')) as { mtu: number }[];
  t.is(mtu[0]!.mtu, 1400, 'the network mtu option reaches the container interface');

  // Teardown as Docker does it: Leave, DeleteEndpoint, ReleaseAddress; then the network and pools.
  for (const h of ['a', 'b'] as const) {
    const ep = eps[h]!;
    spawnSync('ip', ['netns', 'del', CONTAINER_NS[h]]);
    await call(h, '/NetworkDriver.Leave', { NetworkID: 'swarmnet0net1', EndpointID: ep.id });
    await call(h, '/NetworkDriver.DeleteEndpoint', { NetworkID: 'swarmnet0net1', EndpointID: ep.id });
    await call(h, '/IpamDriver.ReleaseAddress', { PoolID: ep.poolId, Address: ep.address.split('/')[0] });
    await call(h, '/IpamDriver.ReleaseAddress', { PoolID: ep.poolId, Address: (gw.Address as string).split('/')[0] });
    await call(h, '/NetworkDriver.DeleteNetwork', { NetworkID: 'swarmnet0net1' });
    await call(h, '/IpamDriver.ReleasePool', { PoolID: ep.poolId });
  }
  for (const a of [vip, ...placeholders]) await call('a', '/IpamDriver.ReleaseAddress', { PoolID: poolId, Address: a.split('/')[0] });
  await call('a', '/NetworkDriver.FreeNetwork', { NetworkID: 'swarmnet0net1' });
  await call('a', '/IpamDriver.ReleasePool', { PoolID: poolId });

  for (const h of ['a', 'b'] as const) {
    await waitFor(async () => {
      const ours = links(HOSTS[h].ns).filter((l) => /^sw(vx|br|ve|vp)/.test(l));
      if (ours.length) throw new Error(`left on ${h}: ${ours.join(',')}`);
      const rules = inNs(HOSTS[h].ns, 'iptables', ['-w', '-S']).stdout.split('\n').filter((l) => l.includes('SWARMNET'));
      if (rules.length) throw new Error(`rules left on ${h}: ${rules.join('; ')}`);
    }, 30_000, `kernel state removed on ${h}`);
  }
  // What stays while the daemons run: Docker's view and each daemon's own status record (under its node lease).
  const all = Object.keys(await etcd.getAll().prefix(`${PREFIX}/`).strings());
  t.deepEqual(all.filter((k) => k.startsWith(`${PREFIX}/swarmnet/nodes/`)).sort(), [`${PREFIX}/swarmnet/nodes/host-a`, `${PREFIX}/swarmnet/nodes/host-b`]);
  const left = all.filter((k) => !k.includes('/docker/') && !k.startsWith(`${PREFIX}/swarmnet/nodes/`));
  t.deepEqual(left, [], 'no etcd keys left behind');
});
