// Finds the names of programs a source file runs, for the prerequisite guard (prerequisites.test.ts). Heuristic by
// design: it reads the shapes this code base uses to start a program (an exec-like call with a literal name, an
// absolute /usr/bin path, `ip netns exec <ns> <prog>`, an nsenter/unshare `--` separator, an argv array that
// starts with a program and a flag, a shell script's command words) and nothing else.
const NAME = String.raw`([a-z][\w.+-]*)`;
const Q = `['"\`]`;
const RULES: RegExp[] = [
  // run('ip', …), spawnSync('npm', …), sh(ns, 'busybox', …), execInNode(node, 'docker', …), runIn(netns, 'nft', …)
  new RegExp(String.raw`(?<![.\w])(?:run|runIn|runTool|spawn|spawnSync|execFile|execFileSync|execSync|sh|inNs|exec|execInNode|nodeCommand|startDetached)\s*\(\s*(?:[\w.$\`{}-]+\s*,\s*){0,2}${Q}${NAME}${Q}`, 'g'),
  // '/usr/bin/etcdctl', '/usr/sbin/ip', '/bin/busybox'
  new RegExp(String.raw`${Q}(?:/usr)?/s?bin/${NAME}${Q}`, 'g'),
  // ['netns', 'exec', ns, 'dig', …]
  new RegExp(String.raw`${Q}netns${Q}\s*,\s*${Q}exec${Q}\s*,\s*[^,]+,\s*${Q}${NAME}${Q}`, 'g'),
  // nsenter/unshare … '--flag', '--', 'cmd' (after a flag: `npm run x -- up` passes arguments, not a program)
  new RegExp(String.raw`${Q}-[^'"\`]*${Q}\s*,\s*${Q}--${Q}\s*,\s*${Q}${NAME}${Q}`, 'g'),
  // const perf = ['dnsperf', '-s', …]; return ['nsenter', ['--target', …]]
  new RegExp(String.raw`(?:=|return|\()\s*\[\s*${Q}${NAME}${Q}\s*,\s*(?:${Q}-|\[)`, 'g'),
];

const SHELL_WORDS = new Set(['if', 'then', 'else', 'elif', 'fi', 'for', 'in', 'do', 'done', 'while', 'until', 'case', 'esac',
  'set', 'shift', 'export', 'local', 'return', 'exit', 'test', 'echo', 'cd', 'trap', 'wait', 'read', 'eval', 'unset', 'exec']);

/** Programs a shell script runs: the first word of each command (after `exec`, `|`, `||`, `&&`, `;`). */
function shellPrograms(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    for (const part of line.split(/\|\||&&|\||;/)) {
      const words = part.trim().replace(/^(exec|then|do|else)\s+/, '').split(/\s+/);
      const w = words[0] ?? '';
      if (/^[a-z][\w.+-]*$/.test(w) && !SHELL_WORDS.has(w) && !/=/.test(w)) out.push(w);
    }
  }
  return out;
}

/** Program names run by a file of this code base; `shell` for sh scripts. Line comments are ignored in code. */
export function programsIn(text: string, shell = false): string[] {
  if (shell) return [...new Set(shellPrograms(text))];
  const code = text.split('\n').filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l)).join('\n');
  const found = new Set<string>();
  for (const re of RULES) for (const m of code.matchAll(re)) found.add(m[1]!);
  return [...found];
}
