import test from 'ava';
import { formatCidr, formatIp } from '../../common/cidr.js';
import { setLogLevel } from '../../common/log.js';
import { Kernel } from '../../flannel/kernel.js';
import type { LocalNode, OverlayState } from '../../flannel/model.js';
import { bridgeName, vxlanName } from '../../flannel/names.js';
import { OverlayReconciler } from '../../flannel/reconciler.js';
import { vtepMac } from '../../flannel/vtep-mac.js';
import type { Ipam } from '../../plugin/ipam/ipam.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { makeNode, randomPrefix, type TestNode } from '../ipam/setup.js';
import { Lab, eventually, hasTools, isRoot, ping, type LabContainer, type LabHost } from './lab.js';

/**
 * The control plane driving the data plane: three namespace hosts, each with its own IPAM instance on a real etcd,
 * its overlay fed by `watchRecords` only (no periodic pass). A node's lease ending removes its entries on the others.
 */

setLogLevel('silent');
const ready = isRoot && hasTools && hasEtcd;
const serial = ready ? test.serial : test.serial.skip;

const lab = new Lab();
let etcd: TestEtcd;
const prefix = randomPrefix();
const hosts: LabHost[] = [];
const nodes: TestNode[] = [];
const recs: OverlayReconciler[] = [];
const cancels: (() => Promise<void>)[] = [];
const containers: LabContainer[] = [];
let pool = '';

/** What the runtime's overlay sync does: map IPAM's state to the reconciler's input. */
async function overlayInput(ipam: Ipam, node: LocalNode): Promise<OverlayState> {
  const s = await ipam.overlayState();
  return {
    node,
    networks: s.networks.map((n) => ({ id: n.id, vni: n.vni, subnet: formatCidr(n.subnet), ...(n.mtu ? { mtu: n.mtu } : {}) })),
    leases: s.leases.map((l) => ({ networkId: l.networkId, subnet: formatCidr(l.subnet), publicIp: l.publicIp, vtepMac: l.vtepMac, node: l.node })),
  };
}

test.before(async () => {
  if (!ready) return;
  etcd = await TestEtcd.start();
  await lab.init();
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    const h = await lab.host(name, 21 + i);
    hosts.push(h);
    const n = makeNode(etcd.endpoint, prefix, h.node.name, { ttl: 3, publicIp: h.node.publicIp, vtepMac });
    nodes.push(n);
    recs.push(new OverlayReconciler({ stateDir: h.stateDir, netns: h.ns }));
  }
  const p = await nodes[0]!.ipam.requestPool({ AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false });
  pool = p.Pool;
  for (const [i, n] of nodes.entries()) {
    const lp = await n.ipam.requestPool({ AddressSpace: 'SwarmnetLocal', Pool: pool, SubPool: '', Options: {}, V6: false });
    // Serialised, so an older read never overwrites a newer one (as the runtime's overlay sync does).
    let chain: Promise<unknown> = Promise.resolve();
    const refresh = (): void => { chain = chain.then(async () => recs[i]!.update(await overlayInput(n.ipam, hosts[i]!.node))).catch(() => undefined); };
    cancels.push(await n.ipam.watchRecords(refresh));
    const gw = (await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })).Address;
    const addr = (await n.ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} })).Address;
    const [ip, len] = addr.split('/') as [string, string];
    const net = (await n.ipam.networks())[0]!;
    await eventually(async () => (await new Kernel(hosts[i]!.ns).link(bridgeName(net.vni))) !== undefined, 30_000);
    containers.push(await lab.container(hosts[i]!, `e${i}`, bridgeName(net.vni), ip, Number(len), gw.split('/')[0]!, 1450));
  }
});

test.after.always(async () => {
  for (const c of cancels) await c().catch(() => undefined);
  await Promise.all(recs.map((r) => r.stop()));
  for (const n of nodes) await n.close().catch(() => undefined);
  await lab.destroy();
  await etcd?.stop();
});

serial('host leases written by IPAM become routes, FDB and neighbours on every other host, through the watch', async (t) => {
  const vni = (await nodes[0]!.ipam.networks())[0]!.vni;
  const programmed = await eventually(async () => {
    const routes = await Promise.all(hosts.map((h) => new Kernel(h.ns).ourRoutes()));
    return routes.every((r) => r.length === 2);
  }, 30_000);
  t.true(programmed, 'each host routes the two other host subnets');
  const fdbA = await new Kernel(hosts[0]!.ns).fdb(vxlanName(vni));
  t.deepEqual(fdbA.map((f) => f.dst).sort(), ['192.168.200.22', '192.168.200.23']);
  t.true(await ping(containers[0]!.ns, containers[2]!.ip), 'a -> c');
  t.true(await ping(containers[1]!.ns, containers[0]!.ip), 'b -> a');
});

serial("a node whose etcd lease ends disappears from every other host's kernel (watch-driven, no periodic pass)", async (t) => {
  const vni = (await nodes[0]!.ipam.networks())[0]!.vni;
  const c = nodes[2]!;
  const cLease = (await nodes[0]!.ipam.overlayState()).leases.find((l) => l.node === hosts[2]!.node.name)!;
  await c.client.leaseClient.leaseRevoke({ ID: await c.lease.id() }); // as the TTL would, faster
  const gone = await eventually(async () => {
    const all = await Promise.all([0, 1].map(async (i) => {
      const k = new Kernel(hosts[i]!.ns);
      const [routes, fdb, neigh] = await Promise.all([k.ourRoutes(), k.fdb(vxlanName(vni)), k.neighbours(vxlanName(vni))]);
      return !routes.some((r) => r.dst === formatCidr(cLease.subnet)) && !fdb.some((f) => f.dst === '192.168.200.23') &&
        !neigh.some((n) => n.ip === formatIp(cLease.subnet.network));
    }));
    return all.every(Boolean);
  }, 30_000);
  t.true(gone, "C's route, FDB and neighbour entries are gone on A and B");
  t.false(await ping(containers[0]!.ns, containers[2]!.ip, 1), 'no path to C');
  t.true(await ping(containers[0]!.ns, containers[1]!.ip), 'A and B still talk');
  t.is((await new Kernel(hosts[0]!.ns).ourRoutes()).length, 1);
});
