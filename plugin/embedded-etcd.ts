import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { logger } from '../common/log.js';

const log = logger('embedded-etcd');

/** auth: the embedded etcd's root user; only root reads its password (STATE_DIR is 0700, the file 0600). */
export interface EmbeddedEtcd { endpoint: string; auth: { username: string; password: string }; stop(): Promise<void> }

/** The root password of the embedded etcd, made on its first start and kept in STATE_DIR. */
function rootPassword(stateDir: string): string {
  const file = join(stateDir, 'etcd-root-password');
  try {
    const pw = readFileSync(file, 'utf8').trim();
    if (pw) return pw;
  } catch { /* first start */ }
  const pw = randomBytes(24).toString('hex');
  writeFileSync(file, `${pw}\n`, { mode: 0o600 });
  return pw;
}

/**
 * A loopback port is open to every local user and to host-network containers: with auth off, any of them could
 * rewrite swarmnet's state (addresses, DNS records). Turns auth on (user root with the password from STATE_DIR) unless
 * it is on already; an etcd of an older version of the plugin, without auth, gets it at its next start. Retries
 * until etcd answers, at most timeoutMs.
 */
export async function secureEmbeddedEtcd(e: EmbeddedEtcd, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const open = new Etcd3({ hosts: e.endpoint, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 2000 }) });
  try {
    for (;;) {
      try {
        const enabled = await open.auth.authStatus().then((r) => r.enabled).catch(() => undefined); // etcd 3.5+
        if (enabled) return;
        await open.user(e.auth.username).create(e.auth.password).catch((err: Error) => {
          if (!/already exists/i.test(err.message)) throw err;
        });
        await open.user(e.auth.username).addRole('root');
        await open.auth.authEnable();
        log.info('embedded etcd: auth enabled (user root, password in STATE_DIR)');
        return;
      } catch (err) {
        // auth already on (a call without credentials is refused) or etcd not up yet
        if (/user name is empty|permission denied|invalid auth token|authentication/i.test((err as Error).message)) return;
        if (Date.now() > deadline) throw new Error(`the embedded etcd did not answer within ${timeoutMs / 1000} s: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    open.close();
  }
}

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
    auth: { username: 'root', password: rootPassword(opts.stateDir) },
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  };
}
