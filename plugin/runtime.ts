import type { Logger } from '../common/log.js';
import type { Config } from './config.js';
import type { Driver } from './driver.js';
import type { Readiness } from './readiness.js';

/** Everything the daemon runs once initialised: etcd client, IPAM, overlay reconciler, Docker events. */
export interface Runtime {
  nodeName: string;
  driver: Driver;
  stop(): Promise<void>;
}

export async function startRuntime(_config: Config, readiness: Readiness, _log: Logger): Promise<Runtime> {
  readiness.setWaitingFor('cluster state backend');
  throw new Error('cluster state backend is not wired yet');
}
