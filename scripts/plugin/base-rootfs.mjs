// The plugin's base filesystem: Node.js from this machine and the data-plane tools from Debian packages
// (apt-get download + dpkg -x, no image registry), each with exactly the shared libraries it links (ldd closure).
// Laid out merged-/usr (bin, sbin, lib, lib64 are symlinks into usr/) like Debian 12 itself.
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, rmSync, renameSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { run } from '../lib/proc.mjs';

/** Packages fetched from Debian and the files taken from each (package paths, before the merged-/usr mapping). */
export const TOOL_PACKAGES = {
  iproute2: ['bin/ip', 'sbin/bridge', 'etc/iproute2/'],
  nftables: ['usr/sbin/nft'],
  iptables: ['usr/sbin/xtables-nft-multi', 'usr/sbin/xtables-legacy-multi', 'usr/lib/x86_64-linux-gnu/xtables/'],
  ipvsadm: ['sbin/ipvsadm'],
  conntrack: ['usr/sbin/conntrack'],
  procps: ['sbin/sysctl'],
  'etcd-server': ['usr/bin/etcd'],
  'util-linux': ['usr/bin/nsenter'],
  netbase: ['etc/protocols', 'etc/services', 'etc/ethertypes'],
};

/** iptables front-ends: the nft backend is the default (as on Debian 12); the legacy ones stay reachable by name. */
const XTABLES_LINKS = {
  'xtables-nft-multi': ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore',
    'iptables-nft', 'iptables-nft-save', 'iptables-nft-restore', 'ip6tables-nft', 'ip6tables-nft-save', 'ip6tables-nft-restore'],
  'xtables-legacy-multi': ['iptables-legacy', 'iptables-legacy-save', 'iptables-legacy-restore', 'ip6tables-legacy',
    'ip6tables-legacy-save', 'ip6tables-legacy-restore'],
};

/** Libraries that come from this machine (with Node and the dynamic loader), so one libc serves every binary. */
const HOST_LIB_PACKAGES = new Set(['libc6', 'libgcc-s1', 'gcc-12-base', 'libstdc++6']);

/** Bump when the layout produced here changes, so cached base trees are rebuilt. */
export const BASE_LAYOUT_VERSION = 4;

const MERGED = ['bin', 'sbin', 'lib', 'lib64'];

/** Maps an absolute path to where it lives in a merged-/usr tree: /lib/x/y -> usr/lib/x/y. */
export function mergedPath(abs) {
  const rel = abs.replace(/^\/+/, '');
  const top = rel.split('/')[0];
  return MERGED.includes(top) ? `usr/${rel}` : rel;
}

export function makeSkeleton(root) {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'etc', 'run', 'var/lib', 'var/log']) mkdirSync(join(root, d), { recursive: true });
  for (const d of MERGED) if (!existsSync(join(root, d))) symlinkSync(`usr/${d}`, join(root, d));
}

/** Copies `from` (dereferenced) to `root/rel`, keeping the mode. */
function placeFile(from, root, rel) {
  const to = join(root, rel);
  if (existsSync(to)) return;
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(realpathSync(from), to);
  chmodSync(to, statSync(from).mode & 0o7777);
}

/** Copies a tree from the extracted packages, symlinks kept as symlinks. */
function placeTree(fromDir, root, rel) {
  for (const name of readdirSync(fromDir)) {
    const src = join(fromDir, name);
    const dstRel = join(rel, name);
    const st = lstatSync(src);
    if (st.isDirectory()) placeTree(src, root, dstRel);
    else if (st.isSymbolicLink()) {
      mkdirSync(dirname(join(root, dstRel)), { recursive: true });
      if (!existsSync(join(root, dstRel))) symlinkSync(readlinkSync(src), join(root, dstRel));
    } else placeFile(src, root, dstRel);
  }
}

/**
 * Adds the shared libraries `elf` needs (per ldd, looking in the extracted packages first) to the tree.
 * Returns the number of libraries placed. A missing library is an error naming it.
 */
async function placeLibs(elf, root, extractDir) {
  const libPath = [`${extractDir}/lib/x86_64-linux-gnu`, `${extractDir}/usr/lib/x86_64-linux-gnu`].join(':');
  const r = await run('ldd', [elf], { env: { LD_LIBRARY_PATH: libPath }, allowFailure: true });
  if (r.code !== 0) {
    if (/not a dynamic executable/.test(r.stdout + r.stderr)) return 0;
    throw new Error(`ldd ${elf}: ${(r.stderr || r.stdout).trim()}`);
  }
  let n = 0;
  for (const line of r.stdout.split('\n')) {
    if (/=>\s*not found/.test(line)) throw new Error(`${elf} needs ${line.trim().split(/\s/)[0]}, which neither the downloaded packages nor this machine provide`);
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (!m) continue;
    const lib = m[1];
    const rel = lib.startsWith(`${extractDir}/`) ? mergedPath(lib.slice(extractDir.length)) : mergedPath(lib);
    placeFile(lib, root, rel);
    n++;
  }
  return n;
}

/** Lib packages (recursively) that the tool packages depend on, minus the ones taken from this machine. */
async function libClosure(pkgs) {
  const seen = new Set(pkgs);
  let frontier = [...pkgs];
  while (frontier.length) {
    const r = await run('apt-cache', ['depends', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...frontier]);
    const next = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^\s*\|?(?:Pre)?Depends:\s*([a-z0-9][a-z0-9.+-]*)/.exec(line);
      if (!m || !m[1].startsWith('lib') || seen.has(m[1]) || HOST_LIB_PACKAGES.has(m[1])) continue;
      seen.add(m[1]);
      next.push(m[1]);
    }
    frontier = next;
  }
  return [...seen].sort();
}

/** apt-get download into debDir (a cache shared between builds); runs apt-get update once if a package is unknown. */
async function downloadDebs(pkgs, debDir, log) {
  mkdirSync(debDir, { recursive: true });
  // apt drops privileges to _apt while downloading; let it write here (else it warns and downloads as root).
  chmodSync(debDir, 0o777);
  const have = new Set(readdirSync(debDir).filter((f) => f.endsWith('.deb')).map((f) => f.split('_')[0]));
  const missing = pkgs.filter((p) => !have.has(p));
  if (!missing.length) return;
  log(`downloading ${missing.length} Debian packages (apt-get download)`);
  const dl = () => run('apt-get', ['download', '-q', ...missing], { cwd: debDir, allowFailure: true });
  let r = await dl();
  if (r.code !== 0 && /Unable to locate|no installation candidate|Can't select/i.test(r.stderr)) {
    log('apt package lists are missing or stale: apt-get update');
    await run('apt-get', ['update', '-q']);
    r = await dl();
  }
  if (r.code !== 0) throw new Error(`apt-get download ${missing.join(' ')} failed:\n${r.stderr.trim()}`);
}

/**
 * Builds the base tree (node + tools + their libraries) at `out` unless it exists. Atomic: a half-built tree
 * is never left under `out`. Returns a short summary.
 */
export async function buildBase({ out, debDir, nodeBin, log }) {
  if (existsSync(join(out, '.complete'))) return { cached: true };
  const started = Date.now();
  const tmp = `${out}.tmp-${process.pid}`;
  const extract = `${tmp}-deb`;
  rmSync(tmp, { recursive: true, force: true });
  rmSync(extract, { recursive: true, force: true });
  try {
    const tools = Object.keys(TOOL_PACKAGES);
    const pkgs = await libClosure(tools);
    await downloadDebs(pkgs, debDir, log);
    log(`extracting ${pkgs.length} packages`);
    mkdirSync(extract, { recursive: true });
    const debs = readdirSync(debDir).filter((f) => f.endsWith('.deb'));
    for (const p of pkgs) {
      // Newest file of that package name (a cache may hold several versions).
      const file = debs.filter((f) => f.split('_')[0] === p).sort().pop();
      await run('dpkg-deb', ['-x', join(debDir, file), extract]);
    }

    makeSkeleton(tmp);
    const elves = [];
    for (const [pkg, paths] of Object.entries(TOOL_PACKAGES)) {
      for (const p of paths) {
        const src = join(extract, p);
        if (!existsSync(src)) throw new Error(`package ${pkg} no longer ships ${p}; update TOOL_PACKAGES in scripts/plugin/base-rootfs.mjs`);
        const dst = mergedPath(`/${p}`).replace(/\/$/, '');
        if (p.endsWith('/')) {
          placeTree(src, tmp, dst);
          if (p.includes('xtables')) elves.push(...readdirSync(src).filter((f) => f.endsWith('.so')).map((f) => join(src, f)));
        } else {
          placeFile(src, tmp, dst);
          if (!p.startsWith('etc/')) elves.push(src);
        }
      }
    }
    for (const [multi, names] of Object.entries(XTABLES_LINKS)) {
      for (const n of names) symlinkSync(multi, join(tmp, 'usr/sbin', n));
    }
    symlinkSync('../bin/ip', join(tmp, 'usr/sbin/ip')); // Debian has both /bin/ip and /sbin/ip
    // Debian's node loads this bundle at start (and warns when it is missing); etcd over TLS may use public CAs.
    const caBundle = '/etc/ssl/certs/ca-certificates.crt';
    mkdirSync(join(tmp, 'etc/ssl/certs'), { recursive: true });
    if (existsSync(caBundle)) placeFile(caBundle, tmp, caBundle.slice(1));
    else writeFileSync(join(tmp, caBundle.slice(1)), '');

    placeFile(nodeBin, tmp, 'usr/bin/node');
    elves.push(nodeBin);
    let libs = 0;
    for (const elf of elves) libs += await placeLibs(elf, tmp, extract);
    writeFileSync(join(tmp, '.complete'), `${JSON.stringify({ packages: pkgs, node: nodeBin }, null, 1)}\n`);
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    log(`base filesystem ready: ${elves.length} binaries/modules, ${libs} library references, ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { cached: false, packages: pkgs };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(extract, { recursive: true, force: true });
  }
}
