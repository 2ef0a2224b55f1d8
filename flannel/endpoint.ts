import { run } from '../common/exec.js';
import { VETH_HOST_PREFIX, VETH_PEER_PREFIX } from './names.js';

/**
 * Join/Leave helpers: the veth pair of one endpoint. The host end joins the network's bridge; the peer carries
 * Docker's MAC and the MTU, and Docker moves it into the sandbox and renames it (DstPrefix).
 */

export interface EndpointLinkSpec {
  bridge: string;
  endpointId: string;
  /** Docker's MAC for the container interface; omitted → kernel-assigned. */
  mac?: string;
  mtu: number;
  netns?: string;
}

export interface EndpointLinkNames { hostName: string; peerName: string }

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function endpointLinkNames(endpointId: string): EndpointLinkNames {
  if (!/^[0-9a-f]{8,}$/i.test(endpointId)) throw new RangeError(`endpoint id must be hex (at least 8 digits): ${JSON.stringify(endpointId)}`);
  const id = endpointId.slice(0, 8).toLowerCase();
  return { hostName: `${VETH_HOST_PREFIX}${id}`, peerName: `${VETH_PEER_PREFIX}${id}` };
}

const ipArgs = (netns?: string): string[] => (netns ? ['-n', netns] : []);

async function linkExists(name: string, netns?: string): Promise<boolean> {
  return (await run('ip', [...ipArgs(netns), 'link', 'show', 'dev', name], { allowFailure: true })).code === 0;
}

/** Creates the pair (or completes an existing one); on failure nothing is left behind. */
export async function createEndpointLink(spec: EndpointLinkSpec): Promise<EndpointLinkNames> {
  const names = endpointLinkNames(spec.endpointId);
  if (spec.mac !== undefined && !MAC.test(spec.mac)) throw new RangeError(`bad MAC address: ${JSON.stringify(spec.mac)}`);
  if (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535) throw new RangeError(`bad MTU: ${spec.mtu}`);
  const ip = ipArgs(spec.netns);
  const existed = await linkExists(names.hostName, spec.netns);
  try {
    if (!existed) {
      const peerMac = spec.mac ? ['address', spec.mac.toLowerCase()] : [];
      await run('ip', [...ip, 'link', 'add', names.hostName, 'mtu', String(spec.mtu), 'type', 'veth', 'peer', 'name', names.peerName, 'mtu', String(spec.mtu), ...peerMac]);
    } else if (await linkExists(names.peerName, spec.netns)) {
      // A retried Join: the peer is still here, so make it match this request.
      await run('ip', [...ip, 'link', 'set', names.peerName, 'mtu', String(spec.mtu), ...(spec.mac ? ['address', spec.mac.toLowerCase()] : [])]);
    }
    await run('ip', [...ip, 'link', 'set', names.hostName, 'mtu', String(spec.mtu), 'master', spec.bridge, 'up']);
    // A task reaching its own service VIP may be sent back to itself: the bridge must forward out the port it came in.
    await run('ip', [...ip, 'link', 'set', 'dev', names.hostName, 'type', 'bridge_slave', 'hairpin', 'on']);
  } catch (e) {
    if (!existed) await run('ip', [...ip, 'link', 'del', names.hostName], { allowFailure: true });
    throw e;
  }
  return names;
}

/**
 * Forgets the node's neighbour entry for `address` on `bridge`. Addresses are reused and endpoint MACs are not
 * derived from them, so the gateway may still hold the previous container's MAC for an address: traffic to the new
 * one (from other nodes, and through a VIP) would go nowhere until the entry goes stale and is probed again, ~10 s
 * (measured: new tasks after a rolling upgrade). Absent is fine.
 */
export async function forgetNeighbour(bridge: string, address: string, netns?: string): Promise<void> {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) throw new RangeError(`bad address: ${JSON.stringify(address)}`);
  await run('ip', [...ipArgs(netns), 'neigh', 'del', address, 'dev', bridge], { allowFailure: true });
}

/**
 * Deletes the pair (the peer goes with the host end, wherever it is). Idempotent. One `ip` in the usual case (Leave
 * and DeleteEndpoint each call this for every container, and each spawn blocks the event loop for milliseconds): no
 * host end means no pair, since a veth pair is made and destroyed as a whole; only another failure tries the peer.
 */
export async function deleteEndpointLink(endpointId: string, netns?: string): Promise<void> {
  const names = endpointLinkNames(endpointId);
  const host = await run('ip', [...ipArgs(netns), 'link', 'del', names.hostName], { allowFailure: true });
  if (host.code === 0 || /Cannot find device/.test(host.stderr)) return;
  await run('ip', [...ipArgs(netns), 'link', 'del', names.peerName], { allowFailure: true });
}
