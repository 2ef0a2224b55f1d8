import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostUpstreams, parseUpstream } from '../../dns/upstreams.js';

function files(main: string, systemd?: string): { main: string; systemd: string; done: () => void } {
  const dir = mkdtempSync('/tmp/sndns-resolv-');
  writeFileSync(`${dir}/resolv.conf`, main);
  if (systemd !== undefined) writeFileSync(`${dir}/systemd.conf`, systemd);
  return { main: `${dir}/resolv.conf`, systemd: `${dir}/systemd.conf`, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('host resolv.conf: in order, at most 3, loopback kept (dialled from the host netns), 127.0.0.11 dropped', (t) => {
  const f = files('# c\nsearch x\nnameserver 127.0.0.11\nnameserver 10.0.0.2\n  nameserver 127.0.0.1\nnameserver fd00::53\nnameserver 10.0.0.9\n');
  try {
    t.deepEqual(hostUpstreams(f.main, f.systemd), [{ host: '10.0.0.2', port: 53 }, { host: '127.0.0.1', port: 53 }, { host: 'fd00::53', port: 53 }]);
  } finally { f.done(); }
});

test('systemd-resolved stub as the only server → its upstream file, as Docker does', (t) => {
  const f = files('nameserver 127.0.0.53\noptions edns0\n', 'nameserver 192.0.2.7\n');
  try {
    t.deepEqual(hostUpstreams(f.main, f.systemd), [{ host: '192.0.2.7', port: 53 }]);
  } finally { f.done(); }
  const g = files('nameserver 127.0.0.53\n');
  try {
    t.deepEqual(hostUpstreams(g.main, g.systemd), [{ host: '127.0.0.53', port: 53 }]); // no upstream file: keep the stub
  } finally { g.done(); }
});

test('missing resolv.conf → no servers (never a hard-coded public one)', (t) => {
  t.deepEqual(hostUpstreams('/nonexistent/resolv.conf', '/nonexistent/2'), []);
});

test('parseUpstream: ip, ip:port, [v6]:port, bare v6; bad ports rejected', (t) => {
  t.deepEqual(parseUpstream('10.0.0.1'), { host: '10.0.0.1', port: 53 });
  t.deepEqual(parseUpstream('10.0.0.1:5353'), { host: '10.0.0.1', port: 5353 });
  t.deepEqual(parseUpstream('[fd00::1]:54'), { host: 'fd00::1', port: 54 });
  t.deepEqual(parseUpstream('fd00::1'), { host: 'fd00::1', port: 53 });
  t.throws(() => parseUpstream('10.0.0.1:0'));
  t.throws(() => parseUpstream('10.0.0.1:70000'));
});

test('parseUpstream: hostnames and garbage rejected with the input in the message', (t) => {
  for (const bad of ['example.com', 'dns.example:53', '[example.com]:53', '', 'garbage', '1.2.3', '010.0.0.1', '10.0.0.1:', '10.0.0.1:53x', ' 10.0.0.1', '[10.0.0.1', 'fd00::1]:53', '999.0.0.1']) {
    t.throws(() => parseUpstream(bad), { message: `bad server address "${bad}"` }, JSON.stringify(bad));
  }
});

test('parseUpstream: IPv6 written the way the kernel prints a sender (RFC 5952), so answers match their query', (t) => {
  t.deepEqual(parseUpstream('2001:db8:0:0::1'), { host: '2001:db8::1', port: 53 });
  t.deepEqual(parseUpstream('[2001:DB8::1]:54'), { host: '2001:db8::1', port: 54 });
  t.deepEqual(parseUpstream('2001:0DB8:0000:0000:0000:0000:0000:0001'), { host: '2001:db8::1', port: 53 });
  // IPv4-mapped: reached and answered over IPv4, so written as the IPv4 address (answers then match).
  t.deepEqual(parseUpstream('[::ffff:127.0.0.1]:5353'), { host: '127.0.0.1', port: 5353 });
  t.deepEqual(parseUpstream('::ffff:10.0.0.2'), { host: '10.0.0.2', port: 53 });
  t.deepEqual(parseUpstream('[2001:db8:0:1:0:0:0:1]:5353'), { host: '2001:db8:0:1::1', port: 5353 });
  t.deepEqual(parseUpstream('0:0:0:0:0:0:0:1'), { host: '::1', port: 53 });
  t.deepEqual(parseUpstream('[::1]'), { host: '::1', port: 53 });
});

test('parseUpstream: a scoped (zone id) address is rejected: the batched upstream socket cannot address it', (t) => {
  // BatchUdp.sockaddr() has no scope id and the kernel's sender address has no "%zone": such a server never answers.
  for (const bad of ['fe80::1%eth0', '[fe80::1%eth0]:53', 'fe80::1%1']) t.throws(() => parseUpstream(bad), { message: /bad server address/ }, bad);
});

test('hostUpstreams: non-IP nameserver lines (hostnames, junk, scoped link-local) skipped; IPv6 normalised', (t) => {
  const f = files('nameserver fe80::1%eth0\nnameserver junk\nnameserver dns.example\nnameserver 10.0.0.1\nnameserver 2001:DB8:0:0::53\nnameserver\nnameserver 10.0.0.2:53\nnameserver 10.0.0.3\n');
  try {
    t.deepEqual(hostUpstreams(f.main, f.systemd), [{ host: '10.0.0.1', port: 53 }, { host: '2001:db8::53', port: 53 }, { host: '10.0.0.3', port: 53 }]);
  } finally { f.done(); }
});
