// Fuzz: ≥ 100,000 random and mutated requests at every endpoint of a REAL daemon (dist/plugin/main.js in a network
// namespace, a real etcd), 32 in flight on its unix socket: garbage, truncated and mutated JSON (seeded from the
// recorded Docker 20.10 calls and from a live network/endpoint made at the start), wrong types, huge strings, deep
// nesting, unicode and invalid UTF-8, wrong methods, paths, headers and malformed HTTP. Every reply must be a non-200
// with {"Err": "<non-empty>"} or a 200 whose body is valid for its endpoint; the daemon must stay up and keep
// answering Activate; afterwards the etcd address plan holds, and tearing down through the API what the run left
// (as Docker would) leaves no etcd record and no kernel link. FUZZ_SEED=<seed> replays a run's cases.
import test from 'ava';
import { Agent, request } from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { z } from 'zod';
import { routes, CONTENT_TYPE, MAX_BODY_BYTES } from '../../plugin/protocol/server.js';
import type { Driver } from '../../plugin/protocol/contract.js';
import { canRunDaemons, DaemonHosts, ip } from '../helpers/daemon-hosts.js';
import { checkInvariants } from '../helpers/invariants.js';
import { waitFor } from '../helpers/wait.js';
import { deep, fuzzSeed, Rng } from './gen.js';

const run = canRunDaemons ? test.serial : test.skip;
const lab = new DaemonHosts('snfz', '10.91.0', ['a'] as const, 23959);
const PREFIX = lab.prefix;
const SW = `${PREFIX}/swarmnet/`;
const NODE = 'host-a';
/** FUZZ_REQUESTS runs more (or, while debugging, fewer). */
const TOTAL = Number(process.env.FUZZ_REQUESTS ?? 100_000);
const IN_FLIGHT = 32;
/** A request with no reply by then is a hang (the daemon's own deadline for a driver call is 25 s). */
const GUARD_MS = 60_000;

const KERNEL_ROUTES = new Set(['/NetworkDriver.Join', '/NetworkDriver.CreateNetwork']);
/** Every endpoint the protocol server routes (a new one without a reply schema below fails the test). */
const ROUTES = [...routes(new Proxy({}, { get: () => async () => ({}) }) as Driver).keys()];

const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/);
const ipv4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/);
const strMap = z.record(z.string(), z.string());
const empty = z.strictObject({});
/** What Docker accepts from each endpoint on a 200 (contract.ts, server.ts). */
const REPLY: Record<string, z.ZodType> = {
  '/Plugin.Activate': z.strictObject({ Implements: z.tuple([z.literal('NetworkDriver'), z.literal('IpamDriver')]) }),
  '/NetworkDriver.GetCapabilities': z.strictObject({ Scope: z.literal('global'), ConnectivityScope: z.literal('global'), GwAllocChecker: z.boolean() }),
  '/IpamDriver.GetCapabilities': z.strictObject({ RequiresMACAddress: z.boolean(), RequiresRequestReplay: z.boolean() }),
  '/IpamDriver.GetDefaultAddressSpaces': z.strictObject({ LocalDefaultAddressSpace: z.string().min(1), GlobalDefaultAddressSpace: z.string().min(1) }),
  '/NetworkDriver.GwAllocCheck': z.strictObject({ SkipIPv4: z.boolean(), SkipIPv6: z.boolean() }),
  '/NetworkDriver.AllocateNetwork': z.strictObject({ Options: strMap }),
  '/NetworkDriver.FreeNetwork': empty,
  '/NetworkDriver.CreateNetwork': empty,
  '/NetworkDriver.DeleteNetwork': empty,
  '/NetworkDriver.CreateEndpoint': z.strictObject({ Interface: z.strictObject({ Address: cidr.optional(), AddressIPv6: z.string().optional(), MacAddress: z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/).optional() }).optional() }),
  '/NetworkDriver.EndpointOperInfo': z.strictObject({ Value: strMap }),
  '/NetworkDriver.DeleteEndpoint': empty,
  '/NetworkDriver.Join': z.strictObject({
    InterfaceName: z.strictObject({ SrcName: z.string().min(1).max(15), DstPrefix: z.string().min(1) }),
    Gateway: ipv4.optional(), GatewayIPv6: z.string().optional(), DisableGatewayService: z.boolean().optional(),
    StaticRoutes: z.array(z.strictObject({ Destination: cidr, RouteType: z.union([z.literal(0), z.literal(1)]), NextHop: ipv4.optional() })).optional(),
  }),
  '/NetworkDriver.Leave': empty,
  '/NetworkDriver.DiscoverNew': empty,
  '/NetworkDriver.DiscoverDelete': empty,
  '/NetworkDriver.ProgramExternalConnectivity': empty,
  '/NetworkDriver.RevokeExternalConnectivity': empty,
  '/IpamDriver.RequestPool': z.strictObject({ PoolID: z.string().min(1), Pool: cidr, Data: strMap }),
  '/IpamDriver.ReleasePool': empty,
  '/IpamDriver.RequestAddress': z.strictObject({ Address: cidr, Data: strMap }),
  '/IpamDriver.ReleaseAddress': empty,
};

interface Fixture { endpoint: string; request: unknown }
const FIXTURE: Fixture[] = readFileSync(new URL('../fixtures/docker-20.10-swarm-plugin-calls.jsonl', import.meta.url), 'utf8')
  .split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Fixture);

interface Case {
  kind: string;
  path: string;
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** The request as an object, when it is one (for the semantic checks of a 200). */
  sent?: unknown;
  /** Raw bytes on a fresh connection instead of an HTTP client request. */
  raw?: Buffer;
  /** A raw request that is incomplete: closing without a reply is a correct outcome. */
  mayDrop?: boolean;
}

interface Reply { status: number; contentType?: string; body: Buffer; error?: string }

/** JSON text of v (a template may be undefined: Docker's empty body). */
const enc = (v: unknown): Buffer => Buffer.from(JSON.stringify(v) ?? '');

const METHODS = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'post', 'PROPFIND'];
const CONTENT_TYPES = ['application/json', 'text/plain', CONTENT_TYPE, 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '\u00e9', ''];

/** Generates case `i` of the run; only the seeded Rng decides, never a reply, so a seed replays the same cases. */
class Cases {
  constructor(private readonly r: Rng, private readonly templates: Map<string, unknown[]>) {}

  private base(path: string, body: Buffer | undefined, kind: string, sent?: unknown): Case {
    return { kind, path, method: 'POST', headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' }, body, sent };
  }

  private template(path: string): unknown {
    const ts = this.templates.get(path) ?? [];
    return ts.length ? structuredClone(this.r.pick(ts)) : this.r.json(2);
  }

  next(): Case {
    const r = this.r;
    // Join and CreateNetwork reconcile the kernel when they succeed (tens of ms of `ip` each): fewer of them, so that
    // the run's time goes to many requests rather than to a few kernel passes.
    let path = r.pick(ROUTES);
    if (KERNEL_ROUTES.has(path) && r.chance(0.75)) path = r.pick(ROUTES);
    if (r.chance(0.04)) path = r.pick(['/NetworkDriver.Explode', '/VolumeDriver.Create', '/', '/Plugin.activate', '/IpamDriver.', '//IpamDriver.RequestPool', '/networkdriver.join', '/Plugin.Activate/']);
    const roll = r.int(100);
    if (roll < 10) return this.base(path, r.chance(0.5) ? r.bytes(r.size(3000)) : Buffer.from(r.text(400)), 'garbage');
    if (roll < 18) { const v = r.json(4); return this.base(path, enc(v), 'random-json', v); }
    if (roll < 48) { const v = this.mutate(this.template(path)); return this.base(path, enc(v), 'mutated', v); }
    if (roll < 60) return this.base(path, this.textual(enc(this.template(path))), 'textual');
    if (roll < 62) { const v = this.huge(this.template(path)); return this.base(path, enc(v), 'huge', v); }
    if (roll < 64) return this.base(path, this.nested(this.template(path)), 'deep');
    if (roll < 72) { const v = this.template(path); return this.base(path, v === undefined ? undefined : enc(v), 'valid', v); }
    if (roll < 76) return this.base(path, r.chance(0.2) ? undefined : Buffer.from(r.pick(['', '{}', '[]', 'null', '""', '0', ' ', '\n', 'true', '{"":""}'])), 'empty');
    if (roll < 83) {
      const c = this.base(path, r.chance(0.5) ? enc(this.template(path)) : undefined, 'method');
      c.method = r.pick(METHODS);
      return c;
    }
    if (roll < 88) {
      const v = this.template(path);
      const c = this.base(this.oddPath(path), enc(v), 'path', v);
      return c;
    }
    if (roll < 93) {
      const v = this.template(path);
      const c = this.base(path, enc(v), 'headers', v);
      c.headers['Content-Type'] = r.pick(CONTENT_TYPES);
      if (r.chance(0.3)) c.headers['Content-Encoding'] = r.pick(['gzip', 'identity', 'x']);
      if (r.chance(0.3)) c.headers.Connection = 'close';
      if (r.chance(0.2)) c.headers['X-' + r.int(1000)] = 'x'.repeat(r.size(4000));
      return c;
    }
    return this.rawCase(path);
  }

  /** One to three structural changes anywhere in the request. */
  mutate(v: unknown): unknown {
    const r = this.r;
    let out = v;
    for (let n = r.range(1, 3); n > 0; n--) out = this.mutateAt(out, r.int(4));
    return out;
  }

  private mutateAt(v: unknown, depth: number): unknown {
    const r = this.r;
    if (depth > 0 && v && typeof v === 'object') {
      const keys = Object.keys(v);
      if (keys.length && r.chance(0.8)) {
        const k = r.pick(keys);
        const o = v as Record<string, unknown>;
        Object.defineProperty(o, k, { value: this.mutateAt(o[k], depth - 1), enumerable: true, writable: true, configurable: true });
        return v;
      }
    }
    switch (r.int(12)) {
      case 0: case 1: return r.json(2); // another type
      case 2: return null;
      case 3: { // drop or add a member
        if (v && typeof v === 'object' && !Array.isArray(v)) {
          const o = v as Record<string, unknown>;
          const keys = Object.keys(o);
          if (keys.length && r.chance(0.5)) delete o[r.pick(keys)];
          else Object.defineProperty(o, r.chance(0.3) ? '__proto__' : r.text(10), { value: r.json(2), enumerable: true, writable: true, configurable: true });
        }
        return v;
      }
      case 4: case 5: return typeof v === 'string' ? this.mutateString(v) : r.text(30);
      case 6: return typeof v === 'number' ? r.pick([0, -1, v + 1, -v, v * 1e10, 0.5, 2 ** 31, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER]) : r.pick([0, 1, -1, 1.5, 1e300]);
      case 7: return [v];
      case 8: return { v };
      case 9: return typeof v === 'string' ? v.toUpperCase() : (JSON.stringify(v) ?? '');
      case 10: return r.pick(['', ' ', '0.0.0.0', '255.255.255.255/32', '10.150.0.0/16', '::', 'global/', 'local/1.2.3.4-99', 'global/10.150.0.0-20', 'local/10.150.240.0-20', '../../etc', '/proc/self/ns/net', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00']);
      default: return typeof v === 'string' ? v + r.text(8) : v;
    }
  }

  private mutateString(s: string): string {
    const r = this.r;
    const at = r.int(s.length + 1);
    switch (r.int(6)) {
      case 0: return s.slice(0, at);
      case 1: return s.slice(0, at) + r.text(6) + s.slice(at);
      case 2: return s.slice(0, at) + s.slice(at + r.range(1, 4));
      case 3: return s.slice(0, at) + String.fromCharCode(r.int(0x10000)) + s.slice(at + 1);
      case 4: return s.repeat(r.range(2, 50));
      default: return ` ${s}\u0000`;
    }
  }

  /** Byte-level damage to serialised JSON. */
  private textual(b: Buffer): Buffer {
    const r = this.r;
    switch (r.int(9)) {
      case 0: return b.subarray(0, r.int(b.length)); // truncated
      case 1: { const c = Buffer.from(b); for (let k = r.range(1, 4); k > 0 && c.length; k--) c[r.int(c.length)] = r.u32() & 0xff; return c; }
      case 2: { const at = r.int(b.length + 1); return Buffer.concat([b.subarray(0, at), Buffer.from(r.pick([[0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0x00]])), b.subarray(at)]); } // invalid UTF-8
      case 3: return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]); // BOM
      case 4: return Buffer.concat([b, Buffer.from(r.pick(['}', ']', ',', ' {}', '\u0000', 'garbage', '\n\n{"a":1}']))]);
      case 5: { const s = b.toString(); return Buffer.from(s.startsWith('{') ? `{${s.slice(1, -1)},${s.slice(1, -1)}}` : s); } // every key twice
      case 6: return Buffer.from(b.toString().replace(/"([A-Za-z]+)":/, r.chance(0.5) ? '$1:' : "'$1':")); // unquoted / single-quoted key
      case 7: return Buffer.from(`${' \t\r\n'.repeat(r.range(1, 3000))}${b.toString()}`);
      default: return Buffer.from(b.toString().replace(/\d/g, () => String(r.int(10))).replace(/:"/, ':"\\u' + r.pick(['d800', 'zzzz', '0000', 'dfff', '12'])));
    }
  }

  /** A member or the whole body as a string far longer than Docker's (now and then past the body limit). */
  private huge(v: unknown): unknown {
    const r = this.r;
    const n = r.chance(0.03) ? MAX_BODY_BYTES + r.int(1 << 18) : r.range(1 << 10, 1 << 17);
    const big = r.chance(0.5) ? 'a'.repeat(n) : '\u00e9\u{1f600}'.repeat(Math.ceil(n / 6));
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (r.chance(0.2)) Object.defineProperty(o, big.slice(0, 1 << 12), { value: 1, enumerable: true, writable: true, configurable: true });
      else if (keys.length) o[r.pick(keys)] = r.chance(0.7) ? big : { [r.text(5)]: big };
      else o.x = big;
      return o;
    }
    return big;
  }

  /** Deep nesting: the body itself, or inside one member (where the validators accept any value). */
  private nested(v: unknown): Buffer {
    const r = this.r;
    const d = r.chance(0.3) ? r.range(10_000, 200_000) : r.range(10, 5000);
    const text = deep(d, r.chance(0.4));
    if (!v || typeof v !== 'object' || Array.isArray(v) || r.chance(0.2)) return Buffer.from(text);
    const o = v as Record<string, unknown>;
    const key = r.chance(0.5) ? r.pick(['Options', 'DiscoveryData', 'Interface', 'IPv4Data']) : r.pick(Object.keys(o).concat(['x']));
    const inner = r.chance(0.4) ? `{"com.docker.network.generic":{"mtu":${text}},"mtu":${text}}` : text;
    const s = JSON.stringify({ ...o, [key]: '\u0000PLACEHOLDER\u0000' });
    return Buffer.from(s.replace('"\\u0000PLACEHOLDER\\u0000"', inner));
  }

  private oddPath(path: string): string {
    const r = this.r;
    switch (r.int(7)) {
      case 0: return `${path}?x=${r.int(100)}&Err=1`;
      case 1: return `${path}/`;
      case 2: return path.toLowerCase();
      case 3: return path.replace('.', '%2E');
      case 4: return `/${'A'.repeat(r.range(200, 60_000))}`;
      case 5: return `${path}#frag`;
      default: return `/../${path.slice(1)}`;
    }
  }

  /** Bytes an HTTP client would not send: bad request lines, headers and framing (a fresh connection each). */
  private rawCase(path: string): Case {
    const r = this.r;
    const body = enc(this.template(path));
    const head = (line: string, headers: string[], b: Buffer = body): Buffer => Buffer.concat([Buffer.from(`${line}\r\n${headers.join('\r\n')}${headers.length ? '\r\n' : ''}\r\n`), b]);
    const c: Case = { kind: 'raw', path, method: 'POST', headers: {} };
    switch (r.int(12)) {
      case 0: c.raw = r.bytes(r.size(500)); c.mayDrop = true; break; // not HTTP at all
      case 1: c.raw = head(`POST ${path}${r.text(10)} HTTP/1.1`, ['Host: x', `Content-Length: ${body.length}`, 'Connection: close']); break; // unicode/controls in the path
      case 2: c.raw = head(`POST ${path} HTTP/1.1`, ['Host: x', `Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`, 'Connection: close']); break;
      case 3: c.raw = head(`POST ${path} HTTP/1.1`, ['Host: x', 'Transfer-Encoding: chunked', 'Connection: close'], Buffer.from(`${r.pick(['3', 'zz', '-1', 'ffffffffffffffff'])}\r\n${body.toString().slice(0, 3)}\r\n0\r\n\r\n`));
        c.mayDrop = true; // a huge chunk size announces data that never comes: the server waits for it, as HTTP says
        break;
      case 4: c.raw = head(`POST ${path} HTTP/1.1`, ['Host: x', `Content-Length: ${body.length + 50}`, 'Connection: close']); c.mayDrop = true; break; // body shorter than announced
      case 5: c.raw = head(`POST ${path} HTTP/1.1`, ['Host: x', `Content-Length: ${r.pick(['-1', 'abc', '1e3', '99999999999999999999'])}`, 'Connection: close']); break;
      case 6: c.raw = head(`POST ${path} HTTP/1.1`, ['Host: x', `Bad Header${r.text(5)}: x`, `Content-Length: ${body.length}`, 'Connection: close']); break;
      case 7: c.raw = head(`POST ${path} HTTP/9.9`, ['Host: x', `Content-Length: ${body.length}`, 'Connection: close']); break;
      case 8: c.raw = head(`${r.pick(['BREW', 'P OST', '', 'POST\u0000'])} ${path} HTTP/1.1`, ['Host: x', `Content-Length: ${body.length}`, 'Connection: close']); break;
      case 9: c.raw = head(`POST ${path} HTTP/1.1`, ['Host: x', `X-Long: ${'y'.repeat(r.range(20_000, 100_000))}`, `Content-Length: ${body.length}`, 'Connection: close']); break;
      case 10: c.raw = head(`POST ${path}`, []); c.mayDrop = true; break; // HTTP/0.9-style
      default: { // a valid request cut anywhere: the server sees the connection end mid-request
        const full = head(`POST ${path} HTTP/1.1`, ['Host: x', `Content-Length: ${body.length}`, 'Connection: close']);
        c.raw = full.subarray(0, r.int(full.length));
        c.mayDrop = true;
      }
    }
    return c;
  }
}

const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });

function httpCall(socketPath: string, c: Case): Promise<Reply> {
  return new Promise((resolve) => {
    let req;
    try {
      req = request({ socketPath, path: c.path, method: c.method, headers: { ...c.headers, ...(c.body ? { 'Content-Length': String(c.body.length) } : {}) }, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: Buffer.concat(chunks) }));
        res.on('error', (e) => resolve({ status: 0, body: Buffer.alloc(0), error: e.message }));
      });
    } catch (e) {
      // Node's client refuses some headers and paths itself: nothing was sent, so nothing to check.
      resolve({ status: -1, body: Buffer.alloc(0), error: (e as Error).message });
      return;
    }
    req.setTimeout(GUARD_MS, () => req.destroy(new Error(`no reply within ${GUARD_MS} ms`)));
    // A 413 may come (and the server close) while the body is still being written.
    req.on('error', (e) => resolve({ status: 0, body: Buffer.alloc(0), error: e.message }));
    req.end(c.body);
  });
}

/**
 * Writes raw bytes on a fresh connection and reads what comes back until the server closes. Only an incomplete
 * request half-closes (the server must see it end): Node's server drops a reply still in the making when the client
 * half-closes, and Docker never does that.
 */
function rawCall(socketPath: string, bytes: Buffer, end: boolean): Promise<Reply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(socketPath);
    const timer = setTimeout(() => s.destroy(new Error(`no close within ${GUARD_MS} ms`)), GUARD_MS);
    let error: string | undefined;
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('error', (e) => { error = e.message; });
    s.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(all.subarray(0, Math.max(0, end)).toString('latin1'));
      if (!m || end < 0) return resolve({ status: 0, body: all, error: error ?? (all.length ? 'not an HTTP response' : 'closed without a reply') });
      const head = all.subarray(0, end).toString('latin1');
      const ct = /\r\ncontent-type: *([^\r\n]*)/i.exec(head)?.[1];
      resolve({ status: Number(m[1]), contentType: ct, body: all.subarray(end + 4) });
    });
    if (end) s.end(bytes);
    else s.write(bytes);
  });
}

/** Why a reply is wrong, or undefined. */
function verdict(c: Case, rep: Reply): string | undefined {
  if (rep.status === -1) return undefined;
  if (rep.error !== undefined || rep.status === 0) {
    // The client's own write failing after the server answered 413 and closed is the server refusing the body.
    if (c.mayDrop || (c.body && c.body.length > MAX_BODY_BYTES && /EPIPE|ECONNRESET|socket hang up/.test(rep.error ?? ''))) return undefined;
    return `no reply: ${rep.error}`;
  }
  if (rep.contentType !== CONTENT_TYPE) return `Content-Type ${JSON.stringify(rep.contentType)}`;
  if (c.method === 'HEAD') return rep.status === 200 ? 'HEAD answered 200' : undefined; // HTTP: no body on HEAD
  let body: unknown;
  try { body = JSON.parse(rep.body.toString('utf8')); } catch { return `body is not JSON: ${rep.body.toString('utf8').slice(0, 200)}`; }
  if (rep.status !== 200) {
    const err = (body as { Err?: unknown } | null)?.Err;
    return typeof err === 'string' && err !== '' ? undefined : `status ${rep.status} without a non-empty Err: ${JSON.stringify(body).slice(0, 200)}`;
  }
  const route = c.path.split('?')[0]!;
  const schema = REPLY[route];
  if (!schema) return `200 from ${route}, which is not an endpoint`;
  const ok = schema.safeParse(body);
  if (!ok.success) return `200 reply not valid for ${route}: ${JSON.stringify(body).slice(0, 300)} (${ok.error.issues[0]?.message})`;
  // CreateEndpoint must not echo what Docker set: Docker fails the endpoint when it does.
  if (route === '/NetworkDriver.CreateEndpoint') {
    const given = (c.sent as { Interface?: { Address?: unknown; MacAddress?: unknown } } | undefined)?.Interface;
    const got = (body as { Interface?: { Address?: string; MacAddress?: string } }).Interface;
    if (given?.MacAddress && got?.MacAddress) return 'CreateEndpoint echoed a MacAddress Docker had set';
    if (given?.Address && got?.Address) return 'CreateEndpoint echoed an Address Docker had set';
  }
  return undefined;
}

/** Calls that must succeed (setup and teardown); the reply body. */
async function must(path: string, body: unknown): Promise<Record<string, unknown>> {
  return lab.call('a', path, body);
}

function alive(child: { exitCode: number | null; signalCode: string | null }): string | undefined {
  return child.exitCode === null && child.signalCode === null ? undefined : `daemon exited (code ${child.exitCode}, signal ${child.signalCode})`;
}

const ourLinks = (): string[] => (JSON.parse(ip('-n', lab.hosts.a.ns, '-json', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname).filter((n) => /^sw(vx|br|ve|vp)/.test(n));

let daemon: ReturnType<typeof lab.startDaemon> | undefined;
test.before(() => {
  if (!canRunDaemons) return;
  lab.setup();
  daemon = lab.startDaemon('a', { AVAILABLE_SUBNETS: '10.150.0.0/16', LOG_LEVEL: 'fatal' });
});
test.after.always(async () => {
  agent.destroy();
  if (!canRunDaemons || process.env.SNFZ_KEEP) return;
  // SIGTERM first: the daemon's own shutdown , which hands served namespaces back.
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  lab.cleanup();
});

/** A network with this node's host subnet in it, made as Docker's swarm makes it (manager, then task node). */
async function network(dockerId: string): Promise<{ G: string; L: string; pool: string; gw: string }> {
  const gpool = await waitFor(() => must('/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false }), 60_000, 'RequestPool once ready');
  const [G, pool] = [gpool.PoolID as string, gpool.Pool as string];
  const gw = (await must('/IpamDriver.RequestAddress', { PoolID: G, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })).Address as string;
  await must('/NetworkDriver.AllocateNetwork', { NetworkID: dockerId, Options: {}, IPv4Data: [{ AddressSpace: '', Gateway: gw, Pool: pool }], IPv6Data: null });
  const L = (await must('/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetLocal', Pool: pool, SubPool: '', Options: {}, V6: false })).PoolID as string;
  const lgw = (await must('/IpamDriver.RequestAddress', { PoolID: L, Address: gw.split('/')[0], Options: { RequestAddressType: 'com.docker.network.gateway' } })).Address as string;
  await must('/NetworkDriver.CreateNetwork', { NetworkID: dockerId, Options: {}, IPv4Data: [{ AddressSpace: 'l', Gateway: lgw, Pool: pool }], IPv6Data: [] });
  return { G, L, pool, gw };
}

run('regression: DeleteEndpoint removes an endpoint whose id cannot name a kernel link (it used to be refused, its record kept for good)', async (t) => {
  await waitFor(() => must('/Plugin.Activate', null), 60_000, 'daemon listening');
  const { G, L } = await network('fuzzreg1');
  const address = (await must('/IpamDriver.RequestAddress', { PoolID: L, Address: '', Options: null })).Address as string;
  await must('/NetworkDriver.CreateEndpoint', { NetworkID: 'fuzzreg1', EndpointID: 'not-hex', Interface: { Address: address }, Options: {} });
  await must('/NetworkDriver.Leave', { NetworkID: 'fuzzreg1', EndpointID: 'not-hex' });
  await must('/NetworkDriver.DeleteEndpoint', { NetworkID: 'fuzzreg1', EndpointID: 'not-hex' });
  const etcd = new Etcd3({ hosts: lab.etcd });
  t.teardown(() => etcd.close());
  t.deepEqual(Object.keys(await etcd.getAll().prefix(`${SW}endpoints/`).strings()), []);
  await must('/IpamDriver.ReleaseAddress', { PoolID: L, Address: address.split('/')[0] });
  await must('/IpamDriver.ReleasePool', { PoolID: L });
  await must('/IpamDriver.ReleasePool', { PoolID: G });
});

run('regression: a network option that is not a string or number is refused with 400 (a deep array overflowed the stack: 500)', async (t) => {
  await waitFor(() => must('/Plugin.Activate', null), 60_000, 'daemon listening');
  const { G, L, pool } = await network('fuzzreg2');
  const sock = lab.sock('a');
  for (const mtu of [deep(100_000, false), '{"toString":1}', '["1400"]', '{}', 'null', 'true']) {
    const body = `{"NetworkID":"fuzzreg2","Options":{"com.docker.network.generic":{"mtu":${mtu}}},"IPv4Data":[{"Pool":"${pool}"}]}`;
    const r = await httpCall(sock, { kind: 'regression', path: '/NetworkDriver.CreateNetwork', method: 'POST', headers: {}, body: Buffer.from(body) });
    t.is(r.status, 400, mtu.slice(0, 20));
    t.regex(r.body.toString(), /MTU must be an integer/);
  }
  await must('/IpamDriver.ReleasePool', { PoolID: L });
  await must('/IpamDriver.ReleasePool', { PoolID: G });
});

run(`plugin API: ${TOTAL} random and mutated requests at every endpoint of a real daemon; it stays up, answers each correctly, leaves nothing behind`, async (t) => {
  t.timeout(20 * 60_000, 'a guard: the run normally takes well under a minute');
  const child = daemon!;
  const sock = lab.sock('a');
  await waitFor(() => must('/Plugin.Activate', null), 60_000, 'daemon listening');

  // A live network, endpoint and join, as Docker's swarm makes them on one node (manager and task node): the valid
  // requests that mutations start from hit real state, and so do the unchanged replays among the cases.
  const gpool = await waitFor(() => must('/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false }), 60_000, 'RequestPool once ready');
  const G = gpool.PoolID as string;
  const pool = gpool.Pool as string;
  const gw = (await must('/IpamDriver.RequestAddress', { PoolID: G, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })).Address as string;
  const DNET = 'fuzznet0000000000000000001';
  const EP = 'abcdef01'.repeat(8);
  const MAC = '02:42:0a:96:00:07';
  const alloc = { NetworkID: DNET, Options: { mtu: '1400' }, IPv4Data: [{ AddressSpace: '', Gateway: gw, Pool: pool }], IPv6Data: null };
  await must('/NetworkDriver.AllocateNetwork', alloc);
  const vipReq = { PoolID: G, Address: '', Options: { 'com.docker.network.ipam.serial': 'true' } };
  const vip = (await must('/IpamDriver.RequestAddress', vipReq)).Address as string;
  const lpoolReq = { AddressSpace: 'SwarmnetLocal', Pool: pool, SubPool: '', Options: {}, V6: false };
  const L = (await must('/IpamDriver.RequestPool', lpoolReq)).PoolID as string;
  const lgwReq = { PoolID: L, Address: gw.split('/')[0], Options: { RequestAddressType: 'com.docker.network.gateway' } };
  const lgw = (await must('/IpamDriver.RequestAddress', lgwReq)).Address as string;
  const createNet = { NetworkID: DNET, Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { mtu: '1400' } }, IPv4Data: [{ AddressSpace: 'l', Gateway: lgw, Pool: pool }], IPv6Data: [] };
  await must('/NetworkDriver.CreateNetwork', createNet);
  const addrReq = { PoolID: L, Address: '', Options: { 'com.docker.network.endpoint.macaddress': MAC } };
  const addr = (await must('/IpamDriver.RequestAddress', addrReq)).Address as string;
  const createEp = { NetworkID: DNET, EndpointID: EP, Interface: { Address: addr, AddressIPv6: '', MacAddress: MAC }, Options: {} };
  await must('/NetworkDriver.CreateEndpoint', createEp);
  const joinReq = { NetworkID: DNET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/fuzz0', Options: {} };
  await must('/NetworkDriver.Join', joinReq);
  const ep = { NetworkID: DNET, EndpointID: EP };

  const templates = new Map<string, unknown[]>();
  const add = (path: string, ...bodies: unknown[]) => templates.set(path, [...(templates.get(path) ?? []), ...bodies]);
  for (const f of FIXTURE) add(f.endpoint, f.request === null ? undefined : f.request);
  add('/IpamDriver.RequestPool', { AddressSpace: 'SwarmnetGlobal', Pool: pool, SubPool: '', Options: {}, V6: false }, lpoolReq, { AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: { 'flannel-id': 'fz' }, V6: false });
  add('/IpamDriver.RequestAddress', vipReq, lgwReq, addrReq, { PoolID: L, Address: addr.split('/')[0], Options: null }, { PoolID: G, Address: vip.split('/')[0], Options: {} });
  add('/IpamDriver.ReleaseAddress', { PoolID: L, Address: addr.split('/')[0] }, { PoolID: G, Address: vip.split('/')[0] });
  add('/IpamDriver.ReleasePool', { PoolID: L }, { PoolID: G });
  add('/NetworkDriver.AllocateNetwork', alloc);
  add('/NetworkDriver.CreateNetwork', createNet);
  add('/NetworkDriver.CreateEndpoint', createEp, { ...createEp, Interface: { Address: addr } });
  add('/NetworkDriver.Join', joinReq);
  for (const p of ['/NetworkDriver.EndpointOperInfo', '/NetworkDriver.Leave', '/NetworkDriver.DeleteEndpoint', '/NetworkDriver.RevokeExternalConnectivity']) add(p, ep);
  add('/NetworkDriver.ProgramExternalConnectivity', { ...ep, Options: { 'com.docker.network.portmap': [], 'com.docker.network.endpoint.exposedports': [] } });
  add('/NetworkDriver.DeleteNetwork', { NetworkID: DNET });
  add('/NetworkDriver.FreeNetwork', { NetworkID: DNET });
  add('/NetworkDriver.GwAllocCheck', { Options: {} });

  const seed = fuzzSeed();
  t.log(`seed ${seed} (FUZZ_SEED=${seed} replays these cases)`);
  const cases = new Cases(new Rng(seed), templates);
  const failures: string[] = [];
  const statuses = new Map<number, number>();
  const kinds = new Map<string, number>();
  const perRoute = new Map<string, number>();
  const serverErrors = new Map<string, number>();
  let next = 0;
  let activates = 0;
  const started = Date.now();
  const worker = async (): Promise<void> => {
    while (next < TOTAL && failures.length < 20) {
      const i = next++;
      // Every 500th request: the daemon is alive and Activate still answers exactly.
      if (i % 500 === 0) {
        const dead = alive(child);
        if (dead) { failures.push(`#${i}: ${dead}`); return; }
        const a = await httpCall(sock, { kind: 'activate', path: '/Plugin.Activate', method: 'POST', headers: {} });
        activates++;
        if (a.status !== 200 || a.body.toString() !== '{"Implements":["NetworkDriver","IpamDriver"]}') failures.push(`#${i}: Activate → ${a.status} ${a.body.toString().slice(0, 200)} ${a.error ?? ''}`);
        continue;
      }
      const c = cases.next();
      const rep = c.raw ? await rawCall(sock, c.raw, c.mayDrop === true) : await httpCall(sock, c);
      const bad = verdict(c, rep);
      statuses.set(rep.status, (statuses.get(rep.status) ?? 0) + 1);
      kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
      perRoute.set(c.path, (perRoute.get(c.path) ?? 0) + 1);
      if (rep.status >= 500) {
        const err = String((JSON.parse(rep.body.toString() || '{}') as { Err?: unknown }).Err).replace(/[0-9a-f]{8,}|\d+/g, 'N').slice(0, 160);
        serverErrors.set(`${rep.status} ${c.path.split('?')[0]}: ${err}`, (serverErrors.get(`${rep.status} ${c.path.split('?')[0]}: ${err}`) ?? 0) + 1);
      }
      if (bad) {
        const shown = c.raw ?? c.body ?? Buffer.alloc(0);
        failures.push(`#${i} ${c.kind} ${c.method} ${c.path.slice(0, 100)} ${JSON.stringify(shown.subarray(0, 300).toString('latin1'))}${shown.length > 300 ? `… (${shown.length} bytes)` : ''}: ${bad}`);
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const seconds = (Date.now() - started) / 1000;
  t.log(`${next} requests (${activates} of them Activate checks) in ${seconds.toFixed(1)} s, ${Math.round(next / seconds)}/s, ${IN_FLIGHT} in flight`);
  t.log(`statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
  t.log(`kinds: ${JSON.stringify(Object.fromEntries(kinds))}`);
  if (serverErrors.size) t.log(`5xx replies:\n  ${[...serverErrors].map(([k, n]) => `${n} × ${k}`).join('\n  ')}`);
  t.deepEqual(failures, [], `seed ${seed}`);
  t.true(next >= TOTAL, `all ${TOTAL} requests sent`);
  for (const r of ROUTES) {
    t.truthy(REPLY[r], `a reply schema for ${r}`);
    t.true((perRoute.get(r) ?? 0) > TOTAL / ROUTES.length / 8, `${r} fuzzed (${perRoute.get(r) ?? 0} requests)`);
  }

  // Still up, still exact.
  t.is(alive(child), undefined);
  t.deepEqual(await must('/Plugin.Activate', null), { Implements: ['NetworkDriver', 'IpamDriver'] });

  // The address plan holds after the run; nothing points at a network that is gone.
  const etcd = new Etcd3({ hosts: lab.etcd });
  t.teardown(() => etcd.close());
  t.deepEqual(await checkInvariants(etcd, PREFIX), [], 'etcd invariants after the run');
  const kv = await etcd.getAll().prefix(`${PREFIX}/`).strings();
  const nets = Object.entries(kv).filter(([k]) => k.startsWith(`${SW}networks/`)).map(([, v]) => JSON.parse(v) as { id: string; subnet: string; dockerNetworkId?: string });
  const netIds = new Set(nets.map((n) => n.id));
  const orphans = Object.keys(kv).filter((k) => {
    const m = /^\/[^/]+\/swarmnet\/(?:node-subnets|addresses|address-keys|leader-addresses)\/([^/]+)\//.exec(k) ?? /^\/[^/]+\/networks\/([^/]+)\//.exec(k);
    return m ? !netIds.has(m[1]!) : false;
  });
  t.deepEqual(orphans, [], 'no record of a network that does not exist');
  const endpoints = Object.entries(kv).filter(([k]) => k.startsWith(`${SW}endpoints/${NODE}/`)).map(([k, v]) => ({ id: k.slice(`${SW}endpoints/${NODE}/`.length), rec: JSON.parse(v) as { networkId: string } }));
  // An endpoint may outlive its network here (a ReleasePool before DeleteEndpoint: an order Docker never uses); the
  // teardown below shows DeleteEndpoint still removes it.
  const stray = endpoints.filter((e) => !netIds.has(e.rec.networkId)).length;
  t.log(`left by the run: ${nets.length} networks, ${endpoints.length} endpoints (${stray} of a released network), ${Object.keys(kv).filter((k) => k.startsWith(`${SW}addresses/`)).length} addresses, ${ourLinks().length} kernel links`);

  // Docker's teardown of whatever is left, through the API: every call succeeds, and then nothing remains.
  for (const e of endpoints) {
    await must('/NetworkDriver.Leave', { NetworkID: DNET, EndpointID: e.id });
    await must('/NetworkDriver.DeleteEndpoint', { NetworkID: DNET, EndpointID: e.id });
  }
  for (const n of nets) {
    const local = `local/${n.id}`;
    const global = `global/${n.id}`;
    const hexes = (p: string) => Object.keys(kv).filter((k) => k.startsWith(`${SW}${p}/${n.id}/`)).map((k) => k.slice(`${SW}${p}/${n.id}/`.length));
    const dotted = (h: string) => [24, 16, 8, 0].map((s) => (parseInt(h, 16) >>> s) & 0xff).join('.');
    for (const h of hexes('addresses')) await must('/IpamDriver.ReleaseAddress', { PoolID: local, Address: dotted(h) });
    await must('/NetworkDriver.DeleteNetwork', { NetworkID: n.dockerNetworkId ?? DNET });
    await must('/IpamDriver.ReleasePool', { PoolID: local });
    for (const h of hexes('leader-addresses')) await must('/IpamDriver.ReleaseAddress', { PoolID: global, Address: dotted(h) });
    await must('/NetworkDriver.FreeNetwork', { NetworkID: n.dockerNetworkId ?? DNET });
    await must('/IpamDriver.ReleasePool', { PoolID: global });
  }
  await waitFor(async () => {
    const left = ourLinks();
    if (left.length) throw new Error(`kernel links left: ${left.join(', ')}`);
  }, 60_000, 'kernel state removed');
  const all = Object.keys(await etcd.getAll().prefix(`${PREFIX}/`).strings());
  t.deepEqual(all.filter((k) => !k.startsWith(`${SW}nodes/`)), [], 'no etcd records left after the teardown');
  t.deepEqual(await checkInvariants(etcd, PREFIX), []);
  t.is(alive(child), undefined);
});
