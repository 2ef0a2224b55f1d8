import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import test, { type ExecutionContext } from 'ava';
import { run, toolEnv } from '../../common/exec.js';
import { openContainerListener } from '../../dns/netns-listener.js';
import { nativeUdp } from '../../dns/udp-batch.js';
import { until } from '../helpers/wait.js';
import { serveProbe, tempNetns } from './helpers.js';

// The resolver's sockets opened inside a container's namespace from this process (dns/netns-listener.ts).
const addon = nativeUdp();
const ready = process.getuid?.() === 0 && typeof addon?.listenTcp === 'function'
  && ['/usr/sbin/ip', '/usr/bin/dig', '/usr/bin/ss'].every((p) => existsSync(p));
const rootTest = ready ? test : test.skip;

const netns = (t: ExecutionContext) => tempNetns(t, 'sntk');

/** `ss -Hln` (udp or tcp) inside the namespace, lines for address:port. */
async function sockets(ns: string, proto: 'u' | 't', addr: string): Promise<string[]> {
  const r = await run('ip', ['netns', 'exec', ns, 'ss', '-Hln', `-${proto}`]);
  return r.stdout.split('\n').filter((l) => l.split(/\s+/).includes(addr));
}

/** The listener's UDP fd is closed when libuv lets go of it (next loop turn): wait until ss agrees (or a guard). */
async function settle(ns: string, proto: 'u' | 't', addr: string, count: number): Promise<string[]> {
  let lines: string[] = [];
  await until(async () => (lines = await sockets(ns, proto, addr)).length === count, 20_000, 20);
  return lines;
}

/** A TCP client that connects to 127.0.0.11:53, says so, and reports when the server ends the connection. */
const HOLD_OPEN = `const c = require('node:net').connect(53, '127.0.0.11', () => console.log('connected'));
c.on('close', () => { console.log('closed'); process.exit(0); });
c.on('error', () => {});`;

/** Every query here is answered: +time is a guard for a busy machine. */
function dig(ns: string, name: string, extra: string[] = [], server = '127.0.0.11'): Promise<string> {
  return run('ip', ['netns', 'exec', ns, 'dig', `@${server}`, name, 'A', '+short', '+tries=1', '+time=15', ...extra], { allowFailure: true })
    .then((r) => r.stdout.trim());
}


rootTest('opens UDP and TCP inside the namespace: answers there, absent from the root namespace', async (t) => {
  const ns = await netns(t);
  const l = await openContainerListener(ns.path, { port: 0 });
  serveProbe(t, l);
  const { address, port } = l.batchUdp.address();
  t.is(address, '127.0.0.11');
  t.true(port > 0);
  t.deepEqual(l.tcp.address(), { address: '127.0.0.11', family: 'IPv4', port });
  t.is((await sockets(ns.name, 'u', `127.0.0.11:${port}`)).length, 1);
  t.is((await sockets(ns.name, 't', `127.0.0.11:${port}`)).length, 1);

  t.is(await dig(ns.name, 'probe', ['-p', String(port)]), '10.0.0.9');
  t.is(await dig(ns.name, 'probe', ['-p', String(port), '+tcp']), '10.0.0.9');

  // The root namespace has no such sockets: its 127.0.0.11:<port> refuses.
  const rootUdp = (await run('ss', ['-Hlnu'])).stdout.split('\n').filter((x) => x.split(/\s+/).includes(`127.0.0.11:${port}`));
  t.deepEqual(rootUdp, []);
  const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const c = net.connect(port, '127.0.0.11', () => { c.destroy(); resolve(undefined); });
    c.on('error', resolve);
  });
  t.is(err?.code, 'ECONNREFUSED');
});

rootTest('127.0.0.11:53 by default; a second open on the same address fails with EADDRINUSE and leaves nothing', async (t) => {
  const ns = await netns(t);
  const first = await openContainerListener(ns.path);
  t.teardown(() => first.close());
  t.is(first.batchUdp.address().port, 53);
  const err = await t.throwsAsync(openContainerListener(ns.path));
  t.is((err as NodeJS.ErrnoException).code, 'EADDRINUSE');
  t.regex(err.message, new RegExp(`127\\.0\\.0\\.11:53 in ${ns.path}`));
  // Whichever side failed, the attempt's sockets are gone: one UDP and one TCP socket, the first listener's.
  t.is((await settle(ns.name, 'u', '127.0.0.11:53', 1)).length, 1);
  t.is((await settle(ns.name, 't', '127.0.0.11:53', 1)).length, 1);
  // And the first listener still gets the queries.
  serveProbe(t, first);
  t.is(await dig(ns.name, 'probe'), '10.0.0.9');
  t.is(await dig(ns.name, 'probe', ['+tcp']), '10.0.0.9');
});

rootTest('close() frees the port (UDP and TCP) and is idempotent; the address can be opened again', async (t) => {
  const ns = await netns(t);
  const l = await openContainerListener(ns.path);
  // An open TCP connection must not outlive close(): it would keep the namespace alive. A client in the namespace
  // holds one open; close() must end it now, not at the server's idle timeout, here an hour: so its end is close()'s.
  serveProbe(t, l, { tcpIdleMs: 3_600_000 });
  const client = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', HOLD_OPEN], { stdio: ['ignore', 'pipe', 'inherit'], env: toolEnv() });
  t.teardown(() => { client.kill('SIGKILL'); });
  const lines = createInterface({ input: client.stdout });
  const events: string[] = [];
  const next = (): Promise<string> => new Promise((resolve) => lines.once('line', resolve));
  events.push(await next());
  t.deepEqual(events, ['connected']);
  let guard: NodeJS.Timeout | undefined;
  const ended = Promise.race([next(), new Promise<string>((r) => { guard = setTimeout(() => r('still open at the guard (60 s)'), 60_000); })]);
  l.close();
  l.close();
  t.is(await ended, 'closed');
  clearTimeout(guard);
  t.deepEqual(await settle(ns.name, 'u', '127.0.0.11:53', 0), []);
  t.deepEqual(await settle(ns.name, 't', '127.0.0.11:53', 0), []);
  const again = await openContainerListener(ns.path);
  t.teardown(() => again.close());
  t.is(again.batchUdp.address().port, 53);
});

rootTest('a bad namespace path or address is a clear error and opens nothing', async (t) => {
  const missing = `/run/netns/sntk-missing-${randomBytes(4).toString('hex')}`;
  const e1 = await t.throwsAsync(openContainerListener(missing, { port: 0 }));
  t.regex(e1.message, /^netns-listener: UDP 127\.0\.0\.11:0 in \/run\/netns\/sntk-missing-[0-9a-f]+: .*No such file or directory/);
  const e2 = await t.throwsAsync(openContainerListener('/etc/hostname', { port: 0 }));
  t.regex(e2.message, /in \/etc\/hostname: .*Invalid argument/); // a file, not a namespace
  await t.throwsAsync(openContainerListener('run/netns/x'), { message: /absolute path/ });
  await t.throwsAsync(openContainerListener(missing, { address: 'localhost' }), { message: /literal IP/ });
  await t.throwsAsync(openContainerListener(missing, { port: 65536 }), { message: /bad port/ });
  await t.throwsAsync(openContainerListener(missing, { port: 1.5 }), { message: /bad port/ });
  // Our own namespace (what a host-network container gives) is refused: 127.0.0.11:53 would be bound on the host.
  await t.throwsAsync(openContainerListener('/proc/self/ns/net', { port: 0 }), { message: /own network namespace/ });
  await t.throwsAsync(openContainerListener(`/proc/${process.pid}/ns/net`, { port: 0 }), { message: /own network namespace/ });
  // A FIFO would block the event loop in open(): refused before it is opened.
  const fifo = join(tmpdir(), `sntk-fifo-${randomBytes(4).toString('hex')}`);
  await run('mkfifo', [fifo]);
  t.teardown(() => rmSync(fifo, { force: true }));
  await t.throwsAsync(openContainerListener(fifo, { port: 0 }), { message: /not a network namespace/ });
});
