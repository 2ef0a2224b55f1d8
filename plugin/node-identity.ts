/** Who this node is in the swarm, from `docker info` (pure: no I/O). */
export interface NodeIdentity {
  /** Node name in etcd: NODE_NAME, else Docker's node name (its hostname), else the local hostname. */
  name: string;
  /** Swarm manager: mirrors networks and services into etcd. */
  isManager: boolean;
  /** The address Docker advertises for this node in the swarm, if it is in one. */
  swarmAddress?: string;
  /** Nodes in the swarm as far as this node can tell (workers cannot list nodes: a worker implies at least 2). */
  swarmNodes: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function nodeIdentity(info: unknown, override: string, fallbackHostname: string): NodeIdentity {
  const i = (info && typeof info === 'object' ? info : {}) as { Name?: unknown; Swarm?: Record<string, unknown> };
  const swarm = i.Swarm ?? {};
  const active = swarm.LocalNodeState === 'active';
  const isManager = active && swarm.ControlAvailable === true;
  const nodes = typeof swarm.Nodes === 'number' ? swarm.Nodes : 0;
  const name = override || (typeof i.Name === 'string' && NAME.test(i.Name) ? i.Name : fallbackHostname);
  if (!NAME.test(name)) throw new Error(`node name ${JSON.stringify(name)} is not usable as an etcd key part; set NODE_NAME`);
  return {
    name,
    isManager,
    ...(typeof swarm.NodeAddr === 'string' && swarm.NodeAddr ? { swarmAddress: swarm.NodeAddr } : {}),
    swarmNodes: !active ? 1 : isManager ? Math.max(nodes, 1) : Math.max(nodes, 2),
  };
}
