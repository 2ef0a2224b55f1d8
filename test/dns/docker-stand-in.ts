// Stand-ins for what dockerd puts in a container's namespace for its embedded resolver: the resolver itself and
// its DNAT of 127.0.0.11:53, in the shapes Docker writes them (shared by the takeover and injector tests).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { ExecutionContext } from 'ava';
import { toolEnv } from '../../common/exec.js';

/**
 * A DNS server for tests: UDP and TCP on <address>:<port> (0: a random port, the same for both), every query answered
 * with one A record <answer> (raw bytes: the question copied, a pointer to it as owner); with <only-from>, queries
 * from any other address are dropped. Prints the port once listening. Arguments: address port answer [only-from].
 */
export const STAND_IN_DNS = `
const dgram = require('node:dgram'), net = require('node:net');
const [address, port0, ip, onlyFrom] = process.argv.slice(1);
const rr = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, ...ip.split('.').map(Number)]);
function answer(q) {
  let o = 12;
  while (o < q.length && q[o] !== 0) o += q[o] + 1;
  o += 5;
  if (q.length < 12 || o > q.length) return undefined;
  const head = Buffer.from([q[0], q[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
  return Buffer.concat([head, q.subarray(12, o), rr]);
}
const allowed = (from) => !onlyFrom || from === onlyFrom;
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => { const a = allowed(r.address) && answer(m); if (a) udp.send(a, r.port, r.address); });
udp.bind(Number(port0), address, () => {
  const port = udp.address().port;
  net.createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('error', () => {});
    if (!allowed(c.remoteAddress)) return void c.destroy();
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const a = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (a) { const len = Buffer.alloc(2); len.writeUInt16BE(a.length); c.write(Buffer.concat([len, a])); }
      }
    });
  }).listen(port, address, () => console.log(port));
});`;

/** Stands in for dockerd's embedded resolver: 127.0.0.11:<random port>, every name 192.0.2.99. Resolves with the port. */
export async function fakeDockerResolver(t: ExecutionContext, nsPath: string): Promise<number> {
  const child = spawn('nsenter', [`--net=${nsPath}`, process.execPath, '-e', STAND_IN_DNS, '127.0.0.11', '0', '192.0.2.99'], { stdio: ['ignore', 'pipe', 'inherit'], env: toolEnv() });
  t.teardown(() => { child.kill('SIGKILL'); });
  const line = await Promise.race([
    new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve)),
    new Promise<string>((resolve) => { child.once('exit', () => resolve('exited')); setTimeout(() => resolve('timeout'), 60_000); }), // a guard
  ]);
  const port = Number(line);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`fake Docker resolver did not start: ${line}`);
  return port;
}

/** Docker's embedded-DNS NAT as dockerd (iptables-nft) writes it into a container's namespace, with counters. */
export function dockerNat(p: number): string {
  return `table ip nat {
  chain OUTPUT { type nat hook output priority -100; policy accept; ip daddr 127.0.0.11 counter jump DOCKER_OUTPUT; }
  chain POSTROUTING { type nat hook postrouting priority 100; policy accept; ip daddr 127.0.0.11 counter jump DOCKER_POSTROUTING; }
  chain DOCKER_OUTPUT {
    ip daddr 127.0.0.11 tcp dport 53 counter dnat to 127.0.0.11:${p}
    ip daddr 127.0.0.11 udp dport 53 counter dnat to 127.0.0.11:${p}
  }
  chain DOCKER_POSTROUTING {
    ip saddr 127.0.0.11 tcp sport ${p} counter snat to :53
    ip saddr 127.0.0.11 udp sport ${p} counter snat to :53
  }
}
`;
}

/**
 * Docker 28 with its nftables firewall backend (DOCKER_FIREWALL_BACKEND=nftables; 29: --firewall-backend) writes a
 * native table instead, copied from a real dockerd 28.5.2 container namespace (it uses one port per protocol; the
 * stand-in serves both on one).
 */
export function dockerDnsNft(p: number): string {
  return `table ip docker-dns {
  chain dns-dnat {
    type nat hook output priority -100; policy accept;
    ip daddr 127.0.0.11 udp dport 53 counter dnat to 127.0.0.11:${p}
    ip daddr 127.0.0.11 tcp dport 53 counter dnat to 127.0.0.11:${p}
  }
  chain dns-snat {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 127.0.0.11 udp sport ${p} counter snat to :53
    ip saddr 127.0.0.11 tcp sport ${p} counter snat to :53
  }
}
`;
}

/** The shapes of Docker's embedded-DNS NAT in a container: Docker 20.10 and 28's default, and 28's nftables backend. */
export const DOCKER_DNS_SHAPES = [
  { engine: 'iptables(-nft): Docker 20.10, 28 by default', rules: dockerNat, table: 'nat', chain: 'DOCKER_OUTPUT' },
  { engine: 'nftables backend: Docker 28 DOCKER_FIREWALL_BACKEND=nftables', rules: dockerDnsNft, table: 'docker-dns', chain: 'dns-dnat' },
];
export type Shape = (typeof DOCKER_DNS_SHAPES)[number];

