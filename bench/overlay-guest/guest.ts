/**
 * Runs inside the qemu guest of bench/overlay-guest/run.ts (a kernel with flowtables, one emulated CPU): two lab hosts
 * on a veth underlay, each with a swarmnet container (the real OverlayReconciler; br_netfilter on, FORWARD's policy
 * DROP and a NAT chain, so conntrack sees every packet, as on a Docker host) and a Docker-overlay-shaped container
 * (bridge and VXLAN device inside a namespace of their own, switched at layer 2, no rules). iperf3, one stream,
 * paths interleaved per round. Prints `OVERLAY-GUEST <path> <round> <Gbit/s>` per run, then `OVERLAY-GUEST DONE`.
 * With `profile` (and perf in the image), each overlay path is then sampled with perf while iperf3 runs:
 * `OVERLAY-GUEST-PROFILE <path> <Gbit/s> <%> <symbol>`.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../common/exec.js';
import { setLogLevel } from '../../common/log.js';
import type { HostLease, OverlayNetwork, OverlayState } from '../../flannel/model.js';
import { bridgeName } from '../../flannel/names.js';
import { OverlayReconciler } from '../../flannel/reconciler.js';
import { vtepMac } from '../../flannel/vtep-mac.js';
import { Lab, sh, type LabHost } from '../../test/flannel/lab.js';

setLogLevel('warn');
const [secondsArg, roundsArg, mode] = (process.env.OVERLAY_GUEST_ARGS ?? '5 4').split(' ');
const seconds = Number(secondsArg);
const rounds = Number(roundsArg);
const NET: OverlayNetwork = { id: 'net', vni: 101, subnet: '10.128.0.0/16' };

/** One iperf3 run from namespace `client` to `address` (server in `server`); retried while the server starts. */
async function iperf(server: string, client: string, address: string, time = seconds): Promise<number> {
  const srv = spawn('ip', ['netns', 'exec', server, 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  try {
    for (let i = 0; ; i++) {
      const r = await run('ip', ['netns', 'exec', client, 'iperf3', '-c', address, '-p', '5201', '-t', String(time), '-J'], { allowFailure: true, timeoutMs: (time + 30) * 1000 });
      const j = r.code === 0 ? (JSON.parse(r.stdout) as { error?: string; end?: { sum_received?: { bits_per_second: number } } }) : undefined;
      if (j?.end?.sum_received) return j.end.sum_received.bits_per_second / 1e9;
      if (j?.error) console.log(`OVERLAY-GUEST-NOTE ${client} -> ${address}: ${j.error}`);
      if (i > 50) throw new Error(`iperf3 ${client} -> ${address}: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`);
      await sleep(100);
    }
  } finally {
    srv.kill('SIGKILL');
  }
}

/** Docker's overlay layout on host `h`: namespace `ns` holds bridge br0 and the VXLAN device (its socket stays in the host). */
async function dockerShaped(lab: Lab, h: LabHost, name: string, ip: string, peer: { mac: string; publicIp: string; ip: string }, mac: string): Promise<string> {
  const ns = `${h.ns}ov`;
  await run('ip', ['netns', 'add', ns]);
  const c = `${h.ns}${name}`;
  await run('ip', ['netns', 'add', c]);
  await run('ip', ['-n', h.ns, 'link', 'add', 'vxd', 'type', 'vxlan', 'id', '4097', 'local', h.node.publicIp, 'dev', 'eth0', 'dstport', '4789', 'nolearning']);
  await run('ip', ['-n', h.ns, 'link', 'set', 'vxd', 'netns', ns]);
  const o = (...a: string[]): Promise<unknown> => run('ip', ['-n', ns, ...a]);
  await o('link', 'add', 'br0', 'type', 'bridge');
  await o('link', 'set', 'vxd', 'master', 'br0', 'mtu', '1450', 'up');
  await o('link', 'set', 'br0', 'mtu', '1450', 'up');
  await o('link', 'set', 'lo', 'up');
  await o('link', 'add', 'vd', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c, 'mtu', '1450');
  await o('link', 'set', 'vd', 'master', 'br0', 'up');
  await run('ip', ['-n', c, 'link', 'set', 'eth0', 'address', mac, 'up']);
  await run('ip', ['-n', c, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', c, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  // As Docker programs it: the peer container's MAC behind the peer's VTEP, and a permanent neighbour for it.
  await run('bridge', ['-n', ns, 'fdb', 'add', peer.mac, 'dev', 'vxd', 'dst', peer.publicIp, 'self', 'permanent']);
  await run('ip', ['-n', c, 'neigh', 'add', peer.ip, 'lladdr', peer.mac, 'dev', 'eth0', 'nud', 'permanent']);
  return c;
}

async function main(): Promise<void> {
  const lab = new Lab();
  await lab.init();
  const a = await lab.host('a', 11);
  const b = await lab.host('b', 12);
  for (const h of [a, b]) {
    await sh(h.ns, 'sysctl', ['-q', '-w', 'net.bridge.bridge-nf-call-iptables=1']);
    // Docker's masquerade for docker0: a NAT chain, so conntrack tracks every packet of the host, as on a Docker host.
    await run('ip', ['netns', 'exec', h.ns, 'nft', '-f', '-'], { input: 'table ip docker-like {\n  chain post { type nat hook postrouting priority srcnat; ip saddr 172.17.0.0/16 oifname != "docker0" masquerade; }\n}\n' });
  }
  const lease = (h: LabHost, third: number): HostLease => ({ networkId: NET.id, subnet: `10.128.${third}.0/24`, publicIp: h.node.publicIp, vtepMac: vtepMac(h.node.name, NET.vni), node: h.node.name });
  const state = (h: LabHost): OverlayState => ({ node: h.node, networks: [NET], leases: [lease(a, 1), lease(b, 2)] });
  const rec = (h: LabHost, fastPath: boolean): OverlayReconciler => new OverlayReconciler({ stateDir: h.stateDir, netns: h.ns, intervalMs: 3_600_000, fastPath });
  const fast = async (on: boolean): Promise<void> => {
    for (const h of [a, b]) {
      const r = rec(h, on);
      const rep = await r.update(state(h));
      if (!rep.ok || r.stats.fastPath !== (on ? 'on' : 'off')) throw new Error(`${h.node.name}: fast path ${r.stats.fastPath}: ${rep.errors.join('; ')}`);
    }
  };
  await fast(false);
  const ca = await lab.container(a, 'ca', bridgeName(NET.vni), '10.128.1.10', 24, '10.128.1.1', 1450);
  const cb = await lab.container(b, 'cb', bridgeName(NET.vni), '10.128.2.10', 24, '10.128.2.1', 1450);
  const macA = '02:42:0a:00:00:0a';
  const macB = '02:42:0a:00:00:0b';
  const da = await dockerShaped(lab, a, 'da', '10.0.0.10', { mac: macB, publicIp: b.node.publicIp, ip: '10.0.0.11' }, macA);
  const db = await dockerShaped(lab, b, 'db', '10.0.0.11', { mac: macA, publicIp: a.node.publicIp, ip: '10.0.0.10' }, macB);
  const paths: [string, (time?: number) => Promise<number>][] = [
    ['underlay', (time) => iperf(b.ns, a.ns, b.node.publicIp, time)],
    ['docker-shaped', (time) => iperf(db, da, '10.0.0.11', time)],
    ['swarmnet', async (time) => { await fast(false); return iperf(cb.ns, ca.ns, cb.ip, time); }],
    ['swarmnet-fast-path', async (time) => { await fast(true); return iperf(cb.ns, ca.ns, cb.ip, time); }],
  ];
  await paths[1]![1](); // warm-up, not counted
  for (let round = 1; round <= rounds; round++) {
    for (const [name, measure] of round % 2 ? paths : [...paths].reverse()) console.log(`OVERLAY-GUEST ${name} ${round} ${(await measure()).toFixed(3)}`);
  }
  if (mode === 'profile') {
    // The guest is CPU-bound (one emulated CPU), so a symbol's share of samples is its share of the cost per byte.
    for (const [name, measure] of paths) {
      const running = measure(seconds + 4);
      await sleep(2000);
      await run('perf', ['record', '-q', '-a', '-e', 'cpu-clock', '-F', '999', '-o', '/tmp/perf.data', '--', 'sleep', String(seconds)]);
      const gbps = await running;
      const rep = await run('perf', ['report', '-i', '/tmp/perf.data', '--stdio', '--no-children', '--sort', 'sym', '-q', '--percent-limit', '0.02']);
      for (const m of rep.stdout.matchAll(/^\s*([\d.]+)%\s+\[.\]\s+(\S+)/gm)) console.log(`OVERLAY-GUEST-PROFILE ${name} ${gbps.toFixed(3)} ${m[1]} ${m[2]}`);
    }
  }
  await lab.destroy();
}

try {
  await main();
  console.log('OVERLAY-GUEST DONE');
} catch (e) {
  console.log(`OVERLAY-GUEST FAILED ${(e as Error).stack?.replaceAll('\n', ' | ')}`);
}
