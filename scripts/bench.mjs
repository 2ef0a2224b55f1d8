#!/usr/bin/env node
// `npm run bench [-- <name>...]`: builds, then runs the side-by-side benchmarks (bench/<name>/run.ts compiled to
// dist/bench/<name>/run.js). Results go to stdout; docs/performance.md records them with machine and command.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePackages } from './lab/prereqs.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const all = existsSync('bench') ? readdirSync('bench').filter((d) => existsSync(join('bench', d, 'run.ts'))).sort() : [];
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(', ')}; available: ${all.join(', ')}`);
  process.exit(2);
}
// The tools the benchmarks run, from the one prerequisite list (root only; otherwise each bench names what is missing).
if (process.getuid?.() === 0) await ensurePackages((m) => console.log(`=== ${m}`), 'bench');
if (!existsSync('node_modules/.package-lock.json')) spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
const build = spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  console.log(`\n=== bench ${name}`);
  const r = spawnSync(process.execPath, [join('dist', 'bench', name, 'run.js')], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
