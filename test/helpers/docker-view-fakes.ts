import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import type { Etcd3 } from 'etcd3';

// Stand-ins for the Docker view writer's (plugin/docker/cluster-view.ts) Docker and etcd: its own rules are tested
// with them; the e2e and chaos suites run it against real ones.

/** Docker with two swarmnet networks, containers the test sets, and an event stream the test writes to. */
export function fakeDocker() {
  const containers = new Map<string, unknown>();
  const events = new PassThrough();
  let following!: () => void;
  /** Resolves once the view follows the event stream (its first resync is done). */
  const followed = new Promise<void>((r) => { following = r; });
  const docker = {
    listNetworks: async () => [{ Id: 'net1', Name: 'front', Driver: 'swarmnet:latest' }, { Id: 'net2', Name: 'back', Driver: 'swarmnet:latest' }],
    listContainers: async () => [...containers.keys()].map((Id) => ({ Id })),
    getContainer: (id: string) => ({
      inspect: async () => {
        const c = containers.get(id);
        if (!c) throw Object.assign(new Error('no such container'), { statusCode: 404 });
        return c;
      },
    }),
    getEvents: async () => { following(); return events; },
  };
  /** A running container on net1 at ip (and on net2 at ip2). */
  const running = (id: string, ip: string, health = 'healthy', ip2?: string) => containers.set(id, {
    Id: id, Name: `/${id}`, Config: { Hostname: id, Labels: {} }, State: { Running: true, Health: { Status: health } },
    NetworkSettings: {
      SandboxKey: `/run/docker/netns/${id}`,
      Networks: { front: { NetworkID: 'net1', IPAddress: ip }, ...(ip2 ? { back: { NetworkID: 'net2', IPAddress: ip2 } } : {}) },
    },
    HostConfig: {},
  });
  const event = (id: string, action: string, ms: number) => events.write(`${JSON.stringify({ Type: 'container', Action: action, Actor: { ID: id }, time: Math.floor(ms / 1000), timeNano: ms * 1e6 })}\n`);
  return { docker: docker as unknown as Docker, running, event, followed };
}

/** The etcd calls the Docker view makes, on a map. */
export function fakeEtcd() {
  const kv = new Map<string, string>();
  const client = {
    getAll: () => ({ prefix: (p: string) => ({ strings: async () => Object.fromEntries([...kv].filter(([k]) => k.startsWith(p))) }) }),
    put: (k: string) => ({ value: (v: string) => { const op = { lease: () => op, exec: async () => { kv.set(k, v); return {}; } }; return op; } }),
    delete: () => ({ key: (k: string) => ({ exec: async () => ({ deleted: String(kv.delete(k) ? 1 : 0) }) }) }),
  };
  return { client: client as unknown as Etcd3, kv };
}

