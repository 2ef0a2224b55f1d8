import test from 'ava';
import { ClusterTable } from '../../dns/cluster-table.js';
import { dockerResolverPorts } from '../../dns/docker-resolver.js';
import { Resolver } from '../../dns/resolver.js';
import { query } from './helpers.js';
import dnsPacket from 'dns-packet';

// The resolver's cluster view kept from etcd watch events (dns/cluster-table.ts), and Docker's resolver ports read
// from its DNAT rules (dns/docker-resolver.ts). Pure: no etcd, no kernel.

const P = '/p';
const key = (k: string) => `${P}/swarmnet/docker/${k}`;
const c = (id: string, nets: Record<string, string>, extra: object = {}) => JSON.stringify({
  id, name: id, hostname: `${id}-h`, live: true, ndots: false,
  networks: Object.fromEntries(Object.entries(nets).map(([n, ip]) => [n, { address: ip, aliases: [], dnsNames: [] }])), ...extra,
});

function ask(table: ClusterTable, view: string, name: string, networks: string[]): string[] {
  table.setViews([{ id: view, networks }]);
  const r = new Resolver(table.table, { compat: true }).resolve(query(name), view);
  if (r.kind !== 'answer') return [r.kind];
  return (dnsPacket.decode(r.response).answers ?? []).map((a) => String(a.data)).sort();
}

test('events build the view incrementally; only the networks asked for are rendered', (t) => {
  const ct = new ClusterTable(P, 'me');
  ct.reset(new Map([
    [key('networks/n1'), JSON.stringify({ id: 'n1', name: 'front' })],
    [key('networks/n2'), JSON.stringify({ id: 'n2', name: 'back' })],
    [key('services/s1'), JSON.stringify({ id: 's1', name: 'api', endpointMode: 'vip', vips: { n1: '10.1.0.250', n2: '10.2.0.250' }, aliases: { n1: ['a'] } })],
    [key('containers/other/t1'), c('t1', { n1: '10.1.0.2', n2: '10.2.0.2' }, { serviceId: 's1' })],
    [key('containers/other/x1'), c('x1', { n2: '10.2.0.9' })],
  ]));
  ct.setViews([{ id: '/ns/a', networks: ['n1'] }]);
  t.deepEqual([...ct.table.nets.values()].map((n) => n.name), ['front'], 'only the networks a view is attached to are indexed');
  t.false(ct.table.nets.get('n1')!.names.has('x1'), 'x1 is only on n2');
  t.deepEqual(ask(ct, '/ns/a', 'api', ['n1']), ['10.1.0.250']);
  t.deepEqual(ask(ct, '/ns/a', 'a', ['n1']), ['10.1.0.250'], 'spec alias');
  t.deepEqual(ask(ct, '/ns/a', 'tasks.api', ['n1']), ['10.1.0.2']);
  t.deepEqual(ask(ct, '/ns/a', 'x1', ['n1']), ['forward'], 'not on this view\'s networks');
  t.deepEqual(ask(ct, '/ns/b', 'x1', ['n2']), ['10.2.0.9']);

  // A task that is not healthy yet has no names; removal removes them; other prefixes are not ours.
  t.true(ct.apply('put', key('containers/other/t2'), c('t2', { n1: '10.1.0.3' }, { serviceId: 's1', live: false })));
  t.deepEqual(ask(ct, '/ns/a', 'tasks.api', ['n1']), ['10.1.0.2']);
  t.true(ct.apply('put', key('containers/other/t2'), c('t2', { n1: '10.1.0.3' }, { serviceId: 's1' })));
  t.deepEqual(ask(ct, '/ns/a', 'tasks.api', ['n1']), ['10.1.0.2', '10.1.0.3']);
  t.true(ct.apply('delete', key('containers/other/t1')));
  t.deepEqual(ask(ct, '/ns/a', 'tasks.api', ['n1']), ['10.1.0.3']);
  t.false(ct.apply('put', `${P}/swarmnet/networks/x`, '{}'));
  t.false(ct.apply('put', key('containers/too/many/parts'), '{}'));
});

test('bad records are dropped and counted, never break the table', (t) => {
  const ct = new ClusterTable(P, 'me');
  ct.apply('put', key('networks/n1'), JSON.stringify({ id: 'n1', name: 'front' }));
  for (const v of ['not json', '[]', '{}', JSON.stringify({ id: 'b', name: '' }), JSON.stringify({ id: 'b', name: 'x'.repeat(300), networks: {} })]) ct.apply('put', key('containers/o/b'), v);
  ct.apply('put', key('services/s'), JSON.stringify({ id: 's', name: 'svc', vips: 'nope', aliases: {} }));
  t.is(ct.stats.rejected, 6);
  // A container with one bad address keeps its good endpoints.
  ct.apply('put', key('containers/o/g'), JSON.stringify({ id: 'g', name: 'good', networks: { n1: { address: '10.0.0.300' }, n2: { address: '10.0.0.4' } } }));
  ct.apply('put', key('containers/o/h'), JSON.stringify({ id: 'h', name: 'h', networks: { n1: { address: '10.0.0.5', aliases: ['ok', 7, ''] } } }));
  t.deepEqual(ask(ct, '/v', 'good', ['n1', 'n2']), ['10.0.0.4']);
  t.deepEqual(ask(ct, '/v', 'ok', ['n1', 'n2']), ['10.0.0.5']);
  t.deepEqual(ask(ct, '/v', 'h', ['n1', 'n2']), ['10.0.0.5']);
});

test('this node\'s containers are found by their namespace path; other nodes\' are not', (t) => {
  const ct = new ClusterTable(P, 'me');
  ct.apply('put', key('containers/me/a'), c('a', { n1: '10.0.0.2' }, { sandboxKey: '/var/run/docker/netns/aaa', ndots: true }));
  ct.apply('put', key('containers/you/b'), c('b', { n1: '10.0.0.3' }, { sandboxKey: '/var/run/docker/netns/bbb' }));
  t.is(ct.localContainer('/var/run/docker/netns/aaa')?.id, 'a');
  t.is(ct.localContainer('/var/run/docker/netns/bbb'), undefined);
  t.deepEqual([...ct.localContainers().keys()], ['/var/run/docker/netns/aaa']);
  ct.setViews([{ id: '/var/run/docker/netns/aaa', networks: ['n1'] }]);
  t.true(ct.table.views.get('/var/run/docker/netns/aaa')!.ndots, 'ndots from the record');
  ct.apply('delete', key('containers/me/a'));
  t.is(ct.localContainers().size, 0);
});

test('Docker\'s resolver ports from its DNAT rules: iptables-nft, the nftables backend, iptables-legacy', (t) => {
  const nftIptables = `table ip nat {
	chain DOCKER_OUTPUT {
		ip daddr 127.0.0.11 tcp dport 53 counter packets 0 bytes 0 dnat to 127.0.0.11:40143
		ip daddr 127.0.0.11 udp dport 53 counter packets 3 bytes 180 dnat to 127.0.0.11:56215
	}
}`;
  t.deepEqual(dockerResolverPorts(nftIptables), { udp: 56215, tcp: 40143 });
  const nftBackend = `table ip docker-dns {
	chain dns-dnat {
		type nat hook output priority dstnat; policy accept;
		ip daddr 127.0.0.11 udp dport 53 counter packets 0 bytes 0 dnat to 127.0.0.11:35001
		ip daddr 127.0.0.11 tcp dport 53 counter packets 0 bytes 0 dnat to 127.0.0.11:35002
	}
}`;
  t.deepEqual(dockerResolverPorts(nftBackend), { udp: 35001, tcp: 35002 });
  const legacy = `*nat
-A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:41111
-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:42222
COMMIT`;
  t.deepEqual(dockerResolverPorts(legacy), { udp: 42222, tcp: 41111 });
  t.is(dockerResolverPorts(''), undefined);
  t.is(dockerResolverPorts(nftIptables.split('\n').filter((l) => !l.includes('udp')).join('\n')), undefined, 'both are needed');
  t.is(dockerResolverPorts('ip daddr 10.0.0.1 udp dport 53 dnat to 10.0.0.1:5353'), undefined, 'another address');
});

test('a change touches only what it changes: the same live index, service renames and removals follow, a late network name re-indexes', (t) => {
  const ct = new ClusterTable(P, 'me');
  ct.apply('put', key('containers/o/t1'), c('t1', { n1: '10.1.0.2' }, { serviceId: 's1' }));
  t.deepEqual(ask(ct, '/v', 'tasks.api', ['n1']), ['forward'], 'the service is not known yet');
  const index = ct.table.nets.get('n1');
  ct.apply('put', key('services/s1'), JSON.stringify({ id: 's1', name: 'api', endpointMode: 'dnsrr', vips: {}, aliases: { n1: ['a'] } }));
  t.is(ct.table.nets.get('n1'), index, 'updated in place, not rebuilt');
  t.deepEqual(ask(ct, '/v', 'tasks.api', ['n1']), ['10.1.0.2']);
  t.deepEqual(ask(ct, '/v', 'api', ['n1']), ['10.1.0.2'], 'DNSRR');
  ct.apply('put', key('services/s1'), JSON.stringify({ id: 's1', name: 'web', endpointMode: 'vip', vips: { n1: '10.1.0.250' }, aliases: {} }));
  t.deepEqual(ask(ct, '/v', 'tasks.api', ['n1']), ['forward'], 'renamed');
  t.deepEqual(ask(ct, '/v', 'a', ['n1']), ['forward'], 'alias gone');
  t.deepEqual(ask(ct, '/v', 'web', ['n1']), ['10.1.0.250'], 'VIP mode now');
  t.deepEqual(ask(ct, '/v', 'tasks.web', ['n1']), ['10.1.0.2']);
  ct.apply('delete', key('services/s1'));
  t.deepEqual(ask(ct, '/v', 'tasks.web', ['n1']), ['forward']);
  t.deepEqual(ask(ct, '/v', 't1', ['n1']), ['10.1.0.2'], 'the container keeps its own name');
  t.deepEqual(ask(ct, '/v', 't1.n1', ['n1']), ['10.1.0.2'], 'network known by id until its record comes');
  ct.apply('put', key('networks/n1'), JSON.stringify({ id: 'n1', name: 'Front' }));
  t.deepEqual(ask(ct, '/v', 't1.front', ['n1']), ['10.1.0.2']);
  t.deepEqual(ask(ct, '/v', 't1.n1', ['n1']), ['forward']);
  // Two owners of one name (an alias shared by two containers): removing one keeps the other's address.
  ct.apply('put', key('containers/o/x'), JSON.stringify({ id: 'x', name: 'x', networks: { n1: { address: '10.1.0.7', aliases: ['shared'] } } }));
  ct.apply('put', key('containers/o/y'), JSON.stringify({ id: 'y', name: 'y', networks: { n1: { address: '10.1.0.8', aliases: ['shared'] } } }));
  t.deepEqual(ask(ct, '/v', 'shared', ['n1']), ['10.1.0.7', '10.1.0.8']);
  ct.apply('delete', key('containers/o/x'));
  t.deepEqual(ask(ct, '/v', 'shared', ['n1']), ['10.1.0.8']);
  ct.setViews([]);
  t.is(ct.table.nets.size, 0, 'no view, no index');
});

test('a task Swarm is stopping (the service lists it as draining) leaves every name; its service\'s other tasks stay', (t) => {
  const ct = new ClusterTable(P, 'me');
  const svc = (draining?: string[]) => JSON.stringify({ id: 's1', name: 'api', endpointMode: 'vip', vips: { n1: '10.1.0.250' }, aliases: {}, ...(draining ? { draining } : {}) });
  ct.apply('put', key('services/s1'), svc());
  ct.apply('put', key('containers/o/t1'), c('t1', { n1: '10.1.0.2' }, { serviceId: 's1' }));
  ct.apply('put', key('containers/o/t2'), c('t2', { n1: '10.1.0.3' }, { serviceId: 's1' }));
  t.deepEqual(ask(ct, '/v', 'tasks.api', ['n1']), ['10.1.0.2', '10.1.0.3']);
  ct.apply('put', key('services/s1'), svc(['t2']));
  t.deepEqual(ask(ct, '/v', 'tasks.api', ['n1']), ['10.1.0.2']);
  t.deepEqual(ask(ct, '/v', 't2', ['n1']), ['forward'], 'its container name too, as Docker\'s DisableService');
  t.deepEqual(ask(ct, '/v', 'api', ['n1']), ['10.1.0.250'], 'the VIP stays');
  // The container stops: its record goes; the stale draining entry is harmless.
  ct.apply('delete', key('containers/o/t2'));
  t.deepEqual(ask(ct, '/v', 'tasks.api', ['n1']), ['10.1.0.2']);
  ct.apply('put', key('services/s1'), svc());
  t.deepEqual(ask(ct, '/v', 'tasks.api', ['n1']), ['10.1.0.2']);
});
