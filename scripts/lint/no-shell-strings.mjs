// ESLint rule `local/no-shell-strings` (eslint.config.js): programs run with argument arrays only, never through a
// shell, so no value can become shell syntax. Reported:
//   - child_process exec / execSync (they take a command string for /bin/sh), however reached: named import,
//     namespace or default import, require(), import(), destructuring;
//   - a `shell` option other than literal false, in any object literal of a file that runs programs (inline options
//     of spawn/execFile/fork and options built beforehand alike);
//   - a shell given a command string: a shell program followed by -c (-c, -ec, -lc, ...) in the arguments of
//     spawn/spawnSync/execFile/execFileSync/fork or of the repo's runners (common/exec.ts run and runIn,
//     scripts/lib/proc.mjs run), also behind a wrapper (`ip netns exec ns sh -c ...`, `env sh -c ...`).
// Commands given to containers (`docker exec <id> sh -c script sh arg...`, busybox images have no other loop) are
// not host processes and are not checked; they pass values as positional arguments, never in the script text.
// test/tooling/no-shell-strings.test.ts proves each form is reported through the real config.

const CP_MODULES = new Set(['child_process', 'node:child_process']);
const SHELL_APIS = new Set(['exec', 'execSync']);
/** Program runners → the index of the program argument (the argument array follows it). */
const RUNNERS = new Map([['spawn', 0], ['spawnSync', 0], ['execFile', 0], ['execFileSync', 0], ['fork', 0]]);
/** The repo's own argument-array runners, checked for `sh -c` like spawn: module path pattern → runner → index. */
const WRAPPERS = [
  [/(^|\/)common\/exec(\.[cm]?[jt]s)?$/, new Map([['run', 0], ['runIn', 1]])],
  [/(^|\/)scripts\/lib\/proc(\.mjs)?$|^(\.\.?\/)+(lib\/)?proc(\.mjs)?$/, new Map([['run', 0]])],
];
const SHELLS = /^(?:.*\/)?(?:sh|bash|dash|zsh|ksh|mksh|ash|fish|csh|tcsh)$/;
const DASH_C = /^-[a-z]*c[a-z]*$/i;

/** A string literal's value (a template without expressions counts), else undefined. */
function str(node) {
  if (!node) return undefined;
  if (node.type === 'Literal' && typeof node.value === 'string') return node.value;
  if (node.type === 'TemplateLiteral' && node.expressions.length === 0) return node.quasis[0].value.cooked ?? undefined;
  return undefined;
}

/** `a.b` / `a['b']` → 'b'; a computed non-literal → undefined. */
const memberName = (node) => (node.computed ? str(node.property) : node.property.name);

function propName(node) {
  if (!node) return undefined;
  if (node.type === 'Identifier') return node.name;
  return str(node);
}

/** `require('child_process')`, `import('node:child_process')`, `await import(...)`. */
function isCpModuleExpr(node) {
  if (!node) return false;
  if (node.type === 'AwaitExpression') return isCpModuleExpr(node.argument);
  if (node.type === 'ImportExpression') return CP_MODULES.has(str(node.source));
  return node.type === 'CallExpression' && node.callee.type === 'Identifier' && node.callee.name === 'require' && CP_MODULES.has(str(node.arguments[0]));
}

/** @type {import('eslint').Rule.RuleModule} */
const rule = {
  meta: {
    type: 'problem',
    docs: { description: 'forbid shell command strings: child_process exec/execSync, a shell option, sh -c' },
    schema: [],
    messages: {
      shellApi: 'child_process.{{name}} runs a command string through /bin/sh: use spawn/execFile (or common/exec.ts run) with an argument array.',
      shellOption: 'A `shell` option runs the command through a shell: pass the program and an argument array without it.',
      shellC: '`{{shell}} {{flag}}` runs a command string through a shell: run the program itself with an argument array.',
    },
  },
  create(context) {
    /** Local names bound to the child_process module object. */
    const modules = new Set();
    /** Local name → child_process function it is (through import, destructuring or promisify). */
    const fns = new Map();
    let runsPrograms = false;
    const shellProps = [];

    const cpFunctionOf = (node) => {
      if (!node) return undefined;
      if (node.type === 'Identifier') return fns.get(node.name);
      if (node.type === 'MemberExpression' && ((node.object.type === 'Identifier' && modules.has(node.object.name)) || isCpModuleExpr(node.object))) {
        return memberName(node);
      }
      return undefined;
    };

    const bindPattern = (pattern) => {
      for (const p of pattern.properties) {
        if (p.type !== 'Property') continue;
        const name = propName(p.key);
        if (SHELL_APIS.has(name)) context.report({ node: p, messageId: 'shellApi', data: { name } });
        if (p.value.type === 'Identifier' && name) fns.set(p.value.name, name);
      }
    };

    /** args[at] is the program, args[at + 1] its argument array: a shell followed by -c anywhere in them. */
    const checkArgv = (args, at) => {
      const argv = args[at + 1]?.type === 'ArrayExpression' ? args[at + 1].elements : [];
      const nodes = [args[at], ...argv];
      const words = nodes.map((e) => str(e));
      for (let i = 0; i + 1 < words.length; i++) {
        if (words[i] !== undefined && SHELLS.test(words[i]) && words[i + 1] !== undefined && DASH_C.test(words[i + 1])) {
          context.report({ node: nodes[i], messageId: 'shellC', data: { shell: words[i], flag: words[i + 1] } });
          return;
        }
      }
    };

    return {
      ImportDeclaration(node) {
        const source = str(node.source);
        if (CP_MODULES.has(source)) {
          runsPrograms = true;
          for (const s of node.specifiers) {
            if (s.type === 'ImportSpecifier') {
              const name = propName(s.imported);
              if (SHELL_APIS.has(name)) context.report({ node: s, messageId: 'shellApi', data: { name } });
              fns.set(s.local.name, name);
            } else modules.add(s.local.name);
          }
        } else if (source) {
          const runners = WRAPPERS.find(([re]) => re.test(source))?.[1];
          for (const s of runners ? node.specifiers : []) {
            const name = s.type === 'ImportSpecifier' ? propName(s.imported) : undefined;
            if (runners.has(name)) { runsPrograms = true; fns.set(s.local.name, { wrapper: runners.get(name) }); }
          }
        }
      },
      TSImportEqualsDeclaration(node) {
        const ref = node.moduleReference;
        if (ref.type === 'TSExternalModuleReference' && CP_MODULES.has(str(ref.expression))) { runsPrograms = true; modules.add(node.id.name); }
      },
      VariableDeclarator(node) {
        const init = node.init;
        if (!init) return;
        // const cp = require('child_process') / await import(...); const { spawn, exec } = <either, or a cp binding>
        const fromModule = isCpModuleExpr(init) || (init.type === 'Identifier' && modules.has(init.name));
        if (fromModule) {
          runsPrograms = true;
          if (node.id.type === 'Identifier') modules.add(node.id.name);
          else if (node.id.type === 'ObjectPattern') bindPattern(node.id);
          return;
        }
        // const run = promisify(execFile) / util.promisify(cp.execFile)
        if (node.id.type === 'Identifier' && init.type === 'CallExpression') {
          const callee = init.callee;
          const isPromisify = (callee.type === 'Identifier' && callee.name === 'promisify') || (callee.type === 'MemberExpression' && memberName(callee) === 'promisify');
          const fn = isPromisify ? cpFunctionOf(init.arguments[0]) : undefined;
          if (fn) fns.set(node.id.name, fn);
        }
      },
      MemberExpression(node) {
        if (!((node.object.type === 'Identifier' && modules.has(node.object.name)) || isCpModuleExpr(node.object))) return;
        const name = memberName(node);
        if (SHELL_APIS.has(name)) context.report({ node, messageId: 'shellApi', data: { name } });
      },
      Property(node) {
        if (node.parent.type === 'ObjectExpression' && propName(node.key) === 'shell' && !(node.value.type === 'Literal' && node.value.value === false)) shellProps.push(node);
      },
      CallExpression(node) {
        const fn = cpFunctionOf(node.callee);
        if (typeof fn === 'object') checkArgv(node.arguments, fn.wrapper);
        else if (RUNNERS.has(fn)) checkArgv(node.arguments, RUNNERS.get(fn));
      },
      'Program:exit'() {
        if (runsPrograms) for (const p of shellProps) context.report({ node: p, messageId: 'shellOption' });
      },
    };
  },
};

export default { meta: { name: 'swarmnet-local' }, rules: { 'no-shell-strings': rule } };
