#!/usr/bin/env node
// Runs `npm test` the way a fresh machine of ours sees it: a Debian 12 root made from Debian packages
// (mmdebstrap, variant minbase) plus exactly what our machines come with — ca-certificates, python3, make, g++, git
// from Debian, Node 20 + npm and the docker CLI copied from this host — entered with its own mount, PID, UTS and IPC
// namespaces (fresh /proc, /sys + cgroup hierarchies, /dev, /run, /tmp) and pivot_root. It shares the host's network
// namespace: it must reach the Debian mirror and the npm registry. See docs/testing.md.
//
//   node scripts/fresh-root.mjs build [--dir D] [--force]     make (or refresh) the cached root in D/base
//   node scripts/fresh-root.mjs test  [--dir D] [--repo R] [--skip-e2e] [--reuse] [--worktree]
//        copy D/base to D/run, git clone R's committed HEAD into /root/swarmnet, run `CI=true bash .ci/run` there.
//        --skip-e2e: SWARMNET_SKIP_E2E=1 (no sandbox swarm); --reuse: keep D/run from the last run (packages and
//        all: not fresh); --worktree: also apply R's uncommitted changes and untracked files (check a change
//        before committing it)
//   node scripts/fresh-root.mjs test --sandbox E [...]        instead of the suite: `npm run sandbox -- up --docker E`
//        (the README's other command, demo included), then `npm run sandbox -- down`
//   node scripts/fresh-root.mjs shell [--dir D]               a login shell in D/run as the last test left it
//   node scripts/fresh-root.mjs clean [--dir D]               remove D
//
// Root only. Argument arrays only (no shell strings). Every mount is made inside the private mount namespace and
// vanishes with it; `test` checks the host's mount table afterwards.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmdirSync,
  rmSync, writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePackages } from './lab/prereqs.mjs';
import { isAlive, run, startTime, systemPath } from './lib/proc.mjs';

const SELF = fileURLToPath(import.meta.url);
const REPO_DEFAULT = resolve(dirname(SELF), '..');
const DIR_DEFAULT = '/var/lib/swarmnet-fresh-root';
const SUITE = 'bookworm';
const VARIANT = 'minbase';
// What a fresh machine of ours has from Debian (besides Node, npm and the docker CLI, copied from the host below).
const INCLUDE = ['ca-certificates', 'python3', 'make', 'g++', 'git'];
const HOST_SOURCES = '/etc/apt/sources.list.d/debian.sources';
const HOST_DOCKER_CLI = '/usr/local/bin/docker';
const CLONE = '/root/swarmnet';
const ROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
// Bump when the base layer (mmdebstrap step) changes meaning, so cached roots are rebuilt.
const RECIPE = 1;

const log = (m) => console.log(`fresh-root: ${m}`);
function die(m) {
  console.error(`fresh-root: ${m}`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = { dir: DIR_DEFAULT, repo: REPO_DEFAULT, skipE2e: false, reuse: false, force: false, worktree: false, sandbox: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i] ?? die(`${a} needs a value`);
    if (a === '--dir') o.dir = resolve(val());
    else if (a === '--repo') o.repo = resolve(val());
    else if (a === '--skip-e2e') o.skipE2e = true;
    else if (a === '--reuse') o.reuse = true;
    else if (a === '--force') o.force = true;
    else if (a === '--worktree') o.worktree = true;
    else if (a === '--sandbox') o.sandbox = val();
    else die(`unknown argument ${a}`);
  }
  if (o.dir === '/' || o.dir.split('/').filter(Boolean).length < 2) die(`--dir ${o.dir}: use a directory at least two levels deep`);
  return o;
}

const paths = (dir) => ({ base: join(dir, 'base'), stamp: join(dir, 'base.json'), run: join(dir, 'run'), tmp: join(dir, 'base.new') });

/** Host mounts at or below dir (there must be none outside a `test`/`shell` run). */
function hostMountsUnder(dir) {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4].replace(/\\040/g, ' '))
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`));
}

/** rm -rf, refusing if anything is mounted below (a leaked /dev or /proc bind would be removed through). */
async function removeTree(path) {
  if (!existsSync(path)) return;
  const mounted = hostMountsUnder(path);
  if (mounted.length) die(`refusing to remove ${path}: still mounted: ${mounted.join(', ')}`);
  await run('rm', ['-rf', '--one-file-system', path]);
}

function which(bin) {
  for (const d of systemPath().split(':')) {
    const p = join(d, bin);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** The package directory (has package.json) that contains file — npm's or corepack's install root. */
function packageRoot(file) {
  for (let d = dirname(file); d !== '/'; d = dirname(d)) if (existsSync(join(d, 'package.json'))) return d;
  return undefined;
}

/**
 * One fresh-root at a time per D: the mounts of a running `test` are invisible from the host (private namespace),
 * so a second `test` or `clean` would delete the tree under it.
 */
function lock(dir) {
  const file = join(dir, 'lock.json');
  mkdirSync(dir, { recursive: true });
  if (existsSync(file)) {
    const { pid, start } = JSON.parse(readFileSync(file, 'utf8'));
    if (isAlive(pid, start)) die(`${dir} is in use by fresh-root pid ${pid}`);
  }
  writeFileSync(file, JSON.stringify({ pid: process.pid, start: startTime(process.pid) }));
  process.on('exit', () => { try { if (existsSync(file)) rmSync(file); } catch { /* gone with the directory */ } });
}

const sha = (s) => createHash('sha256').update(s).digest('hex').slice(0, 16);

// ---------------------------------------------------------------------------------------------------------- build

async function build(o) {
  const p = paths(o.dir);
  mkdirSync(o.dir, { recursive: true });
  if (!existsSync(HOST_SOURCES)) die(`${HOST_SOURCES} missing: it names the Debian mirror`);
  const sources = readFileSync(HOST_SOURCES, 'utf8');
  const key = sha(JSON.stringify({ RECIPE, SUITE, VARIANT, INCLUDE, sources }));
  const stamp = existsSync(p.stamp) ? JSON.parse(readFileSync(p.stamp, 'utf8')) : {};
  const t0 = Date.now();

  if (o.force || stamp.key !== key || !existsSync(p.base)) {
    await ensurePackages(log, 'fresh-root'); // mmdebstrap, from the one prerequisite list
    await removeTree(p.tmp);
    log(`mmdebstrap ${SUITE} (${VARIANT} + ${INCLUDE.join(' ')}) from ${HOST_SOURCES}`);
    // A file as MIRROR: its content (deb822 here) becomes the root's apt sources.
    await run('mmdebstrap', ['--mode=root', '--format=directory', `--variant=${VARIANT}`, `--include=${INCLUDE.join(',')}`,
      SUITE, p.tmp, HOST_SOURCES], { inherit: true });
    await removeTree(p.base);
    renameSync(p.tmp, p.base);
    writeFileSync(p.stamp, `${JSON.stringify({ key, built: new Date().toISOString() }, null, 2)}\n`);
    log(`debian base built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } else {
    log(`debian base cached (${stamp.built}); --force rebuilds it`);
  }
  await configure(p.base);
  log(`root ready in ${p.base} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

/** The layer over the Debian base, redone on every build (cheap, idempotent): apt + DNS config, Node, npm, docker. */
async function configure(root) {
  // apt sources exactly as the host's, and the host's resolver.
  // (mmdebstrap wrote the same sources as sources.list.d/0000debian.sources: apt would warn about duplicates.)
  const listDir = join(root, 'etc/apt/sources.list.d');
  mkdirSync(listDir, { recursive: true });
  const stale = [join(root, 'etc/apt/sources.list'), ...readdirSync(listDir).map((f) => join(listDir, f))];
  await run('rm', ['-f', ...stale]);
  copyFileSync(HOST_SOURCES, join(listDir, 'debian.sources'));
  await run('rm', ['-f', join(root, 'etc/resolv.conf')]);
  writeFileSync(join(root, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'), { mode: 0o644 });
  // The machine image's own apt settings for this network's package registry (not from any package): e.g. it serves
  // suites whose Release files are past their Valid-Until, and says so here; our machines all have them.
  const confDir = '/etc/apt/apt.conf.d';
  for (const f of readdirSync(confDir)) {
    if (spawnSync('dpkg-query', ['-S', join(confDir, f)], { stdio: 'ignore' }).status === 0) continue; // a package's
    copyFileSync(join(confDir, f), join(root, confDir, f));
    log(`apt setting of this machine image: ${join(confDir, f)}`);
  }
  writeFileSync(join(root, 'etc/hostname'), 'fresh-root\n');
  if (!existsSync(join(root, 'etc/hosts'))) writeFileSync(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');

  // The root shares the host's network namespace: a daemon a package starts on installation (docker.io's dockerd,
  // etcd-server's etcd) would take the host's ports, bridges and firewall. On a real fresh machine systemd starts
  // them; here invoke-rc.d / deb-systemd-invoke are told no (exit 101 = action forbidden).
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\n# fresh-root: no services start in this root (shared network namespace)\nexit 101\n', { mode: 0o755 });

  // This network's TLS egress CA (not a project dependency: every machine on this network has it). Without it npm
  // cannot reach the registry through the intercepting proxy.
  const caDir = '/usr/local/share/ca-certificates';
  const cas = existsSync(caDir) ? readdirSync(caDir).filter((f) => f.endsWith('.crt')) : [];
  if (cas.length) {
    mkdirSync(join(root, caDir), { recursive: true });
    for (const f of cas) copyFileSync(join(caDir, f), join(root, caDir, f));
    await run('chroot', [root, 'update-ca-certificates']);
    for (const rc of ['/etc/npmrc', '/usr/etc/npmrc']) {
      if (existsSync(rc) && /^\s*cafile\s*=\s*\S+\s*$/.test(readFileSync(rc, 'utf8'))) {
        mkdirSync(join(root, dirname(rc)), { recursive: true });
        copyFileSync(rc, join(root, rc));
      }
    }
    log(`site CA certificates: ${cas.join(' ')} (+ npm cafile)`);
  }

  // Node 20: the binary, its headers (part of every Node install; build-native.mjs compiles against them) and the
  // npm and corepack that come with it, at the same paths as on the host.
  if (!process.version.startsWith('v20.')) die(`host node is ${process.version}; the fresh machine has Node 20`);
  const node = realpathSync(process.execPath);
  const prefix = dirname(dirname(node));
  await copyPath(node, root);
  if (existsSync(join(prefix, 'include/node'))) await copyPath(join(prefix, 'include/node'), root);
  for (const bin of ['npm', 'npx', 'corepack']) {
    const link = which(bin);
    if (!link) { if (bin !== 'corepack') die(`${bin} not found on the host`); continue; }
    const pkg = packageRoot(realpathSync(link));
    if (!pkg) die(`cannot find the package ${bin} belongs to (${realpathSync(link)})`);
    await copyPath(pkg, root);
    await copyPath(link, root); // the symlink itself, e.g. /usr/bin/npm -> ../lib/node_modules/npm/bin/npm-cli.js
  }
  // The docker CLI (static), no engine.
  if (!existsSync(HOST_DOCKER_CLI)) die(`${HOST_DOCKER_CLI} missing on the host`);
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
  await run('cp', ['-a', '--dereference', HOST_DOCKER_CLI, join(root, 'usr/local/bin/docker')]);

  const v = async (args) => (await run('chroot', [root, ...args], { env: { PATH: ROOT_PATH } })).stdout.trim().split('\n')[0];
  const versions = { node: await v(['node', '--version']), npm: await v(['npm', '--version']),
    docker: await v(['docker', '--version']), python3: await v(['python3', '--version']), gxx: await v(['g++', '--version']),
    git: await v(['git', '--version']), make: await v(['make', '--version']) };
  if (!versions.node.startsWith('v20.')) die(`node in the root reports ${versions.node}`);
  log(`in the root: ${Object.entries(versions).map(([k, s]) => `${k} ${s}`).join(' | ')}`);
}

/** Copies a host path (file, directory or symlink, not followed) to the same path inside root. */
async function copyPath(path, root) {
  const dest = join(root, path);
  mkdirSync(dirname(dest), { recursive: true });
  if (existsSync(dest) || isSymlink(dest)) await run('rm', ['-rf', '--one-file-system', dest]);
  await run('cp', ['-a', '--no-dereference', path, dest]);
}

function isSymlink(p) {
  try { return lstatSync(p).isSymbolicLink(); } catch { return false; }
}

// ------------------------------------------------------------------------------------------------ test / shell

async function prepareRun(o, verb) {
  const p = paths(o.dir);
  if (!existsSync(p.base)) die(`no root in ${p.base}: run \`node scripts/fresh-root.mjs build${o.dir === DIR_DEFAULT ? '' : ` --dir ${o.dir}`}\` first`);
  // `shell` enters what the last `test` left (to look around after a failure); `test` starts from a fresh copy.
  if (!((o.reuse || verb === 'shell') && existsSync(p.run))) {
    const t0 = Date.now();
    await removeTree(p.run);
    await run('cp', ['-a', '--reflink=auto', p.base, p.run]);
    log(`fresh copy of the root in ${p.run} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  const dest = join(p.run, CLONE);
  if (verb === 'test' || !existsSync(dest)) {
    await removeTree(dest);
    // The committed HEAD, as CI sees it: uncommitted changes in the work tree are not part of the test.
    await run('git', ['clone', '--quiet', '--no-hardlinks', o.repo, dest]);
    const head = (await run('git', ['-C', dest, 'log', '-1', '--format=%h %s'])).stdout.trim();
    const dirty = (await run('git', ['-C', o.repo, 'status', '--porcelain'])).stdout.trim();
    if (o.worktree && dirty) {
      const patch = (await run('git', ['-C', o.repo, 'diff', '--binary', 'HEAD'])).stdout;
      if (patch) await run('git', ['-C', dest, 'apply', '--whitespace=nowarn', '-'], { input: patch });
      const untracked = (await run('git', ['-C', o.repo, 'ls-files', '-z', '--others', '--exclude-standard'])).stdout.split('\0').filter(Boolean);
      for (const f of untracked) {
        mkdirSync(dirname(join(dest, f)), { recursive: true });
        cpSync(join(o.repo, f), join(dest, f), { recursive: true, verbatimSymlinks: true });
      }
      log(`cloned ${o.repo} at ${head} + the work tree's uncommitted changes (${untracked.length} untracked files)`);
    } else {
      log(`cloned ${o.repo} at ${head}${dirty ? ' (the work tree has uncommitted changes: NOT tested; --worktree tests them)' : ''}`);
    }
  }
  return p.run;
}

/** Host cgroup mounts to recreate inside (cgroup v1 hierarchies, the cgroup2 one, the tmpfs holding them). */
function hostCgroupMounts() {
  const controllers = readFileSync('/proc/cgroups', 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split('\t')[0]);
  const out = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)) {
    const [pre, post] = line.split(' - ');
    const mp = pre.split(' ')[4];
    if (mp !== '/sys/fs/cgroup' && !mp.startsWith('/sys/fs/cgroup/')) continue;
    const [fstype, , superOpts] = post.split(' ');
    let opts = superOpts.split(',').filter((x) => x !== 'rw' && x !== 'ro' && !x.startsWith('release_agent='));
    if (fstype === 'cgroup' && !opts.some((x) => controllers.includes(x))) opts = ['none', ...opts];
    if (fstype === 'tmpfs') opts = ['mode=755'];
    out.push({ mp, fstype, opts });
  }
  return out;
}

function enter(o, root, mode) {
  const plan = { root, mode, cgroups: hostCgroupMounts(), skipE2e: o.skipE2e, sandbox: o.sandbox, term: process.env.TERM };
  // New mount (private propagation), PID, UTS and IPC namespaces; the host's network namespace. Our helper below
  // is PID 1 there: when it exits every process the run left behind is killed.
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--uts', '--ipc', '--',
    process.execPath, SELF, '__inside', JSON.stringify(plan)], { stdio: ['inherit', mode === 'test' ? 'pipe' : 'inherit', 'inherit'] });
  if (mode === 'test') {
    // Passed through as it comes; the suite's "=== step" lines get the time since the start, for timings.
    const t0 = Date.now();
    let partial = '';
    child.stdout.on('data', (b) => {
      const lines = (partial + b).split('\n');
      partial = lines.pop();
      for (const l of lines) {
        const s = Math.round((Date.now() - t0) / 1000);
        process.stdout.write(l.startsWith('=== ') ? `${l}   [${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}]\n` : `${l}\n`);
      }
    });
    child.stdout.on('end', () => { if (partial) process.stdout.write(partial); });
  }
  return new Promise((res) => child.on('close', (code, signal) => res(code ?? 128 + (signal ? 15 : 0))));
}

/** Runs inside the new namespaces (PID 1): mounts, pivot_root, then the payload. */
function inside(plan) {
  const { root: R } = plan;
  const sh = (cmd, args) => {
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) die(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
  };
  const mount = (...args) => sh('mount', args);
  const md = (p) => mkdirSync(join(R, p), { recursive: true });

  sh('hostname', ['fresh-root']); // our own UTS namespace
  mount('--bind', R, R); // a mount point, for pivot_root
  md('proc'); mount('-t', 'proc', '-o', 'nosuid,nodev,noexec', 'proc', join(R, 'proc'));
  md('sys'); mount('-t', 'sysfs', '-o', 'nosuid,nodev,noexec', 'sysfs', join(R, 'sys'));
  // The same cgroup layout as the host (here: cgroup v1 controllers + name=systemd + cgroup2 at unified, like
  // scripts/lab/node-init.sh), mounted fresh; v1 hierarchies with the host's options are the host's hierarchies.
  for (const c of plan.cgroups) {
    md(c.mp);
    const dest = join(R, c.mp);
    if (c.fstype === 'tmpfs') mount('-t', 'tmpfs', '-o', `nosuid,nodev,noexec,${c.opts.join(',')}`, 'cgroup', dest);
    else if (c.fstype === 'cgroup2') mount('-t', 'cgroup2', '-o', 'nosuid,nodev,noexec', 'cgroup2', dest);
    else mount('-t', c.fstype, '-o', `nosuid,nodev,noexec,${c.opts.join(',')}`, 'cgroup', dest);
  }
  // /dev: the kernel's devtmpfs (every device a fresh machine has), our own devpts, shm and mqueue over it.
  md('dev');
  const dev = spawnSync('mount', ['-t', 'devtmpfs', '-o', 'nosuid,mode=755', 'devtmpfs', join(R, 'dev')], { stdio: 'inherit' });
  if (dev.status !== 0) mount('--bind', '/dev', join(R, 'dev'));
  if (existsSync(join(R, 'dev/pts'))) {
    mount('-t', 'devpts', '-o', 'newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec', 'devpts', join(R, 'dev/pts'));
    if (existsSync(join(R, 'dev/ptmx'))) mount('--bind', join(R, 'dev/pts/ptmx'), join(R, 'dev/ptmx'));
  }
  if (existsSync(join(R, 'dev/shm'))) mount('-t', 'tmpfs', '-o', 'nosuid,nodev,mode=1777', 'shm', join(R, 'dev/shm'));
  if (existsSync(join(R, 'dev/mqueue'))) mount('-t', 'mqueue', '-o', 'nosuid,nodev,noexec', 'mqueue', join(R, 'dev/mqueue'));
  for (const l of ['fd', 'stdin', 'stdout', 'stderr']) {
    if (!isSymlink(join(R, 'dev', l))) console.error(`fresh-root: warning: /dev/${l} missing in devtmpfs`);
  }
  // /run (netns files, sockets, pid files) and /tmp: empty, in this namespace only.
  md('run'); mount('-t', 'tmpfs', '-o', 'nosuid,nodev,mode=755', 'run', join(R, 'run'));
  mkdirSync(join(R, 'run/lock'), { mode: 0o1777 });
  md('tmp'); mount('-t', 'tmpfs', '-o', 'nosuid,nodev,mode=1777', 'tmp', join(R, 'tmp'));

  // pivot_root, not chroot: no path leads back to the host's tree, and runc (docker run in the end-to-end suite)
  // needs a real root. pivot_root moves our own root and cwd too.
  const old = '.fresh-root-old';
  md(old);
  sh('pivot_root', [R, join(R, old)]);
  process.chdir('/');
  sh('umount', ['-l', `/${old}`]);
  rmdirSync(`/${old}`);

  const env = { PATH: ROOT_PATH, HOME: '/root', USER: 'root', LOGNAME: 'root', SHELL: '/bin/bash', TERM: plan.term ?? 'dumb' };
  let steps, cwd;
  if (plan.mode === 'test' && plan.sandbox) {
    // up, then down even when up failed: the sandbox's bridge and nft table live in the host's network namespace.
    steps = [['npm', ['run', 'sandbox', '--', 'up', '--docker', plan.sandbox]], ['npm', ['run', 'sandbox', '--', 'down']]];
    cwd = CLONE;
  } else if (plan.mode === 'test') {
    Object.assign(env, { CI: 'true', ...(plan.skipE2e ? { SWARMNET_SKIP_E2E: '1' } : {}) });
    [steps, cwd] = [[['bash', ['.ci/run']]], CLONE];
  } else {
    [steps, cwd] = [[['bash', ['-l']]], existsSync(CLONE) ? CLONE : '/root'];
  }
  let child;
  // PID 1 ignores signals it has no handler for: pass the usual ones on.
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => child?.kill(s));
  let first = 0;
  const next = (k) => {
    if (k === steps.length) process.exit(first);
    const [cmd, args] = steps[k];
    if (plan.mode === 'test') console.log(`fresh-root: running \`${plan.skipE2e && !plan.sandbox ? 'SWARMNET_SKIP_E2E=1 ' : ''}${plan.sandbox ? '' : 'CI=true '}${[cmd, ...args].join(' ')}\` in ${cwd}`);
    child = spawn(cmd, args, { cwd, env, stdio: 'inherit' });
    child.on('close', (code, signal) => {
      first ||= code ?? 128 + (signal === 'SIGKILL' ? 9 : 15);
      next(k + 1);
    });
  };
  next(0);
}

// ---------------------------------------------------------------------------------------------------------- main

const [verb, ...rest] = process.argv.slice(2);
if (verb === '__inside') {
  inside(JSON.parse(rest[0]));
} else {
  if (process.getuid?.() !== 0) die('run as root (mmdebstrap, namespaces, mounts)');
  const o = parseArgs(rest);
  if (['build', 'test', 'shell', 'clean'].includes(verb)) lock(o.dir);
  if (verb === 'build') {
    await build(o);
  } else if (verb === 'test' || verb === 'shell') {
    const t0 = Date.now();
    const root = await prepareRun(o, verb);
    const code = await enter(o, root, verb);
    const leftovers = hostMountsUnder(o.dir);
    if (leftovers.length) {
      console.error(`fresh-root: LEFTOVER MOUNTS on the host: ${leftovers.join(', ')}`);
      process.exit(code || 1);
    }
    log(`${verb} exited ${code} after ${((Date.now() - t0) / 60000).toFixed(1)} min; no mounts left on the host under ${o.dir}`);
    process.exit(code);
  } else if (verb === 'clean') {
    await removeTree(o.dir);
    log(`removed ${o.dir}`);
  } else {
    console.error('usage: node scripts/fresh-root.mjs build|test|shell|clean [--dir D] [--repo R] [--skip-e2e] [--reuse] [--force]');
    process.exit(2);
  }
}
