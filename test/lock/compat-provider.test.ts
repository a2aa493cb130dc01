// What users of redis-semaphore and node-redlock rely on, in allot's own provider (in-process and
// Redis): release after a loss resolves and reports it once, caller-chosen identifiers, adopting a
// lock acquired elsewhere (fenced), a configurable and stoppable watchdog, and backend errors that
// no retry can fix failing at once instead of after timeoutMs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import {
  BackendLockProvider,
  LockBackendError,
  LockLostError,
  MemoryFenceAnchor,
  MemoryLockBackend,
  RedisLockBackend,
  createRedisLockProvider,
  fromIoredis,
  permanentBackendCause,
  type LockBackend,
  type LockEvent,
  type LockProviderOptions,
  type RedisClient,
} from '../../packages/lock/src/index.ts';
import { connect, redisUrl, uniquePrefix } from './redis-harness.ts';
import { backendHarness } from './contract.ts';

let unique = 0;
const k = (name: string) => `${name}:${process.pid}:${++unique}`;

interface Store {
  make(opts?: LockProviderOptions): BackendLockProvider;
  backend(): LockBackend;
}

function providerFeatures(name: string, setup: () => Promise<Store & { close(): Promise<void> }>): void {
  describe(`provider features: ${name}`, () => {
    let s: Store & { close(): Promise<void> };
    before(async () => {
      s = await setup();
    });
    after(() => s.close());

    it('release after the lease expired (nobody took it) resolves, marks it lost and emits lost once', async () => {
      const key = k('expired');
      const events: LockEvent[] = [];
      const p = s.make({ onEvent: (e) => events.push(e) });
      const a = await p.acquire(key, { ttlMs: 150 });
      await delay(250);
      await a.release();
      await a.release();
      assert.equal(a.lost, true);
      assert.ok(a.signal.reason instanceof LockLostError);
      assert.equal(events.filter((e) => e.type === 'lost').length, 1);
    });

    it('release after the watchdog lost the lock to another owner resolves, emits lost once and leaves the holder alone', async () => {
      const key = k('stolen');
      const events: LockEvent[] = [];
      const p = s.make({ onEvent: (e) => events.push(e) });
      const a = await p.acquire(key, { ttlMs: 300, autoExtend: true, renewIntervalMs: 30 });
      await s.backend().release(key, a.ownerId);
      const thief = await s.make().acquire(key, { ttlMs: 5_000 });
      await delay(100); // a renewal finds the thief
      assert.equal(a.signal.aborted, true);
      await a.release();
      assert.equal(a.lost, true);
      assert.equal(events.filter((e) => e.type === 'lost').length, 1);
      assert.equal(await p.tryAcquire(key), null, 'the thief still holds');
      await thief.release();
    });

    it('a held lease releases with lost false and no lost event', async () => {
      const key = k('fine');
      const events: LockEvent[] = [];
      const a = await s.make({ onEvent: (e) => events.push(e) }).acquire(key, { ttlMs: 5_000 });
      await a.release();
      assert.equal(a.lost, false);
      assert.equal(events.filter((e) => e.type === 'lost').length, 0);
    });

    it('acquires under a caller-chosen identifier and refuses a bad one', async () => {
      const key = k('ident');
      const p = s.make();
      const a = await p.acquire(key, { ttlMs: 5_000, identifier: 'worker-7' });
      assert.equal(a.ownerId, 'worker-7');
      await assert.rejects(p.acquire(k('bad'), { identifier: '' }), TypeError);
      await a.release();
    });

    it('a worker adopts a lock the scheduler acquired, renews it past its ttl, and releases it', async () => {
      const key = k('handoff');
      const scheduler = s.make();
      const worker = s.make();
      const job = await scheduler.acquire(key, { ttlMs: 300, identifier: `job:${key}` });
      const lease = await worker.adopt(key, { identifier: `job:${key}`, fence: job.fence, ttlMs: 300, autoExtend: true, renewIntervalMs: 50 });
      assert.equal(lease.fence, job.fence);
      await delay(500);
      assert.equal(lease.signal.aborted, false, 'renewed by the adopter');
      assert.equal(await scheduler.tryAcquire(key), null);
      await lease.release();
      assert.equal(lease.lost, false);
      const next = await scheduler.tryAcquire(key);
      assert.ok(next && next.fence > job.fence);
      await next.release();
    });

    it('renews every renewIntervalMs (default ttl / 3), and stopRenewal() keeps the lease until it expires', async () => {
      const key = k('renew');
      let renewals = 0;
      const p = s.make({ metrics: { renewed: () => renewals++ } });
      await assert.rejects(p.acquire(key, { ttlMs: 300, renewIntervalMs: 300 }), RangeError);
      const a = await p.acquire(key, { ttlMs: 3_000, autoExtend: true, renewIntervalMs: 40 });
      await delay(300);
      assert.ok(renewals >= 4, `${renewals} renewals in 300 ms at 40 ms`);
      a.stopRenewal();
      const stoppedAt = renewals;
      await a.extend(200); // still held: extend by hand works
      await delay(300);
      assert.equal(renewals, stoppedAt, 'no renewal after stopRenewal()');
      assert.equal(a.signal.aborted, true, 'lost at its deadline');
      const b = await p.tryAcquire(key);
      assert.ok(b, 'the lock lapsed');
      await a.release();
      assert.equal(a.lost, true);
      await b.release();
      renewals = 0;
      const c = await p.acquire(key, { ttlMs: 600, autoExtend: true });
      await delay(300);
      assert.ok(renewals <= 2, `${renewals} renewals in 300 ms at the default 200 ms`);
      await c.release();
    });
  });
}

providerFeatures('memory', async () => {
  const backend = new MemoryLockBackend();
  return { make: (opts) => new BackendLockProvider(backend, opts), backend: () => backend, close: () => backend.close() };
});

providerFeatures('redis (ioredis)', async () => {
  const srv = await redisUrl();
  const client = await connect('ioredis', srv.url);
  const prefix = uniquePrefix('compat-provider');
  const anchor = new MemoryFenceAnchor();
  return backendHarness(
    () => new RedisLockBackend({ client, fenceAnchor: anchor, prefix }),
    async () => {
      await client.quit();
      await srv.stop();
    },
  );
});

/** A RedisClient whose every command fails with `message`. */
function failingClient(message: string): RedisClient & { calls: number } {
  const c = {
    kind: 'fake',
    calls: 0,
    fail(): Promise<never> {
      c.calls++;
      return Promise.reject(new Error(message));
    },
    evalsha: () => c.fail(),
    eval: () => c.fail(),
    scriptLoad: () => c.fail(),
    command: () => c.fail(),
    duplicate: () => c.fail(),
    quit: async () => undefined,
  };
  return c;
}

describe('backend errors that no retry can fix', () => {
  it('a client lacking a command fails at once (not after timeoutMs) with a clear LockBackendError', async () => {
    const client = failingClient("ERR unknown command 'evalsha', with args beginning with: 'abc' '3'");
    const locks = createRedisLockProvider({ client, fenceAnchor: new MemoryFenceAnchor() });
    const t0 = performance.now();
    const err = await locks.acquire(k('nocmd'), { timeoutMs: 10_000 }).then(
      () => assert.fail('acquired'),
      (e: unknown) => e,
    );
    const took = performance.now() - t0;
    assert.ok(took < 100, `took ${took.toFixed(1)} ms`);
    assert.ok(err instanceof LockBackendError && err.permanent, String(err));
    assert.match(err.message, /unknown command .*not retried: .*lacks a command/);
    assert.ok(client.calls <= 2, `${client.calls} calls: the attempt and leaving the queue, no retry`);
    await locks.close();
  });

  it('a transient error is still retried until the timeout', async () => {
    const client = failingClient('LOADING Redis is loading the dataset in memory');
    const locks = createRedisLockProvider({ client, fenceAnchor: new MemoryFenceAnchor() });
    const t0 = performance.now();
    await assert.rejects(locks.acquire(k('loading'), { timeoutMs: 200 }), (e: unknown) => e instanceof LockBackendError && !e.permanent);
    assert.ok(performance.now() - t0 >= 190);
    assert.ok(client.calls > 1);
    await locks.close();
  });

  it('a real ioredis connection in subscriber mode fails at once', async () => {
    const srv = await redisUrl();
    const sub = new Redis(srv.url);
    try {
      await sub.subscribe('something');
      const locks = createRedisLockProvider({ client: fromIoredis(sub), fenceAnchor: new MemoryFenceAnchor(), prefix: uniquePrefix('submode') });
      const t0 = performance.now();
      await assert.rejects(locks.acquire(k('submode'), { timeoutMs: 10_000 }), (e: unknown) => e instanceof LockBackendError && e.permanent && /subscriber mode/.test(e.message));
      assert.ok(performance.now() - t0 < 500);
      await locks.close();
    } finally {
      sub.disconnect();
      await srv.stop();
    }
  });

  it('classifies in one place: permanent causes named, transient ones not', () => {
    for (const m of ["ERR unknown command 'EVALSHA'", 'NOSCRIPT No matching script', "NOPERM User x has no permissions to run the 'evalsha' command", 'WRONGTYPE Operation against a key holding the wrong kind of value', 'Connection in subscriber mode, only subscriber commands may be used', "ERR Can't execute 'evalsha': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", 'CROSSSLOT Keys in request don\'t hash to the same slot']) {
      assert.ok(permanentBackendCause(new Error(m)), m);
    }
    for (const m of ['READONLY You can\'t write against a read only replica.', 'LOADING Redis is loading', 'connect ECONNREFUSED 127.0.0.1:6379', 'MASTERDOWN Link with MASTER is down', 'BUSY Redis is busy running a script', 'Connection is closed.']) {
      assert.equal(permanentBackendCause(new Error(m)), undefined, m);
    }
  });
});
