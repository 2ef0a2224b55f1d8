/**
 * Queries per second per container (DNS_MAX_QPS_PER_CONTAINER): a token bucket per view, `perSecond` tokens a
 * second up to `burst`. Past it the listener stops taking that container's queries until tokens are back (UDP: the
 * socket is not read, TCP: the connection waits, both in the container's RateLine), so a flooding container costs
 * the resolver its budget and no more, and every other container keeps its latency. Pure: the clock is passed in.
 */
export class QueryRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private takes = 0;
  readonly burst: number;

  constructor(readonly perSecond: number, burst = perSecond, private readonly now: () => number = () => performance.now()) {
    if (!(perSecond > 0)) throw new Error(`queries per second must be positive, got ${perSecond}`);
    this.burst = Math.max(1, burst);
  }

  /** n queries of view's budget (default one); false when it has fewer (nothing is taken then). */
  take(view: string, n = 1): boolean {
    const t = this.now();
    if (++this.takes >= 4096) this.sweep(t);
    const b = this.buckets.get(view);
    if (!b) {
      if (n > this.burst) return false;
      this.buckets.set(view, { tokens: this.burst - n, at: t });
      return true;
    }
    b.tokens = this.level(b, t);
    b.at = t;
    if (b.tokens < n) return false;
    b.tokens -= n;
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

/**
 * The line for a container's budget: its listener and each of its TCP connections that find the budget short wait
 * here, and are served in the order they came, each with the queries it asked for taken on its behalf. Without it
 * they raced for each renewal: a UDP read could take 16 datagrams of which the TCP connections had just spent the
 * budget (read, then dropped), and a new connection could wait seconds behind the others. Timers are passed in.
 */
export class RateLine {
  private readonly lines = new Map<string, { n: number; run: () => void; gone: boolean }[]>();

  constructor(
    readonly rate: QueryRate,
    private readonly after: (fn: () => void, ms: number) => void = (fn, ms) => { setTimeout(fn, ms).unref(); },
  ) {}

  /** n of view's budget now, unless someone waits for it (they come first); false takes nothing. */
  take(view: string, n = 1): boolean {
    return !this.lines.has(view) && this.rate.take(view, n);
  }

  /**
   * run() once n of view's budget (at most the burst) is taken for the caller, after everyone already waiting;
   * never before wait() returns. The result cancels the wait (a closed connection): what it would have taken
   * stays in the budget.
   */
  wait(view: string, n: number, run: () => void): () => void {
    const w = { n: Math.max(1, Math.min(n, this.rate.burst)), run, gone: false };
    const line = this.lines.get(view);
    if (line) line.push(w);
    else {
      this.lines.set(view, [w]);
      this.serveLater(view, w.n);
    }
    return () => { w.gone = true; };
  }

  /** Containers with someone waiting (tests). */
  get size(): number {
    return this.lines.size;
  }

  private serve(view: string): void {
    const line = this.lines.get(view)!;
    while (line.length) {
      const head = line[0]!;
      if (!head.gone && !this.rate.take(view, head.n)) {
        this.serveLater(view, head.n);
        return;
      }
      line.shift();
      if (!head.gone) head.run(); // may wait again: it joins the end of this line
    }
    this.lines.delete(view);
  }

  private serveLater(view: string, n: number): void {
    this.after(() => this.serve(view), Math.max(1, this.rate.waitMs(view, n)));
  }
}
