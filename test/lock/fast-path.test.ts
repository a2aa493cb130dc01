// The uncontended fast path (tryLock-3.lua): a non-fair first attempt touches only the lock, the
// fence counter and the epoch; it never joins the waiter queue, and a caller that fails it still
// queues on its retry, so no wake-up is lost. Both clients.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { BackendLockProvider, FenceExhaustedError, FENCE_COUNTER_BITS, MemoryFenceAnchor, RedisLockBackend, type RedisClient } from '../../packages/lock/src/index.ts';
import { lockScript } from '../../packages/lock/src/redis/scripts.ts';
import { connect, counting, redisUrl, uniquePrefix, type ClientKind } from './redis-harness.ts';

for (const kind of ['ioredis', 'node-redis'] as ClientKind[]) {
  describe(`uncontended fast path (${kind})`, () => {
    let srv: { url: string; stop(): Promise<void> };
    let raw: RedisClient;
    const backends: RedisLockBackend[] = [];
    before(async () => {
      srv = await redisUrl();
      raw = await connect(kind, srv.url);
    });
    after(async () => {
      await Promise.all(backends.map((b) => b.close()));
      await raw.quit();
      await srv.stop();
    });
    const backend = (prefix: string, client: RedisClient = raw) => {
      const b = new RedisLockBackend({ client, prefix, fenceAnchor: new MemoryFenceAnchor(7n) });
      backends.push(b);
      return b;
    };

    it('takes a free lock with a fence from the key counter, and reports a held one without queueing', async () => {
      const prefix = uniquePrefix('fast');
      const be = backend(prefix);
      const base = { key: 'k', ttlMs: 10_000, fair: false, waiterTtlMs: 3_000, queued: false };
      const a = await be.attempt({ ...base, ownerId: 'a' });
      assert.ok(a.acquired);
      assert.equal(a.fence >> FENCE_COUNTER_BITS, 8n, 'the installed epoch');
      assert.equal(a.fence & ((1n << FENCE_COUNTER_BITS) - 1n), 1n);
      const b = await be.attempt({ ...base, ownerId: 'b' });
      assert.equal(b.acquired, false);
      assert.ok(!b.acquired && b.notQueued === true && b.retryAfterMs > 9_000 && b.retryAfterMs <= 10_000);
      assert.equal(await raw.command(['EXISTS', `${prefix}q:k`, `${prefix}ql:k`]), 0, 'no queue keys');
      assert.equal(await be.release('k', 'a'), 'released');
      const c = await be.attempt({ ...base, ownerId: 'c' });
      assert.ok(c.acquired && c.fence === a.fence + 1n);
      await be.release('k', 'c');
    });

    it('refuses to issue a fence past the counter limit and leaves the lock free', async () => {
      const prefix = uniquePrefix('fastexh');
      const be = backend(prefix);
      const first = await be.attempt({ key: 'k', ownerId: 'a', ttlMs: 10_000, fair: false, waiterTtlMs: 3_000, queued: false });
      assert.ok(first.acquired);
      await be.release('k', 'a');
      await raw.command(['SET', `${prefix}f:k`, String((1n << FENCE_COUNTER_BITS) - 1n)]);
      await assert.rejects(be.attempt({ key: 'k', ownerId: 'b', ttlMs: 10_000, fair: false, waiterTtlMs: 3_000, queued: false }), FenceExhaustedError);
      assert.equal(await raw.command(['EXISTS', `${prefix}l:k`]), 0);
    });

    it('a failed tryAcquire leaves no queue entry and sends no leaveQueue', async () => {
      const prefix = uniquePrefix('fasttry');
      const counted = counting(raw);
      const p = new BackendLockProvider(backend(prefix, counted.client));
      const holder = await p.acquire('k');
      assert.equal(await p.tryAcquire('k'), null);
      assert.equal(counted.calls.get(lockScript('leaveQueue').sha) ?? 0, 0);
      assert.equal(counted.calls.get(lockScript('acquireLock').sha) ?? 0, 0, 'only the fast path ran');
      assert.equal(await raw.command(['EXISTS', `${prefix}q:k`, `${prefix}ql:k`]), 0);
      await holder.release();
      await p.close();
    });

    it('a non-fair waiter that failed the fast path joins the queue on its retry and is woken by the release', async () => {
      const prefix = uniquePrefix('fastwait');
      const p = new BackendLockProvider(backend(prefix));
      const q = new BackendLockProvider(backend(prefix));
      const holder = await p.acquire('k', { ttlMs: 10_000 });
      const waiting = q.acquire('k', { ttlMs: 10_000, timeoutMs: 10_000 });
      let queuedLen = 0;
      for (let i = 0; i < 100 && queuedLen === 0; i++) {
        await delay(10);
        queuedLen = Number(await raw.command(['LLEN', `${prefix}q:k`]));
      }
      assert.equal(queuedLen, 1, 'the waiter is queued');
      const t0 = performance.now();
      await holder.release();
      const lease = await waiting;
      const took = performance.now() - t0;
      assert.ok(took < 1_000, `woken after ${took.toFixed(0)} ms, not after the 10 s TTL`);
      assert.ok(lease.fence > holder.fence);
      await lease.release();
      await Promise.all([p.close(), q.close()]);
    });
  });
}
