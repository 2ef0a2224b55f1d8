import test from 'ava';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { checkEmbeddedAllowed, startEmbeddedEtcd } from '../../plugin/embedded-etcd.js';
import { hasEtcd } from '../helpers/etcd.js';
import { retry } from '../helpers/wait.js';

const port = (): Promise<number> => new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const a = s.address();
    s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
  });
});

test('the embedded etcd refuses a multi-node swarm with a clear message', (t) => {
  t.notThrows(() => checkEmbeddedAllowed(1));
  t.throws(() => checkEmbeddedAllowed(3), { message: /3 nodes.*set ETCD_ENDPOINTS/ });
});

(hasEtcd ? test : test.skip)('the embedded etcd serves on loopback with data under STATE_DIR and keeps it across restarts', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'swarmnet-state-'));
  const ports = { clientPort: await port(), peerPort: await port() };
  try {
    for (const round of [1, 2]) {
      const e = startEmbeddedEtcd({ stateDir, ...ports });
      const c = new Etcd3({ hosts: e.endpoint });
      try {
        // until etcd is up (a guard, not a start-up time: it starts beside the other tests)
        await t.notThrowsAsync(retry(() => c.put('k').value(String(round)).exec(), 60_000));
        if (round === 2) t.true(existsSync(join(stateDir, 'etcd', 'member')));
        if (round === 2) t.is(await c.get('k0').string(), '1', 'data written before the restart survives');
        if (round === 1) await c.put('k0').value('1').exec();
      } finally {
        c.close();
        await e.stop();
      }
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
