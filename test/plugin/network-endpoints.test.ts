import test from 'ava';
import { pino } from 'pino';
import { NetworkEndpoints, type EndpointRecord, type NetworkStatePort, type OverlayPort, type NetworkView } from '../../plugin/network-endpoints.js';
import { parseNetworkOptions } from '../../plugin/network-options.js';
import { PluginError } from '../../plugin/protocol/contract.js';

/** In-memory stand-ins for etcd state and the kernel: these tests are about the driver's own rules. */
function setup() {
  const nets = new Map<string, NetworkView>();
  const byDocker = new Map<string, string>();
  const endpoints = new Map<string, EndpointRecord>();
  const links: string[] = [];
  const forgotten: string[] = [];
  const ensured: string[] = [];
  const state: NetworkStatePort = {
    async bindDockerNetwork(pool, dockerId, options) {
      if (pool !== '10.128.0.0/20') throw new PluginError(`unknown pool ${pool}`, 400);
      const net = nets.get(pool) ?? { key: 'k1', subnet: pool, vni: 6515 };
      if (options.mtu) net.mtu = options.mtu;
      nets.set(pool, net);
      byDocker.set(dockerId, pool);
      return net;
    },
    async networkByDockerId(id) { const p = byDocker.get(id); return p ? nets.get(p) : undefined; },
    async localLease() { return { subnet: '10.128.1.0/25', gateway: '10.128.1.1' }; },
    async putEndpoint(rec) { endpoints.set(`${rec.dockerNetworkId}/${rec.endpointId}`, rec); },
    async getEndpoint(n, e) { return endpoints.get(`${n}/${e}`); },
    async deleteEndpoint(n, e) { endpoints.delete(`${n}/${e}`); },
  };
  const overlay: OverlayPort = {
    async ensureNetwork(key) { ensured.push(key); return { bridge: 'swbr6515', mtu: 1450 }; },
    async createEndpointLink(a) { links.push(a.endpointId); return { hostName: 'swveaaaa', peerName: 'swcaaaa' }; },
    async deleteEndpointLink(id) { const i = links.indexOf(id); if (i >= 0) links.splice(i, 1); },
    async forgetNeighbour(bridge, address) { forgotten.push(`${bridge} ${address}`); },
  };
  const left: string[] = [];
  const driver = new NetworkEndpoints(state, overlay, pino({ level: 'silent' }), undefined, (net, address) => left.push(`${net} ${address}`));
  return { driver, endpoints, links, ensured, forgotten, left };
}

const createNet = { NetworkID: 'dn1', Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { mtu: '1400' } }, IPv4Data: [{ AddressSpace: 'l', Pool: '10.128.0.0/20', Gateway: '10.128.1.1/25' }], IPv6Data: [] };

test('AllocateNetwork echoes the user options so workers receive them', async (t) => {
  const { driver } = setup();
  const r = await driver.allocateNetwork({ NetworkID: 'dn1', Options: { mtu: '1400' }, IPv4Data: [{ Pool: '10.128.0.0/20', Gateway: '10.128.0.1/20' }], IPv6Data: null });
  t.deepEqual(r, { Options: { mtu: '1400' } });
});

test('options: mtu validated, typos refused, Docker keys pass', (t) => {
  t.deepEqual(parseNetworkOptions({ mtu: '1400', 'com.docker.network.enable_ipv6': false }), { mtu: 1400 });
  t.deepEqual(parseNetworkOptions(null), {});
  t.throws(() => parseNetworkOptions({ mtu: 'big' }), { message: /MTU must be an integer from 576 to 9000/ });
  t.throws(() => parseNetworkOptions({ mtu: '100' }), { message: /MTU/ });
  t.throws(() => parseNetworkOptions({ mut: '1400' }), { message: /unknown swarmnet network option "mut"/ });
  // Found by the plugin API fuzz: only strings and numbers, never coerced (String() threw or overflowed the stack).
  t.deepEqual(parseNetworkOptions({ mtu: 1400 }), { mtu: 1400 });
  const nested: unknown[] = [];
  let inner = nested;
  for (let i = 0; i < 100_000; i++) { const next: unknown[] = []; inner.push(next); inner = next; }
  for (const mtu of [nested, ['1400'], { toString: 1 }, {}, null, true]) {
    t.throws(() => parseNetworkOptions({ mtu }), { instanceOf: PluginError, message: /MTU must be an integer/ });
  }
});

test('CreateNetwork binds the Docker id and builds the local bridge; refuses IPv6 and foreign pools', async (t) => {
  const { driver, ensured } = setup();
  await driver.createNetwork(createNet);
  t.deepEqual(ensured, ['k1']);
  await t.throwsAsync(driver.createNetwork({ ...createNet, IPv6Data: [{ Pool: 'fd00::/64' }] }), { message: /IPv6/ });
  await t.throwsAsync(driver.createNetwork({ ...createNet, IPv4Data: [{ Pool: '192.168.0.0/24' }] }), { message: /unknown pool/ });
  await t.throwsAsync(driver.createNetwork({ ...createNet, IPv4Data: [] }), { message: /--ipam-driver swarmnet/ });
});

test('CreateEndpoint never echoes what Docker set, and supplies a MAC only when Docker sent none', async (t) => {
  const { driver, endpoints } = setup();
  await driver.createNetwork(createNet);
  const withMac = await driver.createEndpoint({ NetworkID: 'dn1', EndpointID: 'e1', Interface: { Address: '10.128.1.5/25', AddressIPv6: '', MacAddress: '02:42:0A:80:01:05' }, Options: {} });
  t.deepEqual(withMac, {});
  t.is(endpoints.get('dn1/e1')?.mac, '02:42:0a:80:01:05');
  const noMac = await driver.createEndpoint({ NetworkID: 'dn1', EndpointID: 'e2', Interface: { Address: '10.128.1.6/25', AddressIPv6: '', MacAddress: '' }, Options: {} });
  t.regex(noMac.Interface?.MacAddress ?? '', /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  t.is(noMac.Interface?.Address, undefined, 'Address is never echoed');
  const again = await driver.createEndpoint({ NetworkID: 'dn1', EndpointID: 'e2', Interface: { Address: '10.128.1.6/25', MacAddress: '' }, Options: null });
  t.is(again.Interface?.MacAddress, noMac.Interface?.MacAddress, 'the generated MAC is stable for a replay');
  await t.throwsAsync(driver.createEndpoint({ NetworkID: 'dn1', EndpointID: 'e3', Interface: { Address: '' }, Options: null }), { message: /without an IPv4 address/ });
  await t.throwsAsync(driver.createEndpoint({ NetworkID: 'dn1', EndpointID: 'e3', Interface: { Address: '10.1.1.1' }, Options: null }), { message: /Interface.Address/ });
  await t.throwsAsync(driver.createEndpoint({ NetworkID: 'nope', EndpointID: 'e3', Interface: { Address: '10.128.1.7/25' }, Options: null }), { message: /unknown network nope/ });
});

test('Join plumbs a veth and routes the whole network via the local gateway; Leave and DeleteEndpoint undo it', async (t) => {
  const { driver, links, endpoints, forgotten, left } = setup();
  await driver.createNetwork(createNet);
  await driver.createEndpoint({ NetworkID: 'dn1', EndpointID: 'e1', Interface: { Address: '10.128.1.5/25', MacAddress: '02:00:00:00:00:01' }, Options: null });
  const j = await driver.join({ NetworkID: 'dn1', EndpointID: 'e1', SandboxKey: '/var/run/docker/netns/abc', Options: {} });
  t.deepEqual(j, {
    InterfaceName: { SrcName: 'swcaaaa', DstPrefix: 'eth' },
    StaticRoutes: [{ Destination: '10.128.0.0/20', RouteType: 0, NextHop: '10.128.1.1' }],
  });
  t.deepEqual(links, ['e1']);
  t.deepEqual(forgotten, ['swbr6515 10.128.1.5'], 'the gateway forgets a previous holder\'s MAC for the address');
  t.deepEqual(await driver.endpointOperInfo({ NetworkID: 'dn1', EndpointID: 'e1' }), { ip_address: '10.128.1.5/25', mac_address: '02:00:00:00:00:01', host_interface: 'swveaaaa' });
  await driver.leave({ NetworkID: 'dn1', EndpointID: 'e1' });
  t.deepEqual(links, []);
  t.deepEqual(left, ['dn1 10.128.1.5'], 'Docker\'s view is told at Leave: the address leaves VIPs and DNS at once');
  await driver.deleteEndpoint({ NetworkID: 'dn1', EndpointID: 'e1' });
  t.false(endpoints.has('dn1/e1'));
  await t.notThrowsAsync(driver.deleteEndpoint({ NetworkID: 'dn1', EndpointID: 'e1' }), 'idempotent');
  await t.throwsAsync(driver.join({ NetworkID: 'dn1', EndpointID: 'e1', SandboxKey: '/x', Options: null }), { message: /unknown endpoint/ });
});
