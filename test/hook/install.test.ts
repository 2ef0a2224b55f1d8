import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { CLI_LAUNCHER, hostInstall, hostUninstall, mergeDaemonConfig, restoreDaemonConfig } from '../../hook/install.js';

// `swarmnet host install|uninstall` (hook/install.ts): the daemon.json merge keeps the user's settings, and
// uninstall restores exactly what was there.

const DIST = join(import.meta.dirname, '..', '..', 'dist', 'hook');
const built = existsSync(join(DIST, 'swarmnet-runtime')) && existsSync(join(DIST, 'swarmnet-hook'));

function tmp(t: ExecutionContext): string {
  const d = mkdtempSync(join(tmpdir(), 'sninstall-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('merge keeps every other setting and runtime; restore gives back the original', (t) => {
  const user = { 'log-driver': 'json-file', runtimes: { nvidia: { path: '/opt/nvidia/container-runtime' } }, 'default-runtime': 'nvidia', 'live-restore': true };
  const { config, record } = mergeDaemonConfig(user, '/opt/sn/swarmnet-runtime');
  t.deepEqual(config, { ...user, runtimes: { ...user.runtimes, swarmnet: { path: '/opt/sn/swarmnet-runtime' } }, 'default-runtime': 'swarmnet' });
  t.deepEqual(record, { previousDefaultRuntime: 'nvidia', addedRuntimes: false });
  t.deepEqual(restoreDaemonConfig(config, record), user);

  const empty = mergeDaemonConfig({}, '/x/swarmnet-runtime');
  t.deepEqual(restoreDaemonConfig(empty.config, empty.record), {});
  t.throws(() => mergeDaemonConfig({ runtimes: [] }, '/x'), { message: /"runtimes" is not an object/ });
  t.throws(() => mergeDaemonConfig({ 'default-runtime': 3 }, '/x'), { message: /"default-runtime" is not a string/ });
});

(built ? test : test.skip)('install is idempotent and uninstall removes exactly what it added', (t) => {
  const d = tmp(t);
  const daemonJson = join(d, 'docker', 'daemon.json');
  const dir = join(d, 'lib');
  const user = { debug: true, runtimes: { other: { path: '/opt/other/runtime' } } };
  mkdirSync(join(d, 'docker'));
  writeFileSync(daemonJson, JSON.stringify(user));

  t.true(hostInstall({ dir, daemonJson, from: DIST }).changed);
  const after = JSON.parse(readFileSync(daemonJson, 'utf8'));
  t.is(after['default-runtime'], 'swarmnet');
  t.is(after.runtimes.swarmnet.path, join(dir, 'swarmnet-runtime'));
  t.is(statSync(join(dir, 'swarmnet-hook')).mode & 0o777, 0o755);
  t.false(hostInstall({ dir, daemonJson, from: DIST }).changed, 'a second install changes nothing');

  t.true(hostUninstall({ dir }).changed);
  t.deepEqual(JSON.parse(readFileSync(daemonJson, 'utf8')), user);
  t.false(existsSync(dir));
  t.false(hostUninstall({ dir }).changed, 'nothing left to undo');
});

(built ? test : test.skip)('a daemon.json that is not JSON is reported and left as it was', (t) => {
  const d = tmp(t);
  const daemonJson = join(d, 'daemon.json');
  writeFileSync(daemonJson, '{ "debug": true, }');
  t.throws(() => hostInstall({ dir: join(d, 'lib'), daemonJson, from: DIST }), { message: /not valid JSON.*nothing was changed/ });
  t.is(readFileSync(daemonJson, 'utf8'), '{ "debug": true, }');
  t.false(existsSync(join(d, 'lib')));
});

(built ? test : test.skip)('the swarmnet command: installed once with the executables, never over a file that is not ours, removed by uninstall only if unchanged', (t) => {
  const d = tmp(t);
  const daemonJson = join(d, 'daemon.json');
  const dir = join(d, 'lib');
  const binDir = join(d, 'bin');
  const cli = join(binDir, 'swarmnet');
  writeFileSync(daemonJson, '{}');

  mkdirSync(binDir);
  writeFileSync(cli, '#!/bin/sh\necho someone else\n');
  t.throws(() => hostInstall({ dir, daemonJson, from: DIST, binDir }), { message: /exists and is not swarmnet's command.*nothing was changed/ });
  t.is(readFileSync(cli, 'utf8'), '#!/bin/sh\necho someone else\n');
  t.false(existsSync(dir), 'nothing installed');
  t.is(readFileSync(daemonJson, 'utf8'), '{}');
  rmSync(cli);

  hostInstall({ dir, daemonJson, from: DIST, binDir });
  t.is(readFileSync(cli, 'utf8'), CLI_LAUNCHER);
  t.is(statSync(cli).mode & 0o777, 0o755);
  t.is(JSON.parse(readFileSync(join(dir, 'install.json'), 'utf8')).cli, cli, 'recorded for uninstall');
  const mtime = statSync(cli).mtimeMs;
  hostInstall({ dir, daemonJson, from: DIST, binDir });
  t.is(statSync(cli).mtimeMs, mtime, 'a second install leaves it alone');

  hostUninstall({ dir });
  t.false(existsSync(cli));
  t.true(existsSync(binDir), 'the directory was there before: it stays');
  t.deepEqual(JSON.parse(readFileSync(daemonJson, 'utf8')), {});

  // Changed by someone after install: uninstall leaves it.
  hostInstall({ dir, daemonJson, from: DIST, binDir });
  writeFileSync(cli, '#!/bin/sh\necho edited\n');
  hostUninstall({ dir });
  t.is(readFileSync(cli, 'utf8'), '#!/bin/sh\necho edited\n');
});
