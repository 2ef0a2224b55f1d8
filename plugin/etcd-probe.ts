import type { Etcd3 } from 'etcd3';

export interface EtcdProbeOptions {
  client: Pick<Etcd3, 'maintenance'>;
  intervalMs: number;
  /** Seconds the Status request took, or undefined when it failed. */
  onResult: (seconds: number | undefined) => void;
}

/**
 * etcd's round trip as this node sees it: one Status request per interval, never two at once (a slow etcd slows
 * the probe instead of piling requests on it). Status is answered by one member without consensus, so this is
 * network, TLS and member responsiveness; the daemon's writes also wait for a commit. Returns stop.
 */
export function startEtcdProbe(o: EtcdProbeOptions): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const next = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      const started = performance.now();
      void o.client.maintenance.status().then(
        () => { if (!stopped) o.onResult((performance.now() - started) / 1000); },
        () => { if (!stopped) o.onResult(undefined); },
      ).finally(next);
    }, o.intervalMs);
    timer.unref();
  };
  next();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
