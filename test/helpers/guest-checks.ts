// Checks that need a kernel this machine lacks (IPVS, flowtables) run in one boot of the throw-away qemu guest
// (scripts/lab/ipvs-guest.mjs): the checks file is bundled, run as the guest's job, and prints one
// `<MARKER> PASS|FAIL <check> <detail>` line per check and `<MARKER> RESULT ...` at the end; one ava test reads each.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { bootGuest, bundle, ensureGuestImage, qemuMissing } from '../../scripts/lab/ipvs-guest.mjs';

export function guestChecks(o: { title: string; checksFile: URL; marker: string; checks: string[]; timeoutSec: number }): void {
  const missing = qemuMissing();
  const markers = new Map<string, { pass: boolean; detail: string }>();
  let serial = '';
  if (missing) {
    test.skip(`${o.title} — skipped: ${missing}`, () => {});
    return;
  }
  test.before('build the guest image (cached), bundle the checks, boot once', async (t) => {
    t.timeout(10 * 60_000, 'a first run downloads the kernel package and packs Node into the image');
    const image = await ensureGuestImage((m) => t.log(m));
    const boot = await bootGuest({ image, script: await bundle(fileURLToPath(o.checksFile)), timeoutSec: o.timeoutSec });
    serial = boot.serial;
    for (const m of serial.matchAll(new RegExp(`^${o.marker} (PASS|FAIL) (\\S+) (.*)$`, 'gm'))) markers.set(m[2]!, { pass: m[1] === 'PASS', detail: m[3]! });
    const result = new RegExp(`^${o.marker} RESULT .*$`, 'm').exec(serial)?.[0] ?? 'no result line';
    t.log(`guest ${image.kver}: ${result}, boot-to-poweroff ${boot.ms} ms (qemu exit ${boot.code})`);
  });

  for (const name of o.checks) {
    test(`${o.title}: ${name}`, (t) => {
      const m = markers.get(name);
      if (!m) t.fail(`no marker for ${name}; the guest's console ended with:\n${serial.split('\n').slice(-40).join('\n')}`);
      else t.true(m.pass, m.detail);
      if (m) t.log(m.detail);
    });
  }

  test(`${o.title}: every check reported and the guest finished`, (t) => {
    t.deepEqual([...markers.keys()].filter((k) => !o.checks.includes(k)), [], 'a check the test does not know');
    t.regex(serial, new RegExp(`^${o.marker} RESULT (PASS|FAIL)`, 'm'), 'the checks ran to the end');
    t.regex(serial, /^IPVS-GUEST EXIT 0 /m, 'the guest script exited cleanly');
  });
}
