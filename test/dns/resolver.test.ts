import test from 'ava';
import dnsPacket from 'dns-packet';
import { buildTable, type TableInput } from '../../dns/table.js';
import { Resolver, variations } from '../../dns/resolver.js';

type QType = 'A' | 'AAAA' | 'PTR' | 'MX' | 'TXT' | 'SRV';
type Res = 'forward' | 'drop' | dnsPacket.Packet;

function asker(input: TableInput, compat: boolean) {
  const r = new Resolver(buildTable(input), { compat });
  return (name: string, type: QType = 'A', view = 'client', extra: Partial<dnsPacket.Packet> = {}): Res => {
    const req = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }], ...extra });
    const out = r.resolve(req, view);
    if (out.kind === 'forward' || out.kind === 'drop') return out.kind;
    return dnsPacket.decode(out.response);
  };
}
const data = (r: Res): string[] =>
  typeof r === 'string' ? [r] : (r.answers ?? []).map((a) => String((a as { data: unknown }).data)).sort();
const rcode = (r: Res): string => (typeof r === 'string' ? r : r.rcode ?? '?');

// --- name forms --------------------------------------------------------------------------------------------
const base: TableInput = {
  networks: [{ id: 'n1', name: 'front' }, { id: 'n2', name: 'back' }, { id: 'n3', name: 'elsewhere' }],
  containers: [
    { id: 'aaaaaaaaaaaa1111', name: '/web', hostname: 'webhost', endpoints: [
      { networkId: 'n1', ip: '10.0.1.2', aliases: ['www'] }, { networkId: 'n2', ip: '10.0.2.2' }] },
    { id: 'bbbbbbbbbbbb2222', name: 'db', endpoints: [{ networkId: 'n2', ip: '10.0.2.3', ipv6: 'fd00::3', aliases: ['shared'] }] },
    { id: 'cccccccccccc3333', name: 'other', endpoints: [{ networkId: 'n1', ip: '10.0.1.9', aliases: ['shared'] }] },
    { id: 'dddddddddddd4444', name: 'hidden', endpoints: [{ networkId: 'n3', ip: '10.0.3.4' }] },
    { id: 't1', name: 'api.1.x', serviceId: 's1', endpoints: [{ networkId: 'n1', ip: '10.0.1.20' }] },
    { id: 't2', name: 'api.2.y', serviceId: 's1', endpoints: [{ networkId: 'n1', ip: '10.0.1.21' }] },
    { id: 't3', name: 'st_rr.1.z', serviceId: 's2', endpoints: [{ networkId: 'n1', ip: '10.0.1.30' }] },
    { id: 't4', name: 'st_rr.2.w', serviceId: 's2', endpoints: [{ networkId: 'n1', ip: '10.0.1.31' }] },
    { id: 'client', name: 'client', ndots: false, endpoints: [
      { networkId: 'n1', ip: '10.0.1.100' }, { networkId: 'n2', ip: '10.0.2.100' }] },
    { id: 'picky', name: 'picky', ndots: true, endpoints: [{ networkId: 'n1', ip: '10.0.1.101' }] },
  ],
  services: [
    { id: 's1', name: 'api', mode: 'vip', networks: [{ networkId: 'n1', vip: '10.0.1.250', aliases: ['api-alias'] }] },
    // a stack service: name <stack>_<svc>, the short name is a spec alias
    { id: 's2', name: 'st_rr', mode: 'dnsrr', networks: [{ networkId: 'n1', aliases: ['rr'] }] },
  ],
};
const ask = asker(base, true);
const askAll = asker(base, false);

test('container name, network alias, hostname, 12-char short id; case-insensitive; TTL 600', (t) => {
  t.deepEqual(data(ask('db')), ['10.0.2.3']);
  t.deepEqual(data(ask('WWW')), ['10.0.1.2']);
  t.deepEqual(data(ask('WebHost')), ['10.0.2.2']); // on both networks: back comes first in the walk
  t.deepEqual(data(ask('bbbbbbbbbbbb')), ['10.0.2.3']);
  t.is(ask('bbbbbbbbbbbb2'), 'forward'); // only the 12-char prefix
  t.deepEqual(data(ask('DB.Back')), ['10.0.2.3']);
  const r = ask('db') as dnsPacket.Packet;
  t.is(r.answers?.[0]?.ttl, 600);
  t.is(r.answers?.[0]?.name, 'db'); // owner is the question name
  t.false(!!((r.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER));
  t.true(!!((r.flags ?? 0) & dnsPacket.RECURSION_AVAILABLE));
});

test('<name>.<network> only on that network; a network the client is not on is invisible', (t) => {
  t.deepEqual(data(ask('web.back')), ['10.0.2.2']);
  t.deepEqual(data(ask('web.front')), ['10.0.1.2']);
  t.is(ask('db.front'), 'forward');
  t.is(ask('hidden'), 'forward');
  t.is(ask('hidden.elsewhere'), 'forward');
  t.is(ask('db', 'A', 'cccccccccccc3333'), 'forward'); // other's view: front only
  t.is(ask('db', 'A', 'no-such-container'), 'forward');
});

test('compat: first network in walk order (by name) wins; deterministic mode: all networks', (t) => {
  // client walk order: back, front
  t.deepEqual(data(ask('web')), ['10.0.2.2']);
  t.deepEqual(data(askAll('web')), ['10.0.1.2', '10.0.2.2']);
  t.deepEqual(data(ask('shared')), ['10.0.2.3']);
  t.deepEqual(data(askAll('shared')), ['10.0.1.9', '10.0.2.3']);
});

test('internal networks come last in the walk', (t) => {
  const a = asker({
    networks: [{ id: 'i', name: 'aaa-internal', internal: true }, { id: 'p', name: 'zzz' }],
    containers: [
      { id: 'x', name: 'x', endpoints: [{ networkId: 'i', ip: '10.9.0.2' }, { networkId: 'p', ip: '10.9.1.2' }] },
      { id: 'client', name: 'client', endpoints: [{ networkId: 'i', ip: '10.9.0.3' }, { networkId: 'p', ip: '10.9.1.3' }] },
    ],
  }, true);
  t.deepEqual(data(a('x')), ['10.9.1.2']);
});

test('services: VIP, spec aliases, tasks.<svc>, tasks.<alias>, DNSRR task IPs, stack short name', (t) => {
  t.deepEqual(data(ask('api')), ['10.0.1.250']);
  t.deepEqual(data(ask('API-alias')), ['10.0.1.250']);
  t.deepEqual(data(ask('tasks.api')), ['10.0.1.20', '10.0.1.21']);
  t.deepEqual(data(ask('tasks.api-alias')), ['10.0.1.20', '10.0.1.21']);
  t.deepEqual(data(ask('st_rr')), ['10.0.1.30', '10.0.1.31']);
  t.deepEqual(data(ask('rr')), ['10.0.1.30', '10.0.1.31']);
  t.deepEqual(data(ask('tasks.rr')), ['10.0.1.30', '10.0.1.31']);
  t.deepEqual(data(ask('api.1.x')), ['10.0.1.20']); // task container name
  t.deepEqual(data(ask('api.front')), ['10.0.1.250']);
});

test('answers are shuffled on every query', (t) => {
  const firsts = new Set<string>();
  for (let i = 0; i < 100; i++) firsts.add(String((ask('tasks.api') as dnsPacket.Packet).answers?.[0]?.data));
  t.deepEqual([...firsts].sort(), ['10.0.1.20', '10.0.1.21']);
});

test('known name: AAAA without IPv6 and other types are NODATA, never forwarded; AAAA with IPv6 answers', (t) => {
  for (const type of ['AAAA', 'MX', 'TXT'] as const) {
    const r = ask('web', type);
    t.is(rcode(r), 'NOERROR', type);
    t.deepEqual(data(r), [], type);
  }
  t.deepEqual(data(ask('db', 'AAAA')), ['fd00::3']);
  t.is(rcode(ask('db.back', 'AAAA')), 'NOERROR');
  t.is(ask('example.com', 'A'), 'forward');
  t.is(ask('example.com', 'MX'), 'forward');
  t.is(ask('_http._tcp.api', 'SRV'), 'forward');
});

test('PTR: container and task addresses → <name>.<network>., IPv6 too; VIPs and unknown forwarded', (t) => {
  t.deepEqual(data(ask('3.2.0.10.in-addr.arpa', 'PTR')), ['db.back']);
  t.deepEqual(data(ask('2.1.0.10.in-addr.arpa', 'PTR')), ['web.front']);
  t.deepEqual(data(ask('20.1.0.10.IN-ADDR.ARPA', 'PTR')), ['api.1.x.front']);
  const v6 = '3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa';
  t.deepEqual(data(ask(v6, 'PTR')), ['db.back']);
  t.is(ask('250.1.0.10.in-addr.arpa', 'PTR'), 'forward');
  t.is(ask('4.3.0.10.in-addr.arpa', 'PTR'), 'forward'); // not in the view
  t.is(ask('1.1.1.in-addr.arpa', 'PTR'), 'forward');
});

test('ndots set by the container: unresolved bare names get an empty NOERROR, dotted names are forwarded', (t) => {
  const r = ask('nosuchname', 'A', 'picky');
  t.is(rcode(r), 'NOERROR'); t.deepEqual(data(r), []);
  t.is(ask('nosuchname', 'A', 'client'), 'forward');
  t.is(ask('example.com', 'A', 'picky'), 'forward');
  t.deepEqual(data(ask('www', 'A', 'picky')), ['10.0.1.2']);
});

test('FORMERR for malformed, NOTIMP for non-QUERY opcodes, responses and short garbage dropped', (t) => {
  const r = new Resolver(buildTable(base), { compat: true });
  const loop = r.resolve(Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1]), 'client');
  t.true(loop.kind === 'answer' && (loop.response[3]! & 0xf) === 1 && loop.response.readUInt16BE(0) === 1);
  const two = dnsPacket.encode({ type: 'query', id: 3, questions: [{ type: 'A', name: 'a' }, { type: 'A', name: 'b' }] });
  const f2 = r.resolve(two, 'client');
  t.true(f2.kind === 'answer' && (f2.response[3]! & 0xf) === 1);
  const req = dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'web' }] });
  req[2] = req[2]! | (2 << 3); // opcode STATUS
  const ni = r.resolve(req, 'client');
  t.true(ni.kind === 'answer' && (ni.response[3]! & 0xf) === 4 && ((ni.response[2]! >> 3) & 0xf) === 2);
  const resp = dnsPacket.encode({ type: 'response', id: 9, questions: [{ type: 'A', name: 'web' }] });
  t.is(r.resolve(resp, 'client').kind, 'drop');
  t.is(r.resolve(Buffer.from([1, 2, 3]), 'client').kind, 'drop');
});

test('EDNS0: OPT echoed, client size honoured; without EDNS 512 bytes and TC', (t) => {
  const many: TableInput = {
    networks: [{ id: 'n', name: 'n' }],
    containers: [
      { id: 'client', name: 'client', endpoints: [{ networkId: 'n', ip: '10.1.0.1' }] },
      ...Array.from({ length: 100 }, (_, i) => ({ id: `m${i}`, name: `m${i}`, endpoints: [{ networkId: 'n', ip: `10.1.1.${i + 1}`, aliases: ['big'] }] })),
    ],
  };
  const a = asker(many, true);
  const plain = a('big') as dnsPacket.Packet;
  t.true(!!((plain.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE));
  t.is(plain.answers?.length, Math.floor((512 - 12 - 9) / 16));
  const edns = a('big', 'A', 'client', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer] }) as dnsPacket.Packet;
  t.false(!!((edns.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE));
  t.is(edns.answers?.length, 100);
  t.is(edns.additionals?.[0]?.type, 'OPT');
  const small = a('big', 'A', 'client', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer] }) as dnsPacket.Packet;
  t.true(!!((small.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE));
  t.is(small.answers?.length, Math.floor((1232 - 12 - 9 - 11) / 16));
});

test('name variations are tried in Docker\'s order', (t) => {
  t.deepEqual(variations('a.b.c'), [['a.b.c', ''], ['a.b', 'c'], ['a', 'b.c']]);
  t.deepEqual(variations('a'), [['a', '']]);
});

// --- the scenarios of flannel-np's NewResolver comment (predecessor-flannel-np.md §2.6.3) ----------------------
// Networks web and internal; the requester is on both; VIP service my-name and DNSRR service my-alias on both.
function scenario(myName: { name: string; nets: ('web' | 'internal')[]; alias?: string }): TableInput {
  const ip = { web: '10.10.0.', internal: '10.20.0.' };
  return {
    networks: [{ id: 'W', name: 'web' }, { id: 'I', name: 'internal' }],
    containers: [
      { id: 'req', name: 'requester', endpoints: [{ networkId: 'W', ip: '10.10.0.100' }, { networkId: 'I', ip: '10.20.0.100' }] },
      { id: 'mn', name: myName.name, endpoints: myName.nets.map((n) => ({ networkId: n === 'web' ? 'W' : 'I', ip: `${ip[n]}5`, aliases: myName.alias ? [myName.alias] : [] })) },
      { id: 'rr1', name: 'my-alias.1.a', serviceId: 'rr', endpoints: [{ networkId: 'W', ip: '10.10.0.31' }, { networkId: 'I', ip: '10.20.0.31' }] },
      { id: 'rr2', name: 'my-alias.2.b', serviceId: 'rr', endpoints: [{ networkId: 'W', ip: '10.10.0.32' }, { networkId: 'I', ip: '10.20.0.32' }] },
    ],
    services: [
      { id: 'vip', name: 'my-name', mode: 'vip', networks: [{ networkId: 'W', vip: '10.10.0.250' }, { networkId: 'I', vip: '10.20.0.250' }] },
      { id: 'rr', name: 'my-alias', mode: 'dnsrr', networks: [{ networkId: 'W' }, { networkId: 'I' }] },
    ],
  };
}
const s1 = scenario({ name: 'my-name', nets: ['web', 'internal'], alias: 'my-alias' });
const s2 = scenario({ name: 'my-name', nets: ['web'] });
const s3 = scenario({ name: 'my-name.internal', nets: ['web'] });

test('scenario Ex. 1–4 (container my-name on both networks, alias my-alias), compat mode', (t) => {
  const a = asker(s1, true);
  const ex1 = a('my-name', 'A', 'req') as dnsPacket.Packet;
  t.deepEqual(data(ex1), ['10.20.0.250', '10.20.0.5']);
  t.true((ex1.answers ?? []).every((x) => x.name === 'my-name'));
  const ex2 = a('my-name.internal', 'A', 'req') as dnsPacket.Packet;
  t.deepEqual(data(ex2), ['10.20.0.250', '10.20.0.5']);
  t.true((ex2.answers ?? []).every((x) => x.name === 'my-name.internal'));
  t.deepEqual(data(a('my-name.web', 'A', 'req')), ['10.10.0.250', '10.10.0.5']);
  t.deepEqual(data(a('my-alias', 'A', 'req')), ['10.20.0.31', '10.20.0.32', '10.20.0.5']);
});

test('scenario Ex. 1–4, deterministic (all networks) mode', (t) => {
  const a = asker(s1, false);
  t.deepEqual(data(a('my-name', 'A', 'req')), ['10.10.0.250', '10.10.0.5', '10.20.0.250', '10.20.0.5']);
  // Ex. 2: the comment says "both networks", its code (and Docker) qualify to the named network: we do the latter.
  t.deepEqual(data(a('my-name.internal', 'A', 'req')), ['10.20.0.250', '10.20.0.5']);
  t.deepEqual(data(a('my-name.web', 'A', 'req')), ['10.10.0.250', '10.10.0.5']);
  t.deepEqual(data(a('my-alias', 'A', 'req')), ['10.10.0.31', '10.10.0.32', '10.10.0.5', '10.20.0.31', '10.20.0.32', '10.20.0.5']);
});

test('scenario Ex. 5 (container my-name on web only)', (t) => {
  t.deepEqual(data(asker(s2, true)('my-name', 'A', 'req')), ['10.20.0.250']);
  t.deepEqual(data(asker(s2, false)('my-name', 'A', 'req')), ['10.10.0.250', '10.10.0.5', '10.20.0.250']);
});

test('scenario Ex. 6 (container named my-name.internal on web only): the whole-name variation wins', (t) => {
  t.deepEqual(data(asker(s3, true)('my-name.internal', 'A', 'req')), ['10.10.0.5']);
  t.deepEqual(data(asker(s3, false)('my-name.internal', 'A', 'req')), ['10.10.0.5']);
});

test('table: bad input is rejected with the path of the problem', (t) => {
  const e = t.throws(() => buildTable({ networks: [], containers: [{ id: 'x', name: 'x', endpoints: [{ networkId: 'n', ip: 'nope' }] }] }));
  t.regex(e.message, /ip/);
  t.throws(() => buildTable({ networks: 'x' }));
  // --dns servers the forwarder could never use (hostnames, scoped link-local) are refused here, not dropped later.
  for (const bad of ['dns.example.com', 'fe80::1%eth0', '10.0.0.1:99999']) {
    const u = t.throws(() => buildTable({ networks: [], containers: [{ id: 'x', name: 'x', upstreams: [bad], endpoints: [] }] }), undefined, bad);
    t.regex(u.message, /upstreams/, bad);
  }
  t.notThrows(() => buildTable({ networks: [], containers: [{ id: 'x', name: 'x', upstreams: ['10.0.0.1', '[fd00::1]:5353'], endpoints: [] }] }));
});
