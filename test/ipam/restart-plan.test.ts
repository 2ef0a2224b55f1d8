import test from 'ava';
import { planRestart } from '../../plugin/ipam/restart-plan.js';

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
