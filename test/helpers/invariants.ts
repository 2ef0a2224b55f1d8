import type { Etcd3 } from 'etcd3';
import { contains, keyToCidr, overlaps, parseCidr, type Cidr } from '../../common/cidr.js';

/**
 * Checks the address plan in etcd: no overlapping network or host subnets, unique VNIs, host subnets outside the
 * VIP block, every address inside its owner's host subnet, every replay key pointing at its own record, every VIP
 * inside the VIP block, every node-owned key attached to an etcd lease. Returns the list of violations (empty when all hold).
 */
export async function checkInvariants(client: Etcd3, prefix: string): Promise<string[]> {
  const bad: string[] = [];
  const all = await client.getAll().prefix(`${prefix}/`).exec();
  const kv = new Map(all.kvs.map((k) => [k.key.toString(), { value: k.value.toString(), lease: k.lease }]));
  const sw = `${prefix}/swarmnet/`;
  const nets = [...kv].filter(([k]) => k.startsWith(`${sw}networks/`)).map(([, v]) => JSON.parse(v.value) as { id: string; subnet: string; vni: number; vipBlock: string });
  const subnets: Cidr[] = [];
  const vnis = new Set<number>();
  for (const n of nets) {
    const c = parseCidr(n.subnet);
    if (subnets.some((s) => overlaps(s, c))) bad.push(`network ${n.subnet} overlaps another`);
    subnets.push(c);
    if (vnis.has(n.vni)) bad.push(`VNI ${n.vni} used twice`);
    vnis.add(n.vni);
    if (kv.get(`${sw}vnis/${n.vni}`)?.value !== n.id) bad.push(`VNI ${n.vni} not registered to ${n.id}`);
    const vip = parseCidr(n.vipBlock);
    const owners = new Map<string, Cidr>();
    const hostBlocks: Cidr[] = [];
    for (const [k, v] of kv) {
      if (!k.startsWith(`${sw}node-subnets/${n.id}/`)) continue;
      const node = k.slice(`${sw}node-subnets/${n.id}/`.length);
      const h = keyToCidr(v.value);
      if (hostBlocks.some((b) => overlaps(b, h))) bad.push(`host subnet ${v.value} leased twice`);
      if (overlaps(h, vip)) bad.push(`host subnet ${v.value} overlaps VIP block`);
      if (!kv.has(`${prefix}/networks/${n.id}/subnets/${v.value}`)) bad.push(`host subnet ${v.value} has no flannel lease`);
      if (v.lease === '0') bad.push(`host subnet ${v.value} not under a node lease`);
      hostBlocks.push(h);
      owners.set(node, h);
    }
    for (const [k, v] of kv) {
      if (k.startsWith(`${sw}addresses/${n.id}/`)) {
        const ip = parseInt(k.slice(`${sw}addresses/${n.id}/`.length), 16);
        const owner = (JSON.parse(v.value) as { node: string }).node;
        const h = owners.get(owner);
        if (!h || !contains(h, ip)) bad.push(`address ${ip} has no owner host subnet (node ${owner})`);
        if (v.lease === '0') bad.push(`address ${ip} not under a node lease`);
      } else if (k.startsWith(`${sw}address-keys/${n.id}/`)) {
        // A replay key must point at an address record of the same node carrying the same key.
        const [node, ...rest] = k.slice(`${sw}address-keys/${n.id}/`.length).split('/');
        const target = kv.get(`${sw}addresses/${n.id}/${v.value}`);
        const rec = target ? (JSON.parse(target.value) as { node: string; key?: string }) : undefined;
        if (!rec || rec.node !== node || rec.key !== rest.join('/')) bad.push(`replay key ${k} points at ${v.value}, which is not its record`);
      } else if (k.startsWith(`${sw}leader-addresses/${n.id}/`)) {
        const ip = parseInt(k.slice(`${sw}leader-addresses/${n.id}/`.length), 16);
        if (!contains(vip, ip)) bad.push(`VIP ${ip} outside the VIP block`);
      }
    }
  }
  return bad;
}
