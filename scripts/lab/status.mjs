// `npm run sandbox -- status`: each node's dockerd, swarm state and plugin state, the swarm's node list, etcd.
import { docker, ping } from './dockerd.mjs';
import { etcdHealthy } from './etcd.mjs';
import { isAlive } from '../lib/proc.mjs';
import { LAYOUT, loadSandbox } from './sandbox.mjs';

export async function status(log = console.log) {
  const sb = loadSandbox();
  if (!sb) {
    log('no sandbox (no .sandbox/state.json); `npm run sandbox -- up` makes one');
    return;
  }
  log(`sandbox ${sb.ready ? 'up' : 'INCOMPLETE (up did not finish; run down)'}`);
  for (const n of sb.nodes) {
    const alive = n.pid && isAlive(n.pid, n.startTime) && (await ping(n.socket));
    let swarm = '-';
    let plugin = '-';
    if (alive) {
      swarm = (await docker(n, ['info', '--format', '{{.Swarm.LocalNodeState}}{{if .Swarm.ControlAvailable}} manager{{end}}'], { allowFailure: true })).stdout.trim();
      const p = await docker(n, ['plugin', 'inspect', '--format', '{{.Enabled}}', LAYOUT.pluginAlias], { allowFailure: true });
      plugin = p.code === 0 ? (p.stdout.trim() === 'true' ? 'enabled' : 'disabled') : 'not installed';
    }
    log(`  ${n.name.padEnd(6)} ${n.address.padEnd(12)} Docker ${(n.engine ?? '?').padEnd(14)} dockerd ${alive ? `pid ${n.pid}` : 'DOWN'}  swarm ${swarm}  plugin ${plugin}`);
  }
  if (sb.etcd?.endpoint) log(`  etcd   ${sb.etcd.endpoint} ${(await etcdHealthy(sb.etcd.endpoint, sb.etcd.tls?.root)) ? 'healthy' : 'NOT HEALTHY'} (pid ${sb.etcd.pid})`);
  const m = sb.manager;
  if (m?.pid && isAlive(m.pid, m.startTime)) {
    const r = await docker(m, ['node', 'ls'], { allowFailure: true });
    log(`\n${r.stdout.trim() || r.stderr.trim()}`);
    const s = await docker(m, ['service', 'ls'], { allowFailure: true });
    if (s.stdout.trim().split('\n').length > 1) log(`\n${s.stdout.trim()}`);
  }
}
