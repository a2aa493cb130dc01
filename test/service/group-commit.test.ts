// The group-commit strategy's own cases, on every dialect: batches that mix a user twice, a
// user at the limit, a key whose lease a retry took over, and a sell-out inside a batch (the
// all-or-nothing stock update refuses, the batch reruns handing out what is left). The generic
// claim contract and the 4-process race test run it too (it is in SAFE_STRATEGIES).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { SqlClaimBatchStore } from '../../src/adapters/sql/sql-batch.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import type { BatchMember } from '../../src/ports/claim-batch.ts';
import { AllotService } from '../../src/service/service.ts';
import { dialects } from '../helpers/dialects.ts';

const T0 = Date.parse('2026-12-02T10:00:00Z');

/** Counts the runs of the store's transactional path (decide), which still runs it. */
function spyTransactional(store: SqlClaimBatchStore): { calls: number } {
  const spy = { calls: 0 };
  const s = store as unknown as { decide: (...a: unknown[]) => Promise<unknown> };
  const decide = s.decide.bind(store);
  s.decide = (...a: unknown[]) => {
    spy.calls++;
    return decide(...a);
  };
  return spy;
}
const code = (body: unknown) => (body as { error?: { code?: string } }).error?.code;

for (const d of dialects()) {
  describe(`group-commit on ${d.name}`, () => {
    let service: AllotService;
    const run = randomUUID().slice(0, 8);
    let n = 0;
    const newCampaign = async (extra: Record<string, unknown> = {}) => {
      const id = `gc-${run}-${++n}`;
      await service.createCampaign({ id, kind: 'coupon', name: 'gc', stock: 100, strategy: 'group-commit', ...extra });
      return id;
    };

    before(async () => {
      service = await AllotService.open({
        config: { databaseUrl: d.url(), dbPoolSize: 8, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
        clock: { now: () => T0 },
        payouts: { sweepIntervalMs: 0 },
      });
    });
    after(async () => {
      await service?.close();
    });

    test('a stampede larger than the stock: exactly the stock is issued, the rest SOLD_OUT, limits hold', async () => {
      const id = await newCampaign({ stock: 30, perUserLimit: 2 });
      // 60 users, each three times at once (one beyond the limit), half with keys.
      const reqs = Array.from({ length: 180 }, (_, i) => ({ user: `u-${i % 60}`, key: i % 2 === 0 ? `k-${i}` : null }));
      const outs = await Promise.all(reqs.map((r) => service.claim(id, r.user, r.key)));
      const ok = outs.filter((o) => o.status === 201);
      assert.equal(ok.length, 30);
      for (const o of outs.filter((x) => x.status !== 201)) assert.ok(['SOLD_OUT', 'USER_LIMIT_REACHED'].includes(code(o.body) ?? ''), JSON.stringify(o.body));
      const perUser = new Map<string, number>();
      for (const o of ok) {
        const u = (o.body as { claim: { userId: string } }).claim.userId;
        perUser.set(u, (perUser.get(u) ?? 0) + 1);
      }
      assert.ok([...perUser.values()].every((c) => c <= 2));
      assert.equal((await service.getCampaign(id)).issued, 30);
      assert.equal((await service.audit(id)).ok, true);
    });

    test('one user many times in one burst, limit 1: one claim, the others USER_LIMIT_REACHED', async () => {
      const id = await newCampaign({ stock: 100, perUserLimit: 1 });
      const outs = await Promise.all([
        ...Array.from({ length: 10 }, () => service.claim(id, 'same', null)),
        ...Array.from({ length: 20 }, (_, i) => service.claim(id, `other-${i}`, null)),
      ]);
      const same = outs.slice(0, 10);
      assert.equal(same.filter((o) => o.status === 201).length, 1);
      assert.ok(same.filter((o) => o.status !== 201).every((o) => code(o.body) === 'USER_LIMIT_REACHED'));
      assert.equal(outs.slice(10).filter((o) => o.status === 201).length, 20);
      assert.equal((await service.audit(id)).ok, true);
    });

    test('a repeated key in a burst answers one claim; the key replays it', async () => {
      const id = await newCampaign({ stock: 100, perUserLimit: 3 });
      const outs = await Promise.all(Array.from({ length: 10 }, () => service.claim(id, 'keyed', 'the-key')));
      const ids = new Set(outs.filter((o) => o.status === 201).map((o) => (o.body as { claim: { id: string } }).claim.id));
      assert.equal(ids.size, 1);
      for (const o of outs.filter((x) => x.status !== 201)) assert.equal(code(o.body), 'IDEMPOTENCY_IN_PROGRESS');
      const again = await service.claim(id, 'keyed', 'the-key');
      assert.equal(again.replayed, true);
      assert.equal((await service.getCampaign(id)).issued, 1);
    });

    test('a daily limit per member of a batch', async () => {
      const id = await newCampaign({ stock: 100, perUserLimit: 5, perUserDailyLimit: 2 });
      const outs = await Promise.all(Array.from({ length: 12 }, (_, i) => service.claim(id, `d-${i % 3}`, null)));
      assert.equal(outs.filter((o) => o.status === 201).length, 6);
      assert.equal((await service.audit(id)).ok, true);
    });

    test('a lottery through group-commit: prizes within stock, the audit holds', async () => {
      const id = `gcl-${run}`;
      await service.createCampaign({ id, kind: 'lottery', name: 'gc lottery', strategy: 'group-commit', perUserLimit: 1, prizes: [{ id: 'a', name: 'A', stock: 5, weight: 1 }, { id: 'b', name: 'B', stock: 5, weight: 1 }], missWeight: 1 });
      const outs = await Promise.all(Array.from({ length: 60 }, (_, i) => service.claim(id, `l-${i}`, `lk-${i}`)));
      const prizes = outs.filter((o) => o.status === 201).map((o) => (o.body as { claim: { prizeId: string | null } }).claim.prizeId);
      assert.equal(prizes.filter((p) => p === 'a').length, 5);
      assert.equal(prizes.filter((p) => p === 'b').length, 5);
      assert.equal((await service.audit(id)).ok, true);
    });

    test('the store: a member whose key was taken over is refused alone; the batch commits the others', async () => {
      const id = await newCampaign({ stock: 10, perUserLimit: 1 });
      const db = service.db;
      const family = d.backend === 'mysql' ? 'mysql' : 'pg';
      const store = new SqlClaimBatchStore(db, sqlDialect(family));
      for (const [k, owner] of [['ka', 'req-a'], ['kb', 'req-b-retry']] as const) {
        await sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, created_at) VALUES (${id}, ${k}, ${'f'.repeat(64)}, 'running', ${owner}, ${T0 + 10_000}, ${T0})`.execute(db);
      }
      const member = (user: string, key: string, owner: string): BatchMember => ({
        claim: { id: `clm-${run}-${user}`, campaignId: id, userId: user, prizeId: null, createdAt: T0 },
        day: '2026-12-02',
        idempotencyKey: key,
        draw: null,
        completion: { scope: id, key, owner, response: { status: 201, body: { claim: user } }, ref: `clm-${run}-${user}` },
      });
      // b's key now belongs to a retry ('req-b-retry'): b's batch member ('req-b') lost it.
      const verdicts = await store.commitBatch({ campaignId: id, prizeId: null }, { perUserLimit: 1, perUserDailyLimit: null, day: '2026-12-02' }, [member('a', 'ka', 'req-a'), member('b', 'kb', 'req-b')], 'all');
      assert.deepEqual(verdicts?.map((v) => v.kind), ['issued', 'key_lost']);
      assert.equal((await service.getCampaign(id)).issued, 1);
      const keys = (await sql<{ idem_key: string; state: string }>`SELECT idem_key, state FROM idempotency_keys WHERE campaign_id = ${id} ORDER BY idem_key`.execute(db)).rows;
      assert.deepEqual(keys.map((k) => `${k.idem_key}:${k.state}`), ['ka:done', 'kb:running']);
      assert.equal((await service.audit(id)).ok, true);
    });

    // Twice: with a key sent by two users in the batch (the transactional path decides it), and
    // without (the whole batch is one statement on PostgreSQL, one compound statement on MariaDB:
    // the transactional path is not run).
    for (const twice of [true, false]) test(`keys the batch inserts: a key already present leaves its member out unchanged, ${twice ? 'a key twice in the batch goes in once, ' : ''}a refused member keeps its key running`, async () => {
      const id = await newCampaign({ stock: 10, perUserLimit: 1 });
      const db = service.db;
      const store = new SqlClaimBatchStore(db, sqlDialect(d.backend === 'mysql' ? 'mysql' : 'pg'));
      const transactional = spyTransactional(store);
      // 'kx' was taken by another request; 'limited' already has its one claim.
      await sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, created_at) VALUES (${id}, 'kx', ${'f'.repeat(64)}, 'running', 'req-other', ${T0 + 10_000}, ${T0})`.execute(db);
      await service.claim(id, 'limited', null);
      const member = (user: string, key: string, owner: string): BatchMember => ({
        claim: { id: `clm-${run}-t${twice ? 2 : 1}-${user}`, campaignId: id, userId: user, prizeId: null, createdAt: T0 },
        day: '2026-12-02',
        idempotencyKey: key,
        draw: null,
        completion: { scope: id, key, owner, response: { status: 201, body: { claim: user } }, ref: `clm-${run}-t${twice ? 2 : 1}-${user}` },
        takeKey: { fingerprint: 'a'.repeat(64), lockedUntil: T0 + 10_000, createdAt: T0 },
      });
      const verdicts = await store.commitBatch({ campaignId: id, prizeId: null }, { perUserLimit: 1, perUserDailyLimit: null, day: '2026-12-02' }, [
        member('p', 'kp', 'req-p'),
        member('x', 'kx', 'req-x'),
        member('limited', 'kl', 'req-l'),
        member('q', 'kq', 'req-q'),
        ...(twice ? [member('r', 'kq', 'req-r')] : []), // the same key as q, another request
      ], 'all');
      assert.deepEqual(verdicts?.map((v) => v.kind), ['issued', 'key_exists', 'user_limit', 'issued', ...(twice ? ['key_exists'] : [])]);
      assert.equal(transactional.calls > 0, twice, 'the transactional path ran');
      const keys = (await sql<{ idem_key: string; state: string; owner: string; status_code: number | null }>`SELECT idem_key, state, owner, status_code FROM idempotency_keys WHERE campaign_id = ${id} ORDER BY idem_key`.execute(db)).rows;
      assert.deepEqual(keys.map((k) => `${k.idem_key}:${k.state}:${k.owner}:${k.status_code ?? '-'}`), ['kl:running:req-l:-', 'kp:done:req-p:201', 'kq:done:req-q:201', 'kx:running:req-other:-']);
      const users = (await sql<{ user_id: string }>`SELECT user_id FROM claims WHERE campaign_id = ${id} ORDER BY user_id`.execute(db)).rows.map((r) => r.user_id);
      assert.deepEqual(users, ['limited', 'p', 'q'], 'x and r changed nothing');
      assert.equal((await service.getCampaign(id)).issued, 3);
      assert.equal((await service.audit(id)).ok, true);
    });

    // A key the one-statement batch did not see in its snapshot, inserted by another request
    // while the batch ran: the batch must not issue that member (its key is another request's).
    // Real concurrency: PGlite runs one transaction at a time.
    if (d.backend !== 'pglite') test('the store: a key another request inserts while the batch runs leaves its member out unchanged (the batch falls back, nothing half-done)', async () => {
      const id = await newCampaign({ stock: 10, perUserLimit: 1 });
      const db = service.db;
      const store = new SqlClaimBatchStore(db, sqlDialect(d.backend === 'mysql' ? 'mysql' : 'pg'));
      const member = (user: string, key: string): BatchMember => ({
        claim: { id: `clm-${run}-race-${user}`, campaignId: id, userId: user, prizeId: null, createdAt: T0 },
        day: '2026-12-02',
        idempotencyKey: key,
        draw: null,
        completion: { scope: id, key, owner: `req-${user}`, response: { status: 201, body: { claim: user } }, ref: `clm-${run}-race-${user}` },
        takeKey: { fingerprint: 'a'.repeat(64), lockedUntil: T0 + 10_000, createdAt: T0 },
      });
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let inserted!: () => void;
      const keyIn = new Promise<void>((r) => (inserted = r));
      // Another request inserts 'kr' and holds its transaction open.
      const other = db.transaction().execute(async (trx) => {
        await sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, created_at) VALUES (${id}, 'kr', ${'f'.repeat(64)}, 'running', 'req-other', ${T0 + 10_000}, ${T0})`.execute(trx);
        inserted();
        await released;
      });
      await keyIn;
      const batch = store.commitBatch({ campaignId: id, prizeId: null }, { perUserLimit: 1, perUserDailyLimit: null, day: '2026-12-02' }, [member('a', 'ka'), member('b', 'kr'), member('c', 'kc')], 'all');
      // The batch is now waiting on 'kr' (its snapshot did not see it); the other request commits.
      await new Promise((r) => setTimeout(r, 300));
      release();
      await other;
      const verdicts = await batch;
      assert.deepEqual(verdicts?.map((v) => v.kind), ['issued', 'key_exists', 'issued']);
      const keys = (await sql<{ idem_key: string; state: string; owner: string }>`SELECT idem_key, state, owner FROM idempotency_keys WHERE campaign_id = ${id} ORDER BY idem_key`.execute(db)).rows;
      assert.deepEqual(keys.map((k) => `${k.idem_key}:${k.state}:${k.owner}`), ['ka:done:req-a', 'kc:done:req-c', 'kr:running:req-other']);
      const users = (await sql<{ user_id: string }>`SELECT user_id FROM claims WHERE campaign_id = ${id} ORDER BY user_id`.execute(db)).rows.map((r) => r.user_id);
      assert.deepEqual(users, ['a', 'c'], 'b changed nothing');
      const counted = (await sql<{ user_id: string }>`SELECT user_id FROM user_claims WHERE campaign_id = ${id} AND total > 0 ORDER BY user_id`.execute(db)).rows.map((r) => r.user_id);
      assert.deepEqual(counted, ['a', 'c'], 'b was not counted');
      assert.equal((await service.getCampaign(id)).issued, 2);
      assert.equal((await service.audit(id)).ok, true);
    });

    // The one statement canceled by the server (statement_timeout while it waits for the stock
    // row) did not commit: the answer says nothing was issued, and nothing was. Twice: with the
    // server's statement_timeout set well before the client's own, and as connectSql configures
    // a pool (both from one timeoutMs): the client must leave the server the time to cancel, or
    // its own timeout answers `unknown` for a statement that was canceled.
    if (d.backend === 'postgres') for (const how of ['session statement_timeout 300 ms, client 5 s', 'timeoutMs 300 for both'] as const) test(`the store: a one-statement batch canceled by statement_timeout answers nothing-issued, and issued nothing (${how})`, async () => {
      const id = await newCampaign({ stock: 10, perUserLimit: 1 });
      const { connectSql } = await import('../../src/adapters/sql/connect.ts');
      const short = await connectSql({ url: d.url(), poolSize: 1, timeoutMs: how === 'timeoutMs 300 for both' ? 300 : 5000 });
      if (how !== 'timeoutMs 300 for both') await sql`SET statement_timeout = 300`.execute(short.db);
      try {
        const store = new SqlClaimBatchStore(short.db, sqlDialect('pg'));
        const transactional = spyTransactional(store);
        const member = (user: string): BatchMember => ({
          claim: { id: `clm-${run}-cancel-${user}`, campaignId: id, userId: user, prizeId: null, createdAt: T0 },
          day: '2026-12-02',
          idempotencyKey: `kc-${user}`,
          draw: null,
          completion: { scope: id, key: `kc-${user}`, owner: `req-${user}`, response: { status: 201, body: { claim: user } }, ref: `clm-${run}-cancel-${user}` },
          takeKey: { fingerprint: 'a'.repeat(64), lockedUntil: T0 + 10_000, createdAt: T0 },
        });
        let release!: () => void;
        const released = new Promise<void>((r) => (release = r));
        let locked!: () => void;
        const isLocked = new Promise<void>((r) => (locked = r));
        const holder = service.db.transaction().execute(async (trx) => {
          await sql`SELECT issued FROM campaigns WHERE id = ${id} FOR UPDATE`.execute(trx);
          locked();
          await released;
        });
        await isLocked;
        let caught: unknown;
        try {
          await store.commitBatch({ campaignId: id, prizeId: null }, { perUserLimit: 1, perUserDailyLimit: null, day: '2026-12-02' }, [member('a'), member('b')], 'all');
        } catch (err) {
          caught = err;
        } finally {
          release();
          await holder;
        }
        const e = caught as { code?: string; details?: { outcome?: string } } | undefined;
        assert.equal(e?.code, 'UNAVAILABLE', String(caught));
        assert.equal(e?.details?.outcome, 'nothing-issued');
        assert.equal(transactional.calls, 0, 'it was the one statement that was canceled');
        const db = service.db;
        assert.equal(Number((await sql<{ n: string }>`SELECT count(*) AS n FROM claims WHERE campaign_id = ${id}`.execute(db)).rows[0]!.n), 0);
        assert.equal(Number((await sql<{ n: string }>`SELECT count(*) AS n FROM idempotency_keys WHERE campaign_id = ${id}`.execute(db)).rows[0]!.n), 0);
        assert.equal(Number((await sql<{ n: string }>`SELECT count(*) AS n FROM user_claims WHERE campaign_id = ${id}`.execute(db)).rows[0]!.n), 0);
        assert.equal((await service.getCampaign(id)).issued, 0);
      } finally {
        await short.db.destroy();
      }
    });

    // (not on PGlite: a second service there is a second database)
    if (d.backend !== 'pglite') test('ALLOT_GROUP_COMMIT_TRANSACTIONAL: a service configured so commits every batch the transactional way', async () => {
      const proto = SqlClaimBatchStore.prototype as unknown as { decide: (...a: unknown[]) => Promise<unknown> };
      const decide = proto.decide;
      let calls = 0;
      proto.decide = function (this: unknown, ...a: unknown[]) {
        calls++;
        return decide.apply(this, a);
      };
      try {
        for (const transactional of [false, true]) {
          const other = await AllotService.open({
            config: { databaseUrl: d.url(), dbPoolSize: 2, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, groupCommitTransactional: transactional },
            clock: { now: () => T0 },
            payouts: { sweepIntervalMs: 0 },
            migrate: false,
          });
          try {
            const id = await newCampaign({ stock: 10, perUserLimit: 1 });
            calls = 0;
            const out = await other.claim(id, `cfg-${transactional}`, `cfg-key-${transactional}`);
            assert.equal(out.status, 201, JSON.stringify(out.body));
            assert.equal(calls > 0, transactional, `transactional ${transactional}: the transactional path ran ${calls} time(s)`);
          } finally {
            await other.close();
          }
        }
      } finally {
        proto.decide = decide;
      }
    });

    test('the store: one member written twice (two instances replaying one write-behind stream) changes nothing the second time, and its key stays done', async () => {
      for (const limit of [1, 3]) {
        const id = await newCampaign({ stock: 10, perUserLimit: limit });
        const db = service.db;
        const store = new SqlClaimBatchStore(db, sqlDialect(d.backend === 'mysql' ? 'mysql' : 'pg'));
        const m: BatchMember = {
          claim: { id: `clm-${run}-twice-${limit}`, campaignId: id, userId: 'twice', prizeId: null, createdAt: T0 },
          day: '2026-12-02',
          idempotencyKey: 'k2',
          draw: null,
          completion: { scope: id, key: 'k2', owner: 'req-2', response: { status: 201, body: { claim: 'twice' } }, ref: `clm-${run}-twice-${limit}` },
          takeKey: { fingerprint: 'a'.repeat(64), lockedUntil: T0 + 10_000, createdAt: T0 },
        };
        const limits = { perUserLimit: limit, perUserDailyLimit: null, day: '2026-12-02' };
        assert.deepEqual((await store.commitBatch({ campaignId: id, prizeId: null }, limits, [m], 'up-to'))?.map((v) => v.kind), ['issued']);
        // The same member again (the same claim id, key and owner), and one other user beside it.
        const other: BatchMember = { ...m, claim: { ...m.claim, id: `clm-${run}-other-${limit}`, userId: 'other' }, idempotencyKey: null, completion: null };
        delete other.takeKey;
        const again = await store.commitBatch({ campaignId: id, prizeId: null }, limits, [m, other], 'up-to');
        assert.deepEqual(again?.map((v) => v.kind), ['key_exists', 'issued'], `limit ${limit}`);
        const keys = (await sql<{ state: string; status_code: number | null; claim_id: string | null }>`SELECT state, status_code, claim_id FROM idempotency_keys WHERE campaign_id = ${id}`.execute(db)).rows;
        assert.deepEqual(keys.map((k) => `${k.state}:${k.status_code ?? '-'}:${k.claim_id ?? '-'}`), [`done:201:${m.claim.id}`], `limit ${limit}`);
        assert.equal((await service.getCampaign(id)).issued, 2);
        assert.equal((await service.audit(id)).ok, true);
      }
    });

    test('one key sent by two users in one burst: one claim, the other IDEMPOTENCY_KEY_REUSED; refusals are stored and replayed', async () => {
      const id = await newCampaign({ stock: 100, perUserLimit: 1 });
      const outs = await Promise.all(Array.from({ length: 8 }, (_, i) => service.claim(id, `two-${i % 2}`, 'shared-key')));
      const ok = outs.filter((o) => o.status === 201);
      assert.equal(new Set(ok.map((o) => (o.body as { claim: { id: string } }).claim.id)).size, 1);
      const winner = (ok[0]!.body as { claim: { userId: string } }).claim.userId;
      for (const [i, o] of outs.entries()) {
        if (`two-${i % 2}` === winner) assert.ok(o.status === 201 || code(o.body) === 'IDEMPOTENCY_IN_PROGRESS', JSON.stringify(o.body));
        else assert.ok(['IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'].includes(code(o.body) ?? ''), JSON.stringify(o.body));
      }
      assert.equal((await service.getCampaign(id)).issued, 1);
      // A user at the limit with a new key: the refusal is stored under the key and replayed.
      const refused = await service.claim(id, winner, 'second-key');
      assert.equal(code(refused.body), 'USER_LIMIT_REACHED');
      const again = await service.claim(id, winner, 'second-key');
      assert.equal(again.replayed, true);
      assert.equal(code(again.body), 'USER_LIMIT_REACHED');
      // A refusal decided before any batch (a paused campaign) is stored under its key too.
      await service.setPaused(id, true);
      const paused = await service.claim(id, 'late', 'late-key');
      assert.equal(code(paused.body), 'CAMPAIGN_NOT_ACTIVE');
      await service.setPaused(id, false);
      const replay = await service.claim(id, 'late', 'late-key');
      assert.equal(replay.replayed, true);
      assert.equal(code(replay.body), 'CAMPAIGN_NOT_ACTIVE');
      assert.equal((await service.audit(id)).ok, true);
    });

    test('the store: an all-or-nothing batch that would oversell changes nothing; up-to hands out the rest', async () => {
      const id = await newCampaign({ stock: 2, perUserLimit: 1 });
      const store = new SqlClaimBatchStore(service.db, sqlDialect(d.backend === 'mysql' ? 'mysql' : 'pg'));
      const m = (user: string): BatchMember => ({ claim: { id: `clm-${run}-o-${user}`, campaignId: id, userId: user, prizeId: null, createdAt: T0 }, day: '2026-12-02', idempotencyKey: null, draw: null, completion: null });
      const limits = { perUserLimit: 1, perUserDailyLimit: null, day: '2026-12-02' };
      const unit = { campaignId: id, prizeId: null };
      assert.equal(await store.commitBatch(unit, limits, [m('x'), m('y'), m('z')], 'all'), null);
      assert.equal((await service.getCampaign(id)).issued, 0);
      assert.equal((await service.audit(id)).ok, true, 'no counter bumped, no claim left behind');
      const v = await store.commitBatch(unit, limits, [m('x'), m('y'), m('z')], 'up-to');
      assert.deepEqual(v?.map((x) => x.kind).sort(), ['issued', 'issued', 'sold_out']);
      assert.equal((await service.getCampaign(id)).issued, 2);
      assert.equal((await service.audit(id)).ok, true);
    });
  });
}
