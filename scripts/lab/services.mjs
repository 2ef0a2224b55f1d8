// Swarm services on the sandbox, as the demo and the end-to-end tests use them: wait for tasks, find each task's
// container on its node and its address on a network, run a command inside a task.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { docker } from './dockerd.mjs';
import { waitFor } from '../lib/proc.mjs';

/**
 * `docker service <args>` (update, scale) retried when Swarm refuses it as "update out of sequence": the CLI reads
 * the service's version and writes against it, and Swarm bumps that version itself (VIP allocation right after a
 * create, a rolling update's status), so a write racing it is refused — moby's own tests retry the same way
 * (moby/moby#39560, swarmkit#1379).
 */
export async function changeService(manager, args, { attempts = 10 } = {}) {
  for (let i = 1; ; i++) {
    try {
      return await docker(manager, ['service', ...args]);
    } catch (e) {
      if (i >= attempts || !/update out of sequence/.test(String(e?.stderr ?? e?.message))) throw e;
      await new Promise((r) => setTimeout(r, 200 * i));
    }
  }
}

/** Tasks of a service that should be running: [{ node (hostname), state, error }]. */
export async function serviceTasks(manager, service) {
  const { stdout } = await docker(manager, ['service', 'ps', '--no-trunc', '--filter', 'desired-state=running',
    '--format', '{{json .}}', service]);
  return stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).map((t) => ({ node: t.Node, state: t.CurrentState, error: t.Error }));
}

/** Waits until `replicas` tasks run; the error names each task's state and error (e.g. "missing plugin"). */
export async function waitServiceRunning(manager, service, replicas, timeoutMs = 120_000) {
  let last = [];
  try {
    await waitFor(`${replicas} running task(s) of ${service}`, async () => {
      last = await serviceTasks(manager, service);
      return last.filter((t) => t.state.startsWith('Running')).length === replicas;
    }, { timeoutMs, intervalMs: 1000 });
  } catch (e) {
    const detail = last.map((t) => `  ${t.node || '(unassigned)'}: ${t.state}${t.error ? ` — ${t.error}` : ''}`).join('\n');
    throw new Error(`${e.message}\n${detail}`);
  }
  return last;
}

/**
 * The running containers of a service on every node, with their address on `network` (a name):
 * [{ node (the sandbox node record), id, name, address, prefixLen }].
 */
export async function serviceContainers(nodes, service, network) {
  const out = [];
  for (const node of nodes) {
    const { stdout } = await docker(node, ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`]);
    for (const id of stdout.trim().split('\n').filter(Boolean)) {
      const info = JSON.parse((await docker(node, ['inspect', id])).stdout)[0];
      const net = info.NetworkSettings.Networks[network];
      out.push({ node, id: info.Id, name: info.Name.replace(/^\//, ''), address: net?.IPAddress, prefixLen: net?.IPPrefixLen });
    }
  }
  return out;
}

/** Runs argv inside a container on its node (docker exec); resolves { code, stdout, stderr } without throwing. */
export function execInContainer(node, id, argv, timeoutMs = 20_000) {
  return docker(node, ['exec', id, ...argv], { allowFailure: true, timeoutMs });
}

/**
 * An HTTP GET / from inside a container to address:port with busybox nc (busybox-static's `wget -T` segfaults).
 * Resolves { ok, body, code, stderr }. The address travels as an argument, never as shell text.
 */
export async function httpGetFromContainer(node, id, address, port, timeoutSeconds = 3) {
  const script = 'printf \'GET / HTTP/1.0\\r\\n\\r\\n\' | nc -w "$3" "$1" "$2"';
  const r = await execInContainer(node, id, ['sh', '-c', script, 'sh', address, String(port), String(timeoutSeconds)], (timeoutSeconds + 10) * 1000);
  const [head, ...rest] = r.stdout.split(/\r?\n\r?\n/);
  const ok = r.code === 0 && /^HTTP\/1\.[01] 200/.test(head);
  return { ok, body: rest.join('\n\n').trim(), code: r.code, stderr: r.stderr.trim() };
}

/** Removes a service and a network if they exist (by name), waiting for the service's containers to go. */
export async function removeServiceAndNetwork(manager, nodes, service, network) {
  if (service) {
    await docker(manager, ['service', 'rm', service], { allowFailure: true });
    await waitFor(`${service}'s containers to stop`, async () => {
      for (const n of nodes) {
        const { stdout } = await docker(n, ['ps', '-aq', '--filter', `label=com.docker.swarm.service.name=${service}`]);
        if (stdout.trim()) return false;
      }
      return true;
    }, { timeoutMs: 60_000 });
  }
  if (network) {
    // The network can stay "in use" for a moment after its last task is gone.
    await waitFor(`network ${network} removed`, async () => {
      const r = await docker(manager, ['network', 'rm', network], { allowFailure: true });
      return r.code === 0 || /not found/i.test(r.stderr);
    }, { timeoutMs: 30_000 });
  }
}

/** PID of a node's plugin process (its entrypoint, in the node's network namespace), from /proc. */
export function pluginPid(node) {
  // A namespace is its nsfs inode, whether reached through a bind-mounted file or /proc/<pid>/ns/net.
  const netns = statSync(`/run/netns/${node.netns}`).ino;
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('/opt/swarmnet/dist/plugin/main.js')) continue;
      if (statSync(`/proc/${d}/ns/net`).ino === netns) return Number(d);
    } catch { /* exited */ }
  }
  throw new Error(`${node.name}: no plugin process in netns ${node.netns}`);
}
