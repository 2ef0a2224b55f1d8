import test from 'ava';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { pino } from 'pino';
import { createPluginServer, listenUnix, CONTENT_TYPE } from '../../plugin/protocol/server.js';
import type { Driver } from '../../plugin/protocol/contract.js';
import { PluginError } from '../../plugin/protocol/contract.js';
import { callPlugin } from '../helpers/plugin-client.js';

interface Call { endpoint: string; request: unknown }
const fixture: Call[] = readFileSync(new URL('../fixtures/docker-20.10-swarm-plugin-calls.jsonl', import.meta.url), 'utf8')
  .split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Call);

/** A driver that records what reached it and answers with Docker-valid shapes. */
function recordingDriver(calls: [string, unknown][]): Driver {
  const rec = (name: string) => async (q: unknown) => { calls.push([name, q]); };
  return {
    allocateNetwork: async (q) => { calls.push(['allocateNetwork', q]); return { Options: { ...(q.Options ?? {}) } }; },
    freeNetwork: rec('freeNetwork'),
    createNetwork: rec('createNetwork'),
    deleteNetwork: rec('deleteNetwork'),
    createEndpoint: async (q) => { calls.push(['createEndpoint', q]); return {}; },
    endpointOperInfo: async (q) => { calls.push(['endpointOperInfo', q]); return { ip_address: '10.0.0.2' }; },
    deleteEndpoint: rec('deleteEndpoint'),
    join: async (q) => { calls.push(['join', q]); return { InterfaceName: { SrcName: 'swve0', DstPrefix: 'eth' }, StaticRoutes: [{ Destination: '10.77.0.0/16', RouteType: 0, NextHop: '10.77.0.1' }] }; },
    leave: rec('leave'),
    discoverNew: rec('discoverNew'),
    discoverDelete: rec('discoverDelete'),
    programExternalConnectivity: rec('programExternalConnectivity'),
    revokeExternalConnectivity: rec('revokeExternalConnectivity'),
    gwAllocCheck: async () => ({ SkipIPv4: false, SkipIPv6: false }),
    requestPool: async (q) => { calls.push(['requestPool', q]); return { PoolID: 'global/10.77.0.0-16', Pool: '10.77.0.0/16', Data: {} }; },
    releasePool: rec('releasePool'),
    requestAddress: async (q) => { calls.push(['requestAddress', q]); return { Address: '10.77.0.5/25', Data: {} }; },
    releaseAddress: rec('releaseAddress'),
  };
}

async function start(driver: Driver): Promise<{ socket: string; server: Server; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'swn-proto-'));
  const socket = join(dir, 'p.sock');
  const server = createPluginServer({ driver, log: pino({ level: 'silent' }) });
  await listenUnix(server, socket);
  return { socket, server, dir };
}

function stop(s: { server: Server; dir: string }) {
  s.server.close();
  rmSync(s.dir, { recursive: true, force: true });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

test('replays every request of the Docker 20.10 swarm fixture with 200 and the expected reply shape', async (t) => {
  const calls: [string, unknown][] = [];
  const s = await start(recordingDriver(calls));
  t.teardown(() => stop(s));
  t.true(fixture.length > 60, 'fixture loaded');
  for (const c of fixture) {
    const body = c.request === null ? undefined : JSON.stringify(c.request);
    const r = await callPlugin(s.socket, c.endpoint, body);
    t.is(r.status, 200, `${c.endpoint} ${body ?? '(empty body)'} → ${JSON.stringify(r.body)}`);
    t.is(r.contentType, CONTENT_TYPE);
    t.true(isObj(r.body), `${c.endpoint} replies a JSON object`);
    const b = r.body as Record<string, unknown>;
    t.false('Err' in b && b.Err !== '', `${c.endpoint} has no error`);
    switch (c.endpoint) {
      case '/NetworkDriver.GetCapabilities':
        t.is(b.Scope, 'global');
        t.is(b.ConnectivityScope, 'global');
        break;
      case '/IpamDriver.GetCapabilities':
        t.is(b.RequiresMACAddress, true);
        break;
      case '/IpamDriver.GetDefaultAddressSpaces':
        t.is(typeof b.LocalDefaultAddressSpace, 'string');
        t.is(typeof b.GlobalDefaultAddressSpace, 'string');
        t.not(b.LocalDefaultAddressSpace, b.GlobalDefaultAddressSpace);
        break;
      case '/IpamDriver.RequestPool':
        t.regex(String(b.PoolID), /.+/);
        t.regex(String(b.Pool), /^\d+\.\d+\.\d+\.\d+\/\d+$/);
        break;
      case '/IpamDriver.RequestAddress':
        t.regex(String(b.Address), /^\d+\.\d+\.\d+\.\d+\/\d+$/, 'IPAM addresses are CIDR strings');
        break;
      case '/NetworkDriver.AllocateNetwork': {
        const req = c.request as { Options: Record<string, string> };
        t.deepEqual(b.Options, req.Options, 'AllocateNetwork echoes the user -o options (workers only see the reply)');
        break;
      }
      case '/NetworkDriver.Join':
        t.true(isObj(b.InterfaceName));
        break;
      case '/NetworkDriver.EndpointOperInfo':
        t.true(isObj(b.Value));
        break;
      default:
        t.deepEqual(b, {}, `${c.endpoint} replies {}`);
    }
  }
  // Every call except the four answered by the server itself reached the driver, with null Options intact.
  const constant = new Set(['/NetworkDriver.GetCapabilities', '/IpamDriver.GetCapabilities', '/IpamDriver.GetDefaultAddressSpaces', '/Plugin.Activate']);
  t.is(calls.length, fixture.filter((c) => !constant.has(c.endpoint)).length);
  const nullOpts = calls.find(([n, q]) => n === 'requestAddress' && (q as { Options: unknown }).Options === null);
  t.truthy(nullOpts, 'a RequestAddress with Options null was accepted and passed through');
});

test('Activate declares both driver types', async (t) => {
  const s = await start(recordingDriver([]));
  t.teardown(() => stop(s));
  const r = await callPlugin(s.socket, '/Plugin.Activate');
  t.is(r.status, 200);
  t.deepEqual(r.body, { Implements: ['NetworkDriver', 'IpamDriver'] });
});

const bad: [string, string, string | Buffer, number, RegExp][] = [
  ['invalid JSON', '/IpamDriver.RequestPool', '{"AddressSpace":', 400, /invalid JSON/],
  ['JSON that is not an object', '/NetworkDriver.CreateNetwork', '[1,2,3]', 400, /invalid request/],
  ['wrong type', '/NetworkDriver.CreateNetwork', '{"NetworkID": 12}', 400, /NetworkID/],
  ['missing field', '/NetworkDriver.Join', '{"NetworkID":"n","EndpointID":"e"}', 400, /SandboxKey: required field is missing/],
  ['empty string id', '/NetworkDriver.DeleteNetwork', '{"NetworkID":""}', 400, /NetworkID/],
  ['missing body where one is needed', '/IpamDriver.RequestAddress', '', 400, /PoolID/],
  ['wrong option value type', '/IpamDriver.RequestPool', '{"AddressSpace":"g","Options":{"a":1}}', 400, /Options\.a/],
  ['null where an object is needed', '/IpamDriver.ReleaseAddress', 'null', 400, /PoolID/],
  ['unknown endpoint', '/NetworkDriver.Explode', '{}', 404, /unknown endpoint/],
  ['unknown subsystem', '/VolumeDriver.Create', '{}', 404, /unknown endpoint/],
  ['huge body', '/IpamDriver.RequestPool', Buffer.alloc(2 * 1024 * 1024, 0x20), 413, /larger than/],
  ['binary garbage', '/IpamDriver.RequestPool', Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x7b]), 400, /invalid JSON/],
];

for (const [name, path, body, status, re] of bad) {
  test(`bad input: ${name} → ${status} with {"Err"}`, async (t) => {
    const calls: [string, unknown][] = [];
    const s = await start(recordingDriver(calls));
    t.teardown(() => stop(s));
    const r = await callPlugin(s.socket, path, body);
    t.is(r.status, status);
    t.true(isObj(r.body));
    t.regex(String((r.body as { Err?: unknown }).Err), re);
    t.is(calls.length, 0, 'nothing reached the driver');
    // The server is still up and answering.
    t.is((await callPlugin(s.socket, '/Plugin.Activate')).status, 200);
  });
}

test('non-POST methods are refused', async (t) => {
  const s = await start(recordingDriver([]));
  t.teardown(() => stop(s));
  const r = await callPlugin(s.socket, '/IpamDriver.RequestPool', undefined, 'GET');
  t.is(r.status, 405);
});

test('driver errors become non-200 with Err (IPAM replies with 200+Err would count as success in Docker)', async (t) => {
  const driver = recordingDriver([]);
  driver.requestAddress = async () => { throw new PluginError('pool exhausted: no free address in 10.77.0.0/25', 400); };
  driver.releasePool = async () => { throw new Error('etcd unreachable'); };
  const s = await start(driver);
  t.teardown(() => stop(s));
  const a = await callPlugin(s.socket, '/IpamDriver.RequestAddress', '{"PoolID":"p","Address":""}');
  t.is(a.status, 400);
  t.deepEqual(a.body, { Err: 'pool exhausted: no free address in 10.77.0.0/25' });
  const b = await callPlugin(s.socket, '/IpamDriver.ReleasePool', '{"PoolID":"p"}');
  t.is(b.status, 500);
  t.deepEqual(b.body, { Err: 'etcd unreachable' });
});

test('a driver call that hangs gets a 504 within the deadline, and the server keeps serving', async (t) => {
  const driver = recordingDriver([]);
  driver.join = () => new Promise(() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'swn-proto-'));
  const socket = join(dir, 'p.sock');
  const server = createPluginServer({ driver, log: pino({ level: 'silent' }), callTimeoutMs: 200 });
  await listenUnix(server, socket);
  t.teardown(() => stop({ server, dir }));
  const r = await callPlugin(socket, '/NetworkDriver.Join', '{"NetworkID":"n","EndpointID":"e","SandboxKey":"/var/run/docker/netns/x"}');
  t.is(r.status, 504);
  t.regex(String((r.body as { Err: string }).Err), /did not finish within 200 ms/);
  t.is((await callPlugin(socket, '/Plugin.Activate')).status, 200);
});

test('many concurrent malformed and valid requests: every one answered, none crash the server', async (t) => {
  const calls: [string, unknown][] = [];
  const s = await start(recordingDriver(calls));
  t.teardown(() => stop(s));
  const bodies = ['{', '{"PoolID":1}', 'null', '"x"', '{"PoolID":"p","Address":""}', '\u0000\u0001', '{"PoolID":"p","Options":{"x":{}}}'];
  const results = await Promise.all(
    Array.from({ length: 300 }, (_, i) => callPlugin(s.socket, '/IpamDriver.RequestAddress', bodies[i % bodies.length])),
  );
  const ok = results.filter((r) => r.status === 200).length;
  t.is(ok, Math.ceil((300 - 4) / 7), 'only the valid body succeeded');
  t.true(results.every((r) => r.status === 200 || r.status === 400));
});

/** Raw bytes on a fresh connection; what the server wrote before closing it. */
function raw(socket: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(socket);
    let got = '';
    c.on('data', (b) => { got += b.toString('latin1'); });
    c.on('close', () => resolve(got));
    c.on('error', reject);
    c.write(bytes);
  });
}

test('malformed HTTP (found by the plugin API fuzz): a status and a JSON body with Err, as every other refusal', async (t) => {
  const s = await start(recordingDriver([]));
  t.teardown(() => stop(s));
  const cases: [string, string, RegExp][] = [
    ['a bad header name', 'POST /Plugin.Activate HTTP/1.1\r\nBad Header: x\r\n\r\n', /^HTTP\/1\.1 400 Bad Request\r\n/],
    ['not HTTP', '\u00ff\u0001garbage\r\n\r\n', /^HTTP\/1\.1 400 Bad Request\r\n/],
    ['headers over the limit', `POST /Plugin.Activate HTTP/1.1\r\nX: ${'y'.repeat(100_000)}\r\n\r\n`, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/],
  ];
  for (const [what, bytes, status] of cases) {
    const reply = await raw(s.socket, bytes);
    t.regex(reply, status, what);
    t.regex(reply, new RegExp(`\r\nContent-Type: ${CONTENT_TYPE.replace(/[.+]/g, '\\$&')}\r\n`), what);
    const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as { Err: string };
    t.regex(body.Err, /^malformed HTTP request \(HPE_[A-Z_]+\): /, what);
  }
  t.is((await callPlugin(s.socket, '/Plugin.Activate')).status, 200);
});
