import type { LbDelta, LbState, VipEntry } from '../desired.js';

/**
 * nftables rendering of the load balancer (pure). One table, `ip swarmnet-lb`:
 * - `vips`: a verdict map VIP → the VIP's chain; one rule there picks a backend (`numgen random mod N`) and DNATs to
 *   its address, port untouched (Swarm VIPs are port-agnostic). A change rewrites one chain and one map element.
 * - `empty`: VIPs with no backend, refused at once (TCP reset, else ICMP port unreachable), never a silent hang.
 * - `hairpin`: `a . a` for this node's task addresses: a client that lands on itself is SNATed to the bridge's
 *   address (its kernel would drop a packet from its own address). Everything else keeps the client's source.
 * Established connections keep their backend through any change: NAT is decided once per connection (conntrack).
 */

export const TABLE = 'swarmnet-lb';
const T = `ip ${TABLE}`;

export const chainOf = (vip: string): string => `vip-${vip}`;

function dnat(backends: readonly string[]): string {
  if (backends.length === 1) return `dnat to ${backends[0]}`;
  return `dnat to numgen random mod ${backends.length} map { ${backends.map((b, i) => `${i} : ${b}`).join(', ')} }`;
}

/** The base chains' rules, as `nft list` prints them (read() checks them). */
export const BASE_RULES = {
  'nat-prerouting': ['ip daddr vmap @vips'],
  refuse: ['ip daddr @empty reject with tcp reset', 'ip daddr @empty reject'],
  'nat-postrouting': ['ct status dnat ip saddr . ip daddr @hairpin masquerade'],
} as const;

const elements = (xs: string[]): string => (xs.length ? ` elements = { ${xs.join(', ')} };` : '');

/** The whole table, replacing whatever is there in the same transaction (the table is created first so delete never fails). */
export function renderFull(s: LbState): string {
  const live = [...s.vips.values()].filter((e) => e.backends.length > 0);
  const empty = [...s.vips.values()].filter((e) => e.backends.length === 0).map((e) => e.vip);
  const out = [
    `add table ${T}`,
    `delete table ${T}`,
    `table ${T} {`,
    `  set empty { type ipv4_addr;${elements(empty)} }`,
    `  set hairpin { type ipv4_addr . ipv4_addr;${elements([...s.local].map((a) => `${a} . ${a}`))} }`,
    `  map vips { type ipv4_addr : verdict;${elements(live.map((e) => `${e.vip} : goto ${chainOf(e.vip)}`))} }`,
  ];
  for (const e of live) out.push(`  chain ${chainOf(e.vip)} { ${dnat(e.backends)}; }`);
  out.push(
    `  chain nat-prerouting { type nat hook prerouting priority dstnat - 5; policy accept; ${BASE_RULES['nat-prerouting'][0]}; }`,
    `  chain refuse { type filter hook prerouting priority dstnat - 10; policy accept; ip daddr @empty meta l4proto tcp reject with tcp reset; ${BASE_RULES.refuse[1]}; }`,
    `  chain nat-postrouting { type nat hook postrouting priority srcnat - 5; policy accept; ${BASE_RULES['nat-postrouting'][0]}; }`,
    '}',
  );
  return out.join('\n') + '\n';
}

/** Removes the table (nothing of ours is left). */
export function renderRemove(): string {
  return `add table ${T}\ndelete table ${T}\n`;
}

/** One transaction carrying only the delta: O(the changed VIPs' backends). */
export function renderDelta(d: LbDelta): string {
  const out: string[] = [];
  for (const [vip, { prev, next }] of d.vips) out.push(...vipDelta(vip, prev, next));
  for (const a of d.localAdded) out.push(`add element ${T} hairpin { ${a} . ${a} }`);
  for (const a of d.localRemoved) out.push(`delete element ${T} hairpin { ${a} . ${a} }`);
  return out.length ? out.join('\n') + '\n' : '';
}

function vipDelta(vip: string, prev: VipEntry | undefined, next: VipEntry | undefined): string[] {
  const chain = `${T} ${chainOf(vip)}`;
  const was = prev ? (prev.backends.length ? 'live' : 'empty') : 'absent';
  const is = next ? (next.backends.length ? 'live' : 'empty') : 'absent';
  const out: string[] = [];
  if (was === 'live' && is !== 'live') out.push(`delete element ${T} vips { ${vip} }`, `flush chain ${chain}`, `delete chain ${chain}`);
  if (was === 'empty' && is !== 'empty') out.push(`delete element ${T} empty { ${vip} }`);
  if (is === 'live') {
    if (was !== 'live') out.push(`add chain ${chain}`);
    else out.push(`flush chain ${chain}`);
    out.push(`add rule ${chain} ${dnat(next!.backends)}`);
    if (was !== 'live') out.push(`add element ${T} vips { ${vip} : goto ${chainOf(vip)} }`);
  }
  if (is === 'empty' && was !== 'empty') out.push(`add element ${T} empty { ${vip} }`);
  return out;
}

/**
 * Parses `nft list table ip swarmnet-lb` back into a state (service and network ids are not in the kernel: '').
 * Undefined when the table is missing or its base chains are not exactly ours: the caller then replaces it.
 */
export function parseListing(text: string): LbState | undefined {
  if (!text.includes(`table ${T} {`)) return undefined;
  const blocks = new Map<string, string>();
  const re = /^\t(set|map|chain) (\S+) \{\n([\s\S]*?)^\t\}/gm;
  for (const m of text.matchAll(re)) blocks.set(`${m[1]} ${m[2]}`, m[3]!);
  for (const [chain, rules] of Object.entries(BASE_RULES)) {
    const body = blocks.get(`chain ${chain}`);
    if (body === undefined) return undefined;
    const lines = body.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('type '));
    if (lines.join('\n') !== rules.join('\n')) return undefined;
  }
  const elems = (key: string): string[] | undefined => {
    const body = blocks.get(key);
    if (body === undefined) return undefined;
    const m = /elements = \{([\s\S]*?)\}/.exec(body);
    return m ? m[1]!.split(',').map((x) => x.replace(/\s+/g, ' ').trim()).filter(Boolean) : [];
  };
  const empty = elems('set empty');
  const hairpin = elems('set hairpin');
  const vipMap = elems('map vips');
  if (!empty || !hairpin || !vipMap) return undefined;
  const vips = new Map<string, VipEntry>();
  for (const v of empty) vips.set(v, { vip: v, serviceId: '', networkId: '', backends: [] });
  for (const el of vipMap) {
    const m = /^(\S+) : goto (\S+)$/.exec(el);
    if (!m || m[2] !== chainOf(m[1]!)) return undefined;
    const body = blocks.get(`chain ${m[2]}`);
    const backends = body === undefined ? undefined : parseDnat(body.trim());
    if (!backends) return undefined;
    vips.set(m[1]!, { vip: m[1]!, serviceId: '', networkId: '', backends });
  }
  const local = new Set<string>();
  for (const el of hairpin) {
    const [a, b] = el.split(' . ');
    if (!a || a !== b) return undefined;
    local.add(a);
  }
  return { vips, local };
}

function parseDnat(rule: string): string[] | undefined {
  const one = /^dnat to (\d+\.\d+\.\d+\.\d+)$/.exec(rule);
  if (one) return [one[1]!];
  const many = /^dnat to numgen random mod (\d+) map \{([^}]*)\}$/.exec(rule.replace(/\s+/g, ' '));
  if (!many) return undefined;
  const pairs = many[2]!.split(',').map((p) => p.trim().split(' : '));
  if (pairs.length !== Number(many[1]) || pairs.some(([i, a], k) => Number(i) !== k || !a)) return undefined;
  return pairs.map(([, a]) => a!).sort();
}
