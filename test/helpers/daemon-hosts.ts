import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callPlugin } from './plugin-client.js';

/** The daemon as a plain process (dist/plugin/main.js, built by `npm run build`). */
export const DAEMON_MAIN = new URL('../../dist/plugin/main.js', import.meta.url).pathname;
export const canRunDaemons = process.getuid?.() === 0 && existsSync('/usr/bin/etcd') && existsSync(DAEMON_MAIN);

export interface DaemonHost { name: string; ns: string; ip: string; dev: string; peer: string }

export function ip(...args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}
const ipTry = (...args: string[]): void => void spawnSync('ip', args, { encoding: 'utf8' });

/**
 * Hosts for whole daemons: a network namespace each ("host"), on an underlay bridge in the root namespace that the
 * test owns, with one etcd on the bridge's address. `tag` names everything made (≤ 4 characters: interface names are
 * short); `net` is the underlay's /24 (`10.97.0`: hosts .1, .2, …, the bridge and etcd .254).
 */
export class DaemonHosts<H extends string> {
  readonly hosts: Record<H, DaemonHost>;
  readonly etcd: string;
  readonly prefix: string;
  readonly dir: string;
  private readonly bridge: string;
  private readonly bridgeIp: string;
  private readonly procs: ChildProcess[] = [];
  private readonly extraNs = new Set<string>();

  constructor(private readonly tag: string, private readonly net: string, names: readonly H[], private readonly etcdPort: number) {
    this.hosts = Object.fromEntries(names.map((n, i) => [n, { name: n, ns: `${tag}-${n}`, ip: `${net}.${i + 1}`, dev: `${tag}-u${n}`, peer: `${tag}-h${n}` }])) as unknown as Record<H, DaemonHost>;
    this.bridge = `${tag}-br`;
    this.bridgeIp = `${net}.254`;
    this.etcd = `http://${this.bridgeIp}:${etcdPort}`;
    this.prefix = `/${tag}`;
    this.dir = mkdtempSync(join(tmpdir(), `${tag}-`));
  }

  /** The underlay, the hosts and etcd (after removing what an interrupted run of the same tag left). */
  setup(): void {
    this.cleanup(false);
    ip('link', 'add', this.bridge, 'type', 'bridge');
    ip('addr', 'add', `${this.bridgeIp}/24`, 'dev', this.bridge);
    ip('link', 'set', this.bridge, 'up');
    for (const h of Object.values<DaemonHost>(this.hosts)) {
      ip('netns', 'add', h.ns);
      ip('link', 'add', h.peer, 'type', 'veth', 'peer', 'name', h.dev, 'netns', h.ns);
      ip('link', 'set', h.peer, 'master', this.bridge, 'up');
      ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', h.dev);
      ip('-n', h.ns, 'link', 'set', h.dev, 'up');
      ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    }
    const peer = `http://${this.bridgeIp}:${this.etcdPort + 1}`;
    this.procs.push(spawn('/usr/bin/etcd', ['--name', this.tag, '--data-dir', join(this.dir, 'etcd'),
      '--listen-client-urls', this.etcd, '--advertise-client-urls', this.etcd, '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer, '--initial-cluster', `${this.tag}=${peer}`], { stdio: 'ignore' }));
  }

  /** Each daemon's socket in a directory of its own, as Docker gives each plugin: the hook socket goes beside it. */
  sock(h: H): string {
    mkdirSync(join(this.dir, h), { recursive: true });
    return join(this.dir, h, 'plugin.sock');
  }

  /** Starts the daemon of host `h` without Docker (NODE_NAME `host-<h>`); `env` adds or overrides settings. */
  startDaemon(h: H, env: Record<string, string> = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.hosts[h].ns, process.execPath, DAEMON_MAIN], {
      env: {
        ...process.env, PLUGIN_SOCKET: this.sock(h), NODE_NAME: `host-${h}`, ETCD_ENDPOINTS: this.etcd, ETCD_PREFIX: this.prefix,
        DOCKER_SOCKET: join(this.dir, 'no-docker.sock'), STATE_DIR: join(this.dir, `state-${h}`), METRICS_ADDRESS: '',
        UNDERLAY_INTERFACE: this.hosts[h].dev, LOG_LEVEL: 'error', ...env,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    this.procs.push(child);
    return child;
  }

  /** A plugin call that must succeed; its body. */
  async call(h: H, path: string, body: unknown): Promise<Record<string, unknown>> {
    const r = await callPlugin(this.sock(h), path, JSON.stringify(body));
    if (r.status !== 200) throw new Error(`${h} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body ?? {}) as Record<string, unknown>;
  }

  /** A namespace the test adds (a container): removed with the rest. */
  addNamespace(name: string): string {
    const ns = `${this.tag}-${name}`;
    ipTry('netns', 'del', ns); // left by an interrupted run
    ip('netns', 'add', ns);
    this.extraNs.add(ns);
    return ns;
  }

  /** Kills what it started and removes what it made; `all` also the temp directory (false: before setup). */
  cleanup(all = true): void {
    for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL');
    for (const h of Object.values<DaemonHost>(this.hosts)) {
      ipTry('link', 'del', h.peer); // the pair goes at once, even while a dying process still holds the namespace
      ipTry('netns', 'del', h.ns);
    }
    for (const ns of this.extraNs) ipTry('netns', 'del', ns);
    ipTry('link', 'del', this.bridge);
    if (all) rmSync(this.dir, { recursive: true, force: true });
  }
}
