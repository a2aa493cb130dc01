// Configuration: defaults, every problem reported at once, and the README's table in sync.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ConfigError, loadConfig, SETTINGS } from '../../src/service/config.ts';

test('defaults: port 3000 on loopback, embedded PGlite in ./.allot, conditional', () => {
  const c = loadConfig({});
  assert.equal(c.port, 3000);
  assert.equal(c.host, '127.0.0.1');
  assert.match(c.dataDir, /\.allot$/);
  assert.match(c.databaseUrl, /^pglite:\/\/.*\.allot\/pgdata$/);
  assert.equal(c.defaultStrategy, 'conditional');
  assert.equal(c.allowUnsafeStrategies, false);
  assert.equal(c.adminToken, undefined);
});

test('flags override the environment', () => {
  const c = loadConfig({ PORT: '4000', DATABASE_URL: 'postgres://a@b/c' }, { PORT: '5000' });
  assert.equal(c.port, 5000);
  assert.equal(c.databaseUrl, 'postgres://a@b/c');
});

test('every problem is reported, one line each, naming the variable', () => {
  let err: unknown;
  try {
    loadConfig({ PORT: 'abc', DATABASE_URL: 'redis://x', LOG_LEVEL: 'loud', ALLOT_DEFAULT_STRATEGY: 'magic', ALLOT_ADMIN_TOKEN: 'short', DB_POOL_SIZE: '0', ALLOT_ALLOW_UNSAFE_STRATEGIES: 'maybe' });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  const names = ['PORT', 'DATABASE_URL', 'LOG_LEVEL', 'ALLOT_DEFAULT_STRATEGY', 'ALLOT_ADMIN_TOKEN', 'DB_POOL_SIZE', 'ALLOT_ALLOW_UNSAFE_STRATEGIES'];
  assert.equal(err.problems.length, names.length);
  for (const n of names) assert.ok(err.problems.some((p) => p.startsWith(n)), `a problem names ${n}`);
});

test('DB_IDLE_TX_TIMEOUT_MS: 2000 by default, 100 to 600000', () => {
  assert.equal(loadConfig({}).dbIdleTxTimeoutMs, 2000);
  assert.equal(loadConfig({ DB_IDLE_TX_TIMEOUT_MS: '1500' }).dbIdleTxTimeoutMs, 1500);
  for (const bad of ['50', '600001', '2s']) {
    assert.throws(() => loadConfig({ DB_IDLE_TX_TIMEOUT_MS: bad }), (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith('DB_IDLE_TX_TIMEOUT_MS'));
  }
});

test('the README configuration table lists every setting with its default', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const rows = new Map([...readme.matchAll(/^\| `([A-Z_]+)` \| ([^|]*) \|/gm)].map((m) => [m[1]!, m[2]!.trim()]));
  assert.deepEqual([...rows.keys()].sort(), SETTINGS.map(([n]) => n).sort());
  for (const [name, def] of SETTINGS) assert.equal(rows.get(name), def, `${name} default in README`);
});

test('idempotency key retention (at least 24 h) and purge interval (0: off); the template cache dir', () => {
  const c = loadConfig({});
  assert.equal(c.keyRetentionMs, 7 * 86_400_000);
  assert.equal(c.keyPurgeIntervalMs, 600_000);
  assert.equal(loadConfig({ ALLOT_KEY_PURGE_INTERVAL_MS: '0' }).keyPurgeIntervalMs, 0);
  assert.equal(loadConfig({ ALLOT_KEY_RETENTION_MS: '86400000' }).keyRetentionMs, 86_400_000);
  assert.throws(() => loadConfig({ ALLOT_KEY_RETENTION_MS: '3600000' }), (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith('ALLOT_KEY_RETENTION_MS=3600000 is not a whole number from 86400000'));
  assert.equal(loadConfig({ ALLOT_CACHE_DIR: 'off' }).cacheDir, null);
  assert.equal(loadConfig({ ALLOT_CACHE_DIR: '/var/cache/allot' }).cacheDir, '/var/cache/allot');
  assert.equal(loadConfig({ XDG_CACHE_HOME: '/xdg' }).cacheDir, '/xdg/allot');
});

test('ALLOT_REDIS_ATOMIC_WRITE_BEHIND_MAX: 2000 by default, a positive whole number, anything else refused', () => {
  assert.equal(loadConfig({}).redisAtomicWriteBehindMax, 2_000);
  assert.equal(loadConfig({ ALLOT_REDIS_ATOMIC_WRITE_BEHIND_MAX: '50' }).redisAtomicWriteBehindMax, 50);
  for (const bad of ['0', '-1', '1.5', 'lots', '1000001']) {
    assert.throws(() => loadConfig({ ALLOT_REDIS_ATOMIC_WRITE_BEHIND_MAX: bad }), (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith(`ALLOT_REDIS_ATOMIC_WRITE_BEHIND_MAX=${bad} is not a whole number from 1 to 1000000`));
  }
});

test('ALLOT_GROUP_COMMIT_TRANSACTIONAL: off by default, 1/0, anything else refused', () => {
  assert.equal(loadConfig({}).groupCommitTransactional, false);
  assert.equal(loadConfig({ ALLOT_GROUP_COMMIT_TRANSACTIONAL: '1' }).groupCommitTransactional, true);
  assert.equal(loadConfig({ ALLOT_GROUP_COMMIT_TRANSACTIONAL: 'off' }).groupCommitTransactional, false);
  assert.throws(() => loadConfig({ ALLOT_GROUP_COMMIT_TRANSACTIONAL: 'sometimes' }), (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith('ALLOT_GROUP_COMMIT_TRANSACTIONAL=sometimes must be 1/true/yes/on or 0/false/no/off'));
});

test('ALLOT_REDIS_ATOMIC_MODE: durable by default, fast, anything else refused', () => {
  assert.equal(loadConfig({}).redisAtomicMode, 'durable');
  assert.equal(loadConfig({ ALLOT_REDIS_ATOMIC_MODE: 'fast' }).redisAtomicMode, 'fast');
  assert.throws(() => loadConfig({ ALLOT_REDIS_ATOMIC_MODE: 'quick' }), (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith('ALLOT_REDIS_ATOMIC_MODE=quick must be durable'));
});
