// A host without IPv6 (socket(AF_INET6) fails, as with ipv6.disable=1): an IPv6 upstream must fail over to the next
// server at once, on both UDP paths, not after the forwarding timeout. The kernel here has IPv6, so a tiny
// LD_PRELOAD shim makes socket(AF_INET6, ...) fail with EAFNOSUPPORT in a child process.
import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../../dist/dns/', import.meta.url));

const SHIM = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
int socket(int domain, int type, int protocol) {
  static int (*real)(int, int, int);
  if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
  if (domain == AF_INET6) { errno = EAFNOSUPPORT; return -1; }
  return real(domain, type, protocol);
}
`;

// Child: an upstream on 127.0.0.1 answering 192.0.2.1, and a forwarder told to try [::1] first. Its timeout is an
// hour: an answer at all means the IPv6 attempt failed over by itself, not when the timeout fired.
const CHILD = `
import dgram from 'node:dgram';
import { Forwarder } from ${JSON.stringify(join(dist, 'forwarder.js'))};
import { parseUpstream } from ${JSON.stringify(join(dist, 'upstreams.js'))};
import { nativeUdp } from ${JSON.stringify(join(dist, 'udp-batch.js'))};
const up = dgram.createSocket('udp4');
up.on('message', (m, r) => { const out = Buffer.from(m); out[2] |= 0x80; up.send(out, r.port, r.address); });
await new Promise((r) => up.bind(0, '127.0.0.1', r));
const port = up.address().port;
const q = Buffer.from('1234010000010000000000000378797a0000010001', 'hex');
const f = new Forwarder({ timeoutMs: 3_600_000 });
const t0 = Date.now();
const res = await f.forward(q, [parseUpstream('[::1]:' + port), parseUpstream('127.0.0.1:' + port)], 'udp');
console.log(JSON.stringify({ ms: Date.now() - t0, rcode: res[3] & 15, qr: (res[2] & 0x80) !== 0, batched: !!nativeUdp() }));
f.close(); up.close();
`;

function runChild(shim: string, native: boolean): Promise<{ ms: number; rcode: number; qr: boolean; batched: boolean }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, LD_PRELOAD: shim, ...(native ? {} : { SWARMNET_DNS_NATIVE: '0' }) };
    const c = spawn(process.execPath, ['--input-type=module', '-e', CHILD], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    // a guard for a busy machine, far below the forwarder's timeout: still waiting then is waiting for the timeout
    const guard = setTimeout(() => c.kill('SIGKILL'), 60_000);
    let out = ''; let err = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('exit', (code, signal) => {
      clearTimeout(guard);
      const why = signal === 'SIGKILL' ? 'no answer before the guard: waiting for the forwarder\'s timeout' : `exited ${code}`;
      try { resolve(JSON.parse(out.trim().split('\n').pop() ?? '')); } catch { reject(new Error(`child ${why}: ${out} ${err}`)); }
    });
  });
}

test('no IPv6 on the host: an IPv6 upstream fails over at once (batched and dgram)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sn-noipv6-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'shim.c'), SHIM);
  execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'shim.so'), join(dir, 'shim.c'), '-ldl']);
  for (const native of [true, false]) {
    const r = await runChild(join(dir, 'shim.so'), native);
    t.is(r.batched, native, 'the path under test');
    t.true(r.qr && r.rcode === 0, `answered by the IPv4 server, so before the forwarder's timeout (${JSON.stringify(r)})`);
  }
});
