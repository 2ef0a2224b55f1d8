import dgram from 'node:dgram';
import net from 'node:net';
import { errorResponse, RCODE } from './codec.js';
import type { Upstream } from './upstreams.js';

export interface ForwarderOptions {
  /** Per server and attempt (Docker's extIOTimeout: 4 s). */
  timeoutMs?: number;
  /** Queries being forwarded at once; past it the answer is REFUSED (Docker's maxConcurrent: 1024). */
  maxInFlight?: number;
  /** UDP sockets per address family that upstream queries are spread over (random socket + random id). */
  sockets?: number;
}

interface Pending {
  done: (r: Buffer | undefined) => void;
  origId: number;
  host: string;
  port: number;
  req: Buffer;
  timer: NodeJS.Timeout;
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
  private readonly pools = new Map<'udp4' | 'udp6', { sock: dgram.Socket; pending: Map<number, Pending> }[]>();
  constructor(opts: ForwarderOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 4000;
    this.maxInFlight = opts.maxInFlight ?? 1024;
    this.poolSize = opts.sockets ?? 4;
  }

  get pending(): number { return this.inFlight; }

  async forward(req: Buffer, servers: readonly Upstream[], proto: 'udp' | 'tcp' = 'udp'): Promise<Buffer> {
    if (this.inFlight >= this.maxInFlight) return errorResponse(req, RCODE.REFUSED);
    this.inFlight++;
    try {
      for (const s of servers) {
        let res = proto === 'udp' ? await this.udp(req, s) : await this.tcp(req, s);
        if (res && proto === 'udp' && (res[2]! & 0x02)) res = (await this.tcp(req, s)) ?? res;
        if (!res) continue;
        const rcode = res[3]! & 0x0f;
        if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) continue;
        return res;
      }
      return errorResponse(req, RCODE.SERVFAIL);
    } finally { this.inFlight--; }
  }

  /** Closes the pooled sockets and fails whatever is still pending. */
  close(): void {
    for (const pool of this.pools.values()) {
      for (const { sock, pending } of pool) {
        for (const p of pending.values()) { clearTimeout(p.timer); p.done(undefined); }
        pending.clear();
        sock.close();
      }
    }
    this.pools.clear();
  }

  private socket(family: 'udp4' | 'udp6'): { sock: dgram.Socket; pending: Map<number, Pending> } {
    let pool = this.pools.get(family);
    if (!pool) {
      pool = [];
      for (let i = 0; i < this.poolSize; i++) {
        const sock = dgram.createSocket(family);
        const pending = new Map<number, Pending>();
        sock.on('message', (msg, rinfo) => {
          if (msg.length < 12) return;
          const p = pending.get(msg.readUInt16BE(0));
          if (!p || rinfo.port !== p.port || rinfo.address !== p.host || !(msg[2]! & 0x80) || !sameQuestion(msg, p.req)) return;
          pending.delete(msg.readUInt16BE(0));
          clearTimeout(p.timer);
          msg.writeUInt16BE(p.origId, 0);
          p.done(msg);
        });
        sock.on('error', () => { /* send errors surface per query via the send callback */ });
        sock.bind({ port: 0, exclusive: true }); // exclusive: never shared between cluster workers
        sock.unref(); // pending queries hold timers; an idle pool must not keep the process alive
        pool.push({ sock, pending });
      }
      this.pools.set(family, pool);
    }
    return pool[Math.floor(Math.random() * pool.length)]!;
  }

  private udp(req: Buffer, s: Upstream): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const { sock, pending } = this.socket(net.isIPv6(s.host) ? 'udp6' : 'udp4');
      let id = 0;
      for (let tries = 0; tries < 64; tries++) { id = Math.floor(Math.random() * 65536); if (!pending.has(id)) break; }
      if (pending.has(id)) { resolve(undefined); return; }
      const out = Buffer.from(req);
      out.writeUInt16BE(id, 0);
      const finish = (r: Buffer | undefined): void => { pending.delete(id); clearTimeout(p.timer); resolve(r); };
      const p: Pending = {
        done: resolve, origId: req.readUInt16BE(0), host: s.host, port: s.port, req,
        timer: setTimeout(() => finish(undefined), this.timeoutMs),
      };
      pending.set(id, p);
      sock.send(out, s.port, s.host, (err) => { if (err) finish(undefined); });
    });
  }

  private tcp(req: Buffer, s: Upstream): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const c = net.connect(s.port, s.host);
      let buf = Buffer.alloc(0);
      let settled = false;
      const finish = (r: Buffer | undefined): void => {
        if (settled) return;
        settled = true; clearTimeout(timer); c.destroy(); resolve(r);
      };
      const timer = setTimeout(() => finish(undefined), this.timeoutMs);
      c.on('error', () => finish(undefined));
      c.on('close', () => finish(undefined));
      c.on('connect', () => { const l = Buffer.alloc(2); l.writeUInt16BE(req.length); c.write(Buffer.concat([l, req])); });
      c.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
        const msg = Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        finish(msg.length >= 12 && msg.readUInt16BE(0) === req.readUInt16BE(0) && sameQuestion(msg, req) ? msg : undefined);
      });
    });
  }
}
