#!/usr/bin/env node
// Builds the managed Docker plugin (build/plugin/config.json + rootfs/) from this checkout and optionally
// creates it on Docker hosts. Incremental: a re-run with nothing changed only compares fingerprints.
//
//   node scripts/build-plugin.mjs [--dir build/plugin]                       build only
//   node scripts/build-plugin.mjs --host unix:///run/x.sock [--host …] [--name swarmnet:latest] [--force]
//        [--set KEY=VALUE …] [--enable]                                      build, then create on each host
//   --skip-compile packages dist/ as it is (no npm ci / npm run build)
//
// Library use (the sandbox): import { buildPlugin, createPlugin } from './build-plugin.mjs'.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BASE_LAYOUT_VERSION, TOOL_PACKAGES, buildBase } from './plugin/base-rootfs.mjs';
import { run } from './lib/proc.mjs';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_DIR = join(REPO, 'build/plugin');
export const DEFAULT_NAME = 'swarmnet:latest';
const CACHE = join(REPO, 'build/.cache/plugin');
/** Compiled code shipped in the plugin (dist/ minus tests, benchmarks and scripts). */
const APP_DIRS = ['plugin', 'flannel', 'dns', 'lb', 'hook', 'ops', 'common'];
/** Where the app lives inside the plugin; config.json's entrypoint points here. */
const APP_ROOT = 'opt/swarmnet';
/** Bump when prodModules() changes what it keeps. */
const MODULES_LAYOUT_VERSION = 2;

const defaultLog = (msg) => process.stderr.write(`build-plugin: ${msg}\n`);
const sha = (...parts) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);

/** (path, size, mtime) of every file under dir, as one hash: cheap change detection. */
function treeFingerprint(dir, filter = () => true) {
  const h = createHash('sha256');
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (filter(p)) {
        const st = statSync(p);
        h.update(`${p}\0${st.size}\0${st.mtimeMs}\n`);
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return h.digest('hex').slice(0, 16);
}

function newestMtime(dirs, filter) {
  let newest = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (filter(p)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of dirs) if (existsSync(d)) walk(d);
  return newest;
}

/** Serialises builds of the same checkout (the sandbox may start several at once). Stale locks of dead processes are taken over. */
async function withLock(fn, log) {
  mkdirSync(CACHE, { recursive: true });
  const lock = join(CACHE, 'lock');
  for (let waited = 0; ; waited++) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let owner = NaN;
      try { owner = Number(readFileSync(join(lock, 'pid'), 'utf8')); } catch { /* being written or removed */ }
      let alive = false;
      if (owner > 0) try { process.kill(owner, 0); alive = true; } catch { alive = false; }
      if (!alive && (owner > 0 || waited > 5)) { rmSync(lock, { recursive: true, force: true }); continue; }
      if (waited === 0) log(`waiting for another build (pid ${owner || '?'}) to finish`);
      if (waited > 1800) throw new Error(`build lock ${lock} held for 15 minutes by pid ${owner}; remove it if that process is gone`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** npm ci for a fresh clone, npm run build when a source is newer than dist/. */
async function ensureDist(log) {
  if (!existsSync(join(REPO, 'node_modules/.package-lock.json'))) {
    log('node_modules missing: npm ci');
    await run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: REPO, inherit: true });
  }
  const main = join(REPO, 'dist/plugin/main.js');
  const srcNewest = Math.max(
    newestMtime(APP_DIRS.map((d) => join(REPO, d)), (p) => p.endsWith('.ts')),
    statSync(join(REPO, 'tsconfig.json')).mtimeMs,
  );
  if (!existsSync(main) || statSync(main).mtimeMs < srcNewest) {
    log('dist/ missing or older than the sources: npm run build');
    const t = Date.now();
    await run('npm', ['run', '--silent', 'build'], { cwd: REPO, inherit: true });
    log(`compiled in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  if (!existsSync(main)) throw new Error('npm run build did not produce dist/plugin/main.js');
}

/** Production node_modules (no dev dependencies, no install scripts), cached per package-lock.json. */
async function prodModules(log) {
  const lock = readFileSync(join(REPO, 'package-lock.json'), 'utf8');
  const key = sha('modules', MODULES_LAYOUT_VERSION, lock);
  const out = join(CACHE, `modules-${key}`);
  if (existsSync(join(out, 'node_modules/.package-lock.json'))) return { key, dir: join(out, 'node_modules') };
  log('installing production dependencies (npm ci --omit=dev)');
  const t = Date.now();
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  copyFileSync(join(REPO, 'package.json'), join(tmp, 'package.json'));
  writeFileSync(join(tmp, 'package-lock.json'), lock);
  try {
    // --ignore-scripts: the only install script in the tree builds ssh2's optional native cpu-features, unused here.
    await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: tmp });
    // Nothing Node loads at run time: type declarations, TypeScript sources, source maps, docs (about a third of the size).
    await run('find', [join(tmp, 'node_modules'), '-type', 'f', '(', '-name', '*.ts', '-o', '-name', '*.d.cts', '-o', '-name', '*.d.mts',
      '-o', '-name', '*.map', '-o', '-name', '*.md', ')', '-delete']);
    rmSync(join(tmp, 'node_modules/@types'), { recursive: true, force: true });
    for (const old of readdirSync(CACHE).filter((f) => f.startsWith('modules-') && !f.includes('.tmp-'))) rmSync(join(CACHE, old), { recursive: true, force: true });
    renameSync(tmp, out);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  log(`production dependencies installed in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return { key, dir: join(out, 'node_modules') };
}

async function copyTree(from, to) {
  // Hard links where possible (same filesystem): fast and no extra space; the cache is never modified in place.
  const r = await run('cp', ['-al', `${from}/.`, to], { allowFailure: true });
  if (r.code !== 0) await run('cp', ['-a', `${from}/.`, to]);
}

function writeFiles(root) {
  const files = {
    'etc/hosts': '127.0.0.1\tlocalhost\n', // replaced by the host's file (network type host)
    'etc/resolv.conf': '', // replaced by the host's file (network type host)
    'etc/passwd': 'root:x:0:0:root:/root:/usr/sbin/nologin\n',
    'etc/group': 'root:x:0:\n',
    'etc/nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n',
  };
  for (const [rel, text] of Object.entries(files)) {
    rmSync(join(root, rel), { force: true });
    writeFileSync(join(root, rel), text);
  }
  // The CLI from the plugin's own files, run on the host (docs/operations.md, host tools): this rootfs's node with
  // this rootfs's loader and libraries, wherever Docker keeps the rootfs. `swarmnet host install` links the host to it.
  mkdirSync(join(root, APP_ROOT, 'bin'), { recursive: true });
  writeFileSync(join(root, APP_ROOT, 'bin/swarmnet'), `#!/bin/sh
# swarmnet CLI from the plugin's rootfs, for the host: its own node, loader and libraries.
root=$(cd "$(dirname "$0")/../../.." && pwd -P) || exit 2
exec "$root/lib64/ld-linux-x86-64.so.2" --library-path "$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu" "$root/usr/bin/node" "$root/${APP_ROOT}/dist/plugin/cli.js" "$@"
`, { mode: 0o755 });
  // Mount points and writable dirs the manifest and the daemon expect.
  for (const d of ['tmp', 'root', 'run/docker/plugins', 'run/docker/netns', 'run/netns', 'var/lib/swarmnet']) mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  rmSync(join(root, 'var/run'), { recursive: true, force: true });
  symlinkSync('../run', join(root, 'var/run'));
}

function nodeBinary() {
  const p = realpathSync(existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath);
  const st = statSync(p);
  return { path: p, fp: `${p}:${st.size}:${st.mtimeMs}` };
}

/**
 * Builds `dir`/config.json and `dir`/rootfs. Returns { dir, rebuilt, seconds }.
 * compile: false packages dist/ as it is (no npm ci / npm run build).
 * Safe to call concurrently and repeatedly; a run with nothing changed takes well under a second.
 */
export async function buildPlugin({ dir = DEFAULT_DIR, compile = true, log = defaultLog } = {}) {
  const out = isAbsolute(dir) ? dir : resolve(process.cwd(), dir);
  const started = Date.now();
  return withLock(async () => {
    if (compile) await ensureDist(log);
    else if (!existsSync(join(REPO, 'dist/plugin/main.js'))) throw new Error('dist/plugin/main.js missing: run npm run build (or drop --skip-compile)');
    const node = nodeBinary();
    const baseKey = sha('base', BASE_LAYOUT_VERSION, JSON.stringify(TOOL_PACKAGES), node.fp);
    const modules = await prodModules(log);
    const distFp = treeFingerprint(join(REPO, 'dist'), (p) => APP_DIRS.some((d) => p.startsWith(join(REPO, 'dist', d) + '/')));
    const manifest = readFileSync(join(REPO, 'config.json'), 'utf8');
    JSON.parse(manifest); // a broken manifest fails here, not at `docker plugin create`
    const scripts = sha(...['build-plugin.mjs', 'plugin/base-rootfs.mjs'].map((f) => readFileSync(join(REPO, 'scripts', f), 'utf8')));
    const stamp = JSON.stringify({ baseKey, modules: modules.key, distFp, manifest: sha(manifest), pkg: sha(readFileSync(join(REPO, 'package.json'), 'utf8')), scripts });
    const stampFile = join(out, '.build-stamp');
    if (existsSync(join(out, 'rootfs', APP_ROOT, 'dist/plugin/main.js')) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
      log(`up to date: ${out}`);
      return { dir: out, rebuilt: false, seconds: (Date.now() - started) / 1000, version: builtVersion(out) };
    }

    const base = join(CACHE, `base-${baseKey}`);
    if (!existsSync(join(base, '.complete'))) {
      log('building the base filesystem (node, iproute2, nftables, iptables, ipvsadm, etcd, nsenter)');
      await buildBase({ out: base, debDir: join(CACHE, 'debs'), nodeBin: node.path, log });
      for (const old of readdirSync(CACHE).filter((f) => f.startsWith('base-') && f !== `base-${baseKey}` && !f.includes('.tmp-'))) rmSync(join(CACHE, old), { recursive: true, force: true });
    }

    log(`assembling ${out}/rootfs`);
    mkdirSync(out, { recursive: true });
    const tmp = join(out, `rootfs.tmp-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    try {
      mkdirSync(tmp);
      await copyTree(base, tmp);
      rmSync(join(tmp, '.complete'), { force: true });
      writeFiles(tmp);
      const app = join(tmp, APP_ROOT);
      mkdirSync(join(app, 'node_modules'), { recursive: true });
      await copyTree(modules.dir, join(app, 'node_modules'));
      const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
      // "type": "module" makes node load dist/*.js as ES modules.
      // The build id makes each build's version distinct (`swarmnet status` shows which build each node runs).
      writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: pkg.name, version: `${pkg.version}+${buildIdOf(stamp)}`, private: true, type: pkg.type }, null, 2)}\n`);
      mkdirSync(join(app, 'dist'), { recursive: true });
      for (const d of APP_DIRS) if (existsSync(join(REPO, 'dist', d))) await run('cp', ['-a', join(REPO, 'dist', d), join(app, 'dist')]);
      await run('find', [join(app, 'dist'), '-name', '*.map', '-delete']);
      rmSync(join(out, 'rootfs'), { recursive: true, force: true });
      renameSync(tmp, join(out, 'rootfs'));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    writeFileSync(join(out, 'config.json'), manifest);
    writeFileSync(stampFile, stamp);
    const du = await run('du', ['-sm', join(out, 'rootfs')]);
    const seconds = (Date.now() - started) / 1000;
    log(`built ${out} (rootfs ${du.stdout.split('\t')[0]} MB) in ${seconds.toFixed(1)} s`);
    return { dir: out, rebuilt: true, seconds, version: builtVersion(out) };
  }, log);
}

const buildIdOf = (stamp) => sha(stamp).slice(0, 10);

/** The version a built plugin reports (package version + build id), e.g. 0.1.0+3fa9c0b2d1. */
export function builtVersion(dir = DEFAULT_DIR) {
  return JSON.parse(readFileSync(join(dir, 'rootfs', APP_ROOT, 'package.json'), 'utf8')).version;
}

/** A registry tag for a version: tags allow [A-Za-z0-9_.-] only. */
export const tagOf = (version) => version.replace(/[^A-Za-z0-9_.-]/g, '-');

const docker = (host, args, opts) => run('docker', ['-H', host, ...args], opts);

/**
 * Publishes the built `dir` as `ref` (<registry>/<name>:<tag>) through the Docker host `host`: create, push, and
 * remove the local copy (the host installs it from the registry like every other node). Returns { ref, seconds }.
 */
export async function pushPlugin({ dir = DEFAULT_DIR, host, ref, log = defaultLog }) {
  const t = Date.now();
  if ((await pluginState({ host, name: ref })) !== undefined) await docker(host, ['plugin', 'rm', '--force', ref]);
  await docker(host, ['plugin', 'create', ref, dir]);
  try {
    await docker(host, ['plugin', 'push', ref], { timeoutMs: 300_000 });
  } finally {
    await docker(host, ['plugin', 'rm', '--force', ref], { allowFailure: true });
  }
  const seconds = (Date.now() - t) / 1000;
  log(`pushed ${ref} in ${seconds.toFixed(1)} s`);
  return { ref, seconds };
}

/**
 * What users run on each node: `docker plugin install --alias <alias> --grant-all-permissions --disable <remote>`,
 * `docker plugin set`, `docker plugin enable`. For a unix:// host the state directory is chosen and created as in
 * createPlugin. Returns { name, installSeconds, enableSeconds }.
 */
export async function installPlugin({ host, remote, alias = 'swarmnet', settings = {}, enable = true, log = defaultLog }) {
  const name = alias.includes(':') ? alias : `${alias}:latest`;
  if ((await pluginState({ host, name })) !== undefined) throw new Error(`plugin ${name} is already installed on ${host}`);
  const t = Date.now();
  await docker(host, ['plugin', 'install', '--alias', alias, '--grant-all-permissions', '--disable', remote], { timeoutMs: 300_000 });
  const installSeconds = (Date.now() - t) / 1000;
  log(`${host}: installed in ${installSeconds.toFixed(1)} s`);
  // The manifest's default state directory is the repository's config.json's.
  const { enableSeconds } = await configure({ host, name, settings, enable, manifestDir: REPO, log });
  return { name, installSeconds, enableSeconds };
}

/**
 * `docker plugin upgrade` as the docs tell users: disable (forced: networks are in use), upgrade to `remote`, enable.
 * Settings and the alias stay. Returns { seconds } (disable to enabled: the time the node's plugin was away).
 */
export async function upgradePlugin({ host, name = DEFAULT_NAME, remote, log = defaultLog }) {
  const t = Date.now();
  // Docker 20.10 lists the mount sources set with `docker plugin set` after an upgrade but mounts the manifest's
  // defaults (enable then fails on a source that does not exist): set them again (measured; harmless on 28).
  const mounts = JSON.parse((await docker(host, ['plugin', 'inspect', '--format', '{{json .Settings.Mounts}}', name])).stdout) ?? [];
  await docker(host, ['plugin', 'disable', '--force', name]);
  // --skip-remote-check: for any other tag the CLI asks "Plugin images do not match, are you sure?", and without a
  // terminal the 20.10 CLI takes that as no and exits 0 without upgrading.
  await docker(host, ['plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', name, remote], { timeoutMs: 300_000 });
  const pairs = mounts.filter((m) => m.Name && m.Source).map((m) => `${m.Name}.source=${m.Source}`);
  if (pairs.length) await docker(host, ['plugin', 'set', name, ...pairs]);
  await docker(host, ['plugin', 'enable', name]);
  const seconds = (Date.now() - t) / 1000;
  log(`${host}: upgraded to ${remote} in ${seconds.toFixed(1)} s`);
  return { seconds };
}

/** Enabled state of plugin `name` on `host`: true/false, or undefined when it is not installed. */
export async function pluginState({ host, name = DEFAULT_NAME }) {
  const r = await docker(host, ['plugin', 'inspect', '--format', '{{.Enabled}}', name], { allowFailure: true });
  if (r.code !== 0) {
    if (/not found|No such plugin/i.test(r.stderr)) return undefined;
    throw new Error(`docker -H ${host} plugin inspect ${name}: ${r.stderr.trim()}`);
  }
  return r.stdout.trim() === 'true';
}

/**
 * State directory for a daemon on this machine: the manifest's default for the machine's main daemon (data root
 * /var/lib/docker); `<data root>/swarmnet-state` for any other, so several daemons on one machine (the sandbox)
 * never share one (each node's plugin keeps its own record of kernel objects there).
 */
async function localStateSource(host, dir) {
  const manifestDefault = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).mounts.find((m) => m.name === 'state').source;
  const r = await docker(host, ['info', '--format', '{{.DockerRootDir}}'], { allowFailure: true });
  const root = r.stdout.trim();
  if (r.code !== 0) throw new Error(`docker -H ${host} info: ${r.stderr.trim()}`);
  return root === '' || root === '/var/lib/docker' ? manifestDefault : join(root, 'swarmnet-state');
}

/**
 * Creates plugin `name` on Docker host `host` from the built `dir`. An existing disabled plugin of that name is
 * replaced; an enabled one only with force (it is disabled first). `settings` ({KEY: value}, env names or
 * `<mount>.source`) are applied with `docker plugin set`, then the plugin is enabled if `enable`.
 * For a unix:// host without a `state.source` setting, the state directory is chosen by localStateSource() and
 * created if missing.
 * Returns { host, name, replaced, enabled, enableSeconds, stateSource }.
 */
export async function createPlugin({ dir = DEFAULT_DIR, host, name = DEFAULT_NAME, force = false, settings = {}, enable = false, log = defaultLog } = {}) {
  if (!host) throw new Error('createPlugin: host is required (e.g. unix:///var/run/docker.sock)');
  const out = isAbsolute(dir) ? dir : resolve(process.cwd(), dir);
  if (!existsSync(join(out, 'config.json')) || !existsSync(join(out, 'rootfs'))) {
    throw new Error(`${out} has no config.json and rootfs/: run buildPlugin first (node scripts/build-plugin.mjs --dir ${dir})`);
  }
  const state = await pluginState({ host, name });
  if (state === true) {
    if (!force) throw new Error(`plugin ${name} is enabled on ${host}; refusing to replace it (disable it first, or pass --force)`);
    log(`${host}: disabling enabled plugin ${name} (--force)`);
    await docker(host, ['plugin', 'disable', '--force', name]);
  }
  if (state !== undefined) {
    log(`${host}: removing existing plugin ${name}`);
    await docker(host, ['plugin', 'rm', '--force', name]);
  }
  log(`${host}: docker plugin create ${name}`);
  const t = Date.now();
  await docker(host, ['plugin', 'create', name, out]);
  log(`${host}: created in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const { enableSeconds, stateSource } = await configure({ host, name, settings, enable, manifestDir: out, log });
  return { host, name, replaced: state !== undefined, enabled: enable, enableSeconds, stateSource };
}

/**
 * `docker plugin set` and, if `enable`, `docker plugin enable` for a created or installed plugin. Bind-mount sources
 * must exist: for a daemon on this machine the state directory is chosen (localStateSource) and created (0700);
 * remote hosts are the operator's job (docs/install.md).
 */
async function configure({ host, name, settings, enable, manifestDir, log }) {
  const applied = { ...settings };
  if (host.startsWith('unix://')) {
    applied['state.source'] ??= await localStateSource(host, manifestDir);
    mkdirSync(applied['state.source'], { recursive: true, mode: 0o700 });
  }
  const pairs = Object.entries(applied).map(([k, v]) => `${k}=${v}`);
  if (pairs.length) await docker(host, ['plugin', 'set', name, ...pairs]);
  let enableSeconds;
  if (enable) {
    const e = Date.now();
    await docker(host, ['plugin', 'enable', name]);
    enableSeconds = (Date.now() - e) / 1000;
    log(`${host}: enabled in ${enableSeconds.toFixed(1)} s`);
  }
  return { enableSeconds, stateSource: applied['state.source'] };
}

function parseSet(list) {
  const settings = {};
  for (const s of list) {
    const i = s.indexOf('=');
    if (i <= 0) throw new Error(`--set expects KEY=VALUE, got ${JSON.stringify(s)}`);
    settings[s.slice(0, i)] = s.slice(i + 1);
  }
  return settings;
}

async function main(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string', default: DEFAULT_DIR },
      host: { type: 'string', multiple: true, default: [] },
      name: { type: 'string', default: DEFAULT_NAME },
      force: { type: 'boolean', default: false },
      set: { type: 'string', multiple: true, default: [] },
      enable: { type: 'boolean', default: false },
      'skip-compile': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`usage: node scripts/build-plugin.mjs [--dir DIR] [--host URL ... [--name NAME] [--force] [--set KEY=VALUE ...] [--enable]]
  --dir DIR       output directory (default build/plugin): DIR/config.json and DIR/rootfs/
  --host URL      after building, create the plugin on this Docker host (repeatable), e.g. unix:///var/run/docker.sock
  --name NAME     plugin name (default ${DEFAULT_NAME})
  --force         replace the plugin even if it is enabled (it is disabled first)
  --set KEY=VALUE docker plugin set after creating (repeatable)
  --enable        docker plugin enable after creating
  --skip-compile  package dist/ as it is (no npm ci / npm run build)
`);
    return;
  }
  const settings = parseSet(values.set);
  if (!values.host.length && (values.force || values.enable || values.set.length)) throw new Error('--force, --set and --enable need --host');
  const built = await buildPlugin({ dir: values.dir, compile: !values['skip-compile'] });
  for (const host of values.host) await createPlugin({ dir: built.dir, host, name: values.name, force: values.force, settings, enable: values.enable });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`build-plugin: error: ${e.message}\n`);
    process.exit(1);
  });
}
