import test from 'ava';
import { NetworkRecords } from '../../plugin/state/network-records.js';
import { startIndex } from '../../plugin/ipam/ipam.js';

const P = '/p';
const NET = '10.128.0.0-20';
const netKey = `${P}/swarmnet/networks/${NET}`;
const network = (extra: object = {}): string => JSON.stringify({ id: NET, subnet: '10.128.0.0/20', vni: 4097, vipBlock: '10.128.15.128/25', ...extra });
const leaseKey = (s: string): string => `${P}/networks/${NET}/subnets/${s}`;
const lease = (ip: string, mac = '02:00:00:00:00:01'): string => JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 4097, VtepMAC: mac } });
const ownerKey = (node: string): string => `${P}/swarmnet/node-subnets/${NET}/${node}`;

function listed(): NetworkRecords {
  const r = new NetworkRecords(P);
  r.reset('networks', new Map([[netKey, network()]]), 10);
  r.reset('flannel', new Map([[leaseKey('10.128.0.0-25'), lease('192.0.2.1')], [`${P}/networks/${NET}/config`, '{"Network":"10.128.0.0/20"}']]), 10);
  r.reset('owners', new Map([[ownerKey('n1'), '10.128.0.0-25']]), 10);
  return r;
}

test('listings and events build the networks and host leases with their owners; flannel configs are not records', (t) => {
  const r = new NetworkRecords(P);
  t.false(r.ready);
  const l = listed();
  t.true(l.ready);
  t.deepEqual(l.allNetworks().map((n) => n.vni), [4097]);
  t.deepEqual(l.leasesOf(), [{ networkId: NET, subnetKey: '10.128.0.0-25', publicIp: '192.0.2.1', vtepMac: '02:00:00:00:00:01', node: 'n1' }]);
  t.true(l.apply('flannel', 'put', leaseKey('10.128.0.128-25'), lease('192.0.2.2', '02:00:00:00:00:02'), 11));
  t.deepEqual(l.leasesOf()[1], { networkId: NET, subnetKey: '10.128.0.128-25', publicIp: '192.0.2.2', vtepMac: '02:00:00:00:00:02', node: '' }, 'owner not seen yet');
  t.true(l.apply('owners', 'put', ownerKey('n2'), '10.128.0.128-25', 11));
  t.is(l.leasesOf()[1]!.node, 'n2');
  t.true(l.holds(NET, 'n2'));
  t.deepEqual([...l.takenSubnets(NET)].sort(), ['10.128.0.0-25', '10.128.0.128-25']);
  t.false(l.apply('flannel', 'put', `${P}/networks/${NET}/config`, '{}', 12), 'a flannel config changes nothing');
  t.true(l.apply('flannel', 'delete', leaseKey('10.128.0.0-25'), undefined, 13));
  t.deepEqual([...l.takenSubnets(NET)], ['10.128.0.128-25']);
});

test('the newest revision wins: this node\'s own write is kept against older watch events and an older listing', (t) => {
  const r = listed();
  // Join's own lease at revision 20, before the watch brings anything after revision 10.
  t.true(r.apply('flannel', 'put', leaseKey('10.128.1.0-25'), lease('192.0.2.3'), 20));
  t.true(r.apply('owners', 'put', ownerKey('me'), '10.128.1.0-25', 20));
  // The watch then delivers an older delete of that key (a previous holder's lease expiring) and the put itself.
  t.false(r.apply('flannel', 'delete', leaseKey('10.128.1.0-25'), undefined, 15));
  t.false(r.apply('flannel', 'put', leaseKey('10.128.1.0-25'), lease('192.0.2.3'), 20), 'the same write again: no change');
  // A re-listing made at an earlier revision (a resync racing the write) does not drop it.
  r.reset('flannel', new Map([[leaseKey('10.128.0.0-25'), lease('192.0.2.1')]]), 18);
  t.deepEqual([...r.takenSubnets(NET)].sort(), ['10.128.0.0-25', '10.128.1.0-25']);
  // A listing after it is the truth: the lease is gone.
  r.reset('flannel', new Map([[leaseKey('10.128.0.0-25'), lease('192.0.2.1')]]), 25);
  t.deepEqual([...r.takenSubnets(NET)], ['10.128.0.0-25']);
});

test('malformed records are counted and dropped, never kept at an older value', (t) => {
  const r = listed();
  t.true(r.apply('networks', 'put', netKey, '{not json', 11), 'the old record goes');
  t.deepEqual(r.allNetworks(), []);
  t.true(r.apply('networks', 'put', netKey, network({ mtu: 1400 }), 12));
  t.is(r.network(NET)?.mtu, 1400);
  t.false(r.apply('networks', 'put', `${P}/swarmnet/networks/other`, network(), 13), 'an id that does not match its key');
  t.true(r.apply('flannel', 'put', leaseKey('10.128.0.0-25'), JSON.stringify({ PublicIP: '192.0.2.1', BackendData: { VtepMAC: 'nope' } }), 14));
  t.deepEqual(r.leasesOf(), []);
  t.false(r.apply('owners', 'put', ownerKey('n9'), 'not-a-subnet', 15));
  t.false(r.apply('flannel', 'put', `${P}/networks/${NET}/subnets/garbage`, lease('192.0.2.9'), 16), 'a key that is no lease');
  t.is(r.stats.rejected, 4);
});

test('nodes start their host-subnet search spread by name: 50 nodes in 254 subnets mostly start apart', (t) => {
  const starts = new Set(Array.from({ length: 50 }, (_, i) => startIndex(`node-${i + 1}`, 254)));
  // A birthday bound: 50 uniform picks of 254 collide about 4.5 times; first-free would start all 50 at 0.
  t.true(starts.size >= 40, `${starts.size} distinct starts`);
  t.true([...starts].every((s) => s >= 0 && s < 254));
  t.is(startIndex('node-1', 254), startIndex('node-1', 254), 'stable: a restarted node starts where it did');
  t.is(startIndex('x', 0), 0);
});
