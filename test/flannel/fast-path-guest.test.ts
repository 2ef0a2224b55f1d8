// The overlay's flowtable fast path against a kernel that has flowtables. This machine's kernel has none
// (CONFIG_NF_FLOW_TABLE unset), so the checks run in the IPVS tests' throw-away guest: Debian's cloud kernel under
// qemu (scripts/lab/ipvs-guest.mjs), with the overlay and test/flannel/fast-path-guest-checks.ts bundled into one
// file. One boot runs every check; each prints a marker line that one test below reads.
import { guestChecks } from '../helpers/guest-checks.js';

guestChecks({
  title: 'overlay fast path in a guest kernel',
  checksFile: new URL('./fast-path-guest-checks.ts', import.meta.url),
  marker: 'FAST-TEST',
  checks: ['programmed', 'offloaded', 'vip-offloaded', 'isolation', 'drift-repaired', 'ports-follow-containers', 'restart-adopts', 'network-removed', 'off', 'last-network-removed'],
  timeoutSec: 240,
});
