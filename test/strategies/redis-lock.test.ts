// The redis-lock strategy on an in-memory store with fenced, all-or-nothing transactions:
// no oversell under concurrency, limits re-checked under the locks, stale fences roll back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AllotError, TransientConflictError } from '../../src/core/errors.ts';
import type { Campaign } from '../../src/core/campaign.ts';
import type { Claim } from '../../src/core/claim.ts';
import type { ClaimStore, ClaimTx, UserCounter } from '../../src/ports/claim-store.ts';
import type { ClaimRequest } from '../../src/ports/claim-strategy.ts';
import { campaignLockKey, createRedisLockStrategy, userLockKey } from '../../src/strategies/redis-lock.ts';
import { createMemoryLockProvider, createRedisLockProvider, MemoryFenceAnchor, StaleFenceError, type Lease, type LockProvider, type RedisClient } from '../../src/lock/index.ts';
import { connect, redisUrl, uniquePrefix } from '../lock/redis-harness.ts';

interface State {
  campaigns: Map<string, Campaign>;
  users: Map<string, UserCounter>;
  claims: Claim[];
  fences: Map<string, bigint>;
}

/** Serializable, all-or-nothing transactions over a copy of the state: enough to test a strategy. */
class FakeStore {
  state: State = { campaigns: new Map(), users: new Map(), claims: [], fences: new Map() };
  #chain: Promise<unknown> = Promise.resolve();
  fenced = true;
  readonly dialect = 'fake';

  async getCampaign(id: string) {
    const c = this.state.campaigns.get(id);
    return c ? { ...c } : null;
  }

  transaction<T>(fn: (tx: ClaimTx) => Promise<T>): Promise<T> {
    const run = this.#chain.then(async () => {
      const s: State = {
        campaigns: new Map([...this.state.campaigns].map(([k, v]) => [k, { ...v }])),
        users: new Map([...this.state.users].map(([k, v]) => [k, { ...v }])),
        claims: [...this.state.claims],
        fences: new Map(this.state.fences),
      };
      const tx = {
        takeStock: async (id: string, n: number) => {
          const c = s.campaigns.get(id)!;
          if (c.issued + n > c.stock) return false;
          c.issued += n;
          return true;
        },
        lockCampaign: async (id: string) => {
          const c = s.campaigns.get(id);
          return c ? { stock: c.stock, issued: c.issued } : null;
        },
        lockUserCounter: async (cid: string, uid: string, day: string) => ({ ...(s.users.get(`${cid}/${uid}`) ?? { total: 0, day, dayCount: 0 }) }),
        writeUserCounter: async (cid: string, uid: string, c: UserCounter) => void s.users.set(`${cid}/${uid}`, { ...c }),
        insertClaim: async (claim: Claim) => void s.claims.push(claim),
        ...(this.fenced
          ? {
              checkFence: async (resource: string, fence: bigint) => {
                if ((s.fences.get(resource) ?? -1n) > fence) throw new StaleFenceError(resource, fence);
                s.fences.set(resource, fence);
              },
            }
          : {}),
      } as unknown as ClaimTx;
      const out = await fn(tx);
      this.state = s;
      return out;
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }

  addCampaign(id: string, stock: number, perUserLimit = 1) {
    this.state.campaigns.set(id, { id, kind: 'coupon', name: id, strategy: 'redis-lock', stock, issued: 0, perUserLimit, perUserDailyLimit: null, startsAt: null, endsAt: null, createdAt: 0 });
    return this.state.campaigns.get(id)!;
  }
}

let seq = 0;
function request(campaign: Campaign, userId: string): ClaimRequest {
  return { campaign, userId, claimId: `c${++seq}`, nowMs: 0, day: '2026-11-22', idempotencyKey: null, onCommit: async () => undefined };
}

async function outcomes(p: Promise<unknown>[]) {
  const r = await Promise.allSettled(p);
  const count: Record<string, number> = {};
  for (const x of r) {
    const k = x.status === 'fulfilled' ? 'ok' : x.reason instanceof AllotError ? x.reason.code : String(x.reason);
    count[k] = (count[k] ?? 0) + 1;
  }
  return count;
}

function suite(name: string, make: () => Promise<{ locks: LockProvider; close(): Promise<void> }>) {
  describe(`redis-lock strategy (${name})`, () => {
    let locks: LockProvider;
    let close: () => Promise<void>;
    before(async () => {
      ({ locks, close } = await make());
    });
    after(async () => {
      await close();
    });

    it('never oversells: 40 concurrent users, stock 10', async () => {
      const store = new FakeStore();
      const c = store.addCampaign(`camp-${++seq}`, 10);
      const s = createRedisLockStrategy(locks, { campaignLock: true });
      const r = await outcomes(Array.from({ length: 40 }, (_, i) => s.claim(store as unknown as ClaimStore, request(c, `u${i}`))));
      assert.deepEqual(r, { ok: 10, SOLD_OUT: 30 });
      assert.equal(store.state.campaigns.get(c.id)!.issued, 10);
      assert.equal(store.state.claims.length, 10);
      assert.ok(store.state.fences.get(campaignLockKey(c.id))! > 0n, 'campaign writes carried a fence');
    });

    it('never oversells with per-user locks only (the default): 40 concurrent users, stock 10', async () => {
      const store = new FakeStore();
      const c = store.addCampaign(`camp-${++seq}`, 10);
      const s = createRedisLockStrategy(locks);
      const r = await outcomes(Array.from({ length: 40 }, (_, i) => s.claim(store as unknown as ClaimStore, request(c, `u${i}`))));
      assert.deepEqual(r, { ok: 10, SOLD_OUT: 30 });
      assert.equal(store.state.claims.length, 10);
      assert.equal(store.state.fences.get(campaignLockKey(c.id)), undefined, 'no campaign lock by default');
      assert.ok(store.state.claims.every((x) => store.state.fences.get(userLockKey(c.id, x.userId))! > 0n), 'user writes carried a fence');
    });

    it('rolls back a write carrying a stale user fence (default mode)', async () => {
      const store = new FakeStore();
      const c = store.addCampaign(`camp-${++seq}`, 10);
      store.state.fences.set(userLockKey(c.id, 'late'), 1n << 100n); // a newer holder already wrote
      const s = createRedisLockStrategy(locks);
      await assert.rejects(s.claim(store as unknown as ClaimStore, request(c, 'late')), (e: unknown) => e instanceof TransientConflictError && (e.cause as Error) instanceof StaleFenceError);
      assert.equal(store.state.campaigns.get(c.id)!.issued, 0);
      assert.equal(store.state.claims.length, 0);
    });

    it('re-checks the per-user limit under the lock: one user, 8 concurrent requests', async () => {
      const store = new FakeStore();
      const c = store.addCampaign(`camp-${++seq}`, 10, 2);
      const s = createRedisLockStrategy(locks);
      const r = await outcomes(Array.from({ length: 8 }, () => s.claim(store as unknown as ClaimStore, request(c, 'same'))));
      assert.deepEqual(r, { ok: 2, USER_LIMIT_REACHED: 6 });
      assert.equal(store.state.users.get(`${c.id}/same`)!.total, 2);
    });

    it('rolls back a write carrying a stale fence and reports a retryable conflict', async () => {
      const store = new FakeStore();
      const c = store.addCampaign(`camp-${++seq}`, 10);
      store.state.fences.set(campaignLockKey(c.id), 1n << 100n); // a newer holder already wrote
      const s = createRedisLockStrategy(locks, { campaignLock: true });
      await assert.rejects(s.claim(store as unknown as ClaimStore, request(c, 'late')), (e: unknown) => e instanceof TransientConflictError && (e.cause as Error) instanceof StaleFenceError);
      assert.equal(store.state.campaigns.get(c.id)!.issued, 0);
      assert.equal(store.state.claims.length, 0);
      assert.equal(store.state.fences.get(userLockKey(c.id, 'late')), undefined, 'the whole transaction rolled back');
    });

    it('answers UNAVAILABLE when the campaign lock cannot be had in time', async () => {
      const store = new FakeStore();
      const c = store.addCampaign(`camp-${++seq}`, 10);
      const held: Lease = await locks.acquire(campaignLockKey(c.id), { ttlMs: 5_000 });
      try {
        const s = createRedisLockStrategy(locks, { timeoutMs: 100, campaignLock: true });
        await assert.rejects(s.claim(store as unknown as ClaimStore, request(c, 'u')), (e: unknown) => e instanceof AllotError && e.code === 'UNAVAILABLE');
        assert.equal(store.state.claims.length, 0);
      } finally {
        await held.release();
      }
    });

    it('refuses to run on a store that cannot fence its writes', async () => {
      const store = new FakeStore();
      store.fenced = false;
      const c = store.addCampaign(`camp-${++seq}`, 10);
      await assert.rejects(createRedisLockStrategy(locks).claim(store as unknown as ClaimStore, request(c, 'u')), (e: unknown) => e instanceof AllotError && e.code === 'INTERNAL');
      assert.equal(store.state.claims.length, 0);
    });
  });
}

suite('memory locks', async () => ({ locks: createMemoryLockProvider(), close: async () => undefined }));
suite('Redis locks', async () => {
  const srv = await redisUrl();
  const client: RedisClient = await connect('ioredis', srv.url);
  const locks = createRedisLockProvider({ client, prefix: uniquePrefix('strategy'), fenceAnchor: new MemoryFenceAnchor() });
  return {
    locks,
    close: async () => {
      await locks.close();
      await client.quit();
      await srv.stop();
    },
  };
});
