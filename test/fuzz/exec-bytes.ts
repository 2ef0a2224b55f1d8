// Many runs of a program with exact argv, stdin and environment bytes, through exec-bytes.py (see there: Node cannot
// pass non-UTF-8 argv, and forking a small driver is far cheaper than forking a test worker thousands of times).
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export interface ExecCase { argv: Buffer[]; stdin?: Buffer; env?: Record<string, string>; record?: string }
export interface ExecResult { code: number | null; hung: boolean; stdout: Buffer; stderr: Buffer; argv: Buffer[] | null }

const DRIVER = join(import.meta.dirname, 'exec-bytes.py');

/** Runs `cases` in order on `drivers` drivers side by side (case i on driver i % drivers); results in case order. */
export async function execMany(program: string, cwd: string, cases: ExecCase[], opts: { drivers: number; timeoutS: number; env: NodeJS.ProcessEnv }): Promise<ExecResult[]> {
  const parts = await Promise.all(Array.from({ length: opts.drivers }, (_, d) => new Promise<ExecResult[]>((resolve, reject) => {
    const mine = cases.filter((_, i) => i % opts.drivers === d);
    const child = spawn('python3', [DRIVER, program, cwd, String(opts.timeoutS)], { env: opts.env, stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`exec-bytes.py exited ${code}`));
      resolve(Buffer.concat(out).toString().trim().split('\n').filter(Boolean).map((l) => {
        const r = JSON.parse(l) as { code: number | null; hung: boolean; stdout: string; stderr: string; argv: string[] | null };
        return { code: r.code, hung: r.hung, stdout: Buffer.from(r.stdout, 'hex'), stderr: Buffer.from(r.stderr, 'hex'), argv: r.argv?.map((a) => Buffer.from(a, 'hex')) ?? null };
      }));
    });
    child.stdin.on('error', reject);
    child.stdin.end(mine.map((c) => JSON.stringify({ argv: c.argv.map((a) => a.toString('hex')), stdin: c.stdin?.toString('hex') ?? '', env: c.env ?? {}, ...(c.record ? { record: c.record } : {}) })).join('\n') + '\n');
  })));
  return cases.map((_, i) => parts[i % opts.drivers]![Math.floor(i / opts.drivers)]!);
}
