// Types of engines.mjs for TypeScript callers (the end-to-end tests).
export const ENGINE_NAMES: string[];
export const DEFAULT_ENGINE: string;
export class EngineUnavailable extends Error {}
export function parseEngines(spec?: string, nodes?: number): string[];
export function ensureEngine(name: string, log?: (msg: string) => void): Promise<{ name: string; version: string; binDir?: string; suite?: string }>;
