// Locks on Redis Cluster (3 masters + 3 replicas on loopback): the lock contract, one hash slot per
// lock (no CROSSSLOT, no global key), the LOCKS_URL opener, and a master killed during a burst.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'kysely';
import { Cluster } from 'ioredis';
import { Registry } from 'prom-client';
import { FENCE_COUNTER_BITS, MemoryFenceAnchor, NOOP_LOCK_METRICS, RedisLockBackend, createRedisClusterLockProvider, fromIoredisCluster, type LockProvider } from '../../packages/lock/src/index.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { SqlFenceAnchor, raiseFence } from '../../src/adapters/sql/sql-fences.ts';
import { openRedisCluster as open, parseRedisClusterUrl } from '../../src/service/lock-backends/redis-cluster.ts';
import { openFencedDb, startClusterTopology, type ClusterTopology } from '../helpers/redis-topologies.ts';
import { backendHarness, lockContract } from './contract.ts';
import { uniquePrefix } from './redis-harness.ts';

let topology: Promise<ClusterTopology> | undefined;
const topo = () => (topology ??= startClusterTopology());
after(async () => {
  if (topology) await (await topology).destroy();
});

function clusterClient(t: ClusterTopology): Cluster {
  const c = new Cluster(t.startupNodes, { retryDelayOnFailover: 100, retryDelayOnClusterDown: 100, redisOptions: { maxRetriesPerRequest: 2, connectTimeout: 1_000 } });
  c.on('error', () => undefined);
  return c;
}

lockContract('redis-cluster (ioredis)', async () => {
  const t = await topo();
  const cluster = clusterClient(t);
  const client = fromIoredisCluster(cluster);
  const anchor = new MemoryFenceAnchor();
  const prefix = uniquePrefix('cluster');
  return backendHarness(
    () => new RedisLockBackend({ client, fenceAnchor: anchor, prefix, layout: 'cluster' }),
    async () => {
      await client.quit();
    },
  );
});

describe('redis-cluster', () => {
  let t: ClusterTopology;
  let db: Awaited<ReturnType<typeof openFencedDb>>;
  before(async () => {
    [t, db] = await Promise.all([topo(), openFencedDb()]);
  });
  after(async () => {
    await db?.close();
  });

  it('puts every key of one lock in one slot, whatever its name holds, and no key in common between locks', async () => {
    const cluster = clusterClient(t);
    const b = new RedisLockBackend({ client: fromIoredisCluster(cluster), fenceAnchor: new MemoryFenceAnchor(), prefix: 'allot:lock:', layout: 'cluster' });
    const names = ['claim:user:c1:u1', 'a}b{c', '}x', '{}', '{', 'a%7Bb', 'a{b', 'x'.repeat(5_000)];
    const all = new Set<string>();
    for (const name of names) {
      const k = b.keys(name);
      const slots = new Set(await Promise.all([k.lock, k.fence, k.queue, k.leases, k.epoch].map((key) => t.nodes[0]!.command('CLUSTER', 'KEYSLOT', key))));
      assert.equal(slots.size, 1, `${name}: ${JSON.stringify(k)}`);
      for (const key of Object.values(k)) {
        assert.ok(!all.has(key), `${key} shared between locks`);
        all.add(key);
      }
    }
    await b.close();
    cluster.disconnect();
  });

  it('parses and opens LOCKS_URL=redis-cluster://…, with clear errors', async () => {
    assert.deepEqual(parseRedisClusterUrl('redis-cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002?connectTimeoutMs=800'), {
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      username: 'u',
      password: 'p@ss',
      connectTimeoutMs: 800,
      tls: undefined,
    });
    assert.throws(() => parseRedisClusterUrl('redis-cluster://:pw@h1:1/0'), (e: Error) => /no databases/.test(e.message) && e.message.includes(':***@'));
    const { conn } = db;
    const ctx = { conn, anchor: new SqlFenceAnchor(conn.db, sqlDialect(conn.family), 'cluster-open'), prefix: uniquePrefix('open'), metrics: NOOP_LOCK_METRICS, registry: new Registry() };
    const opened = await open(t.url, ctx);
    assert.equal(opened.kind, 'redis-cluster');
    await opened.ping();
    const leases = await Promise.all(['a', 'b', 'c', 'd'].map((k) => opened.provider.acquire(k, { ttlMs: 2_000 })));
    assert.ok(leases.every((l) => l.fence >> FENCE_COUNTER_BITS >= 1n));
    await Promise.all(leases.map((l) => l.release()));
    await opened.close();
    await assert.rejects(open('redis-cluster://:pw@127.0.0.1:1?connectTimeoutMs=500', ctx), (e: Error) => /cannot reach the Redis Cluster at redis-cluster:\/\/:\*\*\*@127\.0\.0\.1:1/.test(e.message));
  });

  it('a master killed during a burst: its replica takes over, locks keep working, fences keep increasing', async () => {
    const { conn } = db;
    const d = sqlDialect(conn.family);
    const prefix = uniquePrefix('kill');
    const cluster = clusterClient(t);
    const p: LockProvider = createRedisClusterLockProvider({ client: fromIoredisCluster(cluster), prefix, fenceAnchor: new SqlFenceAnchor(conn.db, d, prefix) });
    const probe = new RedisLockBackend({ client: fromIoredisCluster(cluster), fenceAnchor: new MemoryFenceAnchor(), prefix, layout: 'cluster' });
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
    const victim = await t.masterOf(probe.keys('k0').lock);
    const onVictim = new Set<string>();
    for (const k of keys) if ((await t.masterOf(probe.keys(k).lock)) === victim) onVictim.add(k);
    const issued = new Map<string, bigint[]>(keys.map((k) => [k, []]));
    let stop = false;
    let killedAt = Number.POSITIVE_INFINITY;
    /** per killed-master key: acquisitions made after the kill */
    const afterKill = new Map<string, number>();
    let errors = 0;
    const worker = async (i: number) => {
      for (let n = 0; !stop; n++) {
        const key = keys[(i + n) % keys.length]!;
        try {
          const lease = await p.acquire(key, { ttlMs: 2_000, timeoutMs: 8_000 });
          issued.get(key)!.push(lease.fence);
          if (Date.now() > killedAt && onVictim.has(key)) afterKill.set(key, (afterKill.get(key) ?? 0) + 1);
          await conn.db.transaction().execute(async (trx) => {
            if (!(await raiseFence(trx, d, key, lease.fence, lease.ownerId))) return;
            await sql`INSERT INTO fenced_log (resource, fence, holder) VALUES (${key}, ${lease.fence.toString()}, ${lease.ownerId})`.execute(trx);
          });
          await lease.release().catch(() => undefined);
        } catch {
          errors++;
          await delay(50);
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    try {
      await delay(300);
      killedAt = Date.now();
      await t.killMaster(victim);
      const deadline = Date.now() + 10_000;
      // Every one of the killed master's keys acquired again, twice (the first one may have been
      // sent to the old master just before the kill), so each shows the promoted replica's epoch.
      const settled = () => [...onVictim].every((k) => (afterKill.get(k) ?? 0) >= 3);
      while (!settled() && Date.now() < deadline) await delay(50);
      stop = true;
      await Promise.all(workers);
      assert.ok(settled(), `acquisitions of the killed master's locks after the kill: ${JSON.stringify(Object.fromEntries(afterKill))}`);
      for (const [key, fences] of issued) {
        for (let i = 1; i < fences.length; i++) assert.ok(fences[i]! > fences[i - 1]!, `${key}: fence ${fences[i]} issued after ${fences[i - 1]}`);
      }
      // The promoted replica has another replication id: the killed master's locks got a new epoch.
      for (const key of onVictim) {
        const fences = issued.get(key)!;
        assert.ok(fences.at(-1)! >> FENCE_COUNTER_BITS > fences[0]! >> FENCE_COUNTER_BITS, `${key}: a new epoch after the failover`);
      }
      const log = (await sql<{ resource: string; fence: string }>`SELECT resource, fence FROM fenced_log ORDER BY n`.execute(conn.db)).rows;
      for (const key of keys) {
        const seq = log.filter((r) => r.resource === key).map((r) => BigInt(r.fence));
        for (let i = 1; i < seq.length; i++) assert.ok(seq[i]! > seq[i - 1]!, `${key}: accepted fence ${seq[i]} after ${seq[i - 1]}`);
      }
      process.stderr.write(`cluster kill: ${log.length} fenced writes, ${errors} failed attempts, ${onVictim.size} of ${keys.length} locks on the killed master\n`);
    } finally {
      stop = true;
      await Promise.all(workers);
      await p.close();
      await probe.close();
      cluster.disconnect();
    }
  });
});
