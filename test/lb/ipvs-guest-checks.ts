/**
 * The IPVS backend against a real kernel: runs inside the throw-away guest of test/lb/ipvs-guest.test.ts (bundled
 * with esbuild, started by the guest's /init as root), never on a host. The guest's root namespace is the client;
 * namespace `lb` is the load-balancing node; be1..be3 are backends behind veth pairs, each serving its name and
 * the client address it sees (busybox httpd CGI on port 80) and an echo after its name (busybox nc on port 7).
 * Prints one `IPVS-TEST PASS|FAIL <check> <detail>` line per check, then `IPVS-TEST RESULT PASS|FAIL`.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, type ExecResult } from '../../common/exec.js';
import type { LbBackend } from '../../lb/backend.js';
import { applyDelta, copyState, diffStates, holds, type LbState, type VipEntry, type WrittenState } from '../../lb/desired.js';
import { IpvsBackend } from '../../lb/ipvs/kernel.js';
import { DUMMY, TABLE, parseIpvsList, vipMark } from '../../lb/ipvs/render.js';
import { ensure, guestMarks } from '../helpers/guest-marks.js';

const VIP1 = '10.96.0.10';
const VIP2 = '10.96.0.11';
const VIP3 = '10.96.0.12';
const VIP4 = '10.96.0.13';
const CLIENT = '10.99.0.2';
const NAMES = ['be1', 'be2', 'be3'];
const addrOf = (name: string): string => `10.244.${name.slice(2)}.2`;
const gatewayOf = (name: string): string => `10.244.${name.slice(2)}.1`;
const BACKENDS = NAMES.map(addrOf);
const DRAIN_MS = 10_000;

const { check, result } = guestMarks('IPVS-TEST');

function lbTool(cmd: string, args: string[], allowFailure = false): Promise<ExecResult> {
  return run('ip', ['netns', 'exec', 'lb', cmd, ...args], { allowFailure });
}

const entry = (vip: string, backends: string[]): VipEntry => ({ vip, serviceId: `svc-${vip}`, networkId: 'net-1', backends: [...backends].sort() });
const state = (entries: VipEntry[], local: string[]): LbState => ({ vips: new Map(entries.map((e) => [e.vip, e])), local: new Set(local) });
const show = (s: LbState | undefined): string => (s ? JSON.stringify({ vips: [...s.vips.values()].map((e) => [e.vip, e.backends]), local: [...s.local] }) : 'undefined');

/** One HTTP request through the VIP: "<backend name> <client address it saw>". */
function who(vip: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: vip, port: 80, path: '/cgi-bin/who', agent: false, timeout: 4000 }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => { body += b.toString(); });
      res.on('end', () => resolve(body.trim()));
    });
    req.on('timeout', () => req.destroy(new Error(`${vip}: timeout`)));
    req.on('error', reject);
  });
}

async function whoMany(vip: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await who(vip));
  return out;
}

const counts = (answers: string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const a of answers) out[a.split(' ')[0]!] = (out[a.split(' ')[0]!] ?? 0) + 1;
  return out;
};

/** How a TCP connection attempt ends, and how fast. */
function tcpOutcome(host: string, port: number): Promise<{ result: string; ms: number }> {
  const start = Date.now();
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (result: string): void => {
      s.destroy();
      resolve({ result, ms: Date.now() - start });
    };
    s.setTimeout(3000, () => done('timeout'));
    s.on('connect', () => done('connected'));
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

function udpOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const done = (r: string): void => {
      clearTimeout(timer);
      s.close();
      resolve(r);
    };
    const timer = setTimeout(() => done('timeout'), 3000);
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.on('message', () => done('answered'));
    s.connect(port, host, () => s.send('x'));
  });
}

/** A long-lived TCP connection through a VIP to the echo port: the backend names itself, then echoes. */
class Held {
  private buf = '';
  private waiter?: () => void;
  private constructor(private readonly s: Socket, readonly name: string) {}

  static open(vip: string): Promise<Held> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: vip, port: 7 });
      s.setTimeout(4000, () => s.destroy(new Error(`${vip}:7: timeout`)));
      s.on('error', reject);
      s.once('data', (b: Buffer) => {
        s.setTimeout(0);
        const h = new Held(s, b.toString().trim());
        s.on('data', (x: Buffer) => {
          h.buf += x.toString();
          h.waiter?.();
        });
        resolve(h);
      });
    });
  }

  /** Sends a line and waits for it to come back. */
  async echo(text: string): Promise<void> {
    this.buf = '';
    this.s.write(`${text}\n`);
    const deadline = Date.now() + 4000;
    while (!this.buf.includes(text)) {
      ensure(!this.s.destroyed && Date.now() < deadline, `the connection to ${this.name} no longer echoes`);
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 200);
      });
    }
  }

  closed(): boolean {
    return this.s.destroyed;
  }

  close(): void {
    this.s.destroy();
  }
}

async function ipvsList(): Promise<ReturnType<typeof parseIpvsList>> {
  return parseIpvsList((await lbTool('ipvsadm', ['-Ln'])).stdout);
}

async function setup(): Promise<void> {
  mkdirSync('/tmp/www/cgi-bin', { recursive: true });
  // httpd passes a CGI's header through as is: it must end its lines with CRLF itself.
  writeFileSync('/tmp/www/cgi-bin/who', '#!/bin/sh\nprintf \'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n\' "$NAME" "$REMOTE_ADDR"\n');
  writeFileSync('/tmp/echo.sh', '#!/bin/sh\necho "$NAME"\nexec cat\n');
  chmodSync('/tmp/www/cgi-bin/who', 0o755);
  chmodSync('/tmp/echo.sh', 0o755);
  const root = ['netns add lb', ...NAMES.map((n) => `netns add ${n}`),
    'link add c0 type veth peer name lbc netns lb', `addr add ${CLIENT}/24 dev c0`, 'link set c0 up',
    'route add 10.96.0.0/16 via 10.99.0.1', 'route add 10.244.0.0/16 via 10.99.0.1',
    ...NAMES.map((n) => `link add lb-${n} netns lb type veth peer name eth0 netns ${n}`)];
  await run('ip', ['-batch', '-'], { input: `${root.join('\n')}\n` });
  const lb = ['link set lo up', 'addr add 10.99.0.1/24 dev lbc', 'link set lbc up', ...NAMES.flatMap((n) => [`addr add ${gatewayOf(n)}/24 dev lb-${n}`, `link set lb-${n} up`])];
  await run('ip', ['-n', 'lb', '-batch', '-'], { input: `${lb.join('\n')}\n` });
  await lbTool('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  for (const n of NAMES) {
    await run('ip', ['-n', n, '-batch', '-'], { input: `link set lo up\naddr add ${addrOf(n)}/24 dev eth0\nlink set eth0 up\nroute add default via ${gatewayOf(n)}\n` });
    for (const server of [['httpd', '-f', '-p', '0.0.0.0:80', '-h', '/tmp/www'], ['nc', '-ll', '-p', '7', '-e', '/tmp/echo.sh']]) {
      spawn('ip', ['netns', 'exec', n, 'env', `NAME=${n}`, ...server], { stdio: 'ignore', detached: true }).unref();
    }
  }
  for (const a of BACKENDS) {
    for (let i = 0; (await tcpOutcome(a, 80)).result !== 'connected' || (await tcpOutcome(a, 7)).result !== 'connected'; i++) {
      ensure(i < 50, `backend ${a} does not listen`);
      await sleep(100);
    }
  }
  // Someone else's IPVS services: they must survive everything we do.
  await lbTool('ipvsadm', ['-A', '-t', '10.96.9.9:80', '-s', 'rr']);
  await lbTool('ipvsadm', ['-A', '-f', '5', '-s', 'rr']);
}

async function main(): Promise<void> {
  // Typed as the interface: the checks drive the backend the way the reconciler does.
  const lb: LbBackend = new IpvsBackend({ netns: 'lb', drainMs: DRAIN_MS });
  let written: WrittenState = copyState(state([], []));
  /** What the reconciler does with a change: the delta, then its copy of what was written. */
  const step = async (next: LbState): Promise<void> => {
    const d = diffStates(written, next);
    await lb.apply(d, new Map());
    applyDelta(written, d);
  };
  const readHolds = async (b: LbBackend = lb): Promise<void> => {
    const got = await b.read();
    ensure(got && holds(got, written), `read() = ${show(got)}, written ${show(written)}`);
  };
  const held: Held[] = [];
  let balancedAnswers: string[] = [];
  let drained: { name: string; at: number; conn: Held } | undefined;

  await check('setup', async () => {
    await setup();
    return 'client in the root namespace, load balancer in netns lb, backends be1..be3 behind veth, foreign services TCP 10.96.9.9:80 and FWM 5';
  });

  await check('rendered', async () => {
    const s = state([entry(VIP1, BACKENDS), entry(VIP2, [])], BACKENDS);
    await lb.replace(s);
    written = copyState(s);
    await readHolds();
    const svc = (await ipvsList()).get(vipMark(VIP1));
    ensure(svc?.scheduler === 'rr' && [...svc.servers.values()].every((r) => r.forward === 'Masq' && r.weight === 1) && svc.servers.size === 3, `service ${vipMark(VIP1)}: ${JSON.stringify(svc && [...svc.servers.values()])}`);
    const timeouts = /Timeout \(tcp tcpfin udp\): (.*)/.exec((await lbTool('ipvsadm', ['-Ln', '--timeout'])).stdout)?.[1]?.trim();
    const conntrack = (await lbTool('sysctl', ['-n', 'net.netfilter.nf_conntrack_tcp_timeout_established', 'net.netfilter.nf_conntrack_tcp_timeout_fin_wait', 'net.netfilter.nf_conntrack_udp_timeout_stream'])).stdout.trim().split(/\s+/).join(' ');
    ensure(timeouts === conntrack, `IPVS timeouts ${timeouts}, conntrack's ${conntrack}`);
    const vs = (await lbTool('sysctl', ['-n', 'net.ipv4.vs.conntrack', 'net.ipv4.vs.expire_nodest_conn'])).stdout.trim().split(/\s+/).join(' ');
    ensure(vs === '1 1', `net.ipv4.vs.conntrack and expire_nodest_conn: ${vs}`);
    return `read() holds the state; FWM ${vipMark(VIP1)} rr with 3 Masq servers of weight 1; IPVS timeouts (tcp tcpfin udp) ${timeouts} = conntrack's; vs.conntrack=1, vs.expire_nodest_conn=1`;
  });

  await check('balanced', async () => {
    balancedAnswers = await whoMany(VIP1, 30);
    const n = counts(balancedAnswers);
    ensure(NAMES.every((b) => (n[b] ?? 0) >= 5), `30 requests: ${JSON.stringify(n)}`);
    return `30 requests to ${VIP1}:80: ${JSON.stringify(n)}`;
  });

  await check('client-source', async () => {
    const seen = new Set(balancedAnswers.map((a) => a.split(' ')[1]));
    ensure(balancedAnswers.length === 30 && seen.size === 1 && seen.has(CLIENT), `sources seen: ${[...seen].join(', ')}`);
    return `every backend saw the client's own address ${CLIENT}`;
  });

  await check('hairpin', async () => {
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push((await run('ip', ['netns', 'exec', 'be1', 'timeout', '5', 'wget', '-q', '-O', '-', `http://${VIP1}/cgi-bin/who`])).stdout.trim());
    const self = answers.filter((a) => a.startsWith('be1 '));
    ensure(self.length > 0, `be1 never landed on itself: ${answers.join(', ')}`);
    ensure(self.every((a) => a === `be1 ${gatewayOf('be1')}`), `be1 -> be1 not masqueraded: ${self.join(', ')}`);
    ensure(answers.filter((a) => !a.startsWith('be1 ')).every((a) => a.endsWith(` ${addrOf('be1')}`)), `other backends should see be1's address: ${answers.join(', ')}`);
    return `6 requests from be1 to ${VIP1}: ${JSON.stringify(counts(answers))}; be1 reached itself (masqueraded to ${gatewayOf('be1')}), the others saw ${addrOf('be1')}`;
  });

  await check('refused', async () => {
    const tcp = [await tcpOutcome(VIP2, 80), await tcpOutcome(VIP2, 5432)];
    ensure(tcp.every((o) => o.result === 'ECONNREFUSED' && o.ms < 1000), `TCP to ${VIP2}: ${JSON.stringify(tcp)}`);
    const udp = await udpOutcome(VIP2, 53);
    ensure(udp === 'ECONNREFUSED', `UDP to ${VIP2}: ${udp}`);
    return `${VIP2} (no backend): TCP :80 and :5432 ECONNREFUSED in ${tcp.map((o) => o.ms).join('/')} ms, UDP :53 ECONNREFUSED`;
  });

  await check('apply-keeps-connections', async () => {
    const h = await Held.open(VIP1);
    held.push(h);
    await step(state([entry(VIP1, BACKENDS), entry(VIP2, [addrOf('be3')]), entry(VIP3, [addrOf('be2')])], BACKENDS));
    await h.echo('after-apply');
    await readHolds();
    const two = await who(VIP2);
    const three = await who(VIP3);
    ensure(two.startsWith('be3 ') && three.startsWith('be2 '), `${VIP2} -> ${two}, ${VIP3} -> ${three}`);
    const list = await lbTool('ipvsadm', ['-Ln']);
    ensure(/TCP {2}10\.96\.9\.9:80 rr/.test(list.stdout) && /FWM {2}5 rr/.test(list.stdout), `foreign services gone:\n${list.stdout}`);
    return `a connection to ${h.name} opened before the apply still echoes; ${VIP2} now -> be3, new ${VIP3} -> be2; read() holds; ipvsadm -R kept the foreign services`;
  });

  await check('drain', async () => {
    const h = await Held.open(VIP1);
    held.push(h);
    const addr = addrOf(h.name);
    const rest = BACKENDS.filter((a) => a !== addr);
    const at = Date.now();
    await step(state([entry(VIP1, rest), entry(VIP2, [addrOf('be3')]), entry(VIP3, [addrOf('be2')])], BACKENDS));
    drained = { name: h.name, at, conn: h };
    const srv = (await ipvsList()).get(vipMark(VIP1))?.servers.get(addr);
    ensure(srv?.weight === 0 && srv.active >= 1, `${h.name} in IPVS: ${JSON.stringify(srv)}`);
    await lb.replace(written);
    const kept = (await ipvsList()).get(vipMark(VIP1))?.servers.get(addr);
    ensure(kept?.weight === 0, `a replace during the drain dropped ${h.name}: ${JSON.stringify(kept)}`);
    await readHolds();
    const answers = await whoMany(VIP1, 12);
    ensure(answers.every((a) => !a.startsWith(`${h.name} `)), `new connections still reach ${h.name}: ${JSON.stringify(counts(answers))}`);
    await h.echo('while-draining');
    return `${h.name} removed: weight 0 with ActiveConn ${srv.active}, kept by a replace, not a backend in read(); 12 new requests ${JSON.stringify(counts(answers))}; its established connection still echoes`;
  });

  await check('drain-idle-deleted', async () => {
    const base = [...written.vips.values()];
    await step(state([...base, entry(VIP4, [addrOf('be2')])], BACKENDS));
    await step(state([...base, entry(VIP4, [addrOf('be1')])], BACKENDS));
    const mid = (await ipvsList()).get(vipMark(VIP4))?.servers.get(addrOf('be2'));
    ensure(mid?.weight === 0 && mid.active + mid.inactive === 0, `be2 under ${VIP4}: ${JSON.stringify(mid)}`);
    await step(state([...base, entry(VIP4, [addrOf('be1')])], BACKENDS.slice(0, 2)));
    const svc = (await ipvsList()).get(vipMark(VIP4));
    ensure(svc && !svc.servers.has(addrOf('be2')) && svc.servers.get(addrOf('be1'))?.weight === 1, `${VIP4}: ${JSON.stringify(svc && [...svc.servers.values()])}`);
    return `be2 left ${VIP4} with no connection: weight 0, deleted by the next apply`;
  });

  await check('drift-repair', async () => {
    const h = await Held.open(VIP1);
    held.push(h);
    const victim = BACKENDS.find((a) => a !== addrOf(h.name) && a !== addrOf(drained!.name))!;
    await lbTool('ipvsadm', ['-d', '-f', String(vipMark(VIP1)), '-r', victim]);
    await run('ip', ['-n', 'lb', 'addr', 'del', `${VIP3}/32`, 'dev', DUMMY]);
    const restarted = new IpvsBackend({ netns: 'lb', drainMs: DRAIN_MS });
    const seen = await restarted.read();
    ensure(seen && !holds(seen, written), `drift not seen: read() = ${show(seen)}`);
    await restarted.replace(written);
    await readHolds(restarted);
    await h.echo('after-replace');
    const three = await who(VIP3);
    ensure(three.startsWith('be2 '), `${VIP3} -> ${three}`);
    const again = (await ipvsList()).get(vipMark(VIP1))?.servers.get(victim);
    ensure(again?.weight === 1, `${victim}: ${JSON.stringify(again)}`);
    return `real server ${victim} and ${VIP3}/32 deleted by hand: read() differs; replace() from a new backend (a restarted plugin) restored both, a connection to ${h.name} survived`;
  });

  await check('drain-timeout', async () => {
    const d = drained!;
    const before = (await ipvsList()).get(vipMark(VIP1))?.servers.get(addrOf(d.name));
    ensure(before?.weight === 0 && before.active >= 1, `${d.name} before the timeout: ${JSON.stringify(before)}`);
    await sleep(Math.max(0, d.at + DRAIN_MS + 200 - Date.now()));
    await step(state([...written.vips.values()], BACKENDS));
    const after = (await ipvsList()).get(vipMark(VIP1))?.servers.get(addrOf(d.name));
    ensure(!after, `${d.name} after the drain time: ${JSON.stringify(after)}`);
    const start = Date.now();
    const ended = await d.conn.echo('after-the-drain').then(() => 'still echoes', (e: Error) => e.message);
    ensure(ended !== 'still echoes' && d.conn.closed(), `its connection after the deletion: ${ended}`);
    return `${d.name} still had ActiveConn ${before.active} after ${DRAIN_MS} ms of draining: deleted by the next apply; its connection then ended (${Date.now() - start} ms)`;
  });

  await check('removal', async () => {
    for (const h of held) h.close();
    await lb.remove();
    const list = await ipvsList();
    const ours = [VIP1, VIP2, VIP3, VIP4].filter((v) => list.has(vipMark(v)));
    ensure(!ours.length, `services left for ${ours.join(', ')}`);
    ensure(list.has(5) && /TCP {2}10\.96\.9\.9:80/.test((await lbTool('ipvsadm', ['-Ln'])).stdout), 'a foreign service was removed');
    ensure((await run('ip', ['-n', 'lb', 'link', 'show', DUMMY], { allowFailure: true })).code !== 0, `${DUMMY} is still there`);
    ensure((await lbTool('nft', ['list', 'table', 'ip', TABLE], true)).code !== 0, `table ${TABLE} is still there`);
    const left = await lb.read();
    ensure(left === undefined, `read() after remove() = ${show(left)}`);
    await lb.remove();
    return `no service, no ${DUMMY}, no table ${TABLE}, read() undefined; the foreign services stay; a second remove() is a no-op`;
  });

  result();
}

await main();
