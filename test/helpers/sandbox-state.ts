// What the end-to-end and chaos suites read of a sandbox node's state the same way.
import { execInNode } from '../../scripts/lab/dockerd.mjs';
import type { SandboxNode } from '../../scripts/lab/sandbox.mjs';

/** Key of an address record: 10.128.0.130 -> 0a800082 (docs/etcd-layout.md). */
export const hexIp = (ip: string): string => ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');

/** The backends a node's load balancer has behind a VIP (elements `VIP . i : address` of its nftables map). */
export async function backendsOn(node: SandboxNode, vip: string): Promise<string[]> {
  const map = (await execInNode(node, 'nft', ['list', 'map', 'ip', 'swarmnet-lb', 'backends'], { allowFailure: true })).stdout.replace(/\s+/g, ' ');
  const re = new RegExp(`${vip.replace(/\./g, '\\.')} \\. \\d+ : (\\d+\\.\\d+\\.\\d+\\.\\d+)`, 'g');
  return [...new Set([...map.matchAll(re)].map((m) => m[1]!))].sort();
}
