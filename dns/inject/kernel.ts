import { statfsSync, statSync } from 'node:fs';
import { Forwarder } from '../forwarder.js';
import { findDockerResolver } from '../docker-resolver.js';
import { openContainerListener, type ContainerListener } from '../netns-listener.js';
import { applyTakeover, hasTakeover, removeTakeover } from '../takeover.js';
import type { Upstream } from '../upstreams.js';

/** A network namespace as the kernel names it: the nsfs device and inode (what the hook reports for its own). */
export interface NetnsId { dev: number; ino: number }

const NSFS_MAGIC = 0x6e736673;
/** Forwarded queries of one container at once (Docker's resolver allows 1024 per container too, with a 4 s wait). */
const MAX_IN_FLIGHT_PER_CONTAINER = 1024;

/** What one served namespace holds: our sockets on 127.0.0.11:53 there, and a forwarder dialing from there. */
export interface Served {
  ns: NetnsId;
  listener: ContainerListener;
  forwarder: Forwarder;
}

/** The side effects of the DNS plane, per network namespace (tests substitute nothing: they use real namespaces). */
export interface InjectorKernel {
  /** The namespace at `path` once Docker made it one (an nsfs bind mount); undefined before (or after) that. */
  netnsId(path: string): NetnsId | undefined;
  /** Opens the listener, then takes 127.0.0.11:53 over (dns/takeover.ts): all or nothing. */
  serve(path: string, ns: NetnsId): Promise<Served>;
  /** Hands the namespace back to Docker's resolver, then closes our sockets (that order: never a gap with no DNS). */
  unserve(path: string, served: Served): Promise<void>;
  /** Docker's resolver inside the namespace (its DNAT rules), where our misses go. */
  dockerResolver(path: string): Promise<Upstream | undefined>;
  /** Puts the takeover back if it is no longer in the namespace (idempotent); true if it had to. */
  repairTakeover(path: string): Promise<boolean>;
}

export const kernel: InjectorKernel = {
  netnsId(path) {
    try {
      if (statfsSync(path).type !== NSFS_MAGIC) return undefined;
      const st = statSync(path);
      return { dev: st.dev, ino: st.ino };
    } catch {
      return undefined;
    }
  },

  async serve(path, ns) {
    const listener = await openContainerListener(path);
    let forwarder: Forwarder | undefined;
    try {
      // One socket: the only server it talks to is Docker's resolver over loopback. Its own in-flight bound: a
      // container flooding misses is refused past it, and the others' forwarding is untouched.
      forwarder = new Forwarder({ netns: path, sockets: 1, maxInFlight: MAX_IN_FLIGHT_PER_CONTAINER });
      await applyTakeover(path);
      return { ns, listener, forwarder };
    } catch (e) {
      forwarder?.close();
      listener.close();
      throw e;
    }
  },

  async unserve(path, served) {
    try {
      // Gone with its container (or the path names another namespace by now): nothing to hand back there.
      const now = this.netnsId(path);
      if (now && now.ino === served.ns.ino && now.dev === served.ns.dev) await removeTakeover(path);
    } finally {
      served.forwarder.close();
      served.listener.close();
    }
  },

  dockerResolver: findDockerResolver,

  async repairTakeover(path) {
    if (await hasTakeover(path)) return false;
    await applyTakeover(path);
    return true;
  },
};
