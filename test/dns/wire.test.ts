import test from 'ava';
import dgram from 'node:dgram';
import net from 'node:net';
import { existsSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import { run } from '../../common/exec.js';
import { DnsServer } from '../../dns/server.js';
import { Forwarder } from '../../dns/forwarder.js';
import { buildTable } from '../../dns/table.js';

const many = Array.from({ length: 60 }, (_, i) => ({ id: `m${i}`, name: `m${i}`, endpoints: [{ networkId: 'n1', ip: `10.0.3.${i + 1}`, aliases: ['big'] }] }));
const table = buildTable({
  networks: [{ id: 'n1', name: 'front' }],
  containers: [{ id: 'me', name: 'web', endpoints: [{ networkId: 'n1', ip: '10.0.1.2', aliases: [] }] }, ...many],
  services: [],
});

/** A fake upstream answering every query with a fixed rcode (or not at all). */
async function upstream(host: string, rcode: number | 'drop'): Promise<{ port: number; close: () => void }> {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => {
    if (rcode === 'drop') return;
    const q = dnsPacket.decode(m);
    s.send(dnsPacket.encode({ type: 'response', id: q.id ?? 0, flags: rcode, questions: q.questions ?? [] }), r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, host, r));
  return { port: s.address().port, close: () => s.close() };
}

async function start(ups: { host: string; port: number }[]) {
  const udp = dgram.createSocket('udp4');
  const tcp = net.createServer();
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const port = udp.address().port;
  await new Promise<void>((r, j) => { tcp.once('error', j); tcp.listen(port, '127.0.0.1', r); });
  const server = new DnsServer(table, { compat: true, defaultUpstreams: ups, forwarder: new Forwarder({ timeoutMs: 300 }) });
  server.addListener({ udp, tcp, viewOf: () => 'me' });
  return { port, close: () => { udp.close(); tcp.close(); } };
}

const dig = async (port: number, ...args: string[]) =>
  (await run('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=2', ...args], { allowFailure: true })).stdout;

test('dig: A, AAAA NODATA, PTR, TCP, EDNS, truncation → TCP retry', async (t) => {
  if (!existsSync('/usr/bin/dig')) { t.log('dig missing'); t.pass(); return; }
  const s = await start([]);
  try {
    t.regex(await dig(s.port, '+short', 'web', 'A'), /^10\.0\.1\.2$/m);
    const aaaa = await dig(s.port, 'web', 'AAAA');
    t.regex(aaaa, /status: NOERROR/); t.regex(aaaa, /ANSWER: 0/);
    t.regex(await dig(s.port, '+short', '-x', '10.0.1.2'), /^web\.front\.$/m);
    t.regex(await dig(s.port, '+tcp', '+short', 'web'), /^10\.0\.1\.2$/m);
    t.regex(await dig(s.port, '+edns=0', 'web'), /OPT PSEUDOSECTION/);
    const tc = await dig(s.port, '+noedns', '+ignore', 'big');
    t.regex(tc, /flags: qr[^;]* tc[ ;]/);
    const full = await dig(s.port, '+noedns', '+short', 'big');
    t.is(full.trim().split('\n').length, 60);
  } finally { s.close(); }
});

test('forwarding: NXDOMAIN preserved, SERVFAIL and timeout → next server', async (t) => {
  const dead = await upstream('127.0.0.2', 'drop');
  const fail = await upstream('127.0.0.3', 2);
  const nx = await upstream('127.0.0.4', 3);
  const s = await start([{ host: '127.0.0.2', port: dead.port }, { host: '127.0.0.3', port: fail.port }, { host: '127.0.0.4', port: nx.port }]);
  try {
    t.regex(await dig(s.port, 'nothing.example'), /status: NXDOMAIN/);
  } finally { s.close(); dead.close(); fail.close(); nx.close(); }
});

test('forwarding: in-flight bound → REFUSED', async (t) => {
  const f = new Forwarder({ timeoutMs: 500, maxInFlight: 1 });
  const dead = await upstream('127.0.0.2', 'drop');
  const q = dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'A', name: 'x.example' }] });
  const first = f.forward(q, [{ host: '127.0.0.2', port: dead.port }]);
  const second = await f.forward(q, [{ host: '127.0.0.2', port: dead.port }]);
  t.is(second[3]! & 0xf, 5);
  t.is((await first)[3]! & 0xf, 2);
  dead.close();
});
