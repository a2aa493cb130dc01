// The reason fences exist: a holder process is SIGSTOPped past its TTL, another process takes
// the lock and writes, the first resumes and its fenced PostgreSQL write is rejected.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { lockFences } from '../../src/adapters/sql/migrations/002-lock-fences.ts';
import { lockFenceHolders } from '../../src/adapters/sql/migrations/007-lock-fence-holders.ts';
import { lockFencePrune } from '../../src/adapters/sql/migrations/008-lock-fence-prune.ts';
import { createRedisLockProvider, fromIoredis, MemoryFenceAnchor } from '../../packages/lock/src/index.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { checkFence } from '../helpers/fences.ts';
import { redisUrl, uniquePrefix } from './redis-harness.ts';

const WRITER = fileURLToPath(new URL('./fixtures/fenced-writer.ts', import.meta.url));
const PG = process.env.DATABASE_URL_PG;

describe('SIGSTOPped holder vs fenced SQL write (PostgreSQL)', { skip: PG ? false : 'DATABASE_URL_PG is not set (npm test sets it)' }, () => {
  const schema = `lockstop_${process.pid}_${randomBytes(3).toString('hex')}`;
  let admin: SqlConnection;
  let conn: SqlConnection;
  let url: string;
  let srv: { url: string; stop(): Promise<void> };

  before(async () => {
    admin = await connectSql({ url: PG!, poolSize: 1, timeoutMs: 5_000 });
    await sql.raw(`CREATE SCHEMA ${schema}`).execute(admin.db);
    url = `${PG!}${PG!.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    conn = await connectSql({ url, poolSize: 2, timeoutMs: 5_000 });
    for (const m of [lockFences, lockFenceHolders, lockFencePrune]) for (const stmt of m.statements(sqlDialect('pg'))) await sql.raw(stmt).execute(conn.db);
    await sql.raw(`CREATE TABLE fenced_things (id text PRIMARY KEY, v text NOT NULL, fence numeric(39,0) NOT NULL)`).execute(conn.db);
    srv = await redisUrl();
  });
  after(async () => {
    await conn?.db.destroy();
    await sql.raw(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).execute(admin.db);
    await admin.db.destroy();
    await srv?.stop();
  });

  it('rejects the resumed holder\'s write and keeps the newer holder\'s', async () => {
    const prefix = uniquePrefix('sigstop');
    const key = 'x';
    const ttl = 400;
    await sql`INSERT INTO fenced_things (id, v, fence) VALUES (${key}, 'initial', 0)`.execute(conn.db);
    const redis = new Redis(srv.url);
    const provider = createRedisLockProvider({ client: fromIoredis(redis), prefix, fenceAnchor: new MemoryFenceAnchor() });
    await (await provider.acquire('warm', { ttlMs: 1_000 })).release(); // installs the epoch
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, srv.url, prefix, key, String(ttl), url], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout });
    try {
      const [held] = (await once(lines, 'line')) as [string];
      child.kill('SIGSTOP');
      const childFence = BigInt(held.split(' ')[1]!);
      await delay(ttl + 150);
      const lease = await provider.acquire(key, { ttlMs: 5_000, timeoutMs: 2_000 });
      assert.ok(lease.fence > childFence);
      await conn.db.transaction().execute(async (trx) => {
        await checkFence(trx, 'pg', `thing:${key}`, lease.fence);
        await sql`UPDATE fenced_things SET v = 'parent', fence = ${lease.fence.toString()} WHERE id = ${key}`.execute(trx);
      });
      const outcome = once(lines, 'line');
      child.kill('SIGCONT');
      const [result] = (await outcome) as [string];
      assert.equal(result, 'rejected LOCK_STALE_FENCE');
      await lease.release();
      const row = (await sql<{ v: string; fence: string }>`SELECT v, fence FROM fenced_things WHERE id = ${key}`.execute(conn.db)).rows[0]!;
      assert.equal(row.v, 'parent');
      assert.equal(BigInt(row.fence), lease.fence);
      await once(child, 'exit');
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await provider.close();
      redis.disconnect();
    }
  });
});
