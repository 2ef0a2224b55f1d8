/**
 * The resolver as the plugin runs it for two containers: one process, one DnsServer, one listener per container
 * namespace (dns/netns-listener.ts: UDP batched + TCP on 127.0.0.11:53 there), each answering as its container.
 * Usage: node dist/bench/dns-flood/server.js <netns path of A> <netns path of B>   (prints "ready" once serving)
 * Every name in the table is local; misses (none in the bench's mixes) would fail at once (no upstreams).
 * A line "mark" on stdin is answered with one JSON line about the time since the previous mark: the event loop's
 * utilisation (busy share of wall time), how late a 1 ms timer ran (p99, max: a turn that held the loop, or the
 * process waiting for a CPU) and the queries taken in.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setLogLevel } from '../../common/log.js';
import { openContainerListener, type ContainerListener } from '../../dns/netns-listener.js';
import { DnsServer } from '../../dns/server.js';
import { DEFAULT_DNS_MAX_QPS } from '../../plugin/config.js';
import { buildTable } from '../../dns/table.js';

const [nsA, nsB] = process.argv.slice(2);
if (!nsA || !nsB) throw new Error('usage: server.js <netns A> <netns B>');
setLogLevel('warn');

const table = buildTable({
  networks: [{ id: 'n1', name: 'front' }],
  containers: [
    { id: 'a', name: 'flooder', endpoints: [{ networkId: 'n1', ip: '10.0.0.2' }] },
    { id: 'b', name: 'victim', endpoints: [{ networkId: 'n1', ip: '10.0.0.3' }] },
    { id: 't', name: 'target', endpoints: [{ networkId: 'n1', ip: '10.0.0.9', aliases: ['target-alias'] }] },
  ],
});
// DNS_FLOOD_PER_TURN: both per-turn budgets (UDP datagrams, TCP messages) instead of the product's, for an A/B.
const perTurn = process.env.DNS_FLOOD_PER_TURN ? Number(process.env.DNS_FLOOD_PER_TURN) : undefined;
// DNS_FLOOD_MAX_QPS: the per-container query cap (DNS_MAX_QPS_PER_CONTAINER; 0: none) instead of the product's default.
const maxQps = process.env.DNS_FLOOD_MAX_QPS !== undefined ? Number(process.env.DNS_FLOOD_MAX_QPS) : DEFAULT_DNS_MAX_QPS;
const server = new DnsServer(table, { compat: true, defaultUpstreams: [], tcpMessagesPerTurn: perTurn, maxQpsPerContainer: maxQps });
const listeners: ContainerListener[] = [];
for (const [view, path] of [['a', nsA], ['b', nsB]] as const) {
  const l = await openContainerListener(path, { datagramsPerTurn: perTurn });
  listeners.push(l);
  server.addListener({ ...l, view });
}
process.on('SIGTERM', () => {
  for (const l of listeners) l.close();
  process.stdout.write(`stats ${JSON.stringify({ queries: server.stats.queries, local: server.stats.local, limited: server.stats.limited.qps })}\n`);
  process.exit(0);
});
const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
let elu = performance.eventLoopUtilization();
let queries = server.stats.queries;
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'mark') return;
  const now = performance.eventLoopUtilization(elu);
  process.stdout.write(`mark ${JSON.stringify({
    elu: now.utilization, delayP99Ms: delay.percentile(99) / 1e6, delayMaxMs: delay.max / 1e6, queries: server.stats.queries - queries,
  })}\n`);
  elu = performance.eventLoopUtilization();
  queries = server.stats.queries;
  delay.reset();
});
process.stdout.write('ready\n');
