/** Pure parts of the Docker view: what a full resync writes and deletes, and what one Docker event refreshes. */

export interface ReplacePlan { puts: [string, string][]; deletes: string[] }

/**
 * Makes the etcd keys under `prefix` equal `want` (id → value), Docker being the truth. `have` maps full keys to
 * values. Unchanged values are skipped unless `rewriteAll` (node-owned keys are rewritten to attach them to the
 * current node lease).
 */
export function planReplace(prefix: string, have: Record<string, string>, want: Map<string, string>, rewriteAll: boolean): ReplacePlan {
  const plan: ReplacePlan = { puts: [], deletes: [] };
  for (const [id, v] of want) if (rewriteAll || have[prefix + id] !== v) plan.puts.push([prefix + id, v]);
  for (const k of Object.keys(have)) if (k.startsWith(prefix) && !want.has(k.slice(prefix.length))) plan.deletes.push(k);
  return plan;
}

export type Refresh = { kind: 'container' | 'service' | 'network'; id: string };

/**
 * Objects to re-inspect for one Docker event. A network connect/disconnect event names the network, but it is the
 * container's view (addresses, aliases per network) that changed: refresh both.
 */
export function eventTargets(ev: unknown): Refresh[] {
  const e = (ev ?? {}) as { Type?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
  const id = e.Actor?.ID;
  if (!id || (e.Type !== 'container' && e.Type !== 'service' && e.Type !== 'network')) return [];
  const out: Refresh[] = [{ kind: e.Type, id }];
  const container = e.Actor?.Attributes?.container;
  if (e.Type === 'network' && container) out.push({ kind: 'container', id: container });
  return out;
}

/**
 * When Docker says an event happened (epoch ms): `timeNano`, else `time` (seconds); undefined when it names neither.
 * dockerd stamps it with the host's clock, the same clock the plugin reads on that host.
 */
export function eventTimeMs(ev: unknown): number | undefined {
  const e = (ev ?? {}) as { timeNano?: unknown; time?: unknown };
  if (typeof e.timeNano === 'number' && Number.isFinite(e.timeNano) && e.timeNano > 0) return e.timeNano / 1e6;
  if (typeof e.time === 'number' && Number.isFinite(e.time) && e.time > 0) return e.time * 1000;
  return undefined;
}

/** Seconds from an event to now (ms); never negative (a clock step back). */
export function eventLagSeconds(eventMs: number, nowMs: number): number {
  return Math.max(0, nowMs - eventMs) / 1000;
}
