// Child processes for the plugin build: argument arrays only (never a shell), output captured for error messages.
import { spawn } from 'node:child_process';

export class CommandError extends Error {
  constructor(cmd, args, code, stderr) {
    const detail = stderr.trim().split('\n').slice(-15).join('\n');
    super(`${cmd} ${args.join(' ')} failed (exit ${code})${detail ? `:\n${detail}` : ''}`);
    this.name = 'CommandError';
    this.code = code;
    this.stderr = stderr;
  }
}

/**
 * Runs cmd with args. Resolves { code, stdout, stderr }; rejects with CommandError on a non-zero exit unless
 * allowFailure. `inherit: true` streams the child's output to ours (long steps such as npm ci).
 */
export function run(cmd, args, { cwd, env, allowFailure = false, inherit = false, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: env ? { ...process.env, ...env } : process.env,
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
    child.on('error', (e) => reject(e.code === 'ENOENT' ? new Error(`${cmd}: command not found`) : e));
    child.on('close', (code, signal) => {
      const status = code ?? (signal ? 128 : 1);
      if (status !== 0 && !allowFailure) reject(new CommandError(cmd, args, status, stderr || stdout));
      else resolve({ code: status, stdout, stderr });
    });
  });
}
