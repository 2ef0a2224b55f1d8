import test from 'ava';
import { ESLint } from 'eslint';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * No shell command strings: `npm run lint` fails on them through the rule local/no-shell-strings
 * (scripts/lint/no-shell-strings.mjs, enabled in eslint.config.js). Each forbidden form is linted as a snippet through
 * the repo's own config and must be reported; the allowed forms must not be, so the rule cannot silently stop
 * working or start flagging argument arrays. The C sources are grepped for system()/popen()/exec of a shell.
 */

const ROOT = new URL('../../', import.meta.url).pathname;
const RULE = 'local/no-shell-strings';
// The repo's config; snippets are in no tsconfig project, so .ts is parsed without type information and the one
// type-aware rule is off for them (only this rule's findings are looked at).
const eslint = new ESLint({
  cwd: ROOT,
  overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parserOptions: { project: null } }, rules: { '@typescript-eslint/no-floating-promises': 'off' } }],
});

/** Where snippets are placed: product, tests, scripts, bench; ESM in every extension, CommonJS where it can be. */
const ESM_PATHS = ['plugin/snippet.ts', 'test/snippet.ts', 'bench/snippet.ts', 'scripts/snippet.mjs', 'scripts/lab/snippet.mjs', 'test/lb/snippet.js'];
const CJS_PATHS = ['scripts/snippet.cjs'];

async function findings(code: string, filePath: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(ROOT, filePath) });
  const fatal = r!.messages.filter((m) => m.fatal);
  if (fatal.length) throw new Error(`${filePath}: does not parse: ${fatal[0]!.message}\n${code}`);
  return r!.messages.filter((m) => m.ruleId === RULE).map((m) => m.messageId ?? m.message);
}

/** [what, code, messageId]: each must be reported. */
const FORBIDDEN: [string, string, string][] = [
  ['named exec', "import { exec } from 'node:child_process';\nexec('ls ' + process.argv[2]);", 'shellApi'],
  ['named execSync, bare module name', "import { execSync } from 'child_process';\nexecSync('ls');", 'shellApi'],
  ['aliased exec', "import { exec as run } from 'node:child_process';\nrun('ls');", 'shellApi'],
  ['namespace member', "import * as cp from 'node:child_process';\ncp.exec('ls');", 'shellApi'],
  ['default member', "import cp from 'node:child_process';\ncp.execSync('ls');", 'shellApi'],
  ['computed member', "import cp from 'node:child_process';\ncp['exec']('ls');", 'shellApi'],
  ['dynamic import binding', "const cp = await import('node:child_process');\ncp.exec('ls');", 'shellApi'],
  ['dynamic import member', "(await import('node:child_process')).execSync('ls');", 'shellApi'],
  ['destructured from a namespace', "import * as cp from 'node:child_process';\nconst { execSync } = cp;\nexecSync('ls');", 'shellApi'],
  ['spawn shell: true', "import { spawn } from 'node:child_process';\nspawn('ls', ['-l'], { shell: true });", 'shellOption'],
  ['spawnSync shell path', "import { spawnSync } from 'node:child_process';\nspawnSync('ls', [], { shell: '/bin/bash' });", 'shellOption'],
  ['execFile shell variable', "import { execFile } from 'node:child_process';\nconst useShell = process.argv.length > 3;\nexecFile('ls', [], { shell: useShell }, () => {});", 'shellOption'],
  ['options built beforehand', "import { execFileSync } from 'node:child_process';\nconst opts = { stdio: 'inherit', shell: true };\nexecFileSync('ls', [], opts);", 'shellOption'],
  ['fork shell', "import { fork } from 'node:child_process';\nfork('x.js', [], { 'shell': 1 });", 'shellOption'],
  ['namespace spawn shell', "import * as cp from 'node:child_process';\ncp.spawn('ls', [], { shell: true });", 'shellOption'],
  ['sh -c', "import { spawn } from 'node:child_process';\nspawn('sh', ['-c', 'ls ' + process.argv[2]]);", 'shellC'],
  ['/bin/bash -c', "import { spawnSync } from 'node:child_process';\nspawnSync('/bin/bash', ['-c', 'ls']);", 'shellC'],
  ['bash -ec', "import { execFileSync } from 'node:child_process';\nexecFileSync('bash', ['-ec', 'ls']);", 'shellC'],
  ['template program', "import { execFile } from 'node:child_process';\nexecFile(`dash`, [`-c`, 'ls'], () => {});", 'shellC'],
  ['behind ip netns exec', "import { spawn } from 'node:child_process';\nspawn('ip', ['netns', 'exec', 'ns1', 'sh', '-c', 'ls']);", 'shellC'],
  ['behind env', "import { spawnSync } from 'node:child_process';\nspawnSync('env', ['A=1', '/usr/bin/zsh', '-c', 'ls']);", 'shellC'],
  ['namespace spawn sh -c', "import cp from 'node:child_process';\ncp.spawnSync('sh', ['-c', 'ls']);", 'shellC'],
  ['promisified execFile', "import { execFile } from 'node:child_process';\nimport { promisify } from 'node:util';\nconst run = promisify(execFile);\nawait run('sh', ['-c', 'ls']);", 'shellC'],
  ['common/exec run', "import { run } from '../common/exec.js';\nawait run('sh', ['-c', 'ls']);", 'shellC'],
  ['common/exec runIn', "import { runIn } from '../common/exec.js';\nawait runIn('ns1', 'bash', ['-c', 'ls']);", 'shellC'],
  ['scripts/lib/proc run', "import { run } from '../scripts/lib/proc.mjs';\nawait run('sh', ['-c', 'ls']);", 'shellC'],
];
const FORBIDDEN_CJS: [string, string, string][] = [
  ['require destructuring', "const { exec } = require('child_process');\nexec('ls');", 'shellApi'],
  ['require member', "require('node:child_process').execSync('ls');", 'shellApi'],
  ['require binding + sh -c', "const cp = require('child_process');\ncp.spawn('sh', ['-c', 'ls']);", 'shellC'],
];
/** Argument arrays and look-alikes: none may be reported. */
const ALLOWED: [string, string][] = [
  ['argument array', "import { spawn } from 'node:child_process';\nspawn('ip', ['link', 'show', process.argv[2] ?? 'lo']);"],
  ['shell: false', "import { spawn } from 'node:child_process';\nspawn('ls', [], { shell: false, stdio: 'inherit' });"],
  ['execFile and execFileSync', "import { execFile, execFileSync } from 'node:child_process';\nexecFile('ls', ['-l'], () => {});\nexecFileSync(process.execPath, ['-e', 'console.log(1)']);"],
  ['a script file or a login shell', "import { spawn } from 'node:child_process';\nspawn('bash', ['.ci/run']);\nspawn('bash', ['-l']);"],
  ['-c of another program', "import { spawnSync } from 'node:child_process';\nspawnSync('ping', ['-c', '1', '10.0.0.1']);\nspawnSync('ip', ['netns', 'exec', 'ns1', 'ping', '-c', '1', '10.0.0.1']);"],
  ['spawn named exec', "import { spawn as exec } from 'node:child_process';\nexec('ls', []);"],
  ['a container command (not a host process)', "const docker = (...a) => a;\ndocker('node1', ['exec', 'id', 'sh', '-c', 'nc \"$1\"', 'sh', '10.0.0.1']);"],
  ['a shell key where no program runs', "export const prefs = { shell: '/bin/zsh' };"],
  ['regexp and etcd exec', "const m = /a(b)/.exec('ab');\nconst q = { exec: async () => m };\nawait q.exec();"],
  ['a local function named exec', "const exec = (s) => s.length;\nexec('ls');"],
  ['common/exec run with an array', "import { run, runIn } from '../common/exec.js';\nawait run('nft', ['list', 'ruleset']);\nawait runIn('ns1', 'ip', ['link']);"],
];

test('every forbidden form is reported, in .ts, .mjs and .js across product, tests, scripts and bench', async (t) => {
  let checked = 0;
  for (const path of ESM_PATHS) {
    for (const [what, code, id] of FORBIDDEN) {
      t.deepEqual(await findings(code, path), [id], `${what} in ${path}`);
      checked++;
    }
  }
  for (const path of [...CJS_PATHS, 'test/lb/snippet.cjs']) {
    for (const [what, code, id] of FORBIDDEN_CJS) {
      t.deepEqual(await findings(code, path), [id], `${what} in ${path}`);
      checked++;
    }
  }
  t.log(`${checked} forbidden snippets reported (${FORBIDDEN.length + FORBIDDEN_CJS.length} forms)`);
});

test('the allowed forms are not reported', async (t) => {
  let checked = 0;
  for (const path of ESM_PATHS) {
    for (const [what, code] of ALLOWED) {
      t.deepEqual(await findings(code, path), [], `${what} in ${path}`);
      checked++;
    }
  }
  t.log(`${checked} allowed snippets clean (${ALLOWED.length} forms)`);
});

test('the rule is on, as an error, for every kind of file the repo lints', async (t) => {
  const files = ['plugin/daemon.ts', 'common/exec.ts', 'dns/table.ts', 'test/helpers/etcd.ts', 'bench/lb/run.ts', 'scripts/sandbox.mjs',
    'scripts/lab/dockerd.mjs', 'test/lb/probe.mjs', 'eslint.config.js', 'scripts/lint/no-shell-strings.mjs'];
  for (const f of files) {
    t.false(await eslint.isPathIgnored(join(ROOT, f)), f);
    const config = await eslint.calculateConfigForFile(join(ROOT, f)) as { rules?: Record<string, unknown[]> };
    t.deepEqual(config.rules?.[RULE], [2], f);
  }
});

test('the C sources run no shell: no system(), popen() or exec of sh', (t) => {
  const dirs = ['hook/native', 'dns/native'];
  const files = dirs.flatMap((d) => readdirSync(join(ROOT, d)).filter((f) => /\.[ch]$/.test(f)).map((f) => join(d, f)));
  t.true(files.some((f) => f.endsWith('hook.c')) && files.some((f) => f.endsWith('udp_batch.c')), `C sources found: ${files.join(', ')}`);
  const forbidden = /\b(?:system|popen|wordexp)\s*\(|\bexec[lv]p?e?\s*\(\s*"(?:\/bin\/)?(?:ba|da)?sh"|"-c"/;
  for (const f of files) {
    // Comments may mention anything; only code counts.
    const code = readFileSync(join(ROOT, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    const hits = code.split('\n').filter((l) => forbidden.test(l));
    t.deepEqual(hits, [], f);
  }
});
