// Docker Engines a sandbox node can run. 20.10 is Debian 12's docker.io (installed from the prerequisite list);
// 28 is Debian sid's docker.io + containerd, fetched by name with apt-get into a download cache and unpacked there,
// never installed system-wide (docs/sandbox.md). runc and docker-init stay Debian 12's: sid's runc needs glibc 2.38.
// The mirror is the one in this machine's apt sources (SWARMNET_DEBIAN_MIRROR overrides it).
//
//   ENGINE_NAMES: ['28', '20.10']; DEFAULT_ENGINE: '28'
//   parseEngines(spec, nodes) -> string[]   '--docker' value ('28', '20.10', or a per-node list '28,20.10') → one per node
//   ensureEngine(name, log) -> Promise<{ name, version, binDir?: string }>   binDir goes first in the node's PATH
//   EngineUnavailable: thrown when the engine cannot be had here (no mirror reachable, no usable version)
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../lib/proc.mjs';
import { REPO } from './state.mjs';

export const ENGINE_NAMES = ['28', '20.10'];
/** What users run: Docker 28 (docker-ce and current distributions); 20.10 stays for the hosts that still have it. */
export const DEFAULT_ENGINE = '28';
const CACHE = join(REPO, 'build/.cache/engines');
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
/** glibc of Debian 12: newer engines' binaries must not need more. */
const GLIBC_MAX = [2, 36];

/**
 * Where each engine comes from. `tries`: suites in order, each with the versions it accepts (preferred first).
 * sid moves: the exact 28.5.2 may be gone; then the newest 28.x/29.x that runs here, else trixie's 26.1.
 */
const SOURCES = {
  28: {
    tries: [
      { suite: 'sid', prefer: /^28\.5\.2\+/, accept: /^(28|29)\./ },
      { suite: 'trixie', prefer: /^26\.1\./, accept: /^26\.1\./ },
    ],
  },
};

export class EngineUnavailable extends Error {
  constructor(message) {
    super(message);
    this.name = 'EngineUnavailable';
  }
}

/** '28' | '20.10' | '28,20.10' (node1 28, node2 and later 20.10: the last entry repeats) → one engine per node. */
export function parseEngines(spec = DEFAULT_ENGINE, nodes = 1) {
  const list = String(spec).split(',').map((s) => s.trim()).filter(Boolean);
  if (!list.length) throw new Error(`--docker needs an engine: ${ENGINE_NAMES.join(' or ')}`);
  for (const e of list) if (!ENGINE_NAMES.includes(e)) throw new Error(`--docker ${e}: unknown engine; choose ${ENGINE_NAMES.join(' or ')} (or a per-node list like 28,20.10)`);
  if (list.length > nodes) throw new Error(`--docker lists ${list.length} engines for ${nodes} node(s)`);
  return Array.from({ length: nodes }, (_, k) => list[Math.min(k, list.length - 1)]);
}

/** The Debian mirror of this machine's own apt sources (deb822 or one-line format). */
function systemMirror() {
  const files = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const uri = /^URIs:\s*(\S+)/m.exec(text)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/m.exec(text)?.[1];
    if (uri && !/security/.test(uri)) return uri.replace(/\/$/, '');
  }
  for (const f of existsSync('/etc/apt/sources.list.d') ? readdirSync('/etc/apt/sources.list.d') : []) {
    const uri = /^URIs:\s*(\S+debian)\s*$/m.exec(readFileSync(join('/etc/apt/sources.list.d', f), 'utf8'))?.[1];
    if (uri) return uri;
  }
  throw new EngineUnavailable('no Debian mirror in /etc/apt/sources.list{,.d}: cannot fetch Docker 28 (use --docker 20.10)');
}

/** apt-get/apt-cache options that read a private sources list and lists dir: the system's apt state is untouched. */
function aptOptions(dir) {
  return ['-o', `Dir::Etc::sourcelist=${join(dir, 'sources.list')}`, '-o', 'Dir::Etc::sourceparts=-',
    '-o', `Dir::State::Lists=${join(dir, 'lists')}`, '-o', 'Dir::Cache::pkgcache=', '-o', 'Dir::Cache::srcpkgcache=',
    '-o', 'APT::Sandbox::User=root'];
}

const versionKey = (v) => v.split(/[^0-9]+/).filter(Boolean).map(Number);
function newerFirst(a, b) {
  const x = versionKey(a);
  const y = versionKey(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (y[i] ?? 0) - (x[i] ?? 0);
  return 0;
}

/** Highest GLIBC_x.y a binary needs (from its version references), e.g. [2, 34]. */
function glibcNeeded(file) {
  const text = readFileSync(file).toString('latin1');
  let max = [0, 0];
  for (const m of text.matchAll(/GLIBC_(\d+)\.(\d+)/g)) {
    const v = [Number(m[1]), Number(m[2])];
    if (v[0] > max[0] || (v[0] === max[0] && v[1] > max[1])) max = v;
  }
  return max;
}
const glibcOk = (v) => v[0] < GLIBC_MAX[0] || (v[0] === GLIBC_MAX[0] && v[1] <= GLIBC_MAX[1]);

/** Files of the unpacked packages that go into bin/ (dockerd starts containerd and its shim from PATH). */
const BINARIES = ['usr/sbin/dockerd', 'usr/sbin/docker-proxy', 'usr/bin/containerd', 'usr/bin/containerd-shim-runc-v2', 'usr/bin/ctr'];

async function fetchEngine(name, log) {
  const mirror = process.env.SWARMNET_DEBIAN_MIRROR || systemMirror();
  const dir = join(CACHE, `${name}.tmp`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'lists/partial'), { recursive: true });
  const reasons = [];
  for (const { suite, prefer, accept } of SOURCES[name].tries) {
    writeFileSync(join(dir, 'sources.list'), `deb [signed-by=${KEYRING}] ${mirror} ${suite} main\n`);
    const apt = aptOptions(dir);
    log(`Docker ${name}: reading Debian ${suite} from ${mirror}`);
    const upd = await run('apt-get', [...apt, '-qq', 'update'], { allowFailure: true, timeoutMs: 300_000 });
    if (upd.code !== 0 || /^(W|E): .*(Failed to fetch|Could not resolve|unreachable)/m.test(upd.stderr)) {
      const lines = upd.stderr.trim().split('\n');
      reasons.push(`${suite}: ${(lines.find((l) => /Failed to fetch|Could not|unreachable/.test(l)) ?? lines.at(-1))?.replace(/^[WE]: /, '') || `apt-get update exit ${upd.code}`}`);
      continue;
    }
    const versionsOf = async (pkg) => (await run('apt-cache', [...apt, 'madison', pkg], { allowFailure: true })).stdout
      .split('\n').map((l) => l.split('|')[1]?.trim()).filter(Boolean);
    const dockerVersions = (await versionsOf('docker.io')).filter((v) => accept.test(v)).sort(newerFirst);
    const ordered = [...dockerVersions.filter((v) => prefer.test(v)), ...dockerVersions.filter((v) => !prefer.test(v))];
    const containerd = (await versionsOf('containerd')).sort(newerFirst)[0];
    if (!ordered.length || !containerd) {
      reasons.push(`${suite}: no docker.io matching ${accept} (has: ${(await versionsOf('docker.io')).join(', ') || 'none'})`);
      continue;
    }
    for (const version of ordered) {
      const debs = join(dir, 'debs');
      const root = join(dir, 'root');
      rmSync(debs, { recursive: true, force: true });
      rmSync(root, { recursive: true, force: true });
      mkdirSync(debs, { recursive: true });
      log(`Docker ${name}: downloading docker.io ${version} and containerd ${containerd} (${suite}) into ${CACHE}`);
      const dl = await run('apt-get', [...apt, '-qq', 'download', `docker.io=${version}`, `containerd=${containerd}`], { cwd: debs, allowFailure: true, timeoutMs: 600_000 });
      if (dl.code !== 0) {
        reasons.push(`${suite} ${version}: ${dl.stderr.trim().split('\n').at(-1)}`);
        continue;
      }
      for (const deb of readdirSync(debs)) await run('dpkg-deb', ['-x', join(debs, deb), root]);
      const missing = BINARIES.filter((b) => !existsSync(join(root, b)));
      if (missing.length) {
        reasons.push(`${suite} ${version}: packages lack ${missing.join(', ')}`);
        continue;
      }
      const tooNew = [];
      for (const b of BINARIES) {
        const need = glibcNeeded(join(root, b));
        if (!glibcOk(need)) tooNew.push(`${b} needs GLIBC ${need.join('.')}`);
      }
      if (tooNew.length) {
        reasons.push(`${suite} ${version}: ${tooNew.join(', ')} (this machine has ${GLIBC_MAX.join('.')})`);
        continue;
      }
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      for (const b of BINARIES) symlinkSync(join('..', 'root', b), join(bin, b.split('/').at(-1)));
      const shown = (await run(join(bin, 'dockerd'), ['--version'])).stdout.trim();
      rmSync(debs, { recursive: true, force: true });
      rmSync(join(dir, 'lists'), { recursive: true, force: true });
      writeFileSync(join(dir, 'engine.json'), `${JSON.stringify({ name, suite, dockerIo: version, containerd, dockerd: shown, notTaken: reasons }, null, 2)}\n`);
      if (reasons.length) log(`Docker ${name}: took ${suite} ${version}; not taken: ${reasons.join('; ')}`);
      const final = join(CACHE, name);
      rmSync(final, { recursive: true, force: true });
      renameSync(dir, final);
      return;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw new EngineUnavailable(`Docker ${name} cannot be fetched from Debian (${reasons.join('; ')}); Docker 20.10 still works: --docker 20.10`);
}

/** Makes the engine available (downloading it once) and says where its binaries are. */
export async function ensureEngine(name, log = () => {}) {
  if (!ENGINE_NAMES.includes(name)) throw new Error(`unknown Docker engine ${name}`);
  if (name === '20.10') {
    const shown = existsSync('/usr/sbin/dockerd') ? (await run('/usr/sbin/dockerd', ['--version'])).stdout.trim() : '';
    if (!/ 20\.10\./.test(shown)) throw new EngineUnavailable(`Docker 20.10 is Debian 12's docker.io; /usr/sbin/dockerd is ${shown || 'missing'}`);
    return { name, version: shown.replace(/^Docker version ([^,]+),.*$/, '$1'), binDir: undefined };
  }
  const info = join(CACHE, name, 'engine.json');
  if (!existsSync(info)) await fetchEngine(name, log);
  const meta = JSON.parse(readFileSync(info, 'utf8'));
  return { name, version: meta.dockerd.replace(/^Docker version ([^,]+),.*$/, '$1'), binDir: join(CACHE, name, 'bin'), suite: meta.suite };
}
