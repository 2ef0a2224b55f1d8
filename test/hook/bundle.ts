// An OCI bundle for the real runc: a busybox rootfs whose process sleeps, from `runc spec` (tests and bench/hook).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const RUNC = '/usr/sbin/runc';

/**
 * Docker 20.10's prestart hook (it moves the interfaces into the namespace and starts Docker's resolver), here
 * running /bin/true with the same arguments: the runtime wrapper adds swarmnet's hook to bundles that have it.
 */
export const SETKEY_PRESTART = { path: '/bin/true', args: ['libnetwork-setkey', '-exec-root=/var/run/docker', 'c0ffee', 'f00d'] };

/** dir/rootfs (busybox + sleep) and dir/config.json running `sleep 60` without a terminal, as Docker 20.10 makes it
 * (with its libnetwork-setkey prestart hook). */
export function sleepBundle(dir: string): void {
  mkdirSync(join(dir, 'rootfs', 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'rootfs', 'bin', 'busybox'));
  chmodSync(join(dir, 'rootfs', 'bin', 'busybox'), 0o755);
  symlinkSync('busybox', join(dir, 'rootfs', 'bin', 'sleep'));
  const r = spawnSync(RUNC, ['spec', '--bundle', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`runc spec: ${r.stderr}`);
  const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { process: { args: string[]; terminal: boolean }; hooks?: object };
  spec.process.args = ['/bin/sleep', '60'];
  spec.process.terminal = false;
  spec.hooks = { prestart: [SETKEY_PRESTART] };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
}
