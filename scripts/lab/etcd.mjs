// The sandbox's etcd: Debian's etcd-server binary as a single member on the underlay bridge address (and loopback
// when that port is free), data in a directory of ours, detached so it outlives the command that started it.
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stopPid } from '../lib/proc.mjs';
import { startDetached } from './detached.mjs';

function health(url) {
  return new Promise((resolve) => {
    const req = request(`${url}/health`, { timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (b) => { body += b; });
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
    req.end();
  });
}

const portFree = (host, port) => new Promise((resolve) => {
  const s = createServer();
  s.once('error', () => resolve(false));
  s.listen(port, host, () => s.close(() => resolve(true)));
});

/**
 * Starts etcd listening on http://<address>:<port> (+ 127.0.0.1:<port> if free) with a fresh member in dataDir.
 * Resolves { pid, startTime, endpoint, clientUrls, dataDir, logFile } once /health answers.
 */
export async function startEtcd({ name = 'sn-etcd', address, port = 2379, peerPort = 2380, dataDir, timeoutMs = 30_000 }) {
  const endpoint = `http://${address}:${port}`;
  if (await health(endpoint)) throw new Error(`an etcd already answers on ${endpoint}`);
  mkdirSync(dataDir, { recursive: true });
  const clientUrls = [endpoint];
  if (await portFree('127.0.0.1', port)) clientUrls.push(`http://127.0.0.1:${port}`);
  const peer = `http://${address}:${peerPort}`;
  const logFile = join(dataDir, '..', 'etcd.log');
  const p = await startDetached('etcd', ['--name', name, '--data-dir', join(dataDir, 'member-data'),
    '--listen-client-urls', clientUrls.join(','), '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`,
    '--initial-cluster-state', 'new'], { what: `etcd on ${endpoint}`, logFile, ready: () => health(endpoint), timeoutMs });
  return { ...p, endpoint, clientUrls, dataDir, logFile };
}

export const stopEtcd = ({ pid, startTime: start }) => stopPid(pid, start, { graceMs: 10_000 });
export const etcdHealthy = (endpoint) => health(endpoint);

