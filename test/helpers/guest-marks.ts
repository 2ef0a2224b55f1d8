// The guest side of test/helpers/guest-checks.ts (bundled into the guest with the checks file, so no ava here): one
// `<MARKER> PASS|FAIL <check> <ms>ms <detail>` line per check, then `<MARKER> RESULT PASS|FAIL ...`.

export function ensure(ok: unknown, what: string): asserts ok {
  if (!ok) throw new Error(what);
}

export function guestMarks(marker: string): { check(name: string, fn: () => Promise<string>): Promise<void>; fail(name: string, e: Error): void; result(): void } {
  const t0 = Date.now();
  let failed = 0;
  const failLine = (name: string, detail: string): void => {
    failed++;
    console.log(`${marker} FAIL ${name} ${Date.now() - t0}ms ${detail.replaceAll('\n', ' | ')}`);
  };
  return {
    async check(name, fn) {
      try {
        console.log(`${marker} PASS ${name} ${Date.now() - t0}ms ${await fn()}`);
      } catch (e) {
        failLine(name, (e as Error).message);
      }
    },
    /** An error outside every check (the lab could not be built): its stack, to find where. */
    fail: (name, e) => failLine(name, e.stack ?? e.message),
    result() {
      console.log(`${marker} RESULT ${failed ? 'FAIL' : 'PASS'} ${failed} failed in ${Date.now() - t0}ms`);
    },
  };
}
