import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { logger } from '../common/log.js';

const log = logger('embedded-etcd');

/** auth: the embedded etcd's root user; only root reads its password (STATE_DIR is 0700, the file 0600). */
export interface EmbeddedEtcd {
  endpoint: string;
  auth: { username: string; password: string };
  /** Where its data and its root password are (for messages). */
  dataDir: string;
  passwordFile: string;
  stop(): Promise<void>;
}

/** The root password of the embedded etcd, made on its first start and kept in STATE_DIR. */
function rootPassword(file: string): string {
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
        if (enabled) break;
        await open.user(e.auth.username).create(e.auth.password).catch((err: Error) => {
          if (!/already exists/i.test(err.message)) throw err;
        });
        await open.user(e.auth.username).addRole('root');
        await open.auth.authEnable();
        log.info('embedded etcd: auth enabled (user root, password in STATE_DIR)');
        return;
      } catch (err) {
        // auth already on (a call without credentials is refused) or etcd not up yet
        if (/user name is empty|permission denied|invalid auth token|authentication/i.test((err as Error).message)) break;
        if (Date.now() > deadline) throw new Error(`the embedded etcd did not answer within ${timeoutMs / 1000} s: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    open.close();
  }
  await checkPassword(e);
}

/**
 * Auth is on: the password in STATE_DIR must be the one the data was secured with. A password file removed or
 * replaced while STATE_DIR/etcd stayed would otherwise fail every call with etcd's bare "authentication failed".
 */
async function checkPassword(e: EmbeddedEtcd): Promise<void> {
  const mine = new Etcd3({ hosts: e.endpoint, auth: e.auth, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }) });
  try {
    await mine.get('swarmnet-password-check').string();
  } catch (err) {
    if (!/authentication failed|invalid user ID or password/i.test((err as Error).message)) throw err;
    throw new Error(`the embedded etcd's data (${e.dataDir}) was secured with another root password than the one in ${e.passwordFile}: that file was removed or replaced. Put the original back, or, to start over with an empty embedded etcd (every network's address plan is lost; remove the swarmnet networks first), move ${e.dataDir} away and enable the plugin again`);
  } finally {
    mine.close();
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
  const passwordFile = join(opts.stateDir, 'etcd-root-password');
  return {
    endpoint, dataDir, passwordFile,
    auth: { username: 'root', password: rootPassword(passwordFile) },
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  };
}
