import { run } from '../common/exec.js';
import type { Upstream } from './upstreams.js';

/**
 * Docker's own embedded resolver inside a container: 127.0.0.11 on two random ports (UDP and TCP), reached through
 * Docker's DNAT of 127.0.0.11:53. Queries swarmnet does not answer go there, from the container's namespace: Docker
 * then answers what it owns (names on bridge and overlay networks, the ingress) and forwards external names with the
 * container's own --dns / resolv.conf settings, dialed from the container's namespace — exactly as without swarmnet.
 */

/** The ports from Docker's DNAT rules, as `nft list ruleset` (iptables-nft or the nftables backend) or
 * `iptables-save -t nat` (iptables-legacy) print them; undefined until both exist. */
export function dockerResolverPorts(rules: string): { udp: number; tcp: number } | undefined {
  const port = (proto: 'udp' | 'tcp'): number | undefined => {
    for (const line of rules.split('\n')) {
      if (!line.includes('127.0.0.11')) continue;
      const nft = new RegExp(`\\b${proto} dport 53\\b.*\\bdnat to 127\\.0\\.0\\.11:(\\d+)`).exec(line);
      const legacy = new RegExp(`-p ${proto}\\b.*--dport 53\\b.*--to-destination 127\\.0\\.0\\.11:(\\d+)`).exec(line);
      const p = Number((nft ?? legacy)?.[1]);
      if (Number.isInteger(p) && p > 0 && p < 65536) return p;
    }
    return undefined;
  };
  const udp = port('udp');
  const tcp = port('tcp');
  return udp && tcp ? { udp, tcp } : undefined;
}

/** Reads Docker's DNAT rules in the namespace at netns; undefined when Docker has not (or not yet) added them. */
export async function findDockerResolver(netns: string): Promise<Upstream | undefined> {
  const nft = await run('nsenter', [`--net=${netns}`, 'nft', 'list', 'ruleset'], { allowFailure: true });
  let ports = nft.code === 0 ? dockerResolverPorts(nft.stdout) : undefined;
  if (!ports) {
    const legacy = await run('nsenter', [`--net=${netns}`, 'iptables-legacy-save', '-t', 'nat'], { allowFailure: true });
    if (legacy.code === 0) ports = dockerResolverPorts(legacy.stdout);
  }
  return ports ? { host: '127.0.0.11', port: ports.udp, tcpPort: ports.tcp } : undefined;
}
