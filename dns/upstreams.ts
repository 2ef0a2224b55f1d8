import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** A server; tcpPort when its TCP side listens elsewhere (Docker's embedded resolver uses two random ports). */
export interface Upstream { host: string; port: number; tcpPort?: number }

/** Docker forwards to at most 3 servers (maxExtDNS). */
export const MAX_UPSTREAMS = 3;

/** "ip", "ip:port", "[v6]:port" or a bare IPv6 → Upstream. */
export function parseUpstream(s: string): Upstream {
  const m = /^\[(.+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  const u = m ? { host: m[1]!, port: Number(m[2]) } : { host: s.replace(/^\[(.*)\]$/, '$1'), port: 53 };
  if (!isIP(u.host) || u.host.includes('%') || !Number.isInteger(u.port) || u.port < 1 || u.port > 65535) throw new Error(`bad server address "${s}"`);
  // Answers are matched by their source address as the kernel prints it: write IPv6 the same (RFC 5952) way, and
  // an IPv4-mapped address as the IPv4 address it is (it is reached, and answers, over IPv4).
  if (isIP(u.host) === 6) u.host = ipaddr.process(u.host).toString();
  return u;
}

export function nameservers(text: string): string[] {
  return text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((ip): ip is string => !!ip);
}

/**
 * The servers Docker uses for a container without --dns: the host's resolv.conf, or systemd-resolved's upstream
 * file when the only server is its 127.0.0.53 stub. Host-loopback servers are kept: Docker dials them from the
 * host namespace, and so do we (the resolver runs there). 127.0.0.11 (the embedded resolver itself) is dropped.
 */
export function hostUpstreams(path = '/etc/resolv.conf', systemdPath = '/run/systemd/resolve/resolv.conf'): Upstream[] {
  const read = (p: string): string[] => { try { return nameservers(readFileSync(p, 'utf8')); } catch { return []; } };
  let servers = read(path);
  if (servers.length === 1 && servers[0] === '127.0.0.53') {
    const real = read(systemdPath);
    if (real.length) servers = real;
  }
  return servers.filter((ip) => ip !== '127.0.0.11' && isIP(ip) && !ip.includes('%')).slice(0, MAX_UPSTREAMS).map((host) => parseUpstream(host));
}
