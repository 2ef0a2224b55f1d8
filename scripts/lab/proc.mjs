// Child processes and PIDs for the sandbox lab: argument arrays only (never a shell string), output captured for
// error messages, and PID checks that survive PID reuse (a PID is ours only if its start time matches the record).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export class CommandError extends Error {
  constructor(cmd, args, code, output) {
    const detail = output.trim().split('\n').slice(-15).join('\n');
    super(`${cmd} ${args.join(' ')} failed (exit ${code})${detail ? `:\n${detail}` : ''}`);
    this.name = 'CommandError';
    this.code = code;
    this.output = output;
  }
}

/**
 * Runs cmd with args; resolves { code, stdout, stderr }. Rejects with CommandError on a non-zero exit unless
 * allowFailure. `input` is written to stdin; `env` is merged over ours; `timeoutMs` kills the child.
 */
export function run(cmd, args, { env, allowFailure = false, input, timeoutMs, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: env ? { ...process.env, ...env } : process.env,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => { stdout += b; });
    child.stderr.on('data', (b) => { stderr += b; });
    if (input !== undefined) child.stdin.end(input);
    const timer = timeoutMs ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e.code === 'ENOENT' ? new Error(`${cmd}: command not found`) : e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const status = code ?? 128;
      if (status !== 0 && !allowFailure) {
        reject(new CommandError(cmd, args, signal ? `signal ${signal}` : status, `${stderr}\n${stdout}`));
      } else resolve({ code: status, stdout, stderr });
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; throws `what` with the last error after timeoutMs. */
export async function waitFor(what, fn, { timeoutMs = 60_000, intervalMs = 500 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(intervalMs);
  }
}

/** /proc/<pid>/stat fields after the command name: [state, ppid, ...]; undefined when the process is gone. */
function statFields(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Start time of a process (clock ticks since boot) — with the PID, identifies one process across PID reuse. */
export function startTime(pid) {
  return statFields(pid)?.[19];
}

/** True while pid runs (a zombie counts as gone) and, when given, still has the recorded start time. */
export function isAlive(pid, start) {
  const f = statFields(pid);
  if (!f || f[0] === 'Z' || f[0] === 'X') return false;
  return start === undefined || f[19] === start;
}

/** The namespace a process is in, e.g. "mnt:[4026532249]"; undefined when it is gone. */
export function namespaceOf(pid, kind) {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** PIDs of every process in the given namespace (e.g. all processes a node's dockerd left in its mount namespace). */
export function pidsInNamespace(kind, ns) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    if (namespaceOf(d, kind) === ns) out.push(Number(d));
  }
  return out;
}

/**
 * Stops a process we recorded: SIGTERM, wait up to graceMs, then SIGKILL. Does nothing if the PID is gone or now
 * belongs to another process (start time differs). Resolves true if it had to act.
 */
export async function stopPid(pid, start, { graceMs = 20_000 } = {}) {
  if (!pid || !isAlive(pid, start)) return false;
  try { process.kill(pid, 'SIGTERM'); } catch { return false; }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid, start) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid, start)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    while (isAlive(pid, start)) await sleep(50);
  }
  return true;
}
