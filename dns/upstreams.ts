import { readFileSync } from 'node:fs';

export interface Upstream { host: string; port: number }

/** "ip" or "ip:port" or "[v6]:port" → Upstream. */
export function parseUpstream(s: string): Upstream {
  const m = /^\[(.+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (m) return { host: m[1]!, port: Number(m[2]) };
  return { host: s, port: 53 };
}

/** Host nameservers from resolv.conf (Docker's fallback when a container has no --dns); loopback ones are unusable from a container and skipped. */
export function hostUpstreams(path = '/etc/resolv.conf'): Upstream[] {
  let text = '';
  try { text = readFileSync(path, 'utf8'); } catch { return []; }
  return text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((ip): ip is string => !!ip && !ip.startsWith('127.') && ip !== '::1')
    .map((host) => ({ host, port: 53 }));
}
