// The sandbox swarm: N nodes on one machine (network + mount + UTS namespaces, one dockerd each) on a private
// underlay bridge, an etcd on that bridge, the swarm formed, swarmnet/busybox imported and the managed plugin
// enabled everywhere. Used by `npm run sandbox` (scripts/sandbox.mjs) and by the end-to-end tests (test/e2e).
//
//   up({ nodes = 3, managers = 1, docker = DEFAULT_ENGINE, log, logLevel }) -> Promise<Sandbox>   cleans leftovers
//     first, then builds it all; docker: '28', '20.10' or a per-node list ('28,20.10': see engines.mjs)
//   down({ log }) -> Promise<void>     removes exactly what the state file lists plus leftovers with sandbox names
//   loadSandbox() -> Sandbox | undefined   the running sandbox from the state file
//   stopNode(name, { crash }) / startNode(name) -> node record   a node's dockerd stopped (SIGTERM, as a host shuts
//     down; crash: SIGKILL of dockerd, containerd, shims, plugin and containers, as a machine dies) and started again
//     on the same data root (it rejoins the swarm); the state file follows
//   stopSandboxEtcd() / startSandboxEtcd()   the etcd stopped and started again on its data (an etcd outage)
//   Sandbox: { nodes: [{ name, netns, address, socket, pid, startTime, mntns, role, engine, ... }], etcd: { endpoint, ... },
//              manager (first node), layout }
import { copyFileSync, readdirSync, readFileSync, rmSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { IMAGE, buildBusyboxTar, importBusybox } from './busybox-image.mjs';
import { docker, startDockerd, stopDockerd } from './dockerd.mjs';
import { enableAuth, makePki, startEtcd, stopEtcd } from './etcd.mjs';
import { registryPidsUnder, startRegistry, stopRegistry } from './registry.mjs';
import { prometheusPidsUnder, startPrometheus, stopPrometheus } from './prometheus.mjs';
import { pidsWithArgv } from './detached.mjs';
import { tagOf } from '../build-plugin.mjs';
import { installGuard, removeGuard } from './guard.mjs';
import { addVethToBridge, createBridge, createNetns, deleteLink, deleteNetns, listLinks } from './netns.mjs';
import { DEFAULT_ENGINE, ensureEngine, parseEngines } from './engines.mjs';
import { ensurePackages } from './prereqs.mjs';
import { namespaceOf, pidsInNamespace, run, startTime, stopPid, waitFor } from '../lib/proc.mjs';
import { REPO, loadState, removeState, saveState } from './state.mjs';

/** Every name the sandbox puts on the system (prefix `sn`): nothing else is ever created or removed. */
export const LAYOUT = {
  bridge: 'sn-br0',
  underlay: '10.99.0', // /24, private to the bridge; the guard table keeps it from being routed anywhere
  hostAddress: '10.99.0.1',
  dataDir: '/var/lib/swarmnet-sandbox',
  etcdPort: 2379,
  etcdPeerPort: 2380,
  // Debian's docker-registry: the plugin is pushed there and installed from it, as users do from theirs.
  registryPort: 5000,
  prometheusPort: 9090,
  // Each plugin's /metrics on its node's addresses (the node's namespace is private to the sandbox bridge).
  metricsPort: 9474,
  pluginRepository: 'swarmnet',
  pluginName: 'swarmnet:latest', // referred to as `swarmnet` (Docker adds :latest)
  pluginAlias: 'swarmnet',
  // What `docker network create --driver/--ipam-driver` must name: dockerd 20.10's libnetwork registers a managed
  // network plugin under its full name with the tag, so a bare `--driver swarmnet` fails with "could not resolve
  // driver swarmnet in registry" (moby#33347). `--ipam-driver swarmnet` alone happens to resolve.
  networkDriver: 'swarmnet:latest',
  netnsPattern: /^sn-node\d+$/,
  vethPattern: /^sn-v\d+$/,
  socketPattern: /^sn-node\d+\.sock$/,
};
export const MAX_NODES = 20;

export function nodeLayout(i) {
  return {
    name: `node${i}`,
    netns: `sn-node${i}`,
    hostIf: `sn-v${i}`,
    address: `${LAYOUT.underlay}.${10 + i}`,
    socket: `/run/sn-node${i}.sock`,
    dataRoot: join(LAYOUT.dataDir, `node${i}`, 'docker'),
  };
}

/** The sandbox etcd's client URL: https when it runs with --etcd-tls. */
export const etcdEndpoint = (tls = Boolean(loadState()?.etcd?.tls)) => `${tls ? 'https' : 'http'}://${LAYOUT.hostAddress}:${LAYOUT.etcdPort}`;

/** etcd3 client options for the sandbox etcd as its root (every key): TLS and password when it has them. */
export function etcdClientOptions() {
  const tls = loadState()?.etcd?.tls;
  if (!tls) return { hosts: etcdEndpoint(false) };
  return {
    hosts: etcdEndpoint(true),
    credentials: { rootCertificate: readFileSync(tls.root.ca), certChain: readFileSync(tls.root.cert), privateKey: readFileSync(tls.root.key) },
    auth: { username: 'root', password: tls.rootPassword },
  };
}

/** A node's plugin STATE_DIR on the host (build-plugin.mjs picks it beside the node's Docker data root). */
const stateDirOf = (k) => join(nodeLayout(k).dataRoot, 'swarmnet-state');
/** STATE_DIR inside the plugin (config.json's `state` mount). */
const PLUGIN_STATE_DIR = '/var/lib/swarmnet';
export const registryAddress = () => `${LAYOUT.hostAddress}:${LAYOUT.registryPort}`;
/** The plugin's reference in the sandbox registry for a built version. */
export const pluginRef = (version) => `${registryAddress()}/${LAYOUT.pluginRepository}:${tagOf(version)}`;

const defaultLog = (() => {
  const t0 = Date.now();
  return (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}`);
})();

/** Plugin settings of one node; etcdTls: { password } of the plugins' etcd user (mutual TLS and auth). */
function pluginSettings(node, logLevel, hook, etcdTls) {
  const tls = etcdTls ? {
    // As docs/install.md tells users: the certificate in STATE_DIR/tls, a user limited to ETCD_PREFIX.
    ETCD_CA_FILE: `${PLUGIN_STATE_DIR}/tls/ca.pem`,
    ETCD_CERT_FILE: `${PLUGIN_STATE_DIR}/tls/client.pem`,
    ETCD_KEY_FILE: `${PLUGIN_STATE_DIR}/tls/client.key`,
    ETCD_USERNAME: 'swarmnet',
    ETCD_PASSWORD: etcdTls.password,
  } : {};
  return {
    ...tls,
    IS_HOOK_AVAILABLE: String(hook),
    ETCD_ENDPOINTS: etcdEndpoint(Boolean(etcdTls)),
    UNDERLAY_INTERFACE: 'eth0',
    LOG_LEVEL: logLevel,
    // A lab: a node that dies (or freezes) loses its records, and its tasks their place behind VIPs, within 15 s.
    NODE_LEASE_TTL_SECONDS: '15',
    METRICS_ADDRESS: `0.0.0.0:${LAYOUT.metricsPort}`,
    // The plugin talks to its own node's dockerd (the socket is in the host's /run, visible in the node's mounts).
    'docker-socket.source': node.socket,
  };
}

/**
 * The host-side parts of DNS injection on one node, installed the way users do: `swarmnet host install` from the
 * build's own files, merging the node's daemon.json (written before its dockerd starts).
 */
async function installHostParts(n) {
  const dir = join(LAYOUT.dataDir, n.name, 'host');
  const daemonJson = join(n.dataRoot, 'daemon.json');
  mkdirSync(n.dataRoot, { recursive: true });
  writeFileSync(daemonJson, '{}\n');
  await run(process.execPath, [join(REPO, 'dist/plugin/cli.js'), 'host', 'install', '--dir', dir, '--daemon-json', daemonJson, '--no-cli']);
  return JSON.parse(readFileSync(daemonJson, 'utf8'));
}

export async function up({ nodes = 3, managers = 1, docker: engineSpec = DEFAULT_ENGINE, hook = true, prometheus = false, etcdTls = false, log = defaultLog, logLevel = 'info' } = {}) {
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) throw new Error(`--nodes must be an integer from 1 to ${MAX_NODES}, got ${nodes}`);
  if (!Number.isInteger(managers) || managers < 1 || managers > nodes) throw new Error(`--managers must be an integer from 1 to --nodes (${nodes}), got ${managers}`);
  const engineOf = parseEngines(engineSpec, nodes);
  if (process.getuid?.() !== 0) throw new Error('the sandbox needs root (network namespaces, mounts, dockerd)');
  const started = Date.now();
  await ensurePackages(log, 'sandbox');
  const engines = new Map();
  for (const name of new Set(engineOf)) engines.set(name, await ensureEngine(name, log));
  log(`Docker Engine: ${[...engines.values()].map((e) => `${e.version}${e.suite ? ` (Debian ${e.suite}, in build/.cache/engines)` : ' (Debian 12)'}`).join(', ')}`);
  if (!existsSync(join(REPO, 'node_modules/.package-lock.json'))) {
    log('installing npm dependencies (npm ci): a fresh clone');
    await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: REPO, timeoutMs: 900_000 });
  }
  if (loadState() || (await leftovers()).length) {
    log('cleaning up what a previous sandbox left');
    await down({ log: () => {} });
  }
  const state = { version: 1, hook, startedAt: new Date().toISOString(), repo: REPO, bridge: LAYOUT.bridge, guard: true, dataDir: LAYOUT.dataDir, nodes: [], etcd: undefined, ready: false };
  saveState(state);
  try {
    // The plugin build is the slow step on a cold machine (compile, npm ci, Debian packages): run it alongside.
    const plugin = buildPluginOnce(log);
    plugin.catch(() => {}); // awaited below; avoid an unhandled rejection while other steps run

    log(`underlay: bridge ${LAYOUT.bridge} ${LAYOUT.hostAddress}/24`);
    await createBridge(LAYOUT.bridge, `${LAYOUT.hostAddress}/24`);
    await installGuard(LAYOUT.bridge);

    log(`etcd on ${etcdEndpoint(etcdTls)}${etcdTls ? ' (mutual TLS, auth: user swarmnet limited to /flannel/)' : ''}`);
    state.etcd = { dataDir: join(LAYOUT.dataDir, 'etcd') };
    saveState(state);
    if (etcdTls) state.etcd.tls = await etcdPki(nodes);
    await runEtcd(state);
    if (etcdTls) {
      const t = state.etcd.tls;
      await enableAuth({ endpoint: state.etcd.endpoint, root: t.root, rootPassword: t.rootPassword, user: 'swarmnet', password: t.password, prefix: '/flannel/' });
    }

    log(`registry on ${registryAddress()} (docker-registry; every node trusts it as an insecure registry)`);
    state.registry = { dataDir: join(LAYOUT.dataDir, 'registry') };
    saveState(state);
    state.registry = { ...state.registry, ...(await startRegistry({ address: LAYOUT.hostAddress, port: LAYOUT.registryPort, dataDir: state.registry.dataDir })) };
    saveState(state);

    if (hook) {
      // The hook and runtime wrapper come from the build: wait for it before the first dockerd starts.
      await plugin;
      log('runtime wrapper + createContainer hook on every node (swarmnet host install)');
    }
    log(`starting ${nodes} node(s): namespaces and one dockerd each`);
    const layouts = Array.from({ length: nodes }, (_, k) => ({ ...nodeLayout(k + 1), role: k < managers ? 'manager' : 'worker', engine: engines.get(engineOf[k]).version, engineName: engineOf[k] }));
    state.nodes = layouts;
    saveState(state);
    await Promise.all(layouts.map(async (n, k) => {
      await createNetns(n.netns);
      await addVethToBridge({ netns: n.netns, bridge: LAYOUT.bridge, hostIf: n.hostIf, address: `${n.address}/24`, gateway: LAYOUT.hostAddress });
      const daemonConfig = { ...(hook ? await installHostParts(n) : {}), 'insecure-registries': [registryAddress()] };
      state.nodes[k] = await startNodeDockerd(n, daemonConfig, engines.get(engineOf[k]).binDir);
      saveState(state);
      log(`  ${n.name}: dockerd ${n.engine} pid ${state.nodes[k].pid}, ${n.address}, ${n.socket}`);
    }));

    log(`importing ${IMAGE} (busybox-static) into every node`);
    const tar = await buildBusyboxTar(LAYOUT.dataDir);
    await Promise.all(state.nodes.map((n) => importBusybox(n, tar)));

    await formSwarm(state.nodes, log);

    const built = await plugin;
    const ref = pluginRef(built.version);
    log(`pushing the plugin to the registry as ${ref} (docker plugin create + push on ${state.nodes[0].name})`);
    const { installPlugin, pushPlugin } = await import('../build-plugin.mjs');
    await pushPlugin({ dir: built.dir, host: `unix://${state.nodes[0].socket}`, ref, log: (m) => log(`  ${m}`) });
    log(`installing it on every node (docker plugin install --alias ${LAYOUT.pluginAlias} --grant-all-permissions, set, enable)`);
    await Promise.all(state.nodes.map((n) => installPlugin({
      host: `unix://${n.socket}`, remote: ref, alias: LAYOUT.pluginAlias,
      settings: pluginSettings(n, logLevel, hook, state.etcd.tls), enable: true,
      log: (m) => log(`  ${n.name}: plugin ${m.replace(/^.*: /, '')}`),
    })));
    state.plugin = { ref, version: built.version };
    saveState(state);
    if (prometheus) {
      const url = `http://${LAYOUT.hostAddress}:${LAYOUT.prometheusPort}`;
      log(`Prometheus on ${url}: scrapes every node's plugin, loads monitoring/alerts.yml`);
      state.prometheus = { dataDir: join(LAYOUT.dataDir, 'prometheus') };
      saveState(state);
      state.prometheus = { ...state.prometheus, ...(await startPrometheus({
        address: LAYOUT.hostAddress, port: LAYOUT.prometheusPort, dataDir: state.prometheus.dataDir,
        targets: state.nodes.map((n) => `${n.address}:${LAYOUT.metricsPort}`), ruleFiles: [join(REPO, 'monitoring/alerts.yml')],
      })) };
      saveState(state);
    }
    log('waiting until every node advertises the plugin to the swarm (about 20 s)');
    await waitPluginAdvertised(state.nodes[0], state.nodes.length);
    state.ready = true;
    saveState(state);
    log(`sandbox up in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return sandboxOf(state);
  } catch (e) {
    log(`up failed: ${e.message.split('\n')[0]} — state kept in .sandbox/state.json; logs under ${LAYOUT.dataDir}; \`npm run sandbox -- down\` removes it`);
    throw e;
  }
}

async function buildPluginOnce(log) {
  if (!existsSync(join(REPO, 'scripts/build-plugin.mjs'))) throw new Error('scripts/build-plugin.mjs is missing: cannot build the plugin');
  const { buildPlugin } = await import('../build-plugin.mjs');
  const t = Date.now();
  const r = await buildPlugin({ log: (m) => log(`  plugin build: ${m}`) });
  log(`plugin ${r.rebuilt ? 'built' : 'up to date'} (${((Date.now() - t) / 1000).toFixed(0)} s): ${r.dir}`);
  return r;
}

async function formSwarm(nodes, log) {
  const [first, ...rest] = nodes;
  log(`swarm: init on ${first.name} (${first.address}), ${rest.length} join(s)`);
  await docker(first, ['swarm', 'init', '--advertise-addr', first.address, '--listen-addr', `${first.address}:2377`]);
  const token = async (role) => (await docker(first, ['swarm', 'join-token', '-q', role])).stdout.trim();
  const tokens = { manager: await token('manager'), worker: await token('worker') };
  const join = (n) => docker(n, ['swarm', 'join', '--advertise-addr', n.address, '--listen-addr', `${n.address}:2377`,
    '--token', tokens[n.role], `${first.address}:2377`]);
  // Managers one at a time (each join changes the raft membership); workers together.
  for (const n of rest.filter((x) => x.role === 'manager')) await join(n);
  await Promise.all(rest.filter((x) => x.role === 'worker').map(join));
  await waitFor('every node Ready in the swarm', async () => {
    const { stdout } = await docker(first, ['node', 'ls', '--format', '{{.Status}}']);
    const st = stdout.trim().split('\n').filter(Boolean);
    return st.length === nodes.length && st.every((s) => s === 'Ready');
  }, { timeoutMs: 60_000 });
}

/** Names under which a node's description lists the plugin's network driver. */
const isOurDriver = (p) => p.Type === 'Network' && (p.Name === LAYOUT.pluginAlias || p.Name === LAYOUT.pluginName);

/** Polls the manager until every node's description lists the plugin (tasks pend with "missing plugin" before). */
export async function waitPluginAdvertised(manager, count, timeoutMs = 120_000) {
  await waitFor('the plugin in every node description', async () => {
    const ids = (await docker(manager, ['node', 'ls', '-q'])).stdout.trim().split('\n').filter(Boolean);
    if (ids.length !== count) return false;
    const { stdout } = await docker(manager, ['node', 'inspect', '--format', '{{json .Description.Engine.Plugins}}', ...ids]);
    return stdout.trim().split('\n').every((line) => (JSON.parse(line) ?? []).some(isOurDriver));
  }, { timeoutMs, intervalMs: 1000 });
}

function sandboxOf(state) {
  return { hook: state.hook !== false, nodes: state.nodes, etcd: state.etcd, registry: state.registry, plugin: state.plugin, prometheus: state.prometheus, manager: state.nodes[0], layout: LAYOUT, ready: state.ready };
}

export function loadSandbox() {
  const s = loadState();
  return s ? sandboxOf(s) : undefined;
}

/**
 * The sandbox's PKI (openssl) and passwords: a CA, etcd's server certificate, a `root` client certificate for the
 * sandbox's own tools and one `swarmnet` certificate copied into every node's plugin state directory.
 */
async function etcdPki(nodes) {
  const pki = await makePki(join(LAYOUT.dataDir, 'pki'), [LAYOUT.hostAddress, '127.0.0.1'], ['root', 'swarmnet']);
  for (let k = 1; k <= nodes; k++) {
    const dir = join(stateDirOf(k), 'tls');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const c = pki.clients.swarmnet;
    for (const [from, to] of [[c.ca, 'ca.pem'], [c.cert, 'client.pem'], [c.key, 'client.key']]) copyFileSync(from, join(dir, to));
  }
  return { ca: pki.ca, serverCert: pki.serverCert, serverKey: pki.serverKey, root: pki.clients.root, rootPassword: randomBytes(12).toString('hex'), password: randomBytes(12).toString('hex') };
}
const etcdTlsOf = (state) => state.etcd.tls && { ...state.etcd.tls, client: state.etcd.tls.root };

function nodeOf(state, name) {
  const k = state?.nodes.findIndex((n) => n.name === name) ?? -1;
  if (k < 0) throw new Error(`no sandbox node ${name}`);
  return k;
}

export async function stopNode(name, { crash = false } = {}) {
  const state = loadState();
  const n = state.nodes[nodeOf(state, name)];
  if (!crash) return stopDockerd({ pid: n.pid, startTime: n.startTime, mntns: n.mntns, graceMs: 30_000 });
  // Containers live in mount namespaces of their own: find them through dockerd before it goes.
  const ids = (await docker(n, ['ps', '-q'], { allowFailure: true })).stdout.split('\n').filter(Boolean);
  const pids = ids.length ? (await docker(n, ['inspect', '--format', '{{.State.Pid}}', ...ids], { allowFailure: true })).stdout.split('\n').map(Number).filter((p) => p > 0) : [];
  // The plugin runs in a mount namespace of its own but in the node's network namespace, like dockerd and containerd.
  const inNetns = (await run('ip', ['netns', 'pids', n.netns], { allowFailure: true })).stdout.split('\n').filter(Boolean).map(Number);
  for (const p of [n.pid, ...pidsInNamespace('mnt', n.mntns), ...inNetns, ...pids]) {
    try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  }
  await stopDockerd({ pid: n.pid, startTime: n.startTime, mntns: n.mntns, graceMs: 1000 });
}

export async function startNode(name) {
  const state = loadState();
  const k = nodeOf(state, name);
  const n = state.nodes[k];
  const engine = await ensureEngine(n.engineName ?? DEFAULT_ENGINE, () => {});
  const daemonConfig = JSON.parse(readFileSync(join(n.dataRoot, 'daemon.json'), 'utf8'));
  state.nodes[k] = await startNodeDockerd(n, daemonConfig, engine.binDir);
  saveState(state);
  return state.nodes[k];
}

/** A node's dockerd in its namespaces (the sandbox's nameserver, the engine's binaries): the node record with its process. */
async function startNodeDockerd(n, daemonConfig, binDir) {
  const d = await startDockerd({ name: n.name, netns: n.netns, dataRoot: n.dataRoot, socket: n.socket, daemonConfig, nameserver: LAYOUT.hostAddress, binDir });
  return { ...n, pid: d.pid, startTime: d.startTime, mntns: d.mntns, logFile: d.logFile };
}

export async function stopSandboxEtcd() {
  const state = loadState();
  await stopEtcd(state.etcd);
}

export const startSandboxEtcd = () => runEtcd(loadState());

/** Starts the sandbox's etcd on its data directory (TLS as the state says) and records its process. */
async function runEtcd(state) {
  state.etcd = { ...state.etcd, ...(await startEtcd({ address: LAYOUT.hostAddress, port: LAYOUT.etcdPort, peerPort: LAYOUT.etcdPeerPort, dataDir: state.etcd.dataDir, tls: etcdTlsOf(state) })) };
  saveState(state);
}

/** Objects with sandbox names that exist now (whether or not the state file lists them). */
async function leftovers() {
  const out = [];
  if (existsSync('/run/netns')) for (const n of readdirSync('/run/netns')) if (LAYOUT.netnsPattern.test(n)) out.push(`netns ${n}`);
  for (const l of await listLinks()) if (l === LAYOUT.bridge || LAYOUT.vethPattern.test(l)) out.push(`link ${l}`);
  for (const p of ourEtcdPids()) out.push(`etcd pid ${p}`);
  for (const p of registryPidsUnder(LAYOUT.dataDir)) out.push(`registry pid ${p}`);
  for (const p of prometheusPidsUnder(LAYOUT.dataDir)) out.push(`prometheus pid ${p}`);
  if (existsSync(LAYOUT.dataDir)) out.push(`dir ${LAYOUT.dataDir}`);
  return out;
}

/** etcd processes whose data dir is under the sandbox's data dir: ours even when the state file is lost. */
function ourEtcdPids() {
  return pidsWithArgv((argv) => {
    const i = argv.indexOf('--data-dir');
    return argv[0]?.endsWith('etcd') && i > 0 && argv[i + 1]?.startsWith(`${LAYOUT.dataDir}/`);
  });
}

/** Kills a process and then whatever is left in its mount namespace (unless that is ours, i.e. the host's). */
async function killWithMountNs(pid) {
  const mnt = namespaceOf(pid, 'mnt');
  await stopDockerd({ pid, startTime: startTime(pid), mntns: mnt === namespaceOf(process.pid, 'mnt') ? undefined : mnt, graceMs: 15_000 });
}

export async function down({ log = defaultLog } = {}) {
  const state = loadState();
  const started = Date.now();
  const nodes = state?.nodes ?? [];
  // 1. dockerds we recorded: graceful stop (containers and plugins stop with them), then their namespaces' leftovers.
  await Promise.all(nodes.filter((n) => n.pid).map(async (n) => {
    log(`stopping ${n.name} (dockerd pid ${n.pid})`);
    await stopDockerd({ pid: n.pid, startTime: n.startTime, mntns: n.mntns, graceMs: 30_000 });
  }));
  // 2. Anything still inside a namespace with a sandbox name (a dockerd from a lost state file, plugins).
  const netnsNames = new Set(nodes.map((n) => n.netns));
  if (existsSync('/run/netns')) for (const n of readdirSync('/run/netns')) if (LAYOUT.netnsPattern.test(n)) netnsNames.add(n);
  for (const ns of netnsNames) {
    const r = await run('ip', ['netns', 'pids', ns], { allowFailure: true });
    const pids = r.stdout.split('\n').filter(Boolean).map(Number);
    if (pids.length) log(`stopping ${pids.length} leftover process(es) in ${ns}`);
    await Promise.all(pids.map(killWithMountNs));
  }
  // 3. etcd.
  if (state?.etcd?.pid) {
    log(`stopping etcd (pid ${state.etcd.pid})`);
    await stopEtcd(state.etcd);
  }
  for (const p of ourEtcdPids()) await stopPid(p, startTime(p), { graceMs: 10_000 });
  if (state?.registry?.pid) {
    log(`stopping the registry (pid ${state.registry.pid})`);
    await stopRegistry(state.registry);
  }
  for (const p of registryPidsUnder(LAYOUT.dataDir)) await stopPid(p, startTime(p), { graceMs: 10_000 });
  if (state?.prometheus?.pid) {
    log(`stopping Prometheus (pid ${state.prometheus.pid})`);
    await stopPrometheus(state.prometheus);
  }
  for (const p of prometheusPidsUnder(LAYOUT.dataDir)) await stopPid(p, startTime(p), { graceMs: 10_000 });
  // 4. Namespaces, links, the guard table.
  for (const ns of netnsNames) await deleteNetns(ns);
  for (const l of await listLinks()) if (LAYOUT.vethPattern.test(l)) await deleteLink(l);
  if (!state || state.bridge) await deleteLink(LAYOUT.bridge);
  await removeGuard();
  // 5. Sockets and data.
  for (const n of nodes) rmSync(n.socket, { force: true });
  for (const f of readdirSync('/run')) if (LAYOUT.socketPattern.test(f)) rmSync(join('/run', f), { force: true });
  rmSync(LAYOUT.dataDir, { recursive: true, force: true });
  removeState();
  // Nothing may be left running in a node's mount namespace once its namespaces are gone.
  for (const n of nodes) if (n.mntns && pidsInNamespace('mnt', n.mntns).length) log(`warning: processes remain in ${n.name}'s mount namespace ${n.mntns}`);
  log(`down in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
