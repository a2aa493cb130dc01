// A flash sale grows one campaign's rows by tens of thousands between two ANALYZEs: the planner
// then believes that campaign has about no rows, and a lookup of a few keys written as
// `campaign_id = $1 AND idem_key IN (…)` (or `= ANY`, or a join) may be planned as a read of
// every row of the campaign, filtered (seen on a bench database: 50,000 rows, 250 ms per batch).
// The lookups on hot paths probe the primary key once per key instead. This file builds those
// statistics in a private PostgreSQL schema (every other campaign in the MCV list, autovacuum
// off) and reads each lookup's plan: no read of idempotency_keys or claims may go through more
// than a handful of rows for a few keys.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CompiledQuery, sql, type RawBuilder } from 'kysely';
import { connectSql, type SqlConnection } from '../../../src/adapters/sql/connect.ts';
import { migrateToLatest } from '../../../src/adapters/sql/migrate.ts';
import { sqlDialect } from '../../../src/adapters/sql/dialect.ts';
import { SqlClaimBatchStore } from '../../../src/adapters/sql/sql-batch.ts';
import { byKeys } from '../../../src/adapters/sql/exec.ts';
import type { BatchMember } from '../../../src/ports/claim-batch.ts';

const base = process.env.DATABASE_URL_PG;
const T0 = Date.parse('2026-12-03T10:00:00Z');
const HOT = 'hot';

describe('lookups by key on a campaign that grew since the last ANALYZE (PostgreSQL)', { skip: base ? false : 'DATABASE_URL_PG is not set' }, () => {
  let admin: SqlConnection;
  let conn: SqlConnection;
  const schema = `stale_${process.pid}_${randomBytes(3).toString('hex')}`;

  before(async () => {
    admin = await connectSql({ url: base!, poolSize: 1, timeoutMs: 30_000 });
    await sql.raw(`CREATE SCHEMA ${schema}`).execute(admin.db);
    conn = await connectSql({ url: `${base}${base!.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`, poolSize: 2, timeoutMs: 30_000 });
    await migrateToLatest(conn);
    for (const t of ['idempotency_keys', 'claims']) await sql.raw(`ALTER TABLE ${t} SET (autovacuum_enabled = false)`).execute(conn.db);
    // Four campaigns the statistics know (each in the most-common-values list)...
    for (let c = 1; c <= 4; c++) {
      await sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, created_at)
        SELECT ${`old-${c}`}, 'k-' || g, ${'f'.repeat(64)}, 'done', 'req', 0, ${T0} FROM generate_series(1, 20000) AS g`.execute(conn.db);
      await sql`INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key)
        SELECT ${`old-${c}-`} || g, ${`old-${c}`}, 'u-' || g, NULL, '2026-12-03', ${T0}, 'k-' || g FROM generate_series(1, 20000) AS g`.execute(conn.db);
    }
    await sql`ANALYZE idempotency_keys`.execute(conn.db);
    await sql`ANALYZE claims`.execute(conn.db);
    // ...then the hot one, after the last ANALYZE.
    await sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, created_at)
      SELECT ${HOT}, 'k-' || g, ${'f'.repeat(64)}, 'done', 'req', 0, ${T0} FROM generate_series(1, 50000) AS g`.execute(conn.db);
    await sql`INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key)
      SELECT 'hot-' || g, ${HOT}, 'u-' || g, NULL, '2026-12-03', ${T0}, 'k-' || g FROM generate_series(1, 50000) AS g`.execute(conn.db);
    await sql`INSERT INTO campaigns (id, kind, name, strategy, stock, issued, per_user_limit, created_at) VALUES (${HOT}, 'coupon', 'hot', 'group-commit', 1000000, 50000, 1, ${T0})`.execute(conn.db);
  });

  after(async () => {
    await conn?.db.destroy();
    await sql.raw(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).execute(admin.db).catch(() => undefined);
    await admin?.db.destroy();
  });

  /** The rows each plan node reading `table` went through (kept + filtered out), over its loops. */
  async function rowsRead(q: RawBuilder<unknown>, tables: string[]): Promise<Array<{ table: string; read: number }>> {
    const c = q.compile(conn.db);
    let plan: unknown;
    const rolledBack = new Error('rolled back');
    // EXPLAIN ANALYZE runs the statement: inside a transaction that is rolled back.
    await conn.db.transaction().execute(async (trx) => {
      plan = (await trx.executeQuery<{ 'QUERY PLAN': unknown }>(CompiledQuery.raw(`EXPLAIN (ANALYZE, FORMAT JSON) ${c.sql}`, [...c.parameters]))).rows[0]!['QUERY PLAN'];
      throw rolledBack;
    }).catch((err: unknown) => {
      if (err !== rolledBack) throw err;
    });
    const out: Array<{ table: string; read: number }> = [];
    const walk = (n: Record<string, unknown>) => {
      const rel = n['Relation Name'];
      if (typeof rel === 'string' && tables.includes(rel) && n['Node Type'] !== 'ModifyTable') {
        out.push({ table: rel, read: (Number(n['Actual Rows'] ?? 0) + Number(n['Rows Removed by Filter'] ?? 0) + Number(n['Rows Removed by Index Recheck'] ?? 0)) * Number(n['Actual Loops'] ?? 1) });
      }
      for (const child of (n['Plans'] as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
    };
    const root = (typeof plan === 'string' ? JSON.parse(plan) : plan) as Array<{ Plan: Record<string, unknown> }>;
    walk(root[0]!.Plan);
    return out;
  }

  const assertProbes = (reads: Array<{ table: string; read: number }>, what: string) => {
    assert.ok(reads.length > 0, `${what}: no read of the table in the plan`);
    for (const r of reads) assert.ok(r.read < 100, `${what}: a read of ${r.table} went through ${r.read} rows for 3 keys (${JSON.stringify(reads)})`);
  };

  test('the one-statement batch finds keys already present by primary key', async () => {
    const store = new SqlClaimBatchStore(conn.db, sqlDialect('pg'));
    const members = ['k-1', 'new-1', 'new-2'].map((key, i): BatchMember => ({
      claim: { id: `hot-new-${i}`, campaignId: HOT, userId: `nu-${i}`, prizeId: null, createdAt: T0 },
      day: '2026-12-03',
      idempotencyKey: key,
      draw: null,
      completion: { scope: HOT, key, owner: `req-${i}`, response: { status: 201, body: {} }, ref: `hot-new-${i}` },
      takeKey: { fingerprint: 'a'.repeat(64), lockedUntil: T0 + 10_000, createdAt: T0 },
    }));
    const q = (store as unknown as { oneStatement(...a: unknown[]): RawBuilder<unknown> }).oneStatement({ campaignId: HOT, prizeId: null }, { perUserLimit: 1, perUserDailyLimit: null, day: '2026-12-03' }, members);
    assertProbes(await rowsRead(q, ['idempotency_keys']), 'one-statement batch');
  });

  test('byKeys (a lottery batch\'s keys taken beforehand, locked; redis-atomic\'s write-behind checks of keys and claims) probes by primary key, and finds what is there', async () => {
    const keys = byKeys('pg', 'idempotency_keys', ['idem_key', 'owner'], { col: 'campaign_id', value: HOT }, 'idem_key', ['k-1', 'k-2', 'nope'], { where: sql`state = 'done'`, forUpdate: true });
    assertProbes(await rowsRead(keys, ['idempotency_keys']), 'keys, locked');
    assert.deepEqual((await keys.execute(conn.db)).rows, [{ idem_key: 'k-1', owner: 'req' }, { idem_key: 'k-2', owner: 'req' }]);
    const claims = byKeys('pg', 'claims', ['id'], { col: 'campaign_id', value: HOT }, 'id', ['hot-7', 'hot-9', 'old-1-7'], { keyIsUnique: true });
    assertProbes(await rowsRead(claims, ['claims']), 'claims');
    assert.deepEqual((await claims.execute(conn.db)).rows, [{ id: 'hot-7' }, { id: 'hot-9' }], 'another campaign\'s claim is not this one\'s');
  });

  test('the transactional batch completes and reopens keys by primary key', async () => {
    const store = new SqlClaimBatchStore(conn.db, sqlDialect('pg')) as unknown as { completeKeysSql(ms: BatchMember[]): RawBuilder<unknown>; reopenKeysSql(ms: BatchMember[]): RawBuilder<unknown> };
    const members = ['k-1', 'k-2', 'k-3'].map((key, i): BatchMember => ({
      claim: { id: `hot-done-${i}`, campaignId: HOT, userId: `du-${i}`, prizeId: null, createdAt: T0 },
      day: '2026-12-03',
      idempotencyKey: key,
      draw: null,
      completion: { scope: HOT, key, owner: 'req', response: { status: 201, body: {} }, ref: `hot-done-${i}` },
    }));
    // (the rows are done already: the plans are what is read, whatever they change)
    assertProbes(await rowsRead(store.completeKeysSql(members), ['idempotency_keys']), 'completing keys taken beforehand');
    assertProbes(await rowsRead(store.reopenKeysSql(members), ['idempotency_keys']), 'reopening the keys of refused members');
  });

  test('the guard check: the same lookup as campaign_id = $1 AND idem_key = ANY(…) reads the whole campaign here', async () => {
    // Not a product path: shows that these statistics mislead the planner (else the tests above prove nothing).
    const reads = await rowsRead(sql`SELECT idem_key FROM idempotency_keys WHERE campaign_id = ${HOT} AND idem_key = ANY(${['k-1', 'k-2', 'k-3']}::text[])`, ['idempotency_keys']);
    assert.ok(reads.some((r) => r.read >= 10_000), `expected a scan of the hot campaign's keys, got ${JSON.stringify(reads)}`);
  });
});
