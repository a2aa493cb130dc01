// Locks on Redis Sentinel (1 master, 1 replica, 3 sentinels on loopback): the lock contract, the
// LOCKS_URL opener, and a failover during a burst of fenced writes, with a client that keeps
// writing to the old master until it is demoted (its last fence increments are lost).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { FENCE_COUNTER_BITS, MemoryFenceAnchor, NOOP_LOCK_METRICS, RedisLockBackend, createRedisSentinelLockProvider, fromIoredis, type LockProvider } from '../../packages/lock/src/index.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { SqlFenceAnchor, raiseFence } from '../../src/adapters/sql/sql-fences.ts';
import { openRedisSentinel as open, parseRedisSentinelUrl } from '../../src/service/lock-backends/redis-sentinel.ts';
import { openFencedDb, startSentinelTopology, type SentinelTopology } from '../helpers/redis-topologies.ts';
import { backendHarness, lockContract } from './contract.ts';
import { uniquePrefix } from './redis-harness.ts';

let topology: Promise<SentinelTopology> | undefined;
const topo = () => (topology ??= startSentinelTopology());
after(async () => {
  if (topology) await (await topology).destroy();
});

function sentinelClient(t: SentinelTopology): Redis {
  const r = new Redis({
    sentinels: t.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
    name: t.name,
    maxRetriesPerRequest: 2,
    failoverDetector: true,
    reconnectOnError: (e) => (e.message.startsWith('READONLY') ? 2 : false),
  });
  r.on('error', () => undefined);
  return r;
}

lockContract('redis-sentinel (ioredis)', async () => {
  const t = await topo();
  const redis = sentinelClient(t);
  const client = fromIoredis(redis);
  const anchor = new MemoryFenceAnchor();
  const prefix = uniquePrefix('sentinel');
  return backendHarness(
    () => new RedisLockBackend({ client, fenceAnchor: anchor, prefix, failoverGuard: true }),
    async () => {
      await redis.quit();
      redis.disconnect(); // quit() leaves the failover detector's connections open
    },
  );
});

describe('redis-sentinel', () => {
  let t: SentinelTopology;
  let db: Awaited<ReturnType<typeof openFencedDb>>;
  before(async () => {
    [t, db] = await Promise.all([topo(), openFencedDb()]);
  });
  after(async () => {
    await db?.close();
  });

  it('parses and opens LOCKS_URL=redis-sentinel://…, with clear errors', async () => {
    assert.deepEqual(parseRedisSentinelUrl('redis-sentinel://:s3cret@10.0.0.1:26379,[::1]:26380,h3/mymaster/2?sentinelPassword=x'), {
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '::1', port: 26380 },
        { host: 'h3', port: 26379 },
      ],
      name: 'mymaster',
      username: undefined,
      password: 's3cret',
      sentinelPassword: 'x',
      db: 2,
      connectTimeoutMs: 5_000,
      tls: undefined,
    });
    assert.throws(() => parseRedisSentinelUrl('redis-sentinel://:pw@h1:1,h2:2'), (e: Error) => /master name/.test(e.message) && !e.message.includes('pw@') && e.message.includes(':***@'));
    const { conn } = db;
    const ctx = { conn, anchor: new SqlFenceAnchor(conn.db, sqlDialect(conn.family), 'sentinel-open'), prefix: uniquePrefix('open'), metrics: NOOP_LOCK_METRICS, registry: new Registry() };
    const opened = await open(t.url, ctx);
    assert.equal(opened.kind, 'redis-sentinel');
    await opened.ping();
    const lease = await opened.provider.acquire('opened', { ttlMs: 2_000 });
    assert.equal(lease.fence >> FENCE_COUNTER_BITS, 1n, 'the first epoch comes from the SQL anchor');
    await lease.release();
    await opened.close();
    const dead = `redis-sentinel://:pw@127.0.0.1:${t.master.port},127.0.0.1:1/nobody?connectTimeoutMs=500`;
    await assert.rejects(open(dead, ctx), (e: Error) => /cannot reach the Redis master "nobody" through the sentinels at redis-sentinel:\/\/:\*\*\*@/.test(e.message));
  });

  it('SENTINEL FAILOVER during a burst: no fence issued twice, fenced writes strictly increasing, no equal fence from two holders', async () => {
    const { conn } = db;
    const d = sqlDialect(conn.family);
    const prefix = uniquePrefix('failover');
    const anchor = new SqlFenceAnchor(conn.db, d, prefix);
    // `follower` finds the master through the sentinels; `laggard` talks to the old master
    // directly, like a client that has not noticed the failover yet.
    const followerRedis = sentinelClient(t);
    const laggardRedis = new Redis({ host: '127.0.0.1', port: await t.masterPort(), maxRetriesPerRequest: 1 });
    laggardRedis.on('error', () => undefined);
    const guard = process.env.ALLOT_TEST_BREAK_FAILOVER_GUARD === '1' ? { failoverGuard: false } : {};
    const follower = createRedisSentinelLockProvider({ client: fromIoredis(followerRedis), prefix, fenceAnchor: anchor, ...guard });
    const laggard = createRedisSentinelLockProvider({ client: fromIoredis(laggardRedis), prefix, fenceAnchor: anchor, ...guard });
    const keys = ['k0', 'k1', 'k2'];
    const issued = new Map<string, { fence: bigint; via: string; after: boolean }[]>(keys.map((k) => [k, []]));
    let promoted = false;
    let afterPromotion = 0;
    let stop = false;
    let errors = 0;
    let refused = 0;

    const worker = async (p: LockProvider, via: string, i: number) => {
      for (let n = 0; !stop; n++) {
        const key = keys[(i + n) % keys.length]!;
        try {
          const lease = await p.acquire(key, { ttlMs: 3_000, timeoutMs: 3_000 });
          issued.get(key)!.push({ fence: lease.fence, via, after: promoted });
          if (promoted && via === 'follower') afterPromotion++;
          await conn.db.transaction().execute(async (trx) => {
            if (!(await raiseFence(trx, d, key, lease.fence, lease.ownerId))) {
              refused++;
              return;
            }
            await sql`INSERT INTO fenced_log (resource, fence, holder) VALUES (${key}, ${lease.fence.toString()}, ${lease.ownerId})`.execute(trx);
          });
          await lease.release().catch(() => undefined);
        } catch {
          errors++;
          await delay(20);
        }
      }
    };
    const workers = [...[0, 1, 2, 3].map((i) => worker(follower, 'follower', i)), ...[0, 1].map((i) => worker(laggard, 'laggard', i))];
    try {
      await delay(300);
      await t.failover();
      promoted = true;
      const deadline = Date.now() + 10_000;
      while (afterPromotion < 30 && Date.now() < deadline) await delay(50);
      stop = true;
      await Promise.all(workers);

      assert.ok(afterPromotion >= 30, `the follower acquired ${afterPromotion} times on the new master`);
      let repeatedCounters = 0;
      for (const [key, list] of issued) {
        const fences = list.map((x) => x.fence);
        assert.equal(new Set(fences).size, fences.length, `${key}: a fence was issued twice: ${fences.filter((f, i) => fences.indexOf(f) !== i).join(', ')}`);
        // The hazard was there: counters handed out on the old master after the promotion came
        // again on the new one (lost increments): only the epoch tells them apart.
        // Counters never go back within one master; a counter seen twice was lost in the failover.
        const counters = list.map((x) => x.fence & ((1n << FENCE_COUNTER_BITS) - 1n));
        repeatedCounters += counters.length - new Set(counters).size;
      }
      assert.ok(repeatedCounters > 0, 'the old master issued counters after the promotion that the new master issued again');
      const log = (await sql<{ resource: string; fence: string; holder: string }>`SELECT resource, fence, holder FROM fenced_log ORDER BY n`.execute(conn.db)).rows;
      assert.ok(log.length > 30);
      for (const key of keys) {
        const seq = log.filter((r) => r.resource === key).map((r) => BigInt(r.fence));
        for (let i = 1; i < seq.length; i++) assert.ok(seq[i]! > seq[i - 1]!, `${key}: accepted fence ${seq[i]} after ${seq[i - 1]}`);
      }
      const epochs = new Set(log.map((r) => BigInt(r.fence) >> FENCE_COUNTER_BITS));
      assert.ok(epochs.size >= 2, 'a new epoch after the failover');
      process.stderr.write(`sentinel failover: ${log.length} fenced writes, ${refused} refused as stale, ${errors} failed attempts, ${repeatedCounters} repeated counters told apart by the epoch\n`);
    } finally {
      stop = true;
      await Promise.all(workers);
      await follower.close();
      await laggard.close();
      followerRedis.disconnect();
      laggardRedis.disconnect();
    }
  });
});
