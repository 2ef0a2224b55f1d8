import test from 'ava';
import { run, toolEnv } from '../../common/exec.js';

test('system tools never resolve to node_modules/.bin (npm puts an `nft` that exits 0 there)', async (t) => {
  const env = { PATH: '/work/x/node_modules/.bin:/work/node_modules/.bin/:/usr/sbin:/usr/bin', HOME: '/root' };
  t.deepEqual(toolEnv(env), { PATH: '/usr/sbin:/usr/bin', HOME: '/root' });
  t.is(toolEnv({ PATH: 'node_modules/.bin' }).PATH, '/usr/sbin:/usr/bin:/sbin:/bin', 'never an empty PATH');
  // Under `npx ava` the first `nft` on PATH is the npm one; run() must find the system's.
  const r = await run('which', ['-a', 'nft'], { allowFailure: true });
  t.false(r.stdout.includes('node_modules'), r.stdout);
});
