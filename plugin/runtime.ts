import { hostname } from 'node:os';
import Docker from 'dockerode';
import type { Etcd3 } from 'etcd3';
import { logger, type Logger } from '../common/log.js';
import { findUnderlay, type Underlay } from '../flannel/underlay.js';
import { vtepMac } from '../flannel/vtep-mac.js';
import type { Config } from './config.js';
import { ClusterView } from './docker/cluster-view.js';
import { isSwarmnetDriver } from './driver-name.js';
import { checkEmbeddedAllowed, secureEmbeddedEtcd, startEmbeddedEtcd, type EmbeddedEtcd } from './embedded-etcd.js';
import { Ipam } from './ipam/ipam.js';
import { NetworkEndpoints } from './network-endpoints.js';
import { EtcdNetworkState } from './network-state.js';
import { nodeIdentity } from './node-identity.js';
import { OverlaySync } from './overlay-sync.js';
import type { Readiness } from './readiness.js';
import type { DriverImpl } from './ready-gate.js';
import { RestartReconciler } from './restart-reconcile.js';
import { startDnsPlane } from './dns-plane.js';
import { watchDockerView } from './docker-view-watch.js';
import { startLbPlane } from './lb-plane.js';
import { createEtcdClient, etcdCallStats, NodeLease } from './state/etcd-client.js';
import { allocationRefusals, dockerEventLag, etcdProbeFailures, etcdRoundTrip, registerRuntimeMetrics } from './metrics.js';
import { startEtcdProbe } from './etcd-probe.js';
import { ALLOCATION_CALLS, coarse, NodeStatusPublisher } from './node-status.js';
import { AddressAudit } from './address-audit.js';
import { version } from '../common/version.js';

/** Everything the daemon runs once initialised: etcd client, IPAM, overlay reconciler, Docker events. */
export interface Runtime {
  nodeName: string;
  driver: DriverImpl;
  /** A plugin call failed with this error (the daemon's protocol server reports each). */
  refused(call: string, err: string): void;
  stop(): Promise<void>;
}

/** dockerd starts plugins before it restores containers: the first restart reconciliation waits this long. */
const RESTART_GRACE_MS = 15_000;
/** How often the etcd round trip is measured (one Status request). */
const ETCD_PROBE_MS = 5_000;

/**
 * Starts every part in dependency order. Any failure undoes what was started and throws: the daemon retries the
 * whole start with backoff, so a half-started runtime never serves Docker.
 */
export async function startRuntime(config: Config, readiness: Readiness, log: Logger): Promise<Runtime> {
  const undo: (() => Promise<void> | void)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const fn of undo.reverse()) await Promise.resolve().then(fn).catch((e: Error) => log.warn({ err: e.message }, 'error while stopping'));
    undo.length = 0;
  };
  const startedAt = Date.now();
  try {
    readiness.setWaitingFor(`Docker at ${config.dockerSocket}`);
    // No client-wide timeout: dockerode applies it to the event stream too, which must stay open.
    const docker = new Docker({ socketPath: config.dockerSocket });
    const identity = nodeIdentity(await dockerInfo(docker, config, log), config.nodeName, hostname());

    let etcd = config.etcd;
    if (etcd.endpoints.length === 0) {
      checkEmbeddedAllowed(identity.swarmNodes);
      const embedded: EmbeddedEtcd = startEmbeddedEtcd({ stateDir: config.stateDir });
      undo.push(() => embedded.stop());
      readiness.setWaitingFor(`the embedded etcd at ${embedded.endpoint}`);
      await secureEmbeddedEtcd(embedded);
      etcd = { ...etcd, endpoints: [embedded.endpoint], ...embedded.auth };
    }
    const endpoints = etcd.endpoints;
    readiness.setWaitingFor(`etcd at ${endpoints.join(',')}`);
    const client = createEtcdClient(etcd);
    undo.push(() => client.close());
    await waitForEtcd(client, config.etcd.requestTimeoutMs);
    undo.push(startEtcdProbe({
      client, intervalMs: ETCD_PROBE_MS,
      onResult: (s) => { if (s === undefined) etcdProbeFailures.inc(); else etcdRoundTrip.observe(s); },
    }));

    readiness.setWaitingFor('the underlay interface');
    const underlay = await chooseUnderlay(config.underlayInterface, identity.swarmAddress, log);
    const publicIp = config.publicIp ?? underlay.address;

    // A lost node lease means etcd dropped this node's records (set below, once IPAM exists).
    let onLeaseRenewed = (): void => {};
    const lease = new NodeLease(client, config.nodeLeaseTtlSeconds, () => onLeaseRenewed());
    undo.push(() => lease.close());
    await lease.id();
    const ipam = new Ipam({
      client, lease, prefix: config.etcd.prefix, node: identity.name, publicIp,
      availableSubnets: config.availableSubnets, networkSubnetSize: config.networkSubnetSize,
      hostSubnetSize: config.hostSubnetSize, vniStart: config.vniStart, vtepMac,
    });
    undo.push(() => ipam.close());
    // What a previous run of the plugin recorded stays alive under this run's lease until Docker says what runs.
    const held = await ipam.holdNodeRecords();
    if (held) log.info({ addresses: held }, 'this node\'s address records moved to the new node lease');
    const restart = new RestartReconciler({ docker, ipam, log: logger('restart-reconcile') });
    // Forget cached records so the next call rewrites them, and re-record the running containers' addresses.
    let onViewLost = (): void => {};
    onLeaseRenewed = () => {
      ipam.resetCache();
      restart.schedule(0);
      onViewLost();
    };

    readiness.setWaitingFor('the overlay reconciler');
    const overlay = new OverlaySync(
      ipam,
      { name: identity.name, publicIp, underlayInterface: underlay.name, vxlanPort: config.vxlanPort, underlayMtu: underlay.mtu },
      { stateDir: config.stateDir, intervalMs: config.reconcileIntervalSeconds * 1000, fastPath: config.overlayFastPath, log: logger('overlay') },
    );
    await overlay.start();
    undo.push(() => overlay.stop());

    const view = new ClusterView({
      docker, client, lease, prefix: config.etcd.prefix, node: identity.name, isOurDriver: isSwarmnetDriver,
      isManager: async () => nodeIdentity(await docker.info(), config.nodeName, hostname()).isManager,
      onEventWritten: (s) => dockerEventLag.observe(s),
    });
    view.start();
    undo.push(() => view.stop());
    onViewLost = () => view.invalidate();

    readiness.setWaitingFor('the DNS plane');
    const dns = await startDnsPlane({
      prefix: config.etcd.prefix, node: identity.name, compat: config.dnsDockerCompatibilityMode, maxQpsPerContainer: config.dnsMaxQpsPerContainer,
      pluginSocket: config.pluginSocket, hookAvailable: config.isHookAvailable, log: logger('dns'),
    });
    undo.push(() => dns.stop());
    readiness.setWaitingFor('the load balancer');
    const lb = await startLbPlane({
      prefix: config.etcd.prefix, node: identity.name, setting: config.lbBackend,
      intervalMs: config.reconcileIntervalSeconds * 1000, log: logger('lb'),
    });
    undo.push(() => lb.stop());
    // One watch feeds both planes; its first snapshot is delivered before this resolves.
    const viewWatch = await watchDockerView(client, config.etcd.prefix, [dns.view, lb.view]);
    undo.push(() => viewWatch.close());
    undo.push(registerRuntimeMetrics({ lease, overlay, ipam, etcd: etcdCallStats(client), watches: { 'docker-view': viewWatch, ...overlay.watches } }));

    // Address records without a container (doctor): checked every 3 reconcile intervals, reported after two sightings.
    const audit = new AddressAudit({ docker, ipam, intervalMs: 3 * config.reconcileIntervalSeconds * 1000, log: logger('address-audit') });
    audit.start();
    undo.push(() => audit.stop());

    const status = new NodeStatusPublisher({
      client, lease, prefix: config.etcd.prefix, intervalMs: config.reconcileIntervalSeconds * 1000, log: logger('status'),
      collect: () => {
        const o = overlay.stats;
        const d = dns.injector.stats;
        const l = lb.reconciler.stats;
        return {
          node: identity.name, publicIp, version, manager: identity.isManager, startedAt,
          overlay: { checkedAt: coarse(o.lastRunAt), changedAt: o.lastRepairAt, runs: o.runs, failedRuns: o.failedRuns, drift: o.drift, ...(o.failing ? { failing: o.failing } : {}), ...(o.fastPath ? { fastPath: o.fastPath } : {}) },
          dns: { served: d.served, waiting: d.waiting, serveFailures: d.serveFailures, repairs: d.repairs, ...(d.repairedAt ? { repairedAt: d.repairedAt } : {}) },
          lb: { backend: lb.backend, vips: l.vips, backends: l.backends, checkedAt: coarse(l.lastCheckAt), changedAt: l.lastSyncAt, repairedAt: l.lastRepairAt, failures: l.failures, repairs: l.repairs, refusedAt: l.lastRefusedAt, ...(l.failing ? { failing: l.failing } : {}) },
          ipam: { unused: audit.stats.unused, sample: audit.stats.sample, checkedAt: coarse(audit.stats.checkedAt) },
        };
      },
    });
    status.start();
    undo.push(() => status.stop());

    restart.schedule(RESTART_GRACE_MS);
    undo.push(() => restart.stop());

    const network = new NetworkEndpoints(new EtcdNetworkState(ipam), overlay, logger('network'), dns, (net, address) => void view.endpointLeft(net, address));
    log.info({ node: identity.name, manager: identity.isManager, underlay: underlay.name, publicIp, etcd: endpoints.length }, 'runtime started');
    const refused = (call: string, err: string): void => {
      status.refused(call, err);
      if (!ALLOCATION_CALLS.has(call)) return;
      // Docker hides this from the user: `docker network create` prints an id and the network stays unusable.
      allocationRefusals.inc();
      log.error({ call, err }, 'Docker could not allocate a swarmnet network: the network exists without driver and IPAM and its containers will not start; remove it and create it again (see docs/troubleshooting.md)');
    };
    return { nodeName: identity.name, driver: { network, ipam }, refused, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

async function waitForEtcd(client: Etcd3, timeoutMs: number): Promise<void> {
  try {
    await client.maintenance.status();
  } catch (e) {
    throw new Error(`etcd is unreachable (${(e as Error).message}); deadline ${timeoutMs} ms`);
  }
}

/**
 * `docker info`, needed for the node's name and swarm role. With NODE_NAME set and an external etcd the daemon can
 * start without Docker (a plain process in tests, or dockerd still starting): the Docker view and the restart
 * reconciliation keep retrying on their own, and nothing is released until Docker answers.
 */
async function dockerInfo(docker: Docker, config: Config, log: Logger): Promise<unknown> {
  try {
    return await docker.info();
  } catch (e) {
    if (!config.nodeName || config.etcd.endpoints.length === 0) throw new Error(`Docker is unreachable at ${config.dockerSocket}: ${(e as Error).message}`);
    log.warn({ err: (e as Error).message }, 'Docker is unreachable; starting with NODE_NAME and no swarm role');
    return {};
  }
}

/**
 * The VXLAN underlay: UNDERLAY_INTERFACE (or -iface=) when set; else the interface holding the swarm's advertise
 * address, so VXLAN follows the swarm's data path; else (an advertise address behind NAT is on no interface) the
 * interface of the default route.
 */
async function chooseUnderlay(configured: string | undefined, swarmAddress: string | undefined, log: Logger): Promise<Underlay> {
  if (configured) return findUnderlay(configured);
  if (swarmAddress) {
    try {
      return await findUnderlay(swarmAddress);
    } catch (e) {
      log.warn({ err: (e as Error).message, swarmAddress }, 'the swarm advertise address is on no interface; using the default route\'s');
    }
  }
  return findUnderlay();
}
