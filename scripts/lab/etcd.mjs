// The sandbox's etcd: Debian's etcd-server binary as a single member on the underlay bridge address (and loopback
// when that port is free), data in a directory of ours, detached so it outlives the command that started it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { run, stopPid } from '../lib/proc.mjs';
import { startDetached } from './detached.mjs';

/** tls: { ca, cert, key } files of a client certificate etcd trusts (an https endpoint). */
function health(url, tls) {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? httpsRequest : request;
    const opts = tls ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {};
    const req = get(`${url}/health`, { timeout: 2000, ...opts }, (res) => {
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
 * Starts etcd listening on http://<address>:<port> (+ 127.0.0.1:<port> if free) with a fresh member in dataDir, or
 * on its existing data. tls ({ ca, serverCert, serverKey, client: { ca, cert, key } }, makePki below): https, and
 * only clients with a certificate of that CA. Resolves { pid, startTime, endpoint, clientUrls, dataDir, logFile }
 * once /health answers.
 */
export async function startEtcd({ name = 'sn-etcd', address, port = 2379, peerPort = 2380, dataDir, tls, timeoutMs = 30_000 }) {
  const scheme = tls ? 'https' : 'http';
  const endpoint = `${scheme}://${address}:${port}`;
  if (await health(endpoint, tls?.client)) throw new Error(`an etcd already answers on ${endpoint}`);
  mkdirSync(dataDir, { recursive: true });
  const clientUrls = [endpoint];
  if (await portFree('127.0.0.1', port)) clientUrls.push(`${scheme}://127.0.0.1:${port}`);
  const peer = `http://${address}:${peerPort}`;
  const logFile = join(dataDir, '..', 'etcd.log');
  const p = await startDetached('etcd', ['--name', name, '--data-dir', join(dataDir, 'member-data'),
    '--listen-client-urls', clientUrls.join(','), '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`,
    '--initial-cluster-state', 'new',
    ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--client-cert-auth', '--trusted-ca-file', tls.ca] : []),
  ], { what: `etcd on ${endpoint}`, logFile, ready: () => health(endpoint, tls?.client), timeoutMs });
  return { ...p, endpoint, clientUrls, dataDir, logFile };
}

/**
 * A throwaway CA in dir (openssl) with etcd's server certificate for the given IPs and one client certificate per
 * name (CN = name: with --client-cert-auth, etcd takes it as the user when no password is given).
 */
export async function makePki(dir, serverIps, clients) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (n) => join(dir, n);
  const ssl = (...args) => run('openssl', args);
  await ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '7', '-subj', '/CN=sn-sandbox-ca', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  writeFileSync(f('server.ext'), `subjectAltName=${serverIps.map((ip) => `IP:${ip}`).join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const pki = { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clients: {} };
  for (const [who, ext] of [['server', 'server.ext'], ...clients.map((c) => [c, 'client.ext'])]) {
    await ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`));
    await ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '7', '-extfile', f(ext), '-out', f(`${who}.pem`));
    if (who !== 'server') pki.clients[who] = { ca: f('ca.pem'), cert: f(`${who}.pem`), key: f(`${who}.key`) };
  }
  return pki;
}

/**
 * Turns on etcd's auth: a root user, and `user` whose role may read and write only keys under `prefix`; both with a
 * password. Runs as the `root` client certificate (etcdctl).
 */
export async function enableAuth({ endpoint, root, rootPassword, user, password, prefix }) {
  const ctl = (...args) => run('etcdctl', ['--endpoints', endpoint, '--cacert', root.ca, '--cert', root.cert, '--key', root.key, ...args], { env: { ETCDCTL_API: '3' } });
  await ctl('user', 'add', 'root', '--interactive=false', '--new-user-password', rootPassword);
  await ctl('user', 'grant-role', 'root', 'root');
  await ctl('role', 'add', user);
  await ctl('role', 'grant-permission', user, '--prefix=true', 'readwrite', prefix);
  await ctl('user', 'add', user, '--interactive=false', '--new-user-password', password);
  await ctl('user', 'grant-role', user, user);
  await ctl('auth', 'enable');
}

export const stopEtcd = ({ pid, startTime: start }) => stopPid(pid, start, { graceMs: 10_000 });
export const etcdHealthy = (endpoint, tls) => health(endpoint, tls);

