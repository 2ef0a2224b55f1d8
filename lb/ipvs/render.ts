import { isIPv4 } from 'node:net';
import { DAMAGED, type LbDelta, type LbState, type VipEntry } from '../desired.js';
import { blockElements, hairpinAddresses, listingBlocks } from '../nft-listing.js';

/**
 * IPVS rendering of the load balancer (pure). Swarm VIPs are port-agnostic, so each VIP with backends is one
 * firewall-mark service (mark = the VIP's IPv4 address as a uint32, so a mark names its VIP) with its backends as
 * masquerading real servers, scheduled round-robin. Around it:
 * - dummy device `swarmnet-lb0` holds every VIP as a /32: IPVS only sees packets addressed to a local address;
 * - table `ip swarmnet-ipvs`: `vip-marks` gives a VIP's packets their mark (prerouting, mangle); VIPs with no
 *   backend are in `no-backend` and refused at once (TCP reset, else ICMP port unreachable), before Docker's
 *   prerouting DNAT could take them; `hairpin` holds `a . a` for this node's task addresses: a task reaching
 *   itself through a VIP is masqueraded (its kernel would drop a packet from its own address).
 * A backend that leaves is drained first: weight 0 (no new connections, established ones keep it), deleted once
 * it has no connection left or after DRAIN_MS.
 */

export const DUMMY = 'swarmnet-lb0';
export const TABLE = 'swarmnet-ipvs';
const T = `ip ${TABLE}`;
export const DRAIN_MS = 15 * 60_000;
/** Conntrack's timeouts that IPVS copies (`ipvsadm --set tcp tcpfin udp`): it must never forget a connection sooner. */
export const CONNTRACK_TIMEOUTS = ['net.netfilter.nf_conntrack_tcp_timeout_established', 'net.netfilter.nf_conntrack_tcp_timeout_fin_wait', 'net.netfilter.nf_conntrack_udp_timeout_stream'];

/** The chains as `nft list` prints them (header line first): read() checks them line by line. */
const CHAINS: Record<string, string[]> = {
  'mark-vips': ['type filter hook prerouting priority mangle; policy accept;', 'meta mark set ip daddr map @vip-marks'],
  refuse: ['type filter hook prerouting priority dstnat - 10; policy accept;', 'ip daddr @no-backend reject with tcp reset', 'ip daddr @no-backend reject'],
  'hairpin-masq': ['type nat hook postrouting priority srcnat; policy accept;', 'ip saddr . ip daddr @hairpin masquerade'],
};
const SETS: Record<string, string> = { 'map vip-marks': 'type ipv4_addr : mark', 'set no-backend': 'type ipv4_addr', 'set hairpin': 'type ipv4_addr . ipv4_addr' };

/** A real server as `ipvsadm -Ln` shows it. */
export interface RealServer { addr: string; forward: string; weight: number; active: number; inactive: number }
export interface FwmService { scheduler: string; servers: Map<string, RealServer> }
export interface NftView { marks: Map<string, number>; noBackend: Set<string>; local: Set<string> }

/** What the kernel holds, object by object. */
export interface KernelView {
  /** Every IPv4 firewall-mark service of the namespace, ours or not, by mark. */
  services: Map<number, FwmService>;
  /** The dummy device (undefined: it does not exist) and its IPv4 addresses as CIDRs. */
  dummy?: { up: boolean; cidrs: string[] };
  /** Our table (undefined: it does not exist; 'damaged': not exactly the chains and sets we write). */
  nft?: NftView | 'damaged';
}

/** Commands for the kernel, run in this order: ipvsadm -R lines, dummy addresses added, one nft transaction, addresses deleted. */
export interface Plan { ipvs: string[]; addrAdd: string[]; nft: string; addrDel: string[] }

function ipv4(a: string): string {
  // Every value reaching a command line passes here, so a line can never carry a second command.
  if (!isIPv4(a) || a === '0.0.0.0') throw new Error(`not an IPv4 address: ${JSON.stringify(a)}`);
  return a;
}

export function vipMark(vip: string): number {
  return ipv4(vip).split('.').reduce((m, x) => m * 256 + Number(x), 0);
}

const key = (vip: string, addr: string): string => `${vip} ${addr}`;
const service = (vip: string): string => `-f ${vipMark(vip)}`;
const addServer = (vip: string, a: string): string => `-a ${service(vip)} -r ${ipv4(a)} -m -w 1`;
const weight = (vip: string, a: string, w: 0 | 1): string => `-e ${service(vip)} -r ${ipv4(a)} -m -w ${w}`;
const deleteServer = (vip: string, a: string): string => `-d ${service(vip)} -r ${ipv4(a)}`;
const createService = (vip: string, backends: readonly string[]): string[] => [`-A ${service(vip)} -s rr`, ...backends.map((a) => addServer(vip, a))];

const elements = (xs: string[]): string => (xs.length ? ` elements = { ${xs.join(', ')} };` : '');

/** The whole table, replacing whatever is there in one transaction (created first so the delete never fails). */
export function renderTable(s: LbState): string {
  const vips = [...s.vips.values()];
  const live = vips.filter((e) => e.backends.length > 0).map((e) => `${ipv4(e.vip)} : ${vipMark(e.vip)}`);
  const refused = vips.filter((e) => e.backends.length === 0).map((e) => ipv4(e.vip));
  return [
    `add table ${T}`,
    `delete table ${T}`,
    `table ${T} {`,
    `  map vip-marks { type ipv4_addr : mark;${elements(live)} }`,
    `  set no-backend { type ipv4_addr;${elements(refused)} }`,
    `  set hairpin { type ipv4_addr . ipv4_addr;${elements([...s.local].map((a) => `${ipv4(a)} . ${a}`))} }`,
    `  chain mark-vips { ${CHAINS['mark-vips']!.join(' ')}; }`,
    // nft lists the first rule without `meta l4proto tcp` (implied by the tcp reset).
    `  chain refuse { ${CHAINS.refuse![0]} ip daddr @no-backend meta l4proto tcp reject with tcp reset; ${CHAINS.refuse![2]}; }`,
    `  chain hairpin-masq { ${CHAINS['hairpin-masq']!.join(' ')}; }`,
    '}',
    '',
  ].join('\n');
}

export function renderRemoveTable(): string {
  return `add table ${T}\ndelete table ${T}\n`;
}

export interface DeltaPlan extends Plan {
  /** Real servers (`vip addr`) this plan puts to weight 0, back to weight 1, and VIPs whose service (drained servers included) it deletes. */
  drained: string[];
  undrained: string[];
  dropped: string[];
}

/** Only the delta: O(the changed VIPs' backends). `draining`: servers at weight 0 in the kernel (`vip addr`). */
export function renderDelta(d: LbDelta, draining: ReadonlyMap<string, number>, gone: ReadonlyMap<string, ReadonlySet<string>> = new Map()): DeltaPlan {
  const p: DeltaPlan = { ipvs: [], addrAdd: [], nft: '', addrDel: [], drained: [], undrained: [], dropped: [] };
  const nft: string[] = [];
  for (const [vip, { prev, next }] of d.vips) {
    const was = prev?.backends ?? [];
    const is = next?.backends ?? [];
    if (is.length && !was.length) p.ipvs.push(...createService(vip, is));
    else if (!is.length && was.length) {
      p.ipvs.push(`-D ${service(vip)}`);
      p.dropped.push(vip);
    } else if (is.length) {
      const old = new Set(was);
      const kept = new Set(is);
      for (const a of is) {
        if (old.has(a)) continue;
        if (draining.has(key(vip, a))) {
          p.ipvs.push(weight(vip, a, 1));
          p.undrained.push(key(vip, a));
        } else p.ipvs.push(addServer(vip, a));
      }
      for (const a of was) {
        if (kept.has(a)) continue;
        // A container that is gone has nothing to drain: delete it now (expire_nodest_conn ends its connections at
        // their next packet, so the client learns at once instead of at IPVS's timeout).
        if (gone.get(vip)?.has(a)) {
          p.ipvs.push(deleteServer(vip, a));
          continue;
        }
        p.ipvs.push(weight(vip, a, 0));
        p.drained.push(key(vip, a));
      }
    }
    if (is.length && !was.length) nft.push(`add element ${T} vip-marks { ${vip} : ${vipMark(vip)} }`);
    if (!is.length && was.length) nft.push(`delete element ${T} vip-marks { ${vip} }`);
    const wasRefused = prev !== undefined && !was.length;
    const isRefused = next !== undefined && !is.length;
    if (isRefused && !wasRefused) nft.push(`add element ${T} no-backend { ${vip} }`);
    if (wasRefused && !isRefused) nft.push(`delete element ${T} no-backend { ${vip} }`);
    if (!prev && next) p.addrAdd.push(`${ipv4(vip)}/32`);
    if (prev && !next) p.addrDel.push(`${ipv4(vip)}/32`);
  }
  for (const a of d.localAdded) nft.push(`add element ${T} hairpin { ${ipv4(a)} . ${a} }`);
  for (const a of d.localRemoved) nft.push(`delete element ${T} hairpin { ${ipv4(a)} . ${a} }`);
  p.nft = nft.length ? `${nft.join('\n')}\n` : '';
  return p;
}

/** Whether a drained (weight 0) server may go: no connection left, or drained for drainMs. */
const drainDone = (s: RealServer, since: number, now: number, drainMs: number): boolean => s.active + s.inactive === 0 || now - since >= drainMs;

/**
 * Deletes drained servers that are done. `draining`: `vip addr` → when it was drained. `done`: keys to forget
 * (deleted here, or no longer drained in the kernel).
 */
export function renderDrainCleanup(services: KernelView['services'], draining: ReadonlyMap<string, number>, now: number, drainMs = DRAIN_MS): { ipvs: string[]; done: string[] } {
  const out = { ipvs: [] as string[], done: [] as string[] };
  for (const [k, since] of draining) {
    const [vip, addr] = k.split(' ') as [string, string];
    const s = services.get(vipMark(vip))?.servers.get(addr);
    if (!s || s.weight > 0) out.done.push(k);
    else if (drainDone(s, since, now, drainMs)) {
      out.ipvs.push(deleteServer(vip, addr));
      out.done.push(k);
    }
  }
  return out;
}

/** VIPs whose objects are ours: on the dummy, in our sets, or wanted (a service left behind by a failed write). */
function ourVips(view: KernelView, s?: LbState): Set<string> {
  const out = new Set<string>(s ? s.vips.keys() : []);
  for (const c of view.dummy?.cidrs ?? []) out.add(c.split('/')[0]!);
  if (view.nft && view.nft !== 'damaged') for (const v of [...view.nft.marks.keys(), ...view.nft.noBackend]) out.add(v);
  return out;
}

/**
 * What makes the kernel hold `s`, from what it holds now: only the differing services, real servers and addresses
 * (never a clear: connections keep flowing), the table rewritten in one transaction. Servers that leave are drained;
 * returns the drains still running (`vip addr` → since).
 */
export function renderReplace(s: LbState, view: KernelView, draining: ReadonlyMap<string, number>, now: number, drainMs = DRAIN_MS): Plan & { draining: Map<string, number> } {
  const ipvs: string[] = [];
  const still = new Map<string, number>();
  for (const vip of ourVips(view, s)) {
    const want = s.vips.get(vip)?.backends ?? [];
    const svc = view.services.get(vipMark(vip));
    if (!want.length) {
      if (svc) ipvs.push(`-D ${service(vip)}`);
      continue;
    }
    if (!svc) {
      ipvs.push(...createService(vip, want));
      continue;
    }
    if (svc.scheduler !== 'rr') ipvs.push(`-E ${service(vip)} -s rr`);
    for (const a of want) {
      const cur = svc.servers.get(a);
      if (!cur) ipvs.push(addServer(vip, a));
      else if (cur.weight !== 1 || cur.forward !== 'Masq') ipvs.push(weight(vip, a, 1));
    }
    const wanted = new Set(want);
    for (const cur of svc.servers.values()) {
      if (wanted.has(cur.addr)) continue;
      const k = key(vip, cur.addr);
      if (cur.weight > 0 || cur.forward !== 'Masq') {
        ipvs.push(weight(vip, cur.addr, 0));
        still.set(k, now);
      } else if (drainDone(cur, draining.get(k) ?? now, now, drainMs)) ipvs.push(deleteServer(vip, cur.addr));
      else still.set(k, draining.get(k) ?? now);
    }
  }
  const want = new Set([...s.vips.keys()].map((v) => `${ipv4(v)}/32`));
  const have = new Set(view.dummy?.cidrs ?? []);
  return {
    ipvs,
    addrAdd: [...want].filter((c) => !have.has(c)),
    nft: renderTable(s),
    addrDel: [...have].filter((c) => !want.has(c)),
    draining: still,
  };
}

/** Deletes our services (the table and the dummy go whole). */
export function renderRemoveServices(view: KernelView): string[] {
  return [...ourVips(view)].filter((v) => view.services.has(vipMark(v))).map((v) => `-D ${service(v)}`);
}

/** Drained servers of our services, `vip addr` (read() notes them, so a later write deletes them). */
export function drainedServers(view: KernelView): string[] {
  const out: string[] = [];
  for (const vip of ourVips(view)) {
    for (const s of view.services.get(vipMark(vip))?.servers.values() ?? []) if (s.weight === 0) out.push(key(vip, s.addr));
  }
  return out;
}

/**
 * The state the kernel holds (ids are not in the kernel: ''). Undefined when nothing of ours is there; DAMAGED
 * unless the objects are exactly what some state renders to (e.g. a VIP on the dummy with no mark nor refusal, a
 * deleted service, a weight edited by hand), so the reconciler replaces. Drained (weight 0) servers are not backends.
 */
export function viewToState(view: KernelView): LbState | undefined {
  const { dummy, nft } = view;
  if (!dummy && !nft) return undefined;
  if (!dummy || !dummy.up || !nft || nft === 'damaged') return DAMAGED;
  const vips = new Map<string, VipEntry>();
  for (const cidr of dummy.cidrs) {
    const [vip, len] = cidr.split('/') as [string, string];
    if (len !== '32') return DAMAGED;
    const svc = view.services.get(vipMark(vip));
    if (nft.noBackend.has(vip)) {
      if (svc || nft.marks.has(vip)) return DAMAGED;
      vips.set(vip, { vip, serviceId: '', networkId: '', backends: [] });
      continue;
    }
    if (nft.marks.get(vip) !== vipMark(vip) || !svc || svc.scheduler !== 'rr') return DAMAGED;
    const servers = [...svc.servers.values()];
    if (servers.some((s) => s.forward !== 'Masq' || s.weight > 1)) return DAMAGED;
    const backends = servers.filter((s) => s.weight === 1).map((s) => s.addr).sort();
    if (!backends.length) return DAMAGED;
    vips.set(vip, { vip, serviceId: '', networkId: '', backends });
  }
  // Marks or refusals for VIPs that are not on the dummy.
  if (nft.marks.size + nft.noBackend.size !== vips.size) return DAMAGED;
  return { vips, local: nft.local };
}

/** `ipvsadm -Ln` → the IPv4 firewall-mark services (marks above 2^31 print as negative numbers). */
export function parseIpvsList(text: string): Map<number, FwmService> {
  const out = new Map<number, FwmService>();
  let cur: FwmService | undefined;
  for (const line of text.split('\n')) {
    const svc = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(\S+)/.exec(line);
    if (svc) {
      cur = svc[1] === 'FWM' && svc[3] !== 'IPv6' ? { scheduler: svc[3]!, servers: new Map() } : undefined;
      if (cur) out.set(Number(svc[2]) >>> 0, cur);
      continue;
    }
    const rs = /^\s+->\s+(\d+\.\d+\.\d+\.\d+):\d+\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (rs && cur) cur.servers.set(rs[1]!, { addr: rs[1]!, forward: rs[2]!, weight: Number(rs[3]), active: Number(rs[4]), inactive: Number(rs[5]) });
  }
  return out;
}

/** `ip -json addr show dev swarmnet-lb0` → whether it is up and its IPv4 addresses. */
export function parseDummy(json: string): { up: boolean; cidrs: string[] } {
  type Raw = { flags?: string[]; addr_info?: { family: string; local: string; prefixlen: number }[] };
  const [link] = JSON.parse(json) as Raw[];
  return {
    up: (link?.flags ?? []).includes('UP'),
    cidrs: (link?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

/** `nft list table ip swarmnet-ipvs` → its elements, or 'damaged' unless its chains and sets are exactly ours. */
export function parseNftListing(text: string): NftView | 'damaged' {
  const blocks = listingBlocks(text);
  const expected = [...Object.keys(CHAINS).map((c) => `chain ${c}`), ...Object.keys(SETS)];
  if (blocks.size !== expected.length || expected.some((b) => !blocks.has(b))) return 'damaged';
  for (const [c, lines] of Object.entries(CHAINS)) if (blocks.get(`chain ${c}`)!.join('\n') !== lines.join('\n')) return 'damaged';
  const elems: Record<string, string[]> = {};
  for (const [b, type] of Object.entries(SETS)) {
    const body = blocks.get(b)!;
    const list = body[0] === type ? blockElements(body) : undefined;
    if (!list) return 'damaged';
    elems[b] = list;
  }
  const marks = new Map<string, number>();
  for (const el of elems['map vip-marks']!) {
    const [vip, mark] = el.split(' : ');
    if (!vip || !isIPv4(vip) || !mark) return 'damaged';
    marks.set(vip, Number(mark));
  }
  const noBackend = new Set(elems['set no-backend']);
  const local = hairpinAddresses(elems['set hairpin']!);
  if (!local || [...noBackend, ...local].some((a) => !isIPv4(a))) return 'damaged';
  return { marks, noBackend, local };
}

/** `sysctl -n` of CONNTRACK_TIMEOUTS → the arguments of `ipvsadm --set`. */
export function ipvsTimeouts(sysctlOutput: string): string[] {
  const t = sysctlOutput.trim().split(/\s+/);
  if (t.length !== CONNTRACK_TIMEOUTS.length || t.some((x) => !/^\d+$/.test(x) || x === '0')) throw new Error(`unexpected conntrack timeouts: ${JSON.stringify(sysctlOutput)}`);
  return ['--set', ...t];
}
