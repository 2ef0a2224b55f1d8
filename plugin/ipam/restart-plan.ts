/**
 * Restart reconciliation, "Docker trumps etcd trumps memory" (pure): which of this node's address records a
 * restarted plugin keeps and which it releases, given what Docker says runs on the node.
 */

export interface AddressRecordRef {
  networkId: string;
  /** Dotted address without prefix. */
  address: string;
  node: string;
  /** Replay key: `mac-<mac>` or `ip-<hex>`. */
  key?: string;
}

/** Containers running on this node according to a complete, successful Docker listing. */
export interface LiveEndpoints { macs: Set<string>; addresses: Set<string> }

export interface RestartPlan<T extends AddressRecordRef> { keep: T[]; release: T[] }

/**
 * Keep: records of a running container (by MAC, else by address) and records this process itself allocated since
 * it started (a container Docker is creating right now may be missing from the listing). Release: the rest of this
 * node's records. Other nodes' records are never touched.
 */
export function planRestart<T extends AddressRecordRef>(records: T[], node: string, live: LiveEndpoints, allocatedSinceStart: (r: T) => boolean): RestartPlan<T> {
  const plan: RestartPlan<T> = { keep: [], release: [] };
  for (const r of records) {
    if (r.node !== node) continue;
    const mac = r.key?.startsWith('mac-') ? r.key.slice(4).toLowerCase() : undefined;
    if (live.addresses.has(r.address) || (mac !== undefined && live.macs.has(mac)) || allocatedSinceStart(r)) plan.keep.push(r);
    else plan.release.push(r);
  }
  return plan;
}
