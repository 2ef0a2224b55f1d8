// Long-running helpers of the sandbox (etcd, the registry, Prometheus): started detached so they outlive the command
// that started them, recorded by PID and start time, found again by their command line when the state file is lost.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { childEnv, isAlive, sleep, startTime, stopPid } from '../lib/proc.mjs';

/**
 * Starts `cmd args` detached, stdout and stderr appended to `logFile`, and waits until `ready()` resolves true.
 * Resolves { pid, startTime }. If it exits first, or is not ready within timeoutMs (it is stopped then), throws with
 * the log's tail.
 */
export async function startDetached(cmd, args, { what, logFile, ready, timeoutMs = 30_000, pollMs = 100 }) {
  const log = openSync(logFile, 'a');
  let child;
  try {
    child = spawn(cmd, args, { detached: true, stdio: ['ignore', log, log], env: childEnv() });
  } finally {
    closeSync(log);
  }
  child.unref();
  const pid = child.pid;
  const start = startTime(pid);
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (!isAlive(pid, start)) throw new Error(`${what} exited during start; ${logFile}:\n${tailOf(logFile)}`);
    if (Date.now() > deadline) {
      await stopPid(pid, start, { graceMs: 5000 });
      throw new Error(`${what} was not ready within ${timeoutMs / 1000} s; ${logFile}:\n${tailOf(logFile)}`);
    }
    await sleep(pollMs);
  }
  return { pid, startTime: start };
}

/** PIDs whose command line (argv) satisfies `match`. */
export function pidsWithArgv(match) {
  const pids = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (match(readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0'))) pids.push(Number(d));
    } catch { /* exited */ }
  }
  return pids;
}

export function tailOf(file) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}
