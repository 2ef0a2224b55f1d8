import { runIn } from '../common/exec.js';

/**
 * Deletes conntrack entries of flows a VIP sent to a backend that left. NAT is decided once per flow, so without
 * this a UDP client keeps talking to a removed backend for as long as it keeps sending (moby#36878: 5 minutes of
 * black hole); a TCP flow to a container that is gone is cut at once (its next packet is a new flow: a live
 * backend answers it with a reset) instead of hanging until its timeout.
 */
export async function deleteFlows(vip: string, backend: string, proto: 'udp' | 'tcp', netns?: string): Promise<number> {
  const args = ['-D', '-p', proto, '--orig-dst', vip, '--reply-src', backend];
  // Exit status 1 with "0 flow entries have been deleted" is the common case: nothing to delete.
  const r = await runIn(netns, 'conntrack', args, { allowFailure: true });
  const m = /(\d+) flow entries have been deleted/.exec(r.stderr + r.stdout);
  if (!m && r.code !== 0) throw new Error(`conntrack ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return m ? Number(m[1]) : 0;
}
