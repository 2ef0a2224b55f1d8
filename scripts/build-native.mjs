#!/usr/bin/env node
// Compiles the resolver's batched-UDP addon (dns/native/udp_batch.c) into dist/dns/native/udp_batch.node.
// A plain cc call against Node's own headers: one C file needs no node-gyp. The addon is optional, so a machine
// without a compiler or headers gets a warning and the resolver falls back to dgram (same answers, slower).
// Exit code: 0 built or skipped with a warning; 1 the compiler ran and failed (a real defect in the C file).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(REPO, 'dns/native/udp_batch.c');
const OUT = join(REPO, 'dist/dns/native/udp_batch.node');

function headerDir() {
  const dirs = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include/node'),
    join(dirname(dirname(process.execPath)), 'include/node'),
    '/usr/include/node',
    join(homedir(), '.cache/node-gyp', process.versions.node, 'include/node'),
  ].filter(Boolean);
  return dirs.find((d) => existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')));
}

function compiler() {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean)) {
    try { execFileSync(cc, ['--version'], { stdio: 'ignore' }); return cc; } catch { /* next */ }
  }
  return undefined;
}

if (process.platform !== 'linux') {
  console.log('build-native: not Linux, the resolver uses dgram');
  process.exit(0);
}
if (existsSync(OUT) && statSync(OUT).mtimeMs >= statSync(SRC).mtimeMs) process.exit(0);
const include = headerDir();
const cc = compiler();
if (!include || !cc) {
  console.warn(`build-native: WARNING ${!cc ? 'no C compiler (cc)' : "no Node headers (node_api.h, uv.h)"}; the DNS resolver will use dgram (slower). apt-get install -y gcc, or set npm_config_nodedir.`);
  process.exit(0);
}
mkdirSync(dirname(OUT), { recursive: true });
try {
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-shared', '-fPIC', '-fvisibility=hidden', `-I${include}`,
    '-DNODE_GYP_MODULE_NAME=udp_batch', '-o', OUT, SRC], { stdio: 'inherit' });
} catch {
  console.error('build-native: compiling dns/native/udp_batch.c failed');
  process.exit(1);
}
