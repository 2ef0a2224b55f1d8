// The sandbox's base image without a registry: a tar of Debian's busybox-static plus one symlink per applet,
// imported into a node with `docker import` as swarmnet/busybox.
import { copyFileSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { docker } from './dockerd.mjs';
import { run } from '../lib/proc.mjs';

export const IMAGE = 'swarmnet/busybox';
const BUSYBOX = '/bin/busybox';

/** Builds <dir>/busybox.tar (once per dir) and returns its path. */
export async function buildBusyboxTar(dir) {
  const tar = join(dir, 'busybox.tar');
  if (existsSync(tar)) return tar;
  const root = join(dir, 'busybox-rootfs');
  rmSync(root, { recursive: true, force: true });
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'tmp', 'root', 'www']) mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  const { stdout } = await run(BUSYBOX, ['--list-full']);
  for (const rel of stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    if (rel === 'bin/busybox' || existsSync(join(root, rel))) continue;
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    symlinkSync('/bin/busybox', join(root, rel));
  }
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await run('tar', ['-C', root, '-cf', `${tar}.tmp`, '.']);
  await run('mv', [`${tar}.tmp`, tar]);
  rmSync(root, { recursive: true, force: true });
  return tar;
}

/** Imports the tar into a node's dockerd as swarmnet/busybox (default command: sh). */
export async function importBusybox(node, tar) {
  await docker(node, ['import', '--change', 'CMD ["sh"]', tar, `${IMAGE}:latest`]);
}
