import dgram from 'node:dgram';
import net from 'node:net';
import { errorResponse, RCODE } from './codec.js';
import { BatchUdp, nativeUdp } from './udp-batch.js';
import type { Upstream } from './upstreams.js';
import { frameTcp, TcpFrameReader } from './tcp-frame.js';

export interface ForwarderOptions {
  /** Per server and attempt (Docker's extIOTimeout: 4 s). */
  timeoutMs?: number;
  /** Queries being forwarded at once; past it the answer is REFUSED (Docker's maxConcurrent: 1024). */
  maxInFlight?: number;
  /** UDP sockets per address family that upstream queries are spread over (random socket + random id). */
  sockets?: number;
  /**
   * Dial from inside this network namespace (a container's): its sockets are opened there, so servers only the
   * container reaches (Docker's resolver on 127.0.0.11:<port>) are reachable. Needs the addon.
   */
  netns?: string;
}

/** One of the long-lived sockets upstream queries go out on; failed() runs when a send cannot happen. */
interface PoolSocket {
  pending: Map<number, Pending>;
  send(out: Buffer, host: string, port: number, failed: () => void): void;
  close(): void;
}

interface Pending {
  cb: (r: Buffer | undefined) => void;
  id: number;
  origId: number;
  host: string;
  port: number;
  req: Buffer;
  deadline: number;
  map: Map<number, Pending>;
}

/** True when both messages carry the same question section (ASCII case-insensitive). */
function sameQuestion(a: Buffer, b: Buffer): boolean {
  if (a.length < 12 || b.length < 12 || a.readUInt16BE(4) !== 1 || b.readUInt16BE(4) !== 1) return false;
  for (let i = 12; ; i++) {
    if (i >= a.length || i >= b.length) return false;
    let x = a[i]!; let y = b[i]!;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
    if (x === 0) return i + 4 < a.length && i + 4 < b.length && a.readUInt32BE(i + 1) === b.readUInt32BE(i + 1);
  }
}

/**
 * Forwards raw queries like Docker's forwardExtDNS: servers in order, over the client's transport; timeout, error,
 * SERVFAIL or REFUSED → next server; a truncated UDP answer is retried over TCP on the same server; every other
 * answer (NXDOMAIN included) goes back as received, flags and all. Nothing usable → SERVFAIL.
 * UDP goes out through a small pool of long-lived sockets with a fresh random id per query (restored on the way
 * back, answers checked against server address and question) instead of a socket per query.
 */
export class Forwarder {
  private inFlight = 0;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly poolSize: number;
  private readonly pools = new Map<'udp4' | 'udp6', PoolSocket[]>();
  /** UDP attempts in deadline order (one timeout for all, so insertion order is deadline order). */
  private readonly waiting = new Set<Pending>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly netns: string | undefined;
  private readonly tcpSockets = new Set<net.Socket>();
  constructor(opts: ForwarderOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 4000;
    this.maxInFlight = opts.maxInFlight ?? 1024;
    this.poolSize = opts.sockets ?? 4;
    this.netns = opts.netns;
    if (this.netns && !nativeUdp()) throw new Error('forwarder: dialing from another namespace needs the native addon (npm run build)');
  }

  get pending(): number { return this.inFlight; }

  forward(req: Buffer, servers: readonly Upstream[], proto: 'udp' | 'tcp' = 'udp'): Promise<Buffer> {
    return new Promise((resolve) => this.forwardCb(req, servers, proto, resolve));
  }

  /** forward() without promises: the per-query path of the server (no promise chain, no timer per query). */
  forwardCb(req: Buffer, servers: readonly Upstream[], proto: 'udp' | 'tcp', done: (r: Buffer) => void): void {
    if (this.inFlight >= this.maxInFlight) { done(errorResponse(req, RCODE.REFUSED)); return; }
    this.inFlight++;
    const finish = (r: Buffer): void => { this.inFlight--; done(r); };
    const next = (i: number): void => {
      const s = servers[i];
      if (!s) { finish(errorResponse(req, RCODE.SERVFAIL)); return; }
      const accept = (res: Buffer | undefined): void => {
        const rcode = res ? res[3]! & 0x0f : RCODE.SERVFAIL;
        if (!res || rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) next(i + 1);
        else finish(res);
      };
      if (proto === 'tcp') { this.tcp(req, s, accept); return; }
      this.udp(req, s, (res) => {
        if (res && (res[2]! & 0x02)) this.tcp(req, s, (full) => accept(full ?? res));
        else accept(res);
      });
    };
    next(0);
  }

  /** Closes the pooled sockets and fails whatever is still pending. */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    const left = [...this.waiting];
    this.waiting.clear();
    for (const pool of this.pools.values()) for (const { close, pending } of pool) { pending.clear(); close(); }
    this.pools.clear();
    for (const c of this.tcpSockets) c.destroy();
    for (const p of left) p.cb(undefined);
  }

  private sweep(): void {
    const now = Date.now();
    for (const p of this.waiting) {
      if (p.deadline > now) break;
      this.waiting.delete(p);
      p.map.delete(p.id);
      p.cb(undefined); // may queue the next server's attempt: it lands at the end with a later deadline
    }
    if (!this.waiting.size && this.sweeper) { clearInterval(this.sweeper); this.sweeper = undefined; }
  }

  /** An upstream answer: matched by id, server and question, then handed on with the client's id restored. */
  private answer(pending: Map<number, Pending>, msg: Buffer, host: string, port: number): void {
    if (msg.length < 12) return;
    const p = pending.get(msg.readUInt16BE(0));
    if (!p || port !== p.port || host !== p.host || !(msg[2]! & 0x80) || !sameQuestion(msg, p.req)) return;
    pending.delete(p.id);
    this.waiting.delete(p);
    const out = Buffer.from(msg); // msg may be a view into a batched socket's shared area
    out.writeUInt16BE(p.origId, 0);
    p.cb(out);
  }

  private socket(family: 'udp4' | 'udp6'): PoolSocket {
    let pool = this.pools.get(family);
    if (!pool) {
      pool = [];
      for (let i = 0; i < this.poolSize; i++) pool.push(this.openSocket(family));
      this.pools.set(family, pool);
    }
    return pool[Math.floor(Math.random() * pool.length)]!;
  }

  /**
   * Batched where the addon loads, else dgram. A family this host cannot use (no IPv6 in the kernel) fails every
   * query sent to it at once, so it moves to the next server instead of waiting out the timeout.
   */
  private openSocket(family: 'udp4' | 'udp6'): PoolSocket {
    if (nativeUdp()) {
      try { return this.batchSocket(family); } catch { return unusable(); }
    }
    return this.dgramSocket(family);
  }

  private dgramSocket(family: 'udp4' | 'udp6'): PoolSocket {
    const sock = dgram.createSocket({ type: family, lookup: literal });
    const pending = new Map<number, Pending>();
    let broken = false;
    sock.on('message', (msg, rinfo) => this.answer(pending, msg, rinfo.address, rinfo.port));
    sock.on('error', () => {
      // Send errors surface per query via the send callback. A failed bind is an error here, and dgram then drops
      // the queued sends without calling them back: fail what waits on this socket, and every later send.
      if (broken) return;
      try { sock.address(); return; } catch { broken = true; }
      for (const p of [...pending.values()]) { pending.delete(p.id); this.waiting.delete(p); p.cb(undefined); }
    });
    sock.bind({ port: 0, exclusive: true }); // exclusive: never shared between cluster workers
    sock.unref(); // an idle pool must not keep the process alive; the sweeper does while queries wait
    return {
      pending,
      send: (out, host, port, failed) => {
        if (broken) { failed(); return; }
        sock.send(out, port, host, (err) => { if (err) failed(); });
      },
      close: () => { try { sock.close(); } catch { /* never bound */ } },
    };
  }

  /** Upstream answers read in batches too (dns/udp-batch.ts); the queries of one turn go out in one sendmmsg. */
  private batchSocket(family: 'udp4' | 'udp6'): PoolSocket {
    // A container's own forwarder reads one batch of answers per loop turn: its share, as its listener's.
    const sock = BatchUdp.open(family === 'udp6' ? '::' : '0.0.0.0', 0, this.netns ? { netns: this.netns, datagramsPerWake: 64 } : {});
    const pending = new Map<number, Pending>();
    sock.serve((msg, i) => { this.answer(pending, msg, sock.peerAddress(i), sock.peerPort(i)); return undefined; });
    sock.ref(false);
    const dests = new Map<string, Buffer>();
    return {
      pending,
      send: (out, host, port, failed) => {
        const key = `${host}#${port}`;
        let to = dests.get(key);
        if (!to) { to = BatchUdp.sockaddr(host, port); if (dests.size > 1024) dests.clear(); dests.set(key, to); }
        sock.queueTo(out, to, failed);
      },
      close: () => sock.close(),
    };
  }

  private udp(req: Buffer, s: Upstream, cb: (r: Buffer | undefined) => void): void {
    const { send, pending } = this.socket(s.host.includes(':') ? 'udp6' : 'udp4');
    let id = 0;
    for (let tries = 0; tries < 64; tries++) { id = Math.floor(Math.random() * 65536); if (!pending.has(id)) break; }
    if (pending.has(id)) { cb(undefined); return; }
    const out = Buffer.from(req);
    out.writeUInt16BE(id, 0);
    const p: Pending = { cb, id, origId: req.readUInt16BE(0), host: s.host, port: s.port, req, deadline: Date.now() + this.timeoutMs, map: pending };
    pending.set(id, p);
    this.waiting.add(p);
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(5, Math.min(100, this.timeoutMs / 8)));
    send(out, s.host, s.port, () => {
      if (!pending.has(id)) return;
      pending.delete(id);
      this.waiting.delete(p);
      cb(undefined);
    });
  }

  /** A TCP connection to the server, from the forwarder's namespace; undefined when it cannot even be opened. */
  private connect(s: Upstream): net.Socket | undefined {
    const port = s.tcpPort ?? s.port;
    if (!this.netns) return net.connect(port, s.host);
    let fd: number;
    try { fd = nativeUdp()!.connectTcp(s.host, port, this.netns); } catch { return undefined; }
    // The fd is still connecting: libuv queues the write until the socket turns writable (or reports the error).
    const c = new net.Socket({ fd, readable: true, writable: true });
    this.tcpSockets.add(c);
    c.on('close', () => this.tcpSockets.delete(c));
    queueMicrotask(() => c.emit('connect'));
    return c;
  }

  private tcp(req: Buffer, s: Upstream, cb: (r: Buffer | undefined) => void): void {
    const c = this.connect(s);
    if (!c) { cb(undefined); return; }
    const frames = new TcpFrameReader();
    let settled = false;
    const finish = (r: Buffer | undefined): void => {
      if (settled) return;
      settled = true; clearTimeout(timer); c.destroy(); cb(r);
    };
    const timer = setTimeout(() => finish(undefined), this.timeoutMs);
    c.on('error', () => finish(undefined));
    c.on('close', () => finish(undefined));
    c.on('connect', () => c.write(frameTcp(req)));
    c.on('data', (d) => {
      const [first] = frames.push(d);
      if (!first) return void (frames.invalid && finish(undefined));
      const msg = Buffer.from(first);
      finish(msg.length >= 12 && msg.readUInt16BE(0) === req.readUInt16BE(0) && sameQuestion(msg, req) ? msg : undefined);
    });
  }
}

/** A pool socket for an address family this host cannot open: every send fails at once. */
function unusable(): PoolSocket {
  return { pending: new Map(), send: (_out, _host, _port, failed) => failed(), close: () => undefined };
}

/** Upstreams are IP literals: no resolver round trip (and no deferred callback) per send. */
function literal(address: string, _o: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}
