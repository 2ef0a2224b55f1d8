import { runDaemon } from './daemon.js';

// Entry point of the managed plugin and of the plain-process daemon (PLUGIN_SOCKET, NODE_NAME in the environment).
runDaemon().catch((e: Error) => {
  process.stderr.write(`swarmnet: fatal: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
