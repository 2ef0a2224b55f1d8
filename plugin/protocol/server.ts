import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { Logger } from '../../common/log.js';
import { listenUnixPrivate } from '../../common/unix-socket.js';
import { ADDRESS_SPACE_GLOBAL, ADDRESS_SPACE_LOCAL, PluginError, type Driver } from './contract.js';
import * as S from './schemas.js';

export const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.1+json';
/** Docker's plugin bodies are a few KiB; anything near this is not from Docker. */
export const MAX_BODY_BYTES = 1024 * 1024;

export const ACTIVATE_RESPONSE = { Implements: ['NetworkDriver', 'IpamDriver'] };
export const NETWORK_CAPABILITIES = { Scope: 'global', ConnectivityScope: 'global', GwAllocChecker: false };
export const IPAM_CAPABILITIES = { RequiresMACAddress: true, RequiresRequestReplay: false };
export const DEFAULT_ADDRESS_SPACES = { LocalDefaultAddressSpace: ADDRESS_SPACE_LOCAL, GlobalDefaultAddressSpace: ADDRESS_SPACE_GLOBAL };

type Handler = (body: unknown) => Promise<unknown>;

interface Route {
  /** Calls that are answered without the driver (Docker needs them at once, even before init). */
  immediate?: boolean;
  handle: Handler;
}

function validated<T extends z.ZodType>(schema: T, fn: (req: z.infer<T>) => Promise<unknown>): Handler {
  return async (body) => {
    const parsed = schema.safeParse(body ?? {});
    if (!parsed.success) throw new PluginError(`invalid request: ${S.describeIssues(parsed.error)}`, 400);
    return fn(parsed.data);
  };
}

const empty = async (p: Promise<void>): Promise<Record<string, never>> => {
  await p;
  return {};
};

export function routes(driver: Driver): Map<string, Route> {
  const r = new Map<string, Route>();
  const constant = (v: unknown): Route => ({ immediate: true, handle: async () => v });
  r.set('/Plugin.Activate', constant(ACTIVATE_RESPONSE));
  r.set('/NetworkDriver.GetCapabilities', constant(NETWORK_CAPABILITIES));
  r.set('/IpamDriver.GetCapabilities', constant(IPAM_CAPABILITIES));
  r.set('/IpamDriver.GetDefaultAddressSpaces', constant(DEFAULT_ADDRESS_SPACES));

  const add = (path: string, handle: Handler) => r.set(path, { handle });
  add('/NetworkDriver.GwAllocCheck', validated(S.GwAllocCheckSchema, (q) => driver.gwAllocCheck(q)));
  add('/NetworkDriver.AllocateNetwork', validated(S.AllocateNetworkSchema, (q) => driver.allocateNetwork(q)));
  add('/NetworkDriver.FreeNetwork', validated(S.NetworkRequestSchema, (q) => empty(driver.freeNetwork(q))));
  add('/NetworkDriver.CreateNetwork', validated(S.CreateNetworkSchema, (q) => empty(driver.createNetwork(q))));
  add('/NetworkDriver.DeleteNetwork', validated(S.NetworkRequestSchema, (q) => empty(driver.deleteNetwork(q))));
  add('/NetworkDriver.CreateEndpoint', validated(S.CreateEndpointSchema, (q) => driver.createEndpoint(q)));
  add('/NetworkDriver.EndpointOperInfo', validated(S.EndpointRequestSchema, async (q) => ({ Value: await driver.endpointOperInfo(q) })));
  add('/NetworkDriver.DeleteEndpoint', validated(S.EndpointRequestSchema, (q) => empty(driver.deleteEndpoint(q))));
  add('/NetworkDriver.Join', validated(S.JoinSchema, (q) => driver.join(q)));
  add('/NetworkDriver.Leave', validated(S.EndpointRequestSchema, (q) => empty(driver.leave(q))));
  add('/NetworkDriver.DiscoverNew', validated(S.DiscoverySchema, (q) => empty(driver.discoverNew(q))));
  add('/NetworkDriver.DiscoverDelete', validated(S.DiscoverySchema, (q) => empty(driver.discoverDelete(q))));
  add('/NetworkDriver.ProgramExternalConnectivity', validated(S.ExternalConnectivitySchema, (q) => empty(driver.programExternalConnectivity(q))));
  add('/NetworkDriver.RevokeExternalConnectivity', validated(S.EndpointRequestSchema, (q) => empty(driver.revokeExternalConnectivity(q))));
  add('/IpamDriver.RequestPool', validated(S.RequestPoolSchema, (q) => driver.requestPool(q)));
  add('/IpamDriver.ReleasePool', validated(S.PoolRequestSchema, (q) => empty(driver.releasePool(q))));
  add('/IpamDriver.RequestAddress', validated(S.RequestAddressSchema, (q) => driver.requestAddress(q)));
  add('/IpamDriver.ReleaseAddress', validated(S.ReleaseAddressSchema, (q) => empty(driver.releaseAddress(q))));
  return r;
}

export interface ServerOptions {
  driver: Driver;
  log: Logger;
  /** Deadline for one driver call; Docker's own client gives up at 30 s. */
  callTimeoutMs?: number;
  /** Observes every call (metrics). */
  onCall?: (endpoint: string, status: number, seconds: number, err?: string) => void;
}

class BodyError extends PluginError {}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        failed = true;
        reject(new BodyError(`request body larger than ${MAX_BODY_BYTES} bytes`, 413));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString('utf8').trim();
      // Docker sends an empty body (not "{}") for calls without arguments.
      if (text === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new BodyError(`invalid JSON body: ${(e as Error).message}`, 400));
      }
    });
    req.on('error', (e) => {
      if (!failed) reject(new BodyError(`reading request: ${e.message}`, 400));
    });
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The raw reply to bytes Node's HTTP parser refused (bad request line, header or framing): a status and, like every
 * other refusal, a JSON body with Err, so a client reading it gets a reason and not an empty body.
 */
export function malformedRequestReply(err: NodeJS.ErrnoException): string {
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const text = JSON.stringify({ Err: `malformed HTTP request (${err.code ?? 'unknown'}): ${err.message}` });
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PluginError(`${what} did not finish within ${ms} ms`, 504)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** An HTTP server that speaks Docker's plugin protocol; call `listen(socketPath)` on it. */
export function createPluginServer(opts: ServerOptions): Server {
  const table = routes(opts.driver);
  const timeout = opts.callTimeoutMs ?? 25_000;
  const server = createServer((req, res) => {
    const started = process.hrtime.bigint();
    const path = (req.url ?? '').split('?')[0] ?? '';
    const route = table.get(path);
    const finish = (status: number, body: unknown, err?: string) => {
      send(res, status, body);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      opts.onCall?.(path, status, seconds, err);
    };
    if (!route) {
      req.resume();
      opts.log.warn({ path, method: req.method }, 'unknown plugin endpoint');
      finish(404, { Err: `unknown endpoint ${JSON.stringify(path.slice(0, 200))}; swarmnet implements NetworkDriver and IpamDriver` });
      return;
    }
    if (req.method !== 'POST') {
      req.resume();
      finish(405, { Err: `${path} expects POST, got ${req.method}` });
      return;
    }
    readBody(req)
      .then((body) => withDeadline(route.handle(body), timeout, path))
      .then(
        (result) => finish(200, result ?? {}),
        (e: unknown) => {
          const status = e instanceof PluginError ? e.status : 500;
          const message = e instanceof Error ? e.message : String(e);
          if (status >= 500) opts.log.error({ path, status, err: message }, 'plugin call failed');
          else opts.log.info({ path, status, err: message }, 'plugin call rejected');
          finish(status, { Err: message }, message);
        },
      );
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // As Node's default, never after a reply has started on this connection (that would corrupt it).
    const inFlight = (socket as { _httpMessage?: ServerResponse })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) socket.end(malformedRequestReply(err));
    else socket.destroy();
  });
  return server;
}

/** Listens on a root-only unix socket (0600, born so: common/unix-socket.ts), replacing a stale one. */
export async function listenUnix(server: Server, socketPath: string): Promise<void> {
  await listenUnixPrivate(server, socketPath);
}
