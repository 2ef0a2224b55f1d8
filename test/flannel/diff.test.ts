import test from 'ava';
import { desiredKernelState } from '../../flannel/desired.js';
import { planEntries, planLinks } from '../../flannel/diff.js';
import type { LinkInfo } from '../../flannel/kernel.js';
import type { OverlayState } from '../../flannel/model.js';
import { vtepMac } from '../../flannel/vtep-mac.js';

const state: OverlayState = {
  node: { name: 'n1', publicIp: '192.168.0.1', underlayInterface: 'eth0', vxlanPort: 8472 },
  networks: [{ id: 'A', vni: 7, subnet: '10.128.0.0/20' }],
  leases: [
    { networkId: 'A', subnet: '10.128.1.0/24', publicIp: '192.168.0.1', vtepMac: vtepMac('n1', 7), node: 'n1' },
    { networkId: 'A', subnet: '10.128.2.0/24', publicIp: '192.168.0.2', vtepMac: vtepMac('n2', 7), node: 'n2' },
  ],
};
const desired = desiredKernelState(state, { mtu: 1500 });
const vx: LinkInfo = { name: 'swvx7', kind: 'vxlan', mac: vtepMac('n1', 7), mtu: 1450, up: true, vni: 7, local: '192.168.0.1', dev: 'eth0', port: 8472, learning: false };
const br: LinkInfo = { name: 'swbr7', kind: 'bridge', mac: desired.links[1]!.mac, mtu: 1450, up: true };
const owned = (n: string): boolean => ['swvx7', 'swbr7', 'swvx8'].includes(n);

test('links: create what is missing and record it first; converged state plans nothing', (t) => {
  const p = planLinks(desired, [], () => false);
  t.deepEqual(p.record, ['swvx7', 'swbr7']);
  t.is(p.commands[0], 'link add swvx7 type vxlan id 7 local 192.168.0.1 dev eth0 dstport 8472 nolearning');
  t.is(p.changed, 2);
  t.deepEqual(planLinks(desired, [vx, br], owned), { record: [], forget: [], commands: [], changed: 0, foreign: [] });
});

test('links: immutable drift recreates, mutable drift is set, only owned strays are deleted', (t) => {
  const stray = { ...vx, name: 'swvx8', vni: 8 };
  const foreign = { ...vx, name: 'swvx9', vni: 9 };
  const flannel = { ...vx, name: 'flannel.1', vni: 1 };
  const p = planLinks(desired, [{ ...vx, port: 4789 }, { ...br, mtu: 1500, up: false }, stray, foreign, flannel], owned);
  t.deepEqual(p.commands, [
    'link del swvx8',
    'link del swvx7',
    'link add swvx7 type vxlan id 7 local 192.168.0.1 dev eth0 dstport 8472 nolearning',
    `link set swvx7 address ${vx.mac} mtu 1450 up`,
    `link set swbr7 address ${br.mac} mtu 1450 up`,
  ]);
  t.deepEqual(p.forget, ['swvx8']);
  t.deepEqual(p.foreign, ['swvx9']);
});

const empty = { links: new Set(['swvx7', 'swbr7']), addresses: [], routes: [], neighbours: new Map(), fdb: new Map() };

test('entries: everything missing is added with replace semantics and our proto', (t) => {
  const p = planEntries(desired, empty);
  t.deepEqual(p.bridge, [`fdb replace ${vtepMac('n2', 7)} dev swvx7 dst 192.168.0.2 self permanent`]);
  t.deepEqual(p.ip, [
    'addr add 10.128.1.0/32 dev swvx7',
    'addr add 10.128.1.1/24 dev swbr7',
    `neigh replace 10.128.2.0 lladdr ${vtepMac('n2', 7)} dev swvx7 nud permanent`,
    'route replace 10.128.2.0/24 via 10.128.2.0 dev swvx7 onlink table main proto 83',
  ]);
  t.deepEqual(p.counts, { addresses: 2, routes: 1, neighbours: 1, fdb: 1 });
});

test('entries: converged plans nothing; strays of ours are removed, non-permanent neighbours left to the kernel', (t) => {
  const mac2 = vtepMac('n2', 7);
  const converged = {
    links: empty.links,
    addresses: [{ dev: 'swvx7', cidr: '10.128.1.0/32' }, { dev: 'swbr7', cidr: '10.128.1.1/24' }, { dev: 'eth0', cidr: '192.168.0.1/24' }],
    routes: [{ dst: '10.128.2.0/24', via: '10.128.2.0', dev: 'swvx7', onlink: true }],
    neighbours: new Map([['swvx7', [{ dev: 'swvx7', ip: '10.128.2.0', mac: mac2, permanent: true }, { dev: 'swvx7', ip: '10.128.9.9', permanent: false }]]]),
    fdb: new Map([['swvx7', [{ mac: mac2, dst: '192.168.0.2', self: true, permanent: true }]]]),
  };
  t.deepEqual(planEntries(desired, converged), { ip: [], bridge: [], counts: { addresses: 0, routes: 0, neighbours: 0, fdb: 0 } });
  const drifted = {
    ...converged,
    addresses: [...converged.addresses, { dev: 'swbr7', cidr: '10.128.5.1/24' }],
    routes: [...converged.routes, { dst: '10.128.3.0/24', via: '10.128.3.0', dev: 'swvx7', onlink: true }],
    neighbours: new Map([['swvx7', [...converged.neighbours.get('swvx7')!, { dev: 'swvx7', ip: '10.128.3.0', mac: '02:00:00:00:00:03', permanent: true }]]]),
    fdb: new Map([['swvx7', [{ mac: mac2, dst: '192.168.0.9', self: true, permanent: true }, { mac: '02:00:00:00:00:03', dst: '192.168.0.3', self: true, permanent: true }]]]),
  };
  const p = planEntries(desired, drifted);
  t.deepEqual(p.ip, ['route del 10.128.3.0/24 table main proto 83', 'addr del 10.128.5.1/24 dev swbr7', 'neigh del 10.128.3.0 dev swvx7']);
  t.deepEqual(p.bridge, ['fdb del 02:00:00:00:00:03 dev swvx7 self dst 192.168.0.3', `fdb replace ${mac2} dev swvx7 dst 192.168.0.2 self permanent`]);
});
