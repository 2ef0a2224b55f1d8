import type {
  AllocateNetworkRequest, CreateEndpointRequest, CreateNetworkRequest, DiscoveryRequest, EndpointRequest,
  ExternalConnectivityRequest, GwAllocCheckRequest, JoinRequest, NetworkRequest, PoolRequest, ReleaseAddressRequest,
  RequestAddressRequest, RequestPoolRequest,
} from './schemas.js';

/**
 * The contract between the protocol server (plugin/protocol) and the implementation.
 * Requests arrive validated. A method throws PluginError (or any Error) to answer Docker with a
 * non-200 status and {"Err": message}; it must never wait without a bound.
 */
export interface NetworkDriver {
  allocateNetwork(req: AllocateNetworkRequest): Promise<{ Options: Record<string, string> }>;
  freeNetwork(req: NetworkRequest): Promise<void>;
  createNetwork(req: CreateNetworkRequest): Promise<void>;
  deleteNetwork(req: NetworkRequest): Promise<void>;
  createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResponse>;
  endpointOperInfo(req: EndpointRequest): Promise<Record<string, string>>;
  deleteEndpoint(req: EndpointRequest): Promise<void>;
  join(req: JoinRequest): Promise<JoinResponse>;
  leave(req: EndpointRequest): Promise<void>;
  discoverNew(req: DiscoveryRequest): Promise<void>;
  discoverDelete(req: DiscoveryRequest): Promise<void>;
  programExternalConnectivity(req: ExternalConnectivityRequest): Promise<void>;
  revokeExternalConnectivity(req: EndpointRequest): Promise<void>;
  gwAllocCheck(req: GwAllocCheckRequest): Promise<{ SkipIPv4: boolean; SkipIPv6: boolean }>;
}

export interface IpamDriver {
  requestPool(req: RequestPoolRequest): Promise<{ PoolID: string; Pool: string; Data: Record<string, string> }>;
  releasePool(req: PoolRequest): Promise<void>;
  requestAddress(req: RequestAddressRequest): Promise<{ Address: string; Data: Record<string, string> }>;
  releaseAddress(req: ReleaseAddressRequest): Promise<void>;
}

export interface Driver extends NetworkDriver, IpamDriver {}

/** Only set fields that Docker did not send: echoing a set Address or MAC fails the endpoint. */
export interface CreateEndpointResponse {
  Interface?: { Address?: string; AddressIPv6?: string; MacAddress?: string };
}

export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway?: string;
  GatewayIPv6?: string;
  StaticRoutes?: { Destination: string; RouteType: 0 | 1; NextHop?: string }[];
  DisableGatewayService?: boolean;
}

/** An error with an HTTP status for Docker (400 for the caller's mistakes, 500 for ours, 503 while initialising). */
export class PluginError extends Error {
  constructor(
    message: string,
    readonly status = 500,
  ) {
    super(message);
    this.name = 'PluginError';
  }
}

export const ADDRESS_SPACE_LOCAL = 'SwarmnetLocal';
export const ADDRESS_SPACE_GLOBAL = 'SwarmnetGlobal';
