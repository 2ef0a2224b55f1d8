import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { run } from '../../common/exec.js';
import { openContainerListener } from '../../dns/netns-listener.js';
import { applyTakeover, removeTakeover, takeoverRules } from '../../dns/takeover.js';
import { nativeUdp } from '../../dns/udp-batch.js';
import { DOCKER_DNS_SHAPES, fakeDockerResolver, type Shape } from './docker-stand-in.js';
import { serveProbe, tempNetns } from './helpers.js';

// dns/takeover.ts: the rendered nft table, and against a namespace that has Docker's embedded-DNS NAT, that queries
// to 127.0.0.11:53 reach our listener untracked while the table is there and Docker's resolver when it is not.

const addon = nativeUdp();
const ready = process.getuid?.() === 0 && typeof addon?.listenTcp === 'function'
  && ['/usr/sbin/ip', '/usr/sbin/nft', '/usr/bin/nsenter', '/usr/bin/dig'].every((p) => existsSync(p));
const rootTest = ready ? test.serial : test.serial.skip;

// --- rendering (pure) ------------------------------------------------------------------------------------------

test('defaults: table swarmnet-dns, 127.0.0.11:53, UDP and TCP both ways, one output chain at raw priority', (t) => {
  const rules = [
    'ip daddr 127.0.0.11 meta l4proto { tcp, udp } th dport 53 notrack',
    'ip saddr 127.0.0.11 meta l4proto { tcp, udp } th sport 53 notrack',
  ].map((r) => `    ${r}\n`).join('');
  t.is(takeoverRules(), 'table ip swarmnet-dns\ndelete table ip swarmnet-dns\ntable ip swarmnet-dns {\n'
    + `  chain output {\n    type filter hook output priority raw; policy accept;\n${rules}  }\n}\n`);
  t.is(takeoverRules({}), takeoverRules({ table: 'swarmnet-dns', address: '127.0.0.11', port: 53, sources: [] }));
});

test('table, address and port are used everywhere; sources restrict both directions', (t) => {
  const s = takeoverRules({ table: 'sntk_t-1', address: '127.0.0.12', port: 5353, sources: ['10.0.0.0/8', '127.0.0.2'] });
  t.true(s.startsWith('table ip sntk_t-1\ndelete table ip sntk_t-1\ntable ip sntk_t-1 {\n'));
  const lines = s.split('\n').map((l) => l.trim()).filter((l) => l.endsWith('notrack'));
  t.deepEqual(lines, [
    'ip saddr { 10.0.0.0/8, 127.0.0.2 } ip daddr 127.0.0.12 meta l4proto { tcp, udp } th dport 5353 notrack',
    'ip daddr { 10.0.0.0/8, 127.0.0.2 } ip saddr 127.0.0.12 meta l4proto { tcp, udp } th sport 5353 notrack',
  ]);
  t.false(s.includes('swarmnet-dns'));
  t.false(s.includes('127.0.0.11'));
});

test('validation: bad table names, addresses, ports and sources are rejected, nothing is interpolated unchecked', (t) => {
  const badTables = ['', 'a b', '1abc', '-x', 'x;flush ruleset', 'x\ndelete table ip filter', 'x}', 'ä', 'a'.repeat(32)];
  for (const table of badTables) t.throws(() => takeoverRules({ table }), { message: /bad table name/ }, JSON.stringify(table));
  t.notThrows(() => takeoverRules({ table: 'a'.repeat(31) }));
  const badAddresses = ['', '127.0.0.256', '127.0.0', '127.0.0.11.1', '::1', 'localhost', '127.0.0.11/32', '127.0.0.11 ', '127.0.0.11; flush ruleset', '127.0.0.11\n'];
  for (const address of badAddresses) t.throws(() => takeoverRules({ address }), { message: /IPv4 literal/ }, JSON.stringify(address));
  for (const port of [0, -1, 65536, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) t.throws(() => takeoverRules({ port }), { message: /bad port/ }, String(port));
  t.notThrows(() => takeoverRules({ port: 65535 }));
  const badSources = ['', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/', '10.0.0.300', 'any', '0/0', '10.0.0.0/8 }', '10.0.0.0/8, 1.2.3.4', 'fd00::/8', '10.0.0.0/8\n'];
  for (const s of badSources) t.throws(() => takeoverRules({ sources: [s] }), { message: /bad source/ }, JSON.stringify(s));
  t.throws(() => takeoverRules({ sources: ['10.0.0.0/8', 'x'] }), { message: /bad source "x"/ });
  t.notThrows(() => takeoverRules({ sources: ['0.0.0.0/0', '255.255.255.255/32'] }));
});

// --- against a namespace with Docker's embedded-DNS NAT ----------------------------------------------------------

const netns = (t: ExecutionContext) => tempNetns(t, 'sntk');

const nft = (ns: string, args: string[], input?: string) =>
  run('ip', ['netns', 'exec', ns, 'nft', ...args], input === undefined ? {} : { input });

rootTest('every rendered variant is accepted by nft (check mode)', async (t) => {
  const ns = await netns(t);
  for (const o of [{}, { table: 'sntk_x', address: '127.0.0.12', port: 5353 }, { sources: ['10.0.0.0/8', '127.0.0.2'] }]) {
    const r = await run('ip', ['netns', 'exec', ns.name, 'nft', '-c', '-f', '-'], { input: takeoverRules(o), allowFailure: true });
    t.is(r.code, 0, `${JSON.stringify(o)}: ${r.stderr}`);
  }
});

/** Packets counted by Docker's DNAT rules (NAT chains see the first packet of each new connection). */
async function dnatPackets(ns: string, shape: Shape): Promise<{ udp: number; tcp: number }> {
  const out = (await nft(ns, ['list', 'chain', 'ip', shape.table, shape.chain])).stdout;
  const count = (p: string): number => Number(new RegExp(`${p} dport 53 counter packets (\\d+)`).exec(out)?.[1] ?? NaN);
  return { udp: count('udp'), tcp: count('tcp') };
}

/** Conntrack entries in the namespace for queries from source port sport to 127.0.0.11:53. */
async function tracked(ns: string, sport: number): Promise<string[]> {
  const r = await run('ip', ['netns', 'exec', ns, 'cat', '/proc/net/nf_conntrack']);
  return r.stdout.split('\n').filter((l) => l.includes(`dst=127.0.0.11 sport=${sport} dport=53 `));
}

/**
 * dig inside the namespace from 127.0.0.1 (or src), optionally from a fixed source port; the A records. Every query
 * here is answered (by Docker's stand-in or ours): +time is a guard for a busy machine.
 */
async function dig(ns: string, tcp: boolean, sport?: number, src = '127.0.0.1'): Promise<string> {
  const args = ['netns', 'exec', ns, 'dig', '@127.0.0.11', 'probe', 'A', '+short', '+tries=1', '+time=15'];
  args.push('-b', sport === undefined ? src : `${src}#${sport}`);
  if (tcp) args.push('+tcp');
  return (await run('ip', args, { allowFailure: true })).stdout.trim();
}

async function both(ns: string): Promise<string[]> {
  return [await dig(ns, false), await dig(ns, true)];
}

const DOCKER = ['192.0.2.99', '192.0.2.99'];
const OURS = ['10.0.0.9', '10.0.0.9'];

for (const shape of DOCKER_DNS_SHAPES) {
  rootTest(`takeover: queries reach our listener untracked, past Docker's DNAT; removal gives them back; idempotent [${shape.engine}]`, async (t) => {
    const ns = await netns(t);
    const p = await fakeDockerResolver(t, ns.path);
    await nft(ns.name, ['-f', '-'], shape.rules(p));

    serveProbe(t, await openContainerListener(ns.path));

    // Before: our sockets are bound to 127.0.0.11:53, yet Docker's DNAT sends the queries to its resolver, tracked.
    const ports = Array.from({ length: 6 }, (_, i) => 20000 + randomInt(0, 4000) * 10 + i); // distinct, unused here
    t.deepEqual(await both(ns.name), DOCKER);
    const n0 = await dnatPackets(ns.name, shape);
    t.true(n0.udp >= 1 && n0.tcp >= 1, JSON.stringify(n0));
    t.is(await dig(ns.name, false, ports[0]), '192.0.2.99');
    t.is(await dig(ns.name, true, ports[1]), '192.0.2.99');
    t.is((await tracked(ns.name, ports[0]!)).length, 1, 'control: a DNATed UDP query leaves a conntrack entry');
    t.is((await tracked(ns.name, ports[1]!)).length, 1, 'control: a DNATed TCP query leaves a conntrack entry');

    // Takeover: ours, over UDP and TCP; Docker's DNAT never sees a packet and nothing is tracked.
    await applyTakeover(ns.path);
    const n1 = await dnatPackets(ns.name, shape);
    t.deepEqual(await both(ns.name), OURS);
    t.is(await dig(ns.name, false, ports[2]), '10.0.0.9');
    t.is(await dig(ns.name, true, ports[3]), '10.0.0.9');
    t.deepEqual(await dnatPackets(ns.name, shape), n1);
    t.deepEqual(await tracked(ns.name, ports[2]!), []);
    t.deepEqual(await tracked(ns.name, ports[3]!), []);

    // Applying again replaces the table with the same one: one table, same rules, still ours.
    const tables = async () => (await nft(ns.name, ['list', 'tables'])).stdout.split('\n').filter(Boolean).sort();
    const ours = async () => (await nft(ns.name, ['list', 'table', 'ip', 'swarmnet-dns'])).stdout;
    const rulesOnce = await ours();
    t.deepEqual(await tables(), [`table ip ${shape.table}`, 'table ip swarmnet-dns'].sort());
    await applyTakeover(ns.path);
    t.deepEqual(await tables(), [`table ip ${shape.table}`, 'table ip swarmnet-dns'].sort());
    t.is(await ours(), rulesOnce);
    t.deepEqual(await both(ns.name), OURS);
    t.deepEqual(await dnatPackets(ns.name, shape), n1);

    // Removal: Docker's answers again, through its DNAT; removing twice is fine.
    await removeTakeover(ns.path);
    t.deepEqual(await tables(), [`table ip ${shape.table}`]);
    t.deepEqual(await both(ns.name), DOCKER);
    const n2 = await dnatPackets(ns.name, shape);
    t.true(n2.udp > n1.udp && n2.tcp > n1.tcp, `${JSON.stringify(n1)} → ${JSON.stringify(n2)}`);
    t.is(await dig(ns.name, false, ports[4]), '192.0.2.99');
    t.is((await tracked(ns.name, ports[4]!)).length, 1);
    await removeTakeover(ns.path);
    t.deepEqual(await tables(), [`table ip ${shape.table}`]);
    t.deepEqual(await both(ns.name), DOCKER);

    // sources: only those clients are taken over; the others keep Docker's resolver.
    await applyTakeover(ns.path, { sources: ['127.0.0.2'] });
    t.is(await dig(ns.name, false, undefined, '127.0.0.2'), '10.0.0.9');
    t.is(await dig(ns.name, true, undefined, '127.0.0.2'), '10.0.0.9');
    t.deepEqual(await both(ns.name), DOCKER);
    await removeTakeover(ns.path);
    t.is(await dig(ns.name, false, undefined, '127.0.0.2'), '192.0.2.99');
  });
}

rootTest('a namespace that does not exist: apply rejects naming it, remove treats it as already gone', async (t) => {
  const missing = `/run/netns/sntk-missing-${randomBytes(4).toString('hex')}`;
  const e = await t.throwsAsync(applyTakeover(missing));
  t.true(e.message.startsWith(`takeover: nft in ${missing} failed: `), e.message);
  t.regex(e.message, /No such file or directory/);
  await t.notThrowsAsync(removeTakeover(missing));
  await t.throwsAsync(applyTakeover('run/netns/x'), { message: /absolute path/ });
  await t.throwsAsync(applyTakeover(missing, { table: 'x;flush ruleset' }), { message: /bad table name/ });
  // Our own namespace (a host-network container): the NOTRACK table would land on the host. Refused, nothing added.
  await t.throwsAsync(applyTakeover('/proc/self/ns/net', { table: 'sntk_own' }), { message: /own network namespace/ });
  t.false((await run('nft', ['list', 'tables'])).stdout.includes('sntk_own'));
});
