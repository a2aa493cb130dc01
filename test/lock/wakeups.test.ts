// No lost wake-ups: 1,000 handovers among 8 waiters with a 10 s TTL; a single lost wake-up
// would make some waiter sleep until its wait bound (the holder's remaining TTL).
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { BackendLockProvider, MemoryLockBackend, MemoryFenceAnchor, RedisLockBackend, type LockProvider } from '../../packages/lock/src/index.ts';
import { connect, redisUrl, uniquePrefix, type ClientKind } from './redis-harness.ts';
import type { RedisClient } from '../../packages/lock/src/redis/client.ts';

const TTL_MS = 10_000;

async function handovers(providers: LockProvider[], key: string, total: number, fair: boolean) {
  let done = 0;
  let maxWaitMs = 0;
  let holders = 0;
  const t0 = performance.now();
  await Promise.all(
    providers.map(async (p) => {
      while (done < total) {
        const w0 = performance.now();
        const lease = await p.acquire(key, { ttlMs: TTL_MS, timeoutMs: TTL_MS, fair });
        maxWaitMs = Math.max(maxWaitMs, performance.now() - w0);
        assert.equal(++holders, 1);
        done++;
        holders--;
        await lease.release();
      }
    }),
  );
  return { totalMs: performance.now() - t0, maxWaitMs, done };
}

function check(r: { totalMs: number; maxWaitMs: number; done: number }) {
  assert.ok(r.done >= 1_000);
  assert.ok(r.totalMs < TTL_MS / 2, `1,000 handovers took ${r.totalMs.toFixed(0)} ms`);
  assert.ok(r.maxWaitMs < TTL_MS / 5, `a waiter waited ${r.maxWaitMs.toFixed(0)} ms`);
}

describe('no lost wake-ups: memory', () => {
  for (const fair of [false, true]) {
    it(`1,000 handovers among 8 waiters${fair ? ' (fair)' : ''}`, async () => {
      const backend = new MemoryLockBackend();
      const providers = Array.from({ length: 8 }, () => new BackendLockProvider(backend));
      check(await handovers(providers, `wake:${fair}`, 1_000, fair));
    });
  }
});

for (const kind of ['ioredis', 'node-redis'] as ClientKind[]) {
  describe(`no lost wake-ups: redis (${kind})`, () => {
    let srv: { url: string; stop(): Promise<void> };
    const clients: RedisClient[] = [];
    const providers: LockProvider[] = [];
    before(async () => {
      srv = await redisUrl();
    });
    after(async () => {
      await Promise.all(providers.map((p) => p.close()));
      await Promise.all(clients.map((c) => c.quit()));
      await srv.stop();
    });

    for (const fair of [false, true]) {
      it(`1,000 handovers among 8 waiters, one connection pair each${fair ? ' (fair)' : ''}`, async () => {
        const prefix = uniquePrefix('wake');
        const anchor = new MemoryFenceAnchor();
        const ps: LockProvider[] = [];
        for (let i = 0; i < 8; i++) {
          const client = await connect(kind, srv.url);
          clients.push(client);
          ps.push(new BackendLockProvider(new RedisLockBackend({ client, prefix, fenceAnchor: anchor })));
        }
        providers.push(...ps);
        const r = await handovers(ps, 'k', 1_000, fair);
        check(r);
      });
    }
  });
}
