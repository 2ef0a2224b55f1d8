import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callPlugin } from '../helpers/plugin-client.js';
import { retry, until } from '../helpers/wait.js';

const MAIN = new URL('../../dist/plugin/main.js', import.meta.url).pathname;

test.before((t) => {
  if (!existsSync(MAIN)) t.fail(`${MAIN} missing: run "npm run build" first (npm test does)`);
});

test('plain process: answers Activate and GetCapabilities at once while etcd is unreachable; SIGTERM stops it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swn-daemon-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'swarmnet.sock');
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, PLUGIN_SOCKET: socket, NODE_NAME: 'test-node', ETCD_ENDPOINTS: 'http://127.0.0.1:9', METRICS_ADDRESS: '', STATE_DIR: dir, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let logs = '';
  child.stdout.on('data', (b: Buffer) => (logs += b.toString()));
  child.stderr.on('data', (b: Buffer) => (logs += b.toString()));

  // How soon it listens is the start-up's speed (Docker gives up after ~10 s); what is asserted is the order: the
  // socket before etcd, whose first attempt fails, and answers while initialisation is still pending.
  const act = await retry(() => callPlugin(socket, '/Plugin.Activate'), 60_000, 50);
  t.is(act.status, 200);
  t.deepEqual(act.body, { Implements: ['NetworkDriver', 'IpamDriver'] });
  const caps = await callPlugin(socket, '/NetworkDriver.GetCapabilities');
  t.deepEqual(caps.body, { Scope: 'global', ConnectivityScope: 'global', GwAllocChecker: false });
  const ipamCaps = await callPlugin(socket, '/IpamDriver.GetCapabilities');
  t.is(ipamCaps.status, 200);
  // Docker announces itself while the plugin is still initialising: that must not fail either.
  const disc = await callPlugin(socket, '/NetworkDriver.DiscoverNew', JSON.stringify({ DiscoveryType: 1, DiscoveryData: { Address: '192.0.2.2', BindAddress: '192.0.2.2', Self: true } }));
  t.is(disc.status, 200);
  t.true(await until(() => logs.includes('"msg":"initialisation failed; retrying"'), 60_000), `etcd found unreachable: ${logs.slice(0, 500)}`);
  t.true(logs.indexOf('"msg":"plugin socket listening"') < logs.indexOf('"msg":"initialisation failed; retrying"'), 'listening before the first etcd attempt ended');
  t.false(logs.includes('"msg":"swarmnet ready"'));

  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.is(await exited, 0);
  t.true(logs.includes('"msg":"plugin socket listening"'), 'the daemon logs (JSON lines on stdout)');
  t.false(logs.includes('"level":50'), `no error logs: ${logs.slice(0, 500)}`);
});

test('an invalid setting stops the daemon at start with one message naming setting, value and what is allowed', (t) => {
  const r = spawnSync(process.execPath, [MAIN], { env: { ...process.env, PLUGIN_SOCKET: '/nonexistent/x.sock', NETWORK_SUBNET_SIZE: '40' }, encoding: 'utf8', timeout: 60_000 }); // a guard
  t.is(r.status, 2);
  t.is(r.stderr.trim(), 'swarmnet: invalid setting NETWORK_SUBNET_SIZE="40": an integer from 8 to 28');
});
