import dgram from 'node:dgram';
import net from 'node:net';
import { errorResponse, RCODE } from './codec.js';
import type { Upstream } from './upstreams.js';

export interface ForwarderOptions { timeoutMs?: number; maxInFlight?: number }

/** Forwards raw queries: next server on timeout/SERVFAIL/REFUSED, TCP retry on TC, REFUSED past the in-flight bound. */
export class Forwarder {
  private inFlight = 0;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  constructor(opts: ForwarderOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.maxInFlight = opts.maxInFlight ?? 1024;
  }

  async forward(req: Buffer, servers: Upstream[]): Promise<Buffer> {
    if (this.inFlight >= this.maxInFlight || servers.length === 0) return errorResponse(req, RCODE.REFUSED);
    this.inFlight++;
    try {
      let last: Buffer | undefined;
      for (const s of servers) {
        let res = await this.udp(req, s).catch(() => undefined);
        if (res && res.length >= 4 && (res[2]! & 0x02)) res = (await this.tcp(req, s).catch(() => undefined)) ?? res;
        if (!res || res.length < 12) continue;
        const rcode = res[3]! & 0x0f;
        if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) { last = res; continue; }
        return res;
      }
      return last ?? errorResponse(req, RCODE.SERVFAIL);
    } finally { this.inFlight--; }
  }

  private udp(req: Buffer, s: Upstream): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock = dgram.createSocket(s.host.includes(':') ? 'udp6' : 'udp4');
      const timer = setTimeout(() => { sock.close(); reject(new Error('timeout')); }, this.timeoutMs);
      sock.on('error', (e) => { clearTimeout(timer); sock.close(); reject(e); });
      sock.on('message', (msg) => {
        if (msg.length < 2 || msg.readUInt16BE(0) !== req.readUInt16BE(0)) return;
        clearTimeout(timer); sock.close(); resolve(msg);
      });
      sock.send(req, s.port, s.host);
    });
  }

  private tcp(req: Buffer, s: Upstream): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const c = net.connect(s.port, s.host);
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => { c.destroy(); reject(new Error('timeout')); }, this.timeoutMs);
      c.on('error', (e) => { clearTimeout(timer); reject(e); });
      c.on('connect', () => { const l = Buffer.alloc(2); l.writeUInt16BE(req.length); c.write(Buffer.concat([l, req])); });
      c.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          clearTimeout(timer); c.destroy(); resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        }
      });
    });
  }
}
