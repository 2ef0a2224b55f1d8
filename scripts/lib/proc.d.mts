// Types of proc.mjs for TypeScript callers (tests, benches).
export interface RunResult { code: number; stdout: string; stderr: string }
export interface RunOptions {
  cwd?: string; env?: Record<string, string>; allowFailure?: boolean; input?: string; timeoutMs?: number; inherit?: boolean;
}
export class CommandError extends Error {
  code: number | string; output: string; stderr: string;
  constructor(cmd: string, args: string[], code: number | string, output: string, stderr?: string);
}
export function systemPath(path?: string): string;
export function childEnv(env?: Record<string, string>): NodeJS.ProcessEnv;
export function run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
export function sleep(ms: number): Promise<void>;
export function waitFor<T>(what: string, fn: () => T | Promise<T>, opts?: { timeoutMs?: number; intervalMs?: number }): Promise<T>;
export function startTime(pid: number): string | undefined;
export function isAlive(pid: number, start?: string): boolean;
export function namespaceOf(pid: number | string, kind: string): string | undefined;
export function pidsInNamespace(kind: string, ns: string): number[];
export function stopPid(pid: number, start?: string, opts?: { graceMs?: number }): Promise<boolean>;
