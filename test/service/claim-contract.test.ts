// The claim contract, once per dialect and strategy: the same behaviour on PGlite, PostgreSQL
// and MariaDB, through the service (the HTTP layer has its own tests).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { fingerprint } from '../../src/core/idempotency.ts';
import { AllotService } from '../../src/service/service.ts';
import { UNSAFE_STRATEGIES } from '../../src/strategies/index.ts';
import { ALL_STRATEGIES, dialects, isolationOf } from '../helpers/dialects.ts';

const DAY = 24 * 3600 * 1000;
const T0 = Date.parse('2026-11-22T10:00:00Z');

// The servers also run at the other isolation levels the guards must hold under: MariaDB at
// REPEATABLE READ (the seed's condition: gap locks, snapshot reads) and PostgreSQL at SERIALIZABLE
// (40001 failures, retried by the strategies and the idempotency protocol). The whole contract
// runs there (about 35 s for both cases); ALLOT_CONTRACT_LIMITS_ONLY=1 narrows them to the limit
// tests (limit 1, limit 3, daily caps, the day that never moves back, concurrency; about 23 s).
for (const d of dialects({ isolations: true })) {
  const limitsOnly = d.isolation !== undefined && process.env.ALLOT_CONTRACT_LIMITS_ONLY === '1';
  const otherThanLimits = limitsOnly ? `runs at the default isolation (this case: ${d.isolation}, limit tests only)` : false;
  describe(`claim contract on ${d.name}`, () => {
    let service: AllotService;
    let now = T0;
    before(async () => {
      service = await AllotService.open({
        config: { databaseUrl: d.url(), dbPoolSize: 8, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: true, locksUrl: process.env.REDIS_URL, lockPrefix: `test-${randomUUID().slice(0, 8)}:`, ...isolationOf(d) },
        clock: { now: () => now },
      });
    });
    after(async () => {
      await service?.close();
    });

    for (const strategy of ALL_STRATEGIES) {
      const unsafe = (UNSAFE_STRATEGIES as readonly string[]).includes(strategy);
      const newCampaign = async (extra: Record<string, unknown> = {}) => {
        now = T0;
        const id = `ct-${strategy}-${randomUUID().slice(0, 8)}`;
        await service.createCampaign({ id, kind: 'coupon', name: 'contract', stock: 3, strategy, ...extra });
        return id;
      };
      const claim = (id: string, user: string, key: string | null = null) => service.claim(id, user, key);
      const code = (body: unknown) => (body as { error?: { code?: string } }).error?.code;

      describe(strategy, () => {
        test('issues up to the stock, then SOLD_OUT, which does not count against the user', { skip: otherThanLimits }, async () => {
          const id = await newCampaign({ stock: 2 });
          assert.equal((await claim(id, 'u1')).status, 201);
          assert.equal((await claim(id, 'u2')).status, 201);
          const sold = await claim(id, 'u3');
          assert.equal(sold.status, 409);
          assert.equal(code(sold.body), 'SOLD_OUT');
          const c = await service.getCampaign(id);
          assert.equal(c.issued, 2);
          assert.deepEqual((await service.listClaims(id, 'u3', 10, null)).items, []);
          // The refused user holds no counted claim: the audit's counters match the claims.
          assert.equal((await service.audit(id)).ok, true);
        });

        test('stock 0 is sold out from the start', { skip: otherThanLimits }, async () => {
          const id = await newCampaign({ stock: 0 });
          assert.equal(code((await claim(id, 'u1')).body), 'SOLD_OUT');
        });

        test('per-user limit 1', async () => {
          const id = await newCampaign();
          assert.equal((await claim(id, 'u1')).status, 201);
          const again = await claim(id, 'u1');
          assert.equal(again.status, 409);
          assert.equal(code(again.body), 'USER_LIMIT_REACHED');
          assert.equal((await service.getCampaign(id)).issued, 1);
        });

        test('per-user limit 3', async () => {
          const id = await newCampaign({ stock: 10, perUserLimit: 3 });
          for (let i = 0; i < 3; i++) assert.equal((await claim(id, 'u1')).status, 201);
          assert.equal(code((await claim(id, 'u1')).body), 'USER_LIMIT_REACHED');
          assert.equal((await claim(id, 'u2')).status, 201);
          assert.equal((await service.listClaims(id, 'u1', 10, null)).items.length, 3);
          assert.equal((await service.audit(id)).ok, true);
        });

        test('daily limit resets on the next UTC day, the total limit does not', async () => {
          const id = await newCampaign({ stock: 10, perUserLimit: 3, perUserDailyLimit: 2 });
          assert.equal((await claim(id, 'u1')).status, 201);
          assert.equal((await claim(id, 'u1')).status, 201);
          assert.equal(code((await claim(id, 'u1')).body), 'USER_LIMIT_REACHED');
          now = T0 + DAY;
          assert.equal((await claim(id, 'u1')).status, 201);
          assert.equal(code((await claim(id, 'u1')).body), 'USER_LIMIT_REACHED', 'total limit 3 reached');
          assert.equal((await service.audit(id)).ok, true);
        });

        // A claim stamped 23:59:59 that commits after one stamped 00:00:01 (lock waits, retries,
        // or another instance's clock a little behind) must not move the counter's day back: that
        // would reset the count and let a second claim into the later day. The injected clock
        // stands for the stamp each request took before it reached the database.
        test('the day never moves backwards: a claim stamped before midnight that commits late counts in the later day', { skip: strategy === 'naive' ? 'naive is unsafe by design' : false }, async () => {
          const id = await newCampaign({ stock: 10, perUserLimit: 3, perUserDailyLimit: 1 });
          const midnight = Date.parse('2026-11-23T00:00:00Z');
          now = midnight + 1000; // D+1 00:00:01
          assert.equal((await claim(id, 'u1')).status, 201);
          now = midnight - 1000; // stamped D 23:59:59, committing after the claim above
          const late = await claim(id, 'u1');
          assert.equal(late.status, 409, `the late claim must count in D+1, whose daily limit is used: ${JSON.stringify(late.body)}`);
          assert.equal(code(late.body), 'USER_LIMIT_REACHED');
          now = midnight + 2000; // D+1 00:00:02: the day's limit is still used
          const again = await claim(id, 'u1');
          assert.equal(again.status, 409, `D+1 already holds a claim: ${JSON.stringify(again.body)}`);
          assert.equal(code(again.body), 'USER_LIMIT_REACHED');
          now = midnight + DAY + 1000; // D+2
          assert.equal((await claim(id, 'u1')).status, 201);
          const audit = await service.audit(id);
          assert.equal(audit.ok, true, JSON.stringify(audit.checks));
          // No UTC day holds two claims of the user: by the day each claim counted in, and by its stamp.
          const perDay = (await sql<{ d: unknown; n: unknown }>`SELECT utc_day AS d, count(*) AS n FROM claims WHERE campaign_id = ${id} AND user_id = ${'u1'} GROUP BY utc_day`.execute(service.db)).rows;
          assert.deepEqual(perDay.map((r) => [String(r.d), Number(r.n)]).sort(), [['2026-11-23', 1], ['2026-11-24', 1]]);
          const stamps = (await service.listClaims(id, 'u1', 10, null)).items.map((c) => new Date(c.createdAt).toISOString().slice(0, 10));
          assert.equal(new Set(stamps).size, stamps.length, `two claims stamped on one day: ${stamps.join(', ')}`);
        });

        test('window: before startsAt and from endsAt on, CAMPAIGN_NOT_ACTIVE', { skip: otherThanLimits }, async () => {
          const id = await newCampaign({ startsAt: new Date(T0 + 1000).toISOString(), endsAt: new Date(T0 + 2000).toISOString() });
          now = T0;
          assert.equal(code((await claim(id, 'u1')).body), 'CAMPAIGN_NOT_ACTIVE');
          now = T0 + 1000;
          assert.equal((await claim(id, 'u1')).status, 201);
          now = T0 + 2000;
          assert.equal(code((await claim(id, 'u2')).body), 'CAMPAIGN_NOT_ACTIVE');
          assert.equal((await service.getCampaign(id)).issued, 1);
        });

        test('unknown campaign: CAMPAIGN_NOT_FOUND', { skip: otherThanLimits }, async () => {
          const out = await claim(`nope-${randomUUID()}`, 'u1');
          assert.equal(out.status, 404);
          assert.equal(code(out.body), 'CAMPAIGN_NOT_FOUND');
        });

        test('idempotent replay returns the first outcome, errors included', { skip: otherThanLimits }, async () => {
          const id = await newCampaign({ stock: 1 });
          const first = await claim(id, 'u1', 'key-1');
          assert.equal(first.status, 201);
          const again = await claim(id, 'u1', 'key-1');
          assert.equal(again.status, 201);
          assert.equal(again.replayed, true);
          assert.deepEqual(again.body, first.body);
          const sold = await claim(id, 'u2', 'key-2');
          assert.equal(code(sold.body), 'SOLD_OUT');
          const soldAgain = await claim(id, 'u2', 'key-2');
          assert.equal(soldAgain.replayed, true);
          assert.equal(soldAgain.status, 409);
          assert.deepEqual(soldAgain.body, sold.body);
          assert.equal((await service.getCampaign(id)).issued, 1);
          assert.equal((await service.audit(id)).ok, true);
        });

        test('the same key with another payload is 422; a running key is 409 IN_PROGRESS', { skip: otherThanLimits }, async () => {
          const id = await newCampaign();
          assert.equal((await claim(id, 'u1', 'k')).status, 201);
          const reused = await claim(id, 'u2', 'k');
          assert.equal(reused.status, 422);
          assert.equal(code(reused.body), 'IDEMPOTENCY_KEY_REUSED');
          // Another request holds the key (its lease has not run out).
          const fp = fingerprint('claim', { campaignId: id, userId: 'u3' });
          assert.equal((await service.keys.begin(id, 'held', fp, 'other-req', now, 60_000)).state, 'owner');
          const busy = await claim(id, 'u3', 'held');
          assert.equal(busy.status, 409);
          assert.equal(code(busy.body), 'IDEMPOTENCY_IN_PROGRESS');
          // Once that lease runs out (the holder died), a retry takes the key over and runs.
          now += 61_000;
          assert.equal((await claim(id, 'u3', 'held')).status, 201);
          assert.equal((await service.audit(id)).ok, true);
        });

        test('purging keys past their retention keeps the audit green; under 24 h is refused', { skip: otherThanLimits }, async () => {
          const id = await newCampaign();
          assert.equal((await claim(id, 'u1', 'old-key')).status, 201);
          await assert.rejects(service.purgeIdempotencyKeys(3600_000), (e: Error & { code?: string }) => e.code === 'VALIDATION_FAILED');
          now = T0 + 25 * 3600_000;
          assert.ok((await service.purgeIdempotencyKeys(24 * 3600_000)) >= 1);
          // The key is gone: the same request runs afresh, and the user's limit still holds.
          const again = await claim(id, 'u1', 'old-key');
          assert.equal(again.replayed, false);
          assert.equal(code(again.body), 'USER_LIMIT_REACHED');
          assert.equal((await service.audit(id)).ok, true);
        });

        test('a key purged after its retention can be used again (perUserLimit 2)', { skip: otherThanLimits }, async () => {
          const id = await newCampaign({ perUserLimit: 2 });
          assert.equal((await claim(id, 'u1', 'K')).status, 201);
          now = T0 + 25 * 3600_000;
          assert.ok((await service.purgeIdempotencyKeys(24 * 3600_000)) >= 1);
          const again = await claim(id, 'u1', 'K');
          assert.equal(again.status, 201, JSON.stringify(again.body));
          assert.equal(again.replayed, false);
          assert.equal((await service.listClaims(id, 'u1', 10, null)).items.length, 2);
          assert.equal((await service.audit(id)).ok, true);
        });

        test('keys are scoped per campaign', { skip: otherThanLimits }, async () => {
          const a = await newCampaign();
          const b = await newCampaign();
          assert.equal((await claim(a, 'u1', 'shared')).status, 201);
          const other = await claim(b, 'u1', 'shared');
          assert.equal(other.status, 201);
          assert.equal(other.replayed, false);
        });

        // Optimistic strategies may give up under contention (503, nothing issued): counted, not
        // failed. So may every strategy at SERIALIZABLE on PostgreSQL: concurrent claims of new
        // users conflict on the predicate locks of their inserts (40001), and a claim that failed
        // its whole retry policy gives up.
        const optimistic = strategy.startsWith('optimistic') || d.isolation === 'serializable';
        const settled = (p: Promise<{ status: number }>) =>
          p.catch((e: { code?: string; details?: { reason?: string } }) => {
            if (optimistic && e.code === 'UNAVAILABLE' && e.details?.reason === 'contention') return { status: 503 };
            throw e;
          });

        test('concurrent claims in one process never oversell', { skip: strategy === 'naive' ? 'naive oversells by design (the race lab shows it)' : false }, async () => {
          const id = await newCampaign({ stock: 7 });
          const outs = await Promise.all(Array.from({ length: 30 }, (_, i) => settled(claim(id, `u${i % 20}`))));
          const ok = outs.filter((o) => o.status === 201).length;
          if (optimistic) assert.ok(ok >= 1 && ok <= 7, `issued ${ok}`);
          else assert.equal(ok, 7);
          assert.equal((await service.getCampaign(id)).issued, ok);
          assert.equal((await service.audit(id)).ok, true);
        });

        test('the audit reads one snapshot: it passes while claims commit', { skip: unsafe ? 'unsafe strategies write in separate statements: the audit sees their halves' : otherThanLimits }, async () => {
          const id = await newCampaign({ stock: 200 });
          const claims = Promise.all(Array.from({ length: 120 }, (_, i) => settled(claim(id, `u${i}`))));
          const audits = [];
          for (let i = 0; i < 6; i++) audits.push(await service.audit(id));
          await claims;
          for (const a of audits) assert.equal(a.ok, true, JSON.stringify(a.checks));
        });
      });
    }
  });
}
