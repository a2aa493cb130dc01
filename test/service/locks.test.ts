// The service's locks: in-process fences survive a restart (a fresh SQL epoch each start), and
// with Redis configured the lock metrics reach /metrics and /readyz reports Redis.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildApp } from '../../src/http/app.ts';
import { AllotService } from '../../src/service/service.ts';
import { envUrl } from '../helpers/servers.ts';

const base = { dbPoolSize: 2, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false };

test('redis-lock on in-process locks keeps working across a restart (fences stay above the stored ones)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'allot-locks-'));
  const config = { ...base, databaseUrl: `pglite://${dir}` };
  try {
    let s = await AllotService.open({ config });
    assert.equal(s.locks.kind, 'in-process');
    await s.createCampaign({ id: 'c', kind: 'coupon', name: 'n', stock: 5, perUserLimit: 2, strategy: 'redis-lock' });
    assert.equal((await s.claim('c', 'u', null)).status, 201);
    await s.close();
    s = await AllotService.open({ config });
    try {
      // Same user, same lock key: a fence from a restarted in-memory counter would be stale.
      assert.equal((await s.claim('c', 'u', null)).status, 201);
      assert.equal((await s.audit('c')).ok, true);
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with REDIS_URL: Redis locks, lock metrics on /metrics, Redis in /readyz', async () => {
  const service = await AllotService.open({ config: { ...base, databaseUrl: 'memory://', locksUrl: envUrl('REDIS_URL'), lockPrefix: `t-${randomUUID().slice(0, 8)}:` } });
  const app = await buildApp({ service, adminToken: 'locks-test-token-0123456789abcdef' });
  try {
    assert.equal(service.locks.kind, 'redis');
    await service.createCampaign({ id: 'r', kind: 'coupon', name: 'n', stock: 3, strategy: 'redis-lock' });
    const outs = await Promise.all(['a', 'b', 'c', 'd', 'a'].map((u) => service.claim('r', u, null)));
    assert.equal(outs.filter((o) => o.status === 201).length, 3);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.equal(ready.json().backends.locks, 'ok');
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /allot_lock_acquire_seconds_count\{[^}]*backend="redis/);
    assert.match(metrics, /allot_lock_fence_rejections_total/);
  } finally {
    await app.close();
    await service.close();
  }
});

test('an unreachable REDIS_URL fails start-up with a message naming it', async () => {
  await assert.rejects(
    AllotService.open({ config: { ...base, databaseUrl: 'memory://', locksUrl: 'redis://127.0.0.1:1' } }),
    /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/,
  );
});
