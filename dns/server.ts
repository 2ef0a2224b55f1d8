import type dgram from 'node:dgram';
import type net from 'node:net';
import { errorResponse, RCODE } from './codec.js';
import { Forwarder } from './forwarder.js';
import { resolve } from './resolver.js';
import type { Table } from './table.js';
import { hostUpstreams, parseUpstream, type Upstream } from './upstreams.js';
import { logger } from '../common/log.js';

const log = logger('dns');

export interface Listener { udp?: dgram.Socket; tcp?: net.Server; viewOf: (remoteAddr: string) => string }
export interface ServerOptions { compat: boolean; defaultUpstreams?: Upstream[]; forwarder?: Forwarder }

/** One process, many views: each listener maps its peers to a container id whose networks are visible. */
export class DnsServer {
  private readonly forwarder: Forwarder;
  private readonly defaults: Upstream[];
  constructor(private table: Table, private readonly opts: ServerOptions) {
    this.forwarder = opts.forwarder ?? new Forwarder();
    this.defaults = opts.defaultUpstreams ?? hostUpstreams();
  }

  setTable(t: Table): void { this.table = t; }

  /** Query bytes + view → response bytes (a promise only when forwarded). */
  handle(req: Buffer, view: string, maxSize?: number): Buffer | Promise<Buffer> {
    let out;
    try { out = resolve(this.table, view, req, this.opts.compat, maxSize); } catch (e) {
      log.warn({ err: e }, 'resolver error');
      return errorResponse(req, RCODE.SERVFAIL);
    }
    if (out.kind === 'answer') return out.response;
    const ups = out.upstreams?.map(parseUpstream) ?? this.defaults;
    return this.forwarder.forward(req, ups);
  }

  addListener(l: Listener): void {
    const { udp, tcp } = l;
    if (udp) {
      udp.on('message', (msg, rinfo) => {
        const reply = (r: Buffer): void => { udp.send(r, rinfo.port, rinfo.address); };
        const r = this.handle(msg, l.viewOf(rinfo.address));
        if (r instanceof Promise) r.then(reply, () => reply(errorResponse(msg, RCODE.SERVFAIL)));
        else reply(r);
      });
      udp.on('error', (e) => log.warn({ err: e }, 'udp socket error'));
    }
    if (tcp) {
      tcp.on('connection', (c) => {
        const view = l.viewOf(c.remoteAddress ?? '');
        let buf = Buffer.alloc(0);
        c.setTimeout(30000, () => c.destroy());
        c.on('error', () => c.destroy());
        const send = (r: Buffer): void => {
          const len = Buffer.alloc(2); len.writeUInt16BE(r.length);
          if (!c.destroyed) c.write(Buffer.concat([len, r]));
        };
        c.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
            buf = buf.subarray(2 + msg.length);
            const r = this.handle(msg, view, 65535);
            if (r instanceof Promise) r.then(send, () => send(errorResponse(msg, RCODE.SERVFAIL)));
            else send(r);
          }
        });
      });
    }
  }
}
