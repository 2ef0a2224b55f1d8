import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isOurLinkName } from './names.js';

/**
 * The persisted record of the links the overlay created. A link is written here BEFORE it is created, so a crash
 * cannot leave an unrecorded link of ours; a link is deleted only if its name has our prefix AND it is recorded.
 */
export class OwnershipRecord {
  private readonly file: string;
  private links = new Set<string>();

  constructor(stateDir: string) {
    mkdirSync(stateDir, { recursive: true });
    this.file = join(stateDir, 'overlay-links.json');
    this.links = new Set(this.read());
  }

  private read(): string[] {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const data = JSON.parse(text) as { links?: unknown };
    if (!Array.isArray(data.links)) throw new Error(`${this.file}: expected {"links": [...]}`);
    return data.links.filter((n): n is string => typeof n === 'string' && isOurLinkName(n));
  }

  private persist(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify({ version: 1, links: [...this.links].sort() }) + '\n', { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  has(name: string): boolean {
    return this.links.has(name);
  }

  add(names: string[]): void {
    const fresh = names.filter((n) => !this.links.has(n));
    if (fresh.length === 0) return;
    for (const n of fresh) this.links.add(n);
    this.persist();
  }

  remove(names: string[]): void {
    const gone = names.filter((n) => this.links.has(n));
    if (gone.length === 0) return;
    for (const n of gone) this.links.delete(n);
    this.persist();
  }
}
