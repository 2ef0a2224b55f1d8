import { Etcd3 } from 'etcd3';
import { parseCidr } from '../../common/cidr.js';
import { Ipam, startIndex } from '../../plugin/ipam/ipam.js';
import { NodeLease } from '../../plugin/state/etcd-client.js';

export interface TestNode { ipam: Ipam; client: Etcd3; lease: NodeLease; close(revoke?: boolean): Promise<void> }

/** One plugin instance: its own etcd client and node lease, as in a separate process. */
export function makeNode(endpoint: string, prefix: string, node: string, opts: { ttl?: number; available?: string; networkSize?: number; hostSize?: number; publicIp?: string; vtepMac?: (node: string, vni: number) => string } = {}): TestNode {
  // The product's default call deadline (ETCD_REQUEST_TIMEOUT_MS): etcd on a busy machine answers within it.
  const client = new Etcd3({ hosts: endpoint, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }) });
  const lease = new NodeLease(client, opts.ttl ?? 10);
  const ipam = new Ipam({
    client, lease, prefix, node, publicIp: opts.publicIp ?? '192.0.2.1',
    availableSubnets: (opts.available ?? '10.128.0.0/16').split(',').map((s) => parseCidr(s)),
    networkSubnetSize: opts.networkSize ?? 20, hostSubnetSize: opts.hostSize ?? 25, vniStart: 6514,
    vtepMac: opts.vtepMac ?? ((n, vni) => `02:00:00:00:${(n.length % 256).toString(16).padStart(2, '0')}:${(vni % 256).toString(16).padStart(2, '0')}`),
  });
  return {
    ipam, client, lease,
    async close(revoke = false) {
      await lease.close(revoke).catch(() => undefined);
      client.close();
    },
  };
}

export const randomPrefix = (): string => `/t${Math.random().toString(36).slice(2, 10)}`;

/**
 * A node name whose host-subnet search starts where `like`'s does (among `count` host subnets): for tests where a node
 * must find another's freed subnet first, as the same node would.
 */
export function nameStartingLike(like: string, count: number, stem = 'n'): string {
  for (let i = 0; ; i++) if (startIndex(`${stem}${i}`, count) === startIndex(like, count)) return `${stem}${i}`;
}
