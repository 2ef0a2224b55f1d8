import test from 'ava';
import type { LbDelta, LbState, VipEntry } from '../../lb/desired.js';
import { parseListing, renderDelta, renderFull } from '../../lb/nftables/render.js';

const e = (vip: string, backends: string[]): VipEntry => ({ vip, serviceId: 's', networkId: 'n', backends });
const state = (vips: VipEntry[], local: string[] = []): LbState => ({ vips: new Map(vips.map((v) => [v.vip, v])), local: new Set(local) });

test('the whole table: VIP → pick chain by backend count, VIP . i → backend, empty VIPs refused, hairpin pairs', (t) => {
  const text = renderFull(state([e('10.0.255.2', ['10.0.1.5', '10.0.2.5']), e('10.0.255.3', ['10.0.1.6']), e('10.0.255.4', [])], ['10.0.1.5']));
  t.true(text.startsWith('add table ip swarmnet-lb\ndelete table ip swarmnet-lb\ntable ip swarmnet-lb {'), 'replaced in one transaction');
  t.regex(text, /map vips \{ type ipv4_addr : verdict; elements = \{ 10\.0\.255\.2 : goto pick-2, 10\.0\.255\.3 : goto pick-1 \}; \}/);
  t.regex(text, /elements = \{ 10\.0\.255\.2 \. 0 : 10\.0\.1\.5, 10\.0\.255\.2 \. 1 : 10\.0\.2\.5, 10\.0\.255\.3 \. 0 : 10\.0\.1\.6 \}/);
  t.regex(text, /chain pick-2 \{ dnat to ip daddr \. numgen random mod 2 map @backends; \}/);
  t.is(text.match(/chain pick-/g)?.length, 2, 'one chain per backend count in use, not per service');
  t.regex(text, /set empty \{ type ipv4_addr; elements = \{ 10\.0\.255\.4 \}; \}/);
  t.regex(text, /set hairpin \{ type ipv4_addr \. ipv4_addr; elements = \{ 10\.0\.1\.5 \. 10\.0\.1\.5 \}; \}/);
  t.notRegex(text, /dnat to [^;]*:\d+;/, 'port-agnostic: no port in the DNAT');
});

test('deltas: only the changed elements, a pick chain created once when a new backend count appears', (t) => {
  const d = (vip: string, prev?: VipEntry, next?: VipEntry): LbDelta => ({ vips: new Map([[vip, { prev, next }]]), localAdded: [], localRemoved: [] });
  const v = '10.0.255.2';
  const T = 'ip swarmnet-lb';
  const picks = new Set<number>([2]);
  t.is(renderDelta(d(v, undefined, e(v, ['10.0.1.5'])), picks), `add element ${T} backends { ${v} . 0 : 10.0.1.5 }\nadd chain ${T} pick-1\nadd rule ${T} pick-1 dnat to ip daddr . numgen random mod 1 map @backends\nadd element ${T} vips { ${v} : goto pick-1 }\n`);
  t.deepEqual([...picks].sort(), [1, 2]);
  t.is(renderDelta(d(v, e(v, ['10.0.1.5']), e(v, ['10.0.1.5', '10.0.1.6'])), picks), `delete element ${T} vips { ${v} }\nadd element ${T} backends { ${v} . 1 : 10.0.1.6 }\nadd element ${T} vips { ${v} : goto pick-2 }\n`);
  t.is(renderDelta(d(v, e(v, ['10.0.1.5', '10.0.1.6']), e(v, ['10.0.1.5', '10.0.1.7'])), picks), `delete element ${T} backends { ${v} . 1 }\nadd element ${T} backends { ${v} . 1 : 10.0.1.7 }\n`, 'same count: only the changed slot');
  t.is(renderDelta(d(v, e(v, ['10.0.1.5']), e(v, [])), picks), `delete element ${T} vips { ${v} }\ndelete element ${T} backends { ${v} . 0 }\nadd element ${T} empty { ${v} }\n`);
  t.is(renderDelta(d(v, e(v, []), e(v, ['10.0.1.5'])), picks), `delete element ${T} empty { ${v} }\nadd element ${T} backends { ${v} . 0 : 10.0.1.5 }\nadd element ${T} vips { ${v} : goto pick-1 }\n`);
  t.is(renderDelta(d(v, e(v, []), undefined), picks), `delete element ${T} empty { ${v} }\n`);
  t.is(renderDelta(d(v, undefined, e(v, [])), picks), `add element ${T} empty { ${v} }\n`);
  t.is(renderDelta({ vips: new Map(), localAdded: ['1.2.3.4'], localRemoved: ['1.2.3.5'] }, picks), `add element ${T} hairpin { 1.2.3.4 . 1.2.3.4 }\ndelete element ${T} hairpin { 1.2.3.5 . 1.2.3.5 }\n`);
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
\t\telements = { 10.0.255.2 : goto pick-2, 10.0.255.3 : goto pick-1 }
\t}

\tmap backends {
\t\ttypeof ip daddr . numgen random mod 2 : ip daddr
\t\telements = { 10.0.255.2 . 0 : 10.0.1.5,
\t\t\t     10.0.255.3 . 0 : 10.0.1.6,
\t\t\t     10.0.255.2 . 1 : 10.0.2.5 }
\t}

\tchain pick-1 {
\t\tdnat to ip daddr . numgen random mod 1 map @backends
\t}

\tchain pick-2 {
\t\tdnat to ip daddr . numgen random mod 2 map @backends
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

test('a listing (as nft prints it) reads back as the state it was written from; anything else of ours is not trusted', (t) => {
  const { state: s, picks } = parseListing(LISTING)!;
  t.deepEqual([...s.vips.values()].map((v) => [v.vip, v.backends]), [['10.0.255.4', []], ['10.0.255.2', ['10.0.1.5', '10.0.2.5']], ['10.0.255.3', ['10.0.1.6']]]);
  t.deepEqual([...s.local], ['10.0.1.5']);
  t.deepEqual([...picks].sort(), [1, 2]);
  t.is(parseListing(LISTING.replace('\t\tip daddr vmap @vips\n', '')), undefined, 'a base rule missing');
  t.is(parseListing(LISTING.replace('mod 1 map @backends', 'mod 2 map @backends')), undefined, 'a pick chain edited by hand');
  t.is(parseListing(LISTING.replace('10.0.255.2 . 1 : 10.0.2.5', '10.0.255.2 . 3 : 10.0.2.5')), undefined, 'a VIP picking a slot it does not have');
  t.is(parseListing(LISTING.replace('10.0.255.3 : goto pick-1', '10.0.255.9 : goto pick-1')), undefined, 'backends nothing points at');
  t.is(parseListing(''), undefined);
});
