import { logger, setLogLevel } from '../common/log.js';
import { ConfigError, describeConfig, loadConfig, type Config } from './config.js';
import { createPluginServer, listenUnix } from './protocol/server.js';
import { Readiness } from './readiness.js';
import { startHealthServer } from './health-server.js';
import { pluginCalls, ready as readyGauge } from './metrics.js';
import { ReadyGate } from './ready-gate.js';
import { startRuntime, type Runtime } from './runtime.js';

/**
 * The daemon: `node dist/plugin/main.js` or `swarmnet daemon` (inside the managed plugin or as a plain process with PLUGIN_SOCKET and NODE_NAME).
 * Order matters: Docker disables a plugin that is not listening ~10 s after start, so the socket comes first and
 * everything slow (etcd, Docker, kernel reconcile) initialises in the background.
 */
export async function runDaemon(): Promise<void> {
  const log = logger('main');
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`swarmnet: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  setLogLevel(config.logLevel);

  const readiness = new Readiness();
  const driver = new ReadyGate(readiness);
  const server = createPluginServer({
    driver,
    log: logger('protocol'),
    onCall: (endpoint, status, seconds, err) => {
      pluginCalls.observe({ endpoint, status: String(status) }, seconds);
      if (err !== undefined) runtime?.refused(endpoint, err);
    },
  });
  let runtime: Runtime | undefined;
  await listenUnix(server, config.pluginSocket);
  log.info({ socket: config.pluginSocket, ...describeConfig(config) }, 'plugin socket listening');
  const health = config.metricsAddress ? startHealthServer(config.metricsAddress, readiness, logger('health')) : undefined;

  let stopping = false;
  const init = async () => {
    // Retries forever with backoff: etcd or Docker may come up long after the plugin (e.g. at boot).
    for (let attempt = 0; !stopping; attempt++) {
      try {
        runtime = await startRuntime(config, readiness, logger('runtime'));
        driver.attach(runtime.driver);
        readiness.markReady();
        readyGauge.set(1);
        log.info({ node: runtime.nodeName }, 'swarmnet ready');
        return;
      } catch (e) {
        const delay = Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
        log.warn({ err: (e as Error).message, retryInMs: delay }, 'initialisation failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };
  void init();

  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    server.close();
    health?.close();
    const done = runtime ? runtime.stop() : Promise.resolve();
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    done.then(
      () => process.exit(0),
      (e: Error) => {
        log.error({ err: e.message }, 'error while stopping');
        process.exit(0);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (e) => log.error({ err: e instanceof Error ? e.message : String(e) }, 'unhandled rejection'));
}

