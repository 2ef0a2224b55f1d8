/** Docker's view for DNS and LB, mapped from inspect JSON (pure: no I/O). */

export interface NetworkView { id: string; name: string; subnet?: string }
export interface ServiceView {
  id: string;
  name: string;
  endpointMode: 'vip' | 'dnsrr';
  /** network id → VIP address (without prefix) */
  vips: Record<string, string>;
  /** network id → aliases */
  aliases: Record<string, string[]>;
  /**
   * Containers of tasks Swarm is shutting down (desired state shutdown/remove) that still run. Docker takes them out
   * of DNS and the load balancer first, waits two seconds for gossip to converge, then stops them: so do we.
   */
  draining?: string[];
}
export interface ContainerView {
  id: string;
  name: string;
  hostname: string;
  /** Swarm task: its service's name and id (labels). */
  service?: string;
  serviceId?: string;
  /** Its network namespace (NetworkSettings.SandboxKey): how the node that runs it finds what it serves. */
  sandboxKey?: string;
  /** False while a HEALTHCHECK has not reported healthy: Docker publishes a task's names only once it is. */
  live: boolean;
  /** Its resolv.conf sets its own ndots (--dns-option ndots:N): Docker's ndotsSet rule. */
  ndots: boolean;
  /** network id → address, aliases and DNS names */
  networks: Record<string, { address: string; aliases: string[]; dnsNames: string[] }>;
}

/** Where Docker's view lives in etcd (docs/etcd-layout.md): managers write networks and services, each node its containers. */
export const viewRoot = (prefix: string): string => `${prefix}/swarmnet/docker/`;

/** One watch event of the view, as the planes that read it take it: what the key names, and the value as parsed JSON. */
export type ViewEvent = ({ kind: 'networks' | 'services'; id: string } | { kind: 'containers'; node: string; id: string }) & {
  /** The value of a put (undefined for a delete or a value that is not JSON: a put of it is a bad record). */
  raw: unknown;
};

/** A key under `root` and its value → the event; undefined for a key that is none of the view's records. */
export function parseViewEvent(root: string, type: 'put' | 'delete', key: string, value?: string): ViewEvent | undefined {
  if (!key.startsWith(root)) return undefined;
  const parts = key.slice(root.length).split('/');
  let raw: unknown;
  if (type === 'put') {
    try { raw = JSON.parse(value ?? ''); } catch { raw = undefined; }
  }
  if (parts[0] === 'containers' && parts.length === 3 && parts[1] && parts[2]) return { kind: 'containers', node: parts[1], id: parts[2], raw };
  if ((parts[0] === 'networks' || parts[0] === 'services') && parts.length === 2 && parts[1]) return { kind: parts[0], id: parts[1], raw };
  return undefined;
}

/** Checks for validating view records once, where a plane takes them in. */
export const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
export const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 253;

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export function networkView(inspect: unknown): NetworkView {
  const n = obj(inspect);
  const configs = obj(n.IPAM).Config;
  const subnet = Array.isArray(configs) ? str(obj(configs[0]).Subnet) : '';
  return { id: str(n.Id), name: str(n.Name), ...(subnet ? { subnet } : {}) };
}

/** Terminal task states: nothing runs any more, nothing to drain. */
const TERMINAL = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

/** The containers of a service's tasks that Swarm is shutting down while they still run (from `GET /tasks`). */
export function drainingContainers(tasks: unknown[]): string[] {
  const out: string[] = [];
  for (const t of tasks) {
    const task = obj(t);
    const status = obj(task.Status);
    const id = str(obj(status.ContainerStatus).ContainerID);
    if (id && ['shutdown', 'remove'].includes(str(task.DesiredState)) && !TERMINAL.has(str(status.State))) out.push(id);
  }
  return out.sort();
}

export function serviceView(inspect: unknown, tasks?: unknown[]): ServiceView {
  const s = obj(inspect);
  const spec = obj(s.Spec);
  // Spec.EndpointSpec is what the user asked; Endpoint.Spec what Swarm applied (present on older engines only).
  const mode = str(obj(spec.EndpointSpec).Mode) || str(obj(obj(s.Endpoint).Spec).Mode);
  const vips: Record<string, string> = {};
  for (const v of Array.isArray(obj(s.Endpoint).VirtualIPs) ? (obj(s.Endpoint).VirtualIPs as unknown[]) : []) {
    const addr = str(obj(v).Addr).split('/')[0];
    if (addr) vips[str(obj(v).NetworkID)] = addr;
  }
  const aliases: Record<string, string[]> = {};
  const nets = obj(spec.TaskTemplate).Networks ?? spec.Networks;
  for (const n of Array.isArray(nets) ? nets : []) aliases[str(obj(n).Target)] = strs(obj(n).Aliases);
  const draining = tasks ? drainingContainers(tasks) : [];
  return { id: str(s.ID), name: str(spec.Name), endpointMode: mode === 'dnsrr' ? 'dnsrr' : 'vip', vips, aliases, ...(draining.length ? { draining } : {}) };
}

export function containerView(inspect: unknown): ContainerView {
  const c = obj(inspect);
  const cfg = obj(c.Config);
  const labels = obj(cfg.Labels);
  const networks: ContainerView['networks'] = {};
  for (const [, n] of Object.entries(obj(obj(c.NetworkSettings).Networks))) {
    const e = obj(n);
    const id = str(e.NetworkID);
    if (!id) continue;
    networks[id] = { address: str(e.IPAddress), aliases: strs(e.Aliases), dnsNames: strs(e.DNSNames) };
  }
  const service = str(labels['com.docker.swarm.service.name']);
  const serviceId = str(labels['com.docker.swarm.service.id']);
  const sandboxKey = str(obj(c.NetworkSettings).SandboxKey);
  const health = str(obj(obj(c.State).Health).Status);
  const ndots = strs(obj(c.HostConfig).DnsOptions).some((o) => o.startsWith('ndots:'));
  return {
    id: str(c.Id), name: str(c.Name).replace(/^\//, ''), hostname: str(cfg.Hostname),
    ...(service ? { service } : {}), ...(serviceId ? { serviceId } : {}), ...(sandboxKey ? { sandboxKey } : {}),
    live: !health || health === 'healthy', ndots, networks,
  };
}
