import test from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logger } from '../../common/log.js';
import { startHookServer } from '../../dns/inject/hook-server.js';
import { HOOK_SOCKET } from '../../plugin/dns-plane.js';
import { createPluginServer, listenUnix } from '../../plugin/protocol/server.js';
import { canRunDaemons, DaemonHosts } from '../helpers/daemon-hosts.js';
import { callPlugin } from '../helpers/plugin-client.js';
import { until, waitFor } from '../helpers/wait.js';

/**
 * The plugin's unix sockets (Docker's plugin protocol socket and the createContainer hook socket beside it; the
 * plugin has no other unix socket) are root-only: a process running as nobody is refused with EACCES even when
 * every directory on the way is open to it, and root is answered. Checked on the real components in-process and
 * on the whole daemon (real etcd), both under umask 0, where a socket left to the umask, or bound and chmod-ed
 * afterwards, would be (or for a moment be) connectable by everyone.
 */

const CLIENT = new URL('../fixtures/unix-socket-client.mjs', import.meta.url).pathname;
const NOBODY = 65534;
const asRoot = process.getuid?.() === 0 ? test.serial : test.skip;

interface ClientResult { uid: number; groups: number[]; connected: boolean; code?: string; reply?: string }

/** The client fixture as user `uid` (argument array, no shell; with uid/gid set, libuv also drops supplementary groups). */
function connectAs(uid: number, path: string, kind: 'plugin' | 'hook'): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLIENT, path, kind], { uid, gid: uid, cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      try { resolve(JSON.parse(out) as ClientResult); } catch { reject(new Error(`client exited ${code}: ${out}${err}`)); }
    });
  });
}

const mode = (path: string): number => lstatSync(path).mode & 0o777;

/** Both sockets: nobody is refused at connect (nothing is sent), root connects and gets an answer. */
async function assertRootOnly(t: import('ava').ExecutionContext, pluginSock: string, hookSock: string): Promise<void> {
  for (const [path, kind] of [[pluginSock, 'plugin'], [hookSock, 'hook']] as const) {
    const nobody = await connectAs(NOBODY, path, kind);
    t.is(nobody.uid, NOBODY);
    t.deepEqual(nobody.groups, [NOBODY], 'no supplementary groups: only the "other" bits apply');
    t.false(nobody.connected, `${kind}: nobody connected`);
    t.is(nobody.code, 'EACCES', `${kind}: nobody refused`);
    t.is(nobody.reply, undefined);
    const root = await connectAs(0, path, kind);
    t.true(root.connected, `${kind}: root connects`);
    if (kind === 'plugin') t.regex(root.reply ?? '', /^HTTP\/1\.1 200 [\s\S]*"Implements":\["NetworkDriver","IpamDriver"\]/);
    else t.is(root.reply, '{"ok":true,"served":false}\n');
  }
}

asRoot('in-process, umask 0: both sockets are 0600 from bind(2) on, new directories 0700; nobody is refused, root answered', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'snsock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Open directories on the way, as a world-readable /run/docker/plugins would be: the socket's mode must refuse.
  chmodSync(dir, 0o755);
  const run = join(dir, 'plugins');
  mkdirSync(run, { mode: 0o755 });
  const pluginSock = join(run, 'swarmnet.sock');
  const hookSock = join(run, HOOK_SOCKET);
  const fresh = join(dir, 'new', 'plugins', 'swarmnet.sock');

  // A probe on 'listening', which fires right after bind(2) and before the caller's next step (a chmod, say).
  const atBind = new Map<string, number>();
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
    const path = args[0];
    if (typeof path === 'string') this.once('listening', () => atBind.set(path, mode(path)));
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  } as typeof listen;
  const log = logger('test');
  const plugin = createPluginServer({ driver: {} as never, log });
  const other = createPluginServer({ driver: {} as never, log });
  let hook: { close(): Promise<void> } | undefined;
  const umask = process.umask(0);
  try {
    await listenUnix(plugin, pluginSock);
    await listenUnix(other, fresh);
    hook = await startHookServer({ path: hookSock, handle: async () => ({ served: false }), log });
  } finally {
    process.umask(umask);
    net.Server.prototype.listen = listen;
  }
  t.teardown(async () => { plugin.close(); other.close(); await hook?.close(); });

  t.deepEqual(Object.fromEntries(atBind), { [pluginSock]: 0o600, [fresh]: 0o600, [hookSock]: 0o600 }, 'the mode at bind');
  for (const p of [pluginSock, hookSock, fresh]) {
    t.is(mode(p), 0o600, p);
    t.is(lstatSync(p).uid, 0);
    t.true(lstatSync(p).isSocket());
  }
  t.is(mode(join(dir, 'new')), 0o700, 'a directory the plugin creates');
  t.is(mode(join(dir, 'new', 'plugins')), 0o700);
  await assertRootOnly(t, pluginSock, hookSock);
});

const daemon = canRunDaemons ? test.serial : test.skip;
const lab = new DaemonHosts('snsk', '10.93.0', ['a'] as const, 23969);
test.after.always(() => { if (canRunDaemons) lab.cleanup(); });

daemon('the whole daemon, started under umask 0 with a real etcd: plugin and hook sockets root-only', async (t) => {
  lab.setup();
  chmodSync(lab.dir, 0o755);
  const pluginSock = lab.sock('a'); // its directory, as Docker's, exists and is open (0755)
  const hookSock = join(lab.dir, 'a', HOOK_SOCKET);
  // The daemon inherits the umask (spawn forks synchronously).
  const umask = process.umask(0);
  try { lab.startDaemon('a'); } finally { process.umask(umask); }
  await waitFor(() => callPlugin(pluginSock, '/Plugin.Activate'), 60_000, 'daemon listening');
  // The hook socket comes with the DNS plane, once etcd is reached.
  t.true(await until(() => existsSync(hookSock), 60_000), 'hook socket created');
  for (const p of [pluginSock, hookSock]) {
    t.is(mode(p), 0o600, p);
    t.is(lstatSync(p).uid, 0);
  }
  await assertRootOnly(t, pluginSock, hookSock);
});
