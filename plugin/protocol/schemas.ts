import { z } from 'zod';

/**
 * Schemas of every request Docker sends to a remote NetworkDriver / IpamDriver (Docker 20.10 … 29).
 * Field names are Go's, exactly as on the wire. Unknown fields are tolerated (newer engines add some);
 * `null` is legal wherever Go may marshal a nil map or slice.
 */

const id = z.string().min(1, 'must be a non-empty string');
const stringMap = z.record(z.string(), z.string()).nullish();
const anyMap = z.record(z.string(), z.unknown()).nullish();

export const IpamDataSchema = z.looseObject({
  AddressSpace: z.string().optional(),
  Pool: z.string(),
  Gateway: z.string().optional(),
  AuxAddresses: stringMap,
});

export const NetworkRequestSchema = z.looseObject({ NetworkID: id });

export const CreateNetworkSchema = z.looseObject({
  NetworkID: id,
  Options: anyMap,
  IPv4Data: z.array(IpamDataSchema).nullish(),
  IPv6Data: z.array(IpamDataSchema).nullish(),
});

export const AllocateNetworkSchema = z.looseObject({
  NetworkID: id,
  Options: stringMap,
  IPv4Data: z.array(IpamDataSchema).nullish(),
  IPv6Data: z.array(IpamDataSchema).nullish(),
});

export const EndpointRequestSchema = z.looseObject({ NetworkID: id, EndpointID: id });

export const CreateEndpointSchema = z.looseObject({
  NetworkID: id,
  EndpointID: id,
  Interface: z
    .looseObject({
      Address: z.string().optional(),
      AddressIPv6: z.string().optional(),
      MacAddress: z.string().optional(),
    })
    .nullish(),
  Options: anyMap,
});

export const JoinSchema = z.looseObject({
  NetworkID: id,
  EndpointID: id,
  SandboxKey: id,
  Options: anyMap,
});

export const ExternalConnectivitySchema = z.looseObject({
  NetworkID: id,
  EndpointID: id,
  Options: anyMap,
});

export const DiscoverySchema = z.looseObject({
  DiscoveryType: z.number().int(),
  DiscoveryData: z.unknown().optional(),
});

export const GwAllocCheckSchema = z.looseObject({ Options: anyMap });

export const RequestPoolSchema = z.looseObject({
  AddressSpace: z.string(),
  Pool: z.string().optional().default(''),
  SubPool: z.string().optional().default(''),
  Options: stringMap,
  V6: z.boolean().optional().default(false),
});

export const PoolRequestSchema = z.looseObject({ PoolID: id });

export const RequestAddressSchema = z.looseObject({
  PoolID: id,
  Address: z.string().optional().default(''),
  Options: stringMap,
});

export const ReleaseAddressSchema = z.looseObject({ PoolID: id, Address: id });

export type IpamData = z.infer<typeof IpamDataSchema>;
export type CreateNetworkRequest = z.infer<typeof CreateNetworkSchema>;
export type AllocateNetworkRequest = z.infer<typeof AllocateNetworkSchema>;
export type NetworkRequest = z.infer<typeof NetworkRequestSchema>;
export type EndpointRequest = z.infer<typeof EndpointRequestSchema>;
export type CreateEndpointRequest = z.infer<typeof CreateEndpointSchema>;
export type JoinRequest = z.infer<typeof JoinSchema>;
export type ExternalConnectivityRequest = z.infer<typeof ExternalConnectivitySchema>;
export type DiscoveryRequest = z.infer<typeof DiscoverySchema>;
export type GwAllocCheckRequest = z.infer<typeof GwAllocCheckSchema>;
export type RequestPoolRequest = z.infer<typeof RequestPoolSchema>;
export type PoolRequest = z.infer<typeof PoolRequestSchema>;
export type RequestAddressRequest = z.infer<typeof RequestAddressSchema>;
export type ReleaseAddressRequest = z.infer<typeof ReleaseAddressSchema>;

/** "Interface.Address: expected string, received number; NetworkID: required" */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => {
      const path = i.path.length ? i.path.join('.') : 'body';
      const msg = i.code === 'invalid_type' && i.message.includes('undefined') ? 'required field is missing' : i.message;
      return `${path}: ${msg}`;
    })
    .join('; ');
}
