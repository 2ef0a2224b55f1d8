import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../common/exec.js';
import { setLogLevel } from '../../common/log.js';
import { createEndpointLink, deleteEndpointLink, endpointLinkNames, forgetNeighbour } from '../../flannel/endpoint.js';
import { Kernel } from '../../flannel/kernel.js';
import type { OverlayState } from '../../flannel/model.js';
import { OverlayReconciler } from '../../flannel/reconciler.js';
import { findUnderlay } from '../../flannel/underlay.js';
import { vtepMac } from '../../flannel/vtep-mac.js';
import { hasTools, isRoot } from './lab.js';

/** Single-host behaviour in a private namespace: underlay discovery, endpoint links, restart and failure handling. */

setLogLevel('silent');
const ready = isRoot && hasTools;
const serial = ready ? test.serial : test.serial.skip;

const ns = `swt${randomBytes(3).toString('hex')}h`;
const stateDir = mkdtempSync(join(tmpdir(), 'swarmnet-overlay-host-'));
const ip = (...args: string[]): ReturnType<typeof run> => run('ip', ['-n', ns, ...args]);
const state: OverlayState = {
  node: { name: 'h', publicIp: '192.168.50.2', underlayInterface: 'up0', vxlanPort: 8472 },
  networks: [{ id: 'N', vni: 300, subnet: '10.140.0.0/16' }],
  leases: [
    { networkId: 'N', subnet: '10.140.1.0/24', publicIp: '192.168.50.2', vtepMac: vtepMac('h', 300), node: 'h' },
    { networkId: 'N', subnet: '10.140.2.0/24', publicIp: '192.168.50.3', vtepMac: vtepMac('p', 300), node: 'p' },
  ],
};

test.before(async () => {
  if (!ready) return;
  await run('ip', ['netns', 'add', ns]);
  await ip('link', 'add', 'up0', 'mtu', '9000', 'type', 'veth', 'peer', 'name', 'up1', 'mtu', '1400');
  await ip('addr', 'add', '192.168.50.2/24', 'dev', 'up0');
  await ip('addr', 'add', '192.168.60.2/24', 'dev', 'up1');
  await ip('link', 'set', 'up0', 'up');
  await ip('link', 'set', 'up1', 'up');
  await ip('route', 'add', 'default', 'via', '192.168.60.1', 'dev', 'up1');
});

test.after.always(async () => {
  await run('ip', ['netns', 'del', ns], { allowFailure: true });
  rmSync(stateDir, { recursive: true, force: true });
});

serial('underlay: by name, by address, else the default route; clear errors', async (t) => {
  t.deepEqual(await findUnderlay('up0', ns), { name: 'up0', address: '192.168.50.2', mtu: 9000 });
  t.deepEqual(await findUnderlay('192.168.60.2', ns), { name: 'up1', address: '192.168.60.2', mtu: 1400 });
  t.deepEqual(await findUnderlay(undefined, ns), { name: 'up1', address: '192.168.60.2', mtu: 1400 });
  await t.throwsAsync(findUnderlay('nope0', ns), { message: /not found/ });
});

serial('reconciler: a missing underlay is reported and changes nothing', async (t) => {
  const r = new OverlayReconciler({ stateDir, netns: ns });
  const rep = await r.update({ ...state, node: { ...state.node, underlayInterface: 'gone0' } });
  t.false(rep.ok);
  t.regex(rep.errors[0]!, /gone0 not found/);
  t.is(r.stats.failedRuns, 1);
  t.false((await new Kernel(ns).links()).some((l) => l.name === 'swvx300'));
});

serial('endpoint link: veth on the bridge with MAC and MTU; idempotent create and delete', async (t) => {
  const r = new OverlayReconciler({ stateDir, netns: ns });
  t.true((await r.update(state)).ok);
  const k = new Kernel(ns);
  t.is((await k.link('swvx300'))?.mtu, 8950, 'underlay MTU 9000 - 50');
  const gatewayMac = (await k.link('swbr300'))!.mac;
  const endpointId = randomBytes(32).toString('hex');
  const spec = { bridge: 'swbr300', endpointId, mac: '02:42:0a:8c:01:05', mtu: 8950, netns: ns };
  const names = await createEndpointLink(spec);
  t.deepEqual(names, endpointLinkNames(endpointId));
  t.deepEqual(await createEndpointLink(spec), names, 'a retried Join succeeds');
  const host = await k.link(names.hostName);
  const peer = await k.link(names.peerName);
  t.like(host, { master: 'swbr300', mtu: 8950, up: true });
  t.like(peer, { mac: '02:42:0a:8c:01:05', mtu: 8950 });
  t.is((await k.link('swbr300'))!.mac, gatewayMac, 'the gateway MAC does not change when a port joins');
  await t.throwsAsync(createEndpointLink({ ...spec, endpointId: randomBytes(32).toString('hex'), bridge: 'nobridge0' }));
  t.false((await k.links()).some((l) => l.name.startsWith('swve') && l.name !== names.hostName), 'failed create leaves nothing');
  // A previous holder's MAC for an address on the bridge: forgotten, so the next holder's is learnt (ARP).
  await run('ip', ['-n', ns, 'neigh', 'replace', '10.140.1.9', 'lladdr', '02:42:0a:8c:01:09', 'dev', 'swbr300', 'nud', 'reachable']);
  await forgetNeighbour('swbr300', '10.140.1.9', ns);
  t.notRegex((await run('ip', ['-n', ns, 'neigh', 'show', 'dev', 'swbr300'])).stdout, /10\.140\.1\.9 /);
  await forgetNeighbour('swbr300', '10.140.1.9', ns);
  await t.throwsAsync(forgetNeighbour('swbr300', '10.140.1.9; x', ns), { message: /bad address/ });
  await deleteEndpointLink(endpointId, ns);
  await deleteEndpointLink(endpointId, ns);
  t.false((await k.links()).some((l) => l.name === names.hostName || l.name === names.peerName));
  t.throws(() => endpointLinkNames('../etc'), { message: /hex/ });
});

serial('a lease change is applied from what the last complete run put in place; drift waits for a run that reads the kernel', async (t) => {
  const k = new Kernel(ns);
  const r = new OverlayReconciler({ stateDir, netns: ns });
  t.true((await r.update(state)).ok);
  // Someone deletes our route to p; then a third node's lease arrives.
  await ip('route', 'del', '10.140.2.0/24', 'proto', '83');
  const q = { networkId: 'N', subnet: '10.140.3.0/24', publicIp: '192.168.50.4', vtepMac: vtepMac('q', 300), node: 'q' };
  const change = await r.update({ ...state, leases: [...state.leases, q] });
  t.deepEqual(change.changes, { links: 0, addresses: 0, routes: 1, neighbours: 1, fdb: 1, rules: 0, fastPath: 0 }, 'only q\'s entries: the kernel was not read');
  t.deepEqual((await k.ourRoutes()).map((x) => x.dst).sort(), ['10.140.3.0/24'], 'the deleted route is still missing');
  t.is(r.stats.drift.routes, undefined);
  // The next run that reads the kernel (the period; reconcile()) repairs it, as drift.
  const full = await r.reconcile();
  t.is(full.changes.routes, 1);
  t.deepEqual((await k.ourRoutes()).map((x) => x.dst).sort(), ['10.140.2.0/24', '10.140.3.0/24']);
  t.is(r.stats.drift.routes?.count, 1);
  // q leaves: its entries go without a kernel read too.
  const leave = await r.update(state);
  t.deepEqual(leave.changes, { links: 0, addresses: 0, routes: 1, neighbours: 1, fdb: 1, rules: 0, fastPath: 0 });
  t.deepEqual((await k.ourRoutes()).map((x) => x.dst), ['10.140.2.0/24']);
  await r.stop();
});

serial('restart: a new reconciler adopts its recorded links and removes them when the network goes', async (t) => {
  const k = new Kernel(ns);
  const bridgeMac = (await k.link('swbr300'))!.mac;
  const r2 = new OverlayReconciler({ stateDir, netns: ns });
  const rep = await r2.update(state);
  t.deepEqual(rep.changes, { links: 0, addresses: 0, routes: 0, neighbours: 0, fdb: 0, rules: 0, fastPath: 0 }, 'nothing to redo');
  t.is((await k.link('swbr300'))!.mac, bridgeMac, 'the gateway MAC is stable');
  const gone = await r2.update({ ...state, networks: [], leases: [] });
  t.true(gone.ok);
  t.is(gone.changes.links, 2);
  const names = (await k.links()).map((l) => l.name);
  t.false(names.includes('swvx300') || names.includes('swbr300'));
  t.deepEqual(await k.ourRoutes(), []);
  t.is(await k.forwardChainRules(), undefined, 'the last network gone: our filter chain goes too');
  t.false(await k.hasForwardJump(), 'and the jump to it from FORWARD');
  t.deepEqual((await r2.update({ ...state, networks: [], leases: [] })).changes.rules, 0, 'nothing left to remove');
});

serial('fast path: a kernel without flowtables gets none and says so; the overlay is programmed all the same', async (t) => {
  const k = new Kernel(ns);
  // This suite's kernel decides the branch; test/flannel/fast-path-guest.test.ts covers a kernel that has them.
  const supported = await k.flowtableSupported();
  const r = new OverlayReconciler({ stateDir, netns: ns });
  const rep = await r.update(state);
  t.true(rep.ok, rep.errors.join('; '));
  t.true((await k.links()).some((l) => l.name === 'swvx300'));
  if (supported) {
    t.is(r.stats.fastPath, 'on');
    t.regex((await k.fastPathListing()) ?? '', /devices = \{ swbr300, swvx300 \}/);
  } else {
    t.is(r.stats.fastPath, 'unavailable');
    t.is(rep.changes.fastPath, 0);
    t.is(await k.fastPathListing(), undefined, 'nothing half-made');
    t.is((await r.reconcile()).changes.fastPath, 0, 'not retried every pass');
  }
  const off = new OverlayReconciler({ stateDir, netns: ns, fastPath: false });
  t.true((await off.update(state)).ok);
  t.is(off.stats.fastPath, 'off');
  t.is(await k.fastPathListing(), undefined);
  t.true((await off.update({ ...state, networks: [], leases: [] })).ok);
});
