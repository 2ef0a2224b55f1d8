import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { logger, setLogLevel } from '../../common/log.js';
import { vtepMac } from '../../flannel/vtep-mac.js';
import type { HostLease, OverlayNetwork } from '../../flannel/model.js';
import { bridgeName } from '../../flannel/names.js';
import { OverlayReconciler } from '../../flannel/reconciler.js';
import { LbModel } from '../../lb/model.js';
import { NftablesBackend } from '../../lb/nftables/kernel.js';
import { TABLE } from '../../lb/nftables/render.js';
import { LbReconciler } from '../../lb/reconciler.js';
import { Lab, eventually, hasTools, isRoot, sh, type LabContainer, type LabHost } from '../flannel/lab.js';

/**
 * The nftables load balancer for real, on two namespace hosts joined by the VXLAN overlay: traffic through a VIP
 * to backends on the same host, on the other host and to the client itself, the source each backend sees, UDP,
 * refusal without backends, draining, flow cleanup, drift repair, restart and removal.
 */
setLogLevel('silent');
const ready = isRoot && hasTools;
const serial = ready ? test.serial : test.serial.skip;
const PROBE = fileURLToPath(new URL('./probe.mjs', import.meta.url));
const PREFIX = '/lbt';
const ROOT = `${PREFIX}/swarmnet/docker`;
const NET = 'docker-net-1';
const VIP = '10.128.255.2';
const net: OverlayNetwork = { id: 'net-one', vni: 111, subnet: '10.128.0.0/16' };
const lab = new Lab();
const hosts: Record<'a' | 'b', LabHost> = {} as never;
const c: Record<string, LabContainer> = {};
const overlays: OverlayReconciler[] = [];
const lbs: Record<'a' | 'b', { model: LbModel; rec: LbReconciler }> = {} as never;
const procs: ChildProcess[] = [];

const lease = (h: LabHost, third: number): HostLease => ({ networkId: net.id, subnet: `10.128.${third}.0/24`, publicIp: h.node.publicIp, vtepMac: vtepMac(h.node.name, net.vni), node: h.node.name });

/** A watch event on both nodes' models (what etcd would deliver to each), then both write their delta. */
async function event(type: 'put' | 'delete', key: string, value?: unknown): Promise<void> {
  for (const n of Object.values(lbs)) {
    n.model.apply(type, `${ROOT}/${key}`, value === undefined ? undefined : JSON.stringify(value));
    n.rec.changed();
  }
  await Promise.all(Object.values(lbs).map((n) => n.rec.settled()));
}
const service = (id: string, mode: 'vip' | 'dnsrr', draining: string[] = []): Promise<void> =>
  event('put', `services/${id}`, { id, name: id, endpointMode: mode, vips: mode === 'vip' ? { [NET]: VIP } : {}, aliases: {}, draining });
const task = (node: 'a' | 'b', name: string, live = true): Promise<void> =>
  event('put', `containers/node-${node}/${name}`, { id: name, name, hostname: name, serviceId: 'web', live, ndots: false, networks: { [NET]: { address: c[name]!.ip, aliases: [] } } });
const gone = (node: 'a' | 'b', name: string): Promise<void> => event('delete', `containers/node-${node}/${name}`);

async function probe(from: string, args: string[]): Promise<string[]> {
  const r = await sh(c[from]!.ns, 'node', [PROBE, ...args]);
  return JSON.parse(r.stdout) as string[];
}
const count = (answers: string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const a of answers) out[a.split(' ')[0]!] = (out[a.split(' ')[0]!] ?? 0) + 1;
  return out;
};
const nftList = async (h: 'a' | 'b'): Promise<string> => (await sh(hosts[h].ns, 'nft', ['list', 'table', 'ip', TABLE], true)).stdout;

test.before(async () => {
  if (!ready) return;
  await lab.init();
  hosts.a = await lab.host('a', 21);
  hosts.b = await lab.host('b', 22);
  const leases = [lease(hosts.a, 1), lease(hosts.b, 2)];
  for (const h of Object.values(hosts)) {
    const o = new OverlayReconciler({ stateDir: h.stateDir, netns: h.ns, intervalMs: 60_000 });
    overlays.push(o);
    await o.update({ node: h.node, networks: [net], leases });
  }
  c.a1 = await lab.container(hosts.a, 'a1', bridgeName(111), '10.128.1.10', 24, '10.128.1.1', 1450);
  c.a2 = await lab.container(hosts.a, 'a2', bridgeName(111), '10.128.1.11', 24, '10.128.1.1', 1450);
  c.b1 = await lab.container(hosts.b, 'b1', bridgeName(111), '10.128.2.10', 24, '10.128.2.1', 1450);
  for (const name of ['a1', 'a2', 'b1']) {
    const p = spawn('ip', ['netns', 'exec', c[name]!.ns, 'node', PROBE, 'serve', name, '8080'], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(p);
    await new Promise((r) => createInterface({ input: p.stdout! }).once('line', r));
  }
  for (const [k, h] of Object.entries(hosts) as ['a' | 'b', LabHost][]) {
    const model = new LbModel(PREFIX, h.node.name);
    const rec = new LbReconciler({ backend: new NftablesBackend({ netns: h.ns }), model, log: logger('lb'), netns: h.ns, intervalMs: 60_000 });
    model.reset(new Map());
    rec.start();
    lbs[k] = { model, rec };
  }
});

test.after.always(async () => {
  for (const p of procs) p.kill('SIGKILL');
  for (const n of Object.values(lbs)) await n.rec.remove().catch(() => undefined);
  for (const o of overlays) await o.stop();
  await lab.destroy();
});

serial('a VIP with no backend refuses at once (TCP reset, UDP port unreachable)', async (t) => {
  await service('web', 'vip');
  t.deepEqual(await probe('a1', ['tcp', VIP, '8080', '1']), ['ERR ECONNREFUSED']);
  t.deepEqual(await probe('b1', ['udp', VIP, '8080', '1']), ['ERR ECONNREFUSED']);
});

serial('every backend takes its share: same host, other host and the client itself', async (t) => {
  await task('a', 'a1');
  await task('a', 'a2');
  await task('b', 'b1');
  for (const from of ['a1', 'b1']) {
    const answers = await probe(from, ['tcp', VIP, '8080', '300']);
    const n = count(answers);
    t.deepEqual(Object.keys(n).sort(), ['a1', 'a2', 'b1'], `${from}: ${JSON.stringify(n)}`);
    for (const [k, v] of Object.entries(n)) t.true(v >= 45, `${from} → ${k}: ${v} of 300`);
  }
});

serial('backends see the client\'s own address; a client landing on itself sees its gateway (hairpin SNAT)', async (t) => {
  const seen = new Map<string, string>();
  for (const a of await probe('a1', ['tcp', VIP, '8080', '60'])) seen.set(a.split(' ')[0]!, a.split(' ')[1]!);
  t.is(seen.get('a2'), c.a1!.ip, 'same host');
  t.is(seen.get('b1'), c.a1!.ip, 'other host');
  t.is(seen.get('a1'), '10.128.1.1', 'hairpin');
});

serial('UDP through the VIP: answers come from the VIP, one flow stays on one backend', async (t) => {
  const answers = await probe('b1', ['udp', VIP, '8080', '20']);
  t.is(new Set(answers).size, 1, JSON.stringify(answers));
  t.regex(answers[0]!, /^(a1|a2|b1) /);
  t.false(answers[0]!.startsWith('ERR'));
});

serial('a task that turns unhealthy or drains leaves at once; its established TCP connection goes on', async (t) => {
  // Hold a connection to b1 from a2 (retry until the random pick is b1).
  let held: ChildProcess | undefined;
  let lines: string[] = [];
  for (let i = 0; i < 40 && !held; i++) {
    const p = spawn('ip', ['netns', 'exec', c.a2!.ns, 'node', '-e', `
      const s = require('node:net').connect(8080, '${VIP}', () => s.write('hold\\n'));
      s.on('data', (d) => process.stdout.write(d)); s.on('error', (e) => console.log('ERR', e.code));
      process.stdin.on('data', () => s.write('x\\n'));`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const first = await new Promise<string>((r) => createInterface({ input: p.stdout! }).once('line', r));
    if (first.startsWith('b1 ')) {
      held = p;
      lines = [first];
      createInterface({ input: p.stdout! }).on('line', (l) => lines.push(l));
    } else p.kill('SIGKILL');
  }
  t.truthy(held, 'a connection to b1');
  procs.push(held!);
  await task('b', 'b1', false); // unhealthy
  const n = count(await probe('a1', ['tcp', VIP, '8080', '60']));
  t.is(n.b1, undefined, JSON.stringify(n));
  held!.stdin!.write('x\n');
  t.true(await eventually(async () => lines.length >= 2, 5000), JSON.stringify(lines));
  t.is(lines[1]!.split(' ')[0], 'b1', 'the established connection still reaches b1');
  await task('b', 'b1', true);
  await service('web', 'vip', ['a2']); // Swarm is stopping a2's task
  const m = count(await probe('a1', ['tcp', VIP, '8080', '60']));
  t.deepEqual(Object.keys(m).sort(), ['a1', 'b1'], JSON.stringify(m));
  await service('web', 'vip');
});

serial('a UDP flow to a backend that left moves to another one (its conntrack entry is deleted)', async (t) => {
  // The flow's conntrack entry (on the client's host) names its backend; when that backend leaves it must go.
  const first = await probe('b1', ['udp', VIP, '8080', '1']);
  const picked = first[0]!.split(' ')[0]!;
  t.regex(picked, /^(a1|a2|b1)$/);
  const deleted = lbs.a.rec.stats.flowsDeleted + lbs.b.rec.stats.flowsDeleted;
  await (picked === 'b1' ? task('b', 'b1', false) : task('a', picked, false));
  t.true(lbs.a.rec.stats.flowsDeleted + lbs.b.rec.stats.flowsDeleted > deleted, 'a flow was deleted');
  const left = await sh(hosts.b.ns, 'conntrack', ['-L', '-p', 'udp', '--orig-dst', VIP, '--reply-src', c[picked]!.ip], true);
  t.notRegex(left.stdout, /dport=8080/);
  await (picked === 'b1' ? task('b', 'b1') : task('a', picked));
});

serial('drift is repaired; a restarted reconciler leaves a correct table alone', async (t) => {
  await sh(hosts.a.ns, 'nft', ['delete', 'element', 'ip', TABLE, 'backends', `{ ${VIP} . 0 }`]);
  const before = lbs.a.rec.stats.repairs;
  await (lbs.a.rec as unknown as { check(): Promise<void> }).check();
  t.is(lbs.a.rec.stats.repairs, before + 1);
  t.deepEqual(Object.keys(count(await probe('a2', ['tcp', VIP, '8080', '60']))).sort(), ['a1', 'a2', 'b1']);
  // A new reconciler on the same kernel (a plugin restart): nothing is rewritten.
  const listing = await nftList('b');
  await lbs.b.rec.stop();
  const model = new LbModel(PREFIX, 'node-b');
  const kvs = new Map<string, string>();
  const snap = lbs.b.model.state();
  t.true(snap.vips.has(VIP));
  kvs.set(`${ROOT}/services/web`, JSON.stringify({ id: 'web', name: 'web', endpointMode: 'vip', vips: { [NET]: VIP }, aliases: {} }));
  for (const [n, node] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b']] as const) {
    kvs.set(`${ROOT}/containers/node-${node}/${n}`, JSON.stringify({ id: n, name: n, serviceId: 'web', live: true, networks: { [NET]: { address: c[n]!.ip } } }));
  }
  model.reset(kvs);
  const rec = new LbReconciler({ backend: new NftablesBackend({ netns: hosts.b.ns }), model, log: logger('lb'), netns: hosts.b.ns, intervalMs: 60_000 });
  rec.start();
  await rec.settled();
  t.is(rec.stats.syncs, 0, 'nothing written');
  t.is(await nftList('b'), listing);
  lbs.b = { model, rec };
});

serial('dnsrr takes the VIP rules away and vip brings them back; removal leaves nothing', async (t) => {
  await service('web', 'dnsrr');
  t.notRegex(await nftList('a'), /10\.128\.255\.2/);
  await service('web', 'vip');
  t.regex(await nftList('a'), /10\.128\.255\.2 : goto pick-3/);
  await event('delete', 'services/web');
  for (const n of ['a1', 'a2']) await gone('a', n);
  await gone('b', 'b1');
  t.is(await nftList('a'), '');
  t.is(await nftList('b'), '');
});
