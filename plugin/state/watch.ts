import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { logger } from '../../common/log.js';

const log = logger('etcd-watch');

export interface WatchEvent { type: 'put' | 'delete'; key: string; value?: string; revision: number }

export interface PrefixWatchHandlers {
  /** The whole prefix as of `revision`: at start, and again after a compaction or any break the watch cannot resume. */
  onSnapshot(kvs: Map<string, string>, revision: number): void;
  /** One change after the last snapshot, in revision order. */
  onEvent(ev: WatchEvent): void;
}

export interface PrefixWatchOptions {
  /** First and maximum delay between resync attempts while etcd is unreachable. */
  retryMs?: number;
  maxRetryMs?: number;
}

/**
 * A watch on a key prefix that never silently loses a change. It lists the prefix, then watches from the listed
 * revision + 1. A broken stream is resumed by etcd3 from the last revision seen; when that revision was compacted
 * (etcd cancels the watch) or the watch fails otherwise, it lists again (a full resync) and watches from there.
 */
export class PrefixWatch {
  /**
   * Listings (the first one included), changes delivered, streams broken and resumed by etcd3; whether the stream is
   * attached now, and when a change last arrived (epoch ms: etcd gives events no time, so lag itself is unknown).
   */
  readonly stats: { snapshots: number; events: number; disconnects: number; connected: boolean; lastEventAt?: number } = {
    snapshots: 0, events: 0, disconnects: 0, connected: false,
  };
  private watcher?: Watcher;
  private closed = false;
  private timer?: NodeJS.Timeout;
  private generation = 0;

  private constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly handlers: PrefixWatchHandlers,
    private readonly opts: Required<PrefixWatchOptions>,
  ) {}

  /** Resolves once the first snapshot was delivered and the watch is established (rejects if etcd is unreachable). */
  static async start(client: Etcd3, prefix: string, handlers: PrefixWatchHandlers, opts: PrefixWatchOptions = {}): Promise<PrefixWatch> {
    const w = new PrefixWatch(client, prefix, handlers, { retryMs: opts.retryMs ?? 200, maxRetryMs: opts.maxRetryMs ?? 5000 });
    await w.sync();
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stats.connected = false;
    clearTimeout(this.timer);
    await this.watcher?.cancel().catch(() => undefined);
  }

  private async sync(): Promise<void> {
    const gen = ++this.generation;
    const res = await this.client.getAll().prefix(this.prefix).exec();
    const revision = Number(res.header.revision);
    this.stats.snapshots++;
    this.handlers.onSnapshot(new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()])), revision);
    const watcher = await this.client.watch().prefix(this.prefix).startRevision(String(revision + 1)).create();
    if (this.closed || gen !== this.generation) {
      await watcher.cancel().catch(() => undefined);
      return;
    }
    this.watcher = watcher;
    this.stats.connected = true;
    const emit = (type: WatchEvent['type']) => (kv: IKeyValue): void => {
      this.stats.events++;
      this.stats.lastEventAt = Date.now();
      this.handlers.onEvent({ type, key: kv.key.toString(), ...(type === 'put' ? { value: kv.value.toString() } : {}), revision: Number(kv.mod_revision) });
    };
    watcher.on('put', emit('put'));
    watcher.on('delete', emit('delete'));
    watcher.on('disconnected', () => {
      if (gen !== this.generation) return;
      this.stats.disconnects++;
      this.stats.connected = false;
    });
    watcher.on('connected', () => { if (gen === this.generation) this.stats.connected = true; });
    watcher.on('error', (err: Error) => {
      if (gen !== this.generation) return;
      this.stats.connected = false;
      log.warn({ prefix: this.prefix, err: err.message }, 'watch cannot resume; full resync');
      void watcher.cancel().catch(() => undefined);
      this.resyncLater(this.opts.retryMs);
    });
  }

  private resyncLater(delay: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.sync().catch((err: Error) => {
        log.warn({ prefix: this.prefix, err: err.message, retryMs: delay }, 'resync failed; retrying');
        this.resyncLater(Math.min(delay * 2, this.opts.maxRetryMs));
      });
    }, delay);
    this.timer.unref();
  }
}
