// The steady client of the chaos suite: one container per node, on the swarmnet network, looking up the service name
// and sending HTTP requests to the service VIP and to a task on another node, about 10 times a second, one log line
// per round. Docker timestamps each line (`docker logs -t`), so a scenario reads back what users saw, when.
import { docker } from '../../scripts/lab/dockerd.mjs';
import type { SandboxNode } from '../../scripts/lab/sandbox.mjs';

export const KINDS = ['dns', 'vip', 'task'] as const;
export type Kind = (typeof KINDS)[number];
export interface Sample { at: number; ok: Record<Kind, boolean> }
export interface KindSummary { total: number; failed: number; longestOutageMs: number }
export type Summary = Record<Kind, KindSummary>;

/** busybox sh: $1 service name, $2 VIP, $3 task address. Prints "<dns><vip><task>" (0 = answered) per round. */
const LOOP = `
get() { r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 "$1" 8080 2>/dev/null); case "$r" in "HTTP/1."?" 200"*) return 0;; esac; return 1; }
while :; do
  nslookup -type=a "$1" >/dev/null 2>&1; d=$?
  get "$2"; v=$?
  get "$3"; t=$?
  echo "$d$v$t"
  usleep 100000
done`;

export const clientName = (node: SandboxNode): string => `chaos-client-${node.name}`;

/**
 * Starts (or restarts) the node's client. A standalone container's attachment to a swarm network is a task the
 * managers allocate and hand back within 20 s; right after a manager restart Swarm can miss that ("attaching to
 * network failed ... context deadline exceeded", moby/moby#41841, open) with nothing in any plugin's log, so that
 * refusal alone is retried, and said (a retry in a scenario's output is worth a look at the managers' logs).
 */
export async function startClient(node: SandboxNode, network: string, service: string, vip: string, task: string, log: (m: string) => void = () => {}): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await docker(node, ['rm', '-f', clientName(node)], { allowFailure: true });
    const r = await docker(node, ['run', '-d', '--name', clientName(node), '--network', network, 'swarmnet/busybox', 'sh', '-c', LOOP, 'sh', service, vip, task], { allowFailure: true });
    if (r.code === 0) return;
    const error = r.stderr.trim().split('\n')[0] ?? '';
    if (attempt >= 3 || !/attaching to network failed/.test(error)) throw new Error(`${node.name}: the client did not start: ${r.stderr.trim()}`);
    log(`${node.name}: the client's attachment timed out in Swarm (attempt ${attempt}): ${error}`);
  }
}

/** Every round the node's client logged (across restarts of its container). */
export async function samples(node: SandboxNode): Promise<Sample[]> {
  const r = await docker(node, ['logs', '-t', clientName(node)], { allowFailure: true });
  return parseSamples(r.stdout);
}

export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) ([01])([01])([01])$/.exec(line.trim());
    if (!m) continue;
    out.push({ at: Date.parse(m[1]!), ok: { dns: m[2] === '0', vip: m[3] === '0', task: m[4] === '0' } });
  }
  return out;
}

/**
 * Rounds within [from, to]: how many, how many failed, and the longest outage — from the last answered round
 * before a failure to the first answered one after it (to `to` when none came).
 */
export function summarize(all: Sample[], from: number, to: number): Summary {
  const inWindow = all.filter((s) => s.at >= from && s.at <= to);
  const out = {} as Summary;
  for (const k of KINDS) {
    let lastOk = from;
    let downSince: number | undefined;
    let longest = 0;
    let failed = 0;
    for (const s of inWindow) {
      if (s.ok[k]) {
        if (downSince !== undefined) longest = Math.max(longest, s.at - downSince);
        downSince = undefined;
        lastOk = s.at;
      } else {
        failed++;
        downSince ??= lastOk;
      }
    }
    if (downSince !== undefined) longest = Math.max(longest, to - downSince);
    out[k] = { total: inWindow.length, failed, longestOutageMs: longest };
  }
  return out;
}

export const describe = (s: Summary): string =>
  KINDS.map((k) => `${k} ${s[k].failed}/${s[k].total} failed${s[k].failed ? `, longest outage ${(s[k].longestOutageMs / 1000).toFixed(1)} s` : ''}`).join('; ');
