import { createHash } from 'node:crypto';

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

export function isMac(text: string): boolean {
  return MAC.test(text.toLowerCase());
}

/** A stable, locally administered unicast MAC for an endpoint Docker gave none (Docker 20.10 often sends ""). */
export function endpointMac(endpointId: string): string {
  const h = createHash('sha256').update(`swarmnet-endpoint\0${endpointId}`).digest();
  return [(h[0]! & 0xfc) | 0x02, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
