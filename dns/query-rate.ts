/**
 * Queries per second per container (DNS_MAX_QPS_PER_CONTAINER): a token bucket per view, `perSecond` tokens a
 * second up to `burst`. Past it the listener stops taking that container's queries until tokens are back (UDP: the
 * socket is not read, TCP: the connection waits), so a flooding container costs the resolver its budget and no
 * more, and every other container keeps its latency. Pure: the clock is passed in.
 */
export class QueryRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private takes = 0;
  readonly burst: number;

  constructor(readonly perSecond: number, burst = perSecond, private readonly now: () => number = () => performance.now()) {
    if (!(perSecond > 0)) throw new Error(`queries per second must be positive, got ${perSecond}`);
    this.burst = Math.max(1, burst);
  }

  /** One query of view's budget; false when it is spent (nothing is taken then). */
  take(view: string): boolean {
    const t = this.now();
    if (++this.takes >= 4096) this.sweep(t);
    const b = this.buckets.get(view);
    if (!b) {
      this.buckets.set(view, { tokens: this.burst - 1, at: t });
      return true;
    }
    b.tokens = this.level(b, t);
    b.at = t;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** Milliseconds until view has `n` queries of budget again (0 when it has). */
  waitMs(view: string, n = 1): number {
    const b = this.buckets.get(view);
    if (!b) return 0;
    const want = Math.min(n, this.burst);
    const have = this.level(b, this.now());
    return have >= want ? 0 : ((want - have) * 1000) / this.perSecond;
  }

  /** Containers tracked (tests): a full bucket is forgotten, so idle and gone containers cost nothing. */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(t: number): void {
    this.takes = 0;
    for (const [view, b] of this.buckets) if (this.level(b, t) >= this.burst) this.buckets.delete(view);
  }

  /** A bucket's tokens at time t: what it had, plus what renewed since, up to the burst. */
  private level(b: { tokens: number; at: number }, t: number): number {
    return Math.min(this.burst, b.tokens + ((t - b.at) * this.perSecond) / 1000);
  }
}
