// The sandbox's record of everything it made (.sandbox/state.json in the repo, gitignored): `down` removes exactly
// what is listed here (plus leftovers carrying the sandbox's own names), `up` after a crash starts by doing that.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const STATE_FILE = join(REPO, '.sandbox/state.json');

export function loadState(file = STATE_FILE) {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${e.message}); remove it and run down again to clean up by name`);
  }
}

/** Written atomically after every step, so a crash at any point leaves a record of what exists. */
export function saveState(state, file = STATE_FILE) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

export function removeState(file = STATE_FILE) {
  rmSync(file, { force: true });
}
