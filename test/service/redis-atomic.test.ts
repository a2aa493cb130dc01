// The redis-atomic strategy's own cases, on PostgreSQL and MariaDB, with a private Redis this file
// can flush and restart: a FLUSHALL and a Redis restart in the middle of a stampede from two
// instances (zero oversold, every 201 durable, no row without a 201, limits held), a batch with the
// same user twice, a reused key and a user at the limit, the SQL lease guard itself, reclaiming a
// dead instance's lease, and the refusals (no Redis, lotteries). `fast` mode has its own file. The claim contract
// and the 4-process race (race.test.ts) run it too: it is in SAFE_STRATEGIES.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { SqlRedisAtomicStore } from '../../src/adapters/sql/sql-redis-atomic.ts';
import { AllotError } from '../../src/core/errors.ts';
import { AllotService } from '../../src/service/service.ts';
import type { ClaimOutcome } from '../../src/service/claim-engine.ts';
import { dialects } from '../helpers/dialects.ts';
import { startRedis, type TestServer } from '../helpers/servers.ts';

const code = (body: unknown) => (body as { error?: { code?: string } }).error?.code;
const claimId = (o: ClaimOutcome) => (o.body as { claim?: { id: string } }).claim?.id;

let redis: TestServer;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.destroy();
});

for (const d of dialects({ servers: true })) {
  describe(`redis-atomic on ${d.name}`, () => {
    const prefix = `ra-${randomUUID().slice(0, 8)}:`;
    const open = (extra: { leaseTtlMs?: number; blockMax?: number; inflightWaitMs?: number } = {}) => AllotService.open({
      config: { databaseUrl: d.url(), dbPoolSize: 6, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: redis.url, lockPrefix: prefix },
      redisAtomic: { ...extra },
      payouts: { sweepIntervalMs: 0 },
    });
    let a: AllotService;
    let b: AllotService;
    let n = 0;
    const newCampaign = async (stock: number, extra: Record<string, unknown> = {}) => {
      const id = `ra-${prefix}${++n}`.replace(/:/g, '-');
      await a.createCampaign({ id, kind: 'coupon', name: 'ra', stock, strategy: 'redis-atomic', ...extra });
      return id;
    };
    before(async () => {
      a = await open();
      b = await open({ blockMax: 7 });
    });
    after(async () => {
      await a?.close();
      await b?.close();
    });

    /** Every invariant a stampede must keep, from the database. */
    const check = async (id: string, outs: ClaimOutcome[], stock: number, perUser: number) => {
      const acked = new Set(outs.filter((o) => o.status === 201).map(claimId));
      for (const o of outs.filter((x) => x.status !== 201)) {
        if (o.status === 409) assert.ok(['SOLD_OUT', 'USER_LIMIT_REACHED'].includes(code(o.body) ?? ''), JSON.stringify(o.body));
        else assert.equal(o.status, 503, JSON.stringify(o.body));
      }
      const rows = (await sql<{ id: string; user_id: string }>`SELECT id, user_id FROM claims WHERE campaign_id = ${id}`.execute(a.db)).rows;
      assert.ok(rows.length <= stock, `oversold: ${rows.length} > ${stock}`);
      assert.deepEqual(new Set(rows.map((r) => r.id)), acked, 'every 201 is in SQL, and no row lacks a 201');
      const per = new Map<string, number>();
      for (const r of rows) per.set(r.user_id, (per.get(r.user_id) ?? 0) + 1);
      assert.ok([...per.values()].every((c) => c <= perUser), 'a user over the limit');
      const c = await a.getCampaign(id);
      assert.equal(c.issued, rows.length);
      assert.equal((await a.audit(id)).ok, true);
      const row = (await sql<{ stock: string; issued: string; leased: string }>`SELECT stock, issued, leased FROM campaigns WHERE id = ${id}`.execute(a.db)).rows[0]!;
      assert.ok(Number(row.issued) + Number(row.leased) <= Number(row.stock));
      return acked.size;
    };

    /** A claim's outcome; a 503 (AllotError UNAVAILABLE, nothing issued or outcome unknown) as the HTTP layer would answer it. */
    const claimOf = (s: AllotService, id: string, user: string, key: string | null): Promise<ClaimOutcome> =>
      s.claim(id, user, key).catch((err: unknown) => {
        if (err instanceof AllotError && err.code === 'UNAVAILABLE') return { status: 503, body: { error: { code: err.code, message: err.message } } } as unknown as ClaimOutcome;
        throw err;
      });

    const stampede = (id: string, users: number, times: number) => {
      const reqs = Array.from({ length: users * times }, (_, i) => ({ user: `u-${i % users}`, key: i % 3 === 0 ? `k-${i}` : null }));
      return reqs.map((r, i) => claimOf(i % 2 === 0 ? a : b, id, r.user, r.key));
    };

    test('FLUSHALL mid-stampede: zero oversold, every 201 durable, limits held; the stock still sells out', async () => {
      const id = await newCampaign(120, { perUserLimit: 2 });
      const pending = stampede(id, 100, 3);
      let done = 0;
      pending.forEach((p) => void p.then(() => done++, () => done++));
      while (done < 60) await new Promise((r) => setTimeout(r, 2));
      const r = new Redis(redis.url);
      await r.flushall();
      await r.quit();
      const outs = await Promise.all(pending);
      await check(id, outs, 120, 2);
      // No unit is stranded by the flush: what the stampede left (a unit can come back after the
      // last claims answered SOLD_OUT, from a claim SQL refused) sells to new users.
      const more = await Promise.all(Array.from({ length: 40 }, (_, i) => claimOf(i % 2 ? a : b, id, `late-${i}`, null)));
      assert.equal(await check(id, [...outs, ...more], 120, 2), 120);
    });

    test('Redis restart (no persistence) mid-stampede: zero oversold, every 201 durable; claims resume after', async () => {
      const id = await newCampaign(150, { perUserLimit: 1 });
      const pending = stampede(id, 200, 1);
      let done = 0;
      pending.forEach((p) => void p.then(() => done++, () => done++));
      while (done < 50) await new Promise((r) => setTimeout(r, 2));
      await redis.stop();
      await new Promise((r) => setTimeout(r, 100));
      await redis.start();
      const outs = await Promise.all(pending);
      await check(id, outs, 150, 1);
      // After the restart the rest sells normally.
      const more = await Promise.all(Array.from({ length: 200 }, (_, i) => claimOf(i % 2 ? a : b, id, `late-${i}`, null)));
      const total = await check(id, [...outs, ...more], 150, 1);
      assert.equal(total, 150);
    });

    test('one batch: the same user twice, a reused key, a user at the limit', async () => {
      const id = await newCampaign(50, { perUserLimit: 1 });
      assert.equal((await a.claim(id, 'full', null)).status, 201);
      const outs = await Promise.all([a.claim(id, 'twice', null), a.claim(id, 'twice', null), a.claim(id, 'keyed', 'k1'), a.claim(id, 'keyed', 'k1'), a.claim(id, 'full', null)]);
      assert.deepEqual(outs.slice(0, 2).map((o) => o.status).sort(), [201, 409]);
      assert.equal(code(outs.find((o) => o.status === 409)!.body), 'USER_LIMIT_REACHED');
      const [k1, k2] = [outs[2]!, outs[3]!];
      assert.equal(k1.status, 201);
      // The reused key: the same answer, or "still running" while the first is in flight.
      if (k2.status === 201) assert.deepEqual(k2.body, k1.body);
      else assert.equal(code(k2.body), 'IDEMPOTENCY_IN_PROGRESS');
      assert.deepEqual((await a.claim(id, 'keyed', 'k1')).body, k1.body);
      assert.equal(code(outs[4]!.body), 'USER_LIMIT_REACHED');
      assert.equal((await a.getCampaign(id)).issued, 3);
      assert.equal((await a.audit(id)).ok, true);
    });

    test('the batch takes the Idempotency-Keys: one key sent by two users in one burst gives one claim; the loser\'s unit and count go back', async () => {
      const id = await newCampaign(3, { perUserLimit: 1 });
      const outs = await Promise.all(Array.from({ length: 8 }, (_, i) => claimOf(i % 2 ? a : b, id, `two-${i % 2}`, 'shared-key')));
      const ok = outs.filter((o) => o.status === 201);
      assert.equal(new Set(ok.map(claimId)).size, 1);
      assert.equal(ok.filter((o) => !o.replayed).length, 1, 'the first answer is not a replay: its key went in with the claim');
      const winner = (ok[0]!.body as { claim: { userId: string } }).claim.userId;
      for (const [i, o] of outs.entries()) {
        if (`two-${i % 2}` === winner) assert.ok(o.status === 201 || code(o.body) === 'IDEMPOTENCY_IN_PROGRESS', JSON.stringify(o.body));
        else assert.ok(['IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'].includes(code(o.body) ?? ''), JSON.stringify(o.body));
      }
      const loser = winner === 'two-0' ? 'two-1' : 'two-0';
      // The loser's Redis count went back: it claims with its own key; and the two units the
      // refused claims took came back: the stock (3) still sells out to the end.
      assert.equal((await claimOf(a, id, loser, 'own-key')).status, 201);
      assert.equal((await claimOf(b, id, 'third', null)).status, 201);
      assert.equal(code((await claimOf(a, id, 'fourth', null)).body), 'SOLD_OUT');
      // A refusal is stored under its key and replayed.
      const refused = await claimOf(a, id, winner, 'second-key');
      assert.equal(code(refused.body), 'SOLD_OUT');
      const again = await claimOf(b, id, winner, 'second-key');
      assert.equal(again.replayed, true);
      assert.equal(code(again.body), 'SOLD_OUT');
      assert.equal((await a.audit(id)).ok, true);
    });

    test('Redis ahead of SQL (a block inflated by hand) issues no more than SQL granted', async () => {
      const id = await newCampaign(5);
      const first = await a.claim(id, 'first', null);
      assert.equal(first.status, 201);
      const r = new Redis(redis.url);
      for (const key of await r.keys(`${prefix}ra:{${id}}:lease:*`)) await r.hset(key, 'left', 1000);
      await r.quit();
      const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => a.claim(id, `v-${i}`, null)));
      assert.equal(await check(id, [first, ...outs], 5, 1), 5);
    });

    test('Redis behind SQL (every block emptied by hand, as a restore from an older snapshot would): the stock still sells out', async () => {
      const c = await open({ inflightWaitMs: 200 });
      try {
        const id = await newCampaign(10);
        assert.equal((await claimOf(c, id, 'first', null)).status, 201);
        const r = new Redis(redis.url);
        const blocks = await r.keys(`${prefix}ra:{${id}}:lease:*`);
        assert.ok(blocks.length > 0);
        for (const key of blocks) await r.hset(key, 'left', 0);
        await r.quit();
        const outs = [];
        for (let i = 0; i < 12; i++) outs.push(await claimOf(c, id, `w-${i}`, null));
        assert.deepEqual(outs.map((o) => o.status), [...Array(9).fill(201), 409, 409, 409]);
        assert.equal((await a.getCampaign(id)).issued, 10);
      } finally {
        await c.close();
      }
    });

    test('the SQL lease guard: no more claims than granted, none under a closed lease', async () => {
      const id = await newCampaign(10);
      const store = new SqlRedisAtomicStore(a.db, sqlDialect(d.backend === 'mysql' ? 'mysql' : 'pg'));
      const lease = { id: randomUUID(), campaignId: id, fence: 1 };
      await store.openLease(lease, Date.now(), 60_000);
      assert.equal(await store.grant(lease, 2, Date.now(), 60_000), 2);
      const member = (u: string) => ({ claim: { id: `c-${randomUUID()}`, campaignId: id, userId: u, prizeId: null, createdAt: Date.now() }, day: '2026-01-01', idempotencyKey: null, draw: null, completion: null });
      const limits = { perUserLimit: 1, perUserDailyLimit: null, day: '2026-01-01' };
      // Three claims on a lease granted two: the first two are written, the third has no unit.
      const v = await store.commitBatch(lease, limits, [member('x1'), member('x2'), member('x3')], Date.now(), 60_000);
      assert.deepEqual(v, [{ kind: 'issued', day: '2026-01-01' }, { kind: 'issued', day: '2026-01-01' }, null]);
      assert.equal((await a.getCampaign(id)).issued, 2);
      assert.deepEqual(await store.commitBatch(lease, limits, [member('x4')], Date.now(), 60_000), [null], 'a used-up lease writes nothing');
      assert.equal(await store.grant(lease, 1, Date.now(), 60_000), 1);
      assert.equal(await store.closeLease(lease), 1, 'closing gives the unused unit back');
      assert.equal(await store.commitBatch(lease, limits, [member('x5')], Date.now(), 60_000), 'lease_refused', 'a closed lease writes nothing');
      assert.equal((await a.getCampaign(id)).issued, 2);
      const rows = (await sql<{ user_id: string }>`SELECT user_id FROM claims WHERE campaign_id = ${id} ORDER BY user_id`.execute(a.db)).rows;
      assert.deepEqual(rows.map((r) => r.user_id), ['x1', 'x2']);
      const c = (await sql<{ issued: string; leased: string }>`SELECT issued, leased FROM campaigns WHERE id = ${id}`.execute(a.db)).rows[0]!;
      assert.deepEqual([Number(c.issued), Number(c.leased)], [2, 0]);
    });

    test("a dead instance's expired lease is reclaimed: the stock still sells out", async () => {
      const id = await newCampaign(6);
      const store = new SqlRedisAtomicStore(a.db, sqlDialect(d.backend === 'mysql' ? 'mysql' : 'pg'));
      const dead = { id: randomUUID(), campaignId: id, fence: 1 };
      await store.openLease(dead, Date.now() - 120_000, 60_000);
      assert.equal(await store.grant(dead, 4, Date.now() - 120_000, 60_000), 1, 'blocks are an eighth of what is free, at least 1');
      assert.equal(await store.grant(dead, 4, Date.now() - 120_000, 60_000), 1);
      const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => a.claim(id, `w-${i}`, null)));
      assert.equal(await check(id, outs, 6, 1), 6);
    });

    test('closing an instance gives its unused leased units back', async () => {
      const c = await open({ blockMax: 50 });
      const id = await newCampaign(100);
      assert.equal((await c.claim(id, 'one', null)).status, 201);
      const leased = async () => Number((await sql<{ leased: string }>`SELECT leased FROM campaigns WHERE id = ${id}`.execute(a.db)).rows[0]!.leased);
      assert.ok((await leased()) > 0);
      await c.close();
      assert.equal(await leased(), 0);
    });

    test('refusals: a lottery, no Redis', async () => {
      await assert.rejects(a.createCampaign({ id: `ra-lot-${randomUUID().slice(0, 8)}`, kind: 'lottery', name: 'l', prizes: [{ id: 'p', name: 'p', stock: 1, weight: 1 }], strategy: 'redis-atomic' }), /does not draw lotteries/);
      const none = await AllotService.open({ config: { databaseUrl: d.url(), dbPoolSize: 2, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false }, payouts: { sweepIntervalMs: 0 } });
      try {
        await assert.rejects(none.createCampaign({ kind: 'coupon', name: 'x', stock: 1, strategy: 'redis-atomic' }), /redis-atomic needs Redis/);
      } finally {
        await none.close();
      }
    });
  });
}
