import type { Command } from 'commander';
import { hostInstall, hostUninstall } from './install.js';

const DEFAULT_DIR = '/usr/local/lib/swarmnet';
const DEFAULT_DAEMON_JSON = '/etc/docker/daemon.json';
const DEFAULT_BIN_DIR = '/usr/local/bin';

/** `swarmnet host install|uninstall`: the host-side parts of DNS injection (hook/install.ts). */
export function registerHostCommands(program: Command): void {
  const host = program.command('host').description('host-side parts: the runtime wrapper and createContainer hook');
  host.command('install')
    .description('install the runtime wrapper and hook, and make the wrapper Docker\'s default runtime in daemon.json')
    .option('--dir <dir>', 'where the executables go', DEFAULT_DIR)
    .option('--daemon-json <file>', 'Docker\'s daemon.json', DEFAULT_DAEMON_JSON)
    .option('--bin-dir <dir>', 'where the `swarmnet` command goes (it runs the installed plugin\'s own CLI)', DEFAULT_BIN_DIR)
    .option('--no-cli', 'leave the `swarmnet` command out')
    .action((o: { dir: string; daemonJson: string; binDir: string; cli: boolean }) => {
      try {
        const r = hostInstall({ dir: o.dir, daemonJson: o.daemonJson, ...(o.cli ? { binDir: o.binDir } : {}) });
        process.stdout.write(`installed ${o.dir}/swarmnet-runtime and ${o.dir}/swarmnet-hook${o.cli ? ` and ${o.binDir}/swarmnet` : ''}; ${o.daemonJson} ${r.changed ? 'updated' : 'already set'}\n`
          + 'next: restart dockerd once (e.g. systemctl restart docker), then tell the plugin the hook is there:\n'
          + '  docker plugin disable swarmnet && docker plugin set swarmnet IS_HOOK_AVAILABLE=true && docker plugin enable swarmnet\n');
      } catch (e) {
        process.stderr.write(`swarmnet host install: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
    });
  host.command('uninstall')
    .description('remove what install added and restore daemon.json')
    .option('--dir <dir>', 'where install put the executables', DEFAULT_DIR)
    .action((o: { dir: string }) => {
      try {
        const r = hostUninstall({ dir: o.dir });
        process.stdout.write(`removed what install put in ${o.dir} (and the swarmnet command it wrote); daemon.json ${r.changed ? 'restored' : 'unchanged'}; restart dockerd once\n`);
      } catch (e) {
        process.stderr.write(`swarmnet host uninstall: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
