import type { Command } from 'commander';
import Docker from 'dockerode';
import { ConfigError, loadConfig, type Config } from '../plugin/config.js';
import { CHECK_RESOLUTION_MS } from '../plugin/node-status.js';
import { createEtcdClient } from '../plugin/state/etcd-client.js';
import { readPrefixes } from './etcd-snapshot.js';
import { diagnose, renderFindings } from './doctor.js';
import { queryAsContainer, QTYPES, renderQuery, type QType } from './dns-query.js';
import { QueryError } from './view-records.js';
import { renderTrace, trace, traceOk } from './trace.js';
import { buildStatus, STATUS_PREFIXES, type ClusterStatus, type StatusSnapshot } from './status-model.js';
import { renderStatus } from './status-render.js';

/** Settings `status` takes from the plugin when the shell has none (the operator runs it on any swarm node). */
const PLUGIN_SETTINGS = ['ETCD_ENDPOINTS', 'ETCD_PREFIX', 'ETCD_USERNAME', 'ETCD_PASSWORD', 'RECONCILE_INTERVAL_SECONDS', 'ETCD_CA_FILE', 'ETCD_CERT_FILE', 'ETCD_KEY_FILE'];
/** Settings naming a file inside the plugin: read on the host through the plugin's mounts. */
const PLUGIN_FILES = new Set(['ETCD_CA_FILE', 'ETCD_CERT_FILE', 'ETCD_KEY_FILE']);

export class OpsError extends Error {}

interface EtcdOptions { etcdEndpoints?: string; prefix?: string; plugin: string }

/** etcd settings: flags, else the environment, else the installed plugin's own settings (from Docker). */
export async function opsConfig(o: EtcdOptions, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const merged: NodeJS.ProcessEnv = { ...env };
  if (!merged.ETCD_ENDPOINTS && !o.etcdEndpoints) {
    const fromPlugin = await pluginSettings(o.plugin).catch(() => undefined);
    for (const k of PLUGIN_SETTINGS) if (fromPlugin?.[k] && merged[k] === undefined) merged[k] = fromPlugin[k];
  }
  if (o.etcdEndpoints) merged.ETCD_ENDPOINTS = o.etcdEndpoints;
  if (o.prefix) merged.ETCD_PREFIX = o.prefix;
  let config: Config;
  try {
    config = loadConfig(merged);
  } catch (e) {
    throw new OpsError(e instanceof ConfigError ? e.message : (e as Error).message);
  }
  if (config.etcd.endpoints.length === 0) {
    throw new OpsError(`no etcd to read: set ETCD_ENDPOINTS or --etcd-endpoints (plugin ${o.plugin} not found in Docker, or it runs the embedded etcd, which only it can reach)`);
  }
  return config;
}

async function pluginSettings(name: string): Promise<Record<string, string>> {
  const info = await new Docker().getPlugin(name, name).inspect() as { Settings?: { Env?: string[]; Mounts?: { Source?: string; Destination?: string }[] } };
  const out: Record<string, string> = {};
  for (const e of info.Settings?.Env ?? []) {
    const i = e.indexOf('=');
    if (i <= 0) continue;
    const k = e.slice(0, i);
    const v = e.slice(i + 1);
    out[k] = PLUGIN_FILES.has(k) && v ? hostPath(v, info.Settings?.Mounts ?? []) : v;
  }
  return out;
}

/** A path inside the plugin as the host sees it (the TLS files live in the plugin's state mount); unchanged when no
 * mount holds it (the setting's file check then names it). */
export function hostPath(path: string, mounts: { Source?: string; Destination?: string }[]): string {
  const m = mounts.filter((x) => x.Source && x.Destination && (path === x.Destination || path.startsWith(`${x.Destination.replace(/\/$/, '')}/`)))
    .sort((a, b) => b.Destination!.length - a.Destination!.length)[0];
  return m ? `${m.Source!.replace(/\/$/, '')}${path.slice(m.Destination!.replace(/\/$/, '').length)}` : path;
}

type Prefix = keyof typeof STATUS_PREFIXES;

/** One consistent read of `which` prefixes (default all five), and how many range reads it took. */
async function readSnapshot(o: EtcdOptions, which: readonly Prefix[] = Object.keys(STATUS_PREFIXES) as Prefix[]): Promise<{ config: Config; data: StatusSnapshot; reads: number }> {
  const config = await opsConfig(o);
  const client = createEtcdClient({ ...config.etcd, requestTimeoutMs: Math.min(config.etcd.requestTimeoutMs, 3000) });
  try {
    const prefixes = Object.fromEntries(which.map((k) => [k, `${config.etcd.prefix}${STATUS_PREFIXES[k]}`])) as Record<Prefix, string>;
    const snap = await readPrefixes(client, prefixes);
    const empty = Object.fromEntries((Object.keys(STATUS_PREFIXES) as Prefix[]).map((k) => [k, new Map<string, string>()])) as StatusSnapshot;
    return { config, data: { ...empty, ...snap.data }, reads: snap.reads };
  } catch (e) {
    if (e instanceof OpsError) throw e;
    throw new OpsError(`cannot read etcd at ${config.etcd.endpoints.join(',')}: ${(e as Error).message.split('\n')[0]!.replace(/\s*Resolution note:.*$/, '')}`);
  } finally {
    client.close();
  }
}

/** The cluster's status from one consistent read of etcd. */
async function readStatus(o: EtcdOptions): Promise<{ status: ClusterStatus; reads: number; now: number }> {
  const { config, data, reads } = await readSnapshot(o);
  const now = Date.now();
  // A reconciler checks every RECONCILE_INTERVAL_SECONDS; its time is published to the minute.
  const staleMs = 3 * config.reconcileIntervalSeconds * 1000 + 2 * CHECK_RESOLUTION_MS;
  return { status: buildStatus(config.etcd.prefix, data, now, staleMs), reads, now };
}

/** A bad container or destination is the user's input: one line, exit 2. */
function asked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof QueryError) throw new OpsError(e.message);
    throw e;
  }
}

const stdout = (s: string): void => void process.stdout.write(`${s}\n`);

export async function runStatus(o: EtcdOptions & { json?: boolean }, print = stdout): Promise<number> {
  const { status, reads, now } = await readStatus(o);
  print(o.json ? JSON.stringify({ ...status, etcd: { reads } }, null, 2) : renderStatus(status, now));
  return status.attention.length ? 1 : 0;
}

export async function runDoctor(o: EtcdOptions & { json?: boolean }, print = stdout): Promise<number> {
  const { status, now } = await readStatus(o);
  const findings = diagnose(status, now);
  const lastRepairs = Object.fromEntries(status.nodes.map((n) => [n.node, { overlay: n.overlay.changedAt ?? null, lb: n.lb.repairedAt ?? null }]));
  print(o.json ? JSON.stringify({ findings, lastRepairs }, null, 2) : renderFindings(findings, status, now));
  return findings.length ? 1 : 0;
}

/** Runs an operator command: its exit code, or one line and 2 for an error it can explain. */
export async function guarded(name: string, fn: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await fn();
  } catch (e) {
    if (!(e instanceof OpsError)) throw e;
    process.stderr.write(`swarmnet ${name}: ${e.message}\n`);
    process.exitCode = 2;
  }
}

export async function runDnsQuery(o: EtcdOptions & { json?: boolean; container: string }, qname: string, qtype: string, print = stdout): Promise<number> {
  const type = qtype.toUpperCase();
  if (!(QTYPES as readonly string[]).includes(type)) throw new OpsError(`unknown query type ${JSON.stringify(qtype)}: one of ${QTYPES.join(', ')}`);
  const { config, data } = await readSnapshot(o, ['view']);
  const r = asked(() => queryAsContainer(config.etcd.prefix, data.view, o.container, qname, type as QType, config.dnsDockerCompatibilityMode));
  print(o.json ? JSON.stringify(r, null, 2) : renderQuery(r));
  return 0;
}

export async function runTrace(o: EtcdOptions & { json?: boolean; from: string; to: string }, print = stdout): Promise<number> {
  const { config, data } = await readSnapshot(o);
  const r = asked(() => trace(config.etcd.prefix, data, o.from, o.to, config.dnsDockerCompatibilityMode));
  print(o.json ? JSON.stringify(r, null, 2) : renderTrace(r));
  return traceOk(r) ? 0 : 1;
}

/** Adds `status`, `doctor`, `trace` and `dns query` (under the existing `dns` command). */
export function registerOpsCommands(program: Command, dns: Command): void {
  const common = (c: Command): Command => c
    .option('--json', 'machine-readable output')
    .option('--etcd-endpoints <urls>', 'etcd to read (default: ETCD_ENDPOINTS, else the installed plugin\'s setting)')
    .option('--prefix <prefix>', 'ETCD_PREFIX (default: the environment\'s, else the plugin\'s, else /flannel)')
    .option('--plugin <name>', 'the plugin whose settings are used when the environment has none', 'swarmnet:latest');
  common(program.command('status'))
    .description('the cluster as etcd holds it: nodes, networks, services and what needs attention (exit 1 when something does, 2 on an error)')
    .action((o: EtcdOptions & { json?: boolean }) => guarded('status', () => runStatus(o)));
  common(program.command('doctor'))
    .description('what every node found wrong or repaired, why it matters and what to do (exit 1 with findings, 2 on an error)')
    .action((o: EtcdOptions & { json?: boolean }) => guarded('doctor', () => runDoctor(o)));
  common(program.command('trace'))
    .description('the path a connection from a container takes: DNS answer, VIP → backends, local or over VXLAN to which node (exit 1 when there is none)')
    .requiredOption('--from <name|id>', 'the client container (name, id or id prefix)')
    .requiredOption('--to <dest>', 'destination: <name|ip>[:port]')
    .action((o: EtcdOptions & { json?: boolean; from: string; to: string }) => guarded('trace', () => runTrace(o)));
  common(dns.command('query'))
    .description('resolve a name exactly as swarmnet answers a container, and say which network answered or that it is forwarded')
    .requiredOption('--container <name|id>', 'the container (name, id or id prefix) whose view answers')
    .argument('<qname>', 'the name (for PTR also an IPv4 address)')
    .argument('[type]', `query type: ${QTYPES.join(', ')}`, 'A')
    .action((qname: string, qtype: string, o: EtcdOptions & { json?: boolean; container: string }) => guarded('dns query', () => runDnsQuery(o, qname, qtype)));
}
