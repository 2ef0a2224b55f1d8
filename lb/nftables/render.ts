import type { LbDelta, LbState, VipEntry } from '../desired.js';
import { blockElements, hairpinAddresses, listingBlocks } from '../nft-listing.js';

/**
 * nftables rendering of the load balancer (pure). One table, `ip swarmnet-lb`, whose size is data, not code:
 * - `vips`: a verdict map VIP → `goto pick-N`, N = the VIP's backend count;
 * - `backends`: one map `VIP . i → address` for every VIP's i-th backend;
 * - `pick-N`: one chain per backend count in use, one rule: `dnat to ip daddr . numgen random mod N map @backends`
 *   (the port is untouched: Swarm VIPs are port-agnostic);
 * - `empty`: VIPs with no backend, refused at once (TCP reset, else ICMP port unreachable), never a silent hang;
 * - `hairpin`: `a . a` for this node's task addresses: a client that lands on itself is SNATed to the bridge's
 *   address (its kernel would drop a packet from its own address). Everything else keeps the client's source.
 * A backend change is a few map elements, so a write costs the change, and nft's work per write stays small
 * however many services exist (no chain or anonymous set per service). Established connections keep their backend
 * through any change: NAT is decided once per connection (conntrack).
 */

export const TABLE = 'swarmnet-lb';
const T = `ip ${TABLE}`;

export const pickChain = (n: number): string => `pick-${n}`;
const pickRule = (n: number): string => `dnat to ip daddr . numgen random mod ${n} map @backends`;

/** The base chains' rules, as `nft list` prints them (read() checks them). */
export const BASE_RULES = {
  'nat-prerouting': ['ip daddr vmap @vips'],
  refuse: ['ip daddr @empty reject with tcp reset', 'ip daddr @empty reject'],
  'nat-postrouting': ['ct status dnat ip saddr . ip daddr @hairpin masquerade'],
} as const;

const elements = (xs: string[]): string => (xs.length ? ` elements = { ${xs.join(', ')} };` : '');
const backendElements = (e: VipEntry): string[] => e.backends.map((b, i) => `${e.vip} . ${i} : ${b}`);

/** The whole table, replacing whatever is there in the same transaction (the table is created first so delete never fails). */
export function renderFull(s: LbState): string {
  const live = [...s.vips.values()].filter((e) => e.backends.length > 0);
  const empty = [...s.vips.values()].filter((e) => e.backends.length === 0).map((e) => e.vip);
  const counts = [...new Set(live.map((e) => e.backends.length))].sort((a, b) => a - b);
  const out = [
    `add table ${T}`,
    `delete table ${T}`,
    `table ${T} {`,
    `  set empty { type ipv4_addr;${elements(empty)} }`,
    `  set hairpin { type ipv4_addr . ipv4_addr;${elements([...s.local].map((a) => `${a} . ${a}`))} }`,
    `  map vips { type ipv4_addr : verdict;${elements(live.map((e) => `${e.vip} : goto ${pickChain(e.backends.length)}`))} }`,
    `  map backends { typeof ip daddr . numgen random mod 2 : ip daddr;${elements(live.flatMap(backendElements))} }`,
  ];
  for (const n of counts) out.push(`  chain ${pickChain(n)} { ${pickRule(n)}; }`);
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

/**
 * One transaction carrying only the delta: O(the changed VIPs' backends). `picks` are the pick chains that exist;
 * the ones this delta needs are created (and added to it).
 */
export function renderDelta(d: LbDelta, picks: Set<number>): string {
  const out: string[] = [];
  for (const [vip, { prev, next }] of d.vips) out.push(...vipDelta(vip, prev?.backends ?? (prev ? [] : undefined), next?.backends ?? (next ? [] : undefined), picks));
  for (const a of d.localAdded) out.push(`add element ${T} hairpin { ${a} . ${a} }`);
  for (const a of d.localRemoved) out.push(`delete element ${T} hairpin { ${a} . ${a} }`);
  return out.length ? out.join('\n') + '\n' : '';
}

/** `prev`/`next`: the VIP's backends before and after (undefined: the VIP does not exist). */
function vipDelta(vip: string, prev: readonly string[] | undefined, next: readonly string[] | undefined, picks: Set<number>): string[] {
  const was = prev?.length ?? 0;
  const is = next?.length ?? 0;
  const out: string[] = [];
  const del: string[] = [];
  const add: string[] = [];
  for (let i = 0; i < Math.max(was, is); i++) {
    if (i < was && (i >= is || prev![i] !== next![i])) del.push(`${vip} . ${i}`);
    if (i < is && (i >= was || prev![i] !== next![i])) add.push(`${vip} . ${i} : ${next![i]}`);
  }
  if (was !== is && was > 0) out.push(`delete element ${T} vips { ${vip} }`);
  if (prev && was === 0 && !(next && is === 0)) out.push(`delete element ${T} empty { ${vip} }`);
  if (del.length) out.push(`delete element ${T} backends { ${del.join(', ')} }`);
  if (add.length) out.push(`add element ${T} backends { ${add.join(', ')} }`);
  if (was !== is && is > 0) {
    if (!picks.has(is)) {
      out.push(`add chain ${T} ${pickChain(is)}`, `add rule ${T} ${pickChain(is)} ${pickRule(is)}`);
      picks.add(is);
    }
    out.push(`add element ${T} vips { ${vip} : goto ${pickChain(is)} }`);
  }
  if (next && is === 0 && !(prev && was === 0)) out.push(`add element ${T} empty { ${vip} }`);
  return out;
}

/**
 * Parses `nft list table ip swarmnet-lb` back into a state (service and network ids are not in the kernel: '') and
 * the pick chains present. Undefined when the table is missing or anything in it is not exactly what we write: the
 * caller then replaces it.
 */
export function parseListing(text: string): { state: LbState; picks: Set<number> } | undefined {
  if (!text.includes(`table ${T} {`)) return undefined;
  const blocks = listingBlocks(text);
  const rules = (body: string[]): string => body.filter((l) => !l.startsWith('type ')).join('\n');
  for (const [chain, want] of Object.entries(BASE_RULES)) {
    const body = blocks.get(`chain ${chain}`);
    if (body === undefined || rules(body) !== want.join('\n')) return undefined;
  }
  const picks = new Set<number>();
  for (const [key, body] of blocks) {
    const m = /^chain pick-(\d+)$/.exec(key);
    if (!m) continue;
    if (rules(body) !== pickRule(Number(m[1]))) return undefined;
    picks.add(Number(m[1]));
  }
  const elems = (key: string): string[] | undefined => {
    const body = blocks.get(key);
    return body === undefined ? undefined : blockElements(body);
  };
  const empty = elems('set empty');
  const hairpin = elems('set hairpin');
  const vipMap = elems('map vips');
  const backendMap = elems('map backends');
  if (!empty || !hairpin || !vipMap || !backendMap) return undefined;
  const byVip = new Map<string, string[]>();
  for (const el of backendMap) {
    const m = /^(\S+) \. (\d+) : (\S+)$/.exec(el);
    if (!m) return undefined;
    let list = byVip.get(m[1]!);
    if (!list) byVip.set(m[1]!, (list = []));
    list[Number(m[2])] = m[3]!;
  }
  const vips = new Map<string, VipEntry>();
  for (const v of empty) vips.set(v, { vip: v, serviceId: '', networkId: '', backends: [] });
  for (const el of vipMap) {
    const m = /^(\S+) : goto pick-(\d+)$/.exec(el);
    const list = m ? byVip.get(m[1]!) : undefined;
    // The VIP's chain must pick among exactly its backends: indexes 0..N-1, all present.
    if (!m || !list || list.length !== Number(m[2]) || list.includes(undefined as unknown as string) || !picks.has(list.length)) return undefined;
    byVip.delete(m[1]!);
    vips.set(m[1]!, { vip: m[1]!, serviceId: '', networkId: '', backends: list });
  }
  if (byVip.size) return undefined; // backends of a VIP nothing points at
  const local = hairpinAddresses(hairpin);
  return local && { state: { vips, local }, picks };
}
