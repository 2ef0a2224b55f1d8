/**
 * Docker's view as the operator commands read it from one etcd snapshot (pure): the records of
 * `<prefix>/swarmnet/docker/`, taken apart once with the planes' own key parser (common/docker-view.ts), for
 * `status`, `trace` and `dns query`.
 */
import { isRecord, parseViewEvent, viewRoot } from '../common/docker-view.js';

export interface ViewNetwork { name: string; subnet: string }
export interface ViewService { name: string; mode: 'vip' | 'dnsrr'; vips: Record<string, string>; draining: Set<string> }
export interface ViewContainer {
  id: string;
  /** Without Docker's leading slash. */
  name: string;
  node: string;
  serviceId?: string;
  live: boolean;
  /** Docker network id → address (without prefix). */
  networks: Record<string, string>;
}

export interface ViewRecords {
  networks: Map<string, ViewNetwork>;
  services: Map<string, ViewService>;
  containers: ViewContainer[];
  /** Values that are not records (bad JSON, not an object): counted, never fatal. */
  unreadable: number;
}

/** A name, an id or a reference the user gave does not name what they meant: one clear line, exit 2. */
export class QueryError extends Error {}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const isJsonRecord = (v: string): boolean => {
  try { return isRecord(JSON.parse(v)); } catch { return false; }
};

export function viewRecords(prefix: string, view: Map<string, string>): ViewRecords {
  const root = viewRoot(prefix);
  const out: ViewRecords = { networks: new Map(), services: new Map(), containers: [], unreadable: 0 };
  for (const [k, v] of view) {
    const ev = parseViewEvent(root, 'put', k, v);
    if (!ev) {
      if (!isJsonRecord(v)) out.unreadable++;
      continue;
    }
    const rec = ev.raw;
    if (!isRecord(rec)) { out.unreadable++; continue; }
    if (ev.kind === 'networks') out.networks.set(ev.id, { name: str(rec.name), subnet: str(rec.subnet) });
    else if (ev.kind === 'services') {
      out.services.set(ev.id, {
        name: str(rec.name), mode: rec.endpointMode === 'dnsrr' ? 'dnsrr' : 'vip',
        vips: isRecord(rec.vips) ? Object.fromEntries(Object.entries(rec.vips).filter(([, ip]) => typeof ip === 'string')) as Record<string, string> : {},
        draining: new Set(Array.isArray(rec.draining) ? rec.draining.filter((x): x is string => typeof x === 'string') : []),
      });
    } else if (ev.kind === 'containers') {
      const nets = isRecord(rec.networks) ? rec.networks : {};
      out.containers.push({
        id: ev.id, name: str(rec.name).replace(/^\//, ''), node: ev.node, live: rec.live !== false,
        ...(str(rec.serviceId) ? { serviceId: str(rec.serviceId) } : {}),
        networks: Object.fromEntries(Object.entries(nets).map(([id, n]) => [id, isRecord(n) ? str(n.address).split('/')[0]! : ''])),
      });
    }
  }
  return out;
}

/** Whether a service's VIP sends to this task: healthy (or without healthcheck) and not being stopped by Swarm. */
export const takesTraffic = (svc: ViewService, c: ViewContainer): boolean => c.live && !svc.draining.has(c.id);

/** The container named by `target`: full id, id prefix of 4+ characters, or name (Docker's leading slash optional). */
export function findContainer(containers: readonly ViewContainer[], target: string): ViewContainer {
  const want = target.replace(/^\//, '');
  const found: ViewContainer[] = [];
  for (const c of containers) {
    if (c.id === want || c.name === want) return c;
    if (want.length >= 4 && c.id.startsWith(want)) found.push(c);
  }
  if (found.length === 1) return found[0]!;
  if (found.length > 1) throw new QueryError(`${target} names ${found.length} containers (${found.map((f) => f.id.slice(0, 12)).join(', ')}): give more of the id`);
  throw new QueryError(`no container ${target} on a swarmnet network in Docker's view (only containers on swarmnet networks are mirrored to etcd)`);
}
