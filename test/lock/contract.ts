// The lock contract: one suite every provider (memory, Redis via ioredis, Redis via node-redis) passes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import {
  BackendLockProvider,
  LockAbortedError,
  LockLostError,
  LockTimeoutError,
  LockValidityError,
  type LockBackend,
  type LockEvent,
  type LockProvider,
  type LockProviderOptions,
} from '../../packages/lock/src/index.ts';

/** The usual harness over one store: a fresh backend for every provider (so providers contend like
 * separate processes), the first one shared; close() closes every backend, then the store. */
export function backendHarness(newBackend: () => LockBackend, closeStore: () => Promise<void> | void): ContractHarness & { make(opts?: LockProviderOptions): BackendLockProvider } {
  const backends: LockBackend[] = [];
  const next = () => {
    const b = newBackend();
    backends.push(b);
    return b;
  };
  const shared = next();
  return {
    make: (opts) => new BackendLockProvider(next(), opts),
    backend: () => shared,
    close: async () => {
      await Promise.all(backends.map((b) => b.close()));
      await closeStore();
    },
  };
}

export interface ContractHarness {
  /** a provider sharing the harness's store (distinct providers contend with each other) */
  make(opts?: LockProviderOptions): LockProvider;
  backend(): LockBackend;
  close(): Promise<void>;
}

let unique = 0;
const k = (name: string) => `${name}:${process.pid}:${Date.now().toString(36)}:${++unique}`;

export function lockContract(name: string, setup: () => Promise<ContractHarness>): void {
  describe(`lock contract: ${name}`, () => {
    let h: ContractHarness;
    let p: LockProvider;
    const rejections: unknown[] = [];
    const onRejection = (r: unknown) => rejections.push(r);

    before(async () => {
      process.on('unhandledRejection', onRejection);
      h = await setup();
      p = h.make();
    });
    after(async () => {
      process.off('unhandledRejection', onRejection);
      await h.close();
      assert.deepEqual(rejections, [], 'no unhandled rejections');
    });

    it('excludes: 200 concurrent contenders, never two holders, all eventually hold, fences increase', async () => {
      const key = k('excl');
      const q = h.make();
      let holders = 0;
      let maxHolders = 0;
      const fences: bigint[] = [];
      await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const lease = await (i % 2 ? p : q).acquire(key, { ttlMs: 10_000, timeoutMs: 30_000 });
          holders++;
          maxHolders = Math.max(maxHolders, holders);
          fences.push(lease.fence);
          await delay(i % 3 === 0 ? 1 : 0);
          holders--;
          await lease.release();
        }),
      );
      assert.equal(maxHolders, 1);
      assert.equal(fences.length, 200);
      for (let i = 1; i < fences.length; i++) assert.ok(fences[i]! > fences[i - 1]!, `fence ${fences[i]} after ${fences[i - 1]}`);
    });

    it('issues strictly increasing fences across sequential acquisitions and providers', async () => {
      const key = k('fence');
      const q = h.make();
      let last = -1n;
      for (let i = 0; i < 20; i++) {
        const lease = await (i % 2 ? p : q).acquire(key, { ttlMs: 5_000 });
        assert.ok(lease.fence > last);
        last = lease.fence;
        await lease.release();
      }
    });

    it('tryAcquire returns null while held and a lease when free', async () => {
      const key = k('try');
      const a = await p.tryAcquire(key, { ttlMs: 5_000 });
      assert.ok(a);
      assert.equal(await p.tryAcquire(key, { ttlMs: 5_000 }), null);
      await a.release();
      const b = await p.tryAcquire(key, { ttlMs: 5_000 });
      assert.ok(b);
      assert.ok(b.fence > a.fence);
      await b.release();
    });

    it('release after the lock was lost resolves, reports the loss and keeps the new holder', async () => {
      const key = k('owner');
      const a = await p.acquire(key, { ttlMs: 100 });
      await delay(150);
      assert.ok(a.signal.aborted, 'expired lease signals loss');
      assert.ok(a.signal.reason instanceof LockLostError);
      const b = await p.acquire(key, { ttlMs: 5_000, timeoutMs: 1_000 });
      await a.release();
      assert.equal(a.lost, true);
      assert.equal(await p.tryAcquire(key), null, 'b still holds');
      await assert.rejects(a.extend(), LockLostError);
      await b.release();
    });

    it('adopts a lock acquired elsewhere under a chosen identifier, with its fence', async () => {
      const key = k('adopt');
      const identifier = `job-${key}`;
      const scheduler = await p.acquire(key, { ttlMs: 5_000, identifier });
      assert.equal(scheduler.ownerId, identifier);
      const worker = await h.make().adopt(key, { identifier, fence: scheduler.fence, ttlMs: 5_000 });
      assert.equal(worker.fence, scheduler.fence);
      await worker.extend(5_000);
      await assert.rejects(h.make().adopt(key, { identifier: 'someone-else' }), LockLostError);
      await assert.rejects(h.make().adopt(key, { identifier, fence: scheduler.fence - 1n }), LockLostError);
      await worker.release();
      assert.equal(worker.lost, false);
      const next = await p.tryAcquire(key);
      assert.ok(next && next.fence > scheduler.fence, 'released by the adopter');
      await assert.rejects(h.make().adopt(key, { identifier }), LockLostError);
      await next.release();
    });

    it('extends a lease', async () => {
      const key = k('extend');
      const a = await p.acquire(key, { ttlMs: 200 });
      const before = a.expiresAt;
      await a.extend(2_000);
      assert.ok(a.expiresAt > before + 1_000);
      await delay(300);
      assert.equal(a.signal.aborted, false);
      assert.equal(await p.tryAcquire(key), null);
      await a.release();
    });

    it('releases idempotently', async () => {
      const key = k('idem');
      const a = await p.acquire(key, { ttlMs: 5_000 });
      await a.release();
      await a.release();
      await a[Symbol.asyncDispose]();
      const b = await p.tryAcquire(key, { ttlMs: 5_000 });
      assert.ok(b);
      await a.release();
      assert.equal(await p.tryAcquire(key), null, 'a repeated release does not free b');
      await b.release();
    });

    it('times out with LockTimeoutError within a bound', async () => {
      const key = k('timeout');
      const a = await p.acquire(key, { ttlMs: 10_000 });
      const t0 = Date.now();
      await assert.rejects(p.acquire(key, { timeoutMs: 200 }), LockTimeoutError);
      const took = Date.now() - t0;
      assert.ok(took >= 195 && took < 700, `took ${took} ms`);
      await a.release();
    });

    it('aborts a waiting acquire through its AbortSignal', async () => {
      const key = k('abort');
      const a = await p.acquire(key, { ttlMs: 10_000 });
      const ac = new AbortController();
      const t0 = Date.now();
      setTimeout(() => ac.abort(new Error('caller gave up')), 50);
      await assert.rejects(p.acquire(key, { timeoutMs: 5_000, signal: ac.signal }), (e: unknown) => e instanceof LockAbortedError && e.name === 'AbortError' && e.code === 'LOCK_ABORTED');
      assert.ok(Date.now() - t0 < 400);
      await assert.rejects(p.acquire(key, { signal: AbortSignal.abort() }), LockAbortedError);
      await a.release();
      const b = await p.tryAcquire(key);
      assert.ok(b, 'aborted waiters leave nothing behind');
      await b.release();
    });

    it('supports opt-in reentrancy scoped to the lease', async () => {
      const key = k('reenter');
      const a = await p.acquire(key, { ttlMs: 5_000 });
      const child = a.reenter();
      const grandchild = child.reenter();
      assert.equal(child.fence, a.fence);
      assert.equal(child.ownerId, a.ownerId);
      await a.release();
      assert.equal(await p.tryAcquire(key), null);
      await child.release();
      await child.release();
      assert.equal(await p.tryAcquire(key), null);
      await grandchild.release();
      const b = await p.tryAcquire(key);
      assert.ok(b);
      assert.throws(() => a.reenter(), LockLostError);
      await b.release();
    });

    it('serves fair waiters in FIFO order', async () => {
      const key = k('fifo');
      const holder = await p.acquire(key, { ttlMs: 10_000, fair: true });
      const order: number[] = [];
      const waiters: Promise<void>[] = [];
      for (let i = 0; i < 8; i++) {
        waiters.push(
          (i % 2 ? p : h.make()).acquire(key, { ttlMs: 10_000, timeoutMs: 10_000, fair: true }).then(async (l) => {
            order.push(i);
            await delay(2);
            await l.release();
          }),
        );
        await delay(40); // each waiter's first attempt (which queues it) lands before the next one starts
      }
      await holder.release();
      await Promise.all(waiters);
      assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
    });

    it('skips a dead fair waiter once its queue lease lapses', async () => {
      const key = k('deadwaiter');
      const holder = await p.acquire(key, { ttlMs: 10_000, fair: true });
      const r = await h.backend().attempt({ key, ownerId: 'ghost', ttlMs: 10_000, fair: true, waiterTtlMs: 300, queued: false });
      assert.equal(r.acquired, false);
      const waiting = p.acquire(key, { ttlMs: 5_000, timeoutMs: 3_000, fair: true });
      await delay(20);
      const t0 = Date.now();
      await holder.release();
      const lease = await waiting;
      const took = Date.now() - t0;
      assert.ok(took < 1_000, `took ${took} ms`);
      await lease.release();
    });

    it('refuses a lease whose acquisition took longer than ttl minus drift', async () => {
      const key = k('validity');
      const slow = h.make({ afterAttempt: () => delay(120) });
      await assert.rejects(slow.acquire(key, { ttlMs: 100 }), LockValidityError);
      const b = await p.tryAcquire(key);
      assert.ok(b, 'the refused lease was released');
      await b.release();
    });

    it('using() renews, returns the value and releases', async () => {
      const key = k('using');
      const value = await p.using(key, { ttlMs: 300 }, async (signal, lease) => {
        await delay(700);
        assert.equal(signal.aborted, false);
        assert.equal(await p.tryAcquire(key), null);
        assert.ok(lease.expiresAt > Date.now());
        return 42;
      });
      assert.equal(value, 42);
      const b = await p.tryAcquire(key);
      assert.ok(b);
      await b.release();
    });

    it('signals loss and emits lost when the lock is taken away, without unhandled rejections', async () => {
      const key = k('lost');
      const events: LockEvent[] = [];
      const q = h.make({ onEvent: (e) => events.push(e) });
      let aborted: unknown;
      const result = await q.using(key, { ttlMs: 300 }, async (signal, lease) => {
        await h.backend().release(key, lease.ownerId);
        const thief = await p.acquire(key, { ttlMs: 5_000 });
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        aborted = signal.reason;
        await thief.release();
        return 'done';
      });
      assert.equal(result, 'done');
      assert.ok(aborted instanceof LockLostError);
      assert.ok(events.some((e) => e.type === 'lost' && e.key === key));
    });

    it('reports metrics for acquisitions and handovers', async () => {
      const key = k('metrics');
      const seen = { acquired: 0, handover: 0 };
      const q = h.make({ metrics: { acquired: () => seen.acquired++, handover: () => seen.handover++ } });
      const a = await q.acquire(key, { ttlMs: 5_000 });
      const waiting = q.acquire(key, { ttlMs: 5_000 });
      await delay(20);
      await a.release();
      await (await waiting).release();
      assert.equal(seen.acquired, 2);
      assert.equal(seen.handover, 1);
    });
  });
}
