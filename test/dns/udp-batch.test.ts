// The batched UDP addon (dns/native/udp_batch.c through dns/udp-batch.ts) against real sockets. The addon is built
// by `npm run build` (part of `npm test`), so a missing or unloadable addon fails these tests instead of skipping.
import test, { type ExecutionContext } from 'ava';
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run } from '../../common/exec.js';
import { BatchUdp, nativeUdp, type BatchUdpOptions } from '../../dns/udp-batch.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function open(host: string, port = 0, o: BatchUdpOptions = {}): BatchUdp {
  if (!nativeUdp()) throw new Error('batched UDP addon did not load: run `npm run build` (dist/dns/native/udp_batch.node); SWARMNET_DNS_NATIVE must not be 0');
  return BatchUdp.open(host, port, o);
}

async function client(t: ExecutionContext, host: string): Promise<{ sock: dgram.Socket; port: number; got: Buffer[] }> {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((r) => sock.bind(0, host, r));
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  t.teardown(() => sock.close());
  return { sock, port: sock.address().port, got };
}

/** queueTo(), then the result once the turn's sendmmsg ran: 0 sent, else the errno failed() reported. */
function queueSent(b: BatchUdp, reply: Buffer, dest: Buffer): Promise<number> {
  return new Promise((resolve) => {
    let errno = 0;
    b.queueTo(reply, dest, (e) => { errno = e; });
    queueMicrotask(() => resolve(errno)); // after the flush queueTo scheduled
  });
}

/** Polls cond; ms is a guard for a busy machine, not an expected time. */
async function until(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(5);
  return cond();
}

test('the addon is built and loads', (t) => {
  const n = nativeUdp();
  t.truthy(n, 'nativeUdp() is undefined: run `npm run build` (dist/dns/native/udp_batch.node)');
  t.true(n!.SLOTS > 1);
  t.is(n!.ADDR_SIZE, 28);
});

for (const host of ['127.0.0.1', '::1']) {
  test(`${host}: address(), peers of a batch, send() replies go to their own senders`, async (t) => {
    const b = open(host);
    t.teardown(() => b.close());
    const { address, port } = b.address();
    t.is(address, host);
    t.true(port > 0);
    const clients = await Promise.all([0, 1, 2].map(() => client(t, host)));
    const sizes: number[] = [];
    const badPeers: string[] = [];
    b.onBatch = (n) => {
      sizes.push(n);
      const replies: Buffer[] = [];
      const slots = new Int32Array(b.slots);
      for (let i = 0; i < n; i++) {
        const msg = b.datagram(i)!.toString();
        const from = clients[Number(msg.split(':')[0])]!.port;
        if (b.peerAddress(i) !== host || b.peerPort(i) !== from) badPeers.push(`${msg} from ${b.peerAddress(i)}:${b.peerPort(i)}`);
        replies.push(Buffer.from(`re ${msg}`));
        slots[i] = i;
      }
      // in reverse order, so a reply cannot reach the right client by position alone
      replies.reverse(); slots.slice(0, n).reverse().forEach((s, j) => { slots[j] = s; });
      t.is(b.send(replies, slots, n), n);
    };
    const PER = 40;
    for (let j = 0; j < PER; j++) for (const [c, { sock }] of clients.entries()) sock.send(`${c}:${j}`, port, host);
    t.true(await until(() => clients.every((c) => c.got.length >= PER)), `replies: ${clients.map((c) => c.got.length).join(',')}`);
    await sleep(50); // nothing extra arrives
    t.deepEqual(badPeers, []);
    for (const [c, { got }] of clients.entries()) {
      t.deepEqual(got.map(String).sort(), Array.from({ length: PER }, (_, j) => `re ${c}:${j}`).sort());
    }
    t.is(sizes.reduce((a, n) => a + n, 0), 3 * PER);
    t.true(Math.max(...sizes) > 1, `batch sizes ${sizes.join(',')}`);
  });
}

test('send(): bad counts and slots are refused, out-of-range slots skipped', async (t) => {
  const b = open('127.0.0.1');
  t.teardown(() => b.close());
  const c = await client(t, '127.0.0.1');
  let sent = -1;
  const errors: string[] = [];
  b.onBatch = () => {
    const slots = Int32Array.from([0, 999, -1]);
    for (const count of [-1, b.slots + 1, 4]) {
      try { b.send([Buffer.from('x')], slots, count); } catch (e) { errors.push((e as Error).message); }
    }
    sent = b.send([Buffer.from('ok'), Buffer.from('nowhere'), Buffer.from('nowhere')], slots, 3);
  };
  c.sock.send('q', b.address().port, '127.0.0.1');
  t.true(await until(() => c.got.length > 0));
  await sleep(30);
  t.is(errors.length, 3);
  t.true(errors.every((m) => /bad count or slots/.test(m)), errors.join('; '));
  t.is(sent, 1);
  t.deepEqual(c.got.map(String), ['ok']);
});

// Serial: it reads the shared area between batches, which other tests' sockets would overwrite too.
test.serial('queueTo() with a copied peer() after later batches overwrote the shared area reaches the first sender', async (t) => {
  const b = open('127.0.0.1');
  t.teardown(() => b.close());
  const port = b.address().port;
  const first = await client(t, '127.0.0.1');
  const later = await client(t, '127.0.0.1');
  const seen: string[] = [];
  let saved: { peer: Buffer; msg: Buffer } | undefined;
  b.onBatch = (n) => {
    for (let i = 0; i < n; i++) {
      const msg = b.datagram(i)!;
      seen.push(msg.toString());
      if (msg.toString() === 'first') saved = { peer: b.peer(i), msg: Buffer.from(msg) };
    }
  };
  first.sock.send('first', port, '127.0.0.1');
  t.true(await until(() => saved !== undefined));
  for (let j = 0; j < 5; j++) later.sock.send(`later${j}`, port, '127.0.0.1');
  t.true(await until(() => seen.length === 6));
  // slot 0 now holds a later datagram and its sender
  t.is(b.peerPort(0), later.port);
  t.regex(b.datagram(0)!.toString(), /^later/);
  await sleep(20);
  t.is(await queueSent(b, Buffer.from(`re ${saved!.msg.toString()}`), saved!.peer), 0);
  t.true(await until(() => first.got.length > 0));
  await sleep(50);
  t.deepEqual(first.got.map(String), ['re first']);
  t.deepEqual(later.got, []);
});

for (const host of ['127.0.0.1', '::1']) {
  test(`${host}: sockaddr(host, port) round-trips: queueTo reaches a dgram server there and equals the peer() it sends from`, async (t) => {
    const b = open(host);
    t.teardown(() => b.close());
    const server = await client(t, host);
    const to = BatchUdp.sockaddr(host, server.port);
    t.is(to.length, 28);
    const from: dgram.RemoteInfo[] = [];
    server.sock.on('message', (_m, r) => from.push(r));
    t.is(await queueSent(b, Buffer.from('hello'), to), 0);
    t.true(await until(() => server.got.length > 0));
    t.is(server.got[0]!.toString(), 'hello');
    t.is(from[0]!.port, b.address().port);
    t.is(from[0]!.address, host);
    // the kernel's own sockaddr for that dgram socket (as a peer) matches what sockaddr() builds
    let peer: Buffer | undefined;
    b.onBatch = () => { peer = b.peer(0); };
    server.sock.send('back', b.address().port, host);
    t.true(await until(() => peer !== undefined));
    const used = host.includes(':') ? 28 : 16; // sockaddr_in6 / sockaddr_in
    t.deepEqual(peer!.subarray(0, used), to.subarray(0, used));
  });
}

test('open(): ports outside 0–65535 are refused, not wrapped', (t) => {
  for (const port of [70000, -1, 65536]) t.throws(() => BatchUdp.open('127.0.0.1', port), { message: /bad port/ }, String(port));
});

test('"::" is dual-stack, as dgram is: an IPv4 client is answered, and its address reads as plain IPv4', async (t) => {
  const s = BatchUdp.open('::', 0);
  t.teardown(() => s.close());
  const c = await client(t, '127.0.0.1');
  const seen = new Promise<string>((resolve) => {
    s.onBatch = (n) => {
      resolve(s.peerAddress(0));
      const replies = [Buffer.from('pong')];
      s.send(replies, Int32Array.of(0), Math.min(n, 1));
    };
  });
  c.sock.send('ping', s.address().port, '127.0.0.1');
  t.is(await seen, '127.0.0.1');
  await until(() => c.got.length > 0);
  t.is(c.got[0]?.toString(), 'pong');
});

test('sockaddr(): a non-literal host throws', (t) => {
  t.throws(() => BatchUdp.sockaddr('localhost', 53));
  t.throws(() => BatchUdp.sockaddr('', 53));
});

test('bind errors: a taken port gives EADDRINUSE (BatchUdp or dgram holder); reusePort lets two bind one port', async (t) => {
  const a = open('127.0.0.1');
  t.teardown(() => a.close());
  const port = a.address().port;
  const e = bindError(t, '127.0.0.1', port);
  t.is(e.code, 'EADDRINUSE');
  t.regex(e.message ?? '', /bind/);
  t.is(bindError(t, '127.0.0.1', port, { reusePort: true }).code, 'EADDRINUSE'); // only sockets that all ask share
  const d = await client(t, '127.0.0.1');
  t.is(bindError(t, '127.0.0.1', d.port).code, 'EADDRINUSE');
  t.throws(() => open('not-an-ip'), { message: /literal IP/ });

  const r1 = open('127.0.0.1', 0, { reusePort: true });
  t.teardown(() => r1.close());
  const rport = r1.address().port;
  const r2 = open('127.0.0.1', rport, { reusePort: true });
  t.teardown(() => r2.close());
  t.is(r2.address().port, rport);
  // both receive: the kernel spreads senders over them by their address
  const got: [number, number] = [0, 0];
  r1.onBatch = (n) => { got[0] += n; };
  r2.onBatch = (n) => { got[1] += n; };
  const senders = await Promise.all(Array.from({ length: 16 }, () => client(t, '127.0.0.1')));
  for (const s of senders) s.sock.send('x', rport, '127.0.0.1');
  t.true(await until(() => got[0]! + got[1]! === 16));
  t.true(got[0]! > 0 && got[1]! > 0, `spread ${got.join('/')}`);
});

test('close(): idempotent, no onBatch after it (also when closed inside a batch), the port is free again', async (t) => {
  const b = open('127.0.0.1');
  const port = b.address().port;
  const c = await client(t, '127.0.0.1');
  let calls = 0;
  b.onBatch = () => { calls++; };
  c.sock.send('1', port, '127.0.0.1');
  t.true(await until(() => calls === 1));
  b.close();
  t.notThrows(() => b.close());
  b.onBatch = () => { calls++; }; // even a handler set after close is never called
  c.sock.send('2', port, '127.0.0.1');
  await sleep(50);
  t.is(calls, 1);
  t.is(b.send([Buffer.from('x')], Int32Array.from([0]), 1), 0);
  t.is(await queueSent(b, Buffer.from('x'), BatchUdp.sockaddr('127.0.0.1', c.port)), 9 /* EBADF */);
  t.notThrows(() => b.ref(false));
  t.throws(() => b.address(), { message: /closed/ });
  // the descriptor is really closed: a plain dgram socket (no SO_REUSEADDR) can bind the port
  await sleep(10);
  const again = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => { again.once('error', rej); again.bind(port, '127.0.0.1', res); });
  again.close();
  await sleep(10);
  const b2 = open('127.0.0.1', port);
  t.is(b2.address().port, port);
  b2.close();

  // closing from inside the handler stops the batch loop at once, even with a full receive queue
  const b3 = open('127.0.0.1');
  let inside = 0;
  b3.onBatch = () => { inside++; b3.close(); };
  for (let i = 0; i < 300; i++) c.sock.send('z', b3.address().port, '127.0.0.1');
  t.true(await until(() => inside > 0));
  await sleep(50);
  t.is(inside, 1);
});

/** The error open() throws; a socket it wrongly returns is closed so it cannot keep the test process alive. */
function bindError(t: ExecutionContext, host: string, port: number, o: BatchUdpOptions = {}): NodeJS.ErrnoException {
  let e: unknown;
  try { open(host, port, o).close(); } catch (err) { e = err; }
  t.true(e instanceof Error, `binding ${host}:${port} again must fail`);
  return (e ?? {}) as NodeJS.ErrnoException;
}

/**
 * A child holding one BatchUdp and an unref'd timer. The timer cannot keep the process alive, so it fires (prints
 * "alive" and exits) only if the socket does; without it the process exits first. No clock decides.
 */
function child(ref: boolean | 'toggle'): Promise<{ code: number | null; out: string; alive: boolean }> {
  const code = [
    "import { BatchUdp } from './dns/udp-batch.ts';",
    "const b = BatchUdp.open('127.0.0.1', 0);",
    ref === false ? 'b.ref(false);' : ref === 'toggle' ? 'b.ref(false); b.ref(true);' : '',
    "process.stdout.write('open ' + b.address().port + '\\n');",
    "setTimeout(() => { process.stdout.write('alive\\n'); process.exit(0); }, 3000).unref();",
  ].join('\n');
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', code], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const guard = setTimeout(() => p.kill('SIGKILL'), 60_000); // only if it hangs for another reason
    p.on('exit', (c) => { clearTimeout(guard); resolve({ code: c, out, alive: /^alive$/m.test(out) }); });
  });
}

test('ref(false): a process holding only an unref\'d BatchUdp exits on its own; a ref\'d one keeps it alive', async (t) => {
  const [unref, refd, toggled] = await Promise.all([child(false), child(true), child('toggle')]);
  t.regex(unref.out, /^open \d+$/m);
  t.false(unref.alive, 'the unref\'d socket kept the process alive');
  t.is(unref.code, 0);
  t.regex(refd.out, /^open \d+$/m);
  t.true(refd.alive, `the ref'd socket let the process exit: ${refd.out}`);
  t.regex(toggled.out, /^open \d+$/m);
  t.true(toggled.alive, 'ref(true) after ref(false) must keep the process alive again');
});

test('netns: a socket opened in another namespace answers there only; a bad path throws and leaves the thread home', async (t) => {
  const ns = `snbt-${randomBytes(3).toString('hex')}`;
  const home = readlinkSync('/proc/thread-self/ns/net');
  await run('ip', ['netns', 'add', ns]);
  t.teardown(() => run('ip', ['netns', 'del', ns], { allowFailure: true }).then(() => undefined));
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);

  const b = open('127.0.0.1', 0, { netns: `/run/netns/${ns}` });
  t.teardown(() => b.close());
  t.is(readlinkSync('/proc/thread-self/ns/net'), home, 'the thread must be back in its own namespace');
  const port = b.address().port;
  const peers: string[] = [];
  b.onBatch = (n) => {
    const replies: Buffer[] = [];
    const slots = new Int32Array(n);
    for (let i = 0; i < n; i++) { peers.push(b.peerAddress(i)); replies.push(Buffer.from(`pong ${b.datagram(i)!.toString()}`)); slots[i] = i; }
    b.send(replies, slots, n);
  };
  // the same port is free in the root namespace: a root-namespace server there gets the root client's datagram
  const rootServer = await new Promise<dgram.Socket>((res, rej) => {
    const s = dgram.createSocket('udp4');
    s.once('error', rej);
    s.bind(port, '127.0.0.1', () => res(s));
  });
  t.teardown(() => rootServer.close());
  const rootGot: string[] = [];
  rootServer.on('message', (m) => rootGot.push(m.toString()));

  // wait: a guard where an answer is expected; where none is, only how long the client listens for a wrong one
  const ask = (wait: number) => `const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m) => { console.log(m.toString()); process.exit(0); });
    setTimeout(() => { console.log('timeout'); process.exit(1); }, ${wait});
    s.send('ping', ${port}, '127.0.0.1');`;
  const inside = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', ask(20_000)], { allowFailure: true });
  t.is(inside.stdout.trim(), 'pong ping');
  t.deepEqual(peers, ['127.0.0.1']);
  const outside = await run(process.execPath, ['-e', ask(2000)], { allowFailure: true });
  t.is(outside.stdout.trim(), 'timeout');
  t.true(await until(() => rootGot.length > 0));
  t.deepEqual(rootGot, ['ping']);
  t.is(peers.length, 1, 'the namespaced socket must not see the root namespace');

  // bad namespace paths: a clear error, and the next sockets are in the root namespace
  for (const bad of ['/nonexistent/netns', '/etc/hostname']) {
    const e = t.throws(() => open('127.0.0.1', 0, { netns: bad }));
    t.regex(e!.message, /namespace/, bad);
    t.is(readlinkSync('/proc/thread-self/ns/net'), home);
  }
  const plain = open('127.0.0.1');
  t.teardown(() => plain.close());
  let plainGot = 0;
  plain.onBatch = (n) => { plainGot += n; };
  const c = await client(t, '127.0.0.1');
  c.sock.send('root', plain.address().port, '127.0.0.1');
  t.true(await until(() => plainGot === 1), 'a socket opened after the failures must be in the root namespace');
});

test('worker_threads: the addon stays with the thread that loaded it; another thread gets dgram, not shared memory', async (t) => {
  t.truthy(nativeUdp());
  const { Worker } = await import('node:worker_threads');
  const mod = new URL('../../dist/dns/udp-batch.js', import.meta.url).href;
  const w = new Worker(`import(${JSON.stringify(mod)}).then((m) => require('node:worker_threads').parentPort.postMessage(m.nativeUdp() === undefined))`, { eval: true });
  const fellBack = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  await w.terminate();
  t.true(fellBack, 'a second thread must not get the process-wide areas');
  t.truthy(nativeUdp(), 'the loading thread keeps its addon');
});
