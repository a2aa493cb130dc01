// The SQL side of fencing: the durable SqlFenceAnchor and the store-side raiseFence, on PGlite
// always and on PostgreSQL / MariaDB when `npm test` provides them (each in a private schema).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { lockFences } from '../../src/adapters/sql/migrations/002-lock-fences.ts';
import { lockFenceHolders } from '../../src/adapters/sql/migrations/007-lock-fence-holders.ts';
import { lockFencePrune } from '../../src/adapters/sql/migrations/008-lock-fence-prune.ts';
import { boundedResource, createRedisLockProvider, fromIoredis, MAX_RESOURCE_LENGTH, StaleFenceError } from '../../packages/lock/src/index.ts';
import { SqlFenceAnchor, raiseFence } from '../../src/adapters/sql/sql-fences.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { checkFence } from '../helpers/fences.ts';
import { startRedis } from '../helpers/servers.ts';

interface Db {
  name: string;
  open(): Promise<{ conn: SqlConnection; reopen(): Promise<SqlConnection>; drop(): Promise<void> }>;
}

const suffix = () => `lockf_${process.pid}_${randomBytes(3).toString('hex')}`;

async function createTable(conn: SqlConnection, ddl: string) {
  await sql.raw(conn.family === 'mysql' ? ddl.replace(/^CREATE TABLE/, 'CREATE TEMPORARY TABLE') : ddl).execute(conn.db);
}

async function schema(conn: SqlConnection) {
  for (const stmt of [...lockFences.statements(sqlDialect(conn.family)), ...lockFenceHolders.statements(sqlDialect(conn.family)), ...lockFencePrune.statements(sqlDialect(conn.family))]) await createTable(conn, stmt);
}

const DBS: Db[] = [
  {
    name: 'pglite',
    async open() {
      const conn = await connectSql({ url: 'memory://', poolSize: 1, timeoutMs: 5_000 });
      await schema(conn);
      return { conn, reopen: async () => conn, drop: () => conn.db.destroy() };
    },
  },
];
if (process.env.DATABASE_URL_PG) {
  const base = process.env.DATABASE_URL_PG;
  DBS.push({
    name: 'postgres',
    async open() {
      const name = suffix();
      const admin = await connectSql({ url: base, poolSize: 1, timeoutMs: 5_000 });
      try {
        await sql.raw(`CREATE SCHEMA ${name}`).execute(admin.db);
      } catch (error) {
        await admin.db.destroy();
        throw error;
      }
      const url = `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${name}`)}`;
      const open = () => connectSql({ url, poolSize: 4, timeoutMs: 5_000 });
      const conns = [await open()];
      await schema(conns[0]!);
      return {
        conn: conns[0]!,
        reopen: async () => {
          const c = await open();
          conns.push(c);
          return c;
        },
        drop: async () => {
          for (const c of conns) await c.db.destroy();
          await sql.raw(`DROP SCHEMA ${name} CASCADE`).execute(admin.db);
          await admin.db.destroy();
        },
      };
    },
  });
}
if (process.env.DATABASE_URL_MYSQL) {
  const base = process.env.DATABASE_URL_MYSQL;
  // The test user may not create databases: TEMPORARY tables on a one-connection pool are
  // private to this test and vanish with it.
  DBS.push({
    name: 'mysql',
    async open() {
      const conn = await connectSql({ url: base, poolSize: 1, timeoutMs: 5_000 });
      await schema(conn);
      return { conn, reopen: async () => conn, drop: () => conn.db.destroy() };
    },
  });
}

for (const d of DBS) {
  describe(`SQL fencing (${d.name})`, () => {
    let h: Awaited<ReturnType<Db['open']>>;
    before(async () => {
      h = await d.open();
    });
    after(async () => {
      await h.drop();
    });

    it('SqlFenceAnchor issues strictly increasing, durable epochs, also under concurrency', async () => {
      const a = new SqlFenceAnchor(h.conn.db, sqlDialect(h.conn.family), 'anchor-test');
      assert.equal(await a.nextEpoch(), 1n);
      assert.equal(await a.nextEpoch(), 2n);
      const many = await Promise.all(Array.from({ length: 20 }, () => a.nextEpoch()));
      assert.equal(new Set(many).size, 20);
      assert.ok(many.every((e) => e > 2n && e <= 22n));
      const again = new SqlFenceAnchor((await h.reopen()).db, sqlDialect(h.conn.family), 'anchor-test');
      assert.equal(await again.nextEpoch(), 23n, 'another connection continues the sequence');
      assert.equal(await new SqlFenceAnchor(h.conn.db, sqlDialect(h.conn.family), 'other').nextEpoch(), 1n, 'one sequence per name');
      await assert.rejects(a.nextEpoch(AbortSignal.abort()));
    });

    it('checkFence accepts equal or newer fences and rejects older ones (counted by the caller)', async () => {
      let rejected = 0;
      const metrics = { onRejected: () => rejected++ };
      const big = (1_700_000_000_000n << 40n) | 7n; // a Redis TIME-anchor sized fence (> 2^64)
      await checkFence(h.conn.db, h.conn.family, 'res:a', 5n, metrics);
      await checkFence(h.conn.db, h.conn.family, 'res:a', 5n, metrics);
      await checkFence(h.conn.db, h.conn.family, 'res:a', 9n, metrics);
      await assert.rejects(checkFence(h.conn.db, h.conn.family, 'res:a', 8n, metrics), (e: unknown) => e instanceof StaleFenceError && e.code === 'LOCK_STALE_FENCE');
      await checkFence(h.conn.db, h.conn.family, 'res:a', big, metrics);
      await assert.rejects(checkFence(h.conn.db, h.conn.family, 'res:a', big - 1n, metrics), StaleFenceError);
      await checkFence(h.conn.db, h.conn.family, 'res:b', 1n);
      assert.equal(rejected, 2);
    });

    it('refuses an equal fence from another holder, accepts it again from the same holder', async () => {
      const db = h.conn.db;
      const d = sqlDialect(h.conn.family);
      assert.equal(await raiseFence(db, d, 'res:h', 7n, 'owner-a'), true, 'first use (insert)');
      assert.equal(await raiseFence(db, d, 'res:h', 7n, 'owner-a'), true, 'the same lease again (a retried transaction)');
      assert.equal(await raiseFence(db, d, 'res:h', 7n, 'owner-b'), false, 'another holder with the same fence');
      assert.equal(await raiseFence(db, d, 'res:h', 7n), false, 'the anonymous holder is another holder');
      assert.equal(await raiseFence(db, d, 'res:h', 7n, 'owner-a'), true, 'the refusals changed nothing');
      assert.equal(await raiseFence(db, d, 'res:h', 8n, 'owner-b'), true);
      assert.equal(await raiseFence(db, d, 'res:h', 8n, 'owner-a'), false);
      assert.equal(await raiseFence(db, d, 'res:h', 7n, 'owner-a'), false, 'older');
      assert.equal(await raiseFence(db, d, 'res:h2', 3n, 'x'), true, 'insert path');
      assert.equal(await raiseFence(db, d, 'res:h2', 3n, 'y'), false, 'equal fence right after the insert');
      // Owner ids the column cannot hold as they are (long, non-ASCII) stay distinct.
      const [longA, longB] = [`${'o'.repeat(300)}a`, `${'o'.repeat(300)}b`];
      assert.equal(await raiseFence(db, d, 'res:h3', 5n, longA), true);
      assert.equal(await raiseFence(db, d, 'res:h3', 5n, longA), true);
      assert.equal(await raiseFence(db, d, 'res:h3', 5n, longB), false);
      assert.equal(await raiseFence(db, d, 'res:h4', 5n, 'über'), true);
      assert.equal(await raiseFence(db, d, 'res:h4', 5n, '?ber'), false);
      assert.equal(await raiseFence(db, d, 'res:h4', 5n, 'über'), true);
    });

    it('two holders racing with one fence: exactly one transaction writes', async () => {
      await createTable(h.conn, 'CREATE TABLE fenced_race (id varchar(32) PRIMARY KEY, v varchar(32) NOT NULL)');
      await sql`INSERT INTO fenced_race (id, v) VALUES ('x', '')`.execute(h.conn.db);
      await checkFence(h.conn.db, h.conn.family, 'race:x', 41n);
      const write = (holder: string) =>
        h.conn.db.transaction().execute(async (trx) => {
          if (!(await raiseFence(trx, sqlDialect(h.conn.family), 'race:x', 42n, holder))) return false;
          await sql`UPDATE fenced_race SET v = ${holder} WHERE id = 'x'`.execute(trx);
          return true;
        });
      const results = await Promise.all([write('holder-1'), write('holder-2')]);
      assert.deepEqual(results.filter(Boolean).length, 1, `one writer, got ${JSON.stringify(results)}`);
      const r = await sql<{ v: string }>`SELECT v FROM fenced_race WHERE id = 'x'`.execute(h.conn.db);
      assert.equal(r.rows[0]!.v, results[0] ? 'holder-1' : 'holder-2');
    });

    it('long resources (over 200 characters, up to any length) are fenced each on its own', async () => {
      const head = `res:long:${d.name}:`.padEnd(250, 'x');
      const [a, b, c] = [`${head}a`, `${head}b`, `${'y'.repeat(5_000)}`];
      await checkFence(h.conn.db, h.conn.family, a, 10n);
      await checkFence(h.conn.db, h.conn.family, b, 5n); // shares 250 characters with a: its own fence
      await checkFence(h.conn.db, h.conn.family, c, 1n);
      await checkFence(h.conn.db, h.conn.family, a, 10n); // equal: accepted
      await assert.rejects(checkFence(h.conn.db, h.conn.family, a, 9n), StaleFenceError);
      await assert.rejects(checkFence(h.conn.db, h.conn.family, b, 4n), StaleFenceError);
      const rows = (await sql<{ resource: string; fence: string | number }>`SELECT resource, fence FROM lock_fences WHERE resource LIKE ${`res:long:${d.name}:%`}`.execute(h.conn.db)).rows;
      assert.deepEqual(
        rows.map((r) => [r.resource, String(r.fence)]).sort(),
        [
          [boundedResource(a), '10'],
          [boundedResource(b), '5'],
        ].sort(),
      );
    });

    it('a stale transaction rolls back its fenced write', async () => {
      await createTable(h.conn, 'CREATE TABLE fenced_things (id varchar(32) PRIMARY KEY, v integer NOT NULL)');
      await sql`INSERT INTO fenced_things (id, v) VALUES ('x', 0)`.execute(h.conn.db);
      const write = (fence: bigint, v: number) =>
        h.conn.db.transaction().execute(async (trx) => {
          await checkFence(trx, h.conn.family, 'thing:x', fence);
          await sql`UPDATE fenced_things SET v = ${v} WHERE id = 'x'`.execute(trx);
        });
      await write(10n, 1);
      await assert.rejects(write(3n, 2), StaleFenceError);
      const r = await sql<{ v: number }>`SELECT v FROM fenced_things WHERE id = 'x'`.execute(h.conn.db);
      assert.equal(Number(r.rows[0]!.v), 1);
    });
  });
}

describe('boundedResource', () => {
  it('keeps names up to 200 characters, maps longer ones to a fixed-length form per full name', () => {
    const short = 'claim:user:c:u'.padEnd(MAX_RESOURCE_LENGTH, 'z');
    assert.equal(boundedResource(short), short);
    const long = `claim:user:${'c'.repeat(128)}:${'u'.repeat(128)}`;
    const form = boundedResource(long);
    assert.equal(form, boundedResource(long), 'deterministic');
    assert.match(form, /^claim:user:c{128}:u{20}#[0-9a-f]{64}$/);
    assert.equal(form.slice(0, 160), long.slice(0, 160));
    assert.ok(form.length > MAX_RESOURCE_LENGTH && form.length <= 255, 'never equal to a short name, fits varchar(255)');
    assert.notEqual(boundedResource(`${long}x`), form);
    assert.notEqual(boundedResource(`${long.slice(0, -1)}v`), form, 'the last character counts');
    assert.equal(boundedResource('x'.repeat(100_000)).length, 225);
    // A surrogate pair across the cut is not split (a lone surrogate is not valid UTF-8).
    const astral = boundedResource(`${'a'.repeat(159)}😀${'b'.repeat(100)}`);
    assert.equal(astral.slice(0, 160), 'a'.repeat(159) + '#');
  });
});

describe('Redis lock provider with the SQL anchor', () => {
  it('keeps fences monotonic and small across FLUSHALL', async () => {
    const server = await startRedis();
    const conn = await connectSql({ url: 'memory://', poolSize: 1, timeoutMs: 5_000 });
    const redis = new Redis(server.url);
    try {
      await schema(conn);
      const p = createRedisLockProvider({ client: fromIoredis(redis), fenceAnchor: new SqlFenceAnchor(conn.db, sqlDialect(conn.family), 'allot:lock:') });
      const a = await p.acquire('k', { ttlMs: 1_000 });
      await a.release();
      assert.equal(a.fence, (1n << 40n) | 1n);
      await redis.flushall();
      const b = await p.acquire('k', { ttlMs: 1_000 });
      await b.release();
      assert.equal(b.fence, (2n << 40n) | 1n);
      assert.ok(b.fence < 2n ** 63n);
      await p.close();
    } finally {
      redis.disconnect();
      await conn.db.destroy();
      await server.destroy();
    }
  });
});
