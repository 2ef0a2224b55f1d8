import { statSync } from 'node:fs';

/**
 * Checks a container's network-namespace path before we bind 127.0.0.11:53 in it or change its nft rules: an
 * absolute path, not a FIFO (opening one would block), and not this process's own namespace. That last one is what
 * a host-network container or a wrong path would give, and taking over 127.0.0.11 there would act on the host.
 * A path that does not exist passes: the operation itself then fails with the system's error.
 */
export function checkContainerNetns(path: string, who: string): void {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new Error(`${who}: netns must be an absolute path, got "${String(path)}"`);
  let target;
  try { target = statSync(path); } catch { return; }
  if (target.isFIFO()) throw new Error(`${who}: ${path} is not a network namespace`);
  const own = statSync('/proc/self/ns/net');
  if (target.dev === own.dev && target.ino === own.ino) {
    throw new Error(`${who}: ${path} is this process's own network namespace (the host's?), not a container's`);
  }
}
