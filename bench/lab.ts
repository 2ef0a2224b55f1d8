/**
 * What the sandbox benchmarks share. The lab is plain JavaScript beside the sources (scripts/lab), not compiled into
 * dist/: it is loaded from the repository. `npm run` puts node_modules/.bin first in PATH (a dev dependency there is
 * called `nft`): the benchmarks run the system's tools only.
 */
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root (this file runs as dist/bench/lab.js). */
export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** A module of scripts/lab. */
export const lab = async <T>(file: string): Promise<T> => (await import(pathToFileURL(join(REPO, 'scripts/lab', file)).href)) as T;

/** PATH without node_modules directories. */
export function systemToolsOnly(): void {
  process.env.PATH = (process.env.PATH ?? '').split(':').filter((d) => d && !d.includes('node_modules')).join(':') || '/usr/sbin:/usr/bin:/sbin:/bin';
}

/**
 * Runs a benchmark's main, then its cleanups (newest first) whatever happens, Ctrl-C included: what it made of the
 * machine's (namespaces, processes, files) never outlives it. Exits 1 with the error when main fails.
 */
export async function runBench(name: string, main: () => Promise<void>, cleanups: (() => Promise<unknown>)[]): Promise<void> {
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try { await c(); } catch (e) { process.stderr.write(`cleanup: ${(e as Error).message}\n`); }
    }
  };
  process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
  try {
    await main();
    await cleanup();
  } catch (e) {
    await cleanup();
    process.stderr.write(`bench ${name} failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  }
}
