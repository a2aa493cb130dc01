// Direct hand-off (includes/wakeNext.lua): a release makes the queue's head the owner, with the
// next fence, and the wake-up tells it so; the waiter needs no attempt of its own. What must hold:
// the head gets the lock with a fence above the last; a waiter that gives up while it is handed the
// lock gives it back (to the next in line); the lease is dated no later than the hand-off, through
// the backend's clock, not from when the message arrived; Redlock's nodes never hand off.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { BackendLockProvider, FENCE_COUNTER_BITS, MemoryFenceAnchor, RedisLockBackend, type RedisClient } from '../../packages/lock/src/index.ts';
import { lockScript } from '../../packages/lock/src/redis/scripts.ts';
import { connect, counting, redisUrl, uniquePrefix, type ClientKind } from './redis-harness.ts';

const counter = (fence: bigint) => fence & ((1n << FENCE_COUNTER_BITS) - 1n);

/** Resolves once n waiters of the key asked for the hand-off (they listen and are queued). */
async function queued(raw: RedisClient, handoffKey: string, n: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (Number(await raw.command(['HLEN', handoffKey])) >= n) return;
    await delay(4);
  }
  throw new Error(`the queue never reached ${n} waiters`);
}

for (const kind of ['ioredis', 'node-redis'] as ClientKind[]) {
  describe(`direct hand-off (${kind})`, () => {
    let srv: { url: string; stop(): Promise<void> };
    let raw: RedisClient;
    const closers: (() => Promise<void>)[] = [];
    before(async () => {
      srv = await redisUrl();
      raw = await connect(kind, srv.url);
    });
    after(async () => {
      for (const c of closers.reverse()) await c();
      await raw.quit();
      await srv.stop();
    });
    const backend = async (prefix: string, anchor: MemoryFenceAnchor, count = false) => {
      const client = await connect(kind, srv.url);
      const c = count ? counting(client) : undefined;
      const be = new RedisLockBackend({ client: c?.client ?? client, prefix, fenceAnchor: anchor });
      closers.push(async () => {
        await be.close();
        await client.quit();
      });
      return { be, calls: c?.calls };
    };

    for (const fair of [false, true]) {
      it(`a release hands the lock to the queued waiter: its acquire resolves with the next fence and no attempt of its own${fair ? ' (fair)' : ''}`, async () => {
        const prefix = uniquePrefix('handoff');
        const anchor = new MemoryFenceAnchor();
        const a = new BackendLockProvider((await backend(prefix, anchor)).be);
        const w = await backend(prefix, anchor, true);
        const b = new BackendLockProvider(w.be);
        const first = await a.acquire('k', { ttlMs: 10_000, fair });
        const waiting = b.acquire('k', { ttlMs: 10_000, timeoutMs: 10_000, fair });
        await queued(raw, `${prefix}qh:k`, 1);
        const attemptsBefore = w.calls!.get(lockScript('acquireLock').sha) ?? 0;
        assert.equal(Number(await raw.command(['LLEN', `${prefix}q:k`])), 1);
        await first.release();
        const second = await waiting;
        assert.equal(second.fence, first.fence + 1n, 'the next fence of the key');
        assert.equal(w.calls!.get(lockScript('acquireLock').sha) ?? 0, attemptsBefore, 'no attempt after the release');
        assert.equal(await raw.command(['GET', `${prefix}l:k`]), second.ownerId);
        assert.equal(Number(await raw.command(['EXISTS', `${prefix}q:k`, `${prefix}ql:k`, `${prefix}qh:k`])), 0, 'no queue state left');
        const pttl = Number(await raw.command(['PTTL', `${prefix}l:k`]));
        assert.ok(pttl > 9_000 && pttl <= 10_000, `the waiter's own ttl (PTTL ${pttl})`);
        await second.release();
        assert.equal(await raw.command(['GET', `${prefix}l:k`]), null);
      });
    }

    it('a waiter handed the lock after it stopped listening gives it back when it leaves the queue, to the next in line', async () => {
      const prefix = uniquePrefix('handoff');
      const anchor = new MemoryFenceAnchor();
      const { be } = await backend(prefix, anchor);
      const base = { key: 'k', ttlMs: 10_000, fair: false, waiterTtlMs: 3_000 };
      const holder = await be.attempt({ ...base, ownerId: 'holder', queued: false });
      assert.ok(holder.acquired);
      // b and c queue asking for the hand-off (as listening waiters do), b first
      for (const ownerId of ['b', 'c']) {
        const r = await be.attempt({ ...base, ownerId, queued: true, handoff: true });
        assert.ok(!r.acquired && typeof r.serverMs === 'number' && r.serverMs > 1e12, 'a queued reply carries the server time');
      }
      // b gives up, but the release reaches Redis first: b is handed the lock
      assert.equal(await be.release('k', 'holder'), 'released');
      assert.equal(await raw.command(['GET', `${prefix}l:k`]), 'b');
      const fenceB = BigInt((await raw.command(['GET', `${prefix}f:k`])) as string);
      assert.equal(fenceB, counter(holder.fence) + 1n);
      // then b's leaveQueue: the lock goes on to c, with a higher fence, not left to b's ttl
      await be.leaveQueue('k', 'b');
      assert.equal(await raw.command(['GET', `${prefix}l:k`]), 'c');
      assert.equal(BigInt((await raw.command(['GET', `${prefix}f:k`])) as string), fenceB + 1n);
      // c gives up too: nobody left, the lock is free
      await be.leaveQueue('k', 'c');
      assert.equal(await raw.command(['GET', `${prefix}l:k`]), null);
      assert.equal(Number(await raw.command(['EXISTS', `${prefix}q:k`, `${prefix}ql:k`, `${prefix}qh:k`])), 0);
    });

    it('a waiter whose acquire timed out is out of the queue by then: a release after the timeout leaves the lock free', async () => {
      const prefix = uniquePrefix('handoff');
      const anchor = new MemoryFenceAnchor();
      const a = new BackendLockProvider((await backend(prefix, anchor)).be);
      // the waiter's leaveQueue reaches Redis 50 ms late (a slow link; or its first call, which
      // loads the script after NOSCRIPT): its acquire must not reject before it got there
      const client = await connect(kind, srv.url);
      const leaveSha = lockScript('leaveQueue').sha;
      const slow: RedisClient = { ...client, kind: client.kind, evalsha: (sha, keys, args) => (sha === leaveSha ? delay(50).then(() => client.evalsha(sha, keys, args)) : client.evalsha(sha, keys, args)) };
      const be = new RedisLockBackend({ client: slow, prefix, fenceAnchor: anchor });
      closers.push(async () => {
        await be.close();
        await client.quit();
      });
      const b = new BackendLockProvider(be);
      const first = await a.acquire('k', { ttlMs: 10_000 });
      await assert.rejects(b.acquire('k', { ttlMs: 10_000, timeoutMs: 100 }), { name: 'LockTimeoutError' });
      await first.release();
      assert.equal(await raw.command(['GET', `${prefix}l:k`]), null, 'not handed to the waiter that gave up');
      assert.equal(Number(await raw.command(['EXISTS', `${prefix}q:k`, `${prefix}ql:k`, `${prefix}qh:k`])), 0);
    });

    it('a waiter that did not ask for the hand-off (polling, or a Redlock node) is only woken', async () => {
      const prefix = uniquePrefix('handoff');
      const { be } = await backend(prefix, new MemoryFenceAnchor());
      const base = { key: 'k', ttlMs: 10_000, fair: false, waiterTtlMs: 3_000 };
      assert.ok((await be.attempt({ ...base, ownerId: 'holder', queued: false })).acquired);
      assert.equal((await be.attempt({ ...base, ownerId: 'b', queued: true })).acquired, false);
      assert.equal(await be.release('k', 'holder'), 'released');
      assert.equal(await raw.command(['GET', `${prefix}l:k`]), null, 'free: b takes it with its own attempt');
      assert.ok((await be.attempt({ ...base, ownerId: 'b', queued: true })).acquired);
    });

    it("a handed-over lease is dated from the hand-off on the backend's clock: never later than Redis's expiry, not earlier than the wait", async () => {
      const prefix = uniquePrefix('handoff');
      const anchor = new MemoryFenceAnchor();
      const a = new BackendLockProvider((await backend(prefix, anchor)).be);
      // afterAttempt delays the grant by 150 ms after the hand-off arrived: a lease dated from its
      // arrival (or from the grant) would outlive the lock in Redis by that much
      const b = new BackendLockProvider((await backend(prefix, anchor)).be, { afterAttempt: () => delay(150) });
      const ttlMs = 2_000;
      const first = await a.acquire('k', { ttlMs: 10_000 });
      const waiting = b.acquire('k', { ttlMs, timeoutMs: 10_000 });
      await queued(raw, `${prefix}qh:k`, 1);
      // a long wait between the waiter's last attempt and the hand-off: dating the lease from that
      // attempt alone would cost the lease these 400 ms
      await delay(400);
      const releasedAt = Date.now();
      await first.release();
      const lease = await waiting;
      const pttl = Number(await raw.command(['PTTL', `${prefix}l:k`]));
      const redisExpiry = Date.now() + pttl;
      assert.ok(lease.expiresAt <= redisExpiry + 1, `lease expires ${lease.expiresAt - redisExpiry} ms after the lock in Redis`);
      const drift = Math.floor(ttlMs * 0.01) + 2;
      assert.ok(lease.expiresAt >= releasedAt + ttlMs - drift - 60, `lease dated ${releasedAt + ttlMs - drift - lease.expiresAt} ms before the hand-off`);
      await lease.release();
    });
  });
}
