/**
 * Overlay data-plane benchmark in network namespaces (root; no Docker):
 *  1. TCP throughput container -> container across two namespace hosts: swarmnet VXLAN vs plain veth/bridge with
 *     direct host routes over the same underlay (iperf3, several rounds, interleaved);
 *  2. reconcile time with 1,000 remote leases: first programming, steady-state pass, repair, lease removal.
 * Run: npx tsx bench/overlay/run.ts [seconds=5] [rounds=3]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { formatIp, parseIp } from '../../common/cidr.js';
import { run } from '../../common/exec.js';
import { setLogLevel } from '../../common/log.js';
import type { HostLease, OverlayState } from '../../flannel/model.js';
import { bridgeName } from '../../flannel/names.js';
import { OverlayReconciler } from '../../flannel/reconciler.js';
import { vtepMac } from '../../flannel/vtep-mac.js';
import { Lab, sh, type LabContainer } from '../../test/flannel/lab.js';

setLogLevel('warn');
const seconds = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 3);
if (process.getuid?.() !== 0) {
  console.error('bench/overlay needs root (network namespaces)');
  process.exit(2);
}

/** One iperf3 run; the server is a child process (one test, then it exits) killed by PID in any case. */
async function iperf(server: LabContainer, client: LabContainer): Promise<number> {
  const srv = spawn('ip', ['netns', 'exec', server.ns, 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      const listening = await sh(server.ns, 'ss', ['-Hltn', 'sport', '=', ':5201'], true);
      if (listening.stdout.trim()) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await run('ip', ['netns', 'exec', client.ns, 'iperf3', '-c', server.ip, '-p', '5201', '-t', String(seconds), '-J'], { timeoutMs: (seconds + 15) * 1000 });
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    srv.kill('SIGKILL');
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function throughput(lab: Lab): Promise<void> {
  if (!existsSync('/usr/bin/iperf3')) {
    console.log('throughput: skipped (iperf3 not installed: npm run bench installs it from scripts/lab/prereqs.mjs, as root)');
    return;
  }
  const a = await lab.host('a', 11);
  const b = await lab.host('b', 12);
  const net = { id: 'bench', vni: 77, subnet: '10.128.0.0/16' };
  const leases: HostLease[] = [a, b].map((h, i) => ({ networkId: 'bench', subnet: `10.128.${i + 1}.0/24`, publicIp: h.node.publicIp, vtepMac: vtepMac(h.node.name, 77), node: h.node.name }));
  const recs = [a, b].map((h) => new OverlayReconciler({ stateDir: h.stateDir, netns: h.ns }));
  await Promise.all([a, b].map((h, i) => recs[i]!.update({ node: h.node, networks: [net], leases })));
  const sa = await lab.container(a, 'sa', bridgeName(77), '10.128.1.10', 24, '10.128.1.1', 1450);
  const sb = await lab.container(b, 'sb', bridgeName(77), '10.128.2.10', 24, '10.128.2.1', 1450);

  // Plain: a bridge per host, containers behind it, each host routes the other's subnet via its underlay address.
  for (const [h, mine, peerNet, peerIp] of [[a, '10.200.1.1/24', '10.200.2.0/24', '192.168.200.12'], [b, '10.200.2.1/24', '10.200.1.0/24', '192.168.200.11']] as const) {
    await run('ip', ['-n', h.ns, 'link', 'add', 'plbr', 'type', 'bridge']);
    await run('ip', ['-n', h.ns, 'addr', 'add', mine, 'dev', 'plbr']);
    await run('ip', ['-n', h.ns, 'link', 'set', 'plbr', 'up']);
    await run('ip', ['-n', h.ns, 'route', 'add', peerNet, 'via', peerIp]);
    await sh(h.ns, 'iptables', ['-w', '-I', 'FORWARD', '-i', 'plbr', '-j', 'ACCEPT']);
    await sh(h.ns, 'iptables', ['-w', '-I', 'FORWARD', '-o', 'plbr', '-j', 'ACCEPT']);
  }
  const pa = await lab.container(a, 'pa', 'plbr', '10.200.1.10', 24, '10.200.1.1', 1500);
  const pb = await lab.container(b, 'pb', 'plbr', '10.200.2.10', 24, '10.200.2.1', 1500);

  const vx: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < rounds; i++) {
    vx.push(await iperf(sb, sa));
    plain.push(await iperf(pb, pa));
  }
  const m = { vx: median(vx), plain: median(plain) };
  console.log(`TCP throughput, iperf3 ${seconds}s x ${rounds} rounds (median), container -> container across two namespace hosts:`);
  console.log(`  swarmnet VXLAN (MTU 1450): ${m.vx.toFixed(2)} Gbit/s  [${vx.map((x) => x.toFixed(2)).join(', ')}]`);
  console.log(`  plain veth/bridge routed (MTU 1500): ${m.plain.toFixed(2)} Gbit/s  [${plain.map((x) => x.toFixed(2)).join(', ')}]`);
  console.log(`  ratio swarmnet/plain: ${(m.vx / m.plain).toFixed(2)}`);
}

async function reconcileScale(lab: Lab, remotes: number): Promise<void> {
  const h = await lab.host('r', 20);
  const net = { id: 'scale', vni: 500, subnet: '10.64.0.0/10' };
  const base = parseIp('10.64.0.0');
  const lease = (i: number, node: string, ip: string): HostLease => ({ networkId: 'scale', subnet: `${formatIp(base + i * 256)}/24`, publicIp: ip, vtepMac: vtepMac(node, 500), node });
  const leases = [lease(0, h.node.name, h.node.publicIp)];
  for (let i = 1; i <= remotes; i++) leases.push(lease(i, `peer-${i}`, formatIp(parseIp('172.16.0.0') + i)));
  const state: OverlayState = { node: h.node, networks: [net], leases };
  const rec = new OverlayReconciler({ stateDir: h.stateDir, netns: h.ns });
  const time = async (label: string, s: OverlayState): Promise<void> => {
    const r = await rec.update(s);
    if (!r.ok) throw new Error(`${label}: ${r.errors.slice(0, 3).join('; ')}`);
    const c = r.changes;
    console.log(`  ${label}: ${r.durationMs.toFixed(0)} ms (routes ${c.routes}, neigh ${c.neighbours}, fdb ${c.fdb}, links ${c.links})`);
  };
  console.log(`Reconcile with ${remotes} remote leases (one network):`);
  await time('first programming', state);
  await time('steady-state pass (nothing to do)', state);
  for (let i = 1; i <= 10; i++) await run('ip', ['-n', h.ns, 'route', 'del', `${formatIp(base + i * 256)}/24`]);
  await time('repair of 10 hand-deleted routes', state);
  await time('removal of 100 leases', { ...state, leases: leases.slice(0, remotes + 1 - 100) });
}

const lab = new Lab();
try {
  await lab.init();
  await throughput(lab);
  await reconcileScale(lab, 1000);
} finally {
  await lab.destroy();
}
