import test from 'ava';
import { DAMAGED, type LbDelta, type LbState, type VipEntry } from '../../lb/desired.js';
import {
  drainedServers, ipvsTimeouts, parseDummy, parseIpvsList, parseNftListing, renderDelta, renderDrainCleanup, renderRemoveServices,
  renderReplace, renderTable, viewToState, vipMark, type FwmService, type KernelView, type RealServer,
} from '../../lb/ipvs/render.js';

const e = (vip: string, backends: string[]): VipEntry => ({ vip, serviceId: 's', networkId: 'n', backends });
const state = (vips: VipEntry[], local: string[] = []): LbState => ({ vips: new Map(vips.map((v) => [v.vip, v])), local: new Set(local) });
const d = (vip: string, prev?: VipEntry, next?: VipEntry, localAdded: string[] = [], localRemoved: string[] = []): LbDelta => ({ vips: new Map([[vip, { prev, next }]]), localAdded, localRemoved });
const rs = (addr: string, weight = 1, active = 0, inactive = 0, forward = 'Masq'): RealServer => ({ addr, forward, weight, active, inactive });
const svc = (...servers: RealServer[]): FwmService => ({ scheduler: 'rr', servers: new Map(servers.map((s) => [s.addr, s])) });
const V = '10.0.255.2';
const M = vipMark(V);

// `nft list table ip swarmnet-ipvs` of renderTable(SAMPLE) on Debian 12's nft 1.0.6.
const SAMPLE = state([e('10.0.255.2', ['10.0.1.5', '10.0.2.5']), e('192.168.255.3', ['10.0.1.6']), e('10.0.255.4', [])], ['10.0.1.5', '10.0.1.6']);
const LISTING = `table ip swarmnet-ipvs {
\tmap vip-marks {
\t\ttype ipv4_addr : mark
\t\telements = { 10.0.255.2 : 0x0a00ff02, 192.168.255.3 : 0xc0a8ff03 }
\t}

\tset no-backend {
\t\ttype ipv4_addr
\t\telements = { 10.0.255.4 }
\t}

\tset hairpin {
\t\ttype ipv4_addr . ipv4_addr
\t\telements = { 10.0.1.5 . 10.0.1.5,
\t\t\t     10.0.1.6 . 10.0.1.6 }
\t}

\tchain mark-vips {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tmeta mark set ip daddr map @vip-marks
\t}

\tchain refuse {
\t\ttype filter hook prerouting priority dstnat - 10; policy accept;
\t\tip daddr @no-backend reject with tcp reset
\t\tip daddr @no-backend reject
\t}

\tchain hairpin-masq {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr . ip daddr @hairpin masquerade
\t}
}
`;

// `ipvsadm -Ln` in the guest (Debian 12's ipvsadm 1.31): marks above 2^31 print as negative numbers.
const IPVS_LIST = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
FWM  -1062731766 rr
  -> 10.1.1.1:0                   Masq    1      3          7         
  -> 10.1.1.2:0                   Masq    0      0          0         
TCP  10.9.9.9:80 rr
  -> 10.1.1.9:80                  Masq    1      0          0         
FWM  5 wrr
  -> 10.1.1.3:0                   Route   2      0          1         
`;

const SAMPLE_VIEW: KernelView = {
  services: new Map([[vipMark('10.0.255.2'), svc(rs('10.0.1.5'), rs('10.0.2.5'), rs('10.0.3.5', 0, 1))], [vipMark('192.168.255.3'), svc(rs('10.0.1.6'))], [5, svc(rs('10.9.9.9'))]]),
  dummy: { up: true, cidrs: ['10.0.255.2/32', '192.168.255.3/32', '10.0.255.4/32'] },
  nft: parseNftListing(LISTING),
};

test('a VIP\'s mark is its address as a uint32', (t) => {
  t.is(vipMark('10.96.0.10'), 0x0a60000a);
  t.is(vipMark('192.168.0.10'), 3232235530);
  t.is(vipMark('255.255.255.254'), 0xfffffffe);
  t.throws(() => vipMark('10.0.0.1 -C'), { message: /not an IPv4 address/ });
  t.throws(() => vipMark('0.0.0.0'), { message: /not an IPv4 address/ }, 'mark 0 is no mark');
});

test('the whole table: marks for live VIPs, refusals, hairpin pairs, replaced in one transaction', (t) => {
  const text = renderTable(SAMPLE);
  t.true(text.startsWith('add table ip swarmnet-ipvs\ndelete table ip swarmnet-ipvs\ntable ip swarmnet-ipvs {\n'));
  t.regex(text, /map vip-marks \{ type ipv4_addr : mark; elements = \{ 10\.0\.255\.2 : 167837442, 192\.168\.255\.3 : 3232300803 \}; \}/);
  t.regex(text, /set no-backend \{ type ipv4_addr; elements = \{ 10\.0\.255\.4 \}; \}/);
  t.regex(text, /set hairpin \{ type ipv4_addr \. ipv4_addr; elements = \{ 10\.0\.1\.5 \. 10\.0\.1\.5, 10\.0\.1\.6 \. 10\.0\.1\.6 \}; \}/);
  t.regex(text, /chain mark-vips \{ type filter hook prerouting priority mangle; policy accept; meta mark set ip daddr map @vip-marks; \}/);
  t.regex(text, /chain refuse \{ type filter hook prerouting priority dstnat - 10; policy accept; ip daddr @no-backend meta l4proto tcp reject with tcp reset; ip daddr @no-backend reject; \}/);
  t.regex(text, /chain hairpin-masq \{ type nat hook postrouting priority srcnat; policy accept; ip saddr \. ip daddr @hairpin masquerade; \}/);
  t.regex(renderTable(state([e(V, [])])), /map vip-marks \{ type ipv4_addr : mark; \}/, 'an empty map has no elements clause');
  t.throws(() => renderTable(state([e(V, [])], ['10.0.1.5 . 10.0.1.6 }; flush ruleset; #'])), { message: /not an IPv4 address/ });
});

test('deltas: a VIP appears, gains and loses backends (drained, never deleted at once), empties, disappears', (t) => {
  const none = new Map<string, number>();
  const fresh = renderDelta(d(V, undefined, e(V, ['10.0.1.5', '10.0.2.5'])), none);
  t.deepEqual(fresh.ipvs, [`-A -f ${M} -s rr`, `-a -f ${M} -r 10.0.1.5 -m -w 1`, `-a -f ${M} -r 10.0.2.5 -m -w 1`]);
  t.is(fresh.nft, `add element ip swarmnet-ipvs vip-marks { ${V} : ${M} }\n`);
  t.deepEqual([fresh.addrAdd, fresh.addrDel], [[`${V}/32`], []]);

  const change = renderDelta(d(V, e(V, ['10.0.1.5', '10.0.2.5']), e(V, ['10.0.2.5', '10.0.3.5'])), none);
  t.deepEqual(change.ipvs, [`-a -f ${M} -r 10.0.3.5 -m -w 1`, `-e -f ${M} -r 10.0.1.5 -m -w 0`]);
  t.deepEqual([change.drained, change.nft, change.addrAdd, change.addrDel], [[`${V} 10.0.1.5`], '', [], []]);

  const goneBackend = renderDelta(d(V, e(V, ['10.0.1.5', '10.0.2.5']), e(V, ['10.0.2.5'])), none, new Map([[V, new Set(['10.0.1.5'])]]));
  t.deepEqual(goneBackend.ipvs, [`-d -f ${M} -r 10.0.1.5`], 'a backend whose container is gone is deleted, not drained');
  t.deepEqual(goneBackend.drained, []);

  const back = renderDelta(d(V, e(V, ['10.0.2.5']), e(V, ['10.0.1.5', '10.0.2.5'])), new Map([[`${V} 10.0.1.5`, 1]]));
  t.deepEqual(back.ipvs, [`-e -f ${M} -r 10.0.1.5 -m -w 1`], 'a draining server comes back by weight');
  t.deepEqual(back.undrained, [`${V} 10.0.1.5`]);

  const empty = renderDelta(d(V, e(V, ['10.0.1.5']), e(V, [])), none);
  t.deepEqual(empty.ipvs, [`-D -f ${M}`]);
  t.is(empty.nft, `delete element ip swarmnet-ipvs vip-marks { ${V} }\nadd element ip swarmnet-ipvs no-backend { ${V} }\n`);
  t.deepEqual(empty.dropped, [V]);

  const refill = renderDelta(d(V, e(V, []), e(V, ['10.0.1.5'])), none);
  t.deepEqual(refill.ipvs, [`-A -f ${M} -s rr`, `-a -f ${M} -r 10.0.1.5 -m -w 1`]);
  t.is(refill.nft, `add element ip swarmnet-ipvs vip-marks { ${V} : ${M} }\ndelete element ip swarmnet-ipvs no-backend { ${V} }\n`);

  const born = renderDelta(d(V, undefined, e(V, [])), none);
  t.deepEqual([born.ipvs, born.nft, born.addrAdd], [[], `add element ip swarmnet-ipvs no-backend { ${V} }\n`, [`${V}/32`]]);
  const gone = renderDelta(d(V, e(V, ['10.0.1.5']), undefined), none);
  t.deepEqual([gone.ipvs, gone.nft, gone.addrDel], [[`-D -f ${M}`], `delete element ip swarmnet-ipvs vip-marks { ${V} }\n`, [`${V}/32`]]);

  const local = renderDelta({ vips: new Map(), localAdded: ['10.0.1.5'], localRemoved: ['10.0.1.6'] }, none);
  t.is(local.nft, 'add element ip swarmnet-ipvs hairpin { 10.0.1.5 . 10.0.1.5 }\ndelete element ip swarmnet-ipvs hairpin { 10.0.1.6 . 10.0.1.6 }\n');
  t.deepEqual(local.ipvs, []);
  t.throws(() => renderDelta(d(V, undefined, e(V, ['10.0.1.5\n-C'])), none), { message: /not an IPv4 address/ }, 'one line, one command');
});

test('drained servers go once idle or after the drain time; the others stay', (t) => {
  const services = new Map([[M, svc(rs('10.0.1.5', 0, 0, 0), rs('10.0.2.5', 0, 1, 0), rs('10.0.3.5', 0, 0, 2), rs('10.0.4.5', 1))]]);
  const draining = new Map([[`${V} 10.0.1.5`, 1000], [`${V} 10.0.2.5`, 1000], [`${V} 10.0.3.5`, 0], [`${V} 10.0.4.5`, 1000], [`${V} 10.0.9.5`, 1000]]);
  const r = renderDrainCleanup(services, draining, 50_500, 50_000);
  t.deepEqual(r.ipvs, [`-d -f ${M} -r 10.0.1.5`, `-d -f ${M} -r 10.0.3.5`], 'idle, and busy past the drain time');
  t.deepEqual(r.done, [`${V} 10.0.1.5`, `${V} 10.0.3.5`, `${V} 10.0.4.5`, `${V} 10.0.9.5`], 'undrained by hand or already gone: forgotten');
});

test('replace: only the difference, drains instead of deleting, foreign services untouched', (t) => {
  const view: KernelView = {
    services: new Map([
      [M, { scheduler: 'wlc', servers: new Map([['10.0.1.5', rs('10.0.1.5', 1, 0, 0, 'Route')], ['10.0.3.5', rs('10.0.3.5', 1, 2, 0)], ['10.0.4.5', rs('10.0.4.5', 0, 0, 0)], ['10.0.5.5', rs('10.0.5.5', 0, 1, 0)]]) }],
      [vipMark('10.0.255.9'), svc(rs('10.0.1.9'))],
      [5, svc(rs('10.0.7.7'))],
    ]),
    dummy: { up: true, cidrs: [`${V}/24`, '10.0.255.9/32'] },
    nft: 'damaged',
  };
  const want = state([e(V, ['10.0.1.5', '10.0.2.5']), e('10.0.255.4', [])], ['10.0.1.5']);
  const p = renderReplace(want, view, new Map([[`${V} 10.0.5.5`, 500]]), 1000, 10_000);
  t.deepEqual(p.ipvs, [
    `-E -f ${M} -s rr`,
    `-e -f ${M} -r 10.0.1.5 -m -w 1`,
    `-a -f ${M} -r 10.0.2.5 -m -w 1`,
    `-e -f ${M} -r 10.0.3.5 -m -w 0`,
    `-d -f ${M} -r 10.0.4.5`,
    `-D -f ${vipMark('10.0.255.9')}`,
  ]);
  t.deepEqual([...p.draining], [[`${V} 10.0.3.5`, 1000], [`${V} 10.0.5.5`, 500]], 'busy drained servers keep their start time');
  t.deepEqual(p.addrAdd, [`${V}/32`, '10.0.255.4/32']);
  t.deepEqual(p.addrDel, [`${V}/24`, '10.0.255.9/32']);
  t.is(p.nft, renderTable(want));
  t.false(p.ipvs.some((l) => / -f 5 /.test(`${l} `)), 'a mark that is not one of our VIPs is not ours');
  t.false(p.ipvs.some((l) => /^-C|--clear/.test(l)), 'never a clear');

  const fromNothing = renderReplace(want, { services: new Map() }, new Map(), 0);
  t.deepEqual(fromNothing.ipvs, [`-A -f ${M} -s rr`, `-a -f ${M} -r 10.0.1.5 -m -w 1`, `-a -f ${M} -r 10.0.2.5 -m -w 1`]);
  t.deepEqual(fromNothing.addrAdd, [`${V}/32`, '10.0.255.4/32']);
});

test('ipvsadm -Ln is read back: firewall-mark services only, negative marks as uint32', (t) => {
  const s = parseIpvsList(IPVS_LIST);
  t.deepEqual([...s.keys()], [3232235530, 5]);
  t.deepEqual([...s.get(3232235530)!.servers.values()], [rs('10.1.1.1', 1, 3, 7), rs('10.1.1.2', 0, 0, 0)]);
  t.is(s.get(5)!.scheduler, 'wrr');
  t.deepEqual(s.get(5)!.servers.get('10.1.1.3'), rs('10.1.1.3', 2, 0, 1, 'Route'));
});

test('the table is read back; anything but our exact chains and sets is damaged', (t) => {
  t.deepEqual(parseNftListing(LISTING), {
    marks: new Map([['10.0.255.2', 0x0a00ff02], ['192.168.255.3', 0xc0a8ff03]]),
    noBackend: new Set(['10.0.255.4']),
    local: new Set(['10.0.1.5', '10.0.1.6']),
  });
  t.is(parseNftListing(LISTING.replace('\t\tip daddr @no-backend reject\n', '')), 'damaged', 'a rule deleted');
  t.is(parseNftListing(LISTING.replace('priority mangle', 'priority filter')), 'damaged', 'a chain moved');
  t.is(parseNftListing(LISTING.replace('10.0.1.6 . 10.0.1.6', '10.0.1.6 . 10.0.1.7')), 'damaged', 'not a hairpin pair');
  t.is(parseNftListing(LISTING.replace('\tchain hairpin-masq', '\tchain other {\n\t}\n\n\tchain hairpin-masq')), 'damaged', 'a chain added');
  const empty = 'table ip swarmnet-ipvs {\n' + LISTING.split('\n').slice(1).filter((l) => !l.includes('elements') && !l.includes('10.0.1.6 . ')).join('\n');
  t.deepEqual(parseNftListing(empty), { marks: new Map(), noBackend: new Set(), local: new Set() });
});

test('the dummy device is read from ip -json', (t) => {
  const json = '[{"ifindex":3,"ifname":"swarmnet-lb0","flags":["BROADCAST","NOARP","UP","LOWER_UP"],"addr_info":[{"family":"inet","local":"10.96.0.10","prefixlen":32},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]';
  t.deepEqual(parseDummy(json), { up: true, cidrs: ['10.96.0.10/32'] });
  t.deepEqual(parseDummy('[{"ifname":"swarmnet-lb0","flags":["BROADCAST","NOARP"],"addr_info":[]}]'), { up: false, cidrs: [] });
});

test('the kernel view becomes the state it holds: drained servers are not backends, ids are unknown', (t) => {
  const s = viewToState(SAMPLE_VIEW)!;
  t.deepEqual([...s.vips.values()], [e('10.0.255.2', ['10.0.1.5', '10.0.2.5']), e('192.168.255.3', ['10.0.1.6']), e('10.0.255.4', [])].map((x) => ({ ...x, serviceId: '', networkId: '' })));
  t.deepEqual([...s.local], ['10.0.1.5', '10.0.1.6']);
  t.deepEqual(drainedServers(SAMPLE_VIEW), ['10.0.255.2 10.0.3.5']);
  t.is(viewToState({ services: new Map() }), undefined, 'nothing of ours');
});

test('a kernel that no state renders to is DAMAGED (the reconciler then replaces)', (t) => {
  const nft = SAMPLE_VIEW.nft as Exclude<KernelView['nft'], 'damaged' | undefined>;
  const without = (vip: string): KernelView['services'] => new Map([...SAMPLE_VIEW.services].filter(([m]) => m !== vipMark(vip)));
  const cases: [string, KernelView][] = [
    ['the table is gone', { ...SAMPLE_VIEW, nft: undefined }],
    ['the dummy is gone', { ...SAMPLE_VIEW, dummy: undefined }],
    ['the dummy is down', { ...SAMPLE_VIEW, dummy: { up: false, cidrs: SAMPLE_VIEW.dummy!.cidrs } }],
    ['the table was edited', { ...SAMPLE_VIEW, nft: 'damaged' }],
    ['a VIP address is gone', { ...SAMPLE_VIEW, dummy: { up: true, cidrs: ['10.0.255.2/32', '10.0.255.4/32'] } }],
    ['a VIP address is not /32', { ...SAMPLE_VIEW, dummy: { up: true, cidrs: ['10.0.255.2/24', '192.168.255.3/32', '10.0.255.4/32'] } }],
    ['a service is gone', { ...SAMPLE_VIEW, services: without('192.168.255.3') }],
    ['a mark is gone', { ...SAMPLE_VIEW, nft: { ...nft, marks: new Map([['10.0.255.2', vipMark('10.0.255.2')]]) } }],
    ['a refused VIP has a service', { ...SAMPLE_VIEW, services: new Map([...SAMPLE_VIEW.services, [vipMark('10.0.255.4'), svc(rs('10.0.1.9'))]]) }],
    ['a weight was edited', { ...SAMPLE_VIEW, services: new Map([...without('192.168.255.3'), [vipMark('192.168.255.3'), svc(rs('10.0.1.6', 3))]]) }],
    ['only drained servers', { ...SAMPLE_VIEW, services: new Map([...without('192.168.255.3'), [vipMark('192.168.255.3'), svc(rs('10.0.1.6', 0, 1))]]) }],
    ['a server is not masqueraded', { ...SAMPLE_VIEW, services: new Map([...without('192.168.255.3'), [vipMark('192.168.255.3'), svc(rs('10.0.1.6', 1, 0, 0, 'Route'))]]) }],
  ];
  for (const [what, view] of cases) t.is(viewToState(view), DAMAGED, what);
});

test('remove: only the services of our VIPs', (t) => {
  t.deepEqual(renderRemoveServices(SAMPLE_VIEW), [`-D -f ${vipMark('10.0.255.2')}`, `-D -f ${vipMark('192.168.255.3')}`]);
});

test('IPVS timeouts are conntrack\'s', (t) => {
  t.deepEqual(ipvsTimeouts('432000\n120\n120\n'), ['--set', '432000', '120', '120']);
  t.throws(() => ipvsTimeouts('432000\n120\n'), { message: /unexpected conntrack timeouts/ });
});
