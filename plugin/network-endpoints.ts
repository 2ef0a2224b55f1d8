import type { Logger } from '../common/log.js';
import { parseIfaceAddress } from '../common/cidr.js';
import { PluginError, type CreateEndpointResponse, type JoinResponse } from './protocol/contract.js';
import type * as S from './protocol/schemas.js';
import { genericOptions, parseNetworkOptions, type NetworkOptions } from './network-options.js';
import { endpointMac, isMac } from './endpoint-mac.js';
import type { JoinObserver } from './dns-plane.js';

/** A swarmnet network as the network driver needs it. */
export interface NetworkView {
  /** Stable key of the network in etcd (subnet-derived or flannel-id). */
  key: string;
  subnet: string;
  vni: number;
  mtu?: number;
}

/** This node's slice of a network. */
export interface LocalLease {
  subnet: string;
  gateway: string;
}

export interface EndpointRecord {
  networkKey: string;
  dockerNetworkId: string;
  endpointId: string;
  address: string;
  mac: string;
  sandboxKey?: string;
  hostInterface?: string;
}

/** Cluster state the network driver reads and writes (implemented over etcd by plugin/ipam + plugin/state). */
export interface NetworkStatePort {
  /** Records which Docker network a pool belongs to; idempotent. Unknown pool → PluginError 400. */
  bindDockerNetwork(pool: string, dockerNetworkId: string, options: NetworkOptions): Promise<NetworkView>;
  networkByDockerId(dockerNetworkId: string): Promise<NetworkView | undefined>;
  localLease(networkKey: string): Promise<LocalLease | undefined>;
  putEndpoint(rec: EndpointRecord): Promise<void>;
  getEndpoint(dockerNetworkId: string, endpointId: string): Promise<EndpointRecord | undefined>;
  deleteEndpoint(dockerNetworkId: string, endpointId: string): Promise<void>;
}

/** Kernel side of the network driver (implemented by flannel/). */
export interface OverlayPort {
  /** Makes sure the network's bridge and VXLAN device exist on this node now; returns the bridge and MTU. */
  ensureNetwork(networkKey: string): Promise<{ bridge: string; mtu: number }>;
  createEndpointLink(args: { bridge: string; endpointId: string; mac: string; mtu: number }): Promise<{ hostName: string; peerName: string }>;
  deleteEndpointLink(endpointId: string): Promise<void>;
  /** The node forgets the MAC it may hold for `address` on `bridge` (a previous container's: addresses are reused). */
  forgetNeighbour(bridge: string, address: string): Promise<void>;
}

/**
 * The NetworkDriver half of the plugin. Address management is IPAM's; this part binds Docker's network ids to
 * swarmnet networks, records endpoints and plumbs veths onto the network's bridge.
 */
export class NetworkEndpoints {
  constructor(
    private readonly state: NetworkStatePort,
    private readonly overlay: OverlayPort,
    private readonly log: Logger,
    /** The DNS plane: serves the container's 127.0.0.11 from Join on (never fails a Join). */
    private readonly dns?: JoinObserver,
    /** Docker's view in etcd: the address leaves its container's record at Leave (never fails a Leave; not awaited). */
    private readonly onLeft?: (dockerNetworkId: string, address: string) => void,
  ) {}

  /** Leader only. The reply's Options reach the workers' CreateNetwork: echo the user's options (e.g. mtu). */
  async allocateNetwork(q: S.AllocateNetworkRequest): Promise<{ Options: Record<string, string> }> {
    const options = parseNetworkOptions(q.Options);
    const pool = q.IPv4Data?.[0]?.Pool;
    if (!pool) throw new PluginError('swarmnet networks need an IPv4 pool: create the network with --ipam-driver swarmnet', 400);
    await this.state.bindDockerNetwork(pool, q.NetworkID, options);
    return { Options: { ...(q.Options ?? {}) } };
  }

  async freeNetwork(_q: S.NetworkRequest): Promise<void> {
    // The pool and its addresses are released by IPAM's ReleasePool/ReleaseAddress, which Docker sends around this call.
  }

  async createNetwork(q: S.CreateNetworkRequest): Promise<void> {
    const data = q.IPv4Data?.[0];
    if (!data?.Pool) throw new PluginError('swarmnet networks need an IPv4 pool: create the network with --ipam-driver swarmnet', 400);
    if ((q.IPv4Data?.length ?? 0) > 1) throw new PluginError('swarmnet supports one IPv4 subnet per network', 400);
    if ((q.IPv6Data?.length ?? 0) > 0) throw new PluginError('swarmnet does not support IPv6 yet: create the network without --ipv6', 400);
    const options = parseNetworkOptions(genericOptions(q.Options));
    const net = await this.state.bindDockerNetwork(data.Pool, q.NetworkID, options);
    // The node-side gateway request already leased this node's host subnet: build the bridge and VXLAN device now,
    // so Join only has to add a veth.
    if (await this.state.localLease(net.key)) await this.overlay.ensureNetwork(net.key);
    this.log.info({ network: q.NetworkID, networkKey: net.key, subnet: net.subnet }, 'network created on this node');
  }

  async deleteNetwork(q: S.NetworkRequest): Promise<void> {
    // Kernel state follows this node's lease, which IPAM's local ReleasePool removes; the reconciler does the rest.
    this.log.info({ network: q.NetworkID }, 'network deleted on this node');
  }

  private async network(dockerNetworkId: string): Promise<NetworkView> {
    const net = await this.state.networkByDockerId(dockerNetworkId);
    if (!net) throw new PluginError(`unknown network ${dockerNetworkId}: it was not created through swarmnet`, 404);
    return net;
  }

  async createEndpoint(q: S.CreateEndpointRequest): Promise<CreateEndpointResponse> {
    const net = await this.network(q.NetworkID);
    const address = q.Interface?.Address ?? '';
    if (!address) throw new PluginError('CreateEndpoint without an IPv4 address: swarmnet must be the network\'s IPAM driver too', 400);
    try {
      parseIfaceAddress(address);
    } catch (e) {
      throw new PluginError(`Interface.Address: ${(e as Error).message}`, 400);
    }
    if (q.Interface?.AddressIPv6) throw new PluginError('swarmnet does not support IPv6 endpoints yet', 400);
    const given = q.Interface?.MacAddress ?? '';
    if (given && !isMac(given)) throw new PluginError(`Interface.MacAddress: not a MAC address: ${JSON.stringify(given)}`, 400);
    const mac = given ? given.toLowerCase() : endpointMac(q.EndpointID);
    await this.state.putEndpoint({ networkKey: net.key, dockerNetworkId: q.NetworkID, endpointId: q.EndpointID, address, mac });
    // Only fields Docker left empty may be set in the reply.
    return given ? {} : { Interface: { MacAddress: mac } };
  }

  private async endpoint(q: { NetworkID: string; EndpointID: string }): Promise<EndpointRecord> {
    const ep = await this.state.getEndpoint(q.NetworkID, q.EndpointID);
    if (!ep) throw new PluginError(`unknown endpoint ${q.EndpointID} on network ${q.NetworkID}`, 404);
    return ep;
  }

  async endpointOperInfo(q: S.EndpointRequest): Promise<Record<string, string>> {
    const ep = await this.endpoint(q);
    const info: Record<string, string> = { ip_address: ep.address, mac_address: ep.mac };
    if (ep.hostInterface) info.host_interface = ep.hostInterface;
    return info;
  }

  async join(q: S.JoinRequest): Promise<JoinResponse> {
    const ep = await this.endpoint(q);
    const net = await this.network(q.NetworkID);
    const lease = await this.state.localLease(net.key);
    if (!lease) throw new PluginError(`this node has no subnet of network ${q.NetworkID}: its gateway was never requested here`, 500);
    const { bridge, mtu } = await this.overlay.ensureNetwork(net.key);
    const { hostName, peerName } = await this.overlay.createEndpointLink({ bridge, endpointId: q.EndpointID, mac: ep.mac, mtu });
    await this.overlay.forgetNeighbour(bridge, ep.address.split('/')[0]!);
    await this.state.putEndpoint({ ...ep, sandboxKey: q.SandboxKey, hostInterface: hostName });
    await this.dns?.joined(q.EndpointID, q.NetworkID, q.SandboxKey);
    // No Gateway: Docker adds docker_gwbridge for the default route (egress), as for overlay networks.
    // The whole network is reached through this node's bridge.
    return {
      InterfaceName: { SrcName: peerName, DstPrefix: 'eth' },
      StaticRoutes: [{ Destination: net.subnet, RouteType: 0, NextHop: lease.gateway }],
    };
  }

  async leave(q: S.EndpointRequest): Promise<void> {
    const ep = await this.state.getEndpoint(q.NetworkID, q.EndpointID);
    if (ep) this.onLeft?.(q.NetworkID, ep.address.split('/')[0]!);
    await this.dns?.left(q.EndpointID);
    await this.overlay.deleteEndpointLink(q.EndpointID);
    if (ep) await this.state.putEndpoint({ ...ep, sandboxKey: undefined, hostInterface: undefined });
  }

  async deleteEndpoint(q: S.EndpointRequest): Promise<void> {
    await this.dns?.left(q.EndpointID);
    await this.overlay.deleteEndpointLink(q.EndpointID);
    await this.state.deleteEndpoint(q.NetworkID, q.EndpointID);
  }

  async discoverNew(_q: S.DiscoveryRequest): Promise<void> {}
  async discoverDelete(_q: S.DiscoveryRequest): Promise<void> {}
}
