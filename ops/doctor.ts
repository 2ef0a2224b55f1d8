/**
 * `swarmnet doctor`, the pure part: every node's published findings (what its reconcilers found different from what
 * they wrote, what they cannot complete) and the cluster's (ops/status-model.ts), each with a plain explanation and
 * what to do.
 */
import { ago, RECENT_REFUSAL_MS, type ClusterStatus } from './status-model.js';

export interface Finding {
  node?: string;
  plane: 'overlay' | 'lb' | 'dns' | 'ipam' | 'cluster';
  /** problem: wrong now; repaired: it was wrong and the node put it back (what changed it may do so again). */
  severity: 'problem' | 'repaired';
  what: string;
  at?: number;
  why: string;
  todo: string;
}

/** Repairs older than this are history, not findings. */
export const RECENT_MS = RECENT_REFUSAL_MS;

const DRIFT: Record<string, { name: string; why: string }> = {
  fdb: { name: 'VXLAN forwarding (FDB) entries', why: 'they tell the VXLAN device which node holds a host subnet; without them traffic to that node\'s containers is dropped' },
  neighbours: { name: 'neighbour (ARP) entries of other nodes\' gateways', why: 'a wrong or missing entry sends traffic for that node\'s containers nowhere' },
  links: { name: 'overlay devices (VXLAN device or bridge)', why: 'containers on this node lose the overlay until the device is back' },
  routes: { name: 'routes to other nodes\' host subnets', why: 'traffic to those subnets takes the default route instead of the overlay' },
  addresses: { name: 'gateway addresses of the overlay bridges', why: 'containers lose their gateway for cross-node traffic' },
  rules: { name: 'forwarding rules of the overlay', why: 'the firewall may drop or leak overlay traffic' },
};

const EDITOR = 'Something else edits this node\'s network state: look for another network agent, a firewall script (`nft flush ruleset`, `iptables -F`) or a manual `ip` command; `ip monitor` on the node shows the next change as it happens';

export function diagnose(s: ClusterStatus, now: number): Finding[] {
  const out: Finding[] = [];
  for (const n of s.nodes) {
    const node = n.node;
    if (n.overlay.failing) {
      out.push({
        node, plane: 'overlay', severity: 'problem', at: n.overlay.failing.since,
        what: `the overlay reconciler cannot complete since ${ago(now, n.overlay.failing.since)}: ${n.overlay.failing.error}`,
        why: 'cross-node traffic to or from this node may be incomplete until it does',
        todo: `read the plugin log on ${node} (overlay component); check the underlay interface and that etcd is reachable`,
      });
    }
    for (const [kind, d] of Object.entries(n.overlay.drift ?? {})) {
      if (now - d.lastAt > RECENT_MS) continue;
      const k = DRIFT[kind] ?? { name: kind, why: 'the overlay differed from what swarmnet programmed' };
      out.push({
        node, plane: 'overlay', severity: 'repaired', at: d.lastAt,
        what: `${d.count} change(s) of ${k.name} made outside swarmnet, last ${ago(now, d.lastAt)}; repaired`,
        why: k.why, todo: EDITOR,
      });
    }
    if (n.lb.repairedAt !== undefined && now - n.lb.repairedAt <= RECENT_MS) {
      out.push({
        node, plane: 'lb', severity: 'repaired', at: n.lb.repairedAt,
        what: `the load balancer's rules differed from what swarmnet wrote (${n.lb.repairs} time(s), last ${ago(now, n.lb.repairedAt)}); repaired`,
        why: `connections to service VIPs on ${node} went to missing or wrong backends until then`,
        todo: `${EDITOR}; the rules are table ip swarmnet-lb (nftables) or IPVS`,
      });
    }
    if (n.lb.failing) {
      out.push({
        node, plane: 'lb', severity: 'problem', at: n.lb.failing.since,
        what: `the load balancer cannot write the kernel since ${ago(now, n.lb.failing.since)}: ${n.lb.failing.error}`,
        why: `service VIPs on ${node} keep their old backends (new tasks get no traffic, gone ones still do) until a write lands; it is retried every check`,
        todo: `read the plugin log on ${node} (lb component); \`nft list table ip swarmnet-lb\` (nftables) or \`ipvsadm -Ln\` shows what the kernel holds`,
      });
    } else if (n.lb.refusedAt !== undefined && now - n.lb.refusedAt <= RECENT_MS) {
      out.push({
        node, plane: 'lb', severity: 'repaired', at: n.lb.refusedAt,
        what: `the kernel refused ${n.lb.failures} load-balancer change(s), last ${ago(now, n.lb.refusedAt)}; the whole state was written instead`,
        why: 'the kernel held something other than what swarmnet wrote, or refused the change; a whole write costs more than the change',
        todo: `read the plugin log on ${node} (lb component) for the kernel's error; ${EDITOR}`,
      });
    }
    if (n.ipam && n.ipam.unused > 0) {
      out.push({
        node, plane: 'ipam', severity: 'problem', at: n.ipam.checkedAt,
        what: `${n.ipam.unused} address record(s) of this node have no running container (${n.ipam.sample.join(', ')}${n.ipam.unused > n.ipam.sample.length ? ', …' : ''})`,
        why: 'those addresses stay taken: the node\'s host subnet fills up, and a record whose container is really gone is never reused',
        todo: `\`docker plugin disable -f swarmnet:latest && docker plugin enable swarmnet:latest\` on ${node} runs the restart reconciliation, which releases them (running containers keep their addresses)`,
      });
    }
    if (n.dns.repairedAt !== undefined && now - n.dns.repairedAt <= RECENT_MS) {
      out.push({
        node, plane: 'dns', severity: 'repaired', at: n.dns.repairedAt,
        what: `a served container's DNS takeover was removed inside it (${n.dns.repairs ?? 1} time(s), last ${ago(now, n.dns.repairedAt)}); put back`,
        why: 'until then that container asked Docker\'s resolver, which does not know swarmnet\'s names',
        todo: 'something inside a container edits its nftables (a privileged container, `nft flush ruleset` in an entrypoint): find it with the plugin log\'s netns and `docker inspect`',
      });
    }
    if (n.dns.serveFailures > 0) {
      out.push({
        node, plane: 'dns', severity: 'problem',
        what: `${n.dns.serveFailures} container namespace(s) could not be served by swarmnet's resolver`,
        why: 'those containers keep Docker\'s resolver: service names of swarmnet networks do not resolve there',
        todo: `read the plugin log on ${node} (dns component); restarting such a container serves it again`,
      });
    }
  }
  for (const a of s.attention) {
    // Node-level items above say the same with more detail.
    if (/^node \S+: (\d+ container namespace|the kernel refused)/.test(a)) continue;
    out.push({ plane: 'cluster', severity: 'problem', what: a, why: '', todo: todoFor(a) });
  }
  return out;
}

function todoFor(attention: string): string {
  if (/refused IpamDriver\.RequestPool|refused NetworkDriver\.AllocateNetwork/.test(attention)) {
    return 'Docker created the network without a driver: `docker network rm` it and create it again with a --subnet inside AVAILABLE_SUBNETS of the size the error names (docs/troubleshooting.md)';
  }
  if (/publishes no status/.test(attention)) return 'upgrade the plugin on that node, or enable it (`docker plugin ls` there)';
  if (/last checked/.test(attention)) return 'the node\'s reconciler is stuck: read its plugin log; `docker plugin disable -f` + `enable` restarts it without touching running containers';
  if (/none of its .* task\(s\) is healthy/.test(attention)) return '`docker service ps --no-trunc` shows why its tasks fail or are unhealthy';
  return 'see docs/troubleshooting.md';
}

export function renderFindings(findings: Finding[], s: ClusterStatus, now: number): string {
  const out: string[] = [];
  for (const n of s.nodes) {
    const overlay = n.overlay.changedAt === undefined ? 'never' : ago(now, n.overlay.changedAt);
    const lb = n.lb.repairedAt === undefined ? 'never' : ago(now, n.lb.repairedAt);
    out.push(`${n.node}: overlay last changed ${overlay}, load balancer last repaired ${lb}`);
  }
  out.push('');
  if (findings.length === 0) {
    out.push('OK: no findings on any node');
    return out.join('\n');
  }
  out.push(`FINDINGS (${findings.length})`);
  for (const f of findings) {
    out.push(`- ${f.node ?? 'cluster'} ${f.plane} ${f.severity.toUpperCase()}: ${f.what}`);
    if (f.why) out.push(`    why: ${f.why}`);
    out.push(`    do:  ${f.todo}`);
  }
  return out.join('\n');
}
