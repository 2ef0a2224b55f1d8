import { readFileSync } from 'node:fs';
import { Etcd3, type IKeyValue, type IOptions, type Lease } from 'etcd3';
import type { Config } from '../config.js';
import { logger } from '../../common/log.js';

const log = logger('etcd');

/**
 * What this process asked etcd for, counted where every request passes (the KV client): reads and the keys and bytes
 * they returned (watch snapshots included), writes, transactions and how many lost their compare. This is what makes
 * "a change costs O(the change)" measurable (metrics; test/daemon/etcd-reads.test.ts guards it).
 */
export interface EtcdCallStats { reads: number; keysRead: number; bytesRead: number; writes: number; txns: number; txnsFailed: number }

const counted = new WeakMap<Etcd3, EtcdCallStats>();
const noCalls = (): EtcdCallStats => ({ reads: 0, keysRead: 0, bytesRead: 0, writes: 0, txns: 0, txnsFailed: 0 });

/** The counters of a client made by createEtcdClient (zeros for any other). */
export function etcdCallStats(client: Etcd3): EtcdCallStats {
  return counted.get(client) ?? noCalls();
}

function countCalls(client: Etcd3): void {
  const s = noCalls();
  const read = (kvs: IKeyValue[] | undefined): void => {
    for (const kv of kvs ?? []) { s.keysRead++; s.bytesRead += kv.key.length + kv.value.length; }
  };
  const kv = client.kv;
  const range = kv.range.bind(kv);
  const txn = kv.txn.bind(kv);
  const put = kv.put.bind(kv);
  const del = kv.deleteRange.bind(kv);
  kv.range = async (req, opts) => {
    s.reads++;
    const res = await range(req, opts);
    read(res.kvs);
    return res;
  };
  kv.txn = async (req, opts) => {
    s.txns++;
    const res = await txn(req, opts);
    if (!res.succeeded) s.txnsFailed++;
    for (const r of res.responses ?? []) read(r.response_range?.kvs);
    return res;
  };
  kv.put = (req, opts) => { s.writes++; return put(req, opts); };
  kv.deleteRange = (req, opts) => { s.writes++; return del(req, opts); };
  counted.set(client, s);
}

/**
 * grpc-js passes the endpoint's host as the TLS server name, and etcd is usually dialled by IP address (its
 * certificate names the IP): Node deprecates an IP there (DEP0123) and printed that on every run of every command.
 * The certificate is still checked against the IP. Only that warning is dropped.
 */
function quietIpServerName(): void {
  if ((process.emitWarning as { quiet?: boolean }).quiet) return;
  const emit = process.emitWarning.bind(process);
  const quiet = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    (emit as (...a: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
  process.emitWarning = Object.assign(quiet, { quiet: true });
}

/** The one long-lived etcd client of the process: TLS and auth from config, a deadline on every unary call. */
export function createEtcdClient(etcd: Config['etcd']): Etcd3 {
  const opts: IOptions = {
    hosts: etcd.endpoints,
    dialTimeout: etcd.requestTimeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + etcd.requestTimeoutMs }),
    // etcd3's defaults stay for unary calls (3 attempts, per-host circuit breaker); a broken watch stream is
    // re-opened after a capped exponential delay (its default grows to 30 s and a watch can resume late).
    faultHandling: { watchBackoff: cappedBackoff(100, 5000) },
  };
  if (etcd.caFile || etcd.certFile) {
    quietIpServerName();
    opts.credentials = {
      rootCertificate: etcd.caFile ? readFileSync(etcd.caFile) : Buffer.alloc(0),
      ...(etcd.certFile && etcd.keyFile ? { certChain: readFileSync(etcd.certFile), privateKey: readFileSync(etcd.keyFile) } : {}),
    };
  }
  if (etcd.username && etcd.password) opts.auth = { username: etcd.username, password: etcd.password };
  const client = new Etcd3(opts);
  countCalls(client);
  return client;
}

/** Exponential backoff with ±20 % jitter, capped; etcd3 restarts it from `first` after any successful response. */
export function cappedBackoff(firstMs: number, maxMs: number): NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']> {
  const at = (ms: number) => ({
    duration: Math.round(ms * (0.8 + Math.random() * 0.4)),
    next: () => at(Math.min(ms * 2, maxMs)),
  });
  return at(firstMs);
}

/**
 * The node's etcd lease: everything the node owns is attached to it, so a dead node's state expires after the TTL.
 * etcd3 keeps it alive at TTL/3; if it is lost (etcd unreachable longer than the TTL, or the grant itself failed) a
 * new one is granted after a capped, growing delay (no hot loop while etcd is down), and `onRenewed` lets the owner
 * rewrite its state. Until then `id()` rejects, so callers fail with 503 rather than write unleased state.
 */
export class NodeLease {
  readonly stats = { lost: 0, granted: 0 };
  private lease: Lease;
  private closed = false;
  private retry = cappedBackoff(200, 5000);
  private timer?: NodeJS.Timeout;
  /** Between a loss and the next grant: etcd3 would still hand out the dead lease's id. */
  private lost = false;

  constructor(
    private readonly client: Etcd3,
    private readonly ttlSeconds: number,
    private readonly onRenewed: () => void = () => {},
  ) {
    this.lease = this.create();
  }

  private create(): Lease {
    const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    lease.grant().then(() => {
      this.stats.granted++;
      this.retry = cappedBackoff(200, 5000);
    }, () => undefined);
    lease.once('lost', (err: Error) => {
      if (this.closed || lease !== this.lease) return;
      this.stats.lost++;
      this.lost = true;
      const delay = this.retry.duration;
      this.retry = this.retry.next(undefined);
      log.warn({ err: err.message, retryMs: delay }, 'node lease lost; granting a new one');
      this.timer = setTimeout(() => {
        if (this.closed) return;
        this.lost = false;
        this.lease = this.create();
        this.onRenewed();
      }, delay);
      this.timer.unref();
    });
    return lease;
  }

  /** The lease id (always awaited: etcd3 builders are lazy). */
  id(): Promise<string> {
    if (this.lost) return Promise.reject(new Error('the node lease was lost; a new one is being granted'));
    return this.lease.grant();
  }

  async close(revoke = false): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    if (revoke) await this.lease.revoke();
    else this.lease.release();
  }
}

/** What went wrong with an etcd call, in words an operator can act on: etcd3's circuit breaker names a mechanism
 * ("Execution prevented because the circuit breaker is open"), not the cause. */
export function etcdFailure(e: Error): string {
  if (e.name === 'BrokenCircuitError' || /circuit breaker is open/i.test(e.message)) {
    return 'no answer from etcd (its last calls failed; calls pause for a few seconds, then try it again)';
  }
  return e.message;
}
