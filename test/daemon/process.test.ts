import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callPlugin } from '../helpers/plugin-client.js';

const MAIN = new URL('../../dist/plugin/main.js', import.meta.url).pathname;

test.before((t) => {
  if (!existsSync(MAIN)) t.fail(`${MAIN} missing: run "npm run build" first (npm test does)`);
});

async function waitFor<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test('plain process: answers Activate and GetCapabilities at once while etcd is unreachable; SIGTERM stops it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swn-daemon-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'swarmnet.sock');
  const started = Date.now();
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, PLUGIN_SOCKET: socket, NODE_NAME: 'test-node', ETCD_ENDPOINTS: 'http://127.0.0.1:9', METRICS_ADDRESS: '', STATE_DIR: dir, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let logs = '';
  child.stdout.on('data', (b: Buffer) => (logs += b.toString()));
  child.stderr.on('data', (b: Buffer) => (logs += b.toString()));

  const act = await waitFor(() => callPlugin(socket, '/Plugin.Activate'), 5000);
  const elapsed = Date.now() - started;
  t.is(act.status, 200);
  t.deepEqual(act.body, { Implements: ['NetworkDriver', 'IpamDriver'] });
  t.true(elapsed < 5000, `listening after ${elapsed} ms (Docker gives up after ~10 s)`);
  const caps = await callPlugin(socket, '/NetworkDriver.GetCapabilities');
  t.deepEqual(caps.body, { Scope: 'global', ConnectivityScope: 'global', GwAllocChecker: false });
  const ipamCaps = await callPlugin(socket, '/IpamDriver.GetCapabilities');
  t.is(ipamCaps.status, 200);
  // Docker announces itself while the plugin is still initialising: that must not fail either.
  const disc = await callPlugin(socket, '/NetworkDriver.DiscoverNew', JSON.stringify({ DiscoveryType: 1, DiscoveryData: { Address: '192.0.2.2', BindAddress: '192.0.2.2', Self: true } }));
  t.is(disc.status, 200);

  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.is(await exited, 0);
  t.true(logs.includes('"msg":"plugin socket listening"'), 'the daemon logs (JSON lines on stdout)');
  t.false(logs.includes('"level":50'), `no error logs: ${logs.slice(0, 500)}`);
});

test('an invalid setting stops the daemon at start with one message naming setting, value and what is allowed', (t) => {
  const r = spawnSync(process.execPath, [MAIN], { env: { ...process.env, PLUGIN_SOCKET: '/nonexistent/x.sock', NETWORK_SUBNET_SIZE: '40' }, encoding: 'utf8', timeout: 10_000 });
  t.is(r.status, 2);
  t.is(r.stderr.trim(), 'swarmnet: invalid setting NETWORK_SUBNET_SIZE="40": an integer from 8 to 28');
});
