import { createHash } from 'node:crypto';

/**
 * The VTEP MAC of a node's VXLAN device for one VNI: derived, not random, so the IPAM side can publish it in the
 * flannel lease before the device exists, and a restart recreates the device with the same address
 * (peers' FDB and neighbour entries stay valid). Locally administered, unicast.
 */
export function vtepMac(nodeName: string, vni: number): string {
  const h = createHash('sha256').update(`swarmnet-vtep\0${nodeName}\0${vni}`).digest();
  const bytes = [(h[0]! & 0xfc) | 0x02, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
