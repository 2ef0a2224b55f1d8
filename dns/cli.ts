import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DnsServer } from './server.js';
import { buildTable } from './table.js';
import { parseUpstream } from './upstreams.js';

/** Adds `dns serve` — the standalone resolver for tests and benchmarks. */
export function registerDnsCommands(program: Command): void {
  const dns = program.command('dns').description('DNS resolver');
  dns.command('serve')
    .requiredOption('--table <file>', 'name table JSON')
    .option('--listen <addr>', 'ip:port', '127.0.0.1:5353')
    .option('--view <containerId>', 'container whose view all clients get')
    .option('--upstream <addr...>', 'upstream servers ip[:port] (default: host resolv.conf)')
    .option('--compat <bool>', 'Docker first-network-wins mode', 'true')
    .action(async (o: { table: string; listen: string; view?: string; upstream?: string[]; compat: string }) => {
      const table = buildTable(JSON.parse(readFileSync(o.table, 'utf8')));
      const { host, port } = parseUpstream(o.listen);
      const view = o.view ?? [...table.views.keys()][0] ?? '';
      const server = new DnsServer(table, {
        compat: o.compat !== 'false',
        ...(o.upstream ? { defaultUpstreams: o.upstream.map(parseUpstream) } : {}),
      });
      const udp = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      const tcp = net.createServer();
      await new Promise<void>((r) => udp.bind(port, host, r));
      await new Promise<void>((r) => tcp.listen(port, host, r));
      server.addListener({ udp, tcp, viewOf: () => view });
      process.stdout.write(`dns listening on ${host}:${port} view=${view}\n`);
    });
}
