// Types of dockerd.mjs for TypeScript callers (tests, benches).
export interface RunResult { code: number; stdout: string; stderr: string }
export interface RunOptions { env?: Record<string, string>; allowFailure?: boolean; input?: string; timeoutMs?: number; cwd?: string }
export interface DockerdNode { name: string; pid: number; startTime?: string; mntns?: string; netns: string; socket: string; logFile: string; dataRoot: string }
export interface StartDockerdOptions {
  name: string; netns: string; dataRoot: string; socket: string; hostname?: string;
  daemonConfig?: Record<string, unknown>; nameserver?: string; extraArgs?: string[]; binDir?: string; env?: Record<string, string>; timeoutMs?: number;
}
export const DOCKER_CLI: string;
export function ping(socket: string, timeoutMs?: number): Promise<boolean>;
export function startDockerd(opts: StartDockerdOptions): Promise<DockerdNode & { stop(): Promise<void> }>;
export function stopDockerd(node: { pid: number; startTime?: string; mntns?: string; graceMs?: number }): Promise<void>;
export function nodeEnv(node: { socket: string }): { DOCKER_HOST: string };
export function nodeCommand(node: { pid: number }, cmd: string, args: string[]): [string, string[]];
export function execInNode(node: { name: string; pid: number; startTime?: string; socket: string }, cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
export function docker(socketOrNode: string | { socket: string }, args: string[], opts?: RunOptions): Promise<RunResult>;
export function createNetns(name: string): Promise<void>;
export function deleteNetns(name: string): Promise<void>;
export function createBridge(name: string, address: string): Promise<void>;
export function deleteLink(name: string, netns?: string): Promise<void>;
export function addVethToBridge(opts: { netns: string; bridge: string; hostIf: string; ifname?: string; address: string; gateway?: string }): Promise<void>;
export function netnsExists(name: string): boolean;
