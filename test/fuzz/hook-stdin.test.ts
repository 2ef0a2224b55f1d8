// Fuzz: the createContainer hook (hook/native/hook.c → dist/hook/swarmnet-hook) with random and malformed OCI state
// on stdin — empty, truncated, huge, wrong types, no or a dead pid, deep nesting, escapes, NUL and non-UTF-8 bytes —
// and stand-in plugins that answer garbage, too much, nothing, or hang up. Its contract (hook/README.md): it never
// fails a container, so every case must exit 0 by itself (no signal, no hang past its own bound), write nothing on
// stdout, keep runc's log (the bundle's log.json) a file of JSON lines, and send the plugin only well-formed
// requests. FUZZ_SEED=<seed> replays a run's cases.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execMany } from './exec-bytes.js';
import { deep, fuzzSeed, Rng } from './gen.js';

const HOOK = join(import.meta.dirname, '..', '..', 'dist', 'hook', 'swarmnet-hook');
const hookTest = existsSync(HOOK) ? test : test.skip;
const CASES = 3000;
const DRIVERS = 3;
/** The hook's bound on waiting for a plugin in these runs (its default is 5 s). */
const WAIT_MS = 150;
/** A hook still running by then is hung: its own bound is WAIT_MS. */
const GUARD_S = 30;

/** What each stand-in plugin does with a request line. */
const PLUGINS = {
  none: undefined,
  ok: (send: (b: string | Buffer) => void) => send('{"ok":true,"served":true}\n'),
  notOk: (send: (b: string | Buffer) => void) => send('{"ok":false,"error":"\\u0000\\"x\u00e9\u{1f600}"}\n'),
  garbage: (send: (b: string | Buffer) => void) => send(Buffer.from([0xff, 0x00, 0x22, 0x5c, 0x0a])),
  endless: (send: (b: string | Buffer) => void) => send('x'.repeat(64 << 10)), // no newline, more than its buffer
  silent: () => undefined,
  hangUp: (_send: unknown, close: () => void) => close(),
} as const;
type PluginKind = keyof typeof PLUGINS;

/** One OCI state: Docker's shape, then broken in one of the ways a parser can be. */
function state(r: Rng, bundle: string): Buffer {
  const good = { ociVersion: '1.0.2', id: 'c0ffee'.repeat(r.range(1, 11)).slice(0, 64), status: 'creating', pid: r.pick([4242, 1, 0, -1, 2 ** 22 + 7, 2 ** 31, 1e300]), bundle, annotations: { 'com.docker': 'x' } };
  const o: Record<string, unknown> = { ...good };
  switch (r.int(16)) {
    case 0: return Buffer.alloc(0);
    case 1: return r.bytes(r.size(80_000));
    case 2: return Buffer.from(JSON.stringify(good)).subarray(0, r.int(JSON.stringify(good).length)); // truncated
    case 3: delete o[r.pick(['id', 'bundle', 'pid', 'status', 'ociVersion'])]; break;
    case 4: o[r.pick(['id', 'bundle', 'pid'])] = r.json(2); break; // wrong types
    case 5: o.id = r.text(60); break; // unicode, controls, lone surrogates
    case 6: o.annotations = { big: 'a'.repeat(r.range(1000, 100_000)) }; break; // past the 64 KiB it reads
    case 7: return Buffer.from(JSON.stringify(good).replace('"annotations":', `"deep":${deep(r.range(200, 20_000), r.chance(0.5))},"annotations":`));
    case 8: o.id = `${o.id as string}\\"\\\\\\u0000`; return Buffer.from(JSON.stringify(o).replace(/\\\\\\\\/g, '\\\\')); // escapes in the id
    case 9: { // non-UTF-8 and NUL bytes inside the id (a raw NUL is not JSON)
      const t = Buffer.from(JSON.stringify(good));
      const at = t.indexOf('"id":"') + 6;
      return Buffer.concat([t.subarray(0, at), Buffer.from(r.pick([[0xff], [0xc3, 0x28], [0x00], [0xed, 0xa0, 0x80], [0xe2, 0x82]])), t.subarray(at)]);
    }
    case 10: o.id = 'x'.repeat(r.range(4000, 60_000)); break;
    case 11: o.bundle = `${bundle}/${'d'.repeat(r.range(200, 5000))}`; break; // longer than its log path buffer
    case 12: return Buffer.from(`\ufeff${JSON.stringify(good)}${r.pick(['', ' garbage', '}', '\u0000'])}`);
    case 13: return Buffer.from(`{"id":"a","id":"b","bundle":${JSON.stringify(bundle)},"bundle":${JSON.stringify(bundle)}}`);
    case 14: { const t = Buffer.from(JSON.stringify(good)); for (let k = r.range(1, 3); k > 0; k--) { const i = r.int(t.length); const v = r.u32() & 0xff; if (v !== 0x2f && v !== 0x2e) t[i] = v; } return t; } // byte noise (never a new "/" or ".": the path stays under the lab)
    default: break; // Docker's own
  }
  return Buffer.from(JSON.stringify(o));
}

hookTest('hook stdin: random and malformed OCI state never fails a container, never hangs, never writes stdout', async (t) => {
  const lab = mkdtempSync(join(tmpdir(), 'snhf-'));
  t.teardown(() => rmSync(lab, { recursive: true, force: true }));
  const bundle = join(lab, 'bundle');
  mkdirSync(bundle);
  // One plugin directory per behaviour, each with its swarmnet-hook.sock.
  const servers: Server[] = [];
  t.teardown(() => { for (const s of servers) s.close(); });
  const requests: Buffer[] = [];
  const dirs = {} as Record<PluginKind, string>;
  for (const kind of Object.keys(PLUGINS) as PluginKind[]) {
    dirs[kind] = join(lab, `plugins-${kind}`);
    const behave = PLUGINS[kind];
    if (!behave) continue;
    mkdirSync(join(dirs[kind], 'p1'), { recursive: true });
    const server = createServer((sock) => {
      const chunks: Buffer[] = [];
      sock.on('error', () => undefined);
      sock.on('data', (b: Buffer) => {
        chunks.push(b);
        const all = Buffer.concat(chunks);
        const nl = all.indexOf(0x0a);
        if (nl < 0) return;
        requests.push(all.subarray(0, nl));
        behave((x) => sock.write(x), () => sock.destroy());
      });
    });
    await new Promise<void>((r) => server.listen(join(dirs[kind], 'p1', 'swarmnet-hook.sock'), r));
    servers.push(server);
  }

  const seed = fuzzSeed();
  t.log(`seed ${seed} (FUZZ_SEED=${seed} replays these cases)`);
  const r = new Rng(seed);
  const kinds = Object.keys(PLUGINS) as PluginKind[];
  // Mostly no plugin (the input is what is fuzzed); a quarter against a stand-in that misbehaves.
  const cases = Array.from({ length: CASES }, () => {
    const plugin = r.chance(0.75) ? 'none' : r.pick(kinds);
    return { plugin, stdin: state(r, bundle) };
  });
  const started = Date.now();
  const results = await execMany(HOOK, lab, cases.map((c) => ({ argv: [Buffer.from('createContainer')], stdin: c.stdin, env: { SWARMNET_PLUGINS_DIR: dirs[c.plugin] } })),
    { drivers: DRIVERS, timeoutS: GUARD_S, env: { PATH: process.env.PATH, SWARMNET_HOOK_WAIT_MS: String(WAIT_MS) } });
  const seconds = (Date.now() - started) / 1000;
  const failures: string[] = [];
  results.forEach((o, i) => {
    const c = cases[i]!;
    const bad = o.hung ? 'did not exit by itself' : o.code !== 0 ? (o.code !== null && o.code < 0 ? `killed by signal ${-o.code}` : `exit ${o.code}`) : o.stdout.length ? `stdout ${JSON.stringify(o.stdout.toString())}` : undefined;
    if (bad) failures.push(`#${i} plugin=${c.plugin} stdin=${JSON.stringify(c.stdin.subarray(0, 200).toString('latin1'))} (${c.stdin.length} bytes): ${bad}; stderr ${o.stderr.toString().slice(0, 200)}`);
  });
  t.log(`${CASES} runs in ${seconds.toFixed(1)} s (${DRIVERS} drivers); ${requests.length} plugin requests`);
  t.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} failures`);
  t.is(results.length, CASES);

  // runc's log stays JSON lines (Docker parses it to show why a container failed).
  const log = join(bundle, 'log.json');
  t.true(existsSync(log), 'warnings went to the bundle\'s log.json');
  const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  const unparsable = lines.filter((l) => { try { const x = JSON.parse(l) as { level?: unknown; msg?: unknown }; return x.level !== 'warning' || typeof x.msg !== 'string' || !x.msg.startsWith('swarmnet-hook: '); } catch { return true; } });
  t.deepEqual(unparsable.slice(0, 5), [], `${unparsable.length} of ${lines.length} log lines are not runc JSON warnings`);
  // Every request the plugins got is one well-formed line naming a container and its namespace.
  const malformed = requests.filter((b) => {
    try {
      const q = JSON.parse(b.toString('utf8')) as { id?: unknown; bundle?: unknown; netns?: { dev?: unknown; ino?: unknown } };
      return typeof q.id !== 'string' || typeof q.bundle !== 'string' || !Number.isSafeInteger(q.netns?.dev) || !Number.isSafeInteger(q.netns?.ino);
    } catch { return true; }
  });
  t.deepEqual(malformed.slice(0, 5).map((b) => b.toString('latin1')), [], `${malformed.length} of ${requests.length} requests malformed`);
  t.true(requests.length > 0, 'the plugins were asked');
});
