import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname } from 'node:path';

/**
 * Listens on a unix socket only its owner (root) can connect to, replacing a stale socket file.
 * bind(2) creates the file with 0777 & ~umask, so a bind followed by chmod leaves it connectable by every user for a
 * moment under a permissive umask (0 in some service managers). The umask is 0177 just around `listen()` instead:
 * Node binds a path synchronously inside that call, so the file is born 0600. (The umask is process-wide; anything
 * created by the thread pool in that instant is only made stricter.) The chmod after it is for a directory whose
 * default ACL overrides the umask. A directory created here is 0700; an existing one (Docker's) is left as it is.
 */
export async function listenUnixPrivate(server: Server, path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => { server.off('error', reject); resolve(); });
    } finally {
      process.umask(umask);
    }
  });
  chmodSync(path, 0o600);
}
