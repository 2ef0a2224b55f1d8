// Types of sandbox.mjs for TypeScript callers (the end-to-end tests).
export interface SandboxNode {
  name: string; netns: string; hostIf: string; address: string; socket: string; dataRoot: string;
  role: 'manager' | 'worker'; engine: string; pid: number; startTime?: string; mntns?: string; logFile: string;
}
export interface SandboxEtcd { pid: number; startTime?: string; endpoint: string; clientUrls: string[]; dataDir: string; logFile: string }
export interface Layout {
  bridge: string; underlay: string; hostAddress: string; dataDir: string; etcdPort: number; etcdPeerPort: number;
  registryPort: number; prometheusPort: number; metricsPort: number; pluginRepository: string; pluginName: string; pluginAlias: string; networkDriver: string;
}
export interface SandboxPrometheus { pid: number; startTime?: string; url: string; dataDir: string; logFile: string }
export interface SandboxRegistry { pid: number; startTime?: string; address: string; dataDir: string; logFile: string }
/** The plugin as installed on every node: its registry reference and the version it reports. */
export interface SandboxPlugin { ref: string; version: string }
export interface Sandbox {
  hook?: boolean; nodes: SandboxNode[]; etcd: SandboxEtcd; registry?: SandboxRegistry; plugin?: SandboxPlugin; prometheus?: SandboxPrometheus;
  manager: SandboxNode; layout: Layout; ready: boolean;
}
export const LAYOUT: Layout;
export const MAX_NODES: number;
export function etcdEndpoint(tls?: boolean): string;
export function etcdClientOptions(): import('etcd3').IOptions;
export function registryAddress(): string;
export function pluginRef(version: string): string;
export function up(opts?: { nodes?: number; managers?: number; docker?: string; hook?: boolean; prometheus?: boolean; etcdTls?: boolean; log?: (msg: string) => void; logLevel?: string }): Promise<Sandbox>;
export function down(opts?: { log?: (msg: string) => void }): Promise<void>;
export function loadSandbox(): Sandbox | undefined;
export function waitPluginAdvertised(manager: SandboxNode, count: number, timeoutMs?: number): Promise<void>;
export function stopNode(name: string, opts?: { crash?: boolean }): Promise<void>;
export function startNode(name: string): Promise<SandboxNode>;
export function stopSandboxEtcd(): Promise<void>;
export function startSandboxEtcd(): Promise<void>;
