/**
 * The overlay's flowtable fast path against a kernel that has flowtables: runs inside the throw-away guest of
 * test/flannel/fast-path-guest.test.ts (this machine's kernel has no CONFIG_NF_FLOW_TABLE). Two lab hosts run the
 * real OverlayReconciler; containers on network 101 talk across the VXLAN, one through a VIP (the LB plane's DNAT,
 * on the client's node). Prints one `FAST-TEST PASS|FAIL <check> <detail>` line per check, then `FAST-TEST RESULT`.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../common/exec.js';
import { setLogLevel } from '../../common/log.js';
import { FAST_TABLE, splitListing } from '../../flannel/fast-path.js';
import { Kernel } from '../../flannel/kernel.js';
import type { HostLease, OverlayNetwork, OverlayState } from '../../flannel/model.js';
import { bridgeName } from '../../flannel/names.js';
import { OverlayReconciler } from '../../flannel/reconciler.js';
import { vtepMac } from '../../flannel/vtep-mac.js';
import { ensure, guestMarks } from '../helpers/guest-marks.js';
import { Lab, ping, sh, type LabContainer, type LabHost } from './lab.js';

setLogLevel('silent');
const { check, fail, result } = guestMarks('FAST-TEST');
const NET1: OverlayNetwork = { id: 'net-one', vni: 101, subnet: '10.128.0.0/16' };
const NET2: OverlayNetwork = { id: 'net-two', vni: 102, subnet: '10.129.0.0/16' };
const VIP = '10.128.255.10';

const lab = new Lab();
let a: LabHost;
let b: LabHost;
let ra: OverlayReconciler;
let rb: OverlayReconciler;
let networks: OverlayNetwork[] = [NET1, NET2];
let leases: HostLease[] = [];
const c: Record<string, LabContainer> = {};
const lease = (net: OverlayNetwork, h: LabHost, third: number): HostLease => ({
  networkId: net.id, subnet: `${net.subnet.split('.').slice(0, 2).join('.')}.${third}.0/24`, publicIp: h.node.publicIp, vtepMac: vtepMac(h.node.name, net.vni), node: h.node.name,
});
const stateFor = (h: LabHost): OverlayState => ({ node: h.node, networks, leases });

/** The containers' veth host ends on host `h`'s bridge of network 101. */
async function portsOf(h: LabHost): Promise<string[]> {
  return (JSON.parse((await run('ip', ['-n', h.ns, '-json', 'link', 'show', 'master', bridgeName(101)])).stdout) as { ifname: string }[]).map((l) => l.ifname);
}

/** A host's TCP conntrack entries (/proc/net/nf_conntrack: [OFFLOAD] marks a flow in the flowtable). */
async function flows(h: LabHost): Promise<string[]> {
  return (await sh(h.ns, 'cat', ['/proc/net/nf_conntrack'])).stdout.split('\n').filter((l) => l.includes(' tcp '));
}

/**
 * Streams from container `from` to `to`:5001 (a server in `server`) until both hosts show the flow in their
 * flowtable (or 30 s pass), then ends the stream: returns what the client sent, what the server counted, and the
 * flow's conntrack lines on each host while it ran.
 */
async function transfer(from: LabContainer, server: LabContainer, to: string): Promise<{ sent: number; received: number; during: Record<'a' | 'b', string[]> }> {
  const srv = spawn('ip', ['netns', 'exec', server.ns, process.execPath, '-e',
    "const s=require('net').createServer(c=>{let n=0;c.on('data',d=>n+=d.length);c.on('end',()=>c.end(String(n)))});s.listen(5001,()=>console.log('up'))"], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((r) => srv.stdout.once('data', r));
    // `ip netns exec` execs node, so SIGTERM reaches the client: it ends the stream and prints "<sent> <received>".
    const cli = spawn('ip', ['netns', 'exec', from.ns, process.execPath, '-e',
      `let stop=false;process.on('SIGTERM',()=>{stop=true});const s=require('net').connect(5001,'${to}',()=>{const b=Buffer.alloc(65536);const go=()=>{while(!stop){sent+=b.length;if(!s.write(b))return s.once('drain',go)}s.end()};go();setInterval(()=>{if(stop&&s.writable)go()},50)});let sent=0,r='';s.on('data',d=>r+=d);s.on('end',()=>{console.log(sent+' '+r);process.exit(0)})`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    cli.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const ended = new Promise((r) => cli.on('exit', r));
    const during = { a: [] as string[], b: [] as string[] };
    const live = (l: string): boolean => l.includes('dport=5001') && !l.includes('TIME_WAIT') && !l.includes('CLOSE');
    for (const end = Date.now() + 30_000; Date.now() < end; await sleep(200)) {
      during.a = (await flows(a)).filter(live);
      during.b = (await flows(b)).filter(live);
      if (during.a.some((l) => l.includes('[OFFLOAD]')) && during.b.some((l) => l.includes('[OFFLOAD]'))) break;
    }
    cli.kill('SIGTERM');
    await ended;
    const [sent, received] = out.trim().split(' ').map(Number);
    return { sent: sent ?? -1, received: received ?? -1, during };
  } finally {
    srv.kill();
  }
}

async function main(): Promise<void> {
  await lab.init();
  a = await lab.host('a', 11);
  b = await lab.host('b', 12);
  // As on a Docker host: br_netfilter passes bridged IPv4 through iptables (our bridges also set nf_call_iptables).
  for (const h of [a, b]) await sh(h.ns, 'sysctl', ['-q', '-w', 'net.bridge.bridge-nf-call-iptables=1']);
  leases = [lease(NET1, a, 1), lease(NET1, b, 2), lease(NET2, a, 1), lease(NET2, b, 2)];
  ra = new OverlayReconciler({ stateDir: a.stateDir, netns: a.ns, intervalMs: 60_000 });
  rb = new OverlayReconciler({ stateDir: b.stateDir, netns: b.ns, intervalMs: 60_000 });

  await check('programmed', async () => {
    for (const [h, r] of [[a, ra], [b, rb]] as const) {
      const rep = await r.update(stateFor(h));
      ensure(rep.ok, `${h.node.name}: ${rep.errors.join('; ')}`);
      ensure(r.stats.fastPath === 'on', `${h.node.name}: fast path ${r.stats.fastPath}`);
      ensure(rep.changes.fastPath === 1, `${h.node.name}: ${rep.changes.fastPath} fast-path write(s)`);
    }
    const listing = (await new Kernel(a.ns).fastPathListing()) ?? '';
    for (const d of ['swbr101', 'swvx101', 'swbr102', 'swvx102']) ensure(listing.includes(d), `flowtable lacks ${d}: ${listing}`);
    const again = await ra.reconcile();
    ensure(again.ok && again.changes.fastPath === 0, `a second pass rewrote the fast path: ${JSON.stringify(again.changes)}`);
    c.a1 = await lab.container(a, 'a1', bridgeName(101), '10.128.1.10', 24, '10.128.1.1', 1450);
    c.b1 = await lab.container(b, 'b1', bridgeName(101), '10.128.2.10', 24, '10.128.2.1', 1450);
    c.a2 = await lab.container(a, 'a2', bridgeName(102), '10.129.1.10', 24, '10.129.1.1', 1450);
    ensure(await ping(c.a1.ns, c.b1.ip), 'a1 cannot ping b1');
    // The containers' veths were made outside the reconciler (as Join's are): the next pass adds them as devices.
    for (const r of [ra, rb]) {
      const rep = await r.reconcile();
      ensure(rep.ok && rep.changes.fastPath === 0, `a pass adding ports counted as a change: ${JSON.stringify(rep.changes)}`);
    }
    const ports = await portsOf(a);
    ensure(ports.length === 1, `host a's ports on network 101 (a1 only): ${ports.join(' ')}`);
    const devices = splitListing((await new Kernel(a.ns).fastPathListing()) ?? '').devices;
    ensure(ports.every((p) => devices.includes(p)), `flowtable devices ${devices.join(' ')} lack a port of ${ports.join(' ')}`);
    return `both hosts: table written once, devices of both networks and their ports (${devices.join(' ')}), a second pass changes nothing`;
  });

  await check('offloaded', async () => {
    const r = await transfer(c.a1!, c.b1!, c.b1!.ip);
    ensure(r.sent > 0 && r.received === r.sent, `server counted ${r.received} of ${r.sent} bytes`);
    ensure(r.during.a.some((l) => l.includes('[OFFLOAD]')), `host a: not offloaded: ${r.during.a.join(' / ')}`);
    ensure(r.during.b.some((l) => l.includes('[OFFLOAD]')), `host b: not offloaded: ${r.during.b.join(' / ')}`);
    return `${r.sent} bytes a1 -> b1, all received, in the flowtable on both hosts while it ran`;
  });

  await check('vip-offloaded', async () => {
    // The LB plane's DNAT on the client's node (lb/nftables: prerouting, dstnat - 5): a VIP reply must be un-NATed.
    await run('ip', ['netns', 'exec', a.ns, 'nft', '-f', '-'], { input: `table ip vip-test {\n  chain pre { type nat hook prerouting priority dstnat - 5; ip daddr ${VIP} dnat to ${c.b1!.ip}; }\n}\n` });
    const r = await transfer(c.a1!, c.b1!, VIP);
    ensure(r.sent > 0 && r.received === r.sent, `server counted ${r.received} of ${r.sent} bytes (replies not un-NATed?)`);
    const flow = r.during.a.find((l) => l.includes(`dst=${VIP}`));
    ensure(flow?.includes('[OFFLOAD]'), `host a: the VIP flow was not offloaded: ${r.during.a.join(' / ')}`);
    await run('ip', ['netns', 'exec', a.ns, 'nft', 'delete', 'table', 'ip', 'vip-test']);
    return `${r.sent} bytes a1 -> ${VIP} (DNAT to b1), all received, offloaded with its NAT on the client's host`;
  });

  await check('isolation', async () => {
    ensure(!(await ping(c.a2!.ns, c.b1!.ip, 1)), 'a2 (network 102) reached b1 (network 101)');
    const tcp = await sh(c.a2!.ns, process.execPath, ['-e', `const s=require('net').connect(5001,'${c.b1!.ip}');s.setTimeout(1500,()=>{console.log('timeout');process.exit(0)});s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`]);
    ensure(tcp.stdout.trim() !== 'connected', 'a2 connected to b1 across networks');
    return `network 102 -> 101 still dropped (ping none, TCP ${tcp.stdout.trim()})`;
  });

  await check('drift-repaired', async () => {
    await run('ip', ['netns', 'exec', a.ns, 'nft', 'delete', 'table', 'inet', FAST_TABLE]);
    const gone = await ra.reconcile();
    ensure(gone.ok && gone.changes.fastPath === 1, `deleted table: ${JSON.stringify(gone.changes)}`);
    await run('ip', ['netns', 'exec', a.ns, 'nft', 'flush', 'chain', 'inet', FAST_TABLE, 'forward']);
    const flushed = await ra.reconcile();
    ensure(flushed.ok && flushed.changes.fastPath === 1, `flushed chain: ${JSON.stringify(flushed.changes)}`);
    ensure((ra.stats.drift.fastPath?.count ?? 0) === 2, `drift counted ${JSON.stringify(ra.stats.drift)}`);
    ensure(((await new Kernel(a.ns).fastPathListing()) ?? '').includes('flow add @overlay'), 'the rule is not back');
    return 'a deleted table and a flushed chain each put back by the next pass, counted as drift';
  });

  await check('ports-follow-containers', async () => {
    const k = new Kernel(a.ns);
    c.a3 = await lab.container(a, 'a3', bridgeName(101), '10.128.1.11', 24, '10.128.1.1', 1450);
    const before = splitListing((await k.fastPathListing()) ?? '').devices;
    const port = (await portsOf(a)).find((p) => !before.includes(p));
    ensure(port, 'no new port on host a');
    await ra.portAdded(port);
    ensure(splitListing((await k.fastPathListing()) ?? '').devices.includes(port), `${port} not added by portAdded`);
    await run('ip', ['netns', 'del', c.a3.ns]); // the container goes: its veth pair with it
    await sleep(200);
    ensure(!splitListing((await k.fastPathListing()) ?? '').devices.includes(port), `${port} still a device after its link went`);
    const rep = await ra.reconcile();
    ensure(rep.ok && rep.changes.fastPath === 0, `after the container left: ${JSON.stringify(rep.changes)} ${rep.errors.join('; ')}`);
    // A port taken off the bridge (its link stays) is taken out of the flowtable by the next pass.
    c.a4 = await lab.container(a, 'a4', bridgeName(101), '10.128.1.12', 24, '10.128.1.1', 1450);
    const other = (await portsOf(a)).find((p) => !before.includes(p) && p !== port);
    ensure(other, 'no port for a4');
    await ra.reconcile();
    ensure(splitListing((await k.fastPathListing()) ?? '').devices.includes(other), `${other} not added by the pass`);
    await run('ip', ['-n', a.ns, 'link', 'set', other, 'nomaster']);
    const off = await ra.reconcile();
    ensure(off.ok && !splitListing((await k.fastPathListing()) ?? '').devices.includes(other), `${other} still a device off the bridge: ${off.errors.join('; ')}`);
    await run('ip', ['netns', 'del', c.a4.ns]);
    return `a new container's port ${port} joined at once (portAdded), left with its link; a port off the bridge was taken out by the pass; nothing was rewritten`;
  });

  await check('restart-adopts', async () => {
    const again = new OverlayReconciler({ stateDir: a.stateDir, netns: a.ns, intervalMs: 60_000 });
    const rep = await again.update(stateFor(a));
    ensure(rep.ok && rep.changes.fastPath === 0 && again.stats.fastPath === 'on', `a restarted reconciler: ${JSON.stringify(rep.changes)} ${again.stats.fastPath}`);
    return 'a restarted reconciler adopts the table it finds as written (offloaded flows stay offloaded)';
  });

  await check('network-removed', async () => {
    networks = [NET1];
    leases = leases.filter((l) => l.networkId === NET1.id);
    const rep = await ra.update(stateFor(a));
    ensure(rep.ok && rep.changes.fastPath === 1, JSON.stringify(rep.changes));
    const listing = (await new Kernel(a.ns).fastPathListing()) ?? '';
    ensure(listing.includes('swvx101') && !listing.includes('swvx102'), `devices after removing 102: ${listing}`);
    return 'the flowtable follows the networks: 102 left it';
  });

  await check('off', async () => {
    const off = new OverlayReconciler({ stateDir: a.stateDir, netns: a.ns, intervalMs: 60_000, fastPath: false });
    const rep = await off.update(stateFor(a));
    ensure(rep.ok && rep.changes.fastPath === 1 && off.stats.fastPath === 'off', `${JSON.stringify(rep.changes)} ${off.stats.fastPath}`);
    ensure((await new Kernel(a.ns).fastPathListing()) === undefined, 'table still there');
    ensure(await ping(c.a1!.ns, c.b1!.ip), 'a1 cannot ping b1 without the fast path');
    const on = await ra.reconcile();
    ensure(on.ok && on.changes.fastPath === 1, `on again: ${JSON.stringify(on.changes)}`);
    return 'OVERLAY_FAST_PATH=false removes the table; traffic keeps flowing; on again writes it';
  });

  await check('last-network-removed', async () => {
    networks = [];
    leases = [];
    const rep = await ra.update(stateFor(a));
    ensure(rep.ok && ra.stats.fastPath === 'idle', `${JSON.stringify(rep.changes)} ${ra.stats.fastPath}`);
    ensure((await new Kernel(a.ns).fastPathListing()) === undefined, 'table still there');
    return 'no network left: no table';
  });
}

try {
  await main();
} catch (e) {
  fail('setup', e as Error);
} finally {
  await lab.destroy();
}
result();
