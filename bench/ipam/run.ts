/**
 * RequestAddress throughput and latency against a real etcd (started here on a random loopback port).
 * Run: npx tsx bench/ipam/run.ts [count=2000] [concurrency=32]
 */
import { TestEtcd } from '../../test/helpers/etcd.js';
import { makeNode, randomPrefix } from '../../test/ipam/setup.js';

const count = Number(process.argv[2] ?? 2000);
const concurrency = Number(process.argv[3] ?? 32);
const etcd = await TestEtcd.start();
const node = makeNode(etcd.endpoint, randomPrefix(), 'bench', { available: '10.0.0.0/8' });
try {
  const nets = await Promise.all(Array.from({ length: Math.ceil(count / 120) }, async () => {
    const p = await node.ipam.requestPool({ AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false });
    return (await node.ipam.requestPool({ AddressSpace: 'SwarmnetLocal', Pool: p.Pool, SubPool: '', Options: {}, V6: false })).PoolID;
  }));
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      const mac = `02:42:${[i >> 16, (i >> 8) & 255, i & 255, 1].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
      const t0 = performance.now();
      await node.ipam.requestAddress({ PoolID: nets[i % nets.length]!, Address: '', Options: { 'com.docker.network.endpoint.macaddress': mac } });
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(1);
  console.log(`RequestAddress: ${count} allocations, concurrency ${concurrency}, ${(count / seconds).toFixed(0)} allocations/s, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`);
} finally {
  await node.close();
  await etcd.stop();
}
