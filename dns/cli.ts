import cluster from 'node:cluster';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command as CommanderCommand } from 'commander';
import { DnsServer, type Listener } from './server.js';
import { BatchUdp, nativeUdp } from './udp-batch.js';
import { buildTable, type Table } from './table.js';
import { parseUpstream } from './upstreams.js';

export interface ServeOptions { table: string; listen: string; view?: string; upstream?: string[]; compat: string; workers?: string }

/**
 * Replies always go to the literal address a query came from; skipping dns.lookup's deferred callback on every
 * send is measurable at 100k qps.
 */
export function literalLookup(address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

function loadTable(file: string): Table {
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(file, 'utf8')); } catch (e) { throw new Error(`cannot read table ${file}: ${(e as Error).message}`); }
  return buildTable(raw);
}

/** Starts the standalone resolver (UDP + TCP on one address); resolves once both sockets listen. */
export async function serve(o: ServeOptions): Promise<{ server: DnsServer; close: () => void }> {
  const table = loadTable(o.table);
  const { host, port } = parseUpstream(o.listen);
  if (o.view !== undefined && !table.views.has(o.view)) throw new Error(`--view ${o.view}: no such container in the table`);
  if (o.compat !== 'true' && o.compat !== 'false') throw new Error('--compat must be true or false');
  const server = new DnsServer(table, {
    compat: o.compat === 'true',
    ...(o.upstream ? { defaultUpstreams: o.upstream.map(parseUpstream) } : {}),
  });
  const listener: Listener = o.view !== undefined ? { view: o.view } : {};
  let closeUdp: () => void;
  if (nativeUdp()) {
    // Workers each bind the address (SO_REUSEPORT) and the kernel spreads clients over them.
    const b = BatchUdp.open(host, port, { reusePort: cluster.isWorker });
    listener.batchUdp = b;
    closeUdp = () => b.close();
  } else {
    const udp = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4', lookup: literalLookup });
    await new Promise<void>((r, j) => { udp.once('error', j); udp.bind(port, host, () => { udp.off('error', j); r(); }); });
    listener.udp = udp;
    closeUdp = () => udp.close();
  }
  const tcp = net.createServer();
  try {
    await new Promise<void>((r, j) => { tcp.once('error', j); tcp.listen(port, host, () => { tcp.off('error', j); r(); }); });
  } catch (e) { closeUdp(); throw e; }
  listener.tcp = tcp;
  server.addListener(listener);
  // SIGHUP reloads the table file; a bad file keeps the old table.
  const reload = (): void => {
    try { server.setTable(loadTable(o.table)); process.stderr.write('dns table reloaded\n'); } catch (e) {
      process.stderr.write(`dns table reload failed, keeping the old one: ${(e as Error).message}\n`);
    }
  };
  process.on('SIGHUP', reload);
  return { server, close: () => { process.off('SIGHUP', reload); closeUdp(); tcp.close(); } };
}

function udpMode(): string { return nativeUdp() ? 'udp: batched' : 'udp: dgram'; }

/**
 * --workers N: N processes share the address (node:cluster): batched UDP sockets bound by each worker with
 * SO_REUSEPORT (dgram: one shared handle), TCP connections handed out round-robin. The primary only supervises:
 * it restarts a worker that dies (at most once a second), forwards SIGHUP (reload) and stops them on SIGTERM/SIGINT.
 */
async function supervise(n: number, listen: string): Promise<void> {
  let up = 0;
  let stopping = false;
  let lastFork = 0;
  const fork = (): void => {
    const w = cluster.fork();
    w.on('message', (m) => { if (m === 'listening' && ++up === n) process.stdout.write(`dns listening on ${listen} (${n} workers, ${udpMode()})\n`); });
  };
  cluster.on('exit', (w, code, signal) => {
    if (stopping) return;
    process.stderr.write(`dns worker ${w.process.pid} exited (${signal ?? code}), restarting\n`);
    const wait = Math.max(0, lastFork + 1000 - Date.now());
    lastFork = Date.now() + wait;
    setTimeout(fork, wait);
  });
  for (let i = 0; i < n; i++) fork();
  const stop = (): void => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => { for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP'); });
}

/** Adds `dns serve` — the standalone resolver for tests and benchmarks. */
export function registerDnsCommands(program: CommanderCommand): CommanderCommand {
  const dns = program.command('dns').description('DNS resolver');
  dns.command('serve')
    .description('serve a name table (JSON, see docs/dns.md) on UDP and TCP')
    .requiredOption('--table <file>', 'name table JSON')
    .option('--listen <addr>', 'ip:port to listen on (UDP and TCP)', '127.0.0.1:5353')
    .option('--view <containerId>', 'answer every client from this container\'s view (default: the container owning the client address)')
    .option('--upstream <addr...>', 'servers ip[:port] for containers without their own (default: host resolv.conf)')
    .option('--compat <bool>', 'DNS_DOCKER_COMPATIBILITY_MODE: Docker first-network-wins walk', 'true')
    .option('--workers <n>', 'processes sharing the sockets', '1')
    .action(async (o: ServeOptions) => {
      const workers = Number(o.workers ?? '1');
      if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
        process.stderr.write('swarmnet dns serve: --workers must be an integer from 1 to 64\n');
        process.exit(2);
      }
      if (workers > 1 && cluster.isPrimary) {
        try { loadTable(o.table); } catch (e) { // fail fast in the primary instead of in a restart loop
          process.stderr.write(`swarmnet dns serve: ${(e as Error).message}\n`);
          process.exit(2);
        }
        await supervise(workers, o.listen);
        return;
      }
      try {
        await serve(o);
      } catch (e) {
        process.stderr.write(`swarmnet dns serve: ${(e as Error).message}\n`);
        process.exit(2);
      }
      if (cluster.isWorker) process.send?.('listening');
      else process.stdout.write(`dns listening on ${o.listen} (${udpMode()})\n`);
      for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
    });
  return dns;
}

// Runnable on its own too (`node dist/dns/cli.js dns serve ...`), which --workers' forks rely on when started so.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const program = new CommanderCommand('swarmnet');
  registerDnsCommands(program);
  await program.parseAsync(process.argv);
}
