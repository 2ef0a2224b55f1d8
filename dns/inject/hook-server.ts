import { rmSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from '../../common/log.js';
import { listenUnixPrivate } from '../../common/unix-socket.js';
import type { HookAnswer } from './injector.js';
import type { NetnsId } from './kernel.js';

/**
 * The plugin's end of the createContainer hook (hook/native/hook.c): a root-only unix socket in the plugin's
 * directory, which Docker shares with the host as /run/docker/plugins/<plugin id>/. One request line per connection,
 * `{"id":"<container id>","bundle":"<path>","netns":{"dev":D,"ino":I}}`, one answer line,
 * `{"ok":true,"served":true|false}` or `{"ok":false,"error":"…"}`. Anything else is answered with an error and
 * closed; nothing a client sends can stop the server.
 */
export interface HookServerOptions {
  path: string;
  /** Serves the namespace if it is one of ours (DnsInjector.hook). */
  handle: (ns: NetnsId, containerId: string) => Promise<HookAnswer>;
  log: Logger;
  /** Answer no later than this (the hook itself waits 5 s). Default 4.5 s. */
  answerWithinMs?: number;
}

const MAX_LINE = 8192;

export interface HookRequest { id: string; ns: NetnsId }

/** Validates one request line. */
export function parseHookRequest(line: string): HookRequest | string {
  let v: unknown;
  try { v = JSON.parse(line); } catch { return 'request is not JSON'; }
  const o = v as { id?: unknown; netns?: { dev?: unknown; ino?: unknown } };
  if (!o || typeof o !== 'object' || typeof o.id !== 'string' || !/^[A-Za-z0-9_.-]{1,128}$/.test(o.id)) return 'request has no valid "id"';
  const dev = o.netns?.dev;
  const ino = o.netns?.ino;
  if (!Number.isSafeInteger(dev) || !Number.isSafeInteger(ino) || (dev as number) < 0 || (ino as number) <= 0) return 'request has no valid "netns" {dev, ino}';
  return { id: o.id, ns: { dev: dev as number, ino: ino as number } };
}

export async function startHookServer(o: HookServerOptions): Promise<{ close(): Promise<void> }> {
  const within = o.answerWithinMs ?? 4500;
  const server = net.createServer((c) => {
    let buf = '';
    let done = false;
    const answer = (a: object): void => {
      if (done) return;
      done = true;
      c.end(`${JSON.stringify(a)}\n`);
    };
    c.setTimeout(within, () => c.destroy());
    c.on('error', () => c.destroy());
    c.on('data', (d: Buffer) => {
      if (done) return;
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > MAX_LINE) answer({ ok: false, error: 'request too long' });
        return;
      }
      const req = parseHookRequest(buf.slice(0, nl));
      if (typeof req === 'string') {
        o.log.warn({ err: req }, 'bad hook request');
        answer({ ok: false, error: req });
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<HookAnswer>((r) => { timer = setTimeout(() => r({ served: false, error: `not served within ${within} ms` }), within - 100); });
      Promise.race([o.handle(req.ns, req.id), late]).then(
        (a) => answer(a.error ? { ok: false, error: a.error } : { ok: true, served: a.served }),
        (e: Error) => answer({ ok: false, error: e.message }),
      ).finally(() => clearTimeout(timer));
    });
  });
  server.on('error', (e) => o.log.warn({ err: e.message }, 'hook socket error'));
  await listenUnixPrivate(server, o.path);
  return {
    close: () => new Promise<void>((r) => { server.close(() => r()); rmSync(o.path, { force: true }); }),
  };
}
