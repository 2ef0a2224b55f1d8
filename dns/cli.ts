import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DnsServer } from './server.js';
import { buildTable, type Table } from './table.js';
import { parseUpstream } from './upstreams.js';

export interface ServeOptions { table: string; listen: string; view?: string; upstream?: string[]; compat: string }

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
  const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const tcp = net.createServer();
  await new Promise<void>((r, j) => { udp.once('error', j); udp.bind(port, host, () => { udp.off('error', j); r(); }); });
  await new Promise<void>((r, j) => { tcp.once('error', j); tcp.listen(port, host, () => { tcp.off('error', j); r(); }); });
  const view = o.view;
  server.addListener({ udp, tcp, ...(view !== undefined ? { viewOf: () => view } : {}) });
  // SIGHUP reloads the table file; a bad file keeps the old table.
  const reload = (): void => {
    try { server.setTable(loadTable(o.table)); process.stderr.write('dns table reloaded\n'); } catch (e) {
      process.stderr.write(`dns table reload failed, keeping the old one: ${(e as Error).message}\n`);
    }
  };
  process.on('SIGHUP', reload);
  return { server, close: () => { process.off('SIGHUP', reload); udp.close(); tcp.close(); } };
}

/** Adds `dns serve` — the standalone resolver for tests and benchmarks. */
export function registerDnsCommands(program: Command): void {
  const dns = program.command('dns').description('DNS resolver');
  dns.command('serve')
    .description('serve a name table (JSON, see docs/dns.md) on UDP and TCP')
    .requiredOption('--table <file>', 'name table JSON')
    .option('--listen <addr>', 'ip:port to listen on (UDP and TCP)', '127.0.0.1:5353')
    .option('--view <containerId>', 'answer every client from this container\'s view (default: the container owning the client address)')
    .option('--upstream <addr...>', 'servers ip[:port] for containers without their own (default: host resolv.conf)')
    .option('--compat <bool>', 'DNS_DOCKER_COMPATIBILITY_MODE: Docker first-network-wins walk', 'true')
    .action(async (o: ServeOptions) => {
      try {
        await serve(o);
      } catch (e) {
        process.stderr.write(`swarmnet dns serve: ${(e as Error).message}\n`);
        process.exit(2);
      }
      process.stdout.write(`dns listening on ${o.listen}\n`);
    });
}
