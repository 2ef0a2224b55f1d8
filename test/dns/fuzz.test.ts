// Fuzz: ≥ 1,000,000 random and mutated packets at the server. Most go through DnsServer.handle() — the function the
// UDP and TCP listeners call for every message — in-process, so the run stays well under a minute; 120,000 go over
// real UDP and TCP sockets, which adds the listener code (framing, partial and bogus-length frames, replies). The
// server must never throw, must keep answering, and must answer valid queries correctly afterwards.
import test from 'ava';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { buildTable } from '../../dns/table.js';
import { frame, query, startServer, tcpExchange, udpAsk, upstream, type Running } from './helpers.js';

const table = buildTable({
  networks: [{ id: 'n1', name: 'front' }, { id: 'n2', name: 'back' }],
  containers: [
    { id: 'me', name: 'web', endpoints: [{ networkId: 'n1', ip: '10.0.1.2' }, { networkId: 'n2', ip: '10.0.2.2', ipv6: 'fd00::2' }] },
    ...Array.from({ length: 40 }, (_, i) => ({ id: `m${i}`, name: `m${i}`, endpoints: [{ networkId: 'n1', ip: `10.0.3.${i + 1}`, aliases: ['big'] }] })),
  ],
  services: [{ id: 's', name: 'svc', mode: 'vip', networks: [{ networkId: 'n1', vip: '10.0.1.250', aliases: ['alias'] }] }],
});

// Deterministic PRNG (xorshift32) so a failure can be replayed from the printed seed.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

const seeds = [
  query('web'), query('WEB.front', 'AAAA'), query('big'), query('svc', 'A', 3, { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer] }),
  query('2.1.0.10.in-addr.arpa', 'PTR'), query('tasks.svc', 'MX'), query('some.external.example', 'TXT'),
  // a question whose name is a compression pointer into itself, and one pointing forward past the end
  Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x77, 0x65, 0x62, 0xc0, 12, 0, 1, 0, 1]),
  Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x30, 0, 1, 0, 1]),
];

/** One packet: random bytes, or a seed mutated in the ways that break parsers. */
function packet(r: () => number): Buffer {
  const kind = r() % 10;
  if (kind === 0) { const b = Buffer.allocUnsafe(r() % 80); for (let i = 0; i < b.length; i++) b[i] = r() & 0xff; return b; }
  const b = Buffer.from(seeds[r() % seeds.length]!);
  switch (kind) {
    case 1: return b.subarray(0, r() % b.length); // truncated anywhere, names included
    case 2: { b[12 + (r() % (b.length - 12))] = 0xc0 | (r() & 0x3f); b[13 + (r() % (b.length - 13))] = r() & 0xff; return b; } // pointers, loops
    case 3: { b.writeUInt16BE(r() & 0xffff, 4 + 2 * (r() % 4)); return b; } // bad section counts
    case 4: { b[12 + (r() % (b.length - 12))] = [63, 64, 127, 255, 0x80][r() % 5]!; return b; } // huge / reserved label lengths
    case 5: { for (let k = 0; k < 1 + (r() % 4); k++) b[r() % b.length] = r() & 0xff; return b; } // byte noise
    case 6: { b[2] = r() & 0xff; b[3] = r() & 0xff; return b; } // opcode, QR, flags
    case 7: { const j = Buffer.allocUnsafe(r() % 600); for (let i = 0; i < j.length; i++) j[i] = r() & 0xff; return Buffer.concat([b, j]); } // trailing junk
    case 8: { // a long chain of labels / pointers: name length and jump limits
      const chain = Buffer.alloc(400);
      for (let i = 0; i < 400; i += 2) { chain[i] = r() % 2 ? 0xc0 : 1; chain[i + 1] = r() % 2 ? 12 + (r() % 400) : 0x61; }
      return Buffer.concat([b.subarray(0, 12), chain]);
    }
    default: { b[b.length - 1 - (r() % 4)] = r() & 0xff; return b; } // type/class
  }
}

/** Checks one reply: nothing, or a response (QR) carrying the query's id. */
function checkReply(req: Buffer, rep: Buffer | undefined): string | undefined {
  if (rep === undefined) return undefined;
  if (rep.length < 12) return 'short reply';
  if (!(rep[2]! & 0x80)) return 'reply without QR';
  if (req.length >= 2 && rep.readUInt16BE(0) !== req.readUInt16BE(0)) return 'id not echoed';
  return undefined;
}

async function assertHealthy(t: import('ava').ExecutionContext, port: number): Promise<void> {
  const a = dnsPacket.decode((await udpAsk(port, query('web', 'A', 4242)))!);
  t.is(a.id, 4242);
  t.deepEqual(a.answers?.map((x) => x.data), ['10.0.2.2']);
  const tcp = await tcpExchange(port, frame(query('svc', 'A', 11), query('2.1.0.10.in-addr.arpa', 'PTR', 12)), 2);
  const byId = new Map(tcp.replies.map((x) => [x.readUInt16BE(0), dnsPacket.decode(x)]));
  t.deepEqual(byId.get(11)?.answers?.map((x) => x.data), ['10.0.1.250']);
  t.deepEqual(byId.get(12)?.answers?.map((x) => x.data), ['web.front']);
}

/**
 * `count` fuzzed packets from one client socket at the server's UDP listener, in windows so the kernel buffer does
 * not drop them all; they must reach the server socket and it must keep answering. Returns how many were sent.
 */
async function udpFuzz(t: import('ava').ExecutionContext, s: Running, r: () => number, count: number): Promise<number> {
  const client = dgram.createSocket('udp4');
  await new Promise<void>((res) => client.bind(0, '127.0.0.1', res));
  let replies = 0;
  const bad: string[] = [];
  const sentById = new Set<number>();
  client.on('message', (m) => {
    replies++;
    if (m.length < 12 || !(m[2]! & 0x80)) bad.push(m.toString('hex'));
    else if (!sentById.has(m.readUInt16BE(0))) bad.push(`unknown id ${m.readUInt16BE(0)}`);
  });
  const start = s.udpArrived();
  const received = (): number => s.udpArrived() - start;
  let dropped = 0; // datagrams the server never got (the kernel dropped them): not waited for again
  // flow control: at most 200 datagrams in the server's receive queue, so the kernel does not drop them
  for (let i = 0; i < count; i += 100) {
    for (let k = 0; k < 100; k++) {
      const p = packet(r);
      if (p.length >= 2) sentById.add(p.readUInt16BE(0));
      client.send(p, s.port, '127.0.0.1');
    }
    // Wait for the server, however slow, as long as it makes progress; stuck for 2 s means the rest were dropped.
    const target = i - 100 - dropped;
    for (let seen = received(), since = Date.now(); received() < target;) {
      await new Promise((res) => setImmediate(res));
      if (received() !== seen) { seen = received(); since = Date.now(); } else if (Date.now() - since > 2000) { dropped += target - seen; break; }
    }
    // and the client reads its replies (libuv: 32 per turn) before more go out, else a batched server, which
    // answers up to a thousand per turn, overflows the client's receive buffer
    for (let last = -1; last !== replies;) { last = replies; await new Promise((res) => setImmediate(res)); }
  }
  await new Promise((res) => setTimeout(res, 300));
  client.close();
  t.log(`udp: ${count} sent, ${received()} reached the server socket, ${replies} replies`);
  t.true(received() > count * 0.95, 'the UDP packets must reach the server');
  t.true(replies > count / 2, 'the server must keep answering');
  t.deepEqual(bad.slice(0, 5), [], 'every reply is a response to an id that was sent');
  return count;
}

test('fuzz: 1,000,000+ random and mutated packets at the server; it stays up and answers correctly', async (t) => {
  t.timeout(600_000, 'a guard against a hang'); // CPU-bound: minutes on a busy machine, past ava's 120 s default
  const seed = Number(process.env.DNS_FUZZ_SEED ?? Date.now() % 2 ** 31);
  t.log(`seed ${seed} (DNS_FUZZ_SEED to replay)`);
  const r = rng(seed);
  const up = await upstream('127.0.0.10', 3); // misses get a quick NXDOMAIN
  // A short forwarding timeout: queries the upstream cannot parse are never answered, and waiting 4 s for each
  // batch of them is only slow. An answer that comes later on a busy machine becomes SERVFAIL, which is fine here.
  const s = await startServer(table, { view: 'me', defaultUpstreams: [{ host: '127.0.0.10', port: up.port }], timeoutMs: 200 });
  let sent = 0;
  try {
    // 1. In-process through the server's entry point. Forwarded ones are collected and awaited every 50,000
    // packets; past the forwarder's in-flight bound (1024) they get REFUSED at once, which is exercised too.
    const IN_PROCESS = 880_000;
    let forwarded = 0;
    let waits: Promise<void>[] = [];
    for (let done = 0; done < IN_PROCESS; done += 1000) {
      for (let i = 0; i < 1000; i++) {
        const p = packet(r);
        const proto = i % 7 === 0 ? 'tcp' : 'udp';
        const out = s.server.handle(p, 'me', proto);
        if (out instanceof Promise) {
          forwarded++;
          waits.push(out.then((rep) => { const e = checkReply(p, rep); if (e) t.fail(`${e}: ${p.toString('hex')}`); }));
        } else {
          const e = checkReply(p, out);
          if (e) t.fail(`${e}: ${p.toString('hex')}`);
        }
      }
      sent += 1000;
      // a valid query in between must still be answered right
      const ok = s.server.handle(query('big', 'A', 99), 'me', 'udp') as Buffer;
      if (dnsPacket.decode(ok).answers?.length !== 30) t.fail('valid query answered wrongly mid-fuzz');
      await new Promise((res) => setImmediate(res)); // let replies from the upstream in
      if (done % 50_000 === 0) { await Promise.all(waits); waits = []; }
    }
    await Promise.all(waits);
    t.log(`in-process: ${IN_PROCESS} packets, ${forwarded} forwarded to the local upstream`);

    // 2. Real UDP through the dgram listener (the batched one: the test below).
    sent += await udpFuzz(t, s, r, 100_000);

    // 3. Real TCP: 20,000 framed packets over 40 connections, some streams ending in a bogus or partial frame.
    let tcpReplies = 0;
    // Each stream ends with a valid query (id 0xfeed) before any bogus tail; its answer marks the stream as served.
    const marker = query('web', 'A', 0xfeed);
    const isMarker = (x: Buffer): boolean => x.readUInt16BE(0) === 0xfeed && (x[2]! & 0x80) !== 0 && x.length > 12;
    let markers = 0;
    for (let c = 0; c < 40; c++) {
      const msgs = Array.from({ length: 500 }, () => packet(r)).filter((m) => m.length > 0);
      let raw = frame(...msgs, marker);
      if (c % 4 === 1) raw = Buffer.concat([raw, Buffer.from([0xff, 0xff, 1, 2, 3])]); // huge length, never completed
      if (c % 4 === 2) raw = Buffer.concat([raw, Buffer.from([0, 0])]); // zero length: closed
      const { replies: got } = await tcpExchange(s.port, raw, Infinity, undefined, isMarker);
      tcpReplies += got.length;
      if (got.some(isMarker)) markers++;
    }
    t.is(markers, 40, 'every TCP stream was read to its end');
    sent += 20_000;
    t.log(`tcp: 20000 sent over 40 connections, ${tcpReplies} replies`);
    t.true(tcpReplies > 10_000);

    // 4. Random bytes as a TCP stream.
    for (let c = 0; c < 5; c++) {
      const junk = Buffer.allocUnsafe(5000); for (let i = 0; i < junk.length; i++) junk[i] = r() & 0xff;
      await tcpExchange(s.port, junk, Infinity, 700);
    }

    t.true(sent >= 1_000_000);
    await assertHealthy(t, s.port);
  } finally { s.close(); up.close(); }
});


test('fuzz: 100,000 packets at the batched UDP listener (recvmmsg/sendmmsg); it stays up and answers correctly', async (t) => {
  t.timeout(600_000, 'a guard against a hang'); // as above
  const seed = Number(process.env.DNS_FUZZ_SEED ?? Date.now() % 2 ** 31) ^ 0x5a5a;
  t.log(`seed ${seed} (DNS_FUZZ_SEED to replay, xor 0x5a5a)`);
  const up = await upstream('127.0.0.12', 3);
  const s = await startServer(table, { udp: 'batch', view: 'me', defaultUpstreams: [{ host: '127.0.0.12', port: up.port }], timeoutMs: 200 });
  try {
    await udpFuzz(t, s, rng(seed), 100_000);
    await assertHealthy(t, s.port);
  } finally { s.close(); up.close(); }
});
