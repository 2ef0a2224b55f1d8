import test from 'ava';
import dgram from 'node:dgram';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import { run } from '../../common/exec.js';
import { buildTable } from '../../dns/table.js';
import { Forwarder } from '../../dns/forwarder.js';
import { DnsServer } from '../../dns/server.js';
import { retry, until } from '../helpers/wait.js';
import { frame, query, startServer, tcpExchange, udpAsk, udpTcpPair, upstream, UDP_MODES } from './helpers.js';

const many = Array.from({ length: 60 }, (_, i) => ({ id: `m${i}`, name: `m${i}`, endpoints: [{ networkId: 'n1', ip: `10.0.3.${i + 1}`, aliases: ['big'] }] }));
const table = buildTable({
  networks: [{ id: 'n1', name: 'front' }],
  containers: [{ id: 'me', name: 'web', endpoints: [{ networkId: 'n1', ip: '10.0.1.2' }] }, ...many],
});

// +time: a guard for a busy machine, past the forwarder's timeout (4 s); every query here is answered.
const dig = async (port: number, ...args: string[]) =>
  (await run('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=20', ...args], { allowFailure: true })).stdout;

for (const udp of UDP_MODES) {
  test(`dig: A, AAAA NODATA, PTR, TCP, EDNS echo, truncation with TC and dig's TCP retry, compression [udp: ${udp}]`, async (t) => {
    const s = await startServer(table, { udp, view: 'me' });
    try {
      t.regex(await dig(s.port, '+short', 'web', 'A'), /^10\.0\.1\.2$/m);
      t.regex(await dig(s.port, '+short', 'WEB.front.', 'A'), /^10\.0\.1\.2$/m);
      const aaaa = await dig(s.port, 'web', 'AAAA');
      t.regex(aaaa, /status: NOERROR/); t.regex(aaaa, /ANSWER: 0/);
      t.regex(await dig(s.port, '+short', '-x', '10.0.1.2'), /^web\.front\.$/m);
      t.regex(await dig(s.port, '+tcp', '+short', 'web'), /^10\.0\.1\.2$/m);
      const edns = await dig(s.port, '+edns=0', '+bufsize=1232', 'web');
      t.regex(edns, /OPT PSEUDOSECTION/); t.regex(edns, /udp: 4096/);
      const tc = await dig(s.port, '+noedns', '+ignore', 'big');
      t.regex(tc, /flags: qr[^;]* tc[ ;]/);
      t.regex(tc, /ANSWER: 30,/);
      const full = await dig(s.port, '+noedns', '+short', 'big');
      t.is(full.trim().split('\n').length, 60);
      // compression: every answer owner is the 2-byte pointer to the question, 16 bytes per A record
      const raw = await udpAsk(s.port, query('big', 'A', 5, { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer] }));
      t.is(raw!.length, 12 + 5 + 4 + 60 * 16 + 11);
    } finally { s.close(); }
  });
}

test('TCP: pipelined queries on one connection all answered; partial and idle clients are cut off; connection cap', async (t) => {
  // s never cuts a client for idling within a test (so a close comes from what is tested); short does, at once.
  const s = await startServer(table, { view: 'me', tcpIdleMs: 600_000, maxTcpConnections: 4 });
  const short = await startServer(table, { view: 'me', tcpIdleMs: 300 });
  try {
    const msgs = Array.from({ length: 50 }, (_, i) => query(i % 2 ? 'web' : 'big', 'A', i + 1));
    const { replies } = await tcpExchange(s.port, frame(...msgs), 50);
    t.is(replies.length, 50);
    t.deepEqual(replies.map((r) => r.readUInt16BE(0)).sort((a, b) => a - b), msgs.map((_, i) => i + 1));
    t.is(dnsPacket.decode(replies.find((r) => r.readUInt16BE(0) === 1)!).answers?.length, 60); // no 512 limit on TCP
    // half a message, then silence: the server closes it (its idle limit), before the client's own 20 s guard
    t.true((await tcpExchange(short.port, frame(query('web')).subarray(0, 10), 1)).closed);
    // zero-length frame: stream out of sync → closed by the server, which would not cut an idle client
    t.true((await tcpExchange(s.port, Buffer.from([0, 0]), 1)).closed);
    // cap: 4 idle connections occupy the slots, the 5th is closed at once, then the server still works
    const idle = await Promise.all(Array.from({ length: 4 }, () => new Promise<net.Socket>((r) => { const c = net.connect(s.port, '127.0.0.1', () => r(c)); c.on('error', () => {}); })));
    const fifth = await tcpExchange(s.port, frame(query('web')), 1); // accepted after the 4 (one backlog, in order)
    t.true(fifth.closed, 'closed by the server');
    t.is(fifth.replies.length, 0);
    idle.forEach((c) => c.destroy());
    // the slots free once the server has seen the 4 close: ask until then
    const again = await retry(async () => {
      const r = await tcpExchange(s.port, frame(query('web')), 1);
      if (r.replies.length !== 1) throw new Error(`no answer yet (closed: ${r.closed})`);
      return r;
    });
    t.is(again.replies.length, 1);
  } finally { s.close(); short.close(); }
});

test('TCP: the process-wide cap counts connections over all listeners (one per served container)', async (t) => {
  const server = new DnsServer(table, { compat: true, defaultUpstreams: [], tcpIdleMs: 600_000, maxTcpConnections: 10, maxTcpTotal: 3 });
  const pairs = await Promise.all([udpTcpPair('127.0.0.1'), udpTcpPair('127.0.0.1')]);
  t.teardown(() => { for (const p of pairs) { p.udp.close(); p.tcp.close(); } });
  for (const p of pairs) server.addListener({ ...p, viewOf: () => 'me' });
  const [a, b] = pairs.map((p) => (p.tcp.address() as net.AddressInfo).port) as [number, number];
  const open = (port: number) => new Promise<net.Socket>((r) => { const c = net.connect(port, '127.0.0.1', () => r(c)); c.on('error', () => {}); });
  const idle = [await open(a), await open(a), await open(b)];
  // Each listener is far below its own cap of 10, yet the 4th connection of the process is closed at once.
  t.true((await tcpExchange(b, frame(query('web')), 1)).closed);
  idle.forEach((c) => c.destroy());
  const again = await retry(async () => {
    const r = await tcpExchange(b, frame(query('web')), 1);
    if (r.replies.length !== 1) throw new Error('no answer yet');
    return r;
  });
  t.is(again.replies.length, 1);
});

for (const udp of UDP_MODES) {
  test(`forwarding: NXDOMAIN kept with flags; timeout, SERVFAIL and REFUSED → next server; all bad → SERVFAIL [udp: ${udp}]`, async (t) => {
    // The forwarder's timeout is the product's (4 s): `dead` waits it out, the live stand-ins answer well within it.
    const dead = await upstream('127.0.0.2', 'drop');
    const fail = await upstream('127.0.0.3', 2);
    const refused = await upstream('127.0.0.4', 5);
    const nx = await upstream('127.0.0.5', 3);
    const ups = [dead, fail, refused].map((u, i) => ({ host: `127.0.0.${i + 2}`, port: u.port }));
    const s = await startServer(table, { udp, view: 'me', defaultUpstreams: [...ups.slice(0, 2), { host: '127.0.0.5', port: nx.port }] });
    const bad = await startServer(table, { udp, view: 'me', defaultUpstreams: ups });
    try {
      const out = await dig(s.port, 'nothing.example');
      t.regex(out, /status: NXDOMAIN/);
      t.regex(out, /flags: qr ra ad;/); // exactly the upstream's flags (it does not echo RD)
      t.is(dead.udpSeen, 1); t.is(fail.udpSeen, 1); t.is(nx.udpSeen, 1);
      const r = dnsPacket.decode((await udpAsk(bad.port, query('x.example', 'A', 77)))!);
      t.is(r.rcode, 'SERVFAIL'); t.is(r.id, 77);
      t.is(refused.udpSeen, 1);
    } finally { s.close(); bad.close(); dead.close(); fail.close(); refused.close(); nx.close(); }
  });
}

for (const udp of UDP_MODES) {
  test(`forwarding: truncated UDP answer retried over TCP; TCP clients forwarded over TCP; big answers truncated for small UDP clients [udp: ${udp}]`, async (t) => {
    const tr = await upstream('127.0.0.6', 'truncate');
    const big = await upstream('127.0.0.7', 'big');
    const s = await startServer(table, { udp, view: 'me', defaultUpstreams: [{ host: '127.0.0.6', port: tr.port }] });
    const sb = await startServer(table, { udp, view: 'me', defaultUpstreams: [{ host: '127.0.0.7', port: big.port }] });
    try {
      const r = dnsPacket.decode((await udpAsk(s.port, query('t.example', 'A', 9)))!);
      t.is(r.answers?.length, 3); t.is(r.id, 9);
      t.is(tr.udpSeen, 1); t.is(tr.tcpSeen, 1);
      const { replies } = await tcpExchange(s.port, frame(query('t2.example', 'A', 10)), 1);
      t.is(dnsPacket.decode(replies[0]!).answers?.length, 3);
      t.is(tr.udpSeen, 1); t.is(tr.tcpSeen, 2);
      const small = (await udpAsk(sb.port, query('b.example', 'A', 11)))!;
      t.true(small.length <= 512);
      const sd = dnsPacket.decode(small);
      t.true(!!((sd.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE)); t.is(sd.questions?.[0]?.name, 'b.example');
      const viaTcp = await tcpExchange(sb.port, frame(query('b.example', 'A', 12)), 1);
      t.is(dnsPacket.decode(viaTcp.replies[0]!).answers?.length, 200);
    } finally { s.close(); sb.close(); tr.close(); big.close(); }
  });
}

for (const udp of UDP_MODES) {
  test(`forwarding: a container's own --dns servers win over the defaults [udp: ${udp}]`, async (t) => {
    const mine = await upstream('127.0.0.8', 3);
    const other = await upstream('127.0.0.9', 0);
    const tb = buildTable({
      networks: [{ id: 'n', name: 'n' }],
      containers: [
        { id: 'a', name: 'a', upstreams: [`127.0.0.8:${mine.port}`], endpoints: [{ networkId: 'n', ip: '10.5.0.2' }] },
        { id: 'b', name: 'b', endpoints: [{ networkId: 'n', ip: '10.5.0.3' }] },
      ],
    });
    const sa = await startServer(tb, { udp, view: 'a', defaultUpstreams: [{ host: '127.0.0.9', port: other.port }] });
    const sbv = await startServer(tb, { udp, view: 'b', defaultUpstreams: [{ host: '127.0.0.9', port: other.port }] });
    try {
      t.is(dnsPacket.decode((await udpAsk(sa.port, query('q.example')))!).rcode, 'NXDOMAIN');
      t.is(dnsPacket.decode((await udpAsk(sbv.port, query('q.example')))!).rcode, 'NOERROR');
      t.is(mine.udpSeen, 1); t.is(other.udpSeen, 1);
    } finally { sa.close(); sbv.close(); mine.close(); other.close(); }
  });
}

test('forwarding: in-flight bound → REFUSED at once, the slot frees after the timeout', async (t) => {
  const f = new Forwarder({ timeoutMs: 400, maxInFlight: 2 });
  const dead = await upstream('127.0.0.2', 'drop');
  const ups = [{ host: '127.0.0.2', port: dead.port }];
  try {
    const q = query('x.example', 'A', 5);
    const settled: string[] = [];
    const pending = [0, 1].map((i) => f.forward(q, ups).then((r) => { settled.push(`pending ${i}`); return r; }));
    const third = await f.forward(q, ups).then((r) => { settled.push('third'); return r; });
    t.is(third[3]! & 0xf, 5);
    t.deepEqual(settled, ['third'], 'REFUSED came before either pending query timed out');
    t.is(f.pending, 2);
    t.true((await Promise.all(pending)).every((r) => (r[3]! & 0xf) === 2));
    t.is(f.pending, 0);
  } finally { dead.close(); f.close(); }
});

for (const udp of UDP_MODES) {
  test(`view by client address: one listener, each client sees its own networks [udp: ${udp}]`, async (t) => {
    const tb = buildTable({
      networks: [{ id: 'x', name: 'x' }, { id: 'y', name: 'y' }],
      containers: [
        { id: 'loop', name: 'me', endpoints: [{ networkId: 'x', ip: '127.0.0.1' }] },
        { id: 'peer', name: 'peer', endpoints: [{ networkId: 'y', ip: '10.6.0.2' }] },
        { id: 'xpeer', name: 'xpeer', endpoints: [{ networkId: 'x', ip: '10.6.1.2' }] },
      ],
    });
    const s = await startServer(tb, { udp, view: undefined });
    try {
      t.deepEqual(dnsPacket.decode((await udpAsk(s.port, query('xpeer')))!).answers?.map((a) => a.data), ['10.6.1.2']);
      t.is(dnsPacket.decode((await udpAsk(s.port, query('peer')))!).rcode, 'SERVFAIL'); // not visible → forwarded → no servers
    } finally { s.close(); }
  });
}

// The `dns` command group as plugin/cli.ts registers it, run through dns/cli.ts's own entry point (plugin/cli.ts
// itself only runs from dist/, which bench/dns uses).
function startCli(args: string[]) {
  return spawn(process.execPath, ['--import=tsx', 'dns/cli.ts', 'dns', 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}
function listening(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 60_000); // tsx start-up on a busy machine
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('listening')) { clearTimeout(timer); resolve(); } });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('close', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${out}`)); }); // close: after its output
  });
}

/**
 * Starts a server (start(port) → its process and "listening") on a random port of 127.0.0.1 below the ephemeral
 * range, and again on another one if that port was taken (EADDRINUSE: the other tests open sockets meanwhile).
 */
async function onFreePort<T>(start: (port: number) => { child: ChildProcess; ready: Promise<T> }): Promise<{ port: number; ready: T }> {
  for (let attempt = 1; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const { child, ready } = start(port);
    try {
      return { port, ready: await ready };
    } catch (e) {
      child.kill();
      if (attempt >= 10 || !/EADDRINUSE/.test((e as Error).message)) throw e;
    }
  }
}

test('swarmnet dns serve: the CLI serves a table file; --workers 2 answers and forwards from every worker', async (t) => {
  const dir = mkdtempSync('/tmp/sndns-cli-');
  const file = `${dir}/table.json`;
  writeFileSync(file, JSON.stringify({ networks: [{ id: 'n', name: 'net' }], containers: [{ id: 'c', name: 'cli-box', endpoints: [{ networkId: 'n', ip: '10.7.0.2' }] }] }));
  const up = await upstream('127.0.0.11', 0);
  const children: ChildProcess[] = [];
  const cli = (args: string[]) => onFreePort((port) => {
    const child = startCli(['--table', file, '--listen', `127.0.0.1:${port}`, '--view', 'c', '--upstream', `127.0.0.11:${up.port}`, ...args]);
    children.push(child);
    return { child, ready: listening(child) };
  });
  try {
    const [one, two] = await Promise.all([cli([]), cli(['--workers', '2'])]);
    t.regex(await dig(one.port, '+short', 'cli-box.net'), /^10\.7\.0\.2$/m);
    // Workers share the listening socket but not the forwarding sockets: every forwarded answer must come back.
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => udpAsk(two.port, query(`x${i}.example`, 'A', i + 1))));
    t.true(answers.every((a, i) => a && a.readUInt16BE(0) === i + 1 && (a[3]! & 0xf) === 0), 'all forwarded via the right worker');
    t.is(dnsPacket.decode((await udpAsk(two.port, query('cli-box')))!).answers?.[0]?.data, '10.7.0.2');
    const bad = await run(process.execPath, ['--import=tsx', 'dns/cli.ts', 'dns', 'serve', '--table', '/nonexistent.json'], { allowFailure: true });
    t.is(bad.code, 2); t.regex(bad.stderr, /cannot read table/);
  } finally { children.forEach((c) => c.kill()); up.close(); rmSync(dir, { recursive: true, force: true }); }
});

for (const udp of UDP_MODES) {
  test(`many clients at once, local and forwarded answers mixed: each client gets exactly its own answers [udp: ${udp}]`, async (t) => {
    const up = await upstream('127.0.0.13', 0);
    const s = await startServer(table, { udp, view: 'me', defaultUpstreams: [{ host: '127.0.0.13', port: up.port }] });
    const clients = await Promise.all([0, 1, 2].map(async () => {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      const got: Buffer[] = [];
      sock.on('message', (m) => got.push(m));
      return { sock, got };
    }));
    const PER = 40;
    // client c, query j: id c*1000+j; even j local (web), odd j forwarded (f<c>-<j>.example)
    const name = (c: number, j: number): string => (j % 2 ? `f${c}-${j}.example` : 'web');
    try {
      for (let j = 0; j < PER; j++) for (const [c, { sock }] of clients.entries()) sock.send(query(name(c, j), 'A', c * 1000 + j), s.port, '127.0.0.1');
      await until(() => clients.every((c) => c.got.length >= PER), 30_000, 10);
      await new Promise((r) => setTimeout(r, 50));
      for (const [c, { got }] of clients.entries()) {
        t.is(got.length, PER, `client ${c}`);
        const seen = got.map((m) => {
          const d = dnsPacket.decode(m);
          const j = (d.id ?? 0) - c * 1000;
          const want = j % 2 ? '192.0.2.1' : '10.0.1.2';
          return `${j} ${d.questions?.[0]?.name === name(c, j) && d.answers?.[0]?.data === want}`;
        });
        t.deepEqual(seen.sort(), Array.from({ length: PER }, (_, j) => `${j} true`).sort(), `client ${c}`);
      }
      t.is(up.udpSeen, 3 * PER / 2);
    } finally { clients.forEach((c) => c.sock.close()); s.close(); up.close(); }
  });
}

/** `swarmnet dns serve` from the built CLI; resolves with its "dns listening" line. */
function builtCli(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; line: Promise<string> } {
  const child = spawn(process.execPath, ['dist/plugin/cli.js', 'dns', 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const line = new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const l = /^dns listening.*$/m.exec(out);
      if (l) { clearTimeout(timer); resolve(l[0]); }
    });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('close', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${out}`)); }); // close: after its output
  });
  return { child, line };
}

test('swarmnet dns serve (dist/plugin/cli.js): batched UDP when the addon loads, dgram with SWARMNET_DNS_NATIVE=0; both answer and forward', async (t) => {
  t.true(existsSync('dist/plugin/cli.js') && existsSync('dist/dns/native/udp_batch.node'), 'run `npm run build` first');
  const dir = mkdtempSync('/tmp/sndns-cli-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = `${dir}/table.json`;
  writeFileSync(file, JSON.stringify({ networks: [{ id: 'n', name: 'net' }], containers: [{ id: 'c', name: 'cli-box', endpoints: [{ networkId: 'n', ip: '10.7.0.2' }] }] }));
  const up = await upstream('127.0.0.14', 3);
  t.teardown(() => up.close());
  const { SWARMNET_DNS_NATIVE: _, ...env } = process.env;
  const modes = [{ env, want: 'udp: batched' }, { env: { ...env, SWARMNET_DNS_NATIVE: '0' }, want: 'udp: dgram' }];
  const children: ChildProcess[] = [];
  t.teardown(() => children.forEach((c) => c.kill()));
  for (const m of modes) {
    const r = { ...m, ...await onFreePort((port) => {
      const { child, line } = builtCli(['--table', file, '--listen', `127.0.0.1:${port}`, '--view', 'c', '--upstream', `127.0.0.14:${up.port}`], m.env);
      children.push(child);
      return { child, ready: line };
    }) };
    const line = r.ready;
    t.true(line.includes(`(${r.want})`), `${r.want}: ${line}`);
    t.regex(await dig(r.port, '+short', 'cli-box.net'), /^10\.7\.0\.2$/m);
    t.regex(await dig(r.port, 'missing.example'), /status: NXDOMAIN/);
    const raw = await udpAsk(r.port, query('cli-box', 'A', 4321));
    t.is(dnsPacket.decode(raw!).answers?.[0]?.data, '10.7.0.2');
  }
  t.is(up.udpSeen, 2);
});
