// redis-atomic in `fast` mode (201 after Redis, the claim written to SQL behind the answer), on
// PostgreSQL and MariaDB with a private Redis: a stampede over two instances ends with every 201
// in SQL and nothing oversold; a key retried right after its 201 replays it, and a key reused by
// another user is refused; a FLUSHALL or a Redis restart mid-stampede loses no acknowledged
// claim (the instances hold them); an instance whose database connection is blackholed keeps
// answering from Redis, and once it is gone another instance replays its stream into SQL; with
// neither (Redis lost the stream and the instance died) the loss is counted, not hidden.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { AllotError } from '../../src/core/errors.ts';
import { AllotService } from '../../src/service/service.ts';
import type { ClaimOutcome } from '../../src/service/claim-engine.ts';
import { startFaultProxy, type FaultProxy } from '../../src/lab/proxy.ts';
import { dialects } from '../helpers/dialects.ts';
import { startRedis, type TestServer } from '../helpers/servers.ts';

const code = (body: unknown) => (body as { error?: { code?: string } }).error?.code;
const claimId = (o: ClaimOutcome) => (o.body as { claim?: { id: string } }).claim?.id;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: TestServer;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.destroy();
});

interface FastOpts { leaseTtlMs?: number; recoverEveryMs?: number; blockMax?: number; writeBehindMax?: number; url?: string }

for (const d of dialects({ servers: true })) {
  describe(`redis-atomic fast mode on ${d.name}`, () => {
    const prefix = `raf-${randomUUID().slice(0, 8)}:`;
    const open = (extra: FastOpts = {}) => {
      const { url, ...ra } = extra;
      return AllotService.open({
        config: { databaseUrl: url ?? d.url(), dbPoolSize: 6, dbTimeoutMs: 3_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: redis.url, lockPrefix: prefix, redisAtomicMode: 'fast' },
        redisAtomic: { ...ra },
        payouts: { sweepIntervalMs: 0 },
      });
    };
    let a: AllotService;
    let b: AllotService;
    let n = 0;
    const newCampaign = async (stock: number, extra: Record<string, unknown> = {}) => {
      const id = `raf-${prefix}${++n}`.replace(/:/g, '-');
      await a.createCampaign({ id, kind: 'coupon', name: 'raf', stock, strategy: 'redis-atomic', ...extra });
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

    const claimOf = (s: AllotService, id: string, user: string, key: string | null): Promise<ClaimOutcome> =>
      s.claim(id, user, key).catch((err: unknown) => {
        if (err instanceof AllotError && err.code === 'UNAVAILABLE') return { status: 503, body: { error: { code: err.code, message: err.message } } } as unknown as ClaimOutcome;
        throw err;
      });

    /** Until every instance's write-behind is empty. */
    const drained = async (...ss: AllotService[]) => {
      const until = Date.now() + 20_000;
      while (ss.some((s) => (s.redisAtomicFast()?.pending ?? 0) > 0)) {
        assert.ok(Date.now() < until, 'the write-behind did not drain in 20 s');
        await sleep(10);
      }
    };

    /** Every invariant, from the database: none oversold, every 201 in SQL, no row without a 201, limits. */
    const check = async (id: string, outs: ClaimOutcome[], stock: number, perUser: number) => {
      const acked = new Set(outs.filter((o) => o.status === 201).map(claimId));
      for (const o of outs.filter((x) => x.status !== 201)) {
        if (o.status === 409) assert.ok(['SOLD_OUT', 'USER_LIMIT_REACHED', 'IDEMPOTENCY_IN_PROGRESS'].includes(code(o.body) ?? ''), JSON.stringify(o.body));
        else assert.equal(o.status, 503, JSON.stringify(o.body));
      }
      const rows = (await sql<{ id: string; user_id: string }>`SELECT id, user_id FROM claims WHERE campaign_id = ${id}`.execute(a.db)).rows;
      assert.ok(rows.length <= stock, `oversold: ${rows.length} > ${stock}`);
      const inSql = new Set(rows.map((r) => r.id));
      const lost = [...acked].filter((c) => !inSql.has(c!));
      assert.deepEqual(lost, [], 'acknowledged claims missing from SQL');
      const extra = rows.filter((r) => !acked.has(r.id));
      assert.deepEqual(extra, [], 'a row without a 201');
      const per = new Map<string, number>();
      for (const r of rows) per.set(r.user_id, (per.get(r.user_id) ?? 0) + 1);
      assert.ok([...per.values()].every((c) => c <= perUser), 'a user over the limit');
      assert.equal((await a.getCampaign(id)).issued, rows.length);
      assert.equal((await a.audit(id)).ok, true);
      return acked.size;
    };

    const stampede = (id: string, users: number, times: number) => {
      const reqs = Array.from({ length: users * times }, (_, i) => ({ user: `u-${i % users}`, key: i % 3 === 0 ? `k-${i}` : null }));
      return reqs.map((r, i) => claimOf(i % 2 === 0 ? a : b, id, r.user, r.key));
    };

    test('a stampede over two instances: every 201 reaches SQL, none oversold, limits held, nothing lost', async () => {
      const id = await newCampaign(300, { perUserLimit: 2 });
      const outs = await Promise.all(stampede(id, 250, 3));
      await drained(a, b);
      assert.equal(await check(id, outs, 300, 2), 300);
      assert.equal(a.redisAtomicFast()!.lost + b.redisAtomicFast()!.lost, 0);
    });

    test('a key retried right after its 201 replays that claim, on either instance; another user with it is refused', async () => {
      const id = await newCampaign(100, { perUserLimit: 1 });
      const first = await a.claim(id, 'kim', 'key-1');
      assert.equal(first.status, 201);
      // At once (the claim may not be in SQL yet: Redis holds its key), and from the other instance.
      const [again, other, reused] = await Promise.all([a.claim(id, 'kim', 'key-1'), b.claim(id, 'kim', 'key-1'), b.claim(id, 'lee', 'key-1')]);
      assert.deepEqual(again.body, first.body);
      assert.equal(again.replayed, true);
      assert.deepEqual(other.body, first.body);
      assert.equal(reused.status, 422);
      assert.equal(code(reused.body), 'IDEMPOTENCY_KEY_REUSED');
      await drained(a, b);
      // Long after (SQL has it; Redis no longer does): still the same claim.
      assert.deepEqual((await b.claim(id, 'kim', 'key-1')).body, first.body);
      // A key SQL has from a refusal is not reused for a 201 either.
      assert.equal(code((await a.claim(id, 'kim', 'key-2')).body), 'USER_LIMIT_REACHED');
      assert.equal(code((await b.claim(id, 'kim', 'key-2')).body), 'USER_LIMIT_REACHED');
      assert.equal((await a.getCampaign(id)).issued, 1);
    });

    test('a key retried once its claim is in SQL (no longer reserved in Redis) replays it, even when the user may claim again', async () => {
      const id = await newCampaign(100, { perUserLimit: 3 });
      const first = await a.claim(id, 'pat', 'key-p');
      assert.equal(first.status, 201);
      await drained(a, b);
      for (const s of [a, b]) {
        const again = await s.claim(id, 'pat', 'key-p');
        assert.equal(again.replayed, true);
        assert.deepEqual(again.body, first.body);
      }
      await drained(a, b);
      assert.equal((await a.getCampaign(id)).issued, 1);
      assert.equal(a.redisAtomicFast()!.lost + b.redisAtomicFast()!.lost, 0);
    });

    test('FLUSHALL mid-stampede: zero lost acks (the instances hold what SQL lacks), zero oversold; the stock still sells out', async () => {
      const id = await newCampaign(150, { perUserLimit: 2 });
      const pending = stampede(id, 120, 3);
      let done = 0;
      pending.forEach((p) => void p.then(() => done++, () => done++));
      while (done < 60) await sleep(2);
      const r = new Redis(redis.url);
      await r.flushall();
      await r.quit();
      const outs = await Promise.all(pending);
      await drained(a, b);
      await check(id, outs, 150, 2);
      const more = await Promise.all(Array.from({ length: 60 }, (_, i) => claimOf(i % 2 ? a : b, id, `late-${i}`, null)));
      await drained(a, b);
      assert.equal(await check(id, [...outs, ...more], 150, 2), 150);
    });

    test('Redis restart (no persistence) mid-stampede: zero lost acks, zero oversold; claims resume after', async () => {
      const id = await newCampaign(150, { perUserLimit: 1 });
      const pending = stampede(id, 200, 1);
      let done = 0;
      pending.forEach((p) => void p.then(() => done++, () => done++));
      while (done < 50) await sleep(2);
      await redis.stop();
      await sleep(100);
      await redis.start();
      const outs = await Promise.all(pending);
      await drained(a, b);
      await check(id, outs, 150, 1);
      const more = await Promise.all(Array.from({ length: 200 }, (_, i) => claimOf(i % 2 ? a : b, id, `late-${i}`, null)));
      await drained(a, b);
      assert.equal(await check(id, [...outs, ...more], 150, 1), 150);
    });

    test('the database unreachable: an instance keeps answering from Redis; once it is gone, another replays its stream into SQL', async () => {
      const target = new URL(d.url());
      const proxy: FaultProxy = await startFaultProxy({ target: { host: target.hostname, port: Number(target.port) } });
      let c: AllotService | null = null;
      let rescuer: AllotService | null = null;
      try {
        c = await open({ url: proxy.url(d.url()), leaseTtlMs: 1_500 });
        const id = await newCampaign(500, { perUserLimit: 1 });
        // The block is leased while the database answers.
        const warm = await c.claim(id, 'warm', null);
        assert.equal(warm.status, 201);
        await drained(c);
        proxy.setBlackhole(true);
        const outs = await Promise.all(Array.from({ length: 40 }, (_, i) => claimOf(c!, id, `dark-${i}`, null)));
        assert.ok(outs.every((o) => o.status === 201), `answered from Redis while SQL is unreachable: ${JSON.stringify(outs.filter((o) => o.status !== 201).slice(0, 2))}`);
        assert.ok(c.redisAtomicFast()!.pending >= 40);
        // A claim with an Idempotency-Key needs SQL to know the key is new: 503. Redis logged it
        // before SQL was asked, and the other instances may replay this one's stream meanwhile (its
        // lease expired): the outcome is unknown, and a retry with the key learns it.
        const keyed = await claimOf(c, id, 'dark-keyed', 'dk-1');
        assert.equal(keyed.status, 503, JSON.stringify(keyed.body));
        // The instance goes away without reaching SQL: its lease stays open, its stream in Redis.
        // (close() waits 5 s for the write-behind, gives up, then ends its pool: MariaDB's waits
        // for the blackholed connections, so they are reset once it gave up.)
        const closing = c.close();
        c = null;
        await sleep(5_500);
        proxy.resetAll();
        // (MariaDB's pool reports the reset connections as it ends: not what this test is about.)
        await closing.catch((err: Error) => assert.match(err.message, /ECONNRESET|closed|terminated/i));
        rescuer = await open({ leaseTtlMs: 1_500, recoverEveryMs: 100 });
        const until = Date.now() + 15_000;
        for (;;) {
          const have = (await sql<{ n: string }>`SELECT count(*) AS n FROM claims WHERE campaign_id = ${id}`.execute(a.db)).rows[0]!.n;
          if (Number(have) >= 41) break;
          assert.ok(Date.now() < until, `the stream was not replayed: ${have} of 41 claims in SQL`);
          await sleep(50);
        }
        await drained(rescuer);
        // Replayed by whichever instance saw the lease expire first.
        const replayed = [a, b, rescuer].reduce((n, s) => n + s.redisAtomicFast()!.replayed, 0);
        assert.ok(replayed >= 40, `replayed ${replayed}`);
        // The keyed claim's retry: its claim if a replay wrote it, else a new one; one claim either way.
        const retried = await a.claim(id, 'dark-keyed', 'dk-1');
        assert.equal(retried.status, 201, JSON.stringify(retried.body));
        assert.equal((await a.claim(id, 'dark-keyed', 'dk-1')).replayed, true);
        await drained(a);
        await check(id, [warm, ...outs, retried], 500, 1);
        // The dead lease was reclaimed after its stream was replayed; nothing is leased to it.
        const open_ = (await sql<{ n: string }>`SELECT count(*) AS n FROM redis_leases WHERE campaign_id = ${id} AND state = 'open' AND expires_at < ${Date.now()}`.execute(a.db)).rows[0]!.n;
        assert.equal(Number(open_), 0);
        assert.equal((await a.audit(id)).ok, true);
      } finally {
        await c?.close();
        await rescuer?.close();
        await proxy.close();
      }
    });

    test('the write-behind is bounded: while SQL lags, claims beyond writeBehindMax wait for room; a key retried meanwhile replays its claim', async () => {
      const target = new URL(d.url());
      const proxy: FaultProxy = await startFaultProxy({ target: { host: target.hostname, port: Number(target.port) } });
      let c: AllotService | null = null;
      try {
        c = await open({ url: proxy.url(d.url()), writeBehindMax: 20 });
        const id = await newCampaign(1_000, { perUserLimit: 1 });
        const warm = await c.claim(id, 'warm', null);
        assert.equal(warm.status, 201);
        await drained(c);
        // Every SQL round trip now takes 10 ms more: Redis answers far faster than SQL writes.
        proxy.setLatency(10);
        let most = 0;
        const watch = setInterval(() => (most = Math.max(most, c!.redisAtomicFast()!.pending)), 1);
        // A keyed claim is retried (the same user and key) as soon as it is answered, while the
        // others still arrive: the retry must replay it, whichever path it takes.
        const retries: Array<Promise<[ClaimOutcome, ClaimOutcome]>> = [];
        const outs = await Promise.all(Array.from({ length: 120 }, async (_, i) => {
          const key = i % 4 === 0 ? `lag-k-${i}` : null;
          const o = await claimOf(c!, id, `lag-${i}`, key);
          if (key !== null && o.status === 201) retries.push(claimOf(c!, id, `lag-${i}`, key).then((r) => [o, r]));
          return o;
        }));
        const pairs = await Promise.all(retries);
        clearInterval(watch);
        assert.ok(outs.every((o) => o.status === 201), JSON.stringify(outs.find((o) => o.status !== 201)?.body));
        assert.equal(pairs.length, 30);
        for (const [o, r] of pairs) assert.deepEqual([r.status, r.replayed, claimId(r)], [201, true, claimId(o)], JSON.stringify(r.body));
        assert.ok(most <= 20, `at most 20 claims wait for SQL, saw ${most}`);
        assert.ok(most >= 10, `the fast path is still used up to the bound, saw at most ${most}`);
        const f = c.redisAtomicFast()!;
        assert.ok(f.waited > 0, 'claims beyond the bound waited for room');
        proxy.setLatency(0);
        await drained(c);
        await check(id, [warm, ...outs], 1_000, 1);
        assert.equal(c.redisAtomicFast()!.lost, 0);
      } finally {
        await c?.close();
        await proxy.close();
      }
    });

    test('instances replaying one dead stream at the same time write each claim once and count no loss', async () => {
      const target = new URL(d.url());
      const proxy: FaultProxy = await startFaultProxy({ target: { host: target.hostname, port: Number(target.port) } });
      let c: AllotService | null = null;
      const rescuers: AllotService[] = [];
      try {
        c = await open({ url: proxy.url(d.url()), leaseTtlMs: 1_000 });
        const id = await newCampaign(500, { perUserLimit: 1 });
        const warm = await c.claim(id, 'warm', null);
        assert.equal(warm.status, 201);
        await drained(c);
        proxy.setBlackhole(true);
        const outs = await Promise.all(Array.from({ length: 60 }, (_, i) => claimOf(c!, id, `twin-${i}`, null)));
        assert.ok(outs.every((o) => o.status === 201));
        // Three instances watch for the lease to expire, every 5 ms: they replay the stream at once.
        for (let i = 0; i < 3; i++) rescuers.push(await open({ leaseTtlMs: 1_000, recoverEveryMs: 5 }));
        const until = Date.now() + 15_000;
        for (;;) {
          const have = (await sql<{ n: string }>`SELECT count(*) AS n FROM claims WHERE campaign_id = ${id}`.execute(a.db)).rows[0]!.n;
          if (Number(have) >= 61) break;
          assert.ok(Date.now() < until, `the stream was not replayed: ${have} of 61 claims in SQL`);
          await sleep(20);
        }
        await drained(a, b, ...rescuers);
        const all = [a, b, ...rescuers];
        assert.ok(all.reduce((n, s) => n + s.redisAtomicFast()!.replayed, 0) >= 60);
        assert.equal(all.reduce((n, s) => n + s.redisAtomicFast()!.lost, 0), 0, 'a claim SQL has from another replay is not a lost ack');
        // The instance comes back: its own write-behind finds its claims written by the others.
        proxy.setBlackhole(false);
        proxy.resetAll();
        await drained(c);
        assert.equal(c.redisAtomicFast()!.lost, 0, 'its claims, replayed by others, are not lost acks either');
        await check(id, [warm, ...outs], 500, 1);
        assert.equal((await a.audit(id)).ok, true);
      } finally {
        proxy.resetAll();
        await c?.close().catch(() => undefined);
        for (const r of rescuers) await r.close();
        await proxy.close();
      }
    });

    test('a claim with a daily limit is written before its 201 (Redis counts no days)', async () => {
      const id = await newCampaign(10, { perUserLimit: 5, perUserDailyLimit: 1 });
      const outs = await Promise.all([a.claim(id, 'd', null), b.claim(id, 'd', null), a.claim(id, 'd', null)]);
      assert.deepEqual(outs.map((o) => o.status).sort(), [201, 409, 409]);
      // Durable: in SQL as answered, nothing pending.
      assert.equal((await a.getCampaign(id)).issued, 1);
    });
  });
}
