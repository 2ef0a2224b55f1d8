// The chaos suite's invariant checker: what must hold on the sandbox once a fault is over. Each check compares what
// Docker says runs with what swarmnet recorded (etcd) and programmed (DNS answers, load balancer, node findings).
import type { Etcd3 } from 'etcd3';
import { docker, execInNode } from '../../scripts/lab/dockerd.mjs';
import { run } from '../../scripts/lib/proc.mjs';
import type { SandboxNode } from '../../scripts/lab/sandbox.mjs';
import type { Finding } from '../../ops/doctor.js';
import { checkInvariants } from '../helpers/invariants.js';
import { backendsOn, hexIp } from '../helpers/sandbox-state.js';

export const PREFIX = '/flannel';
const CLI = new URL('../../dist/plugin/cli.js', import.meta.url).pathname;

export interface ChaosNetwork { name: string; id: string; flannelId: string }
export interface Attached { node: string; container: string; address: string }


/** Running containers with an address on the network, on every given node (from each node's dockerd). */
export async function attached(nodes: SandboxNode[], network: ChaosNetwork): Promise<Attached[]> {
  const out: Attached[] = [];
  for (const node of nodes) {
    const ids = (await docker(node, ['ps', '-q'])).stdout.split('\n').filter(Boolean);
    if (!ids.length) continue;
    for (const info of JSON.parse((await docker(node, ['inspect', ...ids])).stdout) as { Id: string; State: { Running: boolean }; NetworkSettings: { Networks: Record<string, { IPAddress?: string }> } }[]) {
      const address = info.NetworkSettings.Networks[network.name]?.IPAddress;
      if (info.State.Running && address) out.push({ node: node.name, container: info.Id.slice(0, 12), address });
    }
  }
  return out;
}

/**
 * The A records a container's resolver gives for a name, the sorted addresses ([] when it failed): dig over TCP in
 * the container's network namespace, so a large answer (tasks.<svc> of 30 tasks) is whole rather than truncated.
 */
export async function lookupIn(node: SandboxNode, container: string, name: string): Promise<string[]> {
  const pid = (await docker(node, ['inspect', '--format', '{{.State.Pid}}', container], { allowFailure: true })).stdout.trim();
  if (!/^[1-9]\d*$/.test(pid)) return [];
  const r = await run('nsenter', [`--net=/proc/${pid}/ns/net`, 'dig', '+tcp', '+short', '+time=3', '+tries=2', '@127.0.0.11', name, 'A'], { allowFailure: true, timeoutMs: 20_000 });
  if (r.code !== 0) return [];
  return r.stdout.split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)).sort();
}

export interface ServiceView { name: string; vip: string; tasks: string[] }

/** A service's VIP on the network and its running tasks' addresses, as Docker has them. */
export async function serviceView(manager: SandboxNode, nodes: SandboxNode[], network: ChaosNetwork, name: string): Promise<ServiceView> {
  const svc = JSON.parse((await docker(manager, ['service', 'inspect', name])).stdout)[0];
  const vip = (svc.Endpoint.VirtualIPs as { NetworkID: string; Addr: string }[] | undefined)?.find((v) => v.NetworkID === network.id)?.Addr.split('/')[0] ?? '';
  const tasks: string[] = [];
  for (const node of nodes) {
    const ids = (await docker(node, ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${name}`])).stdout.split('\n').filter(Boolean);
    if (!ids.length) continue;
    for (const info of JSON.parse((await docker(node, ['inspect', ...ids])).stdout) as { State: { Running: boolean }; NetworkSettings: { Networks: Record<string, { IPAddress?: string }> } }[]) {
      const a = info.NetworkSettings.Networks[network.name]?.IPAddress;
      if (info.State.Running && a) tasks.push(a);
    }
  }
  return { name, vip, tasks: tasks.sort() };
}

/**
 * Every violation on the live nodes (empty when all hold):
 * - the address plan in etcd (tests/helpers/invariants.ts);
 * - no address held by two running containers; each running container's address recorded for its node;
 * - no address record of a live node without a running container holding it;
 * - no problem any node publishes (`swarmnet doctor`: reconcilers failing, drift they could not repair);
 * - for each service: the name answers its VIP and tasks.<name> its running tasks in every node's `probe`
 *   container, and every node's load balancer has exactly those tasks behind the VIP.
 */
export async function violations(o: { etcd: Etcd3; live: SandboxNode[]; network: ChaosNetwork; services: string[]; probes: Map<string, string> }): Promise<string[]> {
  const bad = [...await checkInvariants(o.etcd, PREFIX)];
  const running = await attached(o.live, o.network);
  const byAddress = new Map<string, Attached[]>();
  for (const a of running) byAddress.set(a.address, [...(byAddress.get(a.address) ?? []), a]);
  for (const [address, holders] of byAddress) if (holders.length > 1) bad.push(`address ${address} held by ${holders.map((h) => `${h.node}/${h.container}`).join(' and ')}`);
  const recordsPrefix = `${PREFIX}/swarmnet/addresses/${o.network.flannelId}/`;
  const records = new Map(Object.entries(await o.etcd.getAll().prefix(recordsPrefix).strings()).map(([k, v]) => [k.slice(recordsPrefix.length), (JSON.parse(v) as { node: string }).node]));
  for (const a of running) {
    const owner = records.get(hexIp(a.address));
    if (owner !== a.node) bad.push(`${a.node}/${a.container} ${a.address}: address record ${owner ? `names ${owner}` : 'missing'}`);
  }
  const live = new Set(o.live.map((n) => n.name));
  const held = new Set(running.map((a) => `${a.node} ${hexIp(a.address)}`));
  for (const [hex, node] of records) if (live.has(node) && !held.has(`${node} ${hex}`)) bad.push(`address record ${hex} of ${node} without a running container`);

  const manager = o.live.find((n) => n.role === 'manager') ?? o.live[0]!;
  const doctor = await execInNode(manager, process.execPath, [CLI, 'doctor', '--json'], { allowFailure: true });
  try {
    for (const f of (JSON.parse(doctor.stdout) as { findings: Finding[] }).findings) {
      if (f.severity === 'problem' && (!f.node || live.has(f.node))) bad.push(`doctor: ${f.node ?? 'cluster'} ${f.plane}: ${f.what}`);
    }
  } catch {
    bad.push(`swarmnet doctor did not answer: ${doctor.stderr.trim().slice(0, 200)}`);
  }

  for (const name of o.services) {
    const view = await serviceView(manager, o.live, o.network, name);
    if (!view.vip) { bad.push(`${name}: no VIP on ${o.network.name}`); continue; }
    for (const node of o.live) {
      const probe = o.probes.get(node.name);
      if (probe) {
        const vip = await lookupIn(node, probe, name);
        if (vip.join() !== view.vip) bad.push(`${node.name}: ${name} resolves to [${vip.join(' ')}], Docker has VIP ${view.vip}`);
        const tasks = await lookupIn(node, probe, `tasks.${name}`);
        if (tasks.join() !== view.tasks.join()) bad.push(`${node.name}: tasks.${name} resolves to [${tasks.join(' ')}], Docker runs [${view.tasks.join(' ')}]`);
      }
      const backends = await backendsOn(node, view.vip);
      if (backends.join() !== view.tasks.join()) bad.push(`${node.name}: load balancer has [${backends.join(' ')}] behind ${name}'s VIP ${view.vip}, Docker runs [${view.tasks.join(' ')}]`);
    }
  }
  return bad;
}

/** Polls the checker until it finds nothing (converged) or guardMs pass: { ms to converge, last violations }. */
export async function converge(check: () => Promise<string[]>, guardMs: number): Promise<{ ms: number; bad: string[] }> {
  const start = Date.now();
  for (;;) {
    let bad: string[];
    try {
      bad = await check();
    } catch (e) {
      bad = [`checker failed: ${(e as Error).message.split('\n')[0]}`];
    }
    if (!bad.length || Date.now() - start > guardMs) return { ms: Date.now() - start, bad };
    await new Promise((r) => setTimeout(r, 1000));
  }
}
