import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { logger } from '../../common/log.js';
import { parseHookRequest, startHookServer } from '../../dns/inject/hook-server.js';
import type { HookAnswer } from '../../dns/inject/injector.js';

// The plugin's end of the createContainer hook: one line in, one line out; bad input is answered, never fatal.

async function server(t: ExecutionContext, handle: (ns: { dev: number; ino: number }) => Promise<HookAnswer>, answerWithinMs?: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'snhooksrv-'));
  const path = join(dir, 'swarmnet-hook.sock');
  const s = await startHookServer({ path, handle, log: logger('test'), ...(answerWithinMs ? { answerWithinMs } : {}) });
  t.teardown(async () => { await s.close(); rmSync(dir, { recursive: true, force: true }); });
  return path;
}

function ask(path: string, data: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(path, () => c.write(data));
    let out = '';
    c.on('data', (d) => { out += d; });
    c.on('close', () => resolve(out));
    c.on('error', () => resolve(out));
  });
}

test('request validation', (t) => {
  t.deepEqual(parseHookRequest('{"id":"abc","bundle":"/b","netns":{"dev":4,"ino":4026532000}}'), { id: 'abc', ns: { dev: 4, ino: 4026532000 } });
  for (const bad of ['', 'x', '[]', 'null', '{"id":"a b","netns":{"dev":1,"ino":2}}', '{"id":"a","netns":{"dev":-1,"ino":2}}', '{"id":"a","netns":{"dev":1,"ino":0}}',
    '{"id":"a","netns":{"dev":1.5,"ino":2}}', '{"id":"a"}', `{"id":"${'a'.repeat(129)}","netns":{"dev":1,"ino":2}}`]) {
    t.is(typeof parseHookRequest(bad), 'string', bad);
  }
});

test('answers served / not ours / errors; bad and oversized requests get an error line; the server keeps serving', async (t) => {
  const seen: number[] = [];
  const path = await server(t, async (ns) => { seen.push(ns.ino); return ns.ino === 7 ? { served: true } : ns.ino === 8 ? { served: false, error: 'boom' } : { served: false }; });
  t.is(await ask(path, '{"id":"c1","netns":{"dev":1,"ino":7}}\n'), '{"ok":true,"served":true}\n');
  t.is(await ask(path, '{"id":"c1","netns":{"dev":1,"ino":9}}\n'), '{"ok":true,"served":false}\n');
  t.is(await ask(path, '{"id":"c1","netns":{"dev":1,"ino":8}}\n'), '{"ok":false,"error":"boom"}\n');
  t.regex(await ask(path, 'garbage\n'), /^\{"ok":false,"error":"request is not JSON"\}\n$/);
  t.regex(await ask(path, Buffer.alloc(10_000, 0x41)), /request too long/);
  t.is(await ask(path, '{"id":"c1","netns":{"dev":1,"ino":7}}\n'), '{"ok":true,"served":true}\n');
  t.deepEqual(seen, [7, 9, 8, 7]);
});

test('a handler that never answers: the hook still gets an answer in time', async (t) => {
  const path = await server(t, () => new Promise<HookAnswer>(() => {}), 300);
  t.regex(await ask(path, '{"id":"c1","netns":{"dev":1,"ino":7}}\n'), /"ok":false,"error":"not served within 300 ms"/);
});
