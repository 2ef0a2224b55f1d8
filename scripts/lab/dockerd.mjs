// A dockerd in its own network + mount + UTS namespaces: one "node" of the sandbox swarm, or a private Docker for a
// benchmark. Plain ESM (no build) so scripts, benches and tests import it directly.
//
// Stable interface (other helpers depend on it):
//
//   startDockerd({ name, netns, dataRoot, socket, hostname?, daemonConfig?, nameserver?, extraArgs?, binDir?, env?, timeoutMs? })
//     -> Promise<{ name, pid, startTime, mntns, socket, logFile, stop() }>
//     Runs `unshare -m -u --propagation private nsenter --net=/run/netns/<netns> scripts/lab/node-init.sh ...`:
//     sysfs + cgroup v1 remounted, tmpfs on /run/docker and /etc/docker, hostname set, then dockerd with
//     --data-root <dataRoot> --exec-root /run/docker -H unix://<socket>. The netns must exist (createNetns).
//     Files: <dataRoot>/daemon.json (daemonConfig, default {}), <dataRoot>/dockerd.pid, <dataRoot>/dockerd.log
//     (dockerd's log; a managed plugin's stdout/stderr lands there too). nameserver: an IPv4 address that replaces
//     /etc/resolv.conf inside the node (default: keep the host's). Resolves once /_ping answers; rejects with
//     the log's tail if dockerd exits or does not answer within timeoutMs (default 60 s). binDir: a directory put
//     first in dockerd's PATH (another engine's dockerd/containerd, scripts/lab/engines.mjs); env: extra environment
//     for dockerd (e.g. DOCKER_FIREWALL_BACKEND). The process is detached:
//     it outlives the caller until stop()/stopDockerd().
//   stopDockerd({ pid, startTime, mntns?, graceMs? }) -> Promise<void>
//     SIGTERM (dockerd stops its containers and plugins), SIGKILL after graceMs (default 30 s), then kills whatever
//     is left in the node's mount namespace (containerd, shims). PID + start time guard against PID reuse.
//   nodeCommand(node, cmd, args) -> [cmd, args]  the nsenter argv that runs cmd in the node's net + mount + UTS
//     namespaces; env DOCKER_HOST=unix://<socket> is the caller's to set (see nodeEnv).
//   execInNode(node, cmd, args, opts?) -> Promise<{ code, stdout, stderr }>   run(...) of the above.
//   docker(socketOrNode, args, opts?) -> Promise<{ code, stdout, stderr }>     the docker CLI against that dockerd,
//     from the root namespaces (for API-only commands: no nsenter needed).
//   Re-exported from ./netns.mjs: createNetns, deleteNetns, createBridge, deleteLink, addVethToBridge, netnsExists.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childEnv, systemPath, isAlive, namespaceOf, pidsInNamespace, run, sleep, startTime as pidStartTime, stopPid } from '../lib/proc.mjs';

export { createNetns, deleteNetns, createBridge, deleteLink, addVethToBridge, netnsExists } from './netns.mjs';

const NODE_INIT = join(dirname(fileURLToPath(import.meta.url)), 'node-init.sh');
/** The docker CLI: Debian's docker.io puts it in /usr/bin; some machines have another one first in PATH. */
export const DOCKER_CLI = 'docker';

/** GET /_ping on a unix socket; resolves true on "OK". */
export function ping(socket, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping', timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (b) => { body += b; });
      res.on('end', () => resolve(res.statusCode === 200 && body === 'OK'));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
    req.end();
  });
}

function tail(file, lines = 20) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startDockerd({ name, netns, dataRoot, socket, hostname = name, daemonConfig = {}, nameserver, extraArgs = [], binDir, env = {}, timeoutMs = 60_000 }) {
  if (!name || !netns || !dataRoot || !socket) throw new Error('startDockerd: name, netns, dataRoot and socket are required');
  if (nameserver !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(nameserver)) throw new Error(`startDockerd: nameserver must be an IPv4 address, got ${nameserver}`);
  if (!existsSync(`/run/netns/${netns}`)) throw new Error(`startDockerd: network namespace ${netns} does not exist`);
  if (await ping(socket)) throw new Error(`startDockerd: a dockerd already answers on ${socket}`);
  mkdirSync(dataRoot, { recursive: true });
  const configFile = join(dataRoot, 'daemon.json');
  const pidFile = join(dataRoot, 'dockerd.pid');
  const logFile = join(dataRoot, 'dockerd.log');
  writeFileSync(configFile, `${JSON.stringify(daemonConfig, null, 2)}\n`);
  const log = openSync(logFile, 'a');
  let child;
  try {
    child = spawn('unshare', ['-m', '-u', '--propagation', 'private', 'nsenter', `--net=/run/netns/${netns}`,
      NODE_INIT, hostname, dataRoot, socket, pidFile, configFile, nameserver ?? '-', ...extraArgs],
    { detached: true, stdio: ['ignore', log, log], env: childEnv({ ...env, ...(binDir ? { PATH: `${binDir}:${systemPath()}` } : {}) }) });
  } finally {
    closeSync(log);
  }
  child.unref();
  const pid = child.pid;
  let exited = false;
  child.on('exit', () => { exited = true; });
  // unshare and nsenter exec (no fork), and node-init.sh execs dockerd: the child's PID is dockerd's.
  const start = pidStartTime(pid);
  const deadline = Date.now() + timeoutMs;
  while (!(await ping(socket))) {
    if (exited || !isAlive(pid, start)) throw new Error(`dockerd ${name} exited during start; ${logFile}:\n${tail(logFile)}`);
    if (Date.now() > deadline) {
      await stopPid(pid, start, { graceMs: 5000 });
      throw new Error(`dockerd ${name} did not answer on ${socket} within ${timeoutMs / 1000} s; ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(200);
  }
  const node = { name, pid, startTime: start, mntns: namespaceOf(pid, 'mnt'), netns, socket, logFile, dataRoot };
  return { ...node, stop: () => stopDockerd(node) };
}

export async function stopDockerd({ pid, startTime, mntns, graceMs = 30_000 }) {
  await stopPid(pid, startTime, { graceMs });
  // containerd and shims live in the node's mount namespace; after dockerd is gone nothing else may stay there.
  if (mntns && mntns !== namespaceOf(process.pid, 'mnt')) {
    for (const p of pidsInNamespace('mnt', mntns)) await stopPid(p, pidStartTime(p), { graceMs: 5000 });
  }
}

export function nodeEnv(node) {
  return { DOCKER_HOST: `unix://${node.socket}` };
}

export function nodeCommand(node, cmd, args) {
  return ['nsenter', ['--target', String(node.pid), '--net', '--mount', '--uts', '--', cmd, ...args]];
}

export function execInNode(node, cmd, args, opts = {}) {
  if (!isAlive(node.pid, node.startTime)) return Promise.reject(new Error(`node ${node.name}: dockerd (pid ${node.pid}) is not running`));
  const [c, a] = nodeCommand(node, cmd, args);
  return run(c, a, { ...opts, env: { ...nodeEnv(node), ...opts.env } });
}

export function docker(socketOrNode, args, opts = {}) {
  const socket = typeof socketOrNode === 'string' ? socketOrNode : socketOrNode.socket;
  return run(DOCKER_CLI, ['-H', `unix://${socket}`, ...args], opts);
}
