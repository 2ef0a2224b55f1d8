// Entry point of the managed plugin and of the plain-process daemon (PLUGIN_SOCKET, NODE_NAME in the environment).
// Logs go to stdout (see common/log.ts); set before any module creates a logger, hence the dynamic import.
process.env.SWARMNET_LOG_STDOUT = '1';
const { runDaemon } = await import('./daemon.js');
runDaemon().catch((e: Error) => {
  process.stderr.write(`swarmnet: fatal: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
