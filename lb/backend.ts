import type { LbDelta, LbState } from './desired.js';

/**
 * One kernel backend of the load balancer (nftables or IPVS). The reconciler (lb/reconciler.ts) keeps the copy of
 * what was written and sends each change as a delta; `read` gives what the kernel holds now (only our objects), so
 * drift is repaired with `replace`. Every method is idempotent and leaves no half-made state: a failed `apply` is
 * followed by `replace`.
 */
export interface LbBackend {
  readonly kind: 'nftables' | 'ipvs';
  /**
   * Applies one delta, atomically where the kernel allows it. Throws on failure (the caller then replaces).
   * `gone`: per VIP, the removed backends whose container is gone: nothing is left to drain to them.
   */
  apply(delta: LbDelta, gone: ReadonlyMap<string, ReadonlySet<string>>): Promise<void>;
  /** Makes the kernel hold exactly `state` (removes everything of ours when it has no VIP and no local address). */
  replace(state: LbState): Promise<void>;
  /** What the kernel holds of ours, in the same form (undefined: nothing of ours is there; DAMAGED: unparseable). */
  read(): Promise<LbState | undefined>;
  /** Removes every object of ours. */
  remove(): Promise<void>;
}
