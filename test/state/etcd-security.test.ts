import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { parseCidr } from '../../common/cidr.js';
import { setLogLevel } from '../../common/log.js';
import type { Config } from '../../plugin/config.js';
import { PluginError } from '../../plugin/protocol/contract.js';
import { Ipam } from '../../plugin/ipam/ipam.js';
import { createEtcdClient, NodeLease } from '../../plugin/state/etcd-client.js';
import { TestEtcd, hasEtcd } from '../helpers/etcd.js';
import { checkInvariants } from '../helpers/invariants.js';
import { randomPrefix } from '../ipam/setup.js';
import { until } from '../helpers/wait.js';

/** The production client (createEtcdClient) against an etcd with authentication and one with mutual TLS. */

setLogLevel('silent');
const hasOpenssl = existsSync('/usr/bin/openssl');
const dir = mkdtempSync(join(tmpdir(), 'swarmnet-etcd-sec-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

// requestTimeoutMs: the product's default (ETCD_REQUEST_TIMEOUT_MS)
const etcdConfig = (endpoint: string, extra: Partial<Config['etcd']>): Config['etcd'] => ({ endpoints: [endpoint], prefix: '/unused', requestTimeoutMs: 5000, ...extra });

/** One IPAM round trip plus a watch through `client`: what the plugin needs from etcd. */
async function exercise(client: Etcd3, prefix: string): Promise<{ pool: string; address: string; watched: number }> {
  const lease = new NodeLease(client, 10);
  try {
    const ipam = new Ipam({
      client, lease, prefix, node: 'sec', publicIp: '192.0.2.1', availableSubnets: [parseCidr('10.128.0.0/16')],
      networkSubnetSize: 20, hostSubnetSize: 25, vniStart: 6514, vtepMac: () => '02:00:00:00:00:01',
    });
    // Watched by another node's IPAM: the writer's own records reach its memory at once, without events.
    const observer = new Ipam({
      client, lease, prefix, node: 'sec-observer', publicIp: '192.0.2.2', availableSubnets: [parseCidr('10.128.0.0/16')],
      networkSubnetSize: 20, hostSubnetSize: 25, vniStart: 6514, vtepMac: () => '02:00:00:00:00:02',
    });
    let watched = 0;
    const cancel = await observer.watchRecords(() => void watched++);
    const p = await ipam.requestPool({ AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false });
    const lp = await ipam.requestPool({ AddressSpace: 'SwarmnetLocal', Pool: p.Pool, SubPool: '', Options: {}, V6: false });
    const a = await ipam.requestAddress({ PoolID: lp.PoolID, Address: '', Options: {} });
    await until(() => watched >= 3);
    await cancel();
    return { pool: p.Pool, address: a.Address, watched };
  } finally {
    await lease.close(true).catch(() => undefined);
  }
}

const etcdctl = (endpoint: string, ...args: string[]): void => void execFileSync('/usr/bin/etcdctl', [`--endpoints=${endpoint}`, ...args], { stdio: 'ignore' });

(hasEtcd ? test : test.skip)('auth: a user limited to its prefix works; a wrong password or no credentials get a clear 503', async (t) => {
  const etcd = await TestEtcd.start();
  const prefix = randomPrefix();
  try {
    etcdctl(etcd.endpoint, 'user', 'add', 'root', '--new-user-password=rootpw');
    etcdctl(etcd.endpoint, 'role', 'add', 'root');
    etcdctl(etcd.endpoint, 'user', 'grant-role', 'root', 'root');
    etcdctl(etcd.endpoint, 'user', 'add', 'sntplugin', '--new-user-password=s3cret');
    etcdctl(etcd.endpoint, 'role', 'add', 'sntplugin');
    etcdctl(etcd.endpoint, 'role', 'grant-permission', 'sntplugin', '--prefix=true', 'readwrite', `${prefix}/`);
    etcdctl(etcd.endpoint, 'user', 'grant-role', 'sntplugin', 'sntplugin');
    etcdctl(etcd.endpoint, 'auth', 'enable');

    const good = createEtcdClient(etcdConfig(etcd.endpoint, { username: 'sntplugin', password: 's3cret' }));
    try {
      const r = await exercise(good, prefix);
      t.is(r.pool, '10.128.0.0/20');
      t.regex(r.address, /^10\.128\.\d+\.\d+\/25$/, 'an address of the host subnet');
      t.true(r.watched >= 3, `watch events under auth: ${r.watched}`);
      t.deepEqual(await checkInvariants(good, prefix), []);
    } finally {
      good.close();
    }
    for (const creds of [{ username: 'sntplugin', password: 'wrong' }, {}]) {
      const bad = createEtcdClient(etcdConfig(etcd.endpoint, creds));
      const lease = new NodeLease(bad, 10);
      try {
        const ipam = new Ipam({
          client: bad, lease, prefix, node: 'x', publicIp: '192.0.2.2', availableSubnets: [parseCidr('10.128.0.0/16')],
          networkSubnetSize: 20, hostSubnetSize: 25, vniStart: 6514, vtepMac: () => '02:00:00:00:00:02',
        });
        const e = await t.throwsAsync(ipam.requestPool({ AddressSpace: 'SwarmnetGlobal', Pool: '', SubPool: '', Options: {}, V6: false }));
        t.is((e as PluginError).status, 503);
        t.regex(e!.message, /etcd is unavailable: .*(authentication failed|invalid auth|user name is empty|permission denied)/i);
      } finally {
        await lease.close().catch(() => undefined);
        bad.close();
      }
    }
  } finally {
    await etcd.stop();
  }
});

function makePki(): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (n: string): string => join(dir, n);
  const ssl = (...args: string[]): void => void execFileSync('/usr/bin/openssl', args, { stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=snt-test-ca', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=snt-${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`));
    ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f(`${who}.ext`), '-out', f(`${who}.pem`));
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

(hasEtcd && hasOpenssl ? test : test.skip)('TLS: mutual TLS with CA, client certificate and key files works; without a client certificate it is refused', async (t) => {
  const pki = makePki();
  const tlsOpts = { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey };
  const etcd = await TestEtcd.start({
    tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca },
    probe: { credentials: { rootCertificate: readFileSync(pki.ca), certChain: readFileSync(pki.clientCert), privateKey: readFileSync(pki.clientKey) } },
  });
  const prefix = randomPrefix();
  try {
    t.regex(etcd.endpoint, /^https:/);
    const good = createEtcdClient(etcdConfig(etcd.endpoint, tlsOpts));
    try {
      const r = await exercise(good, prefix);
      t.regex(r.address, /^10\.128\.\d+\.\d+\/25$/, 'an address of the host subnet');
      t.true(r.watched >= 3);
    } finally {
      good.close();
    }
    const noCert = createEtcdClient(etcdConfig(etcd.endpoint, { caFile: pki.ca }));
    try {
      await t.throwsAsync(noCert.get(`${prefix}/x`).string());
    } finally {
      noCert.close();
    }
  } finally {
    await etcd.stop();
  }
});
