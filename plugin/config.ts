import { hostname } from 'node:os';
import { isIp, parseCidr, overlaps, formatCidr, type Cidr } from '../common/cidr.js';

/**
 * The daemon's settings, read once from the environment at start.
 * Names and defaults follow the predecessor (flannel-np) so existing `docker plugin set` scripts keep working.
 * Every problem is reported as one ConfigError naming the setting, the value and what is allowed.
 */
export interface Config {
  etcd: {
    /** Empty: run the embedded single-member etcd (single-node swarms only). */
    endpoints: string[];
    prefix: string;
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    username?: string;
    password?: string;
    /** Deadline of every etcd call. */
    requestTimeoutMs: number;
  };
  /** Options in flanneld syntax (`-iface=eth1`), kept for migration; see `underlayInterface`. */
  flannelOptions: string[];
  /** Interface (name or address) that carries VXLAN traffic; from UNDERLAY_INTERFACE or `-iface=`. */
  underlayInterface?: string;
  /** Address advertised to peers as the VTEP (`-public-ip=`). */
  publicIp?: string;
  availableSubnets: Cidr[];
  networkSubnetSize: number;
  hostSubnetSize: number;
  vniStart: number;
  vxlanPort: number;
  /** Offload established overlay flows to an nftables flowtable where the kernel has one. */
  overlayFastPath: boolean;
  isHookAvailable: boolean;
  dnsDockerCompatibilityMode: boolean;
  /** DNS queries per second per container, both transports; 0: no cap. */
  dnsMaxQpsPerContainer: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** host:port for /metrics and /healthz; empty disables the listener. */
  metricsAddress: string;
  lbBackend: 'auto' | 'ipvs' | 'nftables';
  /** Node identity in etcd; empty means "ask Docker for its node name, else the hostname". */
  nodeName: string;
  pluginSocket: string;
  dockerSocket: string;
  /** Persistent directory (embedded etcd data, records of kernel objects we created). */
  stateDir: string;
  /** TTL of the etcd lease that holds this node's state; a dead node's state is reclaimed after it. */
  nodeLeaseTtlSeconds: number;
  /** Period of the full kernel-vs-etcd reconcile. */
  reconcileIntervalSeconds: number;
}

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    readonly value: string,
    readonly allowed: string,
    readonly secret = false,
  ) {
    super(`invalid setting ${setting}=${secret ? '[redacted]' : JSON.stringify(value)}: ${allowed}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, dflt: string): string {
  const v = env[name];
  return v === undefined ? dflt : v.trim();
}

function int(env: Env, name: string, dflt: number, min: number, max: number): number {
  const raw = str(env, name, String(dflt));
  if (raw === '') return dflt;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(name, raw, `an integer from ${min} to ${max}`);
  }
  return Number(raw);
}

function bool(env: Env, name: string, dflt: boolean): boolean {
  const raw = str(env, name, String(dflt)).toLowerCase();
  if (raw === '') return dflt;
  if (['true', '1', 'yes'].includes(raw)) return true;
  if (['false', '0', 'no'].includes(raw)) return false;
  throw new ConfigError(name, raw, 'true or false');
}

function oneOf<T extends string>(env: Env, name: string, dflt: T, allowed: readonly T[]): T {
  const raw = str(env, name, dflt).toLowerCase();
  if (raw === '') return dflt;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(name, raw, `one of ${allowed.join(', ')}`);
  return raw as T;
}

function list(raw: string): string[] {
  return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/**
 * DNS queries per second per container by default: far above what an application asks (a lookup per outgoing
 * request, cached by most runtimes), low enough that one container flooding its resolver keeps the others' p99
 * (docs/performance.md, "DNS isolation"). AWS's VPC resolver allows 1,024 packets/s per network interface.
 */
export const DEFAULT_DNS_MAX_QPS = 2000;

/** flanneld options that only matter to flanneld itself: accepted for migration and ignored. */
const IGNORED_FLANNEL_OPTIONS = new Set([
  'ip-masq', 'subnet-lease-renew-margin', 'iptables-resync', 'iptables-forward-rules', 'healthz-ip', 'healthz-port',
  'kube-subnet-mgr', 'subnet-file', 'v', 'etcd-endpoints', 'etcd-prefix',
]);

/**
 * Splits DEFAULT_FLANNEL_OPTIONS. The predecessor split on every comma, so no option could contain one;
 * here a comma only separates options when the next one starts with '-', and whitespace separates too.
 */
export function splitFlannelOptions(raw: string): string[] {
  return raw.split(/(?:,|\s)+(?=-)/).map((s) => s.trim().replace(/,$/, '')).filter((s) => s !== '');
}

function parseFlannelOptions(raw: string): { options: string[]; iface?: string; publicIp?: string } {
  const options = splitFlannelOptions(raw);
  let iface: string | undefined;
  let publicIp: string | undefined;
  for (const opt of options) {
    const m = /^--?([a-z0-9-]+)(?:=(.*))?$/.exec(opt);
    if (!m) throw new ConfigError('DEFAULT_FLANNEL_OPTIONS', raw, `flanneld-style options such as -iface=eth1 (bad: ${JSON.stringify(opt)})`);
    const [, name, value] = m;
    if (name === 'iface') {
      if (!value) throw new ConfigError('DEFAULT_FLANNEL_OPTIONS', raw, '-iface needs a value, e.g. -iface=eth1');
      iface ??= value;
    } else if (name === 'public-ip') {
      if (!value || !isIp(value)) throw new ConfigError('DEFAULT_FLANNEL_OPTIONS', raw, '-public-ip needs an IPv4 address');
      publicIp = value;
    } else if (!IGNORED_FLANNEL_OPTIONS.has(name!)) {
      throw new ConfigError('DEFAULT_FLANNEL_OPTIONS', raw, `supported options are -iface=, -public-ip= (and flanneld-only ones, ignored); unknown: -${name}`);
    }
  }
  return { options, iface, publicIp };
}

function optionalFile(env: Env, name: string): string | undefined {
  const v = str(env, name, '');
  if (v === '') return undefined;
  if (!v.startsWith('/')) throw new ConfigError(name, v, 'an absolute file path');
  return v;
}

export function loadConfig(env: Env = process.env): Config {
  const endpoints = list(str(env, 'ETCD_ENDPOINTS', ''));
  for (const e of endpoints) {
    if (!/^https?:\/\/[^\s/]+(:\d+)?\/?$/.test(e) && !/^[^\s/:]+:\d+$/.test(e)) {
      throw new ConfigError('ETCD_ENDPOINTS', str(env, 'ETCD_ENDPOINTS', ''), 'comma-separated etcd URLs such as http://10.0.0.1:2379');
    }
  }
  const prefixRaw = str(env, 'ETCD_PREFIX', '/flannel');
  const prefix = prefixRaw.replace(/\/+$/, '');
  if (!prefix.startsWith('/') || /\s/.test(prefix)) throw new ConfigError('ETCD_PREFIX', prefixRaw, 'a key prefix starting with "/", without spaces');

  const subnetsRaw = str(env, 'AVAILABLE_SUBNETS', '10.128.0.0/10');
  const availableSubnets: Cidr[] = [];
  for (const s of list(subnetsRaw)) {
    let c: Cidr;
    try {
      c = parseCidr(s);
    } catch (e) {
      throw new ConfigError('AVAILABLE_SUBNETS', subnetsRaw, `comma-separated IPv4 CIDRs (${(e as Error).message})`);
    }
    const clash = availableSubnets.find((o) => overlaps(o, c));
    if (clash) throw new ConfigError('AVAILABLE_SUBNETS', subnetsRaw, `subnets must not overlap (${s} overlaps ${formatCidr(clash)})`);
    availableSubnets.push(c);
  }
  if (availableSubnets.length === 0) throw new ConfigError('AVAILABLE_SUBNETS', subnetsRaw, 'at least one IPv4 CIDR');

  const networkSubnetSize = int(env, 'NETWORK_SUBNET_SIZE', 20, 8, 28);
  const hostSubnetSize = int(env, 'DEFAULT_HOST_SUBNET_SIZE', 25, 16, 29);
  if (hostSubnetSize < networkSubnetSize + 1) {
    throw new ConfigError('DEFAULT_HOST_SUBNET_SIZE', String(hostSubnetSize), `larger than NETWORK_SUBNET_SIZE (${networkSubnetSize}) so a network holds at least two host subnets`);
  }
  const tooSmall = availableSubnets.find((c) => c.prefix > networkSubnetSize);
  if (tooSmall) {
    throw new ConfigError('AVAILABLE_SUBNETS', subnetsRaw, `each subnet must hold at least one /${networkSubnetSize} network (NETWORK_SUBNET_SIZE); ${formatCidr(tooSmall)} is smaller`);
  }

  const flannel = parseFlannelOptions(str(env, 'DEFAULT_FLANNEL_OPTIONS', ''));
  const underlay = str(env, 'UNDERLAY_INTERFACE', '') || flannel.iface;
  if (underlay !== undefined && !/^[A-Za-z0-9_.:@-]{1,64}$/.test(underlay)) {
    throw new ConfigError('UNDERLAY_INTERFACE', underlay, 'an interface name or IPv4 address');
  }

  const metricsAddress = str(env, 'METRICS_ADDRESS', '127.0.0.1:9474');
  if (metricsAddress !== '' && !/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$/.test(metricsAddress)) {
    throw new ConfigError('METRICS_ADDRESS', metricsAddress, 'host:port (e.g. 127.0.0.1:9474), or empty to disable');
  }
  const nodeName = str(env, 'NODE_NAME', '');
  if (nodeName !== '' && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(nodeName)) {
    throw new ConfigError('NODE_NAME', nodeName, 'letters, digits, ".", "_" and "-" (at most 63, starting with a letter or digit)');
  }
  const password = env.ETCD_PASSWORD;
  const username = str(env, 'ETCD_USERNAME', '');
  if ((username === '') !== (password === undefined || password === '')) {
    throw new ConfigError(username === '' ? 'ETCD_PASSWORD' : 'ETCD_USERNAME', username === '' ? (password ?? '') : username, 'ETCD_USERNAME and ETCD_PASSWORD must be set together', username === '');
  }
  const certFile = optionalFile(env, 'ETCD_CERT_FILE');
  const keyFile = optionalFile(env, 'ETCD_KEY_FILE');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(certFile ? 'ETCD_KEY_FILE' : 'ETCD_CERT_FILE', '', 'ETCD_CERT_FILE and ETCD_KEY_FILE must be set together');
  }

  return {
    etcd: {
      endpoints,
      prefix,
      caFile: optionalFile(env, 'ETCD_CA_FILE'),
      certFile,
      keyFile,
      username: username || undefined,
      password: password || undefined,
      requestTimeoutMs: int(env, 'ETCD_REQUEST_TIMEOUT_MS', 5000, 100, 120_000),
    },
    flannelOptions: flannel.options,
    underlayInterface: underlay,
    publicIp: flannel.publicIp,
    availableSubnets,
    networkSubnetSize,
    hostSubnetSize,
    vniStart: int(env, 'VNI_START', 6514, 1, 16_000_000),
    vxlanPort: int(env, 'VXLAN_PORT', 8472, 1, 65535),
    overlayFastPath: bool(env, 'OVERLAY_FAST_PATH', true),
    isHookAvailable: bool(env, 'IS_HOOK_AVAILABLE', false),
    dnsDockerCompatibilityMode: bool(env, 'DNS_DOCKER_COMPATIBILITY_MODE', true),
    dnsMaxQpsPerContainer: int(env, 'DNS_MAX_QPS_PER_CONTAINER', DEFAULT_DNS_MAX_QPS, 0, 1_000_000),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const),
    metricsAddress,
    lbBackend: oneOf(env, 'LB_BACKEND', 'auto', ['auto', 'ipvs', 'nftables'] as const),
    nodeName,
    pluginSocket: str(env, 'PLUGIN_SOCKET', '/run/docker/plugins/swarmnet.sock'),
    dockerSocket: str(env, 'DOCKER_SOCKET', '/var/run/docker.sock'),
    stateDir: str(env, 'STATE_DIR', '/var/lib/swarmnet'),
    nodeLeaseTtlSeconds: int(env, 'NODE_LEASE_TTL_SECONDS', 60, 5, 3600),
    reconcileIntervalSeconds: int(env, 'RECONCILE_INTERVAL_SECONDS', 10, 1, 3600),
  };
}

/** What is safe to log about the configuration: no secrets, no environment dump. */
export function describeConfig(c: Config): Record<string, unknown> {
  return {
    etcdEndpoints: c.etcd.endpoints.length ? c.etcd.endpoints : 'embedded',
    etcdPrefix: c.etcd.prefix,
    etcdTls: Boolean(c.etcd.caFile || c.etcd.certFile),
    etcdAuth: Boolean(c.etcd.username),
    availableSubnets: c.availableSubnets.map(formatCidr),
    networkSubnetSize: c.networkSubnetSize,
    hostSubnetSize: c.hostSubnetSize,
    vniStart: c.vniStart,
    lbBackend: c.lbBackend,
    overlayFastPath: c.overlayFastPath,
    hook: c.isHookAvailable,
    dnsCompat: c.dnsDockerCompatibilityMode,
    dnsMaxQpsPerContainer: c.dnsMaxQpsPerContainer,
  };
}

export function defaultNodeName(): string {
  return hostname();
}
