import type Docker from 'dockerode';
import type { Logger } from '../common/log.js';
import type { Ipam } from './ipam/ipam.js';

/** Addresses and MACs held by running containers on this node, from `docker inspect` (pure). */
export function liveEndpoints(inspects: unknown[]): { macs: Set<string>; addresses: Set<string> } {
  const macs = new Set<string>();
  const addresses = new Set<string>();
  for (const c of inspects) {
    const i = (c ?? {}) as { State?: { Running?: boolean }; NetworkSettings?: { Networks?: Record<string, { MacAddress?: string; IPAddress?: string }> } };
    if (!i.State?.Running) continue;
    for (const n of Object.values(i.NetworkSettings?.Networks ?? {})) {
      if (n.MacAddress) macs.add(n.MacAddress.toLowerCase());
      if (n.IPAddress) addresses.add(n.IPAddress);
    }
  }
  return { macs, addresses };
}

/**
 * "Docker trumps etcd trumps memory" after a plugin restart: this node's addresses whose container still runs are
 * adopted by the new node lease; the rest are released. It waits a grace period first (dockerd starts plugins
 * before it restores containers) and runs only from a complete Docker listing — never while Docker or etcd is
 * unreachable; on failure it retries later, and until it succeeds nothing is released.
 */
export function startRestartReconciliation(o: { docker: Docker; ipam: Ipam; log: Logger; graceMs?: number; retryMs?: number }): { stop(): void; done: Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const attempt = async (): Promise<void> => {
    if (stopped) return finish();
    try {
      const list = await o.docker.listContainers();
      const inspects = await Promise.all(list.map((c) => o.docker.getContainer(c.Id).inspect()));
      const released = await o.ipam.reconcileNode(liveEndpoints(inspects));
      o.log.info({ released: released.length }, 'restart reconciliation done');
      finish();
    } catch (e) {
      o.log.warn({ err: (e as Error).message }, 'restart reconciliation postponed: Docker or etcd unreachable');
      timer = setTimeout(() => void attempt(), o.retryMs ?? 10_000);
      timer.unref();
    }
  };
  timer = setTimeout(() => void attempt(), o.graceMs ?? 15_000);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      finish();
    },
    done,
  };
}
