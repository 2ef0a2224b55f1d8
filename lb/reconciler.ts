import type { Logger } from '../common/log.js';
import type { LbBackend } from './backend.js';
import { deleteFlows } from './conntrack.js';
import { applyDelta, copyState, diffStates, EMPTY_STATE, holds, isEmptyDelta, type LbDelta, type LbState, type WrittenState } from './desired.js';
import type { LbModel, ModelChange } from './model.js';

/**
 * Keeps the kernel's load balancer equal to the model, the overlay reconciler's way: a change is sent as its delta
 * (coalesced: events that arrive while a write runs go into the next one), and every interval the kernel is read
 * and repaired if it drifted. At start the kernel is compared first and left alone when it already holds the
 * state, so traffic keeps flowing across a plugin restart.
 */

export interface LbStats {
  syncs: number;
  /** Deltas the kernel refused (then the whole state was written instead), and when the last one was. */
  failures: number;
  lastRefusedAt?: number;
  /** A write failed (the kernel may lack changes): retried whole at the next change or check, cleared once one lands. */
  failing?: { error: string; since: number };
  /** Drift found by the periodic check (or at start) and repaired. */
  repairs: number;
  /** Conntrack entries deleted for backends that left. */
  flowsDeleted: number;
  vips: number;
  backends: number;
  lastSyncMs: number;
  /** When the kernel was last written, last compared with what was written, last repaired (epoch ms). */
  lastSyncAt?: number;
  lastCheckAt?: number;
  lastRepairAt?: number;
}

export interface LbReconcilerOptions {
  backend: LbBackend;
  model: LbModel;
  log: Logger;
  intervalMs?: number;
  /** Namespace for conntrack (tests). */
  netns?: string;
  /** Seconds from a model change to the kernel holding it (a histogram in the plugin). */
  onProgrammed?: (seconds: number) => void;
  /** Drift was found and repaired. */
  onRepair?: () => void;
}

export class LbReconciler {
  readonly stats: LbStats = { syncs: 0, failures: 0, repairs: 0, flowsDeleted: 0, vips: 0, backends: 0, lastSyncMs: 0 };
  private written: WrittenState = copyState(EMPTY_STATE);
  private tail: Promise<void> = Promise.resolve();
  private queued = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private checked = false;
  /** The last write failed: the kernel may hold less than `written`, so the next write is the whole state. */
  private dirty = false;

  constructor(private readonly o: LbReconcilerOptions) {}

  /**
   * Call once the model holds its first snapshot: compares the kernel with it and repairs it (after a restart it
   * usually holds the state already and is left alone), then checks it every interval.
   */
  start(): void {
    this.o.model.takeChange();
    const every = this.o.intervalMs ?? 10_000;
    const check = (): void => void this.enqueue(() => this.check()).finally(() => {
      if (this.stopped) return;
      this.timer = setTimeout(check, every);
      this.timer.unref?.();
    });
    check();
  }

  /** The model changed: write the delta soon (one write for everything that arrived meanwhile). */
  changed(): void {
    if (this.queued || this.stopped) return;
    this.queued = true;
    void this.enqueue(async () => {
      this.queued = false;
      await this.flush(this.o.model.takeChange());
    });
  }

  /** Resolves when every write queued so far is done (tests, benchmarks). */
  settled(): Promise<void> {
    return this.tail;
  }

  /** Stops writing; the kernel keeps its state (a restarted plugin finds it and leaves it alone). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.tail;
  }

  /** Stops and removes every kernel object of ours (plugin disabled for good, tests). */
  async remove(): Promise<void> {
    await this.stop();
    await this.o.backend.remove();
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const p = this.tail.then(fn).catch((e: Error) => {
      this.dirty = true;
      this.stats.failing ??= { error: e.message.slice(0, 300), since: Date.now() };
      this.o.log.error({ err: e.message }, 'load balancer write failed; the whole state is written at the next change or check');
    });
    this.tail = p;
    return p;
  }

  private async flush(change: ModelChange): Promise<void> {
    if (this.stopped) return;
    const desired = this.o.model.state();
    const delta = diffStates(this.written, desired, change.vips, change.local);
    if (this.dirty || !isEmptyDelta(delta)) {
      const t0 = performance.now();
      // The first VIP creates the table and the last one removes it, and a failed write is retried: whole-state writes.
      const applied = !this.dirty && this.written.vips.size > 0 && desired.vips.size > 0 && await this.tryApply(delta, change.gone);
      if (!applied) await this.write(desired);
      this.synced(t0, applied ? delta : undefined);
      await this.cleanFlows(delta, change.gone);
    }
    if (change.since !== undefined) this.o.onProgrammed?.((performance.now() - change.since) / 1000);
  }

  /** A delta the kernel refuses (someone edited it) is counted; the caller then writes the whole state instead. */
  private async tryApply(delta: LbDelta, gone: ModelChange['gone']): Promise<boolean> {
    try {
      await this.o.backend.apply(delta, gone);
      applyDelta(this.written, delta);
      return true;
    } catch (e) {
      this.stats.failures++;
      this.stats.lastRefusedAt = Date.now();
      this.o.log.warn({ err: (e as Error).message, vips: delta.vips.size }, 'load balancer delta refused; rewriting the whole state');
      return false;
    }
  }

  /**
   * The first check adopts a kernel that already holds the state (a restarted plugin) or writes it; later ones
   * compare the kernel with what was written (changes not written yet are the next flush's) and repair drift. After
   * a failed write the whole state is written (the failed one's changes are in no pending change any more).
   */
  private async check(): Promise<void> {
    if (this.stopped) return;
    const desired = this.o.model.state();
    const actual = (await this.o.backend.read()) ?? EMPTY_STATE;
    this.stats.lastCheckAt = Date.now();
    if (!this.checked) {
      if (holds(actual, desired)) {
        this.written = copyState(desired);
        this.checked = true;
        return;
      }
    } else if (!this.dirty) {
      if (holds(actual, this.written)) return;
      this.stats.repairs++;
      this.stats.lastRepairAt = Date.now();
      this.o.onRepair?.();
      this.o.log.warn({ vips: this.written.vips.size, found: actual.vips.size }, 'load balancer drifted from what was written; repaired');
    }
    const t0 = performance.now();
    await this.write(desired);
    this.checked = true;
    this.synced(t0);
  }

  private async write(desired: LbState): Promise<void> {
    // The model's state is live and events keep arriving while the kernel is written: what was written is the
    // state as it was rendered, and whatever arrived meanwhile is the next flush's delta against it.
    const snapshot = copyState(desired);
    await this.o.backend.replace(snapshot);
    this.written = snapshot;
    this.dirty = false;
    this.stats.failing = undefined;
  }

  /** Counts a write; the backend count follows an applied delta (O(the change)), or is recounted after a whole write. */
  private synced(t0: number, delta?: LbDelta): void {
    this.stats.syncs++;
    this.stats.lastSyncMs = performance.now() - t0;
    this.stats.lastSyncAt = Date.now();
    this.stats.vips = this.written.vips.size;
    if (delta) {
      for (const { prev, next } of delta.vips.values()) this.stats.backends += (next?.backends.length ?? 0) - (prev?.backends.length ?? 0);
      return;
    }
    let n = 0;
    for (const e of this.written.vips.values()) n += e.backends.length;
    this.stats.backends = n;
  }

  /** UDP flows to a backend that left are deleted; TCP flows only when its container is gone (graceful drain). */
  private async cleanFlows(delta: LbDelta, gone: Map<string, Set<string>>): Promise<void> {
    for (const [vip, { prev, next }] of delta.vips) {
      if (!prev) continue;
      const kept = new Set(next?.backends ?? []);
      for (const b of prev.backends) {
        if (kept.has(b)) continue;
        const protos: ('udp' | 'tcp')[] = gone.get(vip)?.has(b) ? ['udp', 'tcp'] : ['udp'];
        for (const p of protos) {
          try {
            this.stats.flowsDeleted += await deleteFlows(vip, b, p, this.o.netns);
          } catch (e) {
            this.o.log.warn({ err: (e as Error).message, vip, backend: b }, 'could not delete the flows of a backend that left');
          }
        }
      }
    }
  }
}
