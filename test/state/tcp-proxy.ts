import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy that a test can cut: `cut()` drops every connection and refuses new ones until `restore()`.
 * It puts one client (e.g. a watcher) out of reach of etcd while other clients keep writing.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private open = true;
  private readonly server: Server;
  port = 0;

  private constructor(targetPort: number) {
    this.server = createServer((down) => {
      if (!this.open) return void down.destroy();
      const up = connect(targetPort, '127.0.0.1');
      for (const s of [down, up]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => { down.destroy(); up.destroy(); });
      }
      down.pipe(up).pipe(down);
    });
  }

  get endpoint(): string { return `http://127.0.0.1:${this.port}`; }

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    const a = proxy.server.address();
    proxy.port = typeof a === 'object' && a ? a.port : 0;
    return proxy;
  }

  cut(): void {
    this.open = false;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
