// The sandbox's Prometheus (`up --prometheus`, and the end-to-end suite): Debian's prometheus on the underlay bridge
// address, scraping every node's plugin (/metrics on the node's address) and loading monitoring/alerts.yml, data in
// a directory of ours, detached like etcd.
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { stopPid } from '../lib/proc.mjs';
import { pidsWithArgv, startDetached } from './detached.mjs';

function ready(url) {
  return new Promise((resolve) => {
    const req = request(`${url}/-/ready`, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
    req.end();
  });
}

/**
 * Starts Prometheus on <address>:<port> scraping `targets` (host:port) every `intervalS` seconds, with `ruleFiles`.
 * Resolves { pid, startTime, url, dataDir, logFile } once it is ready.
 */
export async function startPrometheus({ address, port = 9090, dataDir, targets, ruleFiles = [], intervalS = 5, timeoutMs = 60_000 }) {
  const url = `http://${address}:${port}`;
  if (await ready(url)) throw new Error(`a Prometheus already answers on ${url}`);
  mkdirSync(join(dataDir, 'data'), { recursive: true });
  const config = join(dataDir, 'prometheus.yml');
  // JSON is YAML.
  writeFileSync(config, `${JSON.stringify({
    global: { scrape_interval: `${intervalS}s`, evaluation_interval: `${intervalS}s` },
    rule_files: ruleFiles,
    scrape_configs: [{ job_name: 'swarmnet', static_configs: [{ targets }] }],
  }, null, 2)}\n`);
  const logFile = join(dataDir, 'prometheus.log');
  const p = await startDetached('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dataDir, 'data')}`, `--web.listen-address=${address}:${port}`,
    '--storage.tsdb.retention.time=1d'], { what: `Prometheus on ${url}`, logFile, ready: () => ready(url), timeoutMs, pollMs: 200 });
  return { ...p, url, dataDir, logFile };
}

export const stopPrometheus = ({ pid, startTime: start }) => stopPid(pid, start, { graceMs: 10_000 });

/** Prometheus processes whose config is under `dir`: ours even when the state file is lost. */
export const prometheusPidsUnder = (dir) => pidsWithArgv((argv) => argv[0]?.endsWith('prometheus') && argv[1] === `--config.file=${join(dir, 'prometheus', 'prometheus.yml')}`);
