// The one prerequisite list (scripts/lab/prereqs.mjs) must name every program the code base runs: a program used
// without it passes on a machine that has it from earlier work and fails on a fresh one (issue: etcdctl).
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGES, packagesFor, providerOf } from '../../scripts/lab/prereqs.mjs';
import { programsIn } from './program-scan.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SOURCE_DIRS = ['plugin', 'flannel', 'dns', 'lb', 'hook', 'common', 'scripts', 'test', 'bench', '.ci'];

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|mts|mjs|js|sh)$/.test(p) || p.endsWith('.ci/run')) out.push(p);
  }
  return out;
}

test('every program the sources run comes from the prerequisite list, the machine, Debian essentials or an image', (t) => {
  const unlisted: string[] = [];
  let files = 0;
  const seen = new Set<string>();
  for (const d of SOURCE_DIRS) {
    for (const f of sources(join(ROOT, d))) {
      if (f.includes('/test/tooling/')) continue; // the scanner's own examples
      files++;
      const text = readFileSync(f, 'utf8');
      for (const prog of programsIn(text, f.endsWith('.sh') || f.endsWith('.ci/run') || text.startsWith('#!/bin/sh'))) {
        seen.add(prog);
        if (!providerOf(prog)) unlisted.push(`${prog} (${f.slice(ROOT.length + 1)})`);
      }
    }
  }
  t.true(files > 50, `scanned ${files} files`);
  // The scan must see the programs we know are run, or it proves nothing.
  for (const known of ['ip', 'nft', 'etcd', 'etcdctl', 'dockerd', 'nsenter', 'dig', 'dnsperf', 'busybox']) t.true(seen.has(known), `scan finds ${known}`);
  t.deepEqual(unlisted, [], 'add each to PACKAGES in scripts/lab/prereqs.mjs (or to BASE_SYSTEM if every machine has it)');
});

test('the scanner reads the shapes the code base runs programs with', (t) => {
  const cases: [string, string[]][] = [
    ["execFileSync('/usr/bin/etcdctl', [`--endpoints=${e}`])", ['etcdctl']],
    ["await run('ip', ['netns', 'exec', ns, 'dig', '@1.2.3.4'])", ['ip', 'dig']],
    ["sh(from, 'busybox', ['ping'])", ['busybox']],
    ["await runIn(this.opts.netns, 'conntrack', args, { allowFailure: true })", ['conntrack']],
    ["const perf = ['dnsperf', '-s', '127.0.0.11']", ['dnsperf']],
    ["return ['nsenter', ['--target', pid, '--', cmd]]", ['nsenter']],
    ["spawn('unshare', ['-m', 'nsenter', '--net=x', '--', 'conntrack', '-L'])", ['unshare', 'conntrack']],
    ["docker(node, ['run', '-d', 'img'])", []],
    ["spawn('npm', ['run', 'sandbox', '--', 'up'])", ['npm']],
    ['// run(\'commented-out\', [])', []],
  ];
  for (const [code, want] of cases) t.deepEqual(programsIn(code).sort(), [...want].sort(), code);
  t.deepEqual(programsIn('set -eu\nmount -t tmpfs x /y  # why\nexec dockerd --data-root "$d"\n[ -n "$x" ] && printf x | tail -1\n', true).sort(),
    ['dockerd', 'mount', 'printf', 'tail']);
});

test('a program nobody provides is reported; every listed package says who needs it', (t) => {
  t.is(providerOf('etcdctl'), 'etcd-client');
  t.is(providerOf('no-such-tool'), undefined);
  for (const [pkg, p] of Object.entries(PACKAGES)) {
    t.true(p.bins.length > 0 && p.for.length > 0 && p.why.length > 0, pkg);
  }
  // npm test runs the end-to-end suite, so it installs everything the sandbox does.
  for (const pkg of packagesFor('sandbox')) t.true(packagesFor('tests').includes(pkg), pkg);
});
