import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { checkEmbeddedAllowed, secureEmbeddedEtcd, startEmbeddedEtcd } from '../../plugin/embedded-etcd.js';
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

(hasEtcd ? test : test.skip)('the embedded etcd serves on loopback with data under STATE_DIR and keeps it across restarts; only its root, whose password only root can read, may use it', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'swarmnet-state-'));
  const ports = { clientPort: await port(), peerPort: await port() };
  try {
    for (const round of [1, 2]) {
      const e = startEmbeddedEtcd({ stateDir, ...ports });
      // A guard, not a start-up time: it starts beside the other tests.
      await secureEmbeddedEtcd(e, 60_000);
      const c = new Etcd3({ hosts: e.endpoint, auth: e.auth });
      const anyone = new Etcd3({ hosts: e.endpoint });
      try {
        await t.notThrowsAsync(retry(() => c.put('k').value(String(round)).exec(), 60_000));
        if (round === 2) t.true(existsSync(join(stateDir, 'etcd', 'member')));
        if (round === 2) t.is(await c.get('k0').string(), '1', 'data written before the restart survives');
        if (round === 1) await c.put('k0').value('1').exec();
        // Any local user reaches the loopback port: without the password, nothing is read or written.
        await t.throwsAsync(anyone.put('k0').value('evil').exec(), { message: /user name is empty|permission denied/i });
        await t.throwsAsync(anyone.get('k0').string(), { message: /user name is empty|permission denied/i });
        t.is(statSync(join(stateDir, 'etcd-root-password')).mode & 0o777, 0o600);
      } finally {
        c.close();
        anyone.close();
        await e.stop();
      }
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

(hasEtcd ? test : test.skip)('an embedded etcd made without auth (an older plugin) gets it at the next start, its data kept', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'swarmnet-state-'));
  const ports = { clientPort: await port(), peerPort: await port() };
  try {
    const old = startEmbeddedEtcd({ stateDir, ...ports });
    const plain = new Etcd3({ hosts: old.endpoint });
    await retry(() => plain.put('kept').value('yes').exec(), 60_000);
    plain.close();
    await old.stop();
    const e = startEmbeddedEtcd({ stateDir, ...ports });
    try {
      await secureEmbeddedEtcd(e, 60_000);
      const c = new Etcd3({ hosts: e.endpoint, auth: e.auth });
      const anyone = new Etcd3({ hosts: e.endpoint });
      try {
        t.is(await c.get('kept').string(), 'yes');
        await t.throwsAsync(anyone.get('kept').string(), { message: /user name is empty|permission denied/i });
      } finally {
        c.close();
        anyone.close();
      }
    } finally {
      await e.stop();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

(hasEtcd ? test : test.skip)('a root password file removed while the data stayed: the plugin stops with what happened and both ways out, the data untouched', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'swarmnet-state-'));
  const ports = { clientPort: await port(), peerPort: await port() };
  try {
    const first = startEmbeddedEtcd({ stateDir, ...ports });
    await secureEmbeddedEtcd(first, 60_000);
    const c = new Etcd3({ hosts: first.endpoint, auth: first.auth });
    await retry(() => c.put('kept').value('yes').exec(), 60_000);
    c.close();
    await first.stop();
    const original = readFileSync(first.passwordFile, 'utf8');
    unlinkSync(first.passwordFile);

    const e = startEmbeddedEtcd({ stateDir, ...ports });
    try {
      const err = await t.throwsAsync(secureEmbeddedEtcd(e, 60_000));
      t.regex(err?.message ?? '', /was secured with another root password than the one in .*etcd-root-password: that file was removed or replaced/);
      t.regex(err?.message ?? '', /Put the original back, or.*move .*etcd away/);
      t.notRegex(err?.message ?? '', /did not answer/, 'not mistaken for an etcd that is not up');
      t.false(err?.message.includes(e.auth.password), 'no secret in the message');
    } finally {
      await e.stop();
    }
    // The way out it names: the original file back, and the data is all there.
    writeFileSync(first.passwordFile, original, { mode: 0o600 });
    const again = startEmbeddedEtcd({ stateDir, ...ports });
    try {
      await secureEmbeddedEtcd(again, 60_000);
      const c2 = new Etcd3({ hosts: again.endpoint, auth: again.auth });
      t.is(await c2.get('kept').string(), 'yes');
      c2.close();
    } finally {
      await again.stop();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
