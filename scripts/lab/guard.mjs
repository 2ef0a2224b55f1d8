// Keeps the sandbox's test range on its bridge: an nftables table in the root namespace that rejects anything
// routed between the bridge and any other interface (nodes have a default route via the bridge address, so without
// this a stray packet — e.g. dockerd trying a registry — could be forwarded out of the machine). Bridged traffic
// between nodes (same bridge in and out) and traffic to the host itself are untouched.
import { run } from '../lib/proc.mjs';

export const GUARD_TABLE = 'sn-sandbox';

export async function installGuard(bridge) {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(bridge)) throw new Error(`invalid bridge name ${JSON.stringify(bridge)}`);
  await removeGuard();
  const rules = `table inet ${GUARD_TABLE} {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "${bridge}" oifname != "${bridge}" reject with icmpx type admin-prohibited
    oifname "${bridge}" iifname != "${bridge}" reject with icmpx type admin-prohibited
  }
}
`;
  await run('nft', ['-f', '-'], { input: rules });
}

export async function removeGuard() {
  await run('nft', ['delete', 'table', 'inet', GUARD_TABLE], { allowFailure: true });
}
