// Real IPVS for the IPVS backend's tests on machines whose kernel has none, and nftables flowtables for the overlay's
// fast path (same story): Debian's cloud kernel, booted under qemu from an initramfs with busybox, iproute2, ipvsadm,
// nft, iptables and Node (../../../shared/reference/ipvs-in-a-guest.md).
// The kernel package is only downloaded (apt-get download) and unpacked, never installed; the image is built once
// into a cache (rebuilt when its recipe, the kernel package or Node change) and each boot appends a small payload.
//
//   qemuMissing() -> string | undefined         why the guest cannot run here (undefined: it can)
//   ensureGuestImage(log, extras) -> Promise<GuestImage>   { dir, kernel, initrd, kver, pkg }
//   bundle(entry) -> Promise<string>             one ESM file of entry and everything it imports (esbuild)
//   bootGuest({ image, script, timeoutSec }) -> Promise<{ serial, code, ms }>   runs `node script` as the guest's job
import { createHash } from 'node:crypto';
import { copyFileSync, chmodSync, existsSync, lstatSync, statSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, systemPath } from '../lib/proc.mjs';
import { REPO } from './state.mjs';

const CACHE = join(REPO, 'build/.cache/ipvs-guest');
/** The emulator and its fixed options (a literal list: the prerequisite guard reads program names from code). */
const QEMU = ['qemu-system-x86_64', '-m', '1024', '-smp', '1', '-nographic', '-no-reboot', '-nic', 'none'];
/** Modules the guest loads at boot (their dependencies come along): IPVS, the nftables pieces the LB tables use, the overlay's links, flowtable and FORWARD chain (iptables-nft), the links of the test topologies. */
const MODULES = ['ip_vs', 'ip_vs_rr', 'nf_conntrack', 'nf_nat', 'nf_tables', 'nft_chain_nat', 'nft_masq', 'nft_reject', 'nft_reject_ipv4', 'nf_reject_ipv4', 'dummy', 'veth',
  'vxlan', 'bridge', 'nf_flow_table', 'nf_flow_table_inet', 'nft_flow_offload', 'nft_nat', 'nft_compat', 'xt_comment', 'nft_ct', 'br_netfilter'];
/** Dynamically linked programs copied with their libraries: [path on this machine, path in the guest]. */
const PROGRAMS = [['ip', '/sbin/ip'], ['ipvsadm', '/sbin/ipvsadm'], ['nft', '/sbin/nft'], ['bridge', '/sbin/bridge'],
  ['iptables', '/sbin/iptables'], ['iptables-restore', '/sbin/iptables-restore']];
/** Programs an image may add on request (bench/overlay-guest: iperf3, and perf to profile). */
const EXTRA_PROGRAMS = { iperf3: '/usr/bin/iperf3', perf: '/usr/bin/perf' };

const XTABLES_EXTENSIONS = ['libxt_standard.so', 'libxt_comment.so'];

/**
 * PID 1. busybox ash runs its own `ip` applet before PATH, hence /sbin/ip; the guest must never let PID 1 exit
 * (kernel panic), so it powers off and then sleeps. Marker lines start with IPVS-GUEST.
 */
const INIT = `#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
echo
echo "IPVS-GUEST BOOT $(cut -d' ' -f1 /proc/uptime) $(uname -r)"
for m in $(cat /etc/guest-modules); do modprobe "$m" || echo "IPVS-GUEST MODULE-FAILED $m"; done
/sbin/ip link set lo up
if [ -f /test/main.mjs ]; then
  /usr/bin/node /test/main.mjs
  echo "IPVS-GUEST EXIT $? $(cut -d' ' -f1 /proc/uptime)"
else
  echo "IPVS-GUEST EXIT no-payload"
fi
sync
poweroff -f
while :; do sleep 3600; done
`;

/** Why the guest cannot boot here, or undefined. */
export function qemuMissing() {
  return findProgram(QEMU[0]) ? undefined : `${QEMU[0]} is not installed (Debian package qemu-system-x86)`;
}

function findProgram(name) {
  for (const d of systemPath().split(':')) if (d && existsSync(join(d, name))) return join(d, name);
  return undefined;
}

/** The versioned image package behind Debian's cloud kernel metapackage, e.g. linux-image-6.1.0-57-cloud-amd64. */
async function kernelPackage() {
  const r = await run('apt-cache', ['depends', 'linux-image-cloud-amd64'], { allowFailure: true });
  const pkg = /Depends: (linux-image-\d\S*)/.exec(r.stdout)?.[1];
  if (!pkg) throw new Error('apt-cache knows no linux-image-cloud-amd64 (run apt-get update; the IPVS guest boots Debian\'s cloud kernel)');
  return pkg;
}

/** Absolute paths of the shared libraries a program loads (ldd), the loader included. */
async function librariesOf(file) {
  const r = await run('ldd', [file], { allowFailure: true });
  if (r.code !== 0) return []; // "not a dynamic executable"
  return [...r.stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1]);
}

function copyInto(root, from, to = from) {
  const dest = join(root, to);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(from, dest); // follows symlinks: the guest gets the file itself
  chmodSync(dest, statSync(from).mode & 0o777);
}

/** Stages the modules and their dependency closure (read from each module's modinfo `depends=`: no kmod needed). */
function stageModules(kernelRoot, root, kver) {
  const modDir = join(kernelRoot, 'lib/modules', kver);
  const builtin = readFileSync(join(modDir, 'modules.builtin'), 'utf8');
  const byName = new Map();
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ko')) byName.set(e.name.slice(0, -3).replaceAll('-', '_'), join(d, e.name));
    }
  };
  walk(join(modDir, 'kernel'));
  const seen = new Set();
  const visit = (name) => {
    const n = name.replaceAll('-', '_');
    if (seen.has(n)) return;
    seen.add(n);
    const file = byName.get(n);
    if (!file) {
      if (new RegExp(`/${n.replaceAll('_', '[-_]')}\\.ko$`, 'm').test(builtin)) return;
      throw new Error(`kernel ${kver} has no module ${n}`);
    }
    copyInto(root, file, file.slice(kernelRoot.length));
    const deps = /depends=([^\0]*)\0/.exec(readFileSync(file).toString('latin1'))?.[1] ?? '';
    for (const d of deps.split(',').filter(Boolean)) visit(d);
  };
  for (const m of MODULES) visit(m);
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) copyInto(root, join(modDir, f), join('/lib/modules', kver, f));
  return seen.size;
}

/** newc cpio of a directory tree (sorted, mtime 0): the initramfs format. */
function newcArchive(root) {
  const parts = [];
  let ino = 1;
  const entry = (name, mode, data) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0];
    const header = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`);
    parts.push(header, nameBuf, Buffer.alloc((4 - ((header.length + nameBuf.length) % 4)) % 4), data, Buffer.alloc((4 - (data.length % 4)) % 4));
  };
  const walk = (rel) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      if (st.isSymbolicLink()) entry(r, 0o120777, Buffer.from(readlinkSync(join(root, r))));
      else if (st.isDirectory()) {
        entry(r, 0o40755, Buffer.alloc(0));
        walk(r);
      } else entry(r, 0o100000 | (st.mode & 0o777), readFileSync(join(root, r)));
    }
  };
  walk('');
  entry('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

/** The kernel package's .deb, downloaded once into the cache (kept across image rebuilds). */
async function kernelDeb(pkg, log) {
  const debs = join(CACHE, 'debs', pkg);
  const have = existsSync(debs) ? readdirSync(debs).find((f) => f.endsWith('.deb')) : undefined;
  if (have) return join(debs, have);
  rmSync(join(CACHE, 'debs'), { recursive: true, force: true });
  mkdirSync(debs, { recursive: true });
  log(`IPVS guest: downloading ${pkg} into ${debs} (unpacked only, never installed)`);
  const dl = await run('apt-get', ['-qq', '-o', 'APT::Sandbox::User=root', 'download', pkg], { cwd: debs, allowFailure: true, timeoutMs: 600_000 });
  const deb = readdirSync(debs).find((f) => f.endsWith('.deb'));
  if (dl.code !== 0 || !deb) throw new Error(`apt-get download ${pkg}: ${dl.stderr.trim().split('\n').at(-1)} (run apt-get update?)`);
  return join(debs, deb);
}

async function buildImage(dir, pkg, extras, log) {
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  const kernelRoot = join(tmp, 'kernel');
  const root = join(tmp, 'root');
  mkdirSync(tmp, { recursive: true });
  await run('dpkg-deb', ['-x', await kernelDeb(pkg, log), kernelRoot]);
  const kver = readdirSync(join(kernelRoot, 'lib/modules'))[0];

  const busybox = findProgram('busybox');
  if (!busybox || (await librariesOf(busybox)).length) throw new Error('the guest needs a static busybox (Debian package busybox-static)');
  copyInto(root, busybox, '/bin/busybox');
  const applets = (await run(busybox, ['--list'])).stdout.split('\n').filter((a) => a && a !== 'busybox' && a !== 'ip');
  for (const a of applets) symlinkSync('busybox', join(root, 'bin', a));
  mkdirSync(join(root, 'sbin'));
  symlinkSync('../bin/busybox', join(root, 'sbin/modprobe')); // the kernel's request_module() runs /sbin/modprobe
  const programs = [...PROGRAMS, ...extras.map((name) => [name, EXTRA_PROGRAMS[name]])].map(([name, to]) => [findProgram(name), to]);
  programs.push([process.execPath, '/usr/bin/node']);
  for (const [from, to] of programs) {
    if (!from) throw new Error(`the guest needs ${to.split('/').at(-1)} on this machine`);
    copyInto(root, from, to);
    for (const lib of await librariesOf(from)) if (!existsSync(join(root, lib))) copyInto(root, lib);
  }
  // iptables loads its match and target extensions from beside libxtables (the overlay's FORWARD chain uses these).
  const libxtables = (await librariesOf(findProgram('iptables'))).find((l) => /\/libxtables\.so/.test(l));
  for (const ext of XTABLES_EXTENSIONS) if (libxtables) copyInto(root, join(dirname(realpathSync(libxtables)), 'xtables', ext)); // its real directory: iptables' compiled-in path
  const modules = stageModules(kernelRoot, root, kver);
  await run(busybox, ['depmod', '-b', root, kver]); // modules.dep and modules.alias: nft loads expressions by alias
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'run', 'etc']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(root, 'etc/guest-modules'), `${MODULES.join('\n')}\n`);
  writeFileSync(join(root, 'init'), INIT, { mode: 0o755 });

  log(`IPVS guest: packing the initramfs (kernel ${kver}, ${modules} modules, Node ${process.version})`);
  writeFileSync(join(tmp, 'initrd.cpio'), newcArchive(root));
  await run('zstd', ['-q', '-9', join(tmp, 'initrd.cpio'), '-o', join(tmp, 'initrd.cpio.zst')], { timeoutMs: 300_000 });
  renameSync(join(kernelRoot, 'boot', `vmlinuz-${kver}`), join(tmp, 'vmlinuz'));
  for (const d of [kernelRoot, root, join(tmp, 'initrd.cpio')]) rmSync(d, { recursive: true, force: true });
  writeFileSync(join(tmp, 'image.json'), `${JSON.stringify({ pkg, kver, node: process.version, modules }, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

const BUILD_LOCK = '.build-lock';

/**
 * Runs `fn` holding the cache's build lock (a directory: mkdir is atomic). The guest tests run in parallel processes:
 * without it two builds of one image share its .tmp directory, and a build's eviction deletes another's half-built
 * image. A lock older than any build (its process died) is taken over.
 */
async function underBuildLock(fn) {
  const lock = join(CACHE, BUILD_LOCK);
  mkdirSync(CACHE, { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
      if (since !== undefined && Date.now() - since > 20 * 60_000) rmSync(lock, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * The guest's kernel and initramfs, built on first use (and after any change to this file, the kernel, Node or the
 * extra programs asked for). The two most recently used images are kept: the tests' and a bench's.
 */
export async function ensureGuestImage(log = () => {}, extras = []) {
  const unknown = extras.filter((x) => !(x in EXTRA_PROGRAMS));
  if (unknown.length) throw new Error(`the guest image has no recipe for ${unknown.join(', ')}`);
  const absent = extras.filter((x) => !findProgram(x));
  if (absent.length) throw new Error(`the guest image needs ${absent.join(', ')} on this machine`);
  const recipe = createHash('sha256').update(readFileSync(fileURLToPath(import.meta.url))).update(process.version).update([...extras].sort().join(',')).digest('hex').slice(0, 12);
  let pkg;
  try {
    pkg = await kernelPackage();
  } catch (e) {
    // No package lists (they were cleaned after the first build): the image built then still serves.
    const built = existsSync(CACHE) ? readdirSync(CACHE).find((d) => d.endsWith(`-${recipe}`) && existsSync(join(CACHE, d, 'image.json'))) : undefined;
    if (!built) throw e;
    pkg = built.slice(0, -recipe.length - 1);
  }
  const dir = join(CACHE, `${pkg}-${recipe}`);
  if (!existsSync(join(dir, 'image.json'))) {
    await underBuildLock(async () => {
      if (existsSync(join(dir, 'image.json'))) return; // another process built it meanwhile
      const images = readdirSync(CACHE).filter((d) => d !== 'debs' && d !== BUILD_LOCK).sort((x, y) => statSync(join(CACHE, y)).mtimeMs - statSync(join(CACHE, x)).mtimeMs);
      for (const old of images.slice(1)) rmSync(join(CACHE, old), { recursive: true, force: true });
      await buildImage(dir, pkg, extras, log);
    });
  }
  const now = new Date();
  utimesSync(dir, now, now); // most recently used
  const { kver } = JSON.parse(readFileSync(join(dir, 'image.json'), 'utf8'));
  return { dir, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.cpio.zst'), kver, pkg };
}

/** One ESM file holding `entry` and what it imports (node builtins stay imports). */
export async function bundle(entry) {
  const { build } = await import('esbuild');
  // CommonJS dependencies (pino, under the overlay's logger) require node builtins: give the ESM bundle a require.
  const banner = "import { createRequire as __guestRequire } from 'node:module'; const require = __guestRequire(import.meta.url);";
  const out = await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', write: false, logLevel: 'silent', banner: { js: banner } });
  return out.outputFiles[0].text;
}

/**
 * Boots the guest with `script` as /test/main.mjs (appended as an uncompressed cpio: the kernel unpacks archives
 * one after the other, each starting 4-byte aligned) and returns the serial console's text without \r. Pure
 * emulation (TCG) unless this machine has hardware KVM; the guest has no network link to anything.
 */
export async function bootGuest({ image, script, timeoutSec = 120 }) {
  const tmp = mkdtempSync(join(tmpdir(), 'ipvs-guest-'));
  try {
    mkdirSync(join(tmp, 'payload/test'), { recursive: true });
    writeFileSync(join(tmp, 'payload/test/main.mjs'), script);
    const base = readFileSync(image.initrd);
    const initrd = join(tmp, 'initrd');
    writeFileSync(initrd, Buffer.concat([base, Buffer.alloc((4 - (base.length % 4)) % 4), newcArchive(join(tmp, 'payload'))]));
    const kvm = (existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd')) && existsSync('/dev/kvm');
    const t0 = Date.now();
    const r = await run('timeout', ['-k', '5', String(timeoutSec), ...QEMU, '-accel', kvm ? 'kvm' : 'tcg', '-kernel', image.kernel, '-initrd', initrd,
      '-append', 'console=ttyS0 quiet panic=-1'], { allowFailure: true, timeoutMs: (timeoutSec + 15) * 1000 });
    return { serial: (r.stdout + r.stderr).replaceAll('\r', ''), code: r.code, ms: Date.now() - t0 };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
