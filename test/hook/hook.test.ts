// The createContainer hook (hook/native/hook.c → dist/hook/swarmnet-hook) against a stand-in plugin socket: what it
// asks, that it waits for the answer, and that nothing (no plugin, a silent or broken plugin, bad input) fails the
// container. The real runc runs it through the runtime wrapper at the end.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleepBundle } from './bundle.js';

const DIST = join(import.meta.dirname, '..', '..', 'dist', 'hook');
const HOOK = join(DIST, 'swarmnet-hook');
const hookTest = existsSync(HOOK) ? test : test.skip;
const realRuncTest = existsSync(HOOK) && existsSync('/usr/sbin/runc') && existsSync('/bin/busybox') && process.getuid?.() === 0 ? test.serial : test.serial.skip;

interface Lab { dir: string; plugins: string; bundle: string; log: string }
function lab(t: ExecutionContext): Lab {
  const dir = mkdtempSync(join(tmpdir(), 'snhook-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'bundle');
  mkdirSync(bundle);
  return { dir, plugins: join(dir, 'plugins'), bundle, log: join(bundle, 'log.json') };
}

/** A stand-in plugin: swarmnet-hook.sock under plugins/<id>/, calling onLine for each request line. */
async function plugin(t: ExecutionContext, l: Lab, onLine: (line: string, sock: Socket) => void): Promise<Server> {
  const dir = join(l.plugins, randomBytes(8).toString('hex'));
  mkdirSync(dir, { recursive: true });
  const server = createServer((sock) => {
    let buf = '';
    sock.on('data', (b) => {
      buf += b;
      const nl = buf.indexOf('\n');
      if (nl >= 0) onLine(buf.slice(0, nl), sock);
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(join(dir, 'swarmnet-hook.sock'), r));
  t.teardown(() => { server.close(); });
  return server;
}

/** Runs the hook with an OCI state on stdin; resolves with its exit code once it exits, and calls onExit first. */
function runHook(l: Lab, stdin: string | Buffer, env: Record<string, string> = {}, onExit = (): void => {}): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(HOOK, ['swarmnet-hook', 'createContainer'], { env: { SWARMNET_PLUGINS_DIR: l.plugins, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (b) => { stdout += b; });
    child.on('close', (code) => { onExit(); resolve({ code, stdout }); });
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}

const state = (l: Lab, id = 'c0ffee'): string => JSON.stringify({ ociVersion: '1.0.2', id, status: 'creating', pid: 4242, bundle: l.bundle, annotations: { 'com.example': 'x' } });
const logLines = (l: Lab): { level: string; msg: string }[] => (existsSync(l.log) ? readFileSync(l.log, 'utf8').trim().split('\n').map((x) => JSON.parse(x)) : []);

hookTest('asks the plugin with the container id, bundle and its network namespace, and exits only after the answer', async (t) => {
  const l = lab(t);
  const events: string[] = [];
  let request: { id: string; bundle: string; netns: { dev: number; ino: number } } | undefined;
  await plugin(t, l, (line, sock) => {
    events.push('request');
    request = JSON.parse(line);
    // Answer a little later: the hook must still be waiting then.
    setTimeout(() => { events.push('answer'); sock.end('{"ok":true,"served":true}\n'); }, 300);
  });
  const r = await runHook(l, state(l, 'abc123'), {}, () => events.push('hook exited'));
  t.is(r.code, 0);
  t.deepEqual(events, ['request', 'answer', 'hook exited']);
  const own = statSync('/proc/self/ns/net'); // the hook runs in this namespace here; in a container, in the container's
  t.deepEqual(request, { id: 'abc123', bundle: l.bundle, netns: { dev: own.dev, ino: own.ino } });
  t.is(r.stdout, '');
  t.deepEqual(logLines(l), [], 'an ok answer logs nothing');
});

hookTest('an answer that is not ok goes to runc\'s log; the container starts all the same', async (t) => {
  const l = lab(t);
  await plugin(t, l, (_line, sock) => { sock.end('{"ok":false,"error":"no endpoint"}\n'); });
  t.is((await runHook(l, state(l))).code, 0);
  const [line] = logLines(l);
  t.is(line?.level, 'warning');
  t.is(line?.msg, 'swarmnet-hook: swarmnet plugin answered for container c0ffee: {"ok":false,"error":"no endpoint"}');
});

hookTest('a plugin that never answers: the hook gives up at its bound, says so, exits 0', async (t) => {
  const l = lab(t);
  let asked = false;
  await plugin(t, l, () => { asked = true; });
  t.is((await runHook(l, state(l), { SWARMNET_HOOK_WAIT_MS: '300' })).code, 0);
  t.true(asked);
  t.regex(logLines(l)[0]?.msg ?? '', /no answer from the swarmnet plugin within 300 ms: container c0ffee starts without waiting/);
});

hookTest('a plugin that closes without answering, a stale socket file, no plugin at all: exit 0 with a warning each', async (t) => {
  const l = lab(t);
  await plugin(t, l, (_line, sock) => { sock.destroy(); });
  t.is((await runHook(l, state(l))).code, 0);
  t.regex(logLines(l)[0]?.msg ?? '', /closed the connection without an answer/);

  const stale = lab(t);
  mkdirSync(join(stale.plugins, 'dead'), { recursive: true });
  // A socket file left by a plugin that died: bound, then the process exits without unlinking it.
  const bind = 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])';
  t.is(spawnSync('python3', ['-c', bind, join(stale.plugins, 'dead', 'swarmnet-hook.sock')]).status, 0);
  t.true(existsSync(join(stale.plugins, 'dead', 'swarmnet-hook.sock')));
  t.is((await runHook(stale, state(stale))).code, 0);
  t.regex(logLines(stale)[0]?.msg ?? '', /swarmnet plugin not reachable at .*swarmnet-hook\.sock \(Connection refused\)/);

  const none = lab(t);
  t.is((await runHook(none, state(none))).code, 0);
  t.regex(logLines(none)[0]?.msg ?? '', /no swarmnet plugin socket under .*plugins \(plugin not enabled\?\)/);
});

hookTest('bad OCI state on stdin: exit 0, the plugin is not asked', async (t) => {
  const l = lab(t);
  let asked = 0;
  await plugin(t, l, (_line, sock) => { asked++; sock.end('{"ok":true}\n'); });
  for (const input of ['', 'not json', '{"id": 5}', '{"id":"x"}', '[]', randomBytes(70_000), `{"id":"a\\"b","bundle":"${l.bundle}"}`]) {
    const r = await runHook(l, input);
    t.is(r.code, 0, String(input).slice(0, 20));
    t.is(r.stdout, '');
  }
  t.is(asked, 0);
});

realRuncTest('real runc: a container created through the wrapper runs the hook, which reads runc\'s state and logs into the bundle', (t) => {
  const l = lab(t);
  // The wrapper and the hook side by side, as they are installed.
  for (const f of ['swarmnet-runtime', 'swarmnet-hook']) {
    copyFileSync(join(DIST, f), join(l.dir, f));
    chmodSync(join(l.dir, f), 0o755);
  }
  const b = l.bundle;
  sleepBundle(b);
  const root = join(l.dir, 'state');
  const id = `snhook-${randomBytes(4).toString('hex')}`;
  // As containerd's shim calls it: the log is the bundle's log.json. stdio ignored: the container inherits it.
  const created = spawnSync(join(l.dir, 'swarmnet-runtime'), ['--root', root, '--log', l.log, '--log-format', 'json', 'create', '--bundle', b, id], { stdio: 'ignore' });
  t.teardown(() => { spawnSync('/usr/sbin/runc', ['--root', root, 'delete', '-f', id]); });
  t.is(created.status, 0, existsSync(l.log) ? readFileSync(l.log, 'utf8') : '');
  const st = JSON.parse(spawnSync('/usr/sbin/runc', ['--root', root, 'state', id], { encoding: 'utf8' }).stdout) as { status: string };
  t.is(st.status, 'created');
  // No swarmnet plugin on this host's /run/docker/plugins: the hook said so, naming this container.
  if (!existsSync('/run/docker/plugins')) {
    t.true(logLines(l).some((x) => x.msg.includes(`no swarmnet plugin socket under /run/docker/plugins (plugin not enabled?): container ${id.slice(0, 12)}`)), JSON.stringify(logLines(l)));
  }
});
