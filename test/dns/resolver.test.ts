import test from 'ava';
import dnsPacket from 'dns-packet';
import { buildTable } from '../../dns/table.js';
import { resolve } from '../../dns/resolver.js';

const table = buildTable({
  networks: [{ id: 'n1', name: 'front' }, { id: 'n2', name: 'back' }],
  containers: [
    { id: 'aaaaaaaaaaaa1111', name: 'web', hostname: 'webhost', endpoints: [
      { networkId: 'n1', ip: '10.0.1.2', aliases: ['www'] }, { networkId: 'n2', ip: '10.0.2.2', aliases: [] }] },
    { id: 'bbbbbbbbbbbb2222', name: 'db', endpoints: [{ networkId: 'n2', ip: '10.0.2.3', ipv6: 'fd00::3', aliases: ['shared'] }] },
    { id: 'cccccccccccc3333', name: 'other', endpoints: [{ networkId: 'n1', ip: '10.0.1.9', aliases: ['shared'] }] },
    { id: 't1', name: 'api.1.x', serviceId: 's1', endpoints: [{ networkId: 'n1', ip: '10.0.1.20', aliases: [] }] },
    { id: 't2', name: 'api.2.y', serviceId: 's1', endpoints: [{ networkId: 'n1', ip: '10.0.1.21', aliases: [] }] },
    { id: 'client', name: 'client', endpoints: [
      { networkId: 'n1', ip: '10.0.1.100', aliases: [] }, { networkId: 'n2', ip: '10.0.2.100', aliases: [] }] },
  ],
  services: [{ id: 's1', name: 'api', mode: 'vip', networks: [{ networkId: 'n1', vip: '10.0.1.250', aliases: ['api-alias'] }] }],
});

function ask(name: string, type: 'A' | 'AAAA' | 'PTR' | 'MX', compat = true, view = 'client') {
  const req = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
  const out = resolve(table, view, req, compat);
  if (out.kind === 'forward') return 'forward' as const;
  return dnsPacket.decode(out.response);
}
const ips = (r: ReturnType<typeof ask>): string[] =>
  r === 'forward' ? [] : (r.answers ?? []).map((a) => String((a as { data: unknown }).data)).sort();

test('container name, alias, hostname, short id, name.network, case-insensitive', (t) => {
  t.deepEqual(ips(ask('db', 'A')), ['10.0.2.3']);
  t.deepEqual(ips(ask('WWW', 'A')), ['10.0.1.2']);
  t.deepEqual(ips(ask('webhost', 'A')), ['10.0.1.2']);
  t.deepEqual(ips(ask('bbbbbbbbbbbb', 'A')), ['10.0.2.3']);
  t.deepEqual(ips(ask('web.back', 'A')), ['10.0.2.2']);
  const r = ask('db', 'A');
  t.true(r !== 'forward' && (r.answers?.[0] as { ttl?: number } | undefined)?.ttl === 600);
});

test('first-network-wins (compat) vs all networks (deterministic)', (t) => {
  t.deepEqual(ips(ask('web', 'A', true)), ['10.0.1.2']);
  t.deepEqual(ips(ask('web', 'A', false)), ['10.0.1.2', '10.0.2.2']);
  t.deepEqual(ips(ask('shared', 'A', true)), ['10.0.1.9']);
  t.deepEqual(ips(ask('shared', 'A', false)), ['10.0.1.9', '10.0.2.3']);
});

test('services: VIP, tasks.<svc>, spec aliases; views limit visibility', (t) => {
  t.deepEqual(ips(ask('api', 'A')), ['10.0.1.250']);
  t.deepEqual(ips(ask('api-alias', 'A')), ['10.0.1.250']);
  t.deepEqual(ips(ask('tasks.api', 'A')), ['10.0.1.20', '10.0.1.21']);
  t.is(ask('db', 'A', true, 'cccccccccccc3333'), 'forward');
});

test('NODATA for known name with missing type; AAAA; unknown forwarded', (t) => {
  const r = ask('web', 'AAAA');
  t.true(r !== 'forward' && (r.flags ?? 0) % 16 === 0 && (r.answers ?? []).length === 0);
  t.deepEqual(ips(ask('db', 'AAAA')), ['fd00::3']);
  t.is(ask('example.com', 'A'), 'forward');
});

test('PTR for container and task addresses, not VIPs', (t) => {
  t.deepEqual(ips(ask('3.2.0.10.in-addr.arpa', 'PTR')), ['db.back']);
  t.deepEqual(ips(ask('20.1.0.10.in-addr.arpa', 'PTR')), ['api.1.x.front']);
  t.is(ask('250.1.0.10.in-addr.arpa', 'PTR'), 'forward');
});

test('FORMERR for garbage, NOTIMP for non-QUERY', (t) => {
  const bad = resolve(table, 'client', Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1]), true);
  t.true(bad.kind === 'answer' && (bad.response[3]! & 0xf) === 1);
  const req = dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'web' }] });
  req[2] = req[2]! | (2 << 3); // opcode STATUS
  const ni = resolve(table, 'client', req, true);
  t.true(ni.kind === 'answer' && (ni.response[3]! & 0xf) === 4);
});

test('fuzz: 1,000,000 random and mutated packets never throw', (t) => {
  const seed = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'web.front' }] });
  for (let i = 0; i < 1_000_000; i++) {
    let b: Buffer;
    if (i % 2) { b = Buffer.from(seed); for (let k = 0; k < 3; k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256); b = b.subarray(0, 1 + Math.floor(Math.random() * b.length)); }
    else { b = Buffer.allocUnsafe(Math.floor(Math.random() * 40)); for (let k = 0; k < b.length; k++) b[k] = Math.floor(Math.random() * 256); }
    resolve(table, 'client', b, i % 3 === 0);
  }
  t.deepEqual(ips(ask('db', 'A')), ['10.0.2.3']);
});
