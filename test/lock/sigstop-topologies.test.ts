// The reason fences exist, on replicated Redis: a holder process connected through Sentinel (or
// Cluster) is SIGSTOPped past its TTL, another process takes the lock and writes, the first
// resumes and its fenced PostgreSQL write is refused. Fences come from the SQL anchor both share.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'kysely';
import { Cluster, Redis } from 'ioredis';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { SqlFenceAnchor } from '../../src/adapters/sql/sql-fences.ts';
import { lockFences } from '../../src/adapters/sql/migrations/002-lock-fences.ts';
import { lockFenceHolders } from '../../src/adapters/sql/migrations/007-lock-fence-holders.ts';
import { lockFencePrune } from '../../src/adapters/sql/migrations/008-lock-fence-prune.ts';
import { createRedisClusterLockProvider, createRedisSentinelLockProvider, fromIoredis, fromIoredisCluster, type LockProvider } from '../../packages/lock/src/index.ts';
import { checkFence } from '../helpers/fences.ts';
import { startClusterTopology, startSentinelTopology, type ClusterTopology, type SentinelTopology } from '../helpers/redis-topologies.ts';
import type { TopologyArg } from './fixtures/fenced-writer-topology.ts';
import { uniquePrefix } from './redis-harness.ts';

const WRITER = fileURLToPath(new URL('./fixtures/fenced-writer-topology.ts', import.meta.url));
const PG = process.env.DATABASE_URL_PG;
const TTL_MS = 400;

/**
 * The child's next stdout line, bounded: rejects when the child exits first or after ms. An
 * unbounded wait here hung the whole file on the failure path (a child that died before its line,
 * or stayed stopped), past the test's own timeout, since the finally block never ran.
 */
async function nextLine(lines: ReturnType<typeof createInterface>, child: ReturnType<typeof spawn>, ms: number, what: string): Promise<string> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`the writer did not print ${what} within ${ms} ms`)), ms);
  const onExit = (code: number | null, signal: string | null) => ac.abort(new Error(`the writer exited (${signal ?? code}) before printing ${what}`));
  child.once('close', onExit);
  try {
    const [line] = (await once(lines, 'line', { signal: ac.signal }).catch((error: unknown) => {
      throw ac.signal.aborted ? ac.signal.reason : error;
    })) as [string];
    return line;
  } finally {
    clearTimeout(timer);
    child.off('close', onExit);
  }
}

interface Side {
  arg: TopologyArg;
  /** the parent's provider and a way to close its client */
  open(prefix: string, anchor: SqlFenceAnchor): { provider: LockProvider; close(): void };
}

describe('SIGSTOPped holder vs fenced SQL write on Redis Sentinel and Cluster (PostgreSQL)', { skip: PG ? false : 'DATABASE_URL_PG is not set (npm test sets it)' }, () => {
  const schema = `lockstop_topo_${process.pid}_${randomBytes(3).toString('hex')}`;
  let admin: SqlConnection;
  let conn: SqlConnection;
  let url: string;
  let sentinel: SentinelTopology | undefined;
  let cluster: ClusterTopology | undefined;

  before(async () => {
    // Both topologies start at once, beside the schema: their start-ups dominate this file.
    const [s, c] = await Promise.allSettled([startSentinelTopology(), startClusterTopology()]);
    if (s.status === 'fulfilled') sentinel = s.value;
    if (c.status === 'fulfilled') cluster = c.value;
    if (s.status === 'rejected') throw s.reason;
    if (c.status === 'rejected') throw c.reason;
    admin = await connectSql({ url: PG!, poolSize: 1, timeoutMs: 5_000 });
    await sql.raw(`CREATE SCHEMA ${schema}`).execute(admin.db);
    url = `${PG!}${PG!.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    conn = await connectSql({ url, poolSize: 2, timeoutMs: 5_000 });
    const d = sqlDialect('pg');
    for (const m of [lockFences, lockFenceHolders, lockFencePrune]) for (const stmt of m.statements(d)) await sql.raw(stmt).execute(conn.db);
    await sql.raw(`CREATE TABLE fenced_things (id text PRIMARY KEY, v text NOT NULL, fence numeric(39,0) NOT NULL)`).execute(conn.db);
  });
  after(async () => {
    await conn?.db.destroy();
    if (admin) {
      await sql.raw(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).execute(admin.db);
      await admin.db.destroy();
    }
    await Promise.all([sentinel?.destroy(), cluster?.destroy()]);
  });

  const sides: Record<'sentinel' | 'cluster', () => Side> = {
    sentinel: () => {
      const t = sentinel!;
      const sentinels = t.sentinels.map((n) => ({ host: '127.0.0.1', port: n.port }));
      return {
        arg: { kind: 'sentinel', sentinels, name: t.name },
        open: (prefix, fenceAnchor) => {
          const redis = new Redis({ sentinels, name: t.name, maxRetriesPerRequest: 2 });
          redis.on('error', () => undefined);
          return { provider: createRedisSentinelLockProvider({ client: fromIoredis(redis), prefix, fenceAnchor }), close: () => redis.disconnect() };
        },
      };
    },
    cluster: () => {
      const t = cluster!;
      return {
        arg: { kind: 'cluster', nodes: t.startupNodes },
        open: (prefix, fenceAnchor) => {
          const c = new Cluster(t.startupNodes, { redisOptions: { maxRetriesPerRequest: 2 } });
          c.on('error', () => undefined);
          return { provider: createRedisClusterLockProvider({ client: fromIoredisCluster(c), prefix, fenceAnchor }), close: () => c.disconnect() };
        },
      };
    },
  };

  for (const kind of ['sentinel', 'cluster'] as const) {
    it(`${kind}: rejects the resumed holder's write and keeps the newer holder's`, { timeout: 30_000 }, async () => {
      const side = sides[kind]();
      const prefix = uniquePrefix(`sigstop-${kind}`);
      const key = `x-${kind}`;
      await sql`INSERT INTO fenced_things (id, v, fence) VALUES (${key}, 'initial', 0)`.execute(conn.db);
      const { provider, close } = side.open(prefix, new SqlFenceAnchor(conn.db, sqlDialect('pg'), prefix));
      await (await provider.acquire('warm', { ttlMs: 1_000 })).release(); // connects, installs the epoch
      const child = spawn(process.execPath, ['--import', 'tsx', WRITER, JSON.stringify(side.arg), prefix, key, String(TTL_MS), url], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines = createInterface({ input: child.stdout });
      try {
        const held = await nextLine(lines, child, 15_000, 'held');
        child.kill('SIGSTOP');
        assert.match(held, /^held \d+$/);
        const childFence = BigInt(held.split(' ')[1]!);
        await delay(TTL_MS + 150);
        const lease = await provider.acquire(key, { ttlMs: 5_000, timeoutMs: 2_000 });
        assert.ok(lease.fence > childFence, `the new holder's fence ${lease.fence} is above the paused one's ${childFence}`);
        await conn.db.transaction().execute(async (trx) => {
          await checkFence(trx, 'pg', `thing:${key}`, lease.fence);
          await sql`UPDATE fenced_things SET v = 'parent', fence = ${lease.fence.toString()} WHERE id = ${key}`.execute(trx);
        });
        const outcome = nextLine(lines, child, 10_000, 'its write outcome');
        child.kill('SIGCONT');
        const result = await outcome;
        assert.equal(result, 'rejected LOCK_STALE_FENCE');
        await lease.release();
        const row = (await sql<{ v: string; fence: string }>`SELECT v, fence FROM fenced_things WHERE id = ${key}`.execute(conn.db)).rows[0]!;
        assert.equal(row.v, 'parent');
        assert.equal(BigInt(row.fence), lease.fence);
        if (child.exitCode === null) await once(child, 'exit', { signal: AbortSignal.timeout(10_000) });
        assert.equal(child.exitCode, 0);
      } finally {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await provider.close();
        close();
      }
    });
  }
});
