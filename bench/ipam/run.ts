/**
 * RequestAddress throughput and latency against a real etcd (started here on a random loopback port): one plugin
 * instance, then three instances racing on the same networks; the invariant checker runs over the result.
 * Run: npx tsx bench/ipam/run.ts [count=2000] [concurrency=32]
 */
import { setLogLevel } from '../../common/log.js';
import { TestEtcd } from '../../test/helpers/etcd.js';
import { checkInvariants } from '../../test/helpers/invariants.js';
import { makeNode, randomPrefix } from '../../test/ipam/setup.js';

const count = Number(process.argv[2] ?? 2000);
const concurrency = Number(process.argv[3] ?? 32);
setLogLevel('warn');

/** `count` RequestAddress calls spread over `nodes` plugin instances (own client and lease each) and many networks. */
async function scenario(endpoint: string, instances: number): Promise<void> {
  const prefix = randomPrefix();
  const nodes = Array.from({ length: instances }, (_, i) => makeNode(endpoint, prefix, `bench-${i}`, { available: '10.0.0.0/8' }));
  try {
    const pools = await Promise.all(Array.from({ length: Math.ceil(count / 120) }, (_, i) => nodes[i % instances]!.ipam.requestPool({ AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false })));
    const local = await Promise.all(nodes.map((n) => Promise.all(pools.map(async (p) => (await n.ipam.requestPool({ AddressSpace: 'SwarmnetLocal', Pool: p.Pool, SubPool: '', Options: {}, V6: false })).PoolID))));
    const latencies: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
      const n = worker % instances;
      while (next < count) {
        const i = next++;
        const mac = `02:42:${[i >> 16, (i >> 8) & 255, i & 255, 1].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
        const t0 = performance.now();
        await nodes[n]!.ipam.requestAddress({ PoolID: local[n]![i % pools.length]!, Address: '', Options: { 'com.docker.network.endpoint.macaddress': mac } });
        latencies.push(performance.now() - t0);
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const pct = (p: number): string => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(1);
    const bad = await checkInvariants(nodes[0]!.client, prefix);
    if (bad.length) throw new Error(`invariants violated: ${bad.slice(0, 3).join('; ')}`);
    console.log(`RequestAddress, ${instances} instance(s): ${count} allocations, concurrency ${concurrency}, ${(count / seconds).toFixed(0)} allocations/s, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms (target >= 500/s)`);
  } finally {
    for (const n of nodes) await n.close(true);
  }
}

const etcd = await TestEtcd.start();
try {
  await scenario(etcd.endpoint, 1);
  await scenario(etcd.endpoint, 3);
} finally {
  await etcd.stop();
}
