#!/usr/bin/env node
import { Command } from 'commander';
import { runDaemon } from './daemon.js';
import { registerDnsCommands } from '../dns/cli.js';
import { registerHostCommands } from '../hook/cli.js';
import { registerOpsCommands } from '../ops/cli.js';
import { version } from '../common/version.js';

/** The operator CLI: `swarmnet <command>`. Subsystems register their own commands. */
export async function buildCli(): Promise<Command> {
  const program = new Command('swarmnet').description('Docker Swarm network + IPAM plugin').version(version);
  program.command('daemon').description('run the plugin daemon (settings from the environment, see docs/configuration.md)').action(runDaemon);
  const dns = registerDnsCommands(program);
  registerHostCommands(program);
  registerOpsCommands(program, dns);
  return program;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const program = await buildCli();
  await program.parseAsync(process.argv);
}
