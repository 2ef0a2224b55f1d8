// The runtime wrapper (hook/native/runtime-wrapper.c, built to dist/hook/swarmnet-runtime): the hook goes into
// config.json byte-exactly, every argument reaches runc unchanged, and nothing it cannot handle fails a container.
// A stand-in runc records what it was given; the real runc checks the pass-through and a real create with the hook.
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUNC, SETKEY_PRESTART, sleepBundle } from './bundle.js';
import { execMany } from '../fuzz/exec-bytes.js';
import { fuzzSeed, Rng } from '../fuzz/gen.js';

const WRAPPER = join(import.meta.dirname, '..', '..', 'dist', 'hook', 'swarmnet-runtime');
const built = existsSync(WRAPPER);
const wrapperTest = built ? test : test.skip;
const realRuncTest = built && existsSync(RUNC) && process.getuid?.() === 0 && existsSync('/bin/busybox') ? test.serial : test.serial.skip;
const HOOK_ARGS = '"args":["swarmnet-hook","createContainer"],"timeout":10}';

interface Lab { dir: string; wrapper: string; hook: string; runcOut: string; env: NodeJS.ProcessEnv }

/** The wrapper copied into a fresh directory beside a `swarmnet-hook`, and a stand-in runc recording its argv. */
function lab(t: ExecutionContext, withHook = true): Lab {
  const dir = mkdtempSync(join(tmpdir(), 'snrt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const wrapper = join(dir, 'swarmnet-runtime');
  copyFileSync(WRAPPER, wrapper);
  chmodSync(wrapper, 0o755);
  const hook = join(dir, 'swarmnet-hook');
  if (withHook) {
    writeFileSync(hook, '#!/bin/sh\nexit 0\n');
    chmodSync(hook, 0o755);
  }
  const runcOut = join(dir, 'runc-argv');
  const fake = join(dir, 'fake-runc');
  // Records argv NUL-separated; exits with FAKE_EXIT. Writes nothing to stdout, so any stdout is the wrapper's.
  writeFileSync(fake, `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done > "${runcOut}"\nexit "\${FAKE_EXIT:-0}"\n`);
  chmodSync(fake, 0o755);
  // SWARMNET_HOOK_ALWAYS: the shapes below are about the edit, not about which engine made the bundle.
  return { dir, wrapper, hook, runcOut, env: { PATH: process.env.PATH, SWARMNET_RUNC: fake, SWARMNET_HOOK_ALWAYS: '1' } };
}

function wrap(l: Lab, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string; argv: string[] } {
  rmSync(l.runcOut, { force: true });
  const r = spawnSync(l.wrapper, args, { env: { ...l.env, ...env }, encoding: 'utf8', cwd: l.dir });
  const argv = existsSync(l.runcOut) ? readFileSync(l.runcOut, 'utf8').split('\0').slice(0, -1) : ['(runc not run)'];
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, argv };
}

function bundle(l: Lab, config: string | Buffer | undefined, name = 'b'): string {
  const b = join(l.dir, name);
  mkdirSync(b, { recursive: true });
  if (config !== undefined) writeFileSync(join(b, 'config.json'), config);
  return b;
}

const entry = (l: Lab): string => `{"path":${JSON.stringify(l.hook)},${HOOK_ARGS}`;
const createArgs = (l: Lab, b: string): string[] => ['--root', join(l.dir, 'state'), '--log', join(l.dir, 'log.json'), '--log-format', 'json', 'create', '--bundle', b, '--pid-file', join(b, 'pid'), 'c1'];

wrapperTest('create: the hook goes only into bundles of engines that set the network up in a prestart hook (Docker < 26)', (t) => {
  const l = lab(t);
  const env = { SWARMNET_HOOK_ALWAYS: '' };
  const setkey = JSON.stringify(SETKEY_PRESTART);
  const cases: [string, string, boolean][] = [
    ['Docker 28: no prestart hook, network namespace without a path', '{"linux":{"namespaces":[{"type":"network"}]}}', false],
    ['another prestart hook only', '{"hooks":{"prestart":[{"path":"/opt/nvidia/hook"}]}}', false],
    ['"libnetwork-setkey" elsewhere only', '{"annotations":{"x":"libnetwork-setkey"},"hooks":{"poststart":[{"path":"/x","args":["libnetwork-setkey"]}]}}', false],
    ['Docker 20.10: libnetwork-setkey prestart', `{"hooks":{"prestart":[${setkey}]}}`, true],
    ['Docker 20.10 with another prestart hook first', `{"hooks":{"prestart":[{"path":"/gpu"},${setkey}]}}`, true],
  ];
  for (const [what, config, inserted] of cases) {
    const b = bundle(l, config, what.replace(/\W/g, '_'));
    const r = wrap(l, createArgs(l, b), env);
    t.is(readFileSync(join(b, 'config.json'), 'utf8').includes(HOOK_ARGS), inserted, what);
    t.deepEqual(r.argv, createArgs(l, b), `${what}: runc gets the arguments unchanged`);
    t.false(existsSync(join(l.dir, 'log.json')), `${what}: nothing to warn about`);
  }
  // SWARMNET_HOOK_ALWAYS=1 adds it to any bundle.
  const b = bundle(l, '{}', 'always');
  wrap(l, createArgs(l, b), { SWARMNET_HOOK_ALWAYS: '1' });
  t.true(readFileSync(join(b, 'config.json'), 'utf8').includes(HOOK_ARGS));
});

wrapperTest('create: the hook is inserted byte-exactly in every shape of hooks; everything else, big integers included, is kept', (t) => {
  const l = lab(t);
  const E = entry(l);
  const big = '"uid": 18446744073709551615, "f": 1.5e+300, "neg": -0.0, "u": "\\u00e9\\"x", "weird": {"hooks": {"createContainer": 1}}';
  const cases: [string, string, string][] = [
    ['no hooks', `{ ${big} }`, `{"hooks":{"createContainer":[${E}]}, ${big} }`],
    ['empty object', '{}', `{"hooks":{"createContainer":[${E}]}}`],
    ['hooks null', `{"hooks": null, ${big}}`, `{"hooks": {"createContainer":[${E}]}, ${big}}`],
    ['hooks {}', `{${big},\n  "hooks": { }\n}`, `{${big},\n  "hooks": {"createContainer":[${E}] }\n}`],
    ['other hooks', `{"hooks":{"prestart":[{"path":"/x"}]}}`, `{"hooks":{"createContainer":[${E}],"prestart":[{"path":"/x"}]}}`],
    ['createContainer null', '{"hooks":{"createContainer":null}}', `{"hooks":{"createContainer":[${E}]}}`],
    ['createContainer []', '{"hooks":{"createContainer":[ ]}}', `{"hooks":{"createContainer":[ ${E}]}}`],
    ['createContainer [other]', '{"hooks":{"createContainer":[{"path":"/gpu"}]}}', `{"hooks":{"createContainer":[{"path":"/gpu"},${E}]}}`],
  ];
  for (const [what, before, after] of cases) {
    const b = bundle(l, before, what.replace(/\W/g, '_'));
    const r = wrap(l, createArgs(l, b), { FAKE_EXIT: '0' });
    t.is(readFileSync(join(b, 'config.json'), 'utf8'), after, what);
    t.deepEqual(r.argv, createArgs(l, b), `${what}: runc gets the arguments unchanged`);
    t.is(r.stdout, '', what);
    t.deepEqual(readdirSync(b), ['config.json'], `${what}: no temporary file left`);
    // Applying again (a retried create) adds nothing.
    wrap(l, createArgs(l, b));
    t.is(readFileSync(join(b, 'config.json'), 'utf8'), after, `${what}: idempotent`);
  }
  t.false(existsSync(join(l.dir, 'log.json')), 'no warning for configs it understands');
});

wrapperTest('create: bundle given as -b, --bundle=, -b=, or the current directory (runc\'s default)', (t) => {
  const l = lab(t);
  const forms: [string[], string][] = [
    [['create', '-b', 'x1', 'c'], 'x1'], [['create', '--bundle=x2', 'c'], 'x2'], [['--debug', 'create', '-b=x3', '--no-pivot', 'c'], 'x3'],
    [['--root=/r', 'create', '--console-socket', '/s', '--bundle', 'x4', 'c'], 'x4'],
  ];
  for (const [args, name] of forms) {
    const b = bundle(l, '{}', name);
    t.deepEqual(wrap(l, args).argv, args);
    t.true(readFileSync(join(b, 'config.json'), 'utf8').includes(l.hook), args.join(' '));
  }
  writeFileSync(join(l.dir, 'config.json'), '{}');
  t.deepEqual(wrap(l, ['create', 'c']).argv, ['create', 'c']);
  t.true(readFileSync(join(l.dir, 'config.json'), 'utf8').includes(l.hook), 'no --bundle: the current directory');
  // Only `create` edits: start, run, exec… with a bundle option leave it alone.
  const b = bundle(l, '{}', 'other');
  for (const cmd of ['run', 'start', 'exec', 'state', 'delete', 'kill', 'features']) wrap(l, [cmd, '--bundle', b, 'c']);
  t.is(readFileSync(join(b, 'config.json'), 'utf8'), '{}');
});

wrapperTest('broken bundles: the file is left as it was, one warning in runc\'s log, runc still runs with the same arguments and its exit code', (t) => {
  const l = lab(t);
  const cases: [string, string | Buffer | undefined, RegExp][] = [
    ['truncated', '{"ociVersion": "1.0.2", "hooks": {', /malformed JSON/],
    ['trailing garbage', '{} {}', /malformed JSON/],
    ['top-level array', '[1, 2]', /not a JSON object/],
    ['hooks is an array', '{"hooks": []}', /"hooks" is not an object/],
    ['createContainer is an object', '{"hooks": {"createContainer": {}}}', /is not an array/],
    ['bad escape', '{"a": "\\x"}', /malformed JSON/],
    ['control character in a string', '{"a": "\u0001"}', /malformed JSON/],
    ['bad number', '{"a": 01}', /malformed JSON/],
    ['deep nesting', `{"a": ${'['.repeat(5000)}${']'.repeat(5000)}}`, /malformed JSON/],
    ['binary', randomBytes(4096), /malformed JSON|not a JSON object/],
    ['empty file', '', /not a JSON object/],
    ['no config.json', undefined, /cannot read .*config\.json: No such file/],
  ];
  for (const [what, config, why] of cases) {
    const b = bundle(l, config, what.replace(/\W/g, '_'));
    rmSync(join(l.dir, 'log.json'), { force: true });
    const r = wrap(l, createArgs(l, b), { FAKE_EXIT: '7' });
    t.is(r.status, 7, `${what}: runc's exit code`);
    t.deepEqual(r.argv, createArgs(l, b), what);
    t.is(r.stdout, '', what);
    if (config !== undefined) t.true(readFileSync(join(b, 'config.json')).equals(Buffer.from(config)), `${what}: unchanged`);
    const lines = readFileSync(join(l.dir, 'log.json'), 'utf8').trim().split('\n');
    t.is(lines.length, 1, what);
    const line = JSON.parse(lines[0]!) as { level: string; msg: string; time: string };
    t.is(line.level, 'warning');
    t.regex(line.msg, /^swarmnet-runtime: /);
    t.regex(line.msg, why, what);
    t.regex(line.msg, /without the DNS hook/);
  }
  // A bundle that is a file, not a directory; a text log format (runc's default).
  const r = wrap(l, ['--log', join(l.dir, 'log.txt'), 'create', '--bundle', l.wrapper, 'c']);
  t.deepEqual(r.argv, ['--log', join(l.dir, 'log.txt'), 'create', '--bundle', l.wrapper, 'c']);
  t.regex(readFileSync(join(l.dir, 'log.txt'), 'utf8'), /^time="[^"]+" level=warning msg="swarmnet-runtime: cannot read .*: Not a directory; container created without the DNS hook"\n$/);
});

wrapperTest('no swarmnet-hook beside the wrapper: the config is not touched (runc would fail on a missing hook), a warning says so', (t) => {
  const l = lab(t, false);
  const b = bundle(l, '{}');
  const r = wrap(l, createArgs(l, b));
  t.is(r.status, 0);
  t.is(readFileSync(join(b, 'config.json'), 'utf8'), '{}');
  t.regex(readFileSync(join(l.dir, 'log.json'), 'utf8'), /no executable .*swarmnet-hook/);
});

/** A stand-in runc in C (a shell one costs more than the wrapper): argv NUL-separated to $FAKE_RECORD, exit $FAKE_EXIT. */
const RECORDER = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  const char *path = getenv("FAKE_RECORD"), *code = getenv("FAKE_EXIT");
  FILE *f = path ? fopen(path, "wb") : NULL;
  for (int i = 1; f && i < argc; i++) fwrite(argv[i], 1, strlen(argv[i]) + 1, f);
  if (f) fclose(f);
  return code ? atoi(code) : 0;
}
`;
const CASES = 4000;
const DRIVERS = 3;

/**
 * Argument lists a runtime wrapper can trip on: runc's own options and commands in any order (create where a value
 * goes, after "--", twice), every bundle option form pointing at good, broken, missing, over-long and non-UTF-8
 * bundles, empty and very long arguments, and raw bytes. Never a NUL (argv cannot hold one) and never a new "/" in
 * random bytes (a bundle the wrapper may edit stays inside the lab).
 */
function argvCase(r: Rng, words: Buffer[], bundles: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (let n = r.size(14); n > 0; n--) {
    switch (r.int(10)) {
      case 0: { const b = r.bytes(r.range(1, 24)); for (let i = 0; i < b.length; i++) if (b[i] === 0 || b[i] === 0x2f) b[i] = 0x41; out.push(b); break; }
      case 1: out.push(r.pick(bundles)); break;
      case 2: { const b = r.pick(bundles); out.push(Buffer.concat([Buffer.from(r.pick(['--bundle=', '-b=', '-bundle=', '--bundle=='])), b])); break; }
      case 3: out.push(Buffer.from(r.chance(0.5) ? '' : 'x'.repeat(r.range(4000, 130_000)))); break;
      case 4: out.push(Buffer.from('create')); break;
      default: out.push(r.pick(words));
    }
  }
  return out;
}

wrapperTest('random arguments: runc always runs with exactly the arguments it was given, its exit code comes back, nothing on stdout', async (t) => {
  const l = lab(t);
  const recorder = join(l.dir, 'fake-runc-c');
  writeFileSync(`${recorder}.c`, RECORDER);
  execFileSync('cc', ['-O2', '-o', recorder, `${recorder}.c`]);
  // Bundles: Docker-shaped and odd-but-valid ones (edited), broken ones (left byte for byte).
  const dir = (name: string | Buffer): Buffer => Buffer.concat([Buffer.from(`${l.dir}/`), Buffer.from(name)]);
  const good: [Buffer, string][] = [
    [dir('g-docker'), JSON.stringify({ ociVersion: '1.0.2', hooks: { prestart: [SETKEY_PRESTART] }, process: { args: ['sh'] } })],
    [dir('g-empty'), '{}'], [dir('g-hooks'), '{"hooks":{"createContainer":null}}'], [dir(Buffer.from([0x67, 0xff, 0xfe, 0x20, 0x0a])), '{ "big": 18446744073709551615 }'],
  ];
  const broken: [Buffer, string | Buffer | undefined][] = [
    [dir('b-truncated'), '{"hooks": {'], [dir('b-array'), '[]'], [dir('b-hooks-array'), '{"hooks": []}'], [dir('b-deep'), `{"a":${'['.repeat(3000)}${']'.repeat(3000)}}`],
    [dir('b-binary'), randomBytes(2048)], [dir('b-empty'), ''], [dir('b-none'), undefined], [dir('b-escape'), '{"a":"\\x"}'],
  ];
  for (const [b, config] of [...good, ...broken]) {
    mkdirSync(b, { recursive: true });
    if (config !== undefined) writeFileSync(Buffer.concat([b, Buffer.from('/config.json')]), config);
  }
  const loop = dir('b-loop');
  mkdirSync(loop);
  symlinkSync('config.json', join(loop.toString(), 'config.json')); // ELOOP
  const cwd = join(l.dir, 'cwd', 'here'); // runc's default bundle; ".." stays inside the lab
  mkdirSync(cwd, { recursive: true });
  writeFileSync(join(cwd, 'config.json'), '{}');
  const bundles = [...good.map(([b]) => b), ...broken.map(([b]) => b), loop, Buffer.from(l.wrapper), Buffer.from('.'), Buffer.from('..'), Buffer.from(''),
    Buffer.from('/nonexistent-swarmnet-fuzz'), dir('d'.repeat(5000)), dir(Buffer.from([0xc3, 0x28]))];
  const words = ['create', 'run', 'start', 'state', 'kill', 'delete', 'exec', 'features', 'spec', '--version', '-v', 'help', 'Create', 'create ',
    '--bundle', '-b', '--bundle=', '-b=', '-bundle', '---bundle', '--root', '--root=/nonexistent-swarmnet-fuzz', '--log', `--log=${l.dir}/fuzz.log`,
    '--log-format', '--log-format=json', 'json', 'text', '--debug', '--systemd-cgroup', '--criu', '--rootless', 'true', '--', '-', '=', '--=', '-=',
    ' ', '\n', 'é', '--pid-file', '--console-socket', '--no-pivot', 'c1', '\u00ff'].map((w) => Buffer.from(w));

  const seed = fuzzSeed();
  t.log(`seed ${seed} (FUZZ_SEED=${seed} replays these cases)`);
  const r = new Rng(seed);
  const cases = Array.from({ length: CASES }, () => ({ argv: argvCase(r, words, bundles), exit: r.int(256) }));
  const before = new Map(broken.filter(([, c]) => c !== undefined).map(([b]) => [b.toString('hex'), readFileSync(Buffer.concat([b, Buffer.from('/config.json')]))]));
  const started = Date.now();
  const results = await execMany(l.wrapper, cwd, cases.map((c, i) => ({ argv: c.argv, env: { FAKE_EXIT: String(c.exit), FAKE_RECORD: join(l.dir, `record-${i % DRIVERS}`) }, record: join(l.dir, `record-${i % DRIVERS}`) })),
    { drivers: DRIVERS, timeoutS: 60, env: { PATH: process.env.PATH, SWARMNET_RUNC: recorder, SWARMNET_HOOK_ALWAYS: '1' } });
  const seconds = (Date.now() - started) / 1000;
  const failures: string[] = [];
  results.forEach((res, i) => {
    const c = cases[i]!;
    const shown = JSON.stringify(c.argv.map((a) => (a.length > 60 ? `${a.subarray(0, 60).toString('latin1')}…(${a.length})` : a.toString('latin1'))));
    if (res.hung || res.argv === null) failures.push(`#${i} ${shown}: runc did not run (exit ${res.code}${res.hung ? ', hung' : ''})`);
    else if (Buffer.concat(res.argv.map((a) => Buffer.concat([a, Buffer.from([0])]))).compare(Buffer.concat(c.argv.map((a) => Buffer.concat([a, Buffer.from([0])])))) !== 0) failures.push(`#${i} ${shown}: runc got other arguments`);
    else if (res.code !== c.exit) failures.push(`#${i} ${shown}: exit ${res.code}, runc's was ${c.exit}`);
    else if (res.stdout.length) failures.push(`#${i} ${shown}: wrote on stdout`);
  });
  t.log(`${cases.length} argument lists in ${seconds.toFixed(1)} s (${DRIVERS} drivers); ${cases.filter((c) => c.argv.some((a) => a.toString() === 'create')).length} with a "create"`);
  t.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} failures`);
  t.is(results.length, CASES);
  // Broken bundles are left byte for byte; the others hold valid JSON with at most one hook of ours.
  for (const [hex, bytes] of before) t.true(readFileSync(Buffer.concat([Buffer.from(hex, 'hex'), Buffer.from('/config.json')])).equals(bytes), Buffer.from(hex, 'hex').toString('latin1'));
  for (const [b] of good) {
    const after = readFileSync(Buffer.concat([b, Buffer.from('/config.json')]), 'utf8');
    t.notThrows(() => JSON.parse(after));
    t.true(after.split(l.hook).length <= 2, b.toString('latin1'));
  }
});

realRuncTest('real runc: --version, features and a failing state pass through unchanged', (t) => {
  const l = lab(t);
  const env = { PATH: process.env.PATH };
  for (const args of [['--version'], ['features'], ['--root', join(l.dir, 'state'), 'state', 'no-such-container'], ['no-such-command']]) {
    const direct = spawnSync(RUNC, args, { env, encoding: 'utf8' });
    const wrapped = spawnSync(l.wrapper, args, { env, encoding: 'utf8' });
    t.is(wrapped.status, direct.status, args.join(' '));
    t.is(wrapped.stdout, direct.stdout, args.join(' '));
    t.is(wrapped.stderr.replace(/time="[^"]+"/g, ''), direct.stderr.replace(/time="[^"]+"/g, ''), args.join(' '));
  }
});

realRuncTest('real runc: a container created through the wrapper runs the hook inside its own network namespace', (t) => {
  const l = lab(t);
  const seen = join(l.dir, 'hook-saw');
  // The hook runs in the container's namespaces before its root is pivoted: the host's /tmp is still there.
  writeFileSync(l.hook, `#!/bin/sh\nreadlink /proc/self/ns/net > ${seen}\nexit 0\n`);
  const b = bundle(l, undefined);
  sleepBundle(b);
  const root = join(l.dir, 'state');
  const id = `snrt-${randomBytes(4).toString('hex')}`;
  const env = { PATH: process.env.PATH };
  // The container's process inherits runc's stdio: pipes would stay open for its whole life.
  const log = join(l.dir, 'runc.log');
  const created = spawnSync(l.wrapper, ['--root', root, '--log', log, 'create', '--bundle', b, id], { env, stdio: 'ignore' });
  t.teardown(() => { spawnSync(RUNC, ['--root', root, 'delete', '-f', id]); });
  t.is(created.status, 0, existsSync(log) ? readFileSync(log, 'utf8') : '');
  const state = JSON.parse(spawnSync(l.wrapper, ['--root', root, 'state', id], { env, encoding: 'utf8' }).stdout) as { status: string; pid: number };
  t.is(state.status, 'created');
  t.is(readFileSync(seen, 'utf8').trim(), spawnSync('readlink', [`/proc/${state.pid}/ns/net`], { encoding: 'utf8' }).stdout.trim(), 'the hook ran in the container netns');
  t.not(readFileSync(seen, 'utf8').trim(), spawnSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).stdout.trim());
  t.is(spawnSync(l.wrapper, ['--root', root, 'delete', '-f', id], { env }).status, 0);
});
