import test, { type ExecutionContext } from 'ava';
import dnsPacket from 'dns-packet';
import { createHash } from 'node:crypto';
import { logger } from '../../common/log.js';
import { ClusterTable, type SandboxView } from '../../dns/cluster-table.js';
import { DnsInjector } from '../../dns/inject/injector.js';
import type { InjectorKernel, Served } from '../../dns/inject/kernel.js';
import { DnsServer } from '../../dns/server.js';
import { Resolver } from '../../dns/resolver.js';
import { buildTable, type Table, type TableInput } from '../../dns/table.js';

/**
 * DNS scoping, exhaustively: a container never gets an answer for a network it is not attached to. One topology
 * (5 networks, one with a dotted mixed-case name; VIP and DNSRR services on different subsets, spec and network
 * aliases, an unhealthy and a draining task, a service without tasks, plain containers on one or several networks,
 * a dotted container name that looks like <name>.<network>, containers on no swarmnet network) is asked, from EVERY
 * container's view, for EVERY name that exists anywhere (names, aliases, short IDs, hostnames, service names,
 * tasks.<svc>, each of them as <name>.<network> for every network, PTR of every address and VIP), through the
 * resolver's answer path (Resolver.resolve on a datagram), for the plugin's table (dns/cluster-table.ts, fed as
 * etcd watch events, both as a snapshot and one event at a time after the views exist) and the standalone server's
 * (dns/table.ts, with IPv6), in both modes. Checked for each (container, name):
 *   - A (and AAAA): answered exactly when the name is on a network the container is attached to (a model of
 *     Docker's rules, written from docs/dns.md, decides), else forwarded; every address is in one of the
 *     container's networks' subnets; all networks' addresses with compat=false, a subset with compat=true;
 *   - TXT: NODATA exactly when the name is on one of its networks, else forwarded (no existence leak);
 *   - PTR: answered exactly for an endpoint address on one of its networks (`<container>.<network>`), never for a
 *     VIP or an address elsewhere.
 */

interface Net { id: string; name: string; prefix: string; v6: string; internal?: boolean }
interface Ep { host: number; aliases?: string[]; v6?: boolean }
interface Ctr { name: string; hostname?: string; service?: string; live?: boolean; node?: string; eps: Record<string, Ep> }
interface Svc { id: string; name: string; mode: 'vip' | 'dnsrr'; nets: Record<string, { vip?: number; aliases?: string[] }>; draining?: string[] }

const NETS: Net[] = [
  { id: 'n1', name: 'front', prefix: '10.11.0.', v6: 'fd11::' },
  { id: 'n2', name: 'back', prefix: '10.12.0.', v6: 'fd12::' },
  { id: 'n3', name: 'data', prefix: '10.13.0.', v6: 'fd13::', internal: true },
  { id: 'n4', name: 'Mgmt.Net', prefix: '10.14.0.', v6: 'fd14::' },
  { id: 'n5', name: 'spare', prefix: '10.15.0.', v6: 'fd15::' },
];
const SERVICES: Svc[] = [
  { id: 's1', name: 'web', mode: 'vip', nets: { n1: { vip: 250, aliases: ['www'] }, n2: { vip: 250, aliases: ['web-back'] } } },
  { id: 's2', name: 'stack_api', mode: 'vip', nets: { n2: { vip: 251, aliases: ['api'] }, n3: { vip: 251, aliases: ['api', 'api-data'] } }, draining: ['stack_api.4'] },
  { id: 's3', name: 'rr', mode: 'dnsrr', nets: { n3: { aliases: ['rr-data'] }, n4: { aliases: ['rr-mgmt'] } } },
  { id: 's4', name: 'solo', mode: 'vip', nets: { n5: { vip: 250, aliases: ['solo-alias'] } } },
  { id: 's5', name: 'idle', mode: 'vip', nets: { n1: { vip: 249 } } },
];
const CONTAINERS: Ctr[] = [
  { name: 'web.1', service: 's1', eps: { n1: { host: 10, v6: true }, n2: { host: 10 } } },
  { name: 'web.2', service: 's1', node: 'other', eps: { n1: { host: 11 }, n2: { host: 11 } } },
  { name: 'stack_api.1', service: 's2', eps: { n2: { host: 20 }, n3: { host: 20 } } },
  { name: 'stack_api.2', service: 's2', node: 'other', eps: { n2: { host: 21 }, n3: { host: 21 } } },
  { name: 'stack_api.3', service: 's2', live: false, eps: { n2: { host: 22 }, n3: { host: 22 } } },
  { name: 'stack_api.4', service: 's2', eps: { n2: { host: 23 }, n3: { host: 23 } } },
  { name: 'rr.1', service: 's3', eps: { n3: { host: 30 }, n4: { host: 30 } } },
  { name: 'rr.2', service: 's3', node: 'other', eps: { n3: { host: 31 }, n4: { host: 31 } } },
  { name: 'solo.1', service: 's4', eps: { n5: { host: 40 } } },
  { name: 'alpha', hostname: 'alpha-host', eps: { n1: { host: 100, aliases: ['shared', 'gamma'] } } },
  { name: 'beta', node: 'other', eps: { n2: { host: 101, aliases: ['shared'], v6: true }, n3: { host: 101, aliases: ['beta-data'] } } },
  { name: 'gamma', hostname: 'gamma', eps: { n4: { host: 102 } } },
  { name: 'delta.front', eps: { n2: { host: 103 } } },
  { name: 'delta', eps: { n1: { host: 104 } } },
  { name: 'Multi', hostname: 'multi-host', eps: { n1: { host: 105, aliases: ['m1'], v6: true }, n2: { host: 105 }, n3: { host: 105 }, n4: { host: 105, aliases: ['m4'] } } },
  { name: 'client', eps: { n1: { host: 106 } } },
  // Not on any swarmnet network: a bridge endpoint (a network swarmnet does not know) and the host network.
  { name: 'loner', eps: { bridge: { host: 2, aliases: ['loner-alias'] } } },
  { name: 'hostnet', eps: {} },
];
const BRIDGE: Net = { id: 'bridge', name: 'bridge', prefix: '172.17.0.', v6: 'fd17::' };

const netById = new Map([...NETS, BRIDGE].map((n) => [n.id, n]));
const svcById = new Map(SERVICES.map((s) => [s.id, s]));
const idOf = (c: Ctr): string => createHash('sha256').update(c.name).digest('hex');
const hostnameOf = (c: Ctr): string => c.hostname ?? idOf(c).slice(0, 12);
const v4 = (net: string, host: number): string => `${netById.get(net)!.prefix}${host}`;
const v6 = (net: string, host: number): string => `${netById.get(net)!.v6}${host.toString(16)}`;
const isSwarmnet = (net: string): boolean => NETS.some((n) => n.id === net);
const attached = (c: Ctr): string[] => Object.keys(c.eps).filter(isSwarmnet);
const hasName = (c: Ctr): boolean => c.live !== false && !svcById.get(c.service ?? '')?.draining?.includes(c.name);

// ---- The model: what each network holds, by Docker's rules (docs/dns.md), from the declaration above ----------
interface Owned { v4: Set<string>; v6: Set<string> }
interface NetModel { names: Map<string, Owned>; ptr: Map<string, string> }

function model(withV6: boolean): Map<string, NetModel> {
  const m = new Map<string, NetModel>(NETS.map((n) => [n.id, { names: new Map(), ptr: new Map() }]));
  const add = (net: string, name: string, addr: string): void => {
    const names = m.get(net)!.names;
    const o = names.get(name.toLowerCase()) ?? { v4: new Set(), v6: new Set() };
    (addr.includes(':') ? o.v6 : o.v4).add(addr);
    names.set(name.toLowerCase(), o);
  };
  for (const c of CONTAINERS) {
    if (!hasName(c)) continue;
    for (const net of attached(c)) {
      const e = c.eps[net]!;
      const addrs = [v4(net, e.host), ...(withV6 && e.v6 ? [v6(net, e.host)] : [])];
      const svc = c.service ? svcById.get(c.service) : undefined;
      const svcNames = svc ? [svc.name, ...(svc.nets[net]?.aliases ?? [])] : [];
      for (const a of addrs) {
        for (const n of [c.name, ...(e.aliases ?? []), idOf(c).slice(0, 12), hostnameOf(c)]) add(net, n, a);
        for (const n of svcNames) { add(net, `tasks.${n}`, a); if (svc!.mode === 'dnsrr') add(net, n, a); }
        m.get(net)!.ptr.set(a, `${c.name}.${netById.get(net)!.name}`.toLowerCase());
      }
    }
  }
  for (const s of SERVICES) {
    for (const [net, sn] of Object.entries(s.nets)) if (s.mode === 'vip' && sn.vip) for (const n of [s.name, ...(sn.aliases ?? [])]) add(net, n, v4(net, sn.vip));
  }
  return m;
}

/** The model's answer: the first variation (`a.b.c`; `a.b` on c; `a` on b.c) found on an attached network, every such network's addresses. */
function expected(m: Map<string, NetModel>, nets: string[], qname: string): Owned | undefined {
  const q = qname.toLowerCase();
  const splits: [string, string][] = [[q, '']];
  for (let i = q.lastIndexOf('.'); i > 0; i = q.lastIndexOf('.', i - 1)) splits.push([q.slice(0, i), q.slice(i + 1)]);
  for (const [name, netName] of splits) {
    const on = nets.filter((n) => (!netName || netById.get(n)!.name.toLowerCase() === netName) && m.get(n)!.names.has(name));
    if (!on.length) continue;
    const out: Owned = { v4: new Set(), v6: new Set() };
    for (const n of on) for (const f of ['v4', 'v6'] as const) for (const a of m.get(n)!.names.get(name)![f]) out[f].add(a);
    return out;
  }
  return undefined;
}

// ---- Every name that exists anywhere, and every address ---------------------------------------------------------
function catalogue(m: Map<string, NetModel>, withV6: boolean): { names: string[]; addresses: string[] } {
  const plain = new Set<string>(['nonexistent', 'tasks.nonexistent']);
  for (const nm of m.values()) for (const n of nm.names.keys()) plain.add(n);
  // The names of those that have none (unhealthy, draining, not on a swarmnet network) must not resolve either.
  for (const c of CONTAINERS) {
    for (const n of [c.name, idOf(c).slice(0, 12), hostnameOf(c), ...Object.values(c.eps).flatMap((e) => e.aliases ?? [])]) plain.add(n.toLowerCase());
  }
  for (const s of SERVICES) for (const n of [s.name, ...Object.values(s.nets).flatMap((x) => x.aliases ?? [])]) { plain.add(n); plain.add(`tasks.${n}`); }
  const names = [...plain];
  for (const n of plain) for (const net of [...NETS, BRIDGE]) names.push(`${n}.${net.name.toLowerCase()}`);
  const addresses = new Set<string>();
  for (const c of CONTAINERS) for (const [net, e] of Object.entries(c.eps)) { addresses.add(v4(net, e.host)); if (withV6 && e.v6) addresses.add(v6(net, e.host)); }
  for (const s of SERVICES) for (const [net, sn] of Object.entries(s.nets)) if (sn.vip) addresses.add(v4(net, sn.vip));
  return { names: [...new Set(names)], addresses: [...addresses] };
}

function reverseName(addr: string): string {
  if (!addr.includes(':')) return `${addr.split('.').reverse().join('.')}.in-addr.arpa`;
  const [head, tail] = addr.split('::') as [string, string];
  const groups = [...head.split(':'), ...Array(8 - head.split(':').length - tail.split(':').length).fill('0'), ...tail.split(':')];
  const hex = groups.map((g) => g.padStart(4, '0')).join('');
  return `${[...hex].reverse().join('.')}.ip6.arpa`;
}

const inNet = (addr: string, net: string): boolean => addr.startsWith(addr.includes(':') ? netById.get(net)!.v6 : netById.get(net)!.prefix);

type Reply = 'forward' | 'drop' | dnsPacket.Packet;
function ask(r: Resolver, view: string, name: string, type: 'A' | 'AAAA' | 'TXT' | 'PTR'): Reply {
  const out = r.resolve(dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] }), view);
  return out.kind === 'answer' ? dnsPacket.decode(out.response) : out.kind;
}
const records = (p: dnsPacket.Packet): string[] => (p.answers ?? []).map((a) => String((a as { data: unknown }).data));

/**
 * Asks every view for every name and address; returns the number of (container, name) pairs and the failures.
 * `views`: container → its view id in `table` (undefined: the container has no view, i.e. an unknown source).
 */
function sweep(table: Table, views: Map<Ctr, string>, compat: boolean, withV6: boolean): { pairs: number; queries: number; failures: string[] } {
  const r = new Resolver(table, { compat });
  const m = model(withV6);
  const { names, addresses } = catalogue(m, withV6);
  const failures: string[] = [];
  const fail = (c: Ctr, what: string): void => { if (failures.length < 50) failures.push(`${c.name} (${attached(c).join(',') || 'no swarmnet network'}): ${what}`); };
  let pairs = 0;
  let queries = 0;
  for (const c of CONTAINERS) {
    const nets = attached(c);
    const view = views.get(c) ?? `unknown-${c.name}`;
    for (const name of names) {
      pairs++;
      const want = expected(m, nets, name);
      for (const type of withV6 ? ['A', 'AAAA', 'TXT'] as const : ['A', 'TXT'] as const) {
        queries++;
        const got = ask(r, view, name, type);
        if (!want) { if (got !== 'forward') fail(c, `${type} ${name}: answered ${JSON.stringify(typeof got === 'string' ? got : records(got))}, must be forwarded`); continue; }
        if (typeof got === 'string') { fail(c, `${type} ${name}: ${got}, must be answered`); continue; }
        if (got.rcode !== 'NOERROR') { fail(c, `${type} ${name}: ${got.rcode}`); continue; }
        const data = records(got).sort();
        if (type === 'TXT') { if (data.length) fail(c, `TXT ${name}: records ${data}`); continue; }
        const all = [...want[type === 'A' ? 'v4' : 'v6']].sort();
        const outside = data.filter((a) => !nets.some((n) => inNet(a, n)));
        if (outside.length) fail(c, `${type} ${name}: ${outside} is on none of its networks`);
        if (data.some((a) => !all.includes(a))) fail(c, `${type} ${name}: ${data} not within ${all}`);
        if (compat ? data.length === 0 && all.length > 0 : data.join() !== all.join()) fail(c, `${type} ${name}: ${data}, expected ${compat ? 'some of ' : ''}${all}`);
      }
    }
    for (const addr of addresses) {
      pairs++;
      queries++;
      const owner = nets.map((n) => m.get(n)!.ptr.get(addr)).find((x) => x !== undefined);
      const got = ask(r, view, reverseName(addr), 'PTR');
      if (owner === undefined) { if (got !== 'forward') fail(c, `PTR ${addr}: answered ${JSON.stringify(typeof got === 'string' ? got : records(got))}, must be forwarded`); continue; }
      if (typeof got === 'string') { fail(c, `PTR ${addr}: ${got}, must be ${owner}`); continue; }
      if (!nets.some((n) => inNet(addr, n))) fail(c, `PTR ${addr}: an address on none of its networks`);
      if (records(got).join() !== owner) fail(c, `PTR ${addr}: ${records(got)}, expected ${owner}`);
    }
  }
  return { pairs, queries, failures };
}

function check(t: ExecutionContext, what: string, table: Table, views: Map<Ctr, string>, withV6: boolean): void {
  for (const compat of [true, false]) {
    const { pairs, queries, failures } = sweep(table, views, compat, withV6);
    t.deepEqual(failures, [], `${what}, compat=${compat}`);
    t.log(`${what}, compat=${compat}: ${pairs} (container, name) pairs over ${CONTAINERS.length} containers, ${queries} queries`);
  }
}

// ---- The plugin's table: etcd records as the watch delivers them -----------------------------------------------
const P = '/scope';
function viewRecords(): [string, string][] {
  const kv: [string, string][] = [];
  for (const n of NETS) kv.push([`${P}/swarmnet/docker/networks/${n.id}`, JSON.stringify({ id: n.id, name: n.name })]);
  for (const s of SERVICES) {
    kv.push([`${P}/swarmnet/docker/services/${s.id}`, JSON.stringify({
      id: s.id, name: s.name, endpointMode: s.mode,
      vips: Object.fromEntries(Object.entries(s.nets).filter(([, x]) => x.vip).map(([n, x]) => [n, v4(n, x.vip!)])),
      aliases: Object.fromEntries(Object.entries(s.nets).map(([n, x]) => [n, x.aliases ?? []])),
      draining: (s.draining ?? []).map((name) => idOf(CONTAINERS.find((c) => c.name === name)!)),
    })]);
  }
  for (const c of CONTAINERS) {
    const svc = c.service ? svcById.get(c.service) : undefined;
    kv.push([`${P}/swarmnet/docker/containers/${c.node ?? 'me'}/${idOf(c)}`, JSON.stringify({
      id: idOf(c), name: c.name, hostname: hostnameOf(c), ...(svc ? { service: svc.name, serviceId: svc.id } : {}),
      sandboxKey: `/var/run/docker/netns/${idOf(c).slice(0, 12)}`, live: c.live !== false, ndots: false,
      networks: Object.fromEntries(Object.entries(c.eps).map(([n, e]) => [n, { address: v4(n, e.host), aliases: e.aliases ?? [], dnsNames: [] }])),
    })]);
  }
  return kv;
}
/** Each container's view as the injector gives it: its namespace, its swarmnet networks (on its own node). */
const sandboxViews = (): SandboxView[] => CONTAINERS.map((c) => ({ id: `/var/run/docker/netns/${idOf(c).slice(0, 12)}`, networks: attached(c) }));
const viewIds = (): Map<Ctr, string> => new Map(CONTAINERS.map((c) => [c, `/var/run/docker/netns/${idOf(c).slice(0, 12)}`]));

test('the plugin\'s table from a watch snapshot: every container, every name, only its networks', (t) => {
  const ct = new ClusterTable(P, 'me');
  ct.reset(new Map(viewRecords()));
  ct.setViews(sandboxViews());
  t.is(ct.stats.rejected, 0);
  check(t, 'snapshot', ct.table, viewIds(), false);
});

test('the plugin\'s table built one event at a time after the views exist (records in reverse order)', (t) => {
  const ct = new ClusterTable(P, 'me');
  ct.setViews(sandboxViews());
  for (const [k, v] of viewRecords().reverse()) t.true(ct.apply('put', k, v));
  check(t, 'events', ct.table, viewIds(), false);
});

test('the standalone server\'s table (JSON, IPv6, an internal network): every container, every name, only its networks', (t) => {
  const input: TableInput = {
    networks: NETS.map((n) => ({ id: n.id, name: n.name, internal: n.internal ?? false })),
    containers: CONTAINERS.map((c) => ({
      id: idOf(c), name: c.name, hostname: hostnameOf(c), ...(c.service ? { serviceId: c.service } : {}), live: c.live !== false,
      endpoints: Object.entries(c.eps).map(([n, e]) => ({ networkId: n, ip: v4(n, e.host), ...(e.v6 ? { ipv6: v6(n, e.host) } : {}), aliases: e.aliases ?? [] })),
    })),
    // The standalone table has no draining list: a draining task's record is simply not there.
    services: SERVICES.map((s) => ({ id: s.id, name: s.name, mode: s.mode, networks: Object.entries(s.nets).map(([n, x]) => ({ networkId: n, ...(x.vip ? { vip: v4(n, x.vip) } : {}), aliases: x.aliases ?? [] })) })),
  };
  const draining = new Set(SERVICES.flatMap((s) => s.draining ?? []).map((name) => idOf(CONTAINERS.find((c) => c.name === name)!)));
  input.containers = input.containers.map((c) => (draining.has(c.id) ? { ...c, live: false } : c));
  const table = buildTable(input);
  check(t, 'standalone', table, new Map(CONTAINERS.map((c) => [c, idOf(c)])), true);
});

test('standalone server, views by source address: each container is found by each of its addresses; an address two containers claim (overlapping subnets) identifies neither', (t) => {
  const input: TableInput = {
    networks: NETS.map((n) => ({ id: n.id, name: n.name })),
    containers: CONTAINERS.map((c) => ({ id: idOf(c), name: c.name, endpoints: Object.entries(c.eps).map(([n, e]) => ({ networkId: n, ip: v4(n, e.host), ...(e.v6 ? { ipv6: v6(n, e.host) } : {}) })) })),
  };
  const r = new Resolver(buildTable(input), { compat: true });
  let checked = 0;
  for (const c of CONTAINERS) {
    for (const [n, e] of Object.entries(c.eps)) {
      const own = isSwarmnet(n) ? idOf(c) : ''; // an address on a network the table does not have is nobody's
      t.is(r.viewOfAddress(v4(n, e.host)), own, `${c.name} ${v4(n, e.host)}`);
      t.is(r.viewOfAddress(`::ffff:${v4(n, e.host)}`), own);
      if (e.v6) t.is(r.viewOfAddress(v6(n, e.host)), own);
      checked++;
    }
  }
  t.log(`${checked} container addresses map to their own view`);

  // Two networks with the same subnet (possible in a hand-written table: bridge networks of two hosts): the shared
  // address must not hand one container the other's view, whichever comes last.
  const overlap: TableInput = {
    networks: [{ id: 'a', name: 'net-a' }, { id: 'b', name: 'net-b' }],
    containers: [
      { id: 'x', name: 'x', endpoints: [{ networkId: 'a', ip: '172.18.0.2' }, { networkId: 'a', ip: '172.18.0.9' }] },
      { id: 'y', name: 'y', endpoints: [{ networkId: 'b', ip: '172.18.0.2' }] },
      { id: 'z', name: 'z', endpoints: [{ networkId: 'b', ip: '172.18.0.2' }] },
    ],
  };
  for (const order of [overlap.containers, [...overlap.containers].reverse()]) {
    const o = new Resolver(buildTable({ ...overlap, containers: order }), { compat: true });
    t.is(o.viewOfAddress('172.18.0.2'), '', 'claimed by x, y and z: nobody\'s');
    t.is(o.viewOfAddress('172.18.0.9'), 'x', 'x is still found by its own address');
    const viewOfShared = o.viewOfAddress('172.18.0.2');
    for (const name of ['x', 'y', 'z', 'x.net-a', 'y.net-b']) t.is(ask(o, viewOfShared, name, 'A'), 'forward', name);
  }
});

test('the plugin\'s views follow Join and Leave: a network a container left is out of its view at once, before Docker\'s record catches up', async (t) => {
  // The injector and the DNS server as the plugin runs them; the kernel side (namespaces, sockets, nft) is a stand-in
  // and queries go straight into DnsServer.handle, the path both listeners call.
  const cluster = new ClusterTable(P, 'me');
  const server = new DnsServer(cluster.table, { compat: false, defaultUpstreams: [] });
  const kernel: InjectorKernel = {
    netnsId: (path) => (path.startsWith('/ns/') ? { dev: 1, ino: path.length } : undefined),
    serve: async (_path, ns) => ({ ns, listener: {}, forwarder: {} } as unknown as Served),
    unserve: async () => undefined,
    dockerResolver: async () => undefined,
    repairTakeover: async () => false,
  };
  const injector = new DnsInjector({ server, cluster, log: logger('test'), kernel, intervalMs: 3_600_000, verifyMs: 3_600_000 });
  t.teardown(() => injector.stop());
  const key = (k: string) => `${P}/swarmnet/docker/${k}`;
  const ctr = (id: string, nets: Record<string, string>, sandboxKey?: string) => JSON.stringify({
    id, name: id, hostname: id, live: true, ndots: false, ...(sandboxKey ? { sandboxKey } : {}),
    networks: Object.fromEntries(Object.entries(nets).map(([n, ip]) => [n, { address: ip, aliases: [], dnsNames: [] }])),
  });
  const apply = (k: string, v?: string): void => { if (cluster.apply(v === undefined ? 'delete' : 'put', key(k), v)) injector.clusterChanged(); };
  cluster.reset(new Map([
    [key('networks/n1'), JSON.stringify({ id: 'n1', name: 'front' })],
    [key('networks/n2'), JSON.stringify({ id: 'n2', name: 'back' })],
    [key('containers/o/x1'), ctr('x1', { n1: '10.11.0.7' })],
    [key('containers/o/x2'), ctr('x2', { n2: '10.12.0.7' })],
  ]));
  injector.start();
  const settle = () => new Promise((r) => setImmediate(r));
  const answer = async (name: string): Promise<string[] | 'not local'> => {
    const r = await server.handle(dnsPacket.encode({ type: 'query', id: 3, questions: [{ type: 'A', name }] }), '/ns/c', 'udp');
    const p = r ? dnsPacket.decode(r) : undefined;
    return p?.rcode === 'NOERROR' ? records(p).sort() : 'not local'; // a miss goes upstream: none here, SERVFAIL
  };

  // docker run --network front --network back: Join per endpoint, then the node writes the record.
  await injector.join('ep1', 'n1', '/ns/c');
  await injector.join('ep2', 'n2', '/ns/c');
  apply('containers/me/c', ctr('c', { n1: '10.11.0.2', n2: '10.12.0.2' }, '/ns/c'));
  await settle();
  t.deepEqual(await answer('x1'), ['10.11.0.7']);
  t.deepEqual(await answer('x2'), ['10.12.0.7'], 'answered (and cached)');
  t.deepEqual(await answer('x2.back'), ['10.12.0.7']);

  // docker network disconnect back c: Leave comes first; the record follows with Docker's event, later.
  await injector.leave('ep2');
  t.is(await answer('x2'), 'not local', 'back is out of its view at Leave, not when the record catches up');
  t.is(await answer('x2.back'), 'not local');
  t.deepEqual(await answer('x1'), ['10.11.0.7'], 'front stays');
  apply('containers/me/c', ctr('c', { n1: '10.11.0.2' }, '/ns/c'));
  await settle();
  t.is(await answer('x2'), 'not local');

  // Connected again: Join is enough, before the record lists it again.
  await injector.join('ep3', 'n2', '/ns/c');
  t.deepEqual(await answer('x2'), ['10.12.0.7']);
  apply('containers/me/c', ctr('c', { n1: '10.11.0.2', n2: '10.12.0.3' }, '/ns/c'));
  await settle();
  t.deepEqual(await answer('x2'), ['10.12.0.7']);

  // Leave while the record still lists it, then a record update that still (stale) lists it: still out.
  await injector.leave('ep3');
  apply('containers/me/c', ctr('c', { n1: '10.11.0.2', n2: '10.12.0.3' }, '/ns/c'));
  await settle();
  t.is(await answer('x2'), 'not local', 'a stale record does not bring back a network Docker left');

  // Another container leaving back takes its names out of everyone's view.
  await injector.join('ep4', 'n2', '/ns/c');
  t.deepEqual(await answer('x2'), ['10.12.0.7']);
  apply('containers/o/x2', ctr('x2', { n1: '10.11.0.8' }));
  await settle();
  t.deepEqual(await answer('x2'), ['10.11.0.8'], 'x2 moved from back to front: only its front address');
  t.deepEqual(await answer('x2.back'), 'not local');

  // Its only swarmnet network left: handed back to Docker's resolver at Leave; a stale record does not serve it again.
  await injector.join('ep5', 'n2', '/ns/d');
  apply('containers/me/d', ctr('d', { n2: '10.12.0.4' }, '/ns/d'));
  await settle();
  t.is(injector.stats.served, 2);
  await injector.leave('ep5');
  t.is(injector.stats.served, 1);
  apply('containers/me/d', ctr('d', { n2: '10.12.0.4' }, '/ns/d'));
  await settle();
  t.is(injector.stats.served, 1, 'not served again from the stale record');
  apply('containers/me/d');
  await settle();
  t.is(injector.stats.served, 1);
});
