import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';

/**
 * UDP listener that reads and answers in batches (recvmmsg/sendmmsg) through dns/native/udp_batch.c.
 * Node's dgram makes one syscall and one C++→JavaScript call per datagram each way; at 100k queries/s that is most
 * of the cost of an answer (docs/performance.md). The addon is optional: without it (not built, or
 * SWARMNET_DNS_NATIVE=0) the server uses dgram and answers the same, only slower.
 *
 * Every socket shares one receive area. A batch is handed to its handler synchronously, and the handler sends what
 * it can answer at once before returning; anything that answers later (a forwarded query) must copy the datagram
 * and the sender's address (peer()) first, because the next batch overwrites both.
 */
interface Native {
  init(rx: Buffer, addrs: Buffer, lens: Int32Array): void;
  open(ip: string, port: number, reusePort: boolean, onBatch: (n: number) => void, netns?: string, perWake?: number): object;
  send(sock: object, replies: Buffer[], slots: Int32Array, count: number): number;
  sendMany(sock: object, replies: Buffer[], addrs: Buffer, count: number, status: Int32Array): number;
  /** A listening TCP socket (fd, owned by the caller) inside netns if given: dns/netns-listener.ts. */
  listenTcp(ip: string, port: number, backlog: number, netns?: string): number;
  /** A TCP socket connecting (non-blocking) to ip:port from inside netns (fd, owned by the caller). */
  connectTcp(ip: string, port: number, netns: string): number;
  local(sock: object): [string, number];
  ref(sock: object, on: boolean): void;
  pause(sock: object, on: boolean): void;
  close(sock: object): void;
  SLOTS: number;
  SLOT_SIZE: number;
  ADDR_SIZE: number;
}

const AF_INET = 2;
const AF_INET6 = 10;

let loaded: Native | null | undefined;
let rx: Buffer;
let addrs: Buffer;
let lens: Int32Array;

/** Where the build puts the addon: next to the compiled module, or (running from source under tsx) in dist/. */
function candidates(): string[] {
  return [
    fileURLToPath(new URL('./native/udp_batch.node', import.meta.url)),
    fileURLToPath(new URL('../dist/dns/native/udp_batch.node', import.meta.url)),
  ];
}

/** The addon, loaded once; undefined when it is not built, fails to load, or SWARMNET_DNS_NATIVE=0. */
export function nativeUdp(): Native | undefined {
  if (loaded !== undefined) return loaded ?? undefined;
  loaded = null;
  if (process.env.SWARMNET_DNS_NATIVE === '0' || process.platform !== 'linux') return undefined;
  const file = candidates().find((f) => existsSync(f));
  if (!file) return undefined;
  try {
    const n = createRequire(import.meta.url)(file) as Native;
    rx = Buffer.allocUnsafeSlow(n.SLOTS * n.SLOT_SIZE);
    addrs = Buffer.alloc(n.SLOTS * n.ADDR_SIZE);
    lens = new Int32Array(n.SLOTS);
    n.init(rx, addrs, lens);
    loaded = n;
  } catch {
    loaded = null;
  }
  return loaded ?? undefined;
}

const readFamily = endianness() === 'LE' ? (off: number) => addrs.readUInt16LE(off) : (off: number) => addrs.readUInt16BE(off);

export interface BatchUdpOptions {
  /** SO_REUSEPORT: several processes (--workers) bind the same address and the kernel spreads the senders. */
  reusePort?: boolean;
  /** Open the socket inside this network namespace (a path such as /proc/<pid>/ns/net or /run/netns/<name>). */
  netns?: string;
  /**
   * Datagrams read per readable event, 1–1024 (default 1024: up to 16 recvmmsg of 64). Small on a container's
   * listener: the loop then moves on to the other sockets, so one flooding container cannot hold it.
   */
  datagramsPerWake?: number;
}

export class BatchUdp {
  /** Called with the number of datagrams in the batch; see the class comment. */
  onBatch: ((n: number) => void) | undefined;
  readonly slots: number;
  private readonly sock: object;
  private closed = false;
  /** queueTo(): datagrams waiting for the end of this turn of the event loop, their destinations and failure hooks. */
  private queued: Buffer[] = [];
  private queuedFailed: (((errno: number) => void) | undefined)[] = [];
  private readonly queuedAddrs: Buffer;
  private readonly status: Int32Array;
  private flushScheduled = false;
  private readonly flushNow = (): void => this.flush();

  private constructor(private readonly n: Native, host: string, port: number, o: BatchUdpOptions) {
    this.slots = n.SLOTS;
    this.queuedAddrs = Buffer.alloc(n.SLOTS * n.ADDR_SIZE);
    this.status = new Int32Array(n.SLOTS);
    this.sock = n.open(host, port, o.reusePort ?? false, (count) => this.onBatch?.(count), o.netns, o.datagramsPerWake);
  }

  /** Binds host:port (literal IP); throws like bind does (code EADDRINUSE, ...). Needs nativeUdp(). */
  static open(host: string, port: number, o: BatchUdpOptions = {}): BatchUdp {
    const n = nativeUdp();
    if (!n) throw new Error('batched UDP is not available (addon not built or disabled)');
    return new BatchUdp(n, host, port, o);
  }

  address(): { address: string; port: number } {
    if (this.closed) throw new Error('batched UDP socket is closed'); // the native handle is freed by then
    const [address, port] = this.n.local(this.sock);
    return { address, port };
  }

  /** Datagram i of the current batch (a view into the shared area), or undefined if it was larger than a slot. */
  datagram(i: number): Buffer | undefined {
    const len = lens[i]!;
    if (len < 0) return undefined;
    const off = i * this.n.SLOT_SIZE;
    return rx.subarray(off, off + len);
  }

  /** Sender of datagram i as a literal address. */
  peerAddress(i: number): string {
    const off = i * this.n.ADDR_SIZE;
    const family = readFamily(off);
    if (family === AF_INET) return `${addrs[off + 4]}.${addrs[off + 5]}.${addrs[off + 6]}.${addrs[off + 7]}`;
    if (family === AF_INET6) {
      const ip = ipaddr.fromByteArray([...addrs.subarray(off + 8, off + 24)]) as ipaddr.IPv6;
      // An IPv4 client of a dual-stack "::" socket: the same dotted form an IPv4 socket would give.
      return ip.isIPv4MappedAddress() ? ip.toIPv4Address().toString() : ip.toString();
    }
    return '';
  }

  peerPort(i: number): number {
    return addrs.readUInt16BE(i * this.n.ADDR_SIZE + 2);
  }

  /** A copy of the sender of datagram i, for queueTo() after the batch. */
  peer(i: number): Buffer {
    const off = i * this.n.ADDR_SIZE;
    return Buffer.from(addrs.subarray(off, off + this.n.ADDR_SIZE));
  }

  /**
   * Stops reading (true) or reads again (false). While paused the kernel keeps what arrives, and drops what does
   * not fit its buffer: a sender past its budget costs this process nothing.
   */
  pause(on: boolean): void {
    if (!this.closed) this.n.pause(this.sock, on);
  }

  /** Sends replies[j] to the sender of datagram slots[j], j < count, in one sendmmsg; returns how many went. */
  send(replies: Buffer[], slots: Int32Array, count: number): number {
    return this.closed ? 0 : this.n.send(this.sock, replies, slots, count);
  }

  /**
   * Answers every batch with answer(datagram, i): the reply to send now, or undefined (dropped, or answered later
   * through queueTo(peer(i))). The replies of a batch go out in one sendmmsg; datagrams larger than a slot are
   * dropped. `after` runs once each batch is answered.
   */
  serve(answer: (msg: Buffer, i: number) => Buffer | undefined, after?: () => void): void {
    const replies: Buffer[] = [];
    const slots = new Int32Array(this.slots);
    this.onBatch = (n) => {
      let k = 0;
      for (let i = 0; i < n; i++) {
        const msg = this.datagram(i);
        const r = msg && answer(msg, i);
        if (r) { replies[k] = r; slots[k++] = i; }
      }
      if (k) this.send(replies, slots, k);
      replies.length = 0;
      after?.();
    };
  }

  /**
   * Sends reply to dest (from peer() or sockaddr()) together with everything else queued in this turn of the
   * event loop: one sendmmsg at the end of the turn (a microtask) instead of a sendto each. failed(errno) runs for
   * a datagram that could not be sent: a microtask later, or at once when this call fills the batch and sends it.
   */
  queueTo(reply: Buffer, dest: Buffer, failed?: (errno: number) => void): void {
    const k = this.queued.length;
    dest.copy(this.queuedAddrs, k * this.n.ADDR_SIZE, 0, this.n.ADDR_SIZE);
    this.queued.push(reply);
    this.queuedFailed.push(failed);
    if (k + 1 >= this.slots) this.flush();
    else if (!this.flushScheduled) { this.flushScheduled = true; queueMicrotask(this.flushNow); }
  }

  private flush(): void {
    this.flushScheduled = false;
    const replies = this.queued;
    const failed = this.queuedFailed;
    const n = replies.length;
    if (!n) return;
    this.queued = [];
    this.queuedFailed = [];
    if (this.closed) this.status.fill(9 /* EBADF */, 0, n);
    else this.n.sendMany(this.sock, replies, this.queuedAddrs, n, this.status);
    if (!this.status.subarray(0, n).some((e) => e !== 0)) return;
    const status = this.status.slice(0, n); // failed() may queue and flush again
    for (let i = 0; i < n; i++) if (status[i] && failed[i]) failed[i]!(status[i]!);
  }

  /** Whether this socket keeps the process alive (default: yes). */
  ref(on: boolean): void {
    if (!this.closed) this.n.ref(this.sock, on);
  }

  /** A destination for queueTo(): host is a literal IPv4 or IPv6 address. */
  static sockaddr(host: string, port: number): Buffer {
    const b = Buffer.alloc(28);
    const ip = ipaddr.parse(host);
    const writeFamily = endianness() === 'LE' ? b.writeUInt16LE.bind(b) : b.writeUInt16BE.bind(b);
    writeFamily(ip.kind() === 'ipv6' ? AF_INET6 : AF_INET, 0);
    b.writeUInt16BE(port, 2);
    Buffer.from(ip.toByteArray()).copy(b, ip.kind() === 'ipv6' ? 8 : 4);
    return b;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onBatch = undefined;
    this.n.close(this.sock);
  }
}
