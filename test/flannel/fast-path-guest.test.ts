// The overlay's flowtable fast path against a kernel that has flowtables. This machine's kernel has none
// (CONFIG_NF_FLOW_TABLE unset), so the checks run in the IPVS tests' throw-away guest: Debian's cloud kernel under
// qemu (scripts/lab/ipvs-guest.mjs), with the overlay and test/flannel/fast-path-guest-checks.ts bundled into one
// file. One boot runs every check; each prints a marker line that one test below reads.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { bootGuest, bundle, ensureGuestImage, qemuMissing } from '../../scripts/lab/ipvs-guest.mjs';

const CHECKS = ['programmed', 'offloaded', 'vip-offloaded', 'isolation', 'drift-repaired', 'restart-adopts', 'network-removed', 'off', 'last-network-removed'];
const missing = qemuMissing();
const markers = new Map<string, { pass: boolean; detail: string }>();
let serial = '';

if (missing) {
  test.skip(`overlay fast path in a guest kernel — skipped: ${missing}`, () => {});
} else {
  test.before('build the guest image (cached), bundle the checks, boot once', async (t) => {
    t.timeout(10 * 60_000, 'a first run downloads the kernel package and packs Node into the image');
    const image = await ensureGuestImage((m) => t.log(m));
    const script = await bundle(fileURLToPath(new URL('./fast-path-guest-checks.ts', import.meta.url)));
    const boot = await bootGuest({ image, script, timeoutSec: 240 });
    serial = boot.serial;
    for (const m of serial.matchAll(/^FAST-TEST (PASS|FAIL) (\S+) (.*)$/gm)) markers.set(m[2]!, { pass: m[1] === 'PASS', detail: m[3]! });
    const result = /^FAST-TEST RESULT .*$/m.exec(serial)?.[0] ?? 'no result line';
    t.log(`guest ${image.kver}: ${result}, boot-to-poweroff ${boot.ms} ms (qemu exit ${boot.code})`);
  });

  for (const name of CHECKS) {
    test(`overlay fast path in a guest kernel: ${name}`, (t) => {
      const m = markers.get(name);
      if (!m) t.fail(`no marker for ${name}; the guest's console ended with:\n${serial.split('\n').slice(-40).join('\n')}`);
      else t.true(m.pass, m.detail);
      if (m) t.log(m.detail);
    });
  }

  test('overlay fast path in a guest kernel: every check reported and the guest finished', (t) => {
    t.deepEqual([...markers.keys()].filter((k) => !CHECKS.includes(k)), [], 'a check the test does not know');
    t.regex(serial, /^FAST-TEST RESULT (PASS|FAIL)/m, 'the checks ran to the end');
    t.regex(serial, /^IPVS-GUEST EXIT 0 /m, 'the guest script exited cleanly');
  });
}
