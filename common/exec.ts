import { spawn } from 'node:child_process';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  /** Written to the child's stdin, then stdin is closed. */
  input?: string;
  /** Kill the child after this many milliseconds (default 30 s). */
  timeoutMs?: number;
  /** Resolve with a non-zero code instead of throwing. */
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
}

export class ExecError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly result: ExecResult,
  ) {
    const detail = result.stderr.trim() || result.stdout.trim() || `exit code ${result.code}`;
    super(`${command} ${args.slice(0, 6).join(' ')}${args.length > 6 ? ' …' : ''}: ${detail}`);
    this.name = 'ExecError';
  }
}

/**
 * The environment for system tools: PATH without node_modules/.bin entries. `npm run`/`npx` put those first, and a
 * dev dependency (@vercel/nft) installs an `nft` there that exits 0 — a test or bench would "program" nothing.
 */
export function toolEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const path = (env.PATH ?? '').split(':').filter((p) => p !== '' && !/(^|\/)node_modules\/\.bin\/?$/.test(p));
  return { ...env, PATH: path.join(':') || '/usr/sbin:/usr/bin:/sbin:/bin' };
}

/**
 * Runs a program with an argument array (never through a shell) and collects its output.
 * Throws ExecError on a non-zero exit unless allowFailure is set.
 */
export function run(command: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv(opts.env) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (timedOut ? `\n(killed after ${opts.timeoutMs ?? 30_000} ms)` : ''),
        code: code ?? (signal ? 128 : 1),
      };
      if (result.code !== 0 && !opts.allowFailure) reject(new ExecError(command, args, result));
      else resolve(result);
    });
    child.stdin.on('error', () => undefined); // the child may exit before reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** `run`, inside a named network namespace when one is given (`ip netns exec`; tests program namespace "hosts"). */
export function runIn(netns: string | undefined, command: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return netns ? run('ip', ['netns', 'exec', netns, command, ...args], opts) : run(command, args, opts);
}
