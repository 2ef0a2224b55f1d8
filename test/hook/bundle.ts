// An OCI bundle for the real runc: a busybox rootfs whose process sleeps, from `runc spec` (tests and bench/hook).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const RUNC = '/usr/sbin/runc';

/** dir/rootfs (busybox + sleep) and dir/config.json running `sleep 60` without a terminal. */
export function sleepBundle(dir: string): void {
  mkdirSync(join(dir, 'rootfs', 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'rootfs', 'bin', 'busybox'));
  chmodSync(join(dir, 'rootfs', 'bin', 'busybox'), 0o755);
  symlinkSync('busybox', join(dir, 'rootfs', 'bin', 'sleep'));
  const r = spawnSync(RUNC, ['spec', '--bundle', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`runc spec: ${r.stderr}`);
  const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { process: { args: string[]; terminal: boolean } };
  spec.process.args = ['/bin/sleep', '60'];
  spec.process.terminal = false;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
}
