// Fencing state stays bounded (issue #11): the in-process backend keeps no entry for a free key,
// Redis fence counters and epochs expire (fences still strictly increasing afterwards), and
// pruneFences deletes idle lock_fences rows while a stale holder of a pruned resource stays refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { lockFences } from '../../src/adapters/sql/migrations/002-lock-fences.ts';
import { lockFenceHolders } from '../../src/adapters/sql/migrations/007-lock-fence-holders.ts';
import { lockFencePrune } from '../../src/adapters/sql/migrations/008-lock-fence-prune.ts';
import { pruneFences, raiseFence, withFencePrune } from '../../src/adapters/sql/sql-fences.ts';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendLockProvider, FENCE_COUNTER_BITS, MemoryFenceAnchor, MemoryLockBackend, RedisLockBackend, fromIoredis, type RedisKeyLayout } from '../../packages/lock/src/index.ts';
import { dialects } from '../helpers/dialects.ts';
import { redisUrl, uniquePrefix } from './redis-harness.ts';

describe('memory backend: bounded state', () => {
  it('keeps no entry for free keys after 10,000 distinct keys, fences strictly increasing', async () => {
    let now = 1_000_000;
    const backend = new MemoryLockBackend({ now: () => now, fenceBase: 7n << 40n });
    const p = new BackendLockProvider(backend, { now: () => now });
    let last = 0n;
    for (let i = 0; i < 10_000; i++) {
      const lease = await p.acquire(`k:${i}`, { ttlMs: 1_000 });
      assert.ok(lease.fence > last);
      last = lease.fence;
      await lease.release();
    }
    assert.deepEqual(backend.size, { locks: 0, queues: 0, listeners: 0 });
    // Locks that simply expire (holder gone) and dead waiters: swept as time goes on. About ten
    // keys are live at any time; the maps stay bounded (sweeps run when they doubled).
    let peak = 0;
    for (let i = 0; i < 10_000; i++) {
      now += 10;
      const r = await backend.attempt({ key: `x:${i}`, ownerId: 'a', ttlMs: 100, fair: false, waiterTtlMs: 100 });
      assert.ok(r.acquired && r.fence > last);
      last = r.fence;
      await backend.attempt({ key: `x:${i}`, ownerId: 'b', ttlMs: 100, fair: false, waiterTtlMs: 100 });
      peak = Math.max(peak, backend.size.locks + backend.size.queues);
    }
    assert.ok(peak <= 1_024 + 2, `peak ${peak} entries for 10,000 keys`);
    // The same key again after its entry is gone: a higher fence than its first holding.
    const again = await backend.attempt({ key: 'k:0', ownerId: 'd', ttlMs: 100, fair: false, waiterTtlMs: 100 });
    assert.ok(again.acquired && again.fence > last);
    await p.close();
  });
});

for (const layout of ['single', 'cluster'] as RedisKeyLayout[]) {
  describe(`redis (${layout} layout): fence counters and epochs expire`, () => {
    let srv: Awaited<ReturnType<typeof redisUrl>>;
    let redis: Redis;
    before(async () => {
      srv = await redisUrl();
      redis = new Redis(srv.url, { maxRetriesPerRequest: 3 });
    });
    after(async () => {
      redis?.disconnect();
      await srv?.stop();
    });

    const make = (opts: { epochTtlMs: number; fenceTtlMs: number }) => {
      const backend = new RedisLockBackend({ client: fromIoredis(redis), fenceAnchor: new MemoryFenceAnchor(), prefix: uniquePrefix(`fb-${layout}`), layout, ...opts });
      // fast: tryLock-3 (a first non-fair attempt); full: acquireLock-6
      const take = async (key: string, full = false) => {
        const ownerId = `o${Math.random()}`;
        const r = await backend.attempt({ key, ownerId, ttlMs: 5_000, fair: false, waiterTtlMs: 1_000, queued: full });
        assert.ok(r.acquired);
        assert.equal(await backend.release(key, ownerId), 'released');
        return r.fence;
      };
      const keysLeft = async () => (await redis.keys(`${backend.prefix.replace(/[*?[\]]/g, '\\$&')}*`)).length;
      return { backend, take, keysLeft };
    };

    it('an idle lock leaves no key behind; its fences still increase after its counter expired', async () => {
      const { backend, take, keysLeft } = make({ epochTtlMs: 150, fenceTtlMs: 200 });
      const f = [await take('a'), await take('a', true), await take('a')];
      assert.ok(f[0]! < f[1]! && f[1]! < f[2]!);
      const k = backend.keys('a');
      const [fencePttl, epochPttl] = [await redis.pttl(k.fence), await redis.pttl(k.epoch)];
      assert.ok(fencePttl > 0 && fencePttl <= 200, `fence counter TTL ${fencePttl}`);
      assert.ok(epochPttl > 0 && epochPttl <= 150, `epoch TTL ${epochPttl}`);
      for (let i = 0; i < 20; i++) await take(`many:${i}`, i % 2 === 1);
      await sleep(350);
      assert.equal(await keysLeft(), 0, 'every fence counter and epoch expired');
      const again = [await take('a'), await take('a', true)];
      assert.equal(again[0]! & ((1n << FENCE_COUNTER_BITS) - 1n), 1n, 'the counter restarted (the hazard is exercised)');
      assert.ok(again[0]! > f[2]! && again[1]! > again[0]!, `${again.join(', ')} after ${f[2]}`);
    });

    it('a counter outlives the epoch it was issued under, whatever fenceTtlMs says', async () => {
      const { backend, take } = make({ epochTtlMs: 1_000, fenceTtlMs: 50 });
      const first = await take('b');
      assert.ok((await redis.pttl(backend.keys('b').fence)) > 500, 'the counter lives as long as its epoch');
      await sleep(150); // past fenceTtlMs, not past the epoch
      const second = await take('b', true);
      assert.ok(second > first, `${second} after ${first}`);
      await assert.rejects(async () => make({ epochTtlMs: -1, fenceTtlMs: 5 }), RangeError);
    });
  });
}

interface FenceDbCase {
  conn: SqlConnection;
  drop(): Promise<void>;
}

async function openCase(backend: 'pglite' | 'postgres' | 'mysql', url: string): Promise<FenceDbCase> {
  const create = async (conn: SqlConnection) => {
    const d = sqlDialect(conn.family);
    for (const stmt of [...lockFences.statements(d), ...lockFenceHolders.statements(d), ...lockFencePrune.statements(d)]) {
      // MySQL: the test user may not create databases; TEMPORARY tables on one connection are private.
      await sql.raw(conn.family === 'mysql' ? stmt.replace(/^CREATE TABLE/, 'CREATE TEMPORARY TABLE') : stmt).execute(conn.db);
    }
  };
  if (backend !== 'postgres') {
    const conn = await connectSql({ url, poolSize: 1, timeoutMs: 5_000 });
    await create(conn);
    return { conn, drop: () => conn.db.destroy() };
  }
  const name = `fbound_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = await connectSql({ url, poolSize: 1, timeoutMs: 5_000 });
  await sql.raw(`CREATE SCHEMA ${name}`).execute(admin.db);
  const conn = await connectSql({ url: `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${name}`)}`, poolSize: 2, timeoutMs: 5_000 });
  await create(conn);
  return {
    conn,
    drop: async () => {
      await conn.db.destroy();
      await sql.raw(`DROP SCHEMA ${name} CASCADE`).execute(admin.db);
      await admin.db.destroy();
    },
  };
}

const DAY = 86_400_000;

for (const dc of dialects()) {
  describe(`pruneFences (${dc.name})`, () => {
    let h: FenceDbCase;
    before(async () => {
      h = await openCase(dc.backend, dc.url());
    });
    after(() => h?.drop());

    const rows = async () => (await sql<{ resource: string; fence: string | number }>`SELECT resource, fence FROM lock_fences ORDER BY resource`.execute(h.conn.db)).rows.map((r) => `${r.resource}=${String(r.fence)}`);
    const age = (resource: string, usedAt: number) => sql`UPDATE lock_fences SET used_at = ${usedAt} WHERE resource = ${resource}`.execute(h.conn.db);

    it('deletes idle rows, keeps recent ones, and refuses a stale holder of a pruned resource', async () => {
      const db = h.conn.db;
      const d = sqlDialect(h.conn.family);
      assert.equal(await raiseFence(db, d, 'res:old', 100n, 'holder-a'), true);
      assert.equal(await raiseFence(db, d, 'res:new', 5n, 'holder-b'), true);
      await age('res:old', Date.now() - 2 * DAY);
      const r = await pruneFences(db, d, { olderThanMs: DAY });
      assert.deepEqual(r, { deleted: 1, floor: 100n });
      assert.deepEqual(await rows(), ['res:new=5']);
      // The stale holders of the pruned resource: an older fence, and the last one (even its holder).
      assert.equal(await raiseFence(db, d, 'res:old', 99n, 'holder-z'), false, 'older fence after the prune');
      assert.equal(await raiseFence(db, d, 'res:old', 100n, 'holder-a'), false, 'the pruned fence itself');
      assert.deepEqual(await rows(), ['res:new=5'], 'a refusal inserts nothing');
      // A resource never seen: fences up to the floor are refused, newer ones accepted.
      assert.equal(await raiseFence(db, d, 'res:fresh', 60n, 'x'), false);
      assert.equal(await raiseFence(db, d, 'res:old', 101n, 'holder-c'), true, 'a newer holder recreates the row');
      assert.equal(await raiseFence(db, d, 'res:old', 100n, 'holder-a'), false);
      // A resource that kept its row keeps its own rule: fences below the floor still count there.
      assert.equal(await raiseFence(db, d, 'res:new', 6n, 'holder-b'), true);
      assert.equal(await raiseFence(db, d, 'res:new', 6n, 'holder-b'), true, 'the same lease again');
    });

    it('the floor never goes down, and a prune works through many rows in batches', async () => {
      const db = h.conn.db;
      const d = sqlDialect(h.conn.family);
      for (let i = 0; i < 23; i++) assert.equal(await raiseFence(db, d, `many:${i}`, 200n + BigInt(i), 'h'), true);
      for (let i = 0; i < 23; i++) await age(`many:${i}`, i + 1); // oldest first
      assert.deepEqual(await pruneFences(db, d, { olderThanMs: DAY, batchSize: 5, maxRows: 10 }), { deleted: 10, floor: 209n });
      assert.deepEqual(await pruneFences(db, d, { olderThanMs: DAY, batchSize: 5 }), { deleted: 13, floor: 222n });
      assert.deepEqual(await pruneFences(db, d, { olderThanMs: DAY }), { deleted: 0, floor: 222n });
      // Rows below the floor pruned later leave it where it is.
      await age('res:new', 0);
      assert.deepEqual(await pruneFences(db, d, { olderThanMs: DAY }), { deleted: 1, floor: 222n });
      assert.deepEqual(await rows(), ['res:old=101']);
      assert.equal(await raiseFence(db, d, 'res:new', 7n, 'holder-b'), false);
      // Everything idle for longer than the retention goes, judged by `now`.
      assert.deepEqual(await pruneFences(db, d, { olderThanMs: DAY, now: Date.now() + 2 * DAY }), { deleted: 1, floor: 222n });
      assert.deepEqual(await rows(), []);
      await assert.rejects(pruneFences(db, d, { olderThanMs: 0 }), RangeError);
    });

    it('withFencePrune (the service purge) prunes after the last batch of the wrapped purge', async () => {
      const db = h.conn.db;
      const d = sqlDialect(h.conn.family);
      assert.equal(await raiseFence(db, d, 'res:w', 300n, 'h'), true);
      await age('res:w', 0);
      let runs = 0;
      const purge = withFencePrune({ purge: async (_b: number, _n: number, limit: number) => (++runs === 1 ? limit : 0) }, db, d);
      assert.equal(await purge.purge(0, 0, 10), 10);
      assert.deepEqual(await rows(), ['res:w=300'], 'not while the key purge has more batches');
      assert.equal(await purge.purge(0, 0, 10), 0);
      assert.deepEqual(await rows(), []);
      assert.equal(await raiseFence(db, d, 'res:w', 300n, 'h'), false);
    });
  });
}
