import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../common/log.js';

const log = logger('embedded-etcd');

export interface EmbeddedEtcd { endpoint: string; stop(): Promise<void> }

/** Refuses the embedded etcd on a multi-node swarm: every node would get its own, disjoint address plan. */
export function checkEmbeddedAllowed(swarmNodeCount: number): void {
  if (swarmNodeCount > 1) {
    throw new Error(`this swarm has ${swarmNodeCount} nodes but ETCD_ENDPOINTS is empty: the embedded etcd only serves a single-node swarm; set ETCD_ENDPOINTS to a shared etcd cluster (e.g. docker plugin set swarmnet ETCD_ENDPOINTS=http://10.0.0.1:2379)`);
  }
}

/** Runs a single-member etcd bound to loopback with its data under STATE_DIR/etcd. Stopped by its PID. */
export function startEmbeddedEtcd(opts: { stateDir: string; clientPort?: number; peerPort?: number; bin?: string }): EmbeddedEtcd {
  const dataDir = join(opts.stateDir, 'etcd');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const endpoint = `http://127.0.0.1:${opts.clientPort ?? 23790}`;
  const peer = `http://127.0.0.1:${opts.peerPort ?? 23800}`;
  const proc: ChildProcess = spawn(opts.bin ?? '/usr/bin/etcd', [
    '--name', 'swarmnet', '--data-dir', dataDir,
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `swarmnet=${peer}`,
  ], { stdio: 'ignore' });
  proc.on('exit', (code, signal) => log.warn({ code, signal }, 'embedded etcd exited'));
  log.info({ endpoint, pid: proc.pid }, 'embedded etcd started');
  return {
    endpoint,
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  };
}
