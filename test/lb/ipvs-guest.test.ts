// The IPVS backend against a real kernel. This machine's kernel has no IPVS, so the checks run in a throw-away
// guest: Debian's cloud kernel under qemu (scripts/lab/ipvs-guest.mjs), with the backend and test/lb/ipvs-guest-checks.ts
// bundled into one file. One boot runs every check; each prints a marker line that one test below reads.
import { guestChecks } from '../helpers/guest-checks.js';

guestChecks({
  title: 'IPVS in a guest kernel',
  checksFile: new URL('./ipvs-guest-checks.ts', import.meta.url),
  marker: 'IPVS-TEST',
  checks: ['setup', 'rendered', 'balanced', 'client-source', 'hairpin', 'refused', 'apply-keeps-connections', 'drain', 'drain-idle-deleted',
    'drift-repair', 'drain-timeout', 'removal'],
  timeoutSec: 150,
});
