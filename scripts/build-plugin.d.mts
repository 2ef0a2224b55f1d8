// Types of build-plugin.mjs for TypeScript callers (the end-to-end tests).
type Log = (msg: string) => void;
export const REPO: string;
export const DEFAULT_DIR: string;
export const DEFAULT_NAME: string;
export function builtVersion(dir?: string): string;
export function tagOf(version: string): string;
export function buildPlugin(opts?: { dir?: string; compile?: boolean; log?: Log }): Promise<{ dir: string; rebuilt: boolean; seconds: number; version: string }>;
export function pushPlugin(opts: { dir?: string; host: string; ref: string; log?: Log }): Promise<{ ref: string; seconds: number }>;
export function installPlugin(opts: { host: string; remote: string; alias?: string; settings?: Record<string, string>; enable?: boolean; log?: Log }): Promise<{ name: string; installSeconds: number; enableSeconds?: number }>;
export function upgradePlugin(opts: { host: string; name?: string; remote: string; log?: Log }): Promise<{ seconds: number }>;
export function pluginState(opts: { host: string; name?: string }): Promise<boolean | undefined>;
