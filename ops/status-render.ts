import { ago, type ClusterStatus } from './status-model.js';

/** Columns padded to their widest cell; the last column is not padded. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

const when = (now: number, at: number | undefined): string => (at === undefined ? '-' : ago(now, at));

/** The human form of `swarmnet status` (the JSON form is the ClusterStatus itself). */
export function renderStatus(s: ClusterStatus, now: number): string {
  const out: string[] = [];
  out.push(`NODES (${s.nodes.length} publishing status)`);
  out.push(table(
    ['NODE', 'ADDRESS', 'ROLE', 'VERSION', 'UP', 'OVERLAY CHECKED', 'FAST PATH', 'DNS SERVED', 'LB', 'VIPS', 'BACKENDS', 'LB CHANGED', 'LB REPAIRED'],
    s.nodes.map((n) => [
      n.node, n.publicIp, n.manager ? 'manager' : 'worker', n.version, ago(now, n.startedAt).replace(' ago', ''), when(now, n.overlay.checkedAt), n.overlay.fastPath ?? '-',
      `${n.dns.served}${n.dns.waiting ? ` (+${n.dns.waiting} waiting)` : ''}`, n.lb.backend, String(n.lb.vips), String(n.lb.backends),
      when(now, n.lb.changedAt), when(now, n.lb.repairedAt),
    ]),
  ));
  out.push('', `NETWORKS (${s.networks.length})`);
  out.push(table(
    ['NETWORK', 'SUBNET', 'VNI', 'HOST SUBNETS', 'ENDPOINTS'],
    s.networks.map((n) => [
      n.name ?? '(no Docker name yet)', n.subnet, String(n.vni),
      Object.entries(n.hosts).sort().map(([node, sub]) => `${node}=${sub}`).join(' ') || '-',
      Object.entries(n.endpoints).sort().map(([node, k]) => `${node}=${k}`).join(' ') || '0',
    ]),
  ));
  out.push('', `SERVICES (${s.services.length})`);
  out.push(table(
    ['SERVICE', 'MODE', 'VIPS', 'HEALTHY/TASKS'],
    s.services.map((x) => [x.name, x.mode, Object.entries(x.vips).map(([net, ip]) => `${net}=${ip}`).join(' ') || '-', `${x.healthy}/${x.tasks}`]),
  ));
  if (s.unreadable) out.push('', `${s.unreadable} record(s) in etcd could not be read`);
  out.push('');
  if (s.attention.length === 0) out.push('OK: nothing needs attention');
  else out.push(`ATTENTION (${s.attention.length})`, ...s.attention.map((a) => `- ${a}`));
  return out.join('\n');
}
