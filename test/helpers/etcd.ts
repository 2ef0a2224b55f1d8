import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';
import { retry } from './wait.js';

export const ETCD_BIN = '/usr/bin/etcd';
export const hasEtcd = existsSync(ETCD_BIN);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** Server side of a TLS etcd: PEM files; with `clientCa` it also requires client certificates signed by it. */
export interface EtcdTls { cert: string; key: string; clientCa?: string }

/** A real single-member etcd on random loopback ports with a temp data dir; stop/start keep the data. */
export class TestEtcd {
  private proc?: ChildProcess;
  readonly dataDir = mkdtempSync(join(tmpdir(), 'swarmnet-etcd-'));
  private constructor(readonly clientPort: number, readonly peerPort: number, readonly tls?: EtcdTls) {}

  get endpoint(): string { return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`; }

  static async start(opts: { tls?: EtcdTls; probe?: Partial<IOptions> } = {}): Promise<TestEtcd> {
    const e = new TestEtcd(await freePort(), await freePort(), opts.tls);
    await e.startProcess(opts.probe);
    return e;
  }

  /** Starts (or restarts) the process and waits until a client with `probe` options can read. */
  async startProcess(probe: Partial<IOptions> = {}): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const tls = this.tls ? ['--cert-file', this.tls.cert, '--key-file', this.tls.key, ...(this.tls.clientCa ? ['--client-cert-auth', '--trusted-ca-file', this.tls.clientCa] : [])] : [];
    this.proc = spawn(ETCD_BIN, [
      '--name', 'test', '--data-dir', this.dataDir,
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `test=${peer}`, ...tls,
    ], { stdio: 'ignore', env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.env.ETCD_UNSUPPORTED_ARCH ?? '' } });
    const client = new Etcd3({ hosts: this.endpoint, ...probe });
    try {
      // A guard, not a start-up time: several etcds start at once beside the other tests on a busy machine.
      await retry(() => client.get('probe').exec(), 60_000).catch((e: Error) => { throw new Error(`etcd did not start: ${e.message}`); });
    } finally {
      client.close();
    }
  }

  /** Stop by PID and wait for exit. */
  async stopProcess(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
