import test from 'ava';
import { parseCidr, parseIp } from '../../common/cidr.js';
import { planReclaim, planRestart } from '../../plugin/ipam/restart-plan.js';

const rec = (address: string, node: string, key?: string) => ({ networkId: 'n', address, node, ...(key ? { key } : {}) });

test('planRestart keeps running containers (by MAC or address) and fresh allocations, releases the rest of this node only', (t) => {
  const records = [
    rec('10.0.0.2', 'me', 'mac-02:42:00:00:00:01'),
    rec('10.0.0.3', 'me', 'mac-02:42:00:00:00:02'),
    rec('10.0.0.4', 'me', 'ip-0a0f0f82'),
    rec('10.0.0.5', 'me'),
    rec('10.0.0.6', 'other', 'mac-02:42:00:00:00:09'),
    rec('10.0.0.7', 'me', 'mac-02:42:00:00:00:07'),
  ];
  const plan = planRestart(records, 'me', { macs: new Set(['02:42:00:00:00:01']), addresses: new Set(['10.0.0.4']) }, (r) => r.address === '10.0.0.7');
  t.deepEqual(plan.keep.map((r) => r.address), ['10.0.0.2', '10.0.0.4', '10.0.0.7']);
  t.deepEqual(plan.release.map((r) => r.address), ['10.0.0.3', '10.0.0.5']);
});

test('planRestart with an empty listing releases every record of this node not allocated since start', (t) => {
  const plan = planRestart([rec('10.0.0.2', 'me', 'mac-02:42:00:00:00:01'), rec('10.0.0.3', 'x')], 'me', { macs: new Set(), addresses: new Set() }, () => false);
  t.deepEqual(plan, { keep: [], release: [rec('10.0.0.2', 'me', 'mac-02:42:00:00:00:01')] });
});

const net = (own?: string, recorded: [string, string][] = []) => ({
  id: '10.128.0.0-20', subnet: parseCidr('10.128.0.0/20'), vipBlock: parseCidr('10.128.15.128/25'),
  recorded: new Map(recorded.map(([a, n]) => [parseIp(a), n])), ...(own ? { own: parseCidr(own) } : {}),
});

test('planReclaim re-records vanished live addresses in the host subnet that holds them', (t) => {
  const plan = planReclaim([net()], 'me', 25, [{ address: '10.128.0.130', mac: '02:42:AA:00:00:01' }, { address: '10.128.0.131' }, { address: '172.17.0.2' }]);
  t.deepEqual(plan.conflicts, []);
  t.deepEqual(plan.claims, [{ networkId: '10.128.0.0-20', hostSubnet: parseCidr('10.128.0.128/25'), addresses: [{ ip: parseIp('10.128.0.130'), mac: '02:42:aa:00:00:01' }, { ip: parseIp('10.128.0.131') }] }]);
});

test('planReclaim never takes an address or a second host subnet, and skips what is still recorded for this node', (t) => {
  const plan = planReclaim([net('10.128.1.0/25', [['10.128.1.5', 'me'], ['10.128.1.6', 'other']])], 'me', 25, [
    { address: '10.128.1.5' }, { address: '10.128.1.6' }, { address: '10.128.0.9' }, { address: '10.128.15.130' }, { address: '10.128.1.1' }, { address: '10.128.1.7' },
  ]);
  t.deepEqual(plan.claims, [{ networkId: '10.128.0.0-20', hostSubnet: parseCidr('10.128.1.0/25'), addresses: [{ ip: parseIp('10.128.1.7') }] }]);
  t.is(plan.conflicts.length, 4);
  t.regex(plan.conflicts.join('\n'), /10\.128\.1\.6 .* recorded for node other/);
  t.regex(plan.conflicts.join('\n'), /10\.128\.0\.9 .* outside this node's host subnet 10\.128\.1\.0\/25/);
  t.regex(plan.conflicts.join('\n'), /10\.128\.15\.130 .* VIP block/);
  t.regex(plan.conflicts.join('\n'), /10\.128\.1\.1 .* reserved/);
});
