// Debian packages the sandbox needs, installed with apt-get when missing (root only), with one clear message.
import { run } from '../lib/proc.mjs';

/** Package → why the sandbox needs it. */
export const SANDBOX_PACKAGES = {
  'docker.io': 'dockerd, containerd, runc and the docker CLI for every node',
  'etcd-server': 'the etcd that holds swarmnet state',
  iproute2: 'ip: namespaces, bridge, veths',
  nftables: 'nft: the forward guard that keeps the test range on its bridge',
  iptables: 'dockerd programs its rules with it',
  'busybox-static': 'the rootfs of the swarmnet/busybox image',
  'util-linux': 'unshare and nsenter',
  tar: 'packs the image rootfs',
};

async function installed(pkg) {
  const r = await run('dpkg-query', ['-W', '-f=${Status}', pkg], { allowFailure: true });
  return r.code === 0 && r.stdout.includes('install ok installed');
}

/** Installs what is missing; throws with the list and the reason when it cannot. */
export async function ensurePackages(log, packages = SANDBOX_PACKAGES) {
  const missing = [];
  for (const pkg of Object.keys(packages)) if (!(await installed(pkg))) missing.push(pkg);
  if (!missing.length) return [];
  if (process.getuid?.() !== 0) throw new Error(`missing Debian packages: ${missing.join(' ')} — run as root so the sandbox can install them`);
  log(`installing missing Debian packages: ${missing.map((p) => `${p} (${packages[p]})`).join(', ')}`);
  await run('apt-get', ['update', '-qq'], { timeoutMs: 600_000 });
  await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 1_200_000 });
  return missing;
}
