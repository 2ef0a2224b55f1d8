import { closeSync } from 'node:fs';
import net from 'node:net';
import { checkContainerNetns } from './netns-path.js';
import { BatchUdp, nativeUdp } from './udp-batch.js';

/**
 * The resolver's listener inside one container: UDP and TCP on 127.0.0.11:53 in the container's network namespace,
 * opened from this process through the addon (dns/native/udp_batch.c creates the sockets under setns; they stay in
 * that namespace). The result plugs into DnsServer.addListener({ ...listener, view: containerId }).
 * dns/takeover.ts then makes the container's queries reach these sockets instead of Docker's resolver.
 */
export interface ContainerListenerOptions {
  /** Default 127.0.0.11 (the resolver address in a container's resolv.conf). */
  address?: string;
  /** Default 53; 0 picks a free port (UDP's, and TCP on the same one). */
  port?: number;
  /** TCP accept backlog; default 511 as Node's own listen(). */
  backlog?: number;
  /** UDP datagrams handled per event-loop turn (default 16): this container's share of the loop when it floods. */
  datagramsPerTurn?: number;
}

/** What a flooding container may make the others wait per turn, with DnsServer's tcpMessagesPerTurn. */
export const CONTAINER_DATAGRAMS_PER_TURN = 16;

export interface ContainerListener {
  batchUdp: BatchUdp;
  tcp: net.Server;
  /** Closes both sockets and any open TCP connection (they would keep the namespace alive). Idempotent. */
  close(): void;
}

function fail(what: string, e: unknown): Error {
  const cause = e instanceof Error ? e : new Error(String(e));
  const err = new Error(`netns-listener: ${what}: ${cause.message}`, { cause });
  const code = (cause as NodeJS.ErrnoException).code;
  if (code) (err as NodeJS.ErrnoException).code = code;
  return err;
}

/** Adopts a listening fd into a net.Server; on failure the fd is closed. */
function adopt(fd: number): Promise<net.Server> {
  const srv = net.createServer();
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ fd }, () => { srv.off('error', reject); resolve(srv); });
    // listen() decides synchronously: not listening now means Node did not take the fd (the error follows).
    if (!srv.listening) { try { closeSync(fd); } catch { /* already closed by Node */ } }
  });
}

/**
 * Opens UDP and TCP on address:port inside the network namespace at netnsPath (/proc/<pid>/ns/net or
 * /run/netns/<name>). All or nothing: when TCP cannot be opened the UDP socket is closed again.
 * Errors keep the system's code (EADDRINUSE, ...) and name the namespace.
 */
export async function openContainerListener(netnsPath: string, opts: ContainerListenerOptions = {}): Promise<ContainerListener> {
  const address = opts.address ?? '127.0.0.11';
  const port = opts.port ?? 53;
  const backlog = opts.backlog ?? 511;
  checkContainerNetns(netnsPath, 'netns-listener');
  if (net.isIP(address) === 0) throw new Error(`netns-listener: address must be a literal IP address, got "${address}"`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`netns-listener: bad port ${port}`);
  if (!Number.isInteger(backlog) || backlog < 1) throw new Error(`netns-listener: bad backlog ${backlog}`);
  const n = nativeUdp();
  if (!n) {
    throw new Error('netns-listener: the native addon (npm run build) is needed to open sockets in another namespace');
  }

  let batchUdp: BatchUdp;
  // A small batch per loop turn: a container flooding its resolver waits its turn behind the other containers' sockets.
  const datagramsPerWake = opts.datagramsPerTurn ?? CONTAINER_DATAGRAMS_PER_TURN;
  try { batchUdp = BatchUdp.open(address, port, { netns: netnsPath, datagramsPerWake }); } catch (e) {
    throw fail(`UDP ${address}:${port} in ${netnsPath}`, e);
  }
  const tcpPort = batchUdp.address().port;
  let tcp: net.Server;
  try {
    tcp = await adopt(n.listenTcp(address, tcpPort, backlog, netnsPath));
  } catch (e) {
    batchUdp.close();
    throw fail(`TCP ${address}:${tcpPort} in ${netnsPath}`, e);
  }

  const connections = new Set<net.Socket>();
  tcp.on('connection', (c) => { connections.add(c); c.on('close', () => connections.delete(c)); });
  let closed = false;
  return {
    batchUdp,
    tcp,
    close() {
      if (closed) return;
      closed = true;
      batchUdp.close();
      tcp.close();
      for (const c of connections) c.destroy();
      connections.clear();
    },
  };
}
