import { run, runIn, type ExecOptions, type ExecResult } from '../../common/exec.js';
import type { LbBackend } from '../backend.js';
import type { LbDelta, LbState } from '../desired.js';
import {
  CONNTRACK_TIMEOUTS, DRAIN_MS, DUMMY, TABLE, drainedServers, ipvsTimeouts, parseDummy, parseIpvsList, parseNftListing, renderDelta,
  renderDrainCleanup, renderRemoveServices, renderRemoveTable, renderReplace, viewToState, type KernelView, type Plan,
} from './render.js';

export interface IpvsBackendOptions {
  /** Network namespace to program (tests); the tools run through `ip netns exec`. */
  netns?: string;
  /** How long a removed backend may drain before it is deleted even with connections left (default 15 min). */
  drainMs?: number;
}

/**
 * The IPVS backend: ipvsadm (`-R` batches of add/edit/delete lines, never a clear, so connections survive every
 * write and a plugin restart), one `nft -f -` transaction per write, iproute2 for the dummy device's addresses.
 */
export class IpvsBackend implements LbBackend {
  readonly kind = 'ipvs' as const;
  /**
   * Drained real servers (`vip addr`) → when we first knew them drained (ms). Kept in memory: after a restart,
   * read() or replace() finds the weight-0 servers again and their drain time starts over (never shorter).
   */
  private draining = new Map<string, number>();

  constructor(private readonly opts: IpvsBackendOptions = {}) {}

  private tool(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return runIn(this.opts.netns, cmd, args, opts);
  }

  private ip(args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run('ip', [...(this.opts.netns ? ['-n', this.opts.netns] : []), ...args], opts);
  }

  private async view(): Promise<KernelView> {
    const [list, dummy, table] = await Promise.all([
      this.tool('ipvsadm', ['-Ln']),
      this.ip(['-json', 'addr', 'show', 'dev', DUMMY], { allowFailure: true }),
      this.tool('nft', ['list', 'table', 'ip', TABLE], { allowFailure: true }),
    ]);
    if (dummy.code !== 0 && !/does not exist/.test(dummy.stderr)) throw new Error(`ip addr show dev ${DUMMY}: ${dummy.stderr.trim()}`);
    if (table.code !== 0 && !/No such file or directory/.test(table.stderr)) throw new Error(`nft list table ip ${TABLE}: ${table.stderr.trim()}`);
    return {
      services: parseIpvsList(list.stdout),
      dummy: dummy.code === 0 ? parseDummy(dummy.stdout) : undefined,
      nft: table.code === 0 ? parseNftListing(table.stdout) : undefined,
    };
  }

  private async ipvsadm(lines: string[]): Promise<void> {
    if (!lines.length) return;
    const r = await this.tool('ipvsadm', ['-R'], { input: `${lines.join('\n')}\n` });
    // -R goes on after a failing line and still exits 0: its complaints on stderr are the only sign.
    if (r.stderr.trim()) throw new Error(`ipvsadm -R: ${r.stderr.trim()}`);
  }

  private async addresses(verb: 'add' | 'del', cidrs: string[]): Promise<void> {
    if (cidrs.length) await this.ip(['-batch', '-'], { input: cidrs.map((c) => `addr ${verb} ${c} dev ${DUMMY}\n`).join('') });
  }

  /** Dummy addresses are added before the table marks them and deleted after it stops: a VIP packet is never routed away. */
  private async write(p: Plan): Promise<void> {
    await this.ipvsadm(p.ipvs);
    await this.addresses('add', p.addrAdd);
    if (p.nft) await this.tool('nft', ['-f', '-'], { input: p.nft });
    await this.addresses('del', p.addrDel);
  }

  async apply(delta: LbDelta, gone: ReadonlyMap<string, ReadonlySet<string>> = new Map()): Promise<void> {
    const now = Date.now();
    const cleanup = this.draining.size ? renderDrainCleanup(parseIpvsList((await this.tool('ipvsadm', ['-Ln'])).stdout), this.draining, now, this.opts.drainMs ?? DRAIN_MS) : undefined;
    for (const k of cleanup?.done ?? []) this.draining.delete(k);
    const plan = renderDelta(delta, this.draining, gone);
    await this.write({ ...plan, ipvs: [...(cleanup?.ipvs ?? []), ...plan.ipvs] });
    for (const k of plan.undrained) this.draining.delete(k);
    for (const k of plan.drained) this.draining.set(k, now);
    for (const vip of plan.dropped) for (const k of this.draining.keys()) if (k.startsWith(`${vip} `)) this.draining.delete(k);
  }

  async replace(state: LbState): Promise<void> {
    // No VIP left (the last service or network is gone): nothing of ours stays in the kernel.
    if (state.vips.size === 0) return this.remove();
    const view = await this.view();
    if (!view.dummy) await this.ip(['link', 'add', DUMMY, 'type', 'dummy']);
    if (!view.dummy?.up) await this.ip(['link', 'set', DUMMY, 'up']);
    await this.tune();
    const plan = renderReplace(state, view, this.draining, Date.now(), this.opts.drainMs ?? DRAIN_MS);
    await this.write(plan);
    this.draining = plan.draining;
  }

  /**
   * IPVS's connection table must agree with conntrack: conntrack=1 lets the hairpin masquerade (a conntrack NAT)
   * see IPVS's connections, and IPVS's timeouts equal conntrack's, so IPVS never drops an idle connection that
   * conntrack still keeps (IPVS's own 900 s TCP default cut Docker's long-lived idle connections).
   * expire_nodest_conn=1: the connections of a deleted real server (its drain ended) end at their next packet
   * instead of living on towards a backend that is gone.
   */
  private async tune(): Promise<void> {
    const timeouts = await this.tool('sysctl', ['-n', ...CONNTRACK_TIMEOUTS]);
    await this.tool('ipvsadm', ipvsTimeouts(timeouts.stdout));
    await this.tool('sysctl', ['-q', '-w', 'net.ipv4.vs.conntrack=1', 'net.ipv4.vs.expire_nodest_conn=1']);
  }

  async read(): Promise<LbState | undefined> {
    const view = await this.view();
    const now = Date.now();
    for (const k of drainedServers(view)) if (!this.draining.has(k)) this.draining.set(k, now);
    return viewToState(view);
  }

  async remove(): Promise<void> {
    const view = await this.view();
    await this.tool('nft', ['-f', '-'], { input: renderRemoveTable() });
    await this.ipvsadm(renderRemoveServices(view));
    if (view.dummy) await this.ip(['link', 'del', DUMMY]);
    this.draining.clear();
  }
}
