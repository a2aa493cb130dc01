// The `conditional` strategy's fast path (ClaimStore.claimConditional): on PostgreSQL one
// statement that commits on its own, on MySQL one short transaction. Its new failure modes, on
// every dialect: a key taken over by a retry, a user at the limit, a sold-out unit and the day
// that never moves backwards must each leave NO write behind (or, for the day, count the claim
// in the counter's later day). Through the service: the stored answer is exactly the 201 body,
// and a store without the fast path still gets the step-by-step transaction. The generic claim
// contract, the lottery contract and the race test run the fast path too.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import type { KeyCompletion } from '../../src/ports/claim-batch.ts';
import type { ClaimStore, ConditionalClaim, StockUnit } from '../../src/ports/claim-store.ts';
import { AllotService } from '../../src/service/service.ts';
import { dialects } from '../helpers/dialects.ts';

const T0 = Date.parse('2026-12-02T10:00:00Z');
const DAY = '2026-12-02';
const code = (body: unknown) => (body as { error?: { code?: string } }).error?.code;

for (const d of dialects()) {
  describe(`conditional fast path on ${d.name}`, () => {
    let service: AllotService;
    let store: ClaimStore;
    const run = randomUUID().slice(0, 8);
    let n = 0;

    before(async () => {
      service = await AllotService.open({
        config: { databaseUrl: d.url(), dbPoolSize: 8, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
        clock: { now: () => T0 },
        payouts: { sweepIntervalMs: 0 },
      });
      store = service.store;
    });
    after(async () => {
      await service?.close();
    });

    const newCampaign = async (extra: Record<string, unknown> = {}) => {
      const id = `cf-${run}-${++n}`;
      await service.createCampaign({ id, kind: 'coupon', name: 'cf', stock: 10, strategy: 'conditional', ...extra });
      return id;
    };
    const unitOf = (id: string): StockUnit => ({ campaignId: id, prizeId: null });
    /** A running key owned by `owner`, as IdempotencyStore.begin leaves it. */
    const takeKey = async (id: string, key: string, owner: string) => {
      await sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, created_at) VALUES (${id}, ${key}, ${'f'.repeat(64)}, 'running', ${owner}, ${T0 + 10_000}, ${T0})`.execute(service.db);
    };
    const input = (id: string, user: string, opts: { unit?: StockUnit | null; day?: string; limit?: number; daily?: number | null; key?: { key: string; owner: string } } = {}): ConditionalClaim => {
      const claimId = `clm-${run}-${++n}`;
      const claim = { id: claimId, campaignId: id, userId: user, prizeId: opts.unit?.prizeId ?? null, createdAt: T0 };
      const completion: KeyCompletion | null = opts.key
        ? { scope: id, key: opts.key.key, owner: opts.key.owner, response: { status: 201, body: { claim: { id: claimId, note: 'the engine’s body' } } }, ref: claimId }
        : null;
      return {
        claim,
        unit: opts.unit === undefined ? unitOf(id) : opts.unit,
        limits: { perUserLimit: opts.limit ?? 1, perUserDailyLimit: opts.daily ?? null, day: opts.day ?? DAY },
        idempotencyKey: opts.key?.key ?? null,
        draw: null,
        completion,
      };
    };
    const claimOnce = (c: ConditionalClaim) => store.claimConditional!(c);

    /** Everything the fast path writes for one campaign and user. */
    const state = async (id: string, user: string) => {
      const counter = (await sql<{ total: unknown; utc_day: unknown; day_count: unknown }>`SELECT total, utc_day, day_count FROM user_claims WHERE campaign_id = ${id} AND user_id = ${user}`.execute(service.db)).rows[0];
      const claims = (await sql<{ id: unknown; utc_day: unknown }>`SELECT id, utc_day FROM claims WHERE campaign_id = ${id} AND user_id = ${user} ORDER BY id`.execute(service.db)).rows;
      const keys = (await sql<{ idem_key: unknown; state: unknown; owner: unknown; status_code: unknown; response: unknown; claim_id: unknown }>`SELECT idem_key, state, owner, status_code, response, claim_id FROM idempotency_keys WHERE campaign_id = ${id} ORDER BY idem_key`.execute(service.db)).rows;
      return {
        counter: counter ? `${Number(counter.total)}/${String(counter.utc_day)}/${Number(counter.day_count)}` : null,
        claims: claims.map((c) => `${String(c.id)}@${String(c.utc_day)}`),
        keys: keys.map((k) => ({ key: String(k.idem_key), state: String(k.state), owner: String(k.owner), status: k.status_code === null ? null : Number(k.status_code), response: k.response === null ? null : JSON.parse(String(k.response)) as unknown, claimId: k.claim_id === null ? null : String(k.claim_id) })),
        issued: (await service.getCampaign(id)).issued,
      };
    };

    test('issued: the counter, the unit, the claim and the key answer commit together', async () => {
      const id = await newCampaign();
      await takeKey(id, 'k1', 'req-1');
      const c = input(id, 'u1', { key: { key: 'k1', owner: 'req-1' } });
      assert.equal(await claimOnce(c), 'issued');
      const s = await state(id, 'u1');
      assert.equal(s.counter, `1/${DAY}/1`);
      assert.deepEqual(s.claims, [`${c.claim.id}@${DAY}`]);
      assert.equal(s.issued, 1);
      assert.deepEqual(s.keys, [{ key: 'k1', state: 'done', owner: 'req-1', status: 201, response: c.completion!.response.body, claimId: c.claim.id }]);
      assert.equal((await service.audit(id)).ok, true);
    });

    test('a key taken over by a retry: key_lost, and the claim does not commit (no counter, no unit, no claim)', async () => {
      const id = await newCampaign();
      // The request 'req-1' took the key, its lease ran out, and the retry 'req-2' took it over.
      await takeKey(id, 'k1', 'req-2');
      assert.equal(await claimOnce(input(id, 'u1', { key: { key: 'k1', owner: 'req-1' } })), 'key_lost');
      const s = await state(id, 'u1');
      assert.deepEqual({ counter: s.counter, claims: s.claims, issued: s.issued }, { counter: null, claims: [], issued: 0 });
      assert.deepEqual(s.keys.map((k) => `${k.state}:${k.owner}`), ['running:req-2'], 'the retry still owns the key, unanswered');
      // The retry itself goes through.
      assert.equal(await claimOnce(input(id, 'u1', { key: { key: 'k1', owner: 'req-2' } })), 'issued');
      assert.equal((await service.audit(id)).ok, true);
    });

    test('a user at the limit: user_limit, no unit taken, no claim, the key left running', async () => {
      const id = await newCampaign();
      assert.equal(await claimOnce(input(id, 'u1')), 'issued');
      await takeKey(id, 'k2', 'req-2');
      assert.equal(await claimOnce(input(id, 'u1', { key: { key: 'k2', owner: 'req-2' } })), 'user_limit');
      const s = await state(id, 'u1');
      assert.equal(s.counter, `1/${DAY}/1`);
      assert.equal(s.claims.length, 1);
      assert.equal(s.issued, 1, 'no unit taken for the refused claim');
      assert.deepEqual(s.keys.map((k) => `${k.key}:${k.state}`), ['k2:running']);
      assert.equal((await service.audit(id)).ok, true);
    });

    test('sold out: sold_out, no counter bumped (new and returning user), no claim, the key left running', async () => {
      const id = await newCampaign({ stock: 1 });
      assert.equal(await claimOnce(input(id, 'u1', { limit: 5 })), 'issued');
      await takeKey(id, 'k2', 'req-2');
      assert.equal(await claimOnce(input(id, 'u2', { limit: 5, key: { key: 'k2', owner: 'req-2' } })), 'sold_out');
      assert.equal(await claimOnce(input(id, 'u1', { limit: 5 })), 'sold_out');
      const s2 = await state(id, 'u2');
      assert.deepEqual({ counter: s2.counter, claims: s2.claims, issued: s2.issued }, { counter: null, claims: [], issued: 1 });
      assert.deepEqual(s2.keys.map((k) => `${k.key}:${k.state}`), ['k2:running']);
      assert.equal((await state(id, 'u1')).counter, `1/${DAY}/1`, 'the returning user’s counter did not move');
      assert.equal((await service.audit(id)).ok, true);
    });

    test('a user at the limit on a sold-out unit: user_limit, as the step-by-step claim answers', async () => {
      const id = await newCampaign({ stock: 1 });
      assert.equal(await claimOnce(input(id, 'u1')), 'issued');
      assert.equal(await claimOnce(input(id, 'u1')), 'user_limit');
      assert.equal(await claimOnce(input(id, 'u2')), 'sold_out');
    });

    test('the day never moves backwards: a claim stamped before midnight that commits late counts in the later day', async () => {
      const id = await newCampaign({ perUserLimit: 5, perUserDailyLimit: 2 });
      const lim = { limit: 5, daily: 2 };
      assert.equal(await claimOnce(input(id, 'u1', { ...lim, day: '2026-12-03' })), 'issued');
      // Stamped the day before, committing after: it counts in 2026-12-03 (its second claim there).
      const late = input(id, 'u1', { ...lim, day: DAY });
      assert.equal(await claimOnce(late), 'issued');
      let s = await state(id, 'u1');
      assert.equal(s.counter, '2/2026-12-03/2', 'the counter stays in the later day and counts both');
      assert.ok(s.claims.includes(`${late.claim.id}@2026-12-03`), `the late claim counts in the later day: ${JSON.stringify(s.claims)}`);
      // 2026-12-03 is full: a third claim stamped either day is refused and writes nothing.
      assert.equal(await claimOnce(input(id, 'u1', { ...lim, day: DAY })), 'user_limit');
      assert.equal(await claimOnce(input(id, 'u1', { ...lim, day: '2026-12-03' })), 'user_limit');
      // The next day starts a new count.
      assert.equal(await claimOnce(input(id, 'u1', { ...lim, day: '2026-12-04' })), 'issued');
      s = await state(id, 'u1');
      assert.equal(s.counter, '3/2026-12-04/1');
      assert.equal(s.issued, 3);
      assert.equal((await service.audit(id)).ok, true);
    });

    test('a lottery miss takes no unit; a prize takes its own', async () => {
      const id = `cfl-${run}`;
      await service.createCampaign({ id, kind: 'lottery', name: 'cf lottery', strategy: 'conditional', perUserLimit: 1, prizes: [{ id: 'a', name: 'A', stock: 1, weight: 1 }], missWeight: 1 });
      assert.equal(await claimOnce(input(id, 'u1', { unit: null })), 'issued');
      assert.equal(await claimOnce(input(id, 'u1', { unit: null })), 'user_limit');
      const prize = { campaignId: id, prizeId: 'a' };
      assert.equal(await claimOnce(input(id, 'u2', { unit: prize })), 'issued');
      assert.equal(await claimOnce(input(id, 'u3', { unit: prize })), 'sold_out');
      assert.equal((await state(id, 'u3')).counter, null);
      const c = await service.getCampaign(id);
      assert.deepEqual(c.prizes.map((p) => [p.id, p.issued]), [['a', 1]]);
    });

    test('through the service: the stored answer is exactly the 201 body, and the key replays it', async () => {
      const id = await newCampaign();
      let calls = 0;
      const fast = store.claimConditional!.bind(store);
      const spied = store as { claimConditional?: ClaimStore['claimConditional'] };
      spied.claimConditional = (c) => {
        calls++;
        return fast(c);
      };
      try {
        const first = await service.claim(id, 'u1', 'key-1');
        assert.equal(first.status, 201);
        assert.equal(calls, 1, 'the strategy took the fast path');
        const s = await state(id, 'u1');
        assert.deepEqual(s.keys.map((k) => [k.state, k.status, k.response, k.claimId]), [['done', 201, first.body, (first.body as { claim: { id: string } }).claim.id]]);
        const again = await service.claim(id, 'u1', 'key-1');
        assert.equal(again.replayed, true);
        assert.deepEqual(again.body, first.body);
        assert.equal(code((await service.claim(id, 'u1', 'key-2')).body), 'USER_LIMIT_REACHED');
      } finally {
        delete spied.claimConditional;
      }
    });

    test('a store without the fast path gets the step-by-step transaction', async () => {
      const id = await newCampaign({ stock: 2 });
      const hidden = store as { claimConditional?: unknown };
      hidden.claimConditional = undefined;
      try {
        assert.equal((await service.claim(id, 'u1', 'k1')).status, 201);
        assert.equal(code((await service.claim(id, 'u1', 'k2')).body), 'USER_LIMIT_REACHED');
        assert.equal((await service.claim(id, 'u2', null)).status, 201);
        assert.equal(code((await service.claim(id, 'u3', 'k3')).body), 'SOLD_OUT');
        assert.equal((await service.claim(id, 'u1', 'k1')).replayed, true);
      } finally {
        delete hidden.claimConditional;
      }
      assert.equal((await service.getCampaign(id)).issued, 2);
      assert.equal((await service.audit(id)).ok, true);
    });

    // PostgreSQL: the statement read the unit's row in its snapshot (room), counted the user, and
    // only then found the last unit gone (another transaction took it and committed while the
    // statement waited for the row lock). The user's counter was already bumped inside the
    // statement: the statement must fail and commit none of it.
    test('postgres: the last unit taken while the statement waits for its row lock: sold_out, and the counter bump does not commit', { skip: d.backend !== 'postgres' ? 'needs a second session on a PostgreSQL server' : false }, async () => {
      const id = await newCampaign({ stock: 1 });
      await takeKey(id, 'k1', 'req-1');
      const c = input(id, 'u1', { key: { key: 'k1', owner: 'req-1' } });
      let verdict: Promise<string> | null = null;
      await service.db.transaction().execute(async (trx) => {
        await sql`UPDATE campaigns SET issued = issued + 1 WHERE id = ${id}`.execute(trx);
        verdict = claimOnce(c);
        // Until the statement waits for the campaign row lock held here.
        const deadline = Date.now() + 5000;
        for (;;) {
          const waiting = (await sql<{ n: unknown }>`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%counted AS%'`.execute(service.db)).rows[0];
          if (Number(waiting?.n) > 0) break;
          assert.ok(Date.now() < deadline, 'the claim statement never waited for the row lock');
          await new Promise((r) => setTimeout(r, 20));
        }
      });
      assert.equal(await verdict!, 'sold_out');
      const s = await state(id, 'u1');
      assert.deepEqual({ counter: s.counter, claims: s.claims, issued: s.issued }, { counter: null, claims: [], issued: 1 });
      assert.deepEqual(s.keys.map((k) => `${k.key}:${k.state}`), ['k1:running']);
    });
  });
}
