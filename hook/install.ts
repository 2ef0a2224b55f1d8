import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `swarmnet host install` / `uninstall`: puts the runtime wrapper and the createContainer hook on a host from this
 * build's own files (dist/hook/, which the plugin ships too) and merges daemon.json so Docker runs containers through
 * the wrapper. Uninstall removes exactly what install added and restores what it replaced.
 */
export const RUNTIME_NAME = 'swarmnet';
export const FILES = ['swarmnet-runtime', 'swarmnet-hook'] as const;
const RECORD = 'install.json';

/** What install changed in daemon.json, kept beside the files so uninstall can undo exactly that. */
export interface InstallRecord {
  daemonJson: string;
  /** daemon.json's `default-runtime` before install (absent: it had none). */
  previousDefaultRuntime?: string;
  /** daemon.json had no `runtimes` key before install. */
  addedRuntimes: boolean;
  /** The `swarmnet` command install wrote (CLI_LAUNCHER), if any. */
  cli?: string;
}

/**
 * The host's `swarmnet` command: runs the installed plugin's own CLI (its rootfs's node and files, through the
 * launcher the plugin build puts at /opt/swarmnet/bin/swarmnet), found through Docker at each run, so a plugin
 * upgrade needs nothing here. A static file: nothing is interpolated into it.
 */
export const CLI_LAUNCHER = `#!/bin/sh
# swarmnet CLI, installed by \`swarmnet host install\`: runs the installed plugin's own copy (SWARMNET_PLUGIN names
# another plugin than swarmnet:latest; DOCKER_HOST another Docker).
plugin="\${SWARMNET_PLUGIN:-swarmnet:latest}"
id=$(docker plugin inspect --format '{{.Id}}' "$plugin") || { echo "swarmnet: plugin $plugin is not installed on this Docker" >&2; exit 2; }
root=$(docker info --format '{{.DockerRootDir}}') || exit 2
exec "$root/plugins/$id/rootfs/opt/swarmnet/bin/swarmnet" "$@"
`;

/** The built executables (dist/hook beside this file's directory). */
export function builtDir(): string {
  return dirname(fileURLToPath(import.meta.url));
}

type Json = Record<string, unknown>;

/** daemon.json with our runtime added and made the default; every other setting kept (pure). */
export function mergeDaemonConfig(current: Json, runtimePath: string): { config: Json; record: Omit<InstallRecord, 'daemonJson'> } {
  const runtimes = current.runtimes;
  if (runtimes !== undefined && (typeof runtimes !== 'object' || runtimes === null || Array.isArray(runtimes))) {
    throw new Error('daemon.json: "runtimes" is not an object');
  }
  const prev = current['default-runtime'];
  if (prev !== undefined && typeof prev !== 'string') throw new Error('daemon.json: "default-runtime" is not a string');
  const record = {
    ...(prev !== undefined && prev !== RUNTIME_NAME ? { previousDefaultRuntime: prev } : {}),
    addedRuntimes: runtimes === undefined,
  };
  return {
    config: { ...current, runtimes: { ...(runtimes as Json | undefined), [RUNTIME_NAME]: { path: runtimePath } }, 'default-runtime': RUNTIME_NAME },
    record,
  };
}

/** daemon.json as it was before install (pure). */
export function restoreDaemonConfig(current: Json, record: Omit<InstallRecord, 'daemonJson'>): Json {
  const out: Json = { ...current };
  const runtimes = { ...(out.runtimes as Json | undefined) };
  delete runtimes[RUNTIME_NAME];
  if (record.addedRuntimes && Object.keys(runtimes).length === 0) delete out.runtimes;
  else out.runtimes = runtimes;
  if (out['default-runtime'] === RUNTIME_NAME) {
    if (record.previousDefaultRuntime !== undefined) out['default-runtime'] = record.previousDefaultRuntime;
    else delete out['default-runtime'];
  }
  return out;
}

function readJson(path: string): Json {
  if (!existsSync(path)) return {};
  const text = readFileSync(path, 'utf8');
  if (!text.trim()) return {};
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) { throw new Error(`${path} is not valid JSON (${(e as Error).message}): fix it first; nothing was changed`); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${path} is not a JSON object; nothing was changed`);
  return v as Json;
}

function writeAtomic(path: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.swarmnet-tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

/** Copies the executables into `dir` (each replaced atomically: a runtime call in flight keeps its old file). */
export function installFiles(dir: string, from = builtDir()): void {
  mkdirSync(dir, { recursive: true });
  for (const f of FILES) {
    const src = join(from, f);
    if (!existsSync(src)) throw new Error(`${src} is missing: this build has no ${f} (npm run build needs a C compiler)`);
    const tmp = join(dir, `.${f}.swarmnet-tmp`);
    copyFileSync(src, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, join(dir, f));
  }
}

export interface InstallOptions {
  dir: string;
  daemonJson: string;
  from?: string;
  /** Where the `swarmnet` command goes (omitted: not installed). */
  binDir?: string;
}

const isOurCli = (path: string): boolean => existsSync(path) && readFileSync(path, 'utf8') === CLI_LAUNCHER;

/** Idempotent: a second install changes nothing and keeps the first record (what to restore). */
export function hostInstall(o: InstallOptions): { changed: boolean } {
  const before = readJson(o.daemonJson);
  const { config, record } = mergeDaemonConfig(before, join(o.dir, 'swarmnet-runtime'));
  const cli = o.binDir ? join(o.binDir, 'swarmnet') : undefined;
  if (cli && existsSync(cli) && !isOurCli(cli)) throw new Error(`${cli} exists and is not swarmnet's command: remove it or pass another --bin-dir; nothing was changed`);
  installFiles(o.dir, o.from);
  const recordPath = join(o.dir, RECORD);
  const previous = existsSync(recordPath) ? JSON.parse(readFileSync(recordPath, 'utf8')) as InstallRecord : undefined;
  const wanted: InstallRecord = previous ?? { daemonJson: o.daemonJson, ...record };
  if (cli) wanted.cli = cli;
  if (JSON.stringify(previous) !== JSON.stringify(wanted)) writeAtomic(recordPath, `${JSON.stringify(wanted, null, 2)}\n`);
  if (cli && !isOurCli(cli)) writeAtomic(cli, CLI_LAUNCHER, 0o755);
  const changed = JSON.stringify(before) !== JSON.stringify(config);
  if (changed) writeAtomic(o.daemonJson, `${JSON.stringify(config, null, 2)}\n`);
  return { changed };
}

export function hostUninstall(o: { dir: string }): { changed: boolean } {
  const recordPath = join(o.dir, RECORD);
  if (!existsSync(recordPath)) return { changed: false };
  const record = JSON.parse(readFileSync(recordPath, 'utf8')) as InstallRecord;
  const current = readJson(record.daemonJson);
  const restored = restoreDaemonConfig(current, record);
  const changed = JSON.stringify(current) !== JSON.stringify(restored);
  if (changed) writeAtomic(record.daemonJson, `${JSON.stringify(restored, null, 2)}\n`);
  // The command only if it is still the one install wrote.
  if (record.cli && isOurCli(record.cli)) rmSync(record.cli);
  for (const f of [...FILES, RECORD]) rmSync(join(o.dir, f), { force: true });
  try { rmdirSync(o.dir); } catch { /* not empty: someone else's files stay */ }
  return { changed };
}
