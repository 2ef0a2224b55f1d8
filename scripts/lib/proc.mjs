// Child processes and PIDs for the build and lab scripts (plugin build, sandbox, end-to-end tests): argument arrays
// only (never a shell string), output captured for error messages, and PID checks that survive PID reuse (a PID is
// ours only if its start time matches the record).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export class CommandError extends Error {
  /** `output`: the child's stderr then stdout; the last 15 lines go into the message. */
  constructor(cmd, args, code, output, stderr = output) {
    const detail = output.trim().split('\n').slice(-15).join('\n');
    super(`${cmd} ${args.join(' ')} failed (exit ${code})${detail ? `:\n${detail}` : ''}`);
    this.name = 'CommandError';
    this.code = code;
    this.output = output;
    this.stderr = stderr;
  }
}

/**
 * PATH without node_modules/.bin directories. npm and npx put ./node_modules/.bin first in PATH, and a dependency
 * there shadows a system tool: @vercel/nft's CLI is called `nft`, exits 0 and would silently replace nftables.
 * Every child started here (and everything it runs, e.g. through nsenter) gets this PATH.
 */
export function systemPath(path = process.env.PATH ?? '') {
  return path.split(':').filter((d) => d && !/(^|\/)node_modules\/\.bin\/?$/.test(d)).join(':');
}

/** Our environment with `env` merged over it and PATH = systemPath() unless `env` sets PATH. */
export function childEnv(env = {}) {
  return { ...process.env, PATH: systemPath(), ...env };
}

/**
 * Runs cmd with args; resolves { code, stdout, stderr }. Rejects with CommandError on a non-zero exit (or a kill)
 * unless allowFailure. `input` is written to stdin; `env` is merged over ours (childEnv: system PATH); `timeoutMs` kills the child
 * (SIGKILL); `inherit: true` streams the child's stdout and stderr to ours as well (long steps such as npm ci;
 * stdout is then not captured).
 */
export function run(cmd, args, { cwd, env, allowFailure = false, input, timeoutMs, inherit = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: childEnv(env),
      stdio: [input === undefined ? 'ignore' : 'pipe', inherit ? 'inherit' : 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b) => { stdout += b; });
    child.stderr.on('data', (b) => {
      stderr += b;
      if (inherit) process.stderr.write(b);
    });
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
        reject(new CommandError(cmd, args, signal ? `signal ${signal}` : status, `${stderr}\n${stdout}`, stderr));
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
