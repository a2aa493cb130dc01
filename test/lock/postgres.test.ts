// PostgreSQL advisory-lock backend: the lock contract, two providers on separate pools, a holder
// whose connection is killed (its lease is free at once), a SIGSTOPped holder past its TTL (its
// fenced SQL write refused), NOTIFY wake-ups, and fences anchored above an earlier backend's.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { sql } from 'kysely';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { MIGRATIONS } from '../../src/adapters/sql/migrations/index.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { LockLostError, MemoryFenceAnchor, PostgresLockBackend, createPostgresLockProvider, type LockProvider } from '../../packages/lock/src/index.ts';
import { checkFence } from '../helpers/fences.ts';
import { backendHarness, lockContract, type ContractHarness } from './contract.ts';

const PG = process.env.DATABASE_URL_PG;
const WRITER = fileURLToPath(new URL('./fixtures/postgres-fenced-writer.ts', import.meta.url));
const schema = `pglock_${process.pid}_${randomBytes(3).toString('hex')}`;
const skip = PG ? false : 'DATABASE_URL_PG is not set (npm test sets it)';

function newPool(max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG, max });
  pool.on('error', () => undefined); // connections this test kills
  return pool;
}

let admin: pg.Pool | undefined;
async function adminPool(): Promise<pg.Pool> {
  if (!admin) {
    admin = newPool(2);
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  }
  return admin;
}

after(async () => {
  if (!admin) return;
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
});

function pgHarness(prefix: string): () => Promise<ContractHarness> {
  return async () => {
    await adminPool();
    const pool = newPool(40);
    return backendHarness(
      () => new PostgresLockBackend({ pool, schema, prefix }),
      async () => {
        await pool.end();
      },
    );
  };
}

if (PG) lockContract('postgres advisory locks', pgHarness('contract_'));

describe('postgres advisory locks: processes, sessions, fences', { skip }, () => {
  const closers: (() => Promise<unknown>)[] = [];
  let db: pg.Pool;
  before(async () => {
    db = await adminPool();
  });
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  });
  /** a provider with its session open, so no first-use cost lands inside a short TTL */
  const provider = async (prefix: string, pool?: pg.Pool): Promise<LockProvider> => {
    const p = pool ? createPostgresLockProvider({ pool, schema, prefix }) : createPostgresLockProvider({ connectionString: PG!, schema, prefix, poolMax: 4 });
    closers.push(() => p.close());
    await p.ready();
    return p;
  };
  const pool = (max: number) => {
    const p = newPool(max);
    closers.push(() => p.end());
    return p;
  };

  it('two providers on separate pools exclude each other; fences increase', async () => {
    const a = await provider('pair_', pool(4));
    const b = await provider('pair_'); // its own pool, opened from the connection string
    let holders = 0;
    let maxHolders = 0;
    const fences: bigint[] = [];
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const lease = await (i % 2 ? a : b).acquire('pair', { ttlMs: 5_000, timeoutMs: 15_000 });
        holders++;
        maxHolders = Math.max(maxHolders, holders);
        fences.push(lease.fence);
        await delay(1);
        holders--;
        await lease.release();
      }),
    );
    assert.equal(maxHolders, 1);
    for (let i = 1; i < fences.length; i++) assert.ok(fences[i]! > fences[i - 1]!);
  });

  it('wakes a waiter through NOTIFY when the lock is released (no polling)', async () => {
    const a = await provider('notify_');
    const b = await provider('notify_');
    const held = await a.acquire('n', { ttlMs: 10_000 });
    const waiting = b.acquire('n', { ttlMs: 5_000, timeoutMs: 5_000 });
    await delay(300); // b has failed once, subscribed and sleeps on its latch
    const t0 = Date.now();
    await held.release();
    const lease = await waiting;
    const took = Date.now() - t0;
    assert.ok(took < 250, `handover took ${took} ms (a poll would take up to 1000)`);
    await lease.release();
  });

  it('frees the lock at once when the holder\'s connection is killed; the holder then loses it', async () => {
    const a = await provider('kill_');
    const b = await provider('kill_');
    const lease = await a.acquire('k', { ttlMs: 20_000 });
    assert.equal(await b.tryAcquire('k'), null);
    // the holder's session: the backend holding the session token recorded in its lease row
    const { rows } = await db.query<{ pid: number }>(
      `SELECT l.pid FROM ${schema}.kill_leases r JOIN pg_locks l ON l.locktype = 'advisory' AND l.objsubid = 2 AND l.objid::text::bigint = r.token AND l.granted WHERE r.key = 'k'`,
    );
    assert.equal(rows.length, 1, 'one session holds the token');
    await db.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
    const t0 = Date.now();
    const taken = await b.acquire('k', { ttlMs: 5_000, timeoutMs: 4_000 });
    assert.ok(Date.now() - t0 < 4_000);
    assert.ok(taken.fence > lease.fence);
    await assert.rejects(lease.extend(), LockLostError);
    await taken.release();
    const again = await a.acquire('k', { ttlMs: 5_000, timeoutMs: 2_000 }); // a reconnects with a new session
    assert.ok(again.fence > taken.fence);
    await again.release();
  });

  it('keeps a live holder\'s lock past a dead holder check and frees it after its TTL', async () => {
    const a = await provider('ttl_');
    const b = await provider('ttl_');
    const lease = await a.acquire('t', { ttlMs: 600 });
    const t0 = Date.now();
    const taken = await b.acquire('t', { ttlMs: 5_000, timeoutMs: 3_000 });
    const took = Date.now() - t0;
    assert.ok(took >= 450, `taken after ${took} ms, before the holder's TTL`);
    assert.ok(taken.fence > lease.fence);
    await taken.release();
  });

  it('starts the fence sequence above the fence anchor\'s epoch when it creates it', async () => {
    const anchor = new MemoryFenceAnchor();
    await anchor.nextEpoch();
    const p = createPostgresLockProvider({ pool: pool(2), schema, prefix: 'anchored_', fenceAnchor: anchor });
    closers.push(() => p.close());
    const lease = await p.acquire('f');
    assert.ok(lease.fence >= 2n << 40n, `fence ${lease.fence}`);
    await lease.release();
  });
});

describe('postgres advisory locks: SIGSTOPped holder vs fenced SQL write', { skip }, () => {
  let conn: SqlConnection;
  let url: string;
  before(async () => {
    await adminPool();
    url = `${PG!}${PG!.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    conn = await connectSql({ url, poolSize: 2, timeoutMs: 5_000 });
    // the service's whole schema, so lock_fences is whatever raiseFence expects
    for (const m of MIGRATIONS) for (const stmt of m.statements(sqlDialect('pg'))) await sql.raw(stmt).execute(conn.db);
    await sql.raw(`CREATE TABLE fenced_things (id text PRIMARY KEY, v text NOT NULL, fence numeric(39,0) NOT NULL)`).execute(conn.db);
  });
  after(async () => {
    await conn?.db.destroy();
  });

  it('lets another holder in after the stopped holder\'s TTL and refuses the stale write', { timeout: 20_000 }, async () => {
    const prefix = 'sigstop_';
    const key = 'x';
    const ttl = 500;
    await sql`INSERT INTO fenced_things (id, v, fence) VALUES (${key}, 'initial', 0)`.execute(conn.db);
    const provider = createPostgresLockProvider({ connectionString: PG!, schema, prefix, poolMax: 2 });
    await provider.ready();
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, PG!, schema, prefix, key, String(ttl), url], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout });
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`the holder process exited early (code ${String(code)}; its stderr is above)`);
    });
    exited.catch(() => undefined);
    const nextLine = () => Promise.race([once(lines, 'line').then(([line]) => line as string), exited]);
    try {
      const held = await nextLine();
      child.kill('SIGSTOP');
      const childFence = BigInt(held.split(' ')[1]!);
      const t0 = Date.now();
      const lease = await provider.acquire(key, { ttlMs: 5_000, timeoutMs: 3_000 });
      assert.ok(Date.now() - t0 >= ttl - 350, 'not before the stopped holder\'s lease could have run out');
      assert.ok(lease.fence > childFence);
      await conn.db.transaction().execute(async (trx) => {
        await checkFence(trx, 'pg', `thing:${key}`, lease.fence);
        await sql`UPDATE fenced_things SET v = 'parent', fence = ${lease.fence.toString()} WHERE id = ${key}`.execute(trx);
      });
      const outcome = nextLine();
      child.kill('SIGCONT');
      const result = await outcome;
      assert.equal(result, 'rejected LOCK_STALE_FENCE');
      await lease.release();
      const row = (await sql<{ v: string; fence: string }>`SELECT v, fence FROM fenced_things WHERE id = ${key}`.execute(conn.db)).rows[0]!;
      assert.equal(row.v, 'parent');
      assert.equal(BigInt(row.fence), lease.fence);
      await exited.catch(() => undefined);
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await provider.close();
    }
  });
});
