#!/usr/bin/env node
// Compiles the C parts with a plain cc call (one file each needs no node-gyp):
// - the resolver's batched-UDP addon (dns/native/udp_batch.c → dist/dns/native/udp_batch.node), against Node's own
//   headers. Optional: a machine without a compiler or headers gets a warning and the resolver falls back to dgram
//   (same answers, slower).
// - the runtime wrapper and the createContainer hook (hook/native/{runtime-wrapper,hook}.c → dist/hook/swarmnet-{runtime,hook}),
//   standalone executables (hook/README.md). Without a compiler they are not built, with a warning: nothing installs them yet.
// Exit code: 0 built or skipped with a warning; 1 the compiler ran and failed (a real defect in a C file).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(REPO, 'dns/native/udp_batch.c');
const OUT = join(REPO, 'dist/dns/native/udp_batch.node');
/** The hook's executables (hook/README.md): each from one C file plus the shared headers beside it. */
const HOOK_DIR = join(REPO, 'hook/native');
const EXECUTABLES = [['runtime-wrapper.c', 'swarmnet-runtime'], ['hook.c', 'swarmnet-hook']]
  .map(([src, out]) => ({ src: join(HOOK_DIR, src), out: join(REPO, 'dist/hook', out) }));
const HEADERS = readdirSync(HOOK_DIR).filter((f) => f.endsWith('.h')).map((f) => join(HOOK_DIR, f));
const fresh = (out, ...srcs) => existsSync(out) && srcs.every((src) => statSync(out).mtimeMs >= statSync(src).mtimeMs);

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
const cc = compiler();
let failed = false;
for (const { src, out } of EXECUTABLES) {
  if (fresh(out, src, ...HEADERS)) continue;
  if (!cc) {
    console.warn(`build-native: WARNING no C compiler (cc): ${out} is not built. apt-get install -y gcc.`);
    continue;
  }
  mkdirSync(dirname(out), { recursive: true });
  try {
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-o', out, src], { stdio: 'inherit' });
  } catch {
    console.error(`build-native: compiling ${src} failed`);
    failed = true;
  }
}
if (!fresh(OUT, SRC)) {
  const include = headerDir();
  if (!include || !cc) {
    console.warn(`build-native: WARNING ${!cc ? 'no C compiler (cc)' : "no Node headers (node_api.h, uv.h)"}; the DNS resolver will use dgram (slower). apt-get install -y gcc, or set npm_config_nodedir.`);
  } else {
    mkdirSync(dirname(OUT), { recursive: true });
    try {
      execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-shared', '-fPIC', '-fvisibility=hidden', `-I${include}`,
        '-DNODE_GYP_MODULE_NAME=udp_batch', '-o', OUT, SRC], { stdio: 'inherit' });
    } catch {
      console.error('build-native: compiling dns/native/udp_batch.c failed');
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
