import { run, runIn, type ExecResult } from '../common/exec.js';
import { FAST_TABLE, FLOWTABLE_PROBE } from './fast-path.js';
import { FORWARD_CHAIN, ROUTE_PROTO } from './names.js';

/**
 * The one adapter between the overlay and the kernel: iproute2 (`-json` reads, `-batch` writes) and iptables
 * (the nf_tables backend on Debian 12, i.e. the same `ip filter` table as Docker). Every call can target a network
 * namespace, which is how the tests run hosts side by side. Values reaching a batch line were validated upstream
 * (names, IPs, MACs), so a line can never carry a second command.
 */

export interface LinkInfo {
  name: string;
  kind?: string;
  mac: string;
  mtu: number;
  up: boolean;
  master?: string;
  /** vxlan only */
  vni?: number;
  local?: string;
  dev?: string;
  port?: number;
  learning?: boolean;
}

export interface AddressInfo { dev: string; cidr: string }
export interface RouteInfo { dst: string; via?: string; dev?: string; onlink: boolean }
export interface NeighInfo { dev: string; ip: string; mac?: string; permanent: boolean }
export interface FdbInfo { mac: string; dst?: string; self: boolean; permanent: boolean }

/** Commands of one batch that failed; the others were applied (`-force`). */
export interface BatchResult { failed: number; errors: string[] }

interface RawLink {
  ifname: string;
  address?: string;
  mtu: number;
  flags?: string[];
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; link?: string; port?: number; learning?: boolean } };
}

function parseJson<T>(r: ExecResult, what: string): T[] {
  const text = r.stdout.trim();
  if (!text) return [];
  try {
    return JSON.parse(text) as T[];
  } catch {
    throw new Error(`unparsable JSON from ${what}`);
  }
}

function batchResult(r: ExecResult): BatchResult {
  if (r.code === 0) return { failed: 0, errors: [] };
  const errors = r.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('Command failed'));
  const failed = r.stderr.split('\n').filter((l) => l.startsWith('Command failed')).length || 1;
  return { failed, errors };
}

export class Kernel {
  constructor(readonly netns?: string) {}

  private ip(args: string[], input?: string): Promise<ExecResult> {
    const ns = this.netns ? ['-n', this.netns] : [];
    return run('ip', [...ns, ...args], { input, allowFailure: input !== undefined });
  }

  private bridge(args: string[], input?: string): Promise<ExecResult> {
    const ns = this.netns ? ['-n', this.netns] : [];
    return run('bridge', [...ns, ...args], { input, allowFailure: input !== undefined });
  }

  private inNs(cmd: string, args: string[], opts: { input?: string; allowFailure?: boolean } = {}): Promise<ExecResult> {
    return runIn(this.netns, cmd, args, opts);
  }

  async links(): Promise<LinkInfo[]> {
    const raw = parseJson<RawLink>(await this.ip(['-json', '-details', 'link', 'show']), 'ip link');
    return raw.map((l) => {
      const d = l.linkinfo?.info_data;
      return {
        name: l.ifname,
        kind: l.linkinfo?.info_kind,
        mac: (l.address ?? '').toLowerCase(),
        mtu: l.mtu,
        up: (l.flags ?? []).includes('UP'),
        master: l.master,
        ...(l.linkinfo?.info_kind === 'vxlan' ? { vni: d?.id, local: d?.local, dev: d?.link, port: d?.port, learning: d?.learning } : {}),
      };
    });
  }

  async link(name: string): Promise<LinkInfo | undefined> {
    return (await this.links()).find((l) => l.name === name);
  }

  async addresses(): Promise<AddressInfo[]> {
    type Raw = { ifname: string; addr_info?: { family: string; local: string; prefixlen: number }[] };
    const raw = parseJson<Raw>(await this.ip(['-json', 'addr', 'show']), 'ip addr');
    return raw.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => ({ dev: l.ifname, cidr: `${a.local}/${a.prefixlen}` })));
  }

  /** Routes of the main table carrying our protocol id. */
  async ourRoutes(): Promise<RouteInfo[]> {
    type Raw = { dst: string; gateway?: string; dev?: string; flags?: string[] };
    const raw = parseJson<Raw>(await this.ip(['-json', 'route', 'show', 'table', 'main', 'proto', String(ROUTE_PROTO)]), 'ip route');
    return raw.map((r) => ({ dst: r.dst.includes('/') ? r.dst : `${r.dst}/32`, via: r.gateway, dev: r.dev, onlink: (r.flags ?? []).includes('onlink') }));
  }

  async neighbours(dev: string): Promise<NeighInfo[]> {
    type Raw = { dst: string; lladdr?: string; state?: string[] };
    const raw = parseJson<Raw>(await this.ip(['-json', '-4', 'neigh', 'show', 'dev', dev]), 'ip neigh');
    return raw.map((n) => ({ dev, ip: n.dst, mac: n.lladdr?.toLowerCase(), permanent: (n.state ?? []).includes('PERMANENT') }));
  }

  async fdb(dev: string): Promise<FdbInfo[]> {
    type Raw = { mac: string; dst?: string; flags?: string[]; state?: string };
    const raw = parseJson<Raw>(await this.bridge(['-json', 'fdb', 'show', 'dev', dev]), 'bridge fdb');
    return raw.map((f) => ({ mac: f.mac.toLowerCase(), dst: f.dst, self: (f.flags ?? []).includes('self'), permanent: f.state === 'permanent' }));
  }

  /** `ip -force -batch -`: applies every line it can and reports the failures. */
  async ipBatch(lines: string[]): Promise<BatchResult> {
    if (lines.length === 0) return { failed: 0, errors: [] };
    return batchResult(await this.ip(['-force', '-batch', '-'], lines.join('\n') + '\n'));
  }

  async bridgeBatch(lines: string[]): Promise<BatchResult> {
    if (lines.length === 0) return { failed: 0, errors: [] };
    return batchResult(await this.bridge(['-force', '-batch', '-'], lines.join('\n') + '\n'));
  }

  /** Rules of our chain in `iptables -S` form without `-A <chain> `, or undefined when the chain does not exist. */
  async forwardChainRules(): Promise<string[] | undefined> {
    const r = await this.inNs('iptables', ['-w', '-t', 'filter', '-S', FORWARD_CHAIN], { allowFailure: true });
    if (r.code !== 0) return undefined;
    const prefix = `-A ${FORWARD_CHAIN} `;
    return r.stdout.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length).replaceAll('"', ''));
  }

  /** Replaces the whole chain atomically (iptables-restore without flushing anything else). */
  async writeForwardChain(rules: string[]): Promise<void> {
    const body = ['*filter', `:${FORWARD_CHAIN} - [0:0]`, ...rules.map((r) => `-A ${FORWARD_CHAIN} ${r}`), 'COMMIT', ''].join('\n');
    await this.inNs('iptables-restore', ['-w', '--noflush'], { input: body });
  }

  async hasForwardJump(): Promise<boolean> {
    const r = await this.inNs('iptables', ['-w', '-t', 'filter', '-C', 'FORWARD', '-j', FORWARD_CHAIN], { allowFailure: true });
    return r.code === 0;
  }

  /** First in FORWARD, so our accepts win over Docker's rules and the DROP policy (DOCKER-USER may later go above). */
  async insertForwardJump(): Promise<void> {
    await this.inNs('iptables', ['-w', '-t', 'filter', '-I', 'FORWARD', '1', '-j', FORWARD_CHAIN]);
  }

  /** Removes the jump and the chain (both idempotent: absent is fine). */
  async removeForwardChain(): Promise<void> {
    while ((await this.inNs('iptables', ['-w', '-t', 'filter', '-D', 'FORWARD', '-j', FORWARD_CHAIN], { allowFailure: true })).code === 0);
    await this.inNs('iptables', ['-w', '-t', 'filter', '-F', FORWARD_CHAIN], { allowFailure: true });
    await this.inNs('iptables', ['-w', '-t', 'filter', '-X', FORWARD_CHAIN], { allowFailure: true });
  }

  /** `nft list table inet swarmnet-fast` as printed, or undefined when the table does not exist. */
  async fastPathListing(): Promise<string | undefined> {
    const r = await this.inNs('nft', ['list', 'table', 'inet', FAST_TABLE], { allowFailure: true });
    return r.code === 0 ? r.stdout : undefined;
  }

  /** One nft transaction (all or nothing); a refusal throws with nft's own message (ExecError). */
  async nftApply(text: string): Promise<void> {
    await this.inNs('nft', ['-f', '-'], { input: text });
  }

  /** Whether the kernel accepts a flowtable (checked with `nft -c`: nothing is created). */
  async flowtableSupported(): Promise<boolean> {
    return (await this.inNs('nft', ['-c', '-f', '-'], { input: FLOWTABLE_PROBE, allowFailure: true })).code === 0;
  }

  /** Runs one ip command (argument array) and throws on failure. */
  async ipRun(args: string[]): Promise<void> {
    await this.ip(args);
  }
}
