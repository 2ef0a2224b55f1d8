/**
 * What the runtime wrapper (dist/hook/swarmnet-runtime) adds to runc calls, side by side with runc itself, runs
 * interleaved (A, B, A, B, …) so both see the same machine:
 *   - `--version` and a failing `state` (Docker's non-create calls: start, state, kill, delete, exec, features):
 *     the wrapper parses the arguments and execs runc;
 *   - `create` of a busybox container (then deleted, untimed): the wrapper edits config.json and execs runc, and
 *     runc then runs the hook. No swarmnet plugin runs here, so the hook takes its fail-open path (no socket: one
 *     line to the bundle's log) — a plugin's "not mine" answer adds one unix-socket round trip to that.
 * Run (root): npm run bench -- hook   [iterations: SWARMNET_BENCH_N, default 200 for the quick calls, 50 for create]
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUNC, sleepBundle } from '../../test/hook/bundle.js';

const DIST = join(import.meta.dirname, '..', '..', 'hook');
const N = Number(process.env.SWARMNET_BENCH_N ?? 200);

function timed(cmd: string, args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.error) throw r.error;
  return ms;
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
function report(what: string, runc: number[], wrapped: number[]): void {
  const m = (xs: number[]): string => `median ${pct(xs, 0.5).toFixed(2)} ms, p95 ${pct(xs, 0.95).toFixed(2)} ms`;
  console.log(`${what.padEnd(34)} runc ${m(runc)} | wrapper ${m(wrapped)} | added: median ${(pct(wrapped, 0.5) - pct(runc, 0.5)).toFixed(2)} ms (n=${runc.length})`);
}

function main(): void {
  if (process.getuid?.() !== 0) throw new Error('needs root (runc create)');
  for (const f of [RUNC, '/bin/busybox', join(DIST, 'swarmnet-runtime'), join(DIST, 'swarmnet-hook')]) {
    if (!existsSync(f)) throw new Error(`${f} is missing (npm run build; runc and busybox-static come from scripts/lab/prereqs.mjs)`);
  }
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${readFileSync('/proc/version', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'snbench-hook-'));
  try {
    // Installed layout: the wrapper with the hook beside it.
    for (const f of ['swarmnet-runtime', 'swarmnet-hook']) {
      copyFileSync(join(DIST, f), join(dir, f));
      chmodSync(join(dir, f), 0o755);
    }
    const wrapper = join(dir, 'swarmnet-runtime');
    const root = join(dir, 'state');
    const quick: [string, string[]][] = [['--version', ['--version']], ['state of a missing container', ['--root', root, 'state', 'nope']]];
    for (const [what, args] of quick) {
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < N; i++) {
        a.push(timed(RUNC, args));
        b.push(timed(wrapper, args));
      }
      report(what, a, b);
    }

    // A fresh bundle for each create (the wrapper edits its config.json), all on one busybox rootfs.
    const base = join(dir, 'base');
    sleepBundle(base);
    const spec = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8')) as { root: { path: string } };
    spec.root.path = join(base, 'rootfs'); // one read-only rootfs for every bundle
    const config = JSON.stringify(spec);
    const create = (cmd: string, k: number): number => {
      const b = join(dir, `b${k}`);
      mkdirSync(b);
      writeFileSync(join(b, 'config.json'), config);
      const id = `snbench-${process.pid}-${k}`;
      const ms = timed(cmd, ['--root', root, '--log', join(b, 'log.json'), '--log-format', 'json', 'create', '--bundle', b, id]);
      if (JSON.parse(spawnSync(RUNC, ['--root', root, 'state', id], { encoding: 'utf8' }).stdout || '{}').status !== 'created') throw new Error(`${cmd}: ${id} not created: ${existsSync(join(b, 'log.json')) ? readFileSync(join(b, 'log.json'), 'utf8') : ''}`);
      spawnSync(RUNC, ['--root', root, 'delete', '-f', id], { stdio: 'ignore' });
      return ms;
    };
    const a: number[] = [];
    const b: number[] = [];
    const creates = Math.max(10, Math.round(N / 4));
    for (let i = 0; i < creates; i++) {
      a.push(create(RUNC, 2 * i));
      b.push(create(wrapper, 2 * i + 1));
    }
    report('create (busybox bundle)', a, b);
  } finally {
    const root = join(dir, 'state');
    const left = spawnSync(RUNC, ['--root', root, 'list', '-q'], { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean) ?? [];
    for (const id of left) spawnSync(RUNC, ['--root', root, 'delete', '-f', id], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
