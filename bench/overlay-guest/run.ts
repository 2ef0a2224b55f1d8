/**
 * The overlay's flowtable fast path, measured where a kernel has flowtables: this machine's kernel has none, so the
 * paths run in the qemu guest of the IPVS and fast-path tests (Debian's 6.1 cloud kernel, one emulated CPU, TCG).
 * One boot, bench/overlay-guest/guest.ts: the underlay, a Docker-overlay-shaped path (bridge + VXLAN in a namespace of
 * their own, layer 2, no rules), swarmnet without and with the fast path, iperf3 one stream, interleaved rounds.
 * Under TCG everything is emulated on one CPU, so a path's throughput is the inverse of the CPU it costs per byte,
 * senders' and receivers' TCP stacks included: a comparison of CPU cost, not of what a real machine reaches.
 * Run (root): node scripts/bench.mjs overlay-guest  [OVERLAY_GUEST_SECONDS=5 OVERLAY_GUEST_ROUNDS=4]
 */
import { fileURLToPath } from 'node:url';
import { lab } from '../lab.js';

const { bootGuest, bundle, ensureGuestImage, qemuMissing } = await lab<typeof import('../../scripts/lab/ipvs-guest.mjs')>('ipvs-guest.mjs');
const SECONDS = Number(process.env.OVERLAY_GUEST_SECONDS ?? 5);
const ROUNDS = Number(process.env.OVERLAY_GUEST_ROUNDS ?? 4);
const PATHS = ['underlay', 'docker-shaped', 'swarmnet', 'swarmnet-fast-path'];

const missing = qemuMissing();
if (missing) {
  console.log(`bench overlay-guest skipped: ${missing}`);
  process.exit(0);
}
const image = await ensureGuestImage((m) => console.log(m));
if (!image.programs.includes('iperf3')) throw new Error('the guest image has no iperf3 (Debian package iperf3; the image is rebuilt once it is installed)');
// The guest reads its arguments from the environment; the assignment runs before main (imports are hoisted).
const script = `process.env.OVERLAY_GUEST_ARGS = ${JSON.stringify(`${SECONDS} ${ROUNDS}`)};\n${await bundle(fileURLToPath(new URL('./guest.js', import.meta.url)))}`;
const started = new Date();
const boot = await bootGuest({ image, script, timeoutSec: 120 + ROUNDS * PATHS.length * (SECONDS + 15) });
const results = new Map<string, number[]>(PATHS.map((p) => [p, []]));
for (const m of boot.serial.matchAll(/^OVERLAY-GUEST (\S+) (\d+) ([\d.]+)$/gm)) results.get(m[1]!)?.push(Number(m[3]));
if (!/^OVERLAY-GUEST DONE$/m.test(boot.serial)) throw new Error(`the guest did not finish:\n${boot.serial.split('\n').slice(-30).join('\n')}`);

const median = (xs: number[]): number => { const s = [...xs].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
const docker = median(results.get('docker-shaped')!);
console.log(`\n${started.toISOString()}: guest kernel ${image.kver}, qemu TCG 1 CPU, iperf3 ${SECONDS} s one stream, ${ROUNDS} interleaved rounds, median`);
console.log('| path | Gbit/s | vs Docker-shaped | rounds |');
console.log('|---|---|---|---|');
for (const [path, xs] of results) console.log(`| ${path} | ${median(xs).toFixed(3)} | ${(median(xs) / docker).toFixed(2)}× | ${xs.map((x) => x.toFixed(3)).join(', ')} |`);
