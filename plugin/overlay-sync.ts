import { readFile, writeFile } from 'node:fs/promises';
import { run } from '../common/exec.js';
import { formatCidr, keyToCidr } from '../common/cidr.js';
import type { Logger } from '../common/log.js';
import { createEndpointLink, deleteEndpointLink, endpointLinkNames, forgetNeighbour } from '../flannel/endpoint.js';
import type { LocalNode, OverlayState } from '../flannel/model.js';
import { bridgeName, VXLAN_OVERHEAD } from '../flannel/names.js';
import { OverlayReconciler, type ReconcileReport, type ReconcileStats, type RepairKind } from '../flannel/reconciler.js';
import { PluginError } from './protocol/contract.js';
import type { Ipam, OverlayState as IpamOverlayState, RecordsWatch } from './ipam/ipam.js';
import { overlayReconcileDuration, reconcileRepairs } from './metrics.js';
import type { OverlayPort } from './network-endpoints.js';
import type { PrefixWatch } from './state/watch.js';

/** Control-plane records → the overlay's input (pure). */
export function toOverlayState(s: IpamOverlayState, node: LocalNode): OverlayState {
  return {
    node,
    networks: s.networks.map((n) => ({ id: n.id, vni: n.vni, subnet: formatCidr(n.subnet), ...(n.mtu !== undefined ? { mtu: n.mtu } : {}) })),
    leases: s.leases.map((l) => ({ networkId: l.networkId, subnet: formatCidr(l.subnet), publicIp: l.publicIp, vtepMac: l.vtepMac, node: l.node })),
  };
}

/**
 * Feeds the overlay reconciler from IPAM's records, which watch events keep current (on every change, coalesced, and
 * periodically to repair kernel drift: neither reads etcd) and gives the network driver its kernel operations.
 * Join needs the bridge now, so `ensureNetwork` reconciles before it answers.
 */
export class OverlaySync implements OverlayPort {
  private readonly reconciler: OverlayReconciler;
  private cancelWatch?: RecordsWatch;
  private refreshing?: Promise<ReconcileReport | undefined>;
  private again = false;
  private full = false;
  private timer?: NodeJS.Timeout;
  private readonly intervalMs: number;
  /** This node's host-subnet leases as last seen in etcd, by network (see holdLocalLeases). */
  private readonly held = new Map<string, OverlayState['leases'][number]>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly ipam: Ipam,
    private readonly node: LocalNode & { underlayMtu: number },
    opts: { stateDir: string; intervalMs: number; fastPath?: boolean; log: Logger },
    private readonly log: Logger = opts.log,
  ) {
    this.reconciler = new OverlayReconciler({ stateDir: opts.stateDir, fastPath: opts.fastPath, log: opts.log });
    this.intervalMs = opts.intervalMs;
  }

  async start(): Promise<void> {
    await ensureIpForwarding(this.log);
    // A change in a network this node has no part in touches nothing here (per-node interest).
    this.cancelWatch = await this.ipam.watchRecords((id) => { if (id === undefined || this.concerns(id)) void this.refresh(); });
    await this.refresh(true);
    // Periodic pass: repairs kernel drift (the watch resumes or re-lists by itself after etcd was unreachable).
    const tick = (): void => {
      this.timer = setTimeout(() => void this.refresh(true).finally(() => { if (this.timer) tick(); }), this.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  /** Whether this node programs the network: it holds a host subnet there (or keeps one that vanished, see holdLocalLeases). */
  private concerns(networkId: string): boolean {
    return this.held.has(networkId) || this.ipam.records.holds(networkId, this.node.name);
  }

  /** The kernel reconciler's counters and times (metrics, the node's status record). */
  get stats(): ReconcileStats { return this.reconciler.stats; }

  /** The etcd watches feeding it, by role (metrics); none before start. */
  get watches(): Record<string, PrefixWatch> { return { ...this.cancelWatch?.watches }; }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.cancelWatch?.();
    await this.refreshing;
    await this.reconciler.stop();
  }

  /**
   * Reconciles the kernel with the records; concurrent callers share a run, and a call during a run schedules one
   * more. `full`: read the kernel (the period, Join) rather than trust what the last complete run put in place.
   * Resolves with the last run's report, or undefined when the run failed before reaching the kernel.
   */
  refresh(full = false): Promise<ReconcileReport | undefined> {
    this.full ||= full;
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      let report: ReconcileReport | undefined;
      do {
        this.again = false;
        try {
          const state = await this.holdLocalLeases(toOverlayState(this.ipam.overlayState((id) => this.concerns(id)), this.node));
          const before = { ...this.reconciler.stats.repairs };
          const readKernel = this.full;
          this.full = false;
          report = await this.reconciler.update(state, readKernel);
          // Only this loop drives the reconciler, one update at a time: every report is a pass of its own.
          overlayReconcileDuration.observe(report.durationMs / 1000);
          for (const k of Object.keys(before) as RepairKind[]) {
            const delta = this.reconciler.stats.repairs[k] - before[k];
            if (delta > 0) reconcileRepairs.inc({ plane: `overlay-${k}` }, delta);
          }
        } catch (e) {
          // the kernel keeps its last state; the next change or period retries
          this.log.warn({ err: (e as Error).message }, 'overlay refresh failed');
          report = undefined;
        }
      } while (this.again);
      return report;
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /**
   * A host-subnet lease of this node that vanished from etcd (the node lease expired: a frozen or partitioned node)
   * while containers still use the bridge is kept programmed: dropping it would delete the bridge and detach every
   * container from it for good. Other nodes drop their routes to it meanwhile; the restart reconciliation claims
   * the subnet again under the new node lease (plugin/ipam/ipam.ts reconcileNode), and then it is etcd's again.
   */
  private async holdLocalLeases(state: OverlayState): Promise<OverlayState> {
    const mine = new Map(state.leases.filter((l) => l.node === this.node.name).map((l) => [l.networkId, l]));
    for (const [id, lease] of this.held) {
      const net = state.networks.find((n) => n.id === id);
      if (mine.has(id) || !net) { this.held.delete(id); continue; }
      const ports = await run('ip', ['-j', 'link', 'show', 'master', bridgeName(net.vni)], { allowFailure: true });
      const used = ports.code === 0 && (JSON.parse(ports.stdout || '[]') as unknown[]).length > 0;
      if (!used) { this.held.delete(id); continue; }
      if (!this.warned.has(id)) this.log.warn({ network: id, subnet: lease.subnet }, 'this node\'s host subnet lease vanished from etcd while containers use it; kept until it is claimed again');
      this.warned.add(id);
      state.leases.push(lease);
    }
    for (const [id, l] of mine) { this.held.set(id, l); this.warned.delete(id); }
    return state;
  }

  async ensureNetwork(networkKey: string): Promise<{ bridge: string; mtu: number }> {
    const net = await this.ipam.network(keyToCidr(networkKey));
    if (!net) throw new PluginError(`unknown network ${networkKey}`, 404);
    const report = await this.refresh(true);
    if (!report) throw new PluginError(`overlay for network ${net.subnet} could not be reconciled`, 500);
    const bridge = bridgeName(net.vni);
    if (!report.ok) throw new PluginError(`overlay for network ${net.subnet} is not ready: ${report.errors.slice(0, 2).join('; ')}`, 500);
    return { bridge, mtu: net.mtu ?? this.node.underlayMtu - VXLAN_OVERHEAD };
  }

  async createEndpointLink(args: { bridge: string; endpointId: string; mac: string; mtu: number }): Promise<{ hostName: string; peerName: string }> {
    checkEndpointId(args.endpointId);
    const names = await createEndpointLink(args);
    void this.reconciler.portAdded(names.hostName);
    return names;
  }

  async forgetNeighbour(bridge: string, address: string): Promise<void> {
    await forgetNeighbour(bridge, address);
  }

  async deleteEndpointLink(endpointId: string): Promise<void> {
    // An id that cannot name a link (Docker's are 64 hex digits) has no link to delete. Refusing it would make
    // Leave and DeleteEndpoint fail for good, and the endpoint's record, which CreateEndpoint accepted, never go.
    if (!isEndpointLinkId(endpointId)) return;
    await deleteEndpointLink(endpointId);
  }
}

/** Why an endpoint id cannot name kernel links, or undefined when it can. */
function linkIdProblem(id: string): string | undefined {
  try {
    endpointLinkNames(id);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

const isEndpointLinkId = (id: string): boolean => linkIdProblem(id) === undefined;

function checkEndpointId(id: string): void {
  const problem = linkIdProblem(id);
  if (problem !== undefined) throw new PluginError(problem, 400);
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/**
 * The node routes between its bridges and VXLAN devices, so it must forward IPv4. dockerd turns this on for its own
 * networks; a host (or namespace) where nothing did gets it from us, and a read-only /proc/sys gets a clear warning.
 */
async function ensureIpForwarding(log: Logger): Promise<void> {
  try {
    if ((await readFile(IP_FORWARD, 'utf8')).trim() === '1') return;
    await writeFile(IP_FORWARD, '1');
    log.info('enabled IPv4 forwarding (net.ipv4.ip_forward=1)');
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'IPv4 forwarding is off and could not be enabled: cross-node traffic will not flow');
  }
}
