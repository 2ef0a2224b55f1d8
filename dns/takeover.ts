import { run } from '../common/exec.js';
import { checkContainerNetns } from './netns-path.js';

/**
 * How a container's queries to 127.0.0.11:53 reach our resolver instead of Docker's: our sockets are bound to
 * 127.0.0.11:53 itself inside the container's network namespace (dns/udp-batch.ts `netns`), and this table marks
 * that traffic NOTRACK before conntrack sees it. Untracked packets skip NAT, so Docker's DNAT rule (127.0.0.11:53 →
 * its own random port) never applies and the packets are delivered to our sockets as addressed.
 *
 * Why not a DNAT of our own in front of Docker's: no conntrack entry per query is cheaper (about 10 % more queries
 * per second in `npm run bench:dns`), cannot fill the conntrack table, and avoids the UDP conntrack insertion race
 * behind the well-known 5-second DNS timeouts (Kubernetes' NodeLocal DNSCache uses NOTRACK for the same reasons).
 * Removing the table gives the container back to Docker's resolver. The table must only exist while our listener
 * does: with the table and without the listener the container has no DNS (Docker's DNAT no longer applies). So:
 * open the listener, then apply; remove, then close (docs/dns.md).
 *
 * The rules are rendered here (pure) and applied with one `nft -f` transaction inside the namespace: creating
 * and replacing are the same idempotent operation, and a half-applied table cannot exist.
 */
export interface TakeoverOptions {
  /** The nft table (family ip); default swarmnet-dns. */
  table?: string;
  /** The address containers query; default 127.0.0.11 (Docker's resolver address in resolv.conf). */
  address?: string;
  port?: number;
  /** Only queries from these source addresses/CIDRs (the benchmark keeps Docker's resolver reachable side by
   * side); default every source. */
  sources?: string[];
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,30}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const CIDR4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}(\/([12]?\d|3[0-2]))?$/;

function settings(o: TakeoverOptions): { table: string; address: string; port: number; sources: string[] } {
  const table = o.table ?? 'swarmnet-dns';
  const address = o.address ?? '127.0.0.11';
  const port = o.port ?? 53;
  const sources = o.sources ?? [];
  if (!NAME.test(table)) throw new Error(`takeover: bad table name "${table}"`);
  if (!IPV4.test(address)) throw new Error(`takeover: address must be an IPv4 literal, got "${address}"`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`takeover: bad port ${port}`);
  for (const s of sources) if (!CIDR4.test(s)) throw new Error(`takeover: bad source "${s}"`);
  return { table, address, port, sources };
}

/** The nft script that creates or replaces the takeover table (one transaction). */
export function takeoverRules(o: TakeoverOptions = {}): string {
  const { table, address, port, sources } = settings(o);
  const from = sources.length ? `ip saddr { ${sources.join(', ')} } ` : '';
  const to = sources.length ? `ip daddr { ${sources.join(', ')} } ` : '';
  // Only the output hook: queries and answers are both sent on lo, and a packet that was marked untracked on the
  // way out stays so when lo delivers it (conntrack skips packets that already carry a state). Two rules per
  // packet, since every packet of the container passes this chain.
  const rules = [
    `${from}ip daddr ${address} meta l4proto { tcp, udp } th dport ${port} notrack`,
    `${to}ip saddr ${address} meta l4proto { tcp, udp } th sport ${port} notrack`,
  ];
  // "table; delete table; table {...}" replaces atomically whether or not the table existed.
  return `table ip ${table}\ndelete table ip ${table}\ntable ip ${table} {\n`
    + `  chain output {\n    type filter hook output priority raw; policy accept;\n${rules.map((r) => `    ${r}\n`).join('')}  }\n}\n`;
}

function nsArgs(netns: string, args: string[]): string[] {
  if (!netns.startsWith('/')) throw new Error(`takeover: netns must be a path, got "${netns}"`);
  return [`--net=${netns}`, 'nft', ...args];
}

/** Creates or replaces the takeover table in the namespace at netns (e.g. /proc/<pid>/ns/net). */
export async function applyTakeover(netns: string, o: TakeoverOptions = {}): Promise<void> {
  checkContainerNetns(netns, 'takeover');
  const script = takeoverRules(o);
  const r = await run('nsenter', nsArgs(netns, ['-f', '-']), { input: script, allowFailure: true });
  if (r.code !== 0) throw new Error(`takeover: nft in ${netns} failed: ${r.stderr.trim() || r.stdout.trim()}`);
}

/** Whether the takeover table is in the namespace with its rules (someone may have flushed or deleted it). */
export async function hasTakeover(netns: string, o: TakeoverOptions = {}): Promise<boolean> {
  const { table } = settings(o);
  const r = await run('nsenter', nsArgs(netns, ['list', 'table', 'ip', table]), { allowFailure: true });
  return r.code === 0 && /\bnotrack\b/.test(r.stdout);
}

/** Removes the takeover table; absent is fine (already removed, or the namespace's container is gone). */
export async function removeTakeover(netns: string, o: TakeoverOptions = {}): Promise<void> {
  const { table } = settings(o);
  const r = await run('nsenter', nsArgs(netns, ['-f', '-']), { input: `table ip ${table}\ndelete table ip ${table}\n`, allowFailure: true });
  if (r.code !== 0 && !/No such file|does not exist|No such process/i.test(r.stderr)) {
    throw new Error(`takeover: removing ${table} in ${netns} failed: ${r.stderr.trim()}`);
  }
}
