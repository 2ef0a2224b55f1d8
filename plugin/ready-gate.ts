import type { Driver, IpamDriver, NetworkDriver } from './protocol/contract.js';
import type { Readiness } from './readiness.js';
import type * as S from './protocol/schemas.js';

/** The network half of the implementation: registration-time calls are answered here, not by it. */
export type NetworkImpl = Omit<NetworkDriver, 'gwAllocCheck' | 'programExternalConnectivity' | 'revokeExternalConnectivity'>;

/** What the runtime provides once initialised. */
export interface DriverImpl { network: NetworkImpl; ipam: IpamDriver }

/** How long a Docker call waits for background initialisation before it gets a 503. */
const READY_WAIT_MS = 15_000;

/**
 * The Driver the protocol server talks to from the first second: calls that need cluster state wait (bounded)
 * for initialisation and are then forwarded to the real implementation; calls Docker makes while registering
 * the plugin (discovery, gateway checks, external connectivity) are answered at once.
 */
export class ReadyGate implements Driver {
  private impl: DriverImpl | undefined;
  /** The node's data-path address as Docker announces it (DiscoverNew with Self=true). */
  selfAddress: string | undefined;

  constructor(private readonly readiness: Readiness) {}

  attach(impl: DriverImpl): void {
    this.impl = impl;
  }

  private async ready(): Promise<DriverImpl> {
    await this.readiness.wait(READY_WAIT_MS);
    if (!this.impl) throw new Error('internal: ready without an implementation');
    return this.impl;
  }

  private async net(): Promise<NetworkImpl> { return (await this.ready()).network; }
  private async ipam(): Promise<IpamDriver> { return (await this.ready()).ipam; }

  async allocateNetwork(q: S.AllocateNetworkRequest) { return (await this.net()).allocateNetwork(q); }
  async freeNetwork(q: S.NetworkRequest) { return (await this.net()).freeNetwork(q); }
  async createNetwork(q: S.CreateNetworkRequest) { return (await this.net()).createNetwork(q); }
  async deleteNetwork(q: S.NetworkRequest) { return (await this.net()).deleteNetwork(q); }
  async createEndpoint(q: S.CreateEndpointRequest) { return (await this.net()).createEndpoint(q); }
  async endpointOperInfo(q: S.EndpointRequest) { return (await this.net()).endpointOperInfo(q); }
  async deleteEndpoint(q: S.EndpointRequest) { return (await this.net()).deleteEndpoint(q); }
  async join(q: S.JoinRequest) { return (await this.net()).join(q); }
  async leave(q: S.EndpointRequest) { return (await this.net()).leave(q); }
  async requestPool(q: S.RequestPoolRequest) { return (await this.ipam()).requestPool(q); }
  async releasePool(q: S.PoolRequest) { return (await this.ipam()).releasePool(q); }
  async requestAddress(q: S.RequestAddressRequest) { return (await this.ipam()).requestAddress(q); }
  async releaseAddress(q: S.ReleaseAddressRequest) { return (await this.ipam()).releaseAddress(q); }

  async discoverNew(q: S.DiscoveryRequest): Promise<void> {
    const data = q.DiscoveryData as { Address?: unknown; Self?: unknown } | null | undefined;
    if (q.DiscoveryType === 1 && data?.Self === true && typeof data.Address === 'string' && data.Address) {
      this.selfAddress = data.Address;
    }
    // Peers come from etcd, not from Docker's gossip: other nodes' announcements need no action.
    if (this.impl) await this.impl.network.discoverNew(q);
  }

  async discoverDelete(q: S.DiscoveryRequest): Promise<void> {
    if (this.impl) await this.impl.network.discoverDelete(q);
  }

  async gwAllocCheck(_q: S.GwAllocCheckRequest) {
    return { SkipIPv4: false, SkipIPv6: false };
  }

  /** No port publishing on swarmnet networks (egress goes through docker_gwbridge): nothing to program. */
  async programExternalConnectivity(_q: S.ExternalConnectivityRequest): Promise<void> {}
  async revokeExternalConnectivity(_q: S.EndpointRequest): Promise<void> {}
}
