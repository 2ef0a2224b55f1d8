/**
 * Histogram counts kept by a hot path itself (the DNS server), free of prom-client: one observe is a short scan from
 * the smallest bound (fast answers stop at once) and three additions, no allocation, no label lookup. The metrics
 * layer turns them into a Prometheus histogram at scrape time (plugin/metrics.ts BucketsHistogram).
 */
export class LatencyBuckets {
  /** Per bound, observations ≤ it and > the previous bound; the last slot is above every bound (+Inf). */
  readonly counts: number[];
  sum = 0;
  count = 0;

  /** `bounds`: ascending upper bounds in seconds. */
  constructor(readonly bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++) if (!(bounds[i]! > bounds[i - 1]!)) throw new RangeError('bounds must ascend');
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }

  /** Prometheus' cumulative view: observations ≤ each bound, in bound order (the +Inf bucket is `count`). */
  cumulative(): number[] {
    const out: number[] = [];
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) out.push(acc += this.counts[i]!);
    return out;
  }
}
