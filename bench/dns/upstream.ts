/**
 * The benchmark's stand-in for the outside world: a tiny authoritative server both resolvers forward their misses
 * to. `<name>` → one A record 192.0.2.1 (TTL 60); names starting with "nx" → NXDOMAIN; anything malformed → dropped.
 * Usage: node dist/bench/dns/upstream.js <ip> <port>   (prints "ready" once bound)
 * It stands in for a server on another machine but shares this machine's 2 cores with both resolvers and the
 * client, so it answers UDP in batches (dns/udp-batch.ts) where the addon is built, to take as little as it can.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { buildResponse, FormatError, parseQuery, RCODE, TYPE } from '../../dns/codec.js';
import { frameTcp, TcpFrameReader } from '../../dns/tcp-frame.js';
import { BatchUdp, nativeUdp } from '../../dns/udp-batch.js';

const [host = '127.0.0.1', portArg = '53'] = process.argv.slice(2);
const A = [{ type: TYPE.A, data: Buffer.from([192, 0, 2, 1]) }];

function answer(req: Buffer, max: number): Buffer | undefined {
  try {
    const q = parseQuery(req);
    if (q.name.startsWith('nx')) return buildResponse(req, q, RCODE.NXDOMAIN, [], 60, max);
    return buildResponse(req, q, RCODE.NOERROR, q.qtype === TYPE.A ? A : [], 60, max);
  } catch (e) {
    if (e instanceof FormatError) return undefined;
    throw e;
  }
}

async function bindUdp(): Promise<void> {
  if (nativeUdp()) {
    BatchUdp.open(host, Number(portArg)).serve((m) => answer(m, 512));
    return;
  }
  const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  udp.on('message', (m, r) => { const out = answer(m, 512); if (out) udp.send(out, r.port, r.address); });
  await new Promise<void>((r) => udp.bind(Number(portArg), host, r));
}
const tcp = net.createServer((c) => {
  const frames = new TcpFrameReader();
  c.on('error', () => c.destroy());
  c.on('data', (d) => {
    for (const m of frames.push(d)) {
      const out = answer(m, 65535);
      if (out) c.write(frameTcp(out));
    }
  });
});
await bindUdp();
tcp.listen(Number(portArg), host, () => process.stdout.write('ready\n'));
