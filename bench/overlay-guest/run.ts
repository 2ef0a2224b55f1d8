/**
 * The overlay's flowtable fast path, measured where a kernel has flowtables: this machine's kernel has none, so the
 * paths run in the qemu guest of the IPVS and fast-path tests (Debian's 6.1 cloud kernel, one emulated CPU, TCG).
 * One boot, bench/overlay-guest/guest.ts: the underlay, a Docker-overlay-shaped path (bridge + VXLAN in a namespace of
 * their own, layer 2, no rules), swarmnet without and with the fast path, iperf3 one stream, interleaved rounds; then
 * each path once more under perf, summed by what the kernel was doing.
 * Under TCG everything is emulated on one CPU, so a path's throughput is the inverse of the CPU it costs per byte,
 * senders' and receivers' TCP stacks included: a comparison of CPU cost, not of what a real machine reaches.
 * Run (root): node scripts/bench.mjs overlay-guest  [OVERLAY_GUEST_SECONDS=5 OVERLAY_GUEST_ROUNDS=4
 *   OVERLAY_GUEST_SERIAL=<file>: the guest's console, every profiled symbol included]
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { lab } from '../lab.js';

const { bootGuest, bundle, ensureGuestImage, qemuMissing } = await lab<typeof import('../../scripts/lab/ipvs-guest.mjs')>('ipvs-guest.mjs');
const SECONDS = Number(process.env.OVERLAY_GUEST_SECONDS ?? 5);
const ROUNDS = Number(process.env.OVERLAY_GUEST_ROUNDS ?? 4);
const PATHS = ['underlay', 'docker-shaped', 'swarmnet', 'swarmnet-fast-path'];

/** What a kernel symbol works for, by name (first match): the rows of the account. */
const KINDS: [string, RegExp][] = [
  ['flowtable', /^(nf_flow|flow_offload|nft_flow)/],
  ['conntrack, NAT', /conntrack|^nf_ct_|^__nf_ct|^nf_nat|^tcp_in_window|^nf_confirm|^hash_conntrack|^tcp_packet|^nf_l4proto|^ipv4_conntrack|^nf_defrag|^ipv4_confirm/],
  ['netfilter hooks, rules', /^nf_hook|^nft_|^nf_tables|^ipt_|^xt_|^br_nf|^ip_sabotage|^nf_iterate|^iptable|^__nft/],
  ['bridge', /^br_|^nbp_|^__br_/],
  ['routing, forwarding', /^ip_route|^fib_|^ip_forward|^ip_rcv_finish|^ip_finish|^ip_output|^ip_local_deliver|^dst_|^rt_|^ip_rcv_core|^ip_sublist|^__ip_finish|^ip_rcv$|^ip_list_rcv|^ipv4_neigh|^neigh_|^__neigh|^ip_neigh/],
  ['VXLAN, UDP tunnel', /vxlan|udp_tunnel|iptunnel|^udp|^__udp|^ip_tunnel/],
  ['veth, device queue', /veth|^dev_|^__dev_|^netif_|^__netif|napi|qdisc|^sch_|^validate_xmit|^skb_network_protocol|^eth_type|^__qdisc/],
  ['TCP, sockets, copies (end hosts)', /^tcp_|^__tcp|^inet_|sock|copy|memcpy|memmove|memset|csum|^skb_|^__skb|^kfree|^kmem|^__kmalloc|^__alloc|^page|^__page|^release_sock|^lock_sock|^iov|^import_|^_copy|^rep_mov/],
];
const kind = (sym: string): string => KINDS.find(([, re]) => re.test(sym))?.[0] ?? 'other (scheduler, timers, emulation idle, iperf3)';

const missing = qemuMissing();
if (missing) {
  console.log(`bench overlay-guest skipped: ${missing}`);
  process.exit(0);
}
const image = await ensureGuestImage((m) => console.log(m), ['iperf3', 'perf']);
// The guest reads its arguments from the environment; the assignment runs before main (imports are hoisted).
const script = `process.env.OVERLAY_GUEST_ARGS = ${JSON.stringify(`${SECONDS} ${ROUNDS} profile`)};\n${await bundle(fileURLToPath(new URL('./guest.js', import.meta.url)))}`;
const started = new Date();
const boot = await bootGuest({ image, script, timeoutSec: 300 + ROUNDS * PATHS.length * (SECONDS + 15) });
const results = new Map<string, number[]>(PATHS.map((p) => [p, []]));
for (const m of boot.serial.matchAll(/^OVERLAY-GUEST (\S+) (\d+) ([\d.]+)$/gm)) results.get(m[1]!)?.push(Number(m[3]));
if (process.env.OVERLAY_GUEST_SERIAL) writeFileSync(process.env.OVERLAY_GUEST_SERIAL, boot.serial);
if (!/^OVERLAY-GUEST DONE$/m.test(boot.serial)) throw new Error(`the guest did not finish:\n${boot.serial.split('\n').slice(-30).join('\n')}`);

const median = (xs: number[]): number => { const s = [...xs].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
const docker = median(results.get('docker-shaped')!);
console.log(`\n${started.toISOString()}: guest kernel ${image.kver}, qemu TCG 1 CPU, iperf3 ${SECONDS} s one stream, ${ROUNDS} interleaved rounds, median`);
console.log('| path | Gbit/s | vs Docker-shaped | rounds |');
console.log('|---|---|---|---|');
for (const [path, xs] of results) console.log(`| ${path} | ${median(xs).toFixed(3)} | ${(median(xs) / docker).toFixed(2)}× | ${xs.map((x) => x.toFixed(3)).join(', ')} |`);

// The account: CPU seconds per GB sent, by kind. One CPU, always busy: share × (8 / Gbit/s) = CPU s per GB.
const profile = new Map<string, { gbps: number; kinds: Map<string, number> }>();
for (const m of boot.serial.matchAll(/^OVERLAY-GUEST-PROFILE (\S+) ([\d.]+) ([\d.]+) (\S+)$/gm)) {
  const p = profile.get(m[1]!) ?? { gbps: Number(m[2]), kinds: new Map<string, number>() };
  const k = kind(m[4]!);
  p.kinds.set(k, (p.kinds.get(k) ?? 0) + Number(m[3]) / 100);
  profile.set(m[1]!, p);
}
if (profile.size) {
  const paths = [...profile.keys()];
  const kinds = [...KINDS.map(([k]) => k), kind('')];
  const cost = (p: string, k: string): number => ((profile.get(p)!.kinds.get(k) ?? 0) * 8) / profile.get(p)!.gbps;
  console.log(`\nCPU seconds per GB by what the kernel did (perf, cpu-clock, symbols ≥ 0.02 % of samples)`);
  console.log(`| kind | ${paths.join(' | ')} |`);
  console.log(`|---|${paths.map(() => '---').join('|')}|`);
  for (const k of kinds) console.log(`| ${k} | ${paths.map((p) => cost(p, k).toFixed(2)).join(' | ')} |`);
  const listed = (p: string): number => kinds.reduce((sum, k) => sum + cost(p, k), 0);
  console.log(`| symbols below 0.02 % each | ${paths.map((p) => (8 / profile.get(p)!.gbps - listed(p)).toFixed(2)).join(' | ')} |`);
  console.log(`| total | ${paths.map((p) => (8 / profile.get(p)!.gbps).toFixed(2)).join(' | ')} |`);
}
