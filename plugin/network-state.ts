import { formatCidr, formatIp, parseCidr, keyToCidr, type Cidr } from '../common/cidr.js';
import { endpointLinkNames } from '../flannel/endpoint.js';
import { PluginError } from './protocol/contract.js';
import type { Ipam, NetworkRecord } from './ipam/ipam.js';
import type { EndpointRecord, LocalLease, NetworkStatePort, NetworkView } from './network-endpoints.js';
import type { NetworkOptions } from './network-options.js';

/**
 * The network driver's view of cluster state, over IPAM's etcd records. Endpoint records are node-scoped in etcd
 * (under the node lease); Docker's network id and the host interface are derived, not stored twice.
 */
export class EtcdNetworkState implements NetworkStatePort {
  constructor(private readonly ipam: Ipam) {}

  async bindDockerNetwork(pool: string, dockerNetworkId: string, options: NetworkOptions): Promise<NetworkView> {
    const subnet = poolCidr(pool);
    let net = await this.ipam.network(subnet);
    if (!net) throw new PluginError(`unknown pool ${pool}: no swarmnet network has this subnet (create it with --ipam-driver swarmnet)`, 400);
    const mtu = options.mtu ?? net.mtu;
    if (net.dockerNetworkId !== dockerNetworkId || net.mtu !== mtu) {
      net = await this.ipam.updateNetwork(subnet, { dockerNetworkId, ...(mtu !== undefined ? { mtu } : {}) });
    }
    return view(net);
  }

  async networkByDockerId(dockerNetworkId: string): Promise<NetworkView | undefined> {
    const net = await this.ipam.networkByDockerId(dockerNetworkId);
    return net ? view(net) : undefined;
  }

  async localLease(networkKey: string): Promise<LocalLease | undefined> {
    const lease = await this.ipam.localHostLease(keyToCidr(networkKey));
    return { subnet: formatCidr(lease.subnet), gateway: formatIp(lease.gateway) };
  }

  async putEndpoint(rec: EndpointRecord): Promise<void> {
    await this.ipam.putEndpoint({
      networkId: rec.networkKey, endpointId: rec.endpointId, address: rec.address, mac: rec.mac,
      ...(rec.sandboxKey ? { sandboxKey: rec.sandboxKey } : {}),
    });
  }

  async getEndpoint(dockerNetworkId: string, endpointId: string): Promise<EndpointRecord | undefined> {
    const [rec, net] = await Promise.all([this.ipam.getEndpoint(endpointId), this.ipam.networkByDockerId(dockerNetworkId)]);
    if (!rec || !net || rec.networkId !== net.id) return undefined;
    return {
      networkKey: rec.networkId, dockerNetworkId, endpointId, address: rec.address, mac: rec.mac,
      ...(rec.sandboxKey ? { sandboxKey: rec.sandboxKey, hostInterface: endpointLinkNames(endpointId).hostName } : {}),
    };
  }

  async deleteEndpoint(_dockerNetworkId: string, endpointId: string): Promise<void> {
    await this.ipam.deleteEndpoint(endpointId);
  }
}

function poolCidr(pool: string): Cidr {
  try {
    return parseCidr(pool);
  } catch (e) {
    throw new PluginError(`malformed pool ${JSON.stringify(pool)}: ${(e as Error).message}`, 400);
  }
}

function view(net: NetworkRecord): NetworkView {
  return { key: net.id, subnet: net.subnet, vni: net.vni, ...(net.mtu !== undefined ? { mtu: net.mtu } : {}) };
}
