import type dgram from 'node:dgram';
import type net from 'node:net';
import { errorResponse, RCODE, truncate } from './codec.js';
import { Forwarder } from './forwarder.js';
import { CONTAINER_DATAGRAMS_PER_TURN } from './netns-listener.js';
import { QueryRate, RateLine } from './query-rate.js';
import { Resolver, type Outcome } from './resolver.js';
import type { Table } from './table.js';
import { frameTcp, TcpFrameReader } from './tcp-frame.js';
import type { BatchUdp } from './udp-batch.js';
import { replySender } from './udp-reply.js';
import { hostUpstreams, parseUpstream, type Upstream } from './upstreams.js';
import { logger } from '../common/log.js';
import { LatencyBuckets } from '../common/latency-buckets.js';

const log = logger('dns');

export interface Listener {
  udp?: dgram.Socket;
  /** UDP through recvmmsg/sendmmsg (dns/udp-batch.ts), instead of or besides a dgram socket. */
  batchUdp?: BatchUdp;
  tcp?: net.Server;
  /** Every client of this listener gets this container's view (a listener inside one container's namespace). */
  view?: string;
  /** Client address → container id whose view answers it; default: the container owning that address. */
  viewOf?: (remoteAddr: string) => string;
  /**
   * Where this listener's misses go instead of the view's servers: a forwarder dialing from the container's own
   * namespace and the servers there (Docker's resolver). A promise while that is still being found out; undefined
   * falls back to the view's servers.
   */
  route?: () => Route | undefined | Promise<Route | undefined>;
}

export interface Route { forwarder: Forwarder; servers: readonly Upstream[] }

export interface ServerOptions {
  /** DNS_DOCKER_COMPATIBILITY_MODE: Docker's first-network-wins walk (true) or all attached networks (false). */
  compat: boolean;
  /** For views without their own servers; default: the host's resolv.conf (hostUpstreams). */
  defaultUpstreams?: Upstream[];
  forwarder?: Forwarder;
  /** TCP: close a connection idle this long, or one that leaves a message half-sent this long (default 10 s). */
  tcpIdleMs?: number;
  /**
   * TCP: connections per container (a listener with a fixed view is one container; on a shared listener, per view);
   * more are closed at once (default 256).
   */
  maxTcpConnections?: number;
  /** TCP: connections over all listeners of the process (one per served container): default 4096. */
  maxTcpTotal?: number;
  /**
   * Forwarded queries of one container in flight at once, whichever forwarder they go through; past it the answer is
   * REFUSED at once (default 1024, Docker's maxConcurrent per container).
   */
  maxForwardsPerContainer?: number;
  /**
   * TCP messages of one listener handled per event-loop turn (default 16); the rest wait for the next turn, their
   * connections paused. With the UDP datagrams per turn of a container's listener (dns/netns-listener.ts), this
   * bounds what one container makes every other container wait.
   */
  tcpMessagesPerTurn?: number;
  /**
   * Queries per second of one container, both transports (DNS_MAX_QPS_PER_CONTAINER), with a second's worth as
   * burst; 0 or undefined: no cap. Past it a container's UDP listener is not read until its budget renews (the
   * kernel drops what overflows its buffer) and its TCP messages wait, in the container's line (dns/query-rate.ts):
   * the flood costs the resolver nothing more.
   */
  maxQpsPerContainer?: number;
}

/** The server's own forwarder (misses of containers without a route of their own): in flight over all containers. */
const SHARED_MAX_IN_FLIGHT = 4096;

/** Per TCP connection: stop reading while this many forwarded queries are outstanding, resume at half. */
const TCP_MAX_OUTSTANDING = 64;
/** Per TCP connection: a client that does not read its answers is dropped past this much unsent data. */
const TCP_MAX_UNSENT = 256 * 1024;

/** A container past its query budget is logged at most this often. */
const LIMIT_LOG_MS = 60_000;

/** Query latency bounds (s): tens of microseconds for a table answer, up to the forwarder's timeouts for a miss. */
export const QUERY_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** What the server counts (plain numbers on the hot path; plugin/dns-plane.ts exports them). */
export interface DnsServerStats {
  /** Queries taken in (every listener, both transports). */
  queries: number;
  /** Answered from the table: names, NODATA, the ndots rule, FORMERR/NOTIMP. */
  local: number;
  /** Misses handed to the forwarder. */
  forwarded: number;
  /** Answered SERVFAIL or REFUSED by this server: no upstream gave a usable answer, too many forwards in flight,
   * or an internal error. */
  failed: number;
  /** Refused by a per-container limit: forwarded queries past maxForwardsPerContainer (answered REFUSED, also
   * counted in failed), TCP connections past maxTcpConnections or maxTcpTotal (closed at once), queries past
   * maxQpsPerContainer (`qps`, each query that waited for its container's budget once: UDP datagrams read after the
   * listener waited, TCP messages held on their connection; what the kernel drops while a listener waits is not seen). */
  limited: { forwards: number; tcpConnections: number; qps: number };
  /** From taking a query in to its answer being ready to send, per path. */
  localSeconds: LatencyBuckets;
  forwardedSeconds: LatencyBuckets;
}

export type Reply = Buffer | undefined;
type Forward = Extract<Outcome, { kind: 'forward' }>;

/** One process, many views: each query is answered from the view of the container that asked. */
export class DnsServer {
  private resolver: Resolver;
  private readonly forwarder: Forwarder;
  private readonly defaults: Upstream[];
  private readonly upstreamCache = new Map<string, Upstream[]>();
  private readonly tcpIdleMs: number;
  private readonly maxTcp: number;
  private readonly maxTcpTotal: number;
  private readonly maxForwards: number;
  private readonly tcpPerTurn: number;
  private tcpOpen = 0;
  /** The per-container query budgets and the line for them (maxQpsPerContainer). */
  private readonly rate?: RateLine;
  /** When each container past its query budget was last logged. */
  private readonly limitLogged = new Map<string, number>();
  /** Open TCP connections per view (container). */
  private readonly tcpByView = new Map<string, number>();
  /** Forwarded queries in flight per view (container); an entry lives while it has any. */
  private readonly forwarding = new Map<string, number>();
  readonly stats: DnsServerStats = {
    queries: 0, local: 0, forwarded: 0, failed: 0, limited: { forwards: 0, tcpConnections: 0, qps: 0 },
    localSeconds: new LatencyBuckets(QUERY_BOUNDS), forwardedSeconds: new LatencyBuckets(QUERY_BOUNDS),
  };

  constructor(table: Table, private readonly opts: ServerOptions) {
    this.resolver = new Resolver(table, { compat: opts.compat });
    this.forwarder = opts.forwarder ?? new Forwarder({ maxInFlight: SHARED_MAX_IN_FLIGHT });
    this.defaults = opts.defaultUpstreams ?? hostUpstreams();
    this.tcpIdleMs = opts.tcpIdleMs ?? 10_000;
    this.maxTcp = opts.maxTcpConnections ?? 256;
    this.maxTcpTotal = opts.maxTcpTotal ?? 4096;
    this.maxForwards = opts.maxForwardsPerContainer ?? 1024;
    this.tcpPerTurn = Math.max(1, opts.tcpMessagesPerTurn ?? 16);
    if (opts.maxQpsPerContainer) this.rate = new RateLine(new QueryRate(opts.maxQpsPerContainer));
  }

  /** Takes one query of view's budget; past it the query is counted (the caller drops or holds it). */
  private admit(view: string): boolean {
    if (!this.rate || this.rate.take(view)) return true;
    this.overBudget(view, 1);
    return false;
  }

  /** n of view's queries waited for its budget or were dropped past it: counted, the container logged once a minute. */
  private overBudget(view: string, n: number): void {
    this.stats.limited.qps += n;
    const now = Date.now();
    const last = this.limitLogged.get(view);
    if (last !== undefined && now - last < LIMIT_LOG_MS) return;
    if (this.limitLogged.size >= 1024) for (const [v, at] of this.limitLogged) if (now - at >= LIMIT_LOG_MS) this.limitLogged.delete(v);
    this.limitLogged.set(view, now);
    log.warn({ container: view.slice(0, 12), limit: this.rate!.rate.perSecond }, 'container asks more DNS queries per second than DNS_MAX_QPS_PER_CONTAINER; the rest wait or are dropped');
  }

  /** Swaps in a new table; queries already being forwarded finish against the old one. */
  setTable(t: Table): void {
    this.resolver = new Resolver(t, { compat: this.opts.compat });
    this.upstreamCache.clear();
  }

  private upstreams(list: string[] | undefined): Upstream[] {
    if (!list) return this.defaults;
    const key = list.join(',');
    let u = this.upstreamCache.get(key);
    if (!u) {
      u = list.flatMap((s) => { try { return [parseUpstream(s)]; } catch { return []; } });
      this.upstreamCache.set(key, u);
    }
    return u;
  }

  /**
   * The whole query path: bytes + view → reply bytes, undefined (drop), or a promise when forwarded.
   * Never throws: an internal error answers SERVFAIL.
   */
  handle(req: Buffer, view: string, proto: 'udp' | 'tcp'): Reply | Promise<Reply> {
    let sync = false;
    let value: Reply;
    let resolveLater: ((r: Reply) => void) | undefined;
    this.dispatch(req, view, proto, (r) => {
      if (resolveLater) resolveLater(r);
      else { sync = true; value = r; }
    });
    if (sync) return value;
    return new Promise<Reply>((res) => { resolveLater = res; });
  }

  /** handle() with a callback, called exactly once (synchronously for local answers); the listeners use this. */
  private dispatch(req: Buffer, view: string, proto: 'udp' | 'tcp', reply: (r: Reply) => void, l?: Listener): void {
    const out = this.local(req, view, proto);
    if (out === undefined || Buffer.isBuffer(out)) reply(out);
    else this.forward(req, out, view, proto, reply, l);
  }

  /** The synchronous part: an answer, undefined (drop), or what to forward. */
  private local(req: Buffer, view: string, proto: 'udp' | 'tcp'): Reply | Forward {
    this.stats.queries++;
    // One clock pair and a bucket increment per answer: the latency histogram costs no allocation here.
    const started = performance.now();
    let out;
    try { out = this.resolver.resolve(req, view, proto === 'tcp' ? 65535 : undefined); } catch (e) {
      log.warn({ err: e }, 'resolver error');
      this.stats.failed++;
      return errorResponse(req, RCODE.SERVFAIL);
    }
    if (out.kind === 'drop') return undefined;
    if (out.kind === 'answer') {
      this.stats.local++;
      this.stats.localSeconds.observe((performance.now() - started) / 1000);
      return out.response;
    }
    return out;
  }

  private forward(req: Buffer, out: Forward, view: string, proto: 'udp' | 'tcp', reply: (r: Reply) => void, l?: Listener): void {
    this.stats.forwarded++;
    // Per container, over every forwarder it may use (its own, or the shared one while it has no route): one
    // container flooding misses is refused past its share and cannot take the others' slots.
    const inFlight = this.forwarding.get(view) ?? 0;
    if (inFlight >= this.maxForwards) {
      this.stats.limited.forwards++;
      this.stats.failed++;
      reply(errorResponse(req, RCODE.REFUSED));
      return;
    }
    this.forwarding.set(view, inFlight + 1);
    const size = proto === 'tcp' ? 65535 : out.query.udpSize;
    // A copy: the forwarder keeps the query past this call (retries, TCP fallback) and a batched listener reuses
    // the memory it came in.
    const copy = Buffer.from(req);
    const started = performance.now();
    let replied = false;
    const done = (r: Buffer): void => {
      replied = true;
      countDown(this.forwarding, view);
      reply(r);
    };
    const go = (route: Route | undefined): void => {
      try {
        const fwd = route?.forwarder ?? this.forwarder;
        fwd.forwardCb(copy, route?.servers ?? this.upstreams(out.upstreams), proto, (r) => {
          this.stats.forwardedSeconds.observe((performance.now() - started) / 1000);
          // The forwarder moves past an upstream's SERVFAIL or REFUSED: one that reaches here is its own verdict.
          const rcode = r.length >= 4 ? r[3]! & 0x0f : RCODE.SERVFAIL;
          if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) this.stats.failed++;
          done(truncate(r, size));
        });
      } catch (e) {
        log.warn({ err: e }, 'forwarder error');
        if (!replied) { this.stats.failed++; done(errorResponse(copy, RCODE.SERVFAIL)); }
      }
    };
    let route;
    try { route = l?.route?.(); } catch { route = undefined; }
    if (route instanceof Promise) route.then(go, () => go(undefined));
    else go(route);
  }

  /** View for a client address: the listener's mapping, else the container that owns the address. */
  private viewFor(l: Listener, addr: string): string {
    if (l.view !== undefined) return l.view;
    return l.viewOf ? l.viewOf(addr) : this.resolver.viewOfAddress(addr);
  }

  addListener(l: Listener): void {
    if (l.udp) this.serveUdp(l, l.udp);
    if (l.batchUdp) this.serveBatchUdp(l, l.batchUdp);
    if (l.tcp) this.serveTcp(l, l.tcp);
  }

  /** A batch in, the answers that are ready at once out in one send; forwarded ones are gathered the same way. */
  private serveBatchUdp(l: Listener, sock: BatchUdp): void {
    const rate = this.rate;
    const own = rate && l.view;
    // A container's own listener reads only what its budget already holds: before each read the next read's worth
    // is taken (or waited for in the container's line, the socket unread meanwhile), so nothing is read and then
    // dropped; the flood waits in the kernel, which drops what overflows that socket's buffer.
    let credit = 0;
    let waited = false; // the next read follows a wait: what it reads waited for the budget
    const reserve = own ? (): void => {
      waited = false;
      const need = CONTAINER_DATAGRAMS_PER_TURN - credit;
      if (need <= 0) return;
      if (rate.take(own, need)) { credit += need; return; }
      sock.pause(true);
      rate.wait(own, need, () => { credit += need; waited = true; sock.pause(false); });
    } : undefined;
    sock.serve((msg, i) => {
      // Local answers (the common case) without a closure per query; forwarded ones keep where they go.
      const view = l.view ?? this.viewFor(l, sock.peerAddress(i));
      if (credit > 0) {
        credit--;
        if (waited) this.overBudget(view, 1);
      } else if (!this.admit(view)) return undefined;
      const out = this.local(msg, view, 'udp');
      if (out === undefined || Buffer.isBuffer(out)) return out;
      const peer = sock.peer(i);
      this.forward(msg, out, view, 'udp', (r) => { if (r) sock.queueTo(r, peer); }, l);
      return undefined;
    }, reserve);
    reserve?.();
  }

  private serveUdp(l: Listener, udp: dgram.Socket): void {
    const reply = replySender(udp);
    udp.on('message', (msg, rinfo) => {
      const view = this.viewFor(l, rinfo.address);
      if (!this.admit(view)) return;
      this.dispatch(msg, view, 'udp', (r) => { if (r) reply(r, rinfo.port, rinfo.address); }, l);
    });
    udp.on('error', (e) => log.warn({ err: e }, 'udp socket error'));
  }

  private serveTcp(l: Listener, tcp: net.Server): void {
    const budget = new TurnBudget(this.tcpPerTurn);
    tcp.on('error', (e) => log.warn({ err: e }, 'tcp listener error'));
    tcp.on('connection', (c) => {
      const view = this.viewFor(l, c.remoteAddress ?? '');
      const mine = this.tcpByView.get(view) ?? 0;
      if (mine >= this.maxTcp || this.tcpOpen >= this.maxTcpTotal) { this.stats.limited.tcpConnections++; c.destroy(); return; }
      this.tcpByView.set(view, mine + 1);
      this.tcpOpen++;
      c.on('close', () => {
        this.tcpOpen--;
        countDown(this.tcpByView, view);
      });
      const frames = new TcpFrameReader();
      // Messages read but not handled yet: past this turn's budget, or while 64 forwards are outstanding.
      let queue: Buffer[] = [];
      let next = 0;
      let outstanding = 0;
      let parked = false; // waiting for the budget of the next turn, or in the container's line
      let credit = 0; // queries of the container's budget taken for this connection's next messages
      let leaveLine: (() => void) | undefined;
      let endAfterQueue = false; // a zero-length frame came: answer what preceded it, then close
      let partial: NodeJS.Timeout | undefined;
      c.setNoDelay(true);
      c.setTimeout(this.tcpIdleMs, () => c.destroy());
      c.on('error', () => c.destroy());
      const send = (r: Reply): void => {
        if (!r || c.destroyed) return;
        c.write(frameTcp(r));
        if (c.writableLength > TCP_MAX_UNSENT) c.destroy();
      };
      const unpark = (): void => { parked = false; pump(); };
      // Reading stops while messages wait, and while 64 forwards are outstanding until half of them are answered.
      let full = false;
      const flow = (): void => {
        if (c.destroyed) return;
        if (outstanding >= TCP_MAX_OUTSTANDING) full = true;
        else if (outstanding <= TCP_MAX_OUTSTANDING / 2) full = false;
        const hold = next < queue.length || full;
        if (hold && !c.isPaused()) c.pause();
        else if (!hold && c.isPaused()) c.resume();
      };
      const pump = (): void => {
        while (!parked && next < queue.length && outstanding < TCP_MAX_OUTSTANDING && !c.destroyed) {
          if (!budget.take()) { parked = true; budget.wait(unpark); break; }
          if (credit > 0) credit--;
          else if (this.rate && !this.rate.take(view)) {
            // Past the container's budget: the messages read here (a turn's worth at most) wait in its line, counted
            // once each, and go with the budget taken for them.
            const n = Math.min(queue.length - next, this.tcpPerTurn);
            this.overBudget(view, n);
            parked = true;
            leaveLine = this.rate.wait(view, n, () => { leaveLine = undefined; credit += n; unpark(); });
            break;
          }
          const msg = queue[next++]!;
          let done = false;
          let queued = false;
          this.dispatch(msg, view, 'tcp', (r) => {
            done = true;
            send(r);
            if (!queued) return;
            outstanding--;
            pump();
          }, l);
          if (!done) { queued = true; outstanding++; }
        }
        if (next >= queue.length) {
          queue = [];
          next = 0;
          if (endAfterQueue) { c.destroy(); return; }
        }
        flow();
      };
      c.on('data', (d) => {
        const messages = frames.push(d);
        if (queue.length) { for (const m of messages) queue.push(m); } else queue = messages;
        if (frames.invalid) endAfterQueue = true; // the stream is out of sync
        // A half-sent message must complete in time even if the client keeps trickling bytes.
        if (partial && (messages.length || !frames.pending)) { clearTimeout(partial); partial = undefined; }
        if (frames.pending && !partial && !endAfterQueue) partial = setTimeout(() => c.destroy(), this.tcpIdleMs);
        pump();
      });
      c.on('close', () => { if (partial) clearTimeout(partial); leaveLine?.(); queue = []; next = 0; });
    });
  }
}

/** One less of key's count (per-container counters): the entry goes at zero, so idle containers cost nothing. */
function countDown(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left); else counts.delete(key);
}

/**
 * What one listener's TCP connections may handle in one turn of the event loop, shared in arrival order; a
 * connection past it waits (paused) for the next turn, after every other socket had its turn.
 */
class TurnBudget {
  private left: number;
  private waiting: (() => void)[] = [];
  private scheduled = false;
  private readonly nextTurn = (): void => {
    this.scheduled = false;
    this.left = this.perTurn;
    const w = this.waiting;
    this.waiting = [];
    for (const fn of w) fn();
  };

  constructor(private readonly perTurn: number) { this.left = perTurn; }

  /** One message of this turn's budget; false when it is spent (then wait()). */
  take(): boolean {
    if (this.left <= 0) return false;
    if (this.left-- === this.perTurn) this.schedule(); // the first of a turn: a fresh budget at the turn's end
    return true;
  }

  /** fn runs with the next turn's budget. */
  wait(fn: () => void): void {
    this.waiting.push(fn);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.nextTurn);
  }
}
