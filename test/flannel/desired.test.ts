import test from 'ava';
import { desiredKernelState } from '../../flannel/desired.js';
import type { HostLease, OverlayState } from '../../flannel/model.js';
import { vtepMac } from '../../flannel/vtep-mac.js';

const node = { name: 'n1', publicIp: '192.168.0.1', underlayInterface: 'eth0', vxlanPort: 8472 };
const L = (node: string, subnet: string, ip: string, networkId = 'A', vni = 4097): HostLease => ({ networkId, subnet, publicIp: ip, vtepMac: vtepMac(node, vni), node });
const base: OverlayState = {
  node,
  networks: [{ id: 'A', vni: 4097, subnet: '10.128.0.0/20' }],
  leases: [L('n1', '10.128.1.0/25', '192.168.0.1'), L('n2', '10.128.1.128/25', '192.168.0.2'), L('n3', '10.128.2.0/25', '192.168.0.3')],
};

test('one network: vxlan and bridge, flannel addresses, one route/neigh/fdb per remote lease', (t) => {
  const d = desiredKernelState(base, { mtu: 1500 });
  t.deepEqual(d.links[0], { kind: 'vxlan', name: 'swvx4097', vni: 4097, local: '192.168.0.1', dev: 'eth0', port: 8472, mac: vtepMac('n1', 4097), mtu: 1450 });
  t.like(d.links[1], { kind: 'bridge', name: 'swbr4097', mtu: 1450 });
  t.not(d.links[1]!.kind === 'bridge' && d.links[1]!.mac, vtepMac('n1', 4097));
  t.deepEqual(d.addresses, [{ dev: 'swvx4097', cidr: '10.128.1.0/32' }, { dev: 'swbr4097', cidr: '10.128.1.1/25' }]);
  t.deepEqual(d.routes, [
    { dst: '10.128.1.128/25', via: '10.128.1.128', dev: 'swvx4097' },
    { dst: '10.128.2.0/25', via: '10.128.2.0', dev: 'swvx4097' },
  ]);
  t.deepEqual(d.neighbours, [
    { dev: 'swvx4097', ip: '10.128.1.128', mac: vtepMac('n2', 4097) },
    { dev: 'swvx4097', ip: '10.128.2.0', mac: vtepMac('n3', 4097) },
  ]);
  t.deepEqual(d.fdb, [
    { dev: 'swvx4097', mac: vtepMac('n2', 4097), dst: '192.168.0.2' },
    { dev: 'swvx4097', mac: vtepMac('n3', 4097), dst: '192.168.0.3' },
  ]);
  t.deepEqual(d.filterRules.slice(0, 3), [
    '-i swbr4097 -o swbr4097 -m comment --comment swarmnet:4097 -j ACCEPT',
    '-i swbr4097 -o swvx4097 -m comment --comment swarmnet:4097 -j ACCEPT',
    '-i swvx4097 -o swbr4097 -m comment --comment swarmnet:4097 -j ACCEPT',
  ]);
  t.true(d.filterRules.slice(3).every((r) => r.endsWith('-j DROP')));
  t.deepEqual(d.skipped, []);
});

test('the network mtu option wins over the underlay MTU', (t) => {
  const d = desiredKernelState({ ...base, networks: [{ ...base.networks[0]!, mtu: 1300 }] }, { mtu: 9000 });
  t.is(d.links[0]!.mtu, 1300);
  t.is(desiredKernelState(base, { mtu: 9000 }).links[0]!.mtu, 8950);
});

test('a network without a local lease is not programmed', (t) => {
  const d = desiredKernelState({ ...base, leases: base.leases.slice(1) }, { mtu: 1500 });
  t.deepEqual([d.links, d.routes, d.fdb, d.neighbours, d.addresses], [[], [], [], [], []]);
  t.deepEqual(d.filterRules, [], 'no network programmed here: no filter rules either');
});

test('bad input is skipped with a reason, the rest is programmed', (t) => {
  const d = desiredKernelState({
    ...base,
    networks: [...base.networks, { id: 'B', vni: 0, subnet: '10.129.0.0/20' }, { id: 'C', vni: 4097, subnet: '10.130.0.0/20' }],
    leases: [
      ...base.leases,
      L('n4', '10.140.0.0/25', '192.168.0.4'), // outside the network
      L('n5', '10.128.2.0/26', '192.168.0.5'), // overlaps n3
      { ...L('n6', '10.128.3.0/25', '192.168.0.6'), vtepMac: 'zz' },
      L('n7', '10.128.4.0/25', '192.168.0.1'), // claims our public IP
    ],
  }, { mtu: 1500 });
  t.is(d.routes.length, 2);
  t.deepEqual(d.skipped.map((s) => s.node ?? s.networkId).sort(), ['B', 'C', 'n4', 'n5', 'n6', 'n7']);
  t.true(d.skipped.every((s) => s.reason.length > 0));
});

test('two networks: rules per network, links per VNI, no cross-network entries', (t) => {
  const d = desiredKernelState({
    ...base,
    networks: [...base.networks, { id: 'B', vni: 4098, subnet: '10.129.0.0/20' }],
    leases: [...base.leases, L('n1', '10.129.0.0/24', '192.168.0.1', 'B', 4098), L('n2', '10.129.1.0/24', '192.168.0.2', 'B', 4098)],
  }, { mtu: 1500 });
  t.deepEqual(d.links.map((l) => l.name), ['swvx4097', 'swbr4097', 'swvx4098', 'swbr4098']);
  t.deepEqual(d.routes.filter((r) => r.dev === 'swvx4098'), [{ dst: '10.129.1.0/24', via: '10.129.1.0', dev: 'swvx4098' }]);
  t.is(d.filterRules.filter((r) => r.includes('ACCEPT')).length, 6);
});
