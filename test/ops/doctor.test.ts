import test from 'ava';
import { diagnose, renderFindings, RECENT_MS } from '../../ops/doctor.js';
import type { ClusterStatus, NodeSummary } from '../../ops/status-model.js';

const NOW = 1_800_000_000_000;

function node(name: string, over: Partial<NodeSummary> = {}): NodeSummary {
  return {
    node: name, publicIp: '10.0.0.1', version: '0.1.0', manager: false, startedAt: NOW - 3_600_000, hostSubnets: {}, endpoints: 1,
    overlay: { checkedAt: NOW - 60_000, changedAt: NOW - 1_800_000, runs: 10, failedRuns: 0, drift: {} },
    dns: { served: 1, waiting: 0, serveFailures: 0 },
    lb: { backend: 'nftables', vips: 1, backends: 2, failures: 0, repairs: 0 },
    ...over,
  };
}
const status = (nodes: NodeSummary[], attention: string[] = []): ClusterStatus => ({ nodes, networks: [], services: [], refusals: [], attention, unreadable: 0 });

test('a healthy cluster has no findings, and each node says when it last repaired', (t) => {
  const s = status([node('node1'), node('node2', { lb: { backend: 'ipvs', vips: 1, backends: 2, failures: 0, repairs: 1, repairedAt: NOW - RECENT_MS - 1000 } })]);
  t.deepEqual(diagnose(s, NOW), [], 'a repair older than the window is history');
  const text = renderFindings([], s, NOW);
  t.regex(text, /^node1: overlay last changed 30 min ago, load balancer last repaired never$/m);
  t.regex(text, /^node2: overlay last changed 30 min ago, load balancer last repaired 15 min ago$/m);
  t.regex(text, /^OK: no findings on any node$/m);
});

test('drift by kind, LB repairs, a failing reconciler, DNS failures and cluster attention each become a finding with why and what to do', (t) => {
  const s = status([
    node('node1', { overlay: { checkedAt: NOW, changedAt: NOW - 5000, runs: 10, failedRuns: 0, drift: { fdb: { count: 1, lastAt: NOW - 5000 }, neighbours: { count: 2, lastAt: NOW - 65_000 } } } }),
    node('node2', {
      overlay: { checkedAt: NOW, runs: 10, failedRuns: 3, drift: {}, failing: { error: 'underlay interface eth9 not found', since: NOW - 120_000 } },
      lb: { backend: 'nftables', vips: 1, backends: 2, failures: 2, repairs: 1, repairedAt: NOW - 20_000, refusedAt: NOW - 60_000, failing: { error: 'Error: Could not process rule: No buffer space available', since: NOW - 60_000 } },
      dns: { served: 0, waiting: 0, serveFailures: 1, repairs: 2, repairedAt: NOW - 30_000 },
      ipam: { unused: 7, sample: ['10.128.0.9 (10.128.0.0/20)'], checkedAt: NOW - 10_000 },
    }),
  ], [
    'node node2: 1 container namespace(s) could not be served by swarmnet\'s DNS (they keep Docker\'s resolver); see its plugin log',
    'node node1 refused IpamDriver.RequestPool 5 s ago: pool 192.168.5.0/24 must be a /20',
  ]);
  const f = diagnose(s, NOW);
  t.deepEqual(f.map((x) => [x.node ?? 'cluster', x.plane, x.severity]), [
    ['node1', 'overlay', 'repaired'],
    ['node1', 'overlay', 'repaired'],
    ['node2', 'overlay', 'problem'],
    ['node2', 'lb', 'repaired'],
    ['node2', 'lb', 'problem'],
    ['node2', 'ipam', 'problem'],
    ['node2', 'dns', 'repaired'],
    ['node2', 'dns', 'problem'],
    ['cluster', 'cluster', 'problem'],
  ]);
  t.regex(f[0]!.what, /^1 change\(s\) of VXLAN forwarding \(FDB\) entries made outside swarmnet, last 5 s ago; repaired$/);
  t.regex(f[1]!.what, /neighbour \(ARP\) entries .* last 65 s ago/);
  t.regex(f[2]!.what, /cannot complete since 2 min ago: underlay interface eth9 not found/);
  t.regex(f[3]!.what, /differed from what swarmnet wrote \(1 time\(s\), last 20 s ago\)/);
  t.regex(f[4]!.what, /^the load balancer cannot write the kernel since 60 s ago: Error: Could not process rule: No buffer space available$/);
  t.regex(f[5]!.what, /^7 address record\(s\) of this node have no running container \(10\.128\.0\.9 \(10\.128\.0\.0\/20\), …\)$/);
  t.regex(f[5]!.todo, /plugin disable -f.*enable.*releases them/);
  t.regex(f[6]!.what, /^a served container's DNS takeover was removed inside it \(2 time\(s\), last 30 s ago\); put back$/);
  t.regex(f[8]!.todo, /docker network rm.*AVAILABLE_SUBNETS/);
  for (const x of f) t.true(x.todo.length > 0, 'every finding says what to do');
  const text = renderFindings(f, s, NOW);
  t.regex(text, /^FINDINGS \(9\)$/m);
  t.regex(text, /^- node1 overlay REPAIRED: 1 change\(s\) of VXLAN forwarding/m);
  t.regex(text, /^ {4}do: {2}Something else edits this node's network state/m);
});

test('a refused load-balancer change that a whole write repaired is reported while recent, never as a problem', (t) => {
  const lb = (refusedAt: number) => ({ backend: 'nftables', vips: 1, backends: 2, failures: 3, repairs: 0, refusedAt });
  const f = diagnose(status([node('node1', { lb: lb(NOW - 5000) }), node('node2', { lb: lb(NOW - RECENT_MS - 1000) })]), NOW);
  t.deepEqual(f.map((x) => [x.node, x.plane, x.severity]), [['node1', 'lb', 'repaired']]);
  t.regex(f[0]!.what, /^the kernel refused 3 load-balancer change\(s\), last 5 s ago; the whole state was written instead$/);
});
