// Shared by the DNS tests: a scriptable local upstream, a server on loopback, a raw UDP/TCP client.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { DnsServer, type Listener, type ServerOptions } from '../../dns/server.js';
import { BatchUdp, nativeUdp } from '../../dns/udp-batch.js';
import { run } from '../../common/exec.js';
import { Forwarder } from '../../dns/forwarder.js';
import { parseQuery } from '../../dns/codec.js';
import { frameTcp, TcpFrameReader } from '../../dns/tcp-frame.js';
import { buildTable, type Table } from '../../dns/table.js';
import type { ExecutionContext } from 'ava';

/** Opens UDP on a random port, then TCP on the same port of host; retried while the TCP side is taken. */
async function samePort<U>(host: string, openUdp: () => Promise<{ udp: U; port: number; close: () => void }>): Promise<{ udp: U; tcp: net.Server }> {
  for (let attempt = 0; ; attempt++) {
    const { udp, port, close } = await openUdp();
    const tcp = net.createServer();
    try {
      await new Promise<void>((r, j) => { tcp.once('error', j); tcp.listen(port, host, () => { tcp.off('error', j); r(); }); });
      return { udp, tcp };
    } catch (e) {
      close();
      if (attempt > 20) throw e;
    }
  }
}

/** A UDP socket and a TCP server on the same random port of host. */
export function udpTcpPair(host: string): Promise<{ udp: dgram.Socket; tcp: net.Server }> {
  return samePort(host, async () => {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, host, r));
    return { udp, port: udp.address().port, close: () => udp.close() };
  });
}

/** The server's UDP listener: a dgram socket, or the batched one (Listener.batchUdp, recvmmsg/sendmmsg addon). */
export type UdpMode = 'dgram' | 'batch';
export const UDP_MODES: readonly UdpMode[] = ['dgram', 'batch'];

/** A batched UDP socket and a TCP server on the same random port of host. The addon must be built (npm run build). */
export async function batchTcpPair(host: string): Promise<{ udp: BatchUdp; tcp: net.Server }> {
  if (!nativeUdp()) throw new Error('batched UDP addon did not load: run `npm run build` (dist/dns/native/udp_batch.node); SWARMNET_DNS_NATIVE must not be 0');
  return samePort(host, async () => { const udp = BatchUdp.open(host, 0); return { udp, port: udp.address().port, close: () => udp.close() }; });
}

export type Behaviour = number | 'drop' | 'truncate' | 'big';

/**
 * A fake upstream on host (127.0.0.x), UDP and TCP on one port. number → reply with that rcode (flags AD+RA kept);
 * 'drop' → never answer; 'truncate' → TC over UDP, 3 A records over TCP; 'big' → 200 A records on both.
 */
export async function upstream(host: string, behaviour: Behaviour): Promise<{ port: number; udpSeen: number; tcpSeen: number; close: () => void }> {
  const state = { port: 0, udpSeen: 0, tcpSeen: 0, close: () => {} };
  const answer = (m: Buffer, tcp: boolean): Buffer | undefined => {
    let q: dnsPacket.Packet;
    try { q = dnsPacket.decode(m); } catch { return formerr(m); }
    const base = { type: 'response' as const, id: q.id ?? 0, questions: q.questions ?? [] };
    const name = q.questions?.[0]?.name ?? '';
    const a = (n: number) => Array.from({ length: n }, (_, i) => ({ type: 'A' as const, name, ttl: 30, data: `192.0.2.${(i % 250) + 1}` }));
    if (behaviour === 'drop') return undefined;
    if (behaviour === 'truncate') {
      return tcp ? dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_AVAILABLE, answers: a(3) })
        : dnsPacket.encode({ ...base, flags: dnsPacket.TRUNCATED_RESPONSE | dnsPacket.RECURSION_AVAILABLE });
    }
    if (behaviour === 'big') return dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_AVAILABLE, answers: a(200) });
    return dnsPacket.encode({ ...base, flags: behaviour | dnsPacket.AUTHENTIC_DATA | dnsPacket.RECURSION_AVAILABLE, answers: behaviour === 0 ? a(1) : [] });
  };
  const { udp, tcp } = await udpTcpPair(host);
  state.port = udp.address().port;
  udp.on('message', (m, r) => { state.udpSeen++; const out = answer(m, false); if (out) udp.send(out, r.port, r.address); });
  tcp.on('connection', (c) => {
    const frames = new TcpFrameReader();
    c.on('error', () => c.destroy());
    c.on('data', (d) => {
      for (const m of frames.push(d)) {
        state.tcpSeen++;
        const out = answer(m, true);
        if (out) c.write(frameTcp(out));
      }
    });
  });
  state.close = () => { udp.close(); tcp.close(); };
  return state;
}

/** What a real server sends for a query it cannot decode: FORMERR with the question, if there is one. */
function formerr(m: Buffer): Buffer | undefined {
  try {
    const end = parseQuery(m).questionEnd;
    const out = Buffer.from(m.subarray(0, end));
    out[2] = 0x80 | (out[2]! & 0x79); out[3] = 0x80 | 1;
    out.writeUInt16BE(0, 6); out.writeUInt16BE(0, 8); out.writeUInt16BE(0, 10);
    return out;
  } catch { return undefined; }
}

export interface Running {
  port: number; server: DnsServer; forwarder: Forwarder;
  /** Datagrams that reached the server's UDP socket so far (whichever listener kind). */
  udpArrived: () => number;
  close: () => void;
}

export type StartOptions = Partial<ServerOptions> & { view?: string | undefined; timeoutMs?: number; maxInFlight?: number; udp?: UdpMode };

/**
 * The resolver on 127.0.0.1:<random>, UDP and TCP, every client answered from `view` unless view is undefined.
 * udp: which UDP listener (default dgram). timeoutMs: the forwarder's, default the product's (4 s), so a local
 * upstream stand-in on a busy machine is never "too late".
 */
export async function startServer(table: Table, opts: StartOptions = {}): Promise<Running> {
  const { udp: mode = 'dgram', view, timeoutMs, maxInFlight, ...serverOpts } = opts;
  const forwarder = opts.forwarder ?? new Forwarder({ timeoutMs, maxInFlight: maxInFlight ?? 1024 });
  const server = new DnsServer(table, { compat: true, defaultUpstreams: [], ...serverOpts, forwarder });
  const listener: Listener = view !== undefined ? { viewOf: () => view } : {};
  let arrived = 0;
  let port: number;
  let closeUdp: () => void;
  if (mode === 'batch') {
    const { udp, tcp } = await batchTcpPair('127.0.0.1');
    port = udp.address().port;
    server.addListener({ ...listener, batchUdp: udp, tcp });
    const handle = udp.onBatch;
    if (!handle) throw new Error('the server did not take the batched listener');
    udp.onBatch = (n) => { arrived += n; handle(n); };
    closeUdp = () => { udp.close(); tcp.close(); };
  } else {
    const { udp, tcp } = await udpTcpPair('127.0.0.1');
    port = udp.address().port;
    server.addListener({ ...listener, udp, tcp });
    udp.on('message', () => { arrived++; });
    closeUdp = () => { udp.close(); tcp.close(); };
  }
  return { port, server, forwarder, udpArrived: () => arrived, close: () => { closeUdp(); forwarder.close(); } };
}

export function query(name: string, type: dnsPacket.RecordType = 'A', id = 1, extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }], ...extra });
}

/** One UDP exchange; undefined on timeout (default: a guard for a busy machine, not an expected answer time). */
export function udpAsk(port: number, msg: Buffer, timeoutMs = 20_000, host = '127.0.0.1'): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); resolve(undefined); }, timeoutMs);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve(m); });
    s.send(msg, port, host);
  });
}

/**
 * Sends raw bytes over one TCP connection, collects `expect` framed replies (or what arrived by the timeout).
 * closed: the server closed the connection (not this timeout).
 */
export function tcpExchange(port: number, raw: Buffer, expect: number, timeoutMs = 20_000, until?: (reply: Buffer) => boolean): Promise<{ replies: Buffer[]; closed: boolean }> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    const replies: Buffer[] = [];
    const frames = new TcpFrameReader();
    let closed = false;
    const done = (): void => { clearTimeout(t); c.destroy(); resolve({ replies, closed }); };
    const t = setTimeout(done, timeoutMs);
    c.on('error', () => {});
    c.on('close', () => { closed = true; done(); });
    c.on('data', (d) => {
      replies.push(...frames.push(d));
      if (replies.length >= expect || (until && replies.some(until))) done();
    });
    c.write(raw);
  });
}

export function frame(...msgs: Buffer[]): Buffer {
  return Buffer.concat(msgs.map(frameTcp));
}

/**
 * A server answering every client of l as container c1 (client, 10.0.0.5) of network net1, where `probe` is
 * 10.0.0.9; no upstreams, so anything else fails fast. Stopped, with l, at teardown.
 */
export function serveProbe(t: ExecutionContext, l: Listener & { close(): void }, opts: { tcpIdleMs?: number } = {}): void {
  const table = buildTable({
    networks: [{ id: 'n1', name: 'net1' }],
    containers: [
      { id: 'c1', name: 'client', endpoints: [{ networkId: 'n1', ip: '10.0.0.5' }] },
      { id: 'c2', name: 'probe', endpoints: [{ networkId: 'n1', ip: '10.0.0.9' }] },
    ],
  });
  const forwarder = new Forwarder({ timeoutMs: 300 });
  t.teardown(() => { l.close(); forwarder.close(); });
  new DnsServer(table, { compat: true, defaultUpstreams: [], forwarder, ...opts }).addListener({ ...l, view: 'c1' });
}

/** A fresh network namespace <prefix>-<random> with lo up, deleted at the end of the test. */
export async function tempNetns(t: ExecutionContext, prefix: string): Promise<{ name: string; path: string }> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await run('ip', ['netns', 'add', name]);
  t.teardown(() => run('ip', ['netns', 'del', name], { allowFailure: true }).then(() => undefined));
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: `/run/netns/${name}` };
}
