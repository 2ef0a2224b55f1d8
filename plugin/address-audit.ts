import type Docker from 'dockerode';
import type { Logger } from '../common/log.js';
import type { Ipam } from './ipam/ipam.js';
import { liveEndpoints } from './restart-reconcile.js';

/** At most this many unused addresses are named in the node's status (the count is exact). */
const SAMPLE = 5;

/**
 * Finds this node's address records that no running container holds (`swarmnet doctor`: "an address record without
 * a container"). Such a record keeps its address taken until the restart reconciliation releases it; the audit
 * only reports (releasing while Docker may be creating a container is the restart reconciliation's job, which has
 * the full listing and the grace period). A record counts once it was unused at two audits in a row, so a container
 * being created between its address and its start is never reported. One `docker ps` (its summaries carry the
 * addresses and MACs) and one read of the node's own index per network per audit.
 */
export class AddressAudit {
  readonly stats: { unused: number; sample: string[]; checkedAt?: number } = { unused: 0, sample: [] };
  private previous = new Set<string>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(private readonly o: { docker: Docker; ipam: Ipam; intervalMs: number; log: Logger }) {}

  start(): void {
    const tick = (): void => {
      this.timer = setTimeout(() => {
        this.running = this.check().finally(() => { if (this.timer) tick(); });
      }, this.o.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  async check(): Promise<void> {
    try {
      const list = await this.o.docker.listContainers();
      const live = liveEndpoints(list.map((c) => ({ State: { Running: c.State === 'running' }, NetworkSettings: c.NetworkSettings })));
      const unused = (await this.o.ipam.unusedRecords(live)).map((r) => `${r.address} (${r.network})`);
      const confirmed = unused.filter((x) => this.previous.has(x));
      this.previous = new Set(unused);
      if (confirmed.length && confirmed.length !== this.stats.unused) {
        this.o.log.warn({ unused: confirmed.length, sample: confirmed.slice(0, SAMPLE) }, 'address records of this node without a running container: they stay taken until the restart reconciliation');
      }
      this.stats.unused = confirmed.length;
      this.stats.sample = confirmed.slice(0, SAMPLE);
      this.stats.checkedAt = Date.now();
    } catch (e) {
      // Docker or etcd away: nothing is known, the last result stands.
      this.o.log.debug({ err: (e as Error).message }, 'address audit skipped');
    }
  }
}
