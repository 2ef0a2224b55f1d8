// Waiting in tests without depending on the machine's speed: poll for the event itself, and give up only at a
// guard sized for a busy machine (it fails a test that would otherwise hang; it is not a claim about speed).

/** Polls check until it holds; false if it still does not once guardMs have passed. */
export async function until(check: () => boolean | Promise<boolean>, guardMs = 30_000, stepMs = 50): Promise<boolean> {
  const end = Date.now() + guardMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Calls fn until it resolves; its last error is thrown once guardMs have passed. */
export async function retry<T>(fn: () => Promise<T>, guardMs = 30_000, stepMs = 100): Promise<T> {
  const end = Date.now() + guardMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, stepMs));
    }
  }
}

/** retry, naming `what` in the error the guard ends it with. */
export async function waitFor<T>(fn: () => Promise<T>, guardMs: number, what: string, stepMs = 100): Promise<T> {
  try {
    return await retry(fn, guardMs, stepMs);
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
}

/**
 * p's outcome if it settles before a guard timer of guardMs fires, else a rejection naming `what`. For "gives up
 * by itself": the call must end on its own deadline, which is far shorter than the guard.
 */
export function beforeGuard<T>(p: Promise<T>, guardMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`guard (${guardMs} ms) fired first: ${what}`)), guardMs); });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}
