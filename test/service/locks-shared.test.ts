// Lock-based strategies with no LOCKS_URL: on PostgreSQL two instances share a real lock (the
// advisory-lock backend on the service's own database), so a newer instance's fences never lock an
// older one out; on MariaDB the configuration is refused with a message that says to set
// LOCKS_URL, while strategies that need no lock keep working. (PGlite keeps in-process locks:
// test/service/locks.test.ts.)
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { AllotService } from '../../src/service/service.ts';
import { ConfigError, loadConfig } from '../../src/service/config.ts';
import { isAllotError } from '../../src/core/errors.ts';
import { lockOpener, UnsupportedLockSchemeError } from '../../src/service/locks.ts';

const base = { dbPoolSize: 3, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false };
const pg = process.env.DATABASE_URL_PG;
const mysql = process.env.DATABASE_URL_MYSQL;

describe('redis-lock with no LOCKS_URL on PostgreSQL: two instances', { skip: pg ? false : 'DATABASE_URL_PG is not set (run with npm test)' }, () => {
  test('claims on the older instance keep succeeding after the newer one wrote a fence', async () => {
    const lockPrefix = `shared-${randomUUID().slice(0, 8)}:`;
    const config = { ...base, databaseUrl: pg!, lockPrefix };
    const older = await AllotService.open({ config });
    const newer = await AllotService.open({ config });
    try {
      assert.equal(older.locks.kind, newer.locks.kind);
      assert.notEqual(older.locks.kind, 'in-process', 'in-process locks are not shared by two instances');
      const id = `shared-${randomUUID().slice(0, 8)}`;
      await older.createCampaign({ id, kind: 'coupon', name: 'n', stock: 10, perUserLimit: 4, strategy: 'redis-lock' });
      // The newer instance writes the user's fence first; then the older one claims for the
      // same user (same lock, same fence row) and must not be refused as stale.
      assert.equal((await newer.claim(id, 'u', null)).status, 201);
      const o = await older.claim(id, 'u', null);
      assert.equal(o.status, 201, `older instance: ${JSON.stringify(o.body)}`);
      assert.equal((await newer.claim(id, 'u', null)).status, 201);
      assert.equal((await older.claim(id, 'u', null)).status, 201);
      const fifth = await older.claim(id, 'u', null);
      assert.equal(fifth.status, 409, 'the per-user limit of 4 holds');
      assert.equal((await older.audit(id)).ok, true);
    } finally {
      await newer.close();
      await older.close();
    }
  });
});

describe('redis-lock with no LOCKS_URL on MariaDB', { skip: mysql ? false : 'DATABASE_URL_MYSQL is not set (run with npm test)' }, () => {
  test('a redis-lock campaign is refused with a message naming LOCKS_URL; conditional works', async () => {
    const s = await AllotService.open({ config: { ...base, databaseUrl: mysql!, lockPrefix: `maria-${randomUUID().slice(0, 8)}:` } });
    try {
      assert.equal(s.locks.kind, 'none');
      const id = `m-${randomUUID().slice(0, 8)}`;
      await assert.rejects(
        s.createCampaign({ id, kind: 'coupon', name: 'n', stock: 10, strategy: 'redis-lock' }),
        (err: unknown) => isAllotError(err, 'VALIDATION_FAILED') && /LOCKS_URL/.test(err.message),
      );
      await s.createCampaign({ id, kind: 'coupon', name: 'n', stock: 10 });
      assert.equal((await s.claim(id, 'u', null)).status, 201);
      // /readyz (through ready()): the instance serves; locks are not configured.
      assert.deepEqual((await s.ready()).backends, { database: 'ok', locks: 'none' });
    } finally {
      await s.close();
    }
  });

  test('ALLOT_DEFAULT_STRATEGY=redis-lock on MariaDB with no LOCKS_URL is refused at start', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'mysql://u:p@127.0.0.1:1/db', ALLOT_DEFAULT_STRATEGY: 'redis-lock' }),
      (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /LOCKS_URL/.test(p) && /redis-lock/.test(p)),
    );
    assert.doesNotThrow(() => loadConfig({ DATABASE_URL: 'mysql://u:p@127.0.0.1:1/db', ALLOT_DEFAULT_STRATEGY: 'redis-lock', LOCKS_URL: 'redis://127.0.0.1:1' }));
  });
});

test('LOCKS_URL schemes: the supported ones are accepted, any other is refused with the list', () => {
  for (const url of ['redis://h', 'rediss://h', 'redis-sentinel://h:26379/mymaster', 'rediss-sentinel://h:26379/mymaster', 'redis-cluster://a,b', 'rediss-cluster://a,b', 'redlock://a,b,c', 'etcd://h:2379', 'postgres://u@h/db', 'postgresql://u@h/db']) {
    assert.equal(loadConfig({ LOCKS_URL: url }).locksUrl, url);
  }
  assert.throws(() => loadConfig({ LOCKS_URL: 'zookeeper://h' }), (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /LOCKS_URL/.test(p) && /redis-sentinel/.test(p) && /etcd/.test(p)));
  assert.throws(() => loadConfig({ LOCKS_DOWN: 'maybe' }), (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /LOCKS_DOWN/.test(p) && /degrade/.test(p)));
  assert.equal(loadConfig({}).locksDown, 'degrade');
  assert.equal(loadConfig({ LOCKS_DOWN: 'refuse' }).locksDown, 'refuse');
});

test('the dispatch: an unknown scheme is a clear "unsupported LOCKS_URL scheme" error listing the supported ones', async () => {
  await assert.rejects(lockOpener('zookeeper'), (err: unknown) => err instanceof UnsupportedLockSchemeError && /unsupported LOCKS_URL scheme "zookeeper:\/\/"/.test(err.message) && /redis-sentinel:\/\//.test(err.message));
  assert.equal(typeof (await lockOpener('rediss')), 'function');
  assert.equal(await lockOpener('rediss-sentinel'), await lockOpener('redis-sentinel'));
  assert.equal(await lockOpener('rediss-cluster'), await lockOpener('redis-cluster'));
});
