// Types of prereqs.mjs for TypeScript callers (the prerequisite guard test).
export const PACKAGES: Record<string, { bins: string[]; for: string[]; why: string }>;
export const BASE_SYSTEM: { machine: string[]; essential: string[] };
export const IN_IMAGE: string[];
export function packagesFor(who: 'sandbox' | 'tests' | 'bench' | 'fresh-root' | 'all'): string[];
export function providerOf(program: string): string | undefined;
export function ensurePackages(log: (msg: string) => void, who?: 'sandbox' | 'tests' | 'bench' | 'fresh-root' | 'all'): Promise<string[]>;
