import test from 'ava';
import { DEFAULT_ENGINE, ENGINE_NAMES, parseEngines } from '../../scripts/lab/engines.mjs';

test('--docker: one engine for every node, or one per node with the last repeating', (t) => {
  t.deepEqual(parseEngines('28', 3), ['28', '28', '28']);
  t.deepEqual(parseEngines('28,20.10', 3), ['28', '20.10', '20.10']);
  t.deepEqual(parseEngines(' 20.10 ', 1), ['20.10']);
  t.deepEqual(parseEngines(undefined, 2), [DEFAULT_ENGINE, DEFAULT_ENGINE]);
  t.true(ENGINE_NAMES.includes(DEFAULT_ENGINE));
});

test('--docker: unknown engines and too many entries are clear errors', (t) => {
  t.throws(() => parseEngines('27', 3), { message: /--docker 27: unknown engine; choose 28 or 20\.10/ });
  t.throws(() => parseEngines('', 3), { message: /--docker needs an engine/ });
  t.throws(() => parseEngines('28,20.10,28', 2), { message: /lists 3 engines for 2 node/ });
});
