import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logger, type Logger } from '../common/log.js';
import { desiredKernelState, type DesiredState, type Skipped } from './desired.js';
import { entriesOf, planEntries, planLinks, type EntriesPlan } from './diff.js';
import { fastPathDevices, renderDeviceChange, renderFastPath, renderFastPathRemoval, splitListing, type FastPathPair } from './fast-path.js';
import { Kernel, type BatchResult } from './kernel.js';
import type { OverlayState } from './model.js';
import { bridgeName } from './names.js';
import { OwnershipRecord } from './ownership.js';

/**
 * Keeps the kernel equal to the overlay's desired state: every interval (and on reconcile()) it reads the kernel (only
 * our objects), computes the minimal repair and applies it. An update() that changes only routes, neighbours and FDB
 * entries after a complete run is planned against what that run put in place, without reading the kernel: a lease
 * event costs its own commands, not a read of every entry (the periodic pass still catches drift). Runs are
 * serialised and coalesced. A failed command is logged and counted; the next run retries it, so a run never needs to
 * roll back to converge.
 */

export type RepairKind = 'links' | 'addresses' | 'routes' | 'neighbours' | 'fdb' | 'rules' | 'fastPath';

/**
 * The flowtable fast path (fast-path.ts): `on`, `off` (OVERLAY_FAST_PATH=false), `unavailable` (the kernel has no
 * flowtable: traffic takes the regular path), `idle` (no network programmed here).
 */
export type FastPathState = 'on' | 'off' | 'unavailable' | 'idle';

export interface ReconcileStats {
  runs: number;
  /** Runs in which at least one command failed or the kernel could not be read. */
  failedRuns: number;
  /** Kernel changes applied, by kind (the first run after start counts its creations too). */
  repairs: Record<RepairKind, number>;
  lastDurationMs: number;
  /** When the last run finished, and the last run that changed the kernel (epoch ms): `swarmnet status` shows them. */
  lastRunAt?: number;
  lastRepairAt?: number;
  /**
   * Drift: changes made while the desired state was the one the previous complete run had already put in place, i.e.
   * something other than swarmnet changed the kernel (an FDB entry deleted, a neighbour rewritten). By kind.
   */
  drift: Partial<Record<RepairKind, { count: number; lastAt: number }>>;
  /** The last incomplete run's first error, until a run completes. */
  failing?: { error: string; since: number };
  /** Set by the first complete run. */
  fastPath?: FastPathState;
}

export interface ReconcileReport {
  ok: boolean;
  changes: Record<RepairKind, number>;
  errors: string[];
  skipped: Skipped[];
  durationMs: number;
}

export interface ReconcilerOptions {
  /** Directory for the ownership record (the plugin's STATE_DIR). */
  stateDir: string;
  /** Network namespace to program (tests); default the current one. */
  netns?: string;
  /** Period of the drift check, default 10 s. */
  intervalMs?: number;
  /** The flowtable fast path where the kernel has one (OVERLAY_FAST_PATH), default true. */
  fastPath?: boolean;
  log?: Logger;
}

const zero = (): Record<RepairKind, number> => ({ links: 0, addresses: 0, routes: 0, neighbours: 0, fdb: 0, rules: 0, fastPath: 0 });

export class OverlayReconciler {
  readonly stats: ReconcileStats = { runs: 0, failedRuns: 0, repairs: zero(), lastDurationMs: 0, drift: {} };
  /** The desired state the last complete run put in place (serialised), to tell drift from updates. */
  private inPlace = '';
  private runDesired?: string;
  private readonly kernel: Kernel;
  private readonly record: OwnershipRecord;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private state?: OverlayState;
  private tail: Promise<unknown> = Promise.resolve();
  private pending?: Promise<ReconcileReport>;
  private timer?: NodeJS.Timeout;
  private periodic = false;
  private lastSkipped = '';
  private lastForeign = '';
  /** What the last complete run put in place, and the underlay MTU it saw; cleared by any incomplete run. */
  private applied?: { desired: DesiredState; underlayMtu: number };
  /** A run that reads the kernel was asked for (start, the period, reconcile()). */
  private wantFull = true;
  private readonly fastPathWanted: boolean;
  /** Whether the kernel takes a flowtable, probed once when first needed. */
  private flowtable?: boolean;
  /**
   * The fast-path table as the kernel listed it right after our last whole write (devices blanked), and for which
   * pairs: drift is any difference. Kept in the state directory, so a restarted daemon adopts the table instead of
   * rewriting it (a rewrite sends every offloaded flow back through the slow path once).
   */
  private fastWritten?: { pairs: string; shape: string };
  private readonly fastFile: string;

  constructor(opts: ReconcilerOptions) {
    this.kernel = new Kernel(opts.netns);
    this.record = new OwnershipRecord(opts.stateDir);
    this.log = opts.log ?? logger('overlay');
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.fastPathWanted = opts.fastPath ?? true;
    this.fastFile = join(opts.stateDir, 'overlay-fast-path.json');
    this.fastWritten = readWritten(this.fastFile);
  }

  /**
   * Sets the control-plane state and reconciles now: against the kernel as the last complete run left it, or (`full`)
   * against a fresh read of the kernel.
   */
  update(state: OverlayState, full = false): Promise<ReconcileReport> {
    this.state = state;
    if (full) this.wantFull = true;
    return this.queue();
  }

  /** Runs a reconcile that reads the kernel after any in-flight one; calls made while one is queued share it. */
  reconcile(): Promise<ReconcileReport> {
    this.wantFull = true;
    return this.queue();
  }

  private queue(): Promise<ReconcileReport> {
    if (this.pending) return this.pending;
    const p = this.tail.then(() => {
      this.pending = undefined;
      return this.runOnce();
    });
    this.pending = p;
    this.tail = p;
    return p;
  }

  /**
   * A container's veth joined one of our bridges: it enters the flowtable now (one nft call, after any run in
   * flight) rather than at the next pass. A failure is left to that pass.
   */
  portAdded(port: string): Promise<void> {
    const p = this.tail.then(async () => {
      if (this.stats.fastPath !== 'on' || !this.fastWritten) return;
      await this.kernel.nftApply(renderDeviceChange([port], [])).catch(() => undefined);
    });
    this.tail = p;
    return p;
  }

  start(): void {
    if (this.periodic) return;
    this.periodic = true;
    const tick = (): void => {
      if (!this.periodic) return;
      this.timer = setTimeout(() => void this.reconcile().finally(tick), this.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  /** Stops the periodic runs and waits for the one in flight. Kernel state stays (containers keep working). */
  async stop(): Promise<void> {
    this.periodic = false;
    clearTimeout(this.timer);
    await this.tail;
  }

  private async runOnce(): Promise<ReconcileReport> {
    const started = performance.now();
    const report: ReconcileReport = { ok: true, changes: zero(), errors: [], skipped: [], durationMs: 0 };
    const state = this.state;
    this.runDesired = undefined;
    const full = this.wantFull;
    this.wantFull = false;
    if (state) {
      try {
        if (full || !(await this.applyChange(state, report))) await this.apply(state, report);
      } catch (e) {
        report.errors.push((e as Error).message);
      }
    }
    if (report.errors.length) this.applied = undefined;
    report.ok = report.errors.length === 0;
    report.durationMs = performance.now() - started;
    this.stats.runs++;
    if (!report.ok) this.stats.failedRuns++;
    this.stats.lastDurationMs = report.durationMs;
    for (const k of Object.keys(report.changes) as RepairKind[]) this.stats.repairs[k] += report.changes[k];
    const changed = Object.values(report.changes).some((n) => n > 0);
    const now = Date.now();
    this.stats.lastRunAt = now;
    if (changed) this.stats.lastRepairAt = now;
    if (this.runDesired !== undefined && this.runDesired === this.inPlace) {
      for (const k of Object.keys(report.changes) as RepairKind[]) {
        if (report.changes[k] > 0) this.stats.drift[k] = { count: (this.stats.drift[k]?.count ?? 0) + report.changes[k], lastAt: now };
      }
    }
    if (report.ok) {
      this.inPlace = this.runDesired ?? '';
      this.stats.failing = undefined;
    } else {
      this.inPlace = '';
      this.stats.failing ??= { error: report.errors[0] ?? 'unknown', since: now };
    }
    if (!report.ok) this.log.warn({ errors: report.errors.slice(0, 5), changes: report.changes }, 'overlay reconcile incomplete; retrying next period');
    else if (changed) this.log.info({ changes: report.changes, ms: Math.round(report.durationMs) }, 'overlay kernel state repaired');
    return report;
  }

  private collect(report: ReconcileReport, r: BatchResult): void {
    if (r.failed > 0) report.errors.push(...(r.errors.length ? r.errors : [`${r.failed} command(s) failed`]));
  }

  /**
   * The fast path of update(): when only routes, neighbours and FDB entries changed since the last complete run, apply
   * the difference from what it put in place. False when it does not apply (the caller does a full run).
   */
  private async applyChange(state: OverlayState, report: ReconcileReport): Promise<boolean> {
    const last = this.applied;
    if (!last) return false;
    const desired = desiredKernelState(state, { mtu: last.underlayMtu });
    const same = (k: 'links' | 'addresses' | 'filterRules'): boolean => JSON.stringify(desired[k]) === JSON.stringify(last.desired[k]);
    if (!same('links') || !same('addresses') || !same('filterRules')) return false;
    this.begin(desired, report);
    await this.applyEntries(planEntries(desired, entriesOf(last.desired)), report);
    this.applied = { desired, underlayMtu: last.underlayMtu };
    return true;
  }

  private async apply(state: OverlayState, report: ReconcileReport): Promise<void> {
    const links = await this.kernel.links();
    const underlay = links.find((l) => l.name === state.node.underlayInterface);
    if (!underlay) throw new Error(`underlay interface ${state.node.underlayInterface} not found`);
    const desired = desiredKernelState(state, { mtu: underlay.mtu });
    this.begin(desired, report);

    // Phase 1: links. Record before creating, forget after deleting.
    const lp = planLinks(desired, links, (n) => this.record.has(n));
    const foreign = lp.foreign.join(',');
    if (foreign !== this.lastForeign && foreign) this.log.warn({ links: lp.foreign }, 'links with our prefix that we did not create are left alone');
    this.lastForeign = foreign;
    this.record.add(lp.record);
    if (lp.commands.length) {
      this.collect(report, await this.kernel.ipBatch(lp.commands));
      report.changes.links += lp.changed;
    }
    const after = lp.commands.length ? await this.kernel.links() : links;
    const present = new Set(after.map((l) => l.name));
    this.record.remove(lp.forget.filter((n) => !present.has(n)));

    // Phase 2: addresses, neighbours, FDB, routes on the links that now exist.
    const vxlans = desired.links.filter((l) => l.kind === 'vxlan' && present.has(l.name)).map((l) => l.name);
    const [addresses, routes, neigh, fdb] = await Promise.all([
      this.kernel.addresses(),
      this.kernel.ourRoutes(),
      Promise.all(vxlans.map(async (d) => [d, await this.kernel.neighbours(d)] as const)),
      Promise.all(vxlans.map(async (d) => [d, await this.kernel.fdb(d)] as const)),
    ]);
    await this.applyEntries(planEntries(desired, { links: present, addresses, routes, neighbours: new Map(neigh), fdb: new Map(fdb) }), report);

    // Phase 3: filter rules; phase 4: the fast path over the links that exist.
    await this.applyRules(desired, report);
    const pairs = desired.links.flatMap((l) => (l.kind === 'vxlan' && present.has(l.name) && present.has(bridgeName(l.vni)) ? [{ bridge: bridgeName(l.vni), vxlan: l.name }] : []));
    const bridges = new Set(pairs.map((p) => p.bridge));
    await this.applyFastPath(pairs, after.filter((l) => l.master !== undefined && bridges.has(l.master)).map((l) => l.name), report);
    this.applied = { desired, underlayMtu: underlay.mtu };
  }

  /** A run's desired state: kept to tell drift from updates, its skipped input reported and logged. */
  private begin(desired: DesiredState, report: ReconcileReport): void {
    this.runDesired = JSON.stringify(desired);
    report.skipped = desired.skipped;
    this.logOnce(desired);
  }

  private async applyEntries(ep: EntriesPlan, report: ReconcileReport): Promise<void> {
    // FDB first: a route is only useful once its VTEP is reachable.
    this.collect(report, await this.kernel.bridgeBatch(ep.bridge));
    this.collect(report, await this.kernel.ipBatch(ep.ip));
    for (const k of ['addresses', 'routes', 'neighbours', 'fdb'] as const) report.changes[k] += ep.counts[k];
  }

  private async applyRules(desired: DesiredState, report: ReconcileReport): Promise<void> {
    const have = await this.kernel.forwardChainRules();
    if (desired.filterRules.length === 0) {
      if (have !== undefined || (await this.kernel.hasForwardJump())) {
        await this.kernel.removeForwardChain();
        report.changes.rules++;
      }
      return;
    }
    if (!have || have.length !== desired.filterRules.length || have.some((r, i) => r !== desired.filterRules[i])) {
      await this.kernel.writeForwardChain(desired.filterRules);
      report.changes.rules++;
    }
    if (!(await this.kernel.hasForwardJump())) {
      await this.kernel.insertForwardJump();
      report.changes.rules++;
    }
  }

  /**
   * Writes the whole table when it is missing, differs from what we wrote, or the networks changed; removes it when
   * unwanted. Ports (containers) coming and going only add or remove flowtable devices: other flows stay offloaded.
   * That follows Docker, not drift, so it is not counted as a change.
   */
  private async applyFastPath(pairs: FastPathPair[], ports: string[], report: ReconcileReport): Promise<void> {
    if (this.fastPathWanted && pairs.length > 0 && this.flowtable === undefined) {
      this.flowtable = await this.kernel.flowtableSupported();
      if (!this.flowtable) this.log.info({}, 'overlay fast path unavailable: the kernel has no nftables flowtable (CONFIG_NF_FLOW_TABLE); traffic takes the regular forward path');
    }
    const state: FastPathState = !this.fastPathWanted ? 'off' : pairs.length === 0 ? 'idle' : this.flowtable ? 'on' : 'unavailable';
    if (this.flowtable === false) { // the kernel cannot hold the table: nothing to read or remove
      this.stats.fastPath = state;
      return;
    }
    const have = await this.kernel.fastPathListing();
    if (state !== 'on') {
      if (have !== undefined) {
        await this.kernel.nftApply(renderFastPathRemoval());
        report.changes.fastPath++;
      }
      this.rememberFastPath(undefined);
    } else {
      const key = JSON.stringify(pairs);
      const devices = fastPathDevices(pairs, ports);
      const now = have === undefined ? undefined : splitListing(have);
      if (!now || this.fastWritten?.pairs !== key || this.fastWritten.shape !== now.shape) {
        this.rememberFastPath(undefined);
        await this.kernel.nftApply(renderFastPath(pairs, devices));
        this.rememberFastPath({ pairs: key, shape: splitListing((await this.kernel.fastPathListing()) ?? '').shape });
        report.changes.fastPath++;
      } else {
        const add = devices.filter((d) => !now.devices.includes(d));
        const remove = now.devices.filter((d) => !devices.includes(d));
        // Best effort: a container that left between the listing and the write fails the change (it names a gone
        // link); the next pass tries again, and meanwhile only that container's flows take the regular path.
        if (add.length || remove.length) await this.kernel.nftApply(renderDeviceChange(add, remove)).catch((e: Error) => this.log.debug({ add, remove, err: e.message }, 'fast path devices not changed; next pass'));
      }
    }
    this.stats.fastPath = state;
  }

  private rememberFastPath(w: { pairs: string; shape: string } | undefined): void {
    if (w === undefined && this.fastWritten === undefined) return;
    this.fastWritten = w;
    if (!w) return rmSync(this.fastFile, { force: true });
    writeFileSync(`${this.fastFile}.tmp`, JSON.stringify(w) + '\n', { mode: 0o600 });
    renameSync(`${this.fastFile}.tmp`, this.fastFile);
  }

  private logOnce(desired: DesiredState): void {
    const key = JSON.stringify(desired.skipped);
    if (key !== this.lastSkipped && desired.skipped.length) this.log.warn({ skipped: desired.skipped.slice(0, 20), count: desired.skipped.length }, 'overlay input not programmed');
    this.lastSkipped = key;
  }
}

/** The remembered fast-path write, or undefined (none, or unreadable: the table is then written again). */
function readWritten(file: string): { pairs: string; shape: string } | undefined {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as { pairs?: unknown; shape?: unknown };
    return typeof v.pairs === 'string' && typeof v.shape === 'string' ? { pairs: v.pairs, shape: v.shape } : undefined;
  } catch {
    return undefined;
  }
}
