import test from 'ava';
import type { LbDelta, LbState, VipEntry } from '../../lb/desired.js';
import { parseListing, renderDelta, renderFull } from '../../lb/nftables/render.js';

const e = (vip: string, backends: string[]): VipEntry => ({ vip, serviceId: 's', networkId: 'n', backends });
const state = (vips: VipEntry[], local: string[] = []): LbState => ({ vips: new Map(vips.map((v) => [v.vip, v])), local: new Set(local) });

test('the whole table: a map entry and a chain per live VIP, empty VIPs refused, hairpin pairs', (t) => {
  const text = renderFull(state([e('10.0.255.2', ['10.0.1.5', '10.0.2.5']), e('10.0.255.3', ['10.0.1.6']), e('10.0.255.4', [])], ['10.0.1.5']));
  t.true(text.startsWith('add table ip swarmnet-lb\ndelete table ip swarmnet-lb\ntable ip swarmnet-lb {'), 'replaced in one transaction');
  t.regex(text, /map vips \{ type ipv4_addr : verdict; elements = \{ 10\.0\.255\.2 : goto vip-10\.0\.255\.2, 10\.0\.255\.3 : goto vip-10\.0\.255\.3 \}; \}/);
  t.regex(text, /chain vip-10\.0\.255\.2 \{ dnat to numgen random mod 2 map \{ 0 : 10\.0\.1\.5, 1 : 10\.0\.2\.5 \}; \}/);
  t.regex(text, /chain vip-10\.0\.255\.3 \{ dnat to 10\.0\.1\.6; \}/);
  t.regex(text, /set empty \{ type ipv4_addr; elements = \{ 10\.0\.255\.4 \}; \}/);
  t.regex(text, /set hairpin \{ type ipv4_addr \. ipv4_addr; elements = \{ 10\.0\.1\.5 \. 10\.0\.1\.5 \}; \}/);
  t.notRegex(text, /dnat to [^;]*:\d+;/, 'port-agnostic: no port in the DNAT');
});

test('deltas: only the changed VIPs, in an order the kernel accepts', (t) => {
  const d = (vip: string, prev?: VipEntry, next?: VipEntry): LbDelta => ({ vips: new Map([[vip, { prev, next }]]), localAdded: [], localRemoved: [] });
  const v = '10.0.255.2';
  t.is(renderDelta(d(v, undefined, e(v, ['10.0.1.5']))), `add chain ip swarmnet-lb vip-${v}\nadd rule ip swarmnet-lb vip-${v} dnat to 10.0.1.5\nadd element ip swarmnet-lb vips { ${v} : goto vip-${v} }\n`);
  t.is(renderDelta(d(v, e(v, ['10.0.1.5']), e(v, ['10.0.1.5', '10.0.1.6']))), `flush chain ip swarmnet-lb vip-${v}\nadd rule ip swarmnet-lb vip-${v} dnat to numgen random mod 2 map { 0 : 10.0.1.5, 1 : 10.0.1.6 }\n`);
  t.is(renderDelta(d(v, e(v, ['10.0.1.5']), e(v, []))), `delete element ip swarmnet-lb vips { ${v} }\nflush chain ip swarmnet-lb vip-${v}\ndelete chain ip swarmnet-lb vip-${v}\nadd element ip swarmnet-lb empty { ${v} }\n`);
  t.is(renderDelta(d(v, e(v, []), e(v, ['10.0.1.5']))), `delete element ip swarmnet-lb empty { ${v} }\nadd chain ip swarmnet-lb vip-${v}\nadd rule ip swarmnet-lb vip-${v} dnat to 10.0.1.5\nadd element ip swarmnet-lb vips { ${v} : goto vip-${v} }\n`);
  t.is(renderDelta(d(v, e(v, []), undefined)), `delete element ip swarmnet-lb empty { ${v} }\n`);
  t.is(renderDelta({ vips: new Map(), localAdded: ['1.2.3.4'], localRemoved: ['1.2.3.5'] }), 'add element ip swarmnet-lb hairpin { 1.2.3.4 . 1.2.3.4 }\ndelete element ip swarmnet-lb hairpin { 1.2.3.5 . 1.2.3.5 }\n');
});

const LISTING = `table ip swarmnet-lb {
\tset empty {
\t\ttype ipv4_addr
\t\telements = { 10.0.255.4 }
\t}

\tset hairpin {
\t\ttype ipv4_addr . ipv4_addr
\t\telements = { 10.0.1.5 . 10.0.1.5 }
\t}

\tmap vips {
\t\ttype ipv4_addr : verdict
\t\telements = { 10.0.255.2 : goto vip-10.0.255.2,
\t\t\t     10.0.255.3 : goto vip-10.0.255.3 }
\t}

\tchain vip-10.0.255.2 {
\t\tdnat to numgen random mod 2 map { 0 : 10.0.1.5, 1 : 10.0.2.5 }
\t}

\tchain vip-10.0.255.3 {
\t\tdnat to 10.0.1.6
\t}

\tchain nat-prerouting {
\t\ttype nat hook prerouting priority dstnat - 5; policy accept;
\t\tip daddr vmap @vips
\t}

\tchain refuse {
\t\ttype filter hook prerouting priority dstnat - 10; policy accept;
\t\tip daddr @empty reject with tcp reset
\t\tip daddr @empty reject
\t}

\tchain nat-postrouting {
\t\ttype nat hook postrouting priority srcnat - 5; policy accept;
\t\tct status dnat ip saddr . ip daddr @hairpin masquerade
\t}
}
`;

test('a listing reads back as the state it was written from; anything else of ours is not trusted', (t) => {
  const s = parseListing(LISTING)!;
  t.deepEqual([...s.vips.values()].map((v) => [v.vip, v.backends]), [['10.0.255.4', []], ['10.0.255.2', ['10.0.1.5', '10.0.2.5']], ['10.0.255.3', ['10.0.1.6']]]);
  t.deepEqual([...s.local], ['10.0.1.5']);
  t.is(parseListing(LISTING.replace('\t\tip daddr vmap @vips\n', '')), undefined, 'a base rule missing');
  t.is(parseListing(LISTING.replace('dnat to 10.0.1.6', 'accept')), undefined, 'a VIP chain edited by hand');
  t.is(parseListing(''), undefined);
});
