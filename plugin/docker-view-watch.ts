import type { Etcd3 } from 'etcd3';
import { viewRoot } from '../common/docker-view.js';
import { PrefixWatch } from './state/watch.js';

/** A plane that takes Docker's view (`<prefix>/swarmnet/docker/`) event by event. */
export interface ViewConsumer {
  /** The whole prefix: at start and after a resync. */
  reset(kvs: Map<string, string>): void;
  apply(type: 'put' | 'delete', key: string, value?: string): void;
}

/**
 * One etcd watch on Docker's view for every plane that reads it (DNS, load balancer): each event is delivered to
 * each consumer once, so a change costs one watch message per node, however many planes read it.
 */
export function watchDockerView(client: Etcd3, prefix: string, consumers: ViewConsumer[]): Promise<PrefixWatch> {
  return PrefixWatch.start(client, viewRoot(prefix), {
    onSnapshot: (kvs) => { for (const c of consumers) c.reset(kvs); },
    onEvent: (ev) => { for (const c of consumers) c.apply(ev.type, ev.key, ev.value); },
  });
}
