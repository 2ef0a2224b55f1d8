// Types of services.mjs for TypeScript callers (the end-to-end tests).
import type { RunResult } from './dockerd.mjs';
import type { SandboxNode } from './sandbox.mjs';
export interface TaskContainer { node: SandboxNode; id: string; name: string; address?: string; prefixLen?: number }
export function changeService(manager: SandboxNode, args: string[], opts?: { attempts?: number }): Promise<RunResult>;
export function serviceTasks(manager: SandboxNode, service: string): Promise<{ node: string; state: string; error: string }[]>;
export function waitServiceRunning(manager: SandboxNode, service: string, replicas: number, timeoutMs?: number): Promise<unknown>;
export function serviceContainers(nodes: SandboxNode[], service: string, network: string): Promise<TaskContainer[]>;
export function execInContainer(node: SandboxNode, id: string, argv: string[], timeoutMs?: number): Promise<RunResult>;
export function httpGetFromContainer(node: SandboxNode, id: string, address: string, port: number, timeoutSeconds?: number): Promise<{ ok: boolean; body: string; code: number; stderr: string }>;
export function removeServiceAndNetwork(manager: SandboxNode, nodes: SandboxNode[], service?: string, network?: string): Promise<void>;
export function pluginPid(node: SandboxNode): number;
