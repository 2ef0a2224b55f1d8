// THE prerequisite list: every program the product, its tests, the sandbox and the benchmarks run, and where it
// comes from. `npm run sandbox`, `npm test` and `npm run bench` install from here (apt-get, root only), and
// test/tooling/prerequisites.test.ts fails when the sources start running a program this file does not account for.
import { run } from '../lib/proc.mjs';

/**
 * Debian packages installed when missing. `bins`: the programs we run from it. `for`: who needs it — 'sandbox'
 * (`npm run sandbox -- up`, and so the end-to-end suite), 'tests' (unit + integration), 'bench' (`npm run bench`),
 * 'fresh-root' (scripts/fresh-root.mjs, the fresh-machine check of docs/testing.md).
 * `npm test` installs what 'sandbox' and 'tests' need.
 */
export const PACKAGES = {
  'docker.io': { bins: ['dockerd', 'containerd', 'containerd-shim-runc-v2', 'runc', 'docker-proxy', 'docker-init', 'ctr'], for: ['sandbox', 'tests', 'bench'], why: 'Docker Engine 20.10 for sandbox nodes (and runc for 28)' },
  'etcd-server': { bins: ['etcd'], for: ['sandbox', 'tests', 'bench'], why: 'the etcd that holds swarmnet state (and the IPAM and scale benchmarks\' own)' },
  'docker-registry': { bins: ['docker-registry'], for: ['sandbox'], why: 'the sandbox\'s registry: the plugin is pushed there and installed from it on every node' },
  prometheus: { bins: ['prometheus', 'promtool'], for: ['sandbox', 'tests'], why: 'the sandbox\'s Prometheus (scrapes every plugin, loads the alert rules); promtool checks and unit-tests the rules' },
  'etcd-client': { bins: ['etcdctl'], for: ['sandbox', 'tests'], why: 'etcdctl sets up auth in the etcd security tests and the sandbox with --etcd-tls' },
  iproute2: { bins: ['ip', 'bridge', 'ss'], for: ['sandbox', 'tests', 'bench'], why: 'namespaces, bridges, veths, routes, sockets' },
  nftables: { bins: ['nft'], for: ['sandbox', 'tests', 'bench'], why: 'the sandbox forward guard, the DNS takeover table' },
  iptables: { bins: ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'iptables-legacy', 'iptables-legacy-save'], for: ['sandbox', 'tests', 'bench'], why: 'dockerd programs its rules with it; tests copy Docker\'s DNS NAT' },
  ipvsadm: { bins: ['ipvsadm'], for: ['tests'], why: 'the IPVS backend\'s tool (the kernel may lack IPVS)' },
  conntrack: { bins: ['conntrack'], for: ['tests'], why: 'the load balancer deletes the flows of backends that left' },
  'qemu-system-x86': { bins: ['qemu-system-x86_64'], for: ['tests', 'bench'], why: 'boots a guest kernel with IPVS and nftables flowtables for the IPVS backend\'s and the overlay fast path\'s tests and bench (this kernel may have neither)' },
  zstd: { bins: ['zstd'], for: ['tests', 'bench'], why: 'compresses the guest\'s initramfs' },
  'busybox-static': { bins: ['busybox'], for: ['sandbox', 'tests', 'bench'], why: 'the rootfs of the swarmnet/busybox image; ping/httpd in test namespaces' },
  dnsutils: { bins: ['dig'], for: ['tests', 'bench'], why: 'DNS answers checked with a real client' },
  dnsperf: { bins: ['dnsperf'], for: ['tests', 'bench'], why: 'DNS load in the benchmark (and its test)' },
  iperf3: { bins: ['iperf3'], for: ['bench'], why: 'overlay throughput in the benchmark' },
  'linux-perf': { bins: ['perf'], for: ['bench'], why: 'profiles the overlay paths in the guest kernel (bench overlay-guest)' },
  'util-linux': { bins: ['unshare', 'nsenter', 'taskset', 'mount', 'umount', 'pivot_root'], for: ['sandbox', 'tests', 'bench'], why: 'namespaces, CPU pinning' },
  procps: { bins: ['sysctl', 'ps'], for: ['tests'], why: 'sysctl: the IPVS backend (timeouts), the overlay lab namespaces' },
  openssl: { bins: ['openssl'], for: ['sandbox', 'tests'], why: 'a throwaway CA and certificates for the etcd TLS tests and the sandbox with --etcd-tls' },
  tar: { bins: ['tar'], for: ['sandbox'], why: 'packs the image rootfs' },
  mmdebstrap: { bins: ['mmdebstrap'], for: ['fresh-root'], why: 'builds the fresh Debian root of scripts/fresh-root.mjs' },
};

/**
 * What every machine of ours has before any of this runs (docs/testing.md: Node 20 + npm, python3, make, g++, git,
 * the docker CLI) plus Debian's essential set (coreutils, dpkg, apt, libc-bin, …, present on every Debian system).
 */
export const BASE_SYSTEM = {
  machine: ['node', 'npm', 'npx', 'git', 'make', 'cc', 'gcc', 'g++', 'python3', 'docker'],
  essential: ['sh', 'bash', 'cp', 'mv', 'rm', 'ln', 'cat', 'tail', 'head', 'mkdir', 'mkfifo', 'du', 'find', 'sleep', 'true', 'stat', 'chroot', 'readlink',
    'hostname', 'printf', 'env', 'timeout', 'id', 'uname', 'getconf', 'ldd', 'which', 'dpkg-query', 'dpkg-deb', 'apt-get', 'apt-cache', 'gpgv', 'renice', 'taskset'],
};

/**
 * Programs that run only inside the swarmnet/busybox image (docker exec / a task's command) or inside the plugin's
 * own rootfs (scripts/plugin/base-rootfs.mjs puts them there from Debian packages), never from the host's PATH.
 */
export const IN_IMAGE = ['httpd', 'nc', 'netstat', 'ping', 'wget', 'nslookup', 'ifconfig', 'route', 'arp'];

/** Packages `who` needs ('sandbox' | 'tests' | 'bench' | 'fresh-root' | 'all'). npm test needs the sandbox's too (end-to-end). */
export function packagesFor(who) {
  const wanted = who === 'all' ? ['sandbox', 'tests', 'bench', 'fresh-root'] : who === 'tests' ? ['sandbox', 'tests'] : [who];
  return Object.keys(PACKAGES).filter((p) => PACKAGES[p].for.some((f) => wanted.includes(f)));
}

/** Program name → the package or group that provides it (the guard's view of this file). */
export function providerOf(program) {
  for (const [pkg, { bins }] of Object.entries(PACKAGES)) if (bins.includes(program)) return pkg;
  if (BASE_SYSTEM.machine.includes(program)) return 'the machine';
  if (BASE_SYSTEM.essential.includes(program)) return 'Debian essential';
  if (IN_IMAGE.includes(program)) return 'inside an image';
  return undefined;
}

/** The installed ones among pkgs: one dpkg-query for all (it names the unknown ones on stderr and exits 1). */
async function installed(pkgs) {
  const r = await run('dpkg-query', ['-W', '-f=${Package} ${Status}\n', ...pkgs], { allowFailure: true });
  return new Set(r.stdout.split('\n').filter((l) => l.endsWith(' install ok installed')).map((l) => l.split(' ')[0].split(':')[0]));
}

/** Installs the missing packages `who` needs; throws with the list and the reason when it cannot. Returns what it installed. */
export async function ensurePackages(log, who = 'sandbox') {
  const wanted = packagesFor(who);
  const have = await installed(wanted);
  const missing = wanted.filter((p) => !have.has(p));
  if (!missing.length) return [];
  if (process.getuid?.() !== 0) throw new Error(`missing Debian packages: ${missing.join(' ')} — run as root so they can be installed`);
  log(`installing missing Debian packages: ${missing.map((p) => `${p} (${PACKAGES[p].why})`).join(', ')}`);
  await run('apt-get', ['update', '-qq'], { timeoutMs: 600_000 });
  await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 1_200_000 });
  return missing;
}
