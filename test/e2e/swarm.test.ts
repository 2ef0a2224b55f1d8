// End-to-end: a real 3-node swarm on this machine (scripts/lab/sandbox.mjs: network + mount namespaces, one dockerd
// each, etcd on a private bridge) with the swarmnet managed plugin enabled on every node. Setup once, checks in
// order (each builds on the previous one's network and service), teardown removes everything the sandbox made.
// Runs only with SWARMNET_E2E=1 (scripts/run-tests.mjs sets it when this machine is root with dockerd and unshare).
import test from 'ava';
import { Etcd3 } from 'etcd3';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { BRIDGE_PREFIX, ROUTE_PROTO, VETH_HOST_PREFIX, VETH_PEER_PREFIX, VXLAN_PREFIX } from '../../flannel/names.js';
import { docker, execInNode } from '../../scripts/lab/dockerd.mjs';
import { down, etcdEndpoint, LAYOUT, up, type Sandbox, type SandboxNode } from '../../scripts/lab/sandbox.mjs';
import {
  execInContainer, httpGetFromContainer, removeServiceAndNetwork, serviceContainers, waitServiceRunning, type TaskContainer,
} from '../../scripts/lab/services.mjs';

const enabled = process.env.SWARMNET_E2E === '1';
const PREFIX = '/flannel'; // ETCD_PREFIX default, not overridden by the sandbox
const NETWORK = 'e2e-net';
const SERVICE = 'e2e-web';
const DRIVER = LAYOUT.networkDriver;
/** Interface names the overlay owns: VXLAN devices, bridges, veth pairs. */
const OUR_LINK = new RegExp(`^(${[VXLAN_PREFIX, BRIDGE_PREFIX, VETH_HOST_PREFIX, VETH_PEER_PREFIX].join('|')})`);

interface Ctx {
  sb: Sandbox;
  etcd: Etcd3;
  baseline: { keys: Set<string>; links: Map<string, Set<string>>; rules: Map<string, Set<string>> };
  network?: { id: string; subnet: string; flannelId: string };
  tasks?: TaskContainer[];
}
let ctx: Ctx | undefined;
const need = (): Ctx => {
  if (!ctx) throw new Error('sandbox setup failed (see the before hook)');
  return ctx;
};

// ---- IPv4 helpers (pure)
const ipToInt = (ip: string): number => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
function inCidr(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split('/');
  const size = 2 ** (32 - Number(len));
  const start = ipToInt(base ?? '');
  return ipToInt(ip) >= start && ipToInt(ip) < start + size;
}
/** flannel key form of a CIDR: 10.128.0.0/20 -> 10.128.0.0-20 (docs/etcd-layout.md). */
const cidrKey = (cidr: string): string => cidr.replace('/', '-');

// ---- snapshots of what swarmnet may leave behind
async function etcdKeys(etcd: Etcd3): Promise<Set<string>> {
  return new Set(await etcd.getAll().prefix(`${PREFIX}/`).keys());
}
async function ourLinks(node: SandboxNode): Promise<Set<string>> {
  const out = execFileSync('ip', ['-n', node.netns, '-j', 'link', 'show'], { encoding: 'utf8' });
  return new Set((JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname).filter((n) => OUR_LINK.test(n)));
}
/**
 * Firewall lines of a node that are swarmnet's (our chain, comments, device names) or name the test network:
 * nftables (which includes Debian's default iptables-nft) and legacy iptables; plus routes with our protocol id.
 */
async function ourRules(node: SandboxNode, extra: string[] = []): Promise<Set<string>> {
  const nft = await execInNode(node, 'nft', ['list', 'ruleset']);
  const legacy = await execInNode(node, 'iptables-legacy-save', [], { allowFailure: true });
  const routes = await execInNode(node, 'ip', ['route', 'show', 'table', 'all', 'proto', String(ROUTE_PROTO)]);
  const stdout = `${nft.stdout}\n${legacy.stdout}\n${routes.stdout.split('\n').filter(Boolean).map((r) => `route ${r}`).join('\n')}`;
  const marks = [/swarmnet/i, /SWARMNET-/, /\bsw(vx|br|ve|vp)\d/, /^route /, ...extra.map((s) => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))];
  return new Set(stdout.split('\n').map((l) => l.trim()).filter((l) => marks.some((m) => m.test(l))));
}
const diff = <T>(now: Set<T>, before: Set<T>): T[] => [...now].filter((x) => !before.has(x));

/** Everything on this machine that carries the sandbox's names (LAYOUT): empty before `up` and after `down`. */
function sandboxFootprint(): string[] {
  const out: string[] = [];
  const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' });
  if (existsSync('/run/netns')) for (const n of readdirSync('/run/netns')) if (/^sn-node\d+$/.test(n)) out.push(`netns ${n}`);
  for (const l of JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string }[]) {
    if (l.ifname === LAYOUT.bridge || /^sn-v\d+$/.test(l.ifname)) out.push(`link ${l.ifname}`);
  }
  for (const m of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = m.split(' ')[4] ?? '';
    if (/\/sn-node\d+$/.test(point) || point.startsWith(LAYOUT.dataDir)) out.push(`mount ${point}`);
  }
  if (/\bsn-sandbox\b/.test(sh('nft', ['list', 'tables']))) out.push('nft table sn-sandbox');
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (argv.includes(LAYOUT.dataDir) || argv.includes('/run/sn-node')) out.push(`process ${d} ${argv.replace(/\0/g, ' ').slice(0, 80)}`);
    } catch { /* exited */ }
  }
  for (const f of readdirSync('/run')) if (/^sn-node\d+\.sock$/.test(f)) out.push(`socket /run/${f}`);
  if (existsSync(LAYOUT.dataDir)) out.push(`dir ${LAYOUT.dataDir}`);
  return out;
}

/** The plugin's warnings and errors from a node's dockerd log (its stdout/stderr land there), for failure reports. */
function pluginLog(node: SandboxNode, lines = 15): string {
  try {
    const text = execFileSync('tail', ['-n', '3000', node.logFile], { encoding: 'utf8' });
    const ours = text.split('\n').filter((l) => l.includes(' plugin=') && /\\"level\\":(4|5|6)0/.test(l));
    return ours.slice(-lines).map((l) => l.replace(/^.*msg="(.*)" plugin=.*$/, '$1').replace(/\\"/g, '"')).join('\n') || '(no plugin warnings)';
  } catch (e) {
    return `(no log: ${(e as Error).message})`;
  }
}
function logPlugins(t: { log: (...a: unknown[]) => void }): void {
  for (const n of ctx?.sb.nodes ?? []) t.log(`${n.name} plugin warnings/errors:\n${pluginLog(n)}`);
}

if (!enabled) {
  test.skip('end-to-end suite (runs with SWARMNET_E2E=1, as root with dockerd and unshare: npm test does this)', () => {});
} else {
  test.before('sandbox up: 3 nodes, etcd, swarm, plugin on every node', async (t) => {
    t.timeout(15 * 60_000, 'sandbox up (a cold machine builds the plugin)');
    const started = Date.now();
    const sb = await up({ nodes: 3, managers: 1, logLevel: 'debug', log: (m: string) => t.log(m) });
    const etcd = new Etcd3({ hosts: etcdEndpoint() });
    const links = new Map<string, Set<string>>();
    const rules = new Map<string, Set<string>>();
    for (const n of sb.nodes) {
      links.set(n.name, await ourLinks(n));
      rules.set(n.name, await ourRules(n));
    }
    ctx = { sb, etcd, baseline: { keys: await etcdKeys(etcd), links, rules } };
    t.log(`sandbox up in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  });

  test.after.always('sandbox down leaves no namespace, link, mount, nft table, process or directory of its own', async (t) => {
    t.timeout(5 * 60_000);
    ctx?.etcd.close();
    if (process.env.SWARMNET_E2E_KEEP === '1') {
      t.log('SWARMNET_E2E_KEEP=1: sandbox left up for inspection (npm run sandbox -- status / exec / down)');
      return;
    }
    await down({ log: (m: string) => t.log(m) });
    t.deepEqual(sandboxFootprint(), []);
  });

  test.serial('the plugin is enabled on every node and answers Plugin.Activate', async (t) => {
    const { sb } = need();
    for (const n of sb.nodes) {
      const { stdout } = await docker(n, ['plugin', 'inspect', '--format', '{{.Enabled}} {{.ID}}', LAYOUT.pluginAlias]);
      const [enabledFlag, id] = stdout.trim().split(' ');
      t.is(enabledFlag, 'true', `${n.name}: plugin not enabled`);
      // The plugin's socket exists only in the node's mount namespace: ask from there, with this very node binary.
      const socket = `/run/docker/plugins/${id}/swarmnet.sock`;
      const script = `require('http').request({socketPath:process.argv[1],path:'/Plugin.Activate',method:'POST'},(r)=>{let b='';r.on('data',(d)=>b+=d);r.on('end',()=>process.stdout.write(b))}).end()`;
      const r = await execInNode(n, process.execPath, ['-e', script, socket]);
      const body = JSON.parse(r.stdout) as { Implements: string[] };
      t.deepEqual([...body.Implements].sort(), ['IpamDriver', 'NetworkDriver'], `${n.name}: ${r.stdout}`);
    }
  });

  test.serial(`docker network create --driver ${DRIVER} --ipam-driver ${DRIVER} --attachable succeeds`, async (t) => {
    const c = need();
    const r = await docker(c.sb.manager, ['network', 'create', '--driver', DRIVER, '--ipam-driver', DRIVER, '--attachable', NETWORK], { allowFailure: true });
    if (r.code !== 0) logPlugins(t);
    t.is(r.code, 0, r.stderr);
    // Swarm's allocator asks the plugin for the pool just after the create returns: wait for it to show.
    let info: { Id: string; Scope: string; Attachable: boolean; IPAM?: { Config?: { Subnet?: string }[] } } = { Id: '', Scope: '', Attachable: false };
    let subnet: string | undefined;
    for (let i = 0; i < 60 && !subnet; i++) {
      if (i) await new Promise((res) => setTimeout(res, 500));
      info = JSON.parse((await docker(c.sb.manager, ['network', 'inspect', NETWORK])).stdout)[0];
      subnet = info.IPAM?.Config?.[0]?.Subnet;
    }
    t.truthy(subnet, `no subnet in ${JSON.stringify(info.IPAM)}`);
    t.true(inCidr(subnet!.split('/')[0]!, '10.128.0.0/10'), `subnet ${subnet} outside AVAILABLE_SUBNETS`);
    t.is(info.Scope, 'swarm');
    t.true(info.Attachable);
    c.network = { id: info.Id, subnet: subnet!, flannelId: cidrKey(subnet!) };
    const config = await c.etcd.get(`${PREFIX}/networks/${c.network.flannelId}/config`).string();
    t.truthy(config, 'no flannel network config in etcd');
    t.is(JSON.parse(config!).Network, subnet);
  });

  test.serial('a 3-replica service starts with one task on each of the 3 nodes', async (t) => {
    const c = need();
    t.truthy(c.network, 'needs the network of the previous check');
    t.timeout(4 * 60_000);
    await docker(c.sb.manager, ['service', 'create', '--detach', '--no-resolve-image', '--name', SERVICE, '--replicas', '3',
      '--replicas-max-per-node', '1', '--stop-grace-period', '1s', '--network', NETWORK, '--hostname', '{{.Node.Hostname}}-web',
      'swarmnet/busybox', 'sh', '-c', 'hostname > /www/index.html && exec httpd -f -p 8080 -h /www']);
    const started = Date.now();
    try {
      await waitServiceRunning(c.sb.manager, SERVICE, 3, 150_000);
    } catch (e) {
      logPlugins(t);
      throw e;
    }
    t.log(`3 tasks running after ${((Date.now() - started) / 1000).toFixed(0)} s`);
    c.tasks = await serviceContainers(c.sb.nodes, SERVICE, NETWORK);
    t.deepEqual(c.tasks.map((x) => x.node.name).sort(), ['node1', 'node2', 'node3']);
  });

  test.serial("each task's address is in its own node's host subnet (flannel lease with PublicIP = node address)", async (t) => {
    const c = need();
    t.truthy(c.tasks?.length, 'needs the tasks of the previous check');
    const leases = await c.etcd.getAll().prefix(`${PREFIX}/networks/${c.network!.flannelId}/subnets/`).strings();
    const byNode = new Map<string, string[]>();
    for (const [key, value] of Object.entries(leases)) {
      const cidr = key.slice(key.lastIndexOf('/') + 1).replace(/-(\d+)$/, '/$1');
      const publicIp = (JSON.parse(value) as { PublicIP: string }).PublicIP;
      byNode.set(publicIp, [...(byNode.get(publicIp) ?? []), cidr]);
    }
    t.log(`leases: ${JSON.stringify(Object.fromEntries(byNode))}`);
    for (const task of c.tasks!) {
      t.truthy(task.address, `${task.node.name}: task ${task.name} has no address on ${NETWORK}`);
      const own = byNode.get(task.node.address) ?? [];
      t.true(own.length > 0, `${task.node.name} (${task.node.address}) has no host subnet lease`);
      t.true(own.some((s) => inCidr(task.address!, s)), `${task.node.name}: ${task.address} not in its host subnet(s) ${own.join(', ')}`);
      t.true(inCidr(task.address!, c.network!.subnet), `${task.address} not in ${c.network!.subnet}`);
    }
    t.is(new Set(c.tasks!.map((x) => x.address)).size, 3, 'addresses are not unique');
  });

  // Docker reports a network's driver as the name it was created with ('swarmnet:latest', LAYOUT.networkDriver): the
  // view must recognise that form, or it writes no record at all (the bug this caught, fixed in d2bdb9b).
  test.serial("Docker's view in etcd: the network and every task's container with its address", async (t) => {
    const c = need();
    t.truthy(c.tasks?.length === 3, 'needs the 3 tasks');
    const net = `${PREFIX}/swarmnet/docker/networks/${c.network!.id}`;
    const missing = async (): Promise<string[]> => {
      const out: string[] = [];
      if (!(await c.etcd.get(net).string())) out.push(net);
      for (const task of c.tasks!) {
        const key = `${PREFIX}/swarmnet/docker/containers/${task.node.name}/${task.id}`;
        const v = await c.etcd.get(key).string();
        const view = v ? (JSON.parse(v) as { networks: Record<string, { address?: string }> }) : undefined;
        if (view?.networks[c.network!.id]?.address?.split('/')[0] !== task.address) out.push(`${key} (${v ?? 'absent'})`);
      }
      return out;
    };
    let left = await missing();
    for (let i = 0; i < 15 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      left = await missing();
    }
    t.deepEqual(left, []);
  });

  test.serial('tasks on different nodes reach each other by IP: ICMP', async (t) => {
    const c = need();
    t.truthy(c.tasks?.length === 3, 'needs the 3 tasks');
    for (const from of c.tasks!) {
      for (const to of c.tasks!.filter((x) => x.node.name !== from.node.name)) {
        const r = await execInContainer(from.node, from.id, ['ping', '-c', '2', '-W', '2', to.address!]);
        t.is(r.code, 0, `${from.node.name} -> ${to.node.name} ${to.address}: ${r.stdout}${r.stderr}`);
      }
    }
  });

  test.serial('tasks on different nodes reach each other by IP: TCP (HTTP to busybox httpd)', async (t) => {
    const c = need();
    t.truthy(c.tasks?.length === 3, 'needs the 3 tasks');
    for (const from of c.tasks!) {
      for (const to of c.tasks!.filter((x) => x.node.name !== from.node.name)) {
        const r = await httpGetFromContainer(from.node, from.id, to.address!, 8080);
        t.true(r.ok, `${from.node.name} -> ${to.node.name} ${to.address}:8080: exit ${r.code} ${r.stderr}`);
        t.is(r.body, `${to.node.name}-web`);
      }
    }
  });

  test.serial('a plain container attached to the network (docker run) gets an address of its node and reaches a task', async (t) => {
    const c = need();
    t.truthy(c.tasks?.length === 3, 'needs the 3 tasks');
    const node = c.sb.nodes[1]!;
    const target = c.tasks!.find((x) => x.node.name !== node.name)!;
    const run = await docker(node, ['run', '-d', '--rm', '--stop-timeout', '1', '--network', NETWORK, 'swarmnet/busybox', 'sleep', '300'], { allowFailure: true });
    if (run.code !== 0) logPlugins(t);
    t.is(run.code, 0, run.stderr);
    const id = run.stdout.trim();
    try {
      const nets = JSON.parse((await docker(node, ['inspect', '--format', '{{json .NetworkSettings.Networks}}', id])).stdout);
      const address: string | undefined = nets[NETWORK]?.IPAddress;
      t.truthy(address, `no address on ${NETWORK}: ${JSON.stringify(nets)}`);
      const sameNode = c.tasks!.find((x) => x.node.name === node.name)!;
      // Same host subnet as the task Swarm placed on this node (checked against the lease above).
      t.true(inCidr(address!, `${sameNode.address}/${sameNode.prefixLen}`), `${address} not in ${node.name}'s subnet ${sameNode.address}/${sameNode.prefixLen}`);
      const ping = await execInContainer(node, id, ['ping', '-c', '1', '-W', '2', target.address!]);
      t.is(ping.code, 0, `${node.name} container -> ${target.node.name} ${target.address}: ${ping.stdout}${ping.stderr}`);
    } finally {
      await docker(node, ['rm', '-f', id], { allowFailure: true });
    }
  });

  test.serial('removing the service and the network leaves no interfaces, nft/iptables rules or etcd keys behind', async (t) => {
    const c = need();
    t.truthy(c.network, 'needs the network');
    t.timeout(3 * 60_000);
    const extra = [c.network!.subnet.split('/')[0]!];
    const leftovers = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const k of diff(await etcdKeys(c.etcd), c.baseline.keys)) out.push(`etcd key ${k}`);
      for (const n of c.sb.nodes) {
        for (const l of diff(await ourLinks(n), c.baseline.links.get(n.name)!)) out.push(`${n.name}: link ${l}`);
        for (const r of diff(await ourRules(n, extra), c.baseline.rules.get(n.name)!)) out.push(`${n.name}: rule ${r}`);
      }
      return out;
    };
    // The check can see what it looks for: while the network is in use, each node has its devices and keys exist.
    const inUse = await leftovers();
    t.true(inUse.some((x) => x.startsWith('etcd key')), `no etcd keys of the network found: ${inUse.join(', ')}`);
    for (const n of c.sb.nodes) t.true(inUse.some((x) => x.startsWith(`${n.name}: link`)), `${n.name}: no swarmnet links while in use`);

    await removeServiceAndNetwork(c.sb.manager, c.sb.nodes, SERVICE, NETWORK);
    // Cleanup is partly asynchronous (Docker tells each node, the overlay reconciles): give it a bounded time.
    let left = await leftovers();
    const deadline = Date.now() + 60_000;
    while (left.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2000));
      left = await leftovers();
    }
    if (left.length) logPlugins(t);
    t.deepEqual(left, []);
  });
}
