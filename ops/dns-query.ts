/**
 * `swarmnet dns query`, the pure part: a name resolved the way swarmnet's resolver answers one container, from the
 * Docker view in etcd (the same records and the same lookup code the node's resolver uses), saying which network
 * answered, or that the query leaves swarmnet (forwarded from the container's namespace, as Docker forwards).
 */
import { isIPv4 } from 'node:net';
import { ClusterTable } from '../dns/cluster-table.js';
import { lookup, ptrLookup, reverseKey } from '../dns/resolver.js';
import type { View } from '../dns/table.js';
import { findContainer, viewRecords } from './view-records.js';

export const QTYPES = ['A', 'AAAA', 'PTR', 'MX', 'TXT', 'SRV', 'CNAME', 'NS', 'SOA'] as const;
export type QType = (typeof QTYPES)[number];

export interface DnsQueryResult {
  container: { id: string; name: string; node: string; networks: string[] };
  qname: string;
  qtype: QType;
  /** answered: swarmnet answers with `answers`; nodata: the name is swarmnet's, without records of that type; forwarded: not a swarmnet name. */
  outcome: 'answered' | 'nodata' | 'forwarded';
  answers: string[];
  /** The network whose names answered (Docker's walk: non-internal first, then by name; the first that has it). */
  network?: string;
  explanation: string;
}

/** Resolves `qname` of `qtype` as swarmnet answers `target`. `compat`: DNS_DOCKER_COMPATIBILITY_MODE. */
export function queryAsContainer(prefix: string, view: Map<string, string>, target: string, qnameIn: string, qtype: QType, compat: boolean): DnsQueryResult {
  const c = findContainer(viewRecords(prefix, view).containers, target);
  const table = new ClusterTable(prefix, c.node);
  table.reset(view);
  const networks = Object.keys(c.networks).filter((id) => table.isOurNetwork(id));
  table.setViews([{ id: 'query', networks }]);
  const v: View = table.table.views.get('query')!;
  let qname = qnameIn.toLowerCase().replace(/\.$/, '');
  if (qtype === 'PTR' && isIPv4(qname)) qname = `${qname.split('.').reverse().join('.')}.in-addr.arpa`;
  const container = { id: c.id, name: c.name, node: c.node, networks: v.nets.map((n) => n.name) };
  const base = { container, qname, qtype };
  const forwarded = (): DnsQueryResult => ({
    ...base, outcome: 'forwarded', answers: [],
    explanation: 'not a name of its swarmnet networks: forwarded from the container\'s namespace as Docker does (Docker\'s resolver there answers its other networks\' names, then the container\'s --dns servers or the host\'s resolv.conf)',
  });
  // The first network in walk order that knows the name: what answers in Docker's (compat) mode.
  const answering = (family: 4 | 6): string | undefined => v.nets.find((n) => lookup({ ...v, nets: [n] }, qname, family, compat) !== undefined)?.name;

  if (qtype === 'PTR') {
    const key = reverseKey(qname);
    const target = key === undefined ? undefined : ptrLookup(v, key);
    if (target === undefined) return forwarded();
    return { ...base, outcome: 'answered', answers: [target], network: target.slice(target.lastIndexOf('.') + 1), explanation: 'an address of its swarmnet networks' };
  }
  const family = qtype === 'AAAA' ? 6 : 4;
  const r = qtype === 'A' || qtype === 'AAAA' ? lookup(v, qname, family, compat) : (lookup(v, qname, 4, true) !== undefined || lookup(v, qname, 6, true) !== undefined ? 'nodata' : undefined);
  if (r === undefined) return forwarded();
  const network = answering(family) ?? answering(family === 4 ? 6 : 4);
  if (r === 'nodata') {
    return { ...base, outcome: 'nodata', answers: [], ...(network ? { network } : {}), explanation: `a swarmnet name without ${qtype} records: swarmnet answers with no records (never forwarded, as Docker)` };
  }
  const how = compat ? 'the first of its networks in Docker\'s order that has the name' : 'every network that has the name (DNS_DOCKER_COMPATIBILITY_MODE=false)';
  return { ...base, outcome: 'answered', answers: r, ...(network ? { network } : {}), explanation: `answered by swarmnet's resolver from ${how}` };
}

export function renderQuery(r: DnsQueryResult): string {
  const c = r.container;
  const head = `container ${c.name || c.id.slice(0, 12)} (${c.id.slice(0, 12)}) on ${c.node}, swarmnet networks: ${c.networks.join(', ') || 'none'}`;
  const what = r.outcome === 'answered' ? `${r.answers.join(' ')}` : r.outcome === 'nodata' ? '(no records)' : '(forwarded)';
  return [head, `${r.qname} ${r.qtype} → ${what}${r.network ? ` [network ${r.network}]` : ''}`, r.explanation].join('\n');
}
