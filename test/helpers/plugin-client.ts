import { request } from 'node:http';

export interface PluginReply {
  status: number;
  body: unknown;
  contentType: string | undefined;
}

/** POSTs to a plugin endpoint over a unix socket, as Docker does (no Content-Type; raw body or none). */
export function callPlugin(socketPath: string, path: string, body?: string | Buffer, method = 'POST'): Promise<PluginReply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          /* keep raw text */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, contentType: res.headers['content-type'] });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}
