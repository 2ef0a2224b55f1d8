import { createServer, type Server } from 'node:http';
import type { Logger } from '../common/log.js';
import { registry } from './metrics.js';
import type { Readiness } from './readiness.js';

/** /metrics (Prometheus), /healthz (process up, socket listening), /readyz (initialised) on METRICS_ADDRESS. */
export function startHealthServer(address: string, readiness: Readiness, log: Logger): Server {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0';
  const port = Number(address.slice(i + 1));
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ ok: true, ...readiness.status }));
    } else if (path === '/readyz') {
      const s = readiness.status;
      res.writeHead(s.ready ? 200 : 503, { 'Content-Type': 'application/json' }).end(JSON.stringify(s));
    } else {
      res.writeHead(404).end();
    }
  });
  server.on('error', (e) => log.error({ err: e.message, address }, 'metrics/health listener failed; continuing without it'));
  server.listen(port, host, () => log.info({ address }, 'metrics and health listening'));
  return server;
}
