// The sandbox's image registry: Debian's docker-registry (distribution 2.8) on the underlay bridge address, storage
// in a directory of ours, detached like etcd. Nodes trust it as an insecure registry (plain HTTP on a private
// bridge); the plugin is pushed to it once and installed from it on every node, the way users install it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { stopPid } from '../lib/proc.mjs';
import { pidsWithArgv, startDetached } from './detached.mjs';

function answers(url) {
  return new Promise((resolve) => {
    const req = request(`${url}/v2/`, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
    req.end();
  });
}

/** Starts the registry on <address>:<port> with storage under dataDir. Resolves { pid, startTime, address, dataDir, logFile }. */
export async function startRegistry({ address, port = 5000, dataDir, timeoutMs = 30_000 }) {
  const url = `http://${address}:${port}`;
  if (await answers(url)) throw new Error(`a registry already answers on ${url}`);
  mkdirSync(join(dataDir, 'storage'), { recursive: true });
  const config = join(dataDir, 'config.yml');
  // JSON is YAML: no YAML writer needed.
  writeFileSync(config, `${JSON.stringify({
    version: 0.1,
    log: { level: 'warn' },
    storage: { filesystem: { rootdirectory: join(dataDir, 'storage') }, delete: { enabled: true } },
    http: { addr: `${address}:${port}` },
  }, null, 2)}\n`);
  const logFile = join(dataDir, 'registry.log');
  const p = await startDetached('docker-registry', ['serve', config], { what: `the registry on ${url}`, logFile, ready: () => answers(url), timeoutMs });
  return { ...p, address: `${address}:${port}`, dataDir, logFile };
}

export const stopRegistry = ({ pid, startTime: start }) => stopPid(pid, start, { graceMs: 10_000 });

/** Registry processes whose config is under `dir`: ours even when the state file is lost. */
export const registryPidsUnder = (dir) => pidsWithArgv((argv) => argv[0]?.endsWith('docker-registry') && argv[1] === 'serve' && argv[2]?.startsWith(`${dir}/`));
