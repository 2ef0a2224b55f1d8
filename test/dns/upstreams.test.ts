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
