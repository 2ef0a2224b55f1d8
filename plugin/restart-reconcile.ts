import type Docker from 'dockerode';
import type { Logger } from '../common/log.js';
import type { Ipam } from './ipam/ipam.js';
import type { LiveAddress, LiveEndpoints } from './ipam/restart-plan.js';

/** Addresses and MACs held by running containers on this node, from `docker inspect` (pure). */
export function liveEndpoints(inspects: unknown[]): LiveEndpoints {
  const live: LiveEndpoints = { macs: new Set(), addresses: new Set(), endpoints: [] };
  for (const c of inspects) {
    const i = (c ?? {}) as { State?: { Running?: boolean }; NetworkSettings?: { Networks?: Record<string, { MacAddress?: string; IPAddress?: string }> } };
    if (!i.State?.Running) continue;
    for (const n of Object.values(i.NetworkSettings?.Networks ?? {})) {
      const mac = n.MacAddress ? n.MacAddress.toLowerCase() : undefined;
      if (mac) live.macs.add(mac);
      if (!n.IPAddress) continue;
      live.addresses.add(n.IPAddress);
      const ep: LiveAddress = { address: n.IPAddress };
      if (mac) ep.mac = mac;
      live.endpoints!.push(ep);
    }
  }
  return live;
}

/**
 * "Docker trumps etcd trumps memory": after a plugin restart (and after a lost node lease, whose records etcd
 * dropped) this node's addresses whose container still runs are kept or re-recorded under the current lease; the
 * rest are released. The first run waits a grace period (dockerd starts plugins before it restores containers) and
 * every run works only from a complete Docker listing — never while Docker or etcd is unreachable; a failed run
 * retries later, and until one succeeds nothing is released.
 */
export class RestartReconciler {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private running?: Promise<void>;

  constructor(private readonly o: { docker: Docker; ipam: Ipam; log: Logger; retryMs?: number }) {}

  /** Runs once after `delayMs`, retrying until a run succeeds. A later call replaces a pending one. */
  schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.attempt(), delayMs);
    this.timer.unref();
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    return this.running ?? Promise.resolve();
  }

  private async attempt(): Promise<void> {
    if (this.stopped || this.running) return;
    this.running = (async () => {
      try {
        const list = await this.o.docker.listContainers();
        const inspects = await Promise.all(list.map((c) => this.o.docker.getContainer(c.Id).inspect()));
        const released = await this.o.ipam.reconcileNode(liveEndpoints(inspects));
        this.o.log.info({ running: list.length, released: released.length }, 'restart reconciliation done');
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message }, 'restart reconciliation postponed: Docker or etcd unreachable');
        this.schedule(this.o.retryMs ?? 10_000);
      }
    })().finally(() => {
      this.running = undefined;
    });
    await this.running;
  }
}
