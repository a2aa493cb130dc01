// Redlock over 3 independent Redis masters: the lock contract, then faults — a node partitioned
// by a blackholing proxy (rotating, so fences must survive the write-back rule), a holder paused
// past its lease (its fenced SQL write refused), lost node state, and 2 of 3 nodes down (QuorumError).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { MemoryFenceAnchor, QuorumError, RedlockBackend, StaleFenceError, createRedlockProvider, type LockProvider, type RedisClient } from '../../packages/lock/src/index.ts';
import { backendHarness, lockContract } from './contract.ts';
import { startRedlockNodes, type RedlockNodes } from '../helpers/redlock-servers.ts';
import { uniquePrefix } from './redis-harness.ts';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { defaultPgliteSchema, migrateToLatest } from '../../src/adapters/sql/migrate.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqlFenceAnchor, pruneFences, raiseFence } from '../../src/adapters/sql/sql-fences.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { checkFence } from '../helpers/fences.ts';
import { Registry } from 'prom-client';
import { openRedlock, parseRedlockUrl } from '../../src/service/lock-backends/redlock.ts';
import { freePort } from '../helpers/servers.ts';

lockContract('redlock (3 nodes)', async () => {
  const nodes = await startRedlockNodes(3);
  const anchor = new MemoryFenceAnchor();
  const prefix = uniquePrefix('redlock');
  // a generous per-node timeout: this machine is shared and loaded; the default is 100 ms
  return backendHarness(
    () => new RedlockBackend({ clients: nodes.clients, nodeNames: nodes.names, fenceAnchor: anchor, prefix, nodeTimeoutMs: 250 }),
    async () => {
      await nodes.close();
    },
  );
});

describe('redlock faults', () => {
  let nodes: RedlockNodes;
  let conn: SqlConnection;
  let anchor: SqlFenceAnchor;
  // PGlite in a temp dir copied from the migrated template (in memory it would run initdb: seconds)
  const pgDir = mkdtempSync(join(tmpdir(), 'allot-redlock-pglite-'));
  const providers: LockProvider[] = [];
  const provider = (opts: { prefix: string; nodeTimeoutMs?: number; clients?: RedisClient[]; epochTtlMs?: number; fenceTtlMs?: number }) => {
    const p = createRedlockProvider({ clients: nodes.clients, nodeNames: nodes.names, fenceAnchor: anchor, nodeTimeoutMs: 250, ...opts });
    providers.push(p);
    return p;
  };

  before(async () => {
    [nodes, conn] = await Promise.all([startRedlockNodes(3, { proxies: true }), connectSql({ url: `pglite://${join(pgDir, 'db')}`, poolSize: 1, timeoutMs: 5_000, pgliteSchema: defaultPgliteSchema() })]);
    await migrateToLatest(conn);
    anchor = new SqlFenceAnchor(conn.db, sqlDialect(conn.family), 'redlock-test');
  });
  after(async () => {
    await Promise.all(providers.map((p) => p.close()));
    await nodes?.close();
    await conn?.db.destroy();
    rmSync(pgDir, { recursive: true, force: true });
  });

  it('keeps working with one node partitioned (each in turn), fences strictly increasing', async () => {
    const prefix = uniquePrefix('part');
    const p = provider({ prefix });
    const q = provider({ prefix });
    const fences: bigint[] = [];
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const t0 = Date.now();
        const lease = await (i % 2 ? p : q).acquire('k', { ttlMs: 2_000, timeoutMs: 2_000 });
        assert.ok(lease.expiresAt >= t0 + 2_000 - 22 && lease.expiresAt <= Date.now() + 2_000, 'validity = ttl - elapsed - drift');
        fences.push(lease.fence);
        // the lock is exclusive on the majority that is left
        assert.equal(await (i % 2 ? q : p).tryAcquire('k', { ttlMs: 2_000 }), null);
        await lease.release();
      }
    };
    await round(3);
    // Rotate the partition: the node that was cut off is behind, and the next majority includes it.
    for (const cut of [2, 0, 1]) {
      nodes.proxies[cut]!.setBlackhole(true);
      await round(4);
      nodes.proxies[cut]!.setBlackhole(false);
      nodes.proxies[cut]!.resetAll();
      await nodes.waitReady(cut);
    }
    await round(3);
    for (let i = 1; i < fences.length; i++) assert.ok(fences[i]! > fences[i - 1]!, `fence #${i} ${fences[i]} after ${fences[i - 1]}`);
  });

  it('a node slower than the per-node timeout never lets two owners hold (late replies)', async () => {
    const prefix = uniquePrefix('slow');
    // two "processes" (own connections): the nodes see their commands in different orders, so
    // rounds split and late replies arrive after the round that sent them has failed
    const p = provider({ prefix, nodeTimeoutMs: 100 });
    const q = provider({ prefix, nodeTimeoutMs: 100, clients: nodes.connectAgain() });
    nodes.proxies[1]!.setLatency(150);
    try {
      let holders = 0;
      let maxHolders = 0;
      const fences: bigint[] = [];
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const lease = await (i % 2 ? p : q).acquire('k', { ttlMs: 5_000, timeoutMs: 20_000, retryMaxDelayMs: 50 });
          holders++;
          maxHolders = Math.max(maxHolders, holders);
          fences.push(lease.fence);
          await delay(i % 3);
          holders--;
          await lease.release();
        }),
      );
      assert.equal(maxHolders, 1);
      for (let i = 1; i < fences.length; i++) assert.ok(fences[i]! > fences[i - 1]!, `fence #${i} ${fences[i]} after ${fences[i - 1]}`);
    } finally {
      nodes.proxies[1]!.setLatency(0);
    }
  });

  it('a holder paused past its lease loses to a higher fence, and its fenced write is refused', async () => {
    const prefix = uniquePrefix('pause');
    const p = provider({ prefix });
    const q = provider({ prefix });
    const stale = await p.acquire('job', { ttlMs: 150 });
    await checkFence(conn.db, conn.family, 'redlock:job', stale.fence);
    await delay(300); // "paused" (GC, SIGSTOP) past its lease
    const fresh = await q.acquire('job', { ttlMs: 2_000, timeoutMs: 1_000 });
    assert.ok(fresh.fence > stale.fence);
    await checkFence(conn.db, conn.family, 'redlock:job', fresh.fence);
    await assert.rejects(checkFence(conn.db, conn.family, 'redlock:job', stale.fence), StaleFenceError);
    assert.ok(stale.signal.aborted, 'the paused holder learns it lost the lease');
    await fresh.release();
  });

  it('adopt() with the acquisition\'s fence: a node that granted late, above that fence, does not make it refuse', async () => {
    const prefix = uniquePrefix('adopt-late');
    const p = provider({ prefix });
    const q = provider({ prefix, clients: nodes.connectAgain() });
    // Every node installs its epoch and counter once.
    await (await p.acquire('job', { ttlMs: 2_000 })).release();
    // Node 2 ran ahead: its epoch the highest of the nodes' and its counter for the lock far above
    // the others' (rounds that failed elsewhere), so its fence for the next grant is the highest.
    const epochs = await Promise.all(nodes.redis.map(async (r) => String(await r.get(`${prefix}epoch`))));
    const top = Math.max(...epochs.map((e) => Number(e.split('@')[0])));
    await nodes.redis[2]!.set(`${prefix}epoch`, epochs[2]!.replace(/^\d+/, String(top)));
    await nodes.redis[2]!.incrby(`${prefix}f:job`, 1_000_000);
    // Node 2 answers after the round had its majority: it grants late and is never raised.
    nodes.proxies[2]!.setLatency(400);
    let lease;
    try {
      lease = await p.acquire('job', { ttlMs: 5_000, identifier: 'job-1' });
      await delay(600); // the late grant lands
    } finally {
      nodes.proxies[2]!.setLatency(0);
    }
    assert.equal(await nodes.redis[2]!.get(`${prefix}l:job`), 'job-1', 'node 2 granted late');
    // All three nodes hold it for job-1 now; node 2's fence is the highest. Node 1 answers the
    // adoption last, so node 2 is in the majority that answers first.
    nodes.proxies[1]!.setLatency(120);
    let adopted;
    try {
      adopted = await q.adopt('job', { identifier: 'job-1', fence: lease.fence, ttlMs: 5_000 });
    } finally {
      nodes.proxies[1]!.setLatency(0);
    }
    assert.equal(adopted.fence, lease.fence);
    // The next acquisition still outranks it.
    await adopted.release();
    const next = await q.acquire('job', { ttlMs: 2_000, timeoutMs: 2_000 });
    assert.ok(next.fence > lease.fence);
    await next.release();
  });

  it('a node that lost its state takes a fresh epoch from the anchor; fences keep increasing', async () => {
    const prefix = uniquePrefix('flush');
    const p = provider({ prefix });
    const fences: bigint[] = [];
    const once = async () => {
      const l = await p.acquire('k', { ttlMs: 2_000 });
      fences.push(l.fence);
      await l.release();
    };
    await once();
    await once();
    await nodes.redis[1]!.flushall();
    await once();
    await once();
    // Node 1's fresh epoch outranks the others', so the fence write-back raised them: the keys
    // it wrote keep a TTL like every other fencing key (bounded fencing state).
    await assertEveryKeyExpires(prefix);
    await Promise.all(nodes.redis.map((r) => r.flushall()));
    await once();
    for (let i = 1; i < fences.length; i++) assert.ok(fences[i]! > fences[i - 1]!, `fence #${i} ${fences[i]} after ${fences[i - 1]}`);
    await assertEveryKeyExpires(prefix);
  });

  it('once the node epochs expired, a resource never used before gets a fence above every earlier one: lock_fences may be pruned under Redlock', async () => {
    // The prune's liveness condition (docs/locks.md, "Bounded fencing state"): a resource whose
    // row was pruned (or that never had one) refuses fences up to the prune floor, the highest
    // fence pruned, so the backend must issue fences above every fence it issued before.
    const prefix = uniquePrefix('prune');
    const p = provider({ prefix, epochTtlMs: 150, fenceTtlMs: 200 });
    const earlier: bigint[] = [];
    const once = async (key: string) => {
      const l = await p.acquire(key, { ttlMs: 2_000 });
      await l.release();
      return l.fence;
    };
    for (let i = 0; i < 6; i++) earlier.push(await once(`old:${i % 3}`));
    // A node that lost its state takes a fresh epoch; the fence write-back raises the others to it.
    await nodes.redis[2]!.flushall();
    for (let i = 0; i < 3; i++) earlier.push(await once(`old:${i}`));
    const d = sqlDialect(conn.family);
    const resources = ['old:0', 'old:1', 'old:2'].map((k) => `${prefix}${k}`);
    for (const [i, r] of resources.entries()) assert.equal(await raiseFence(conn.db, d, r, earlier[6 + i]!), true);
    // Everything idle past the TTLs: no epoch or fence counter of the prefix is left on any node
    // (a lock key a late node reply left behind expires with its own TTL).
    await delay(400);
    for (const [i, r] of nodes.redis.entries()) assert.deepEqual((await r.keys(`${prefix}*`)).filter((k) => !k.startsWith(`${prefix}l:`)), [], `node${i}`);
    const pruned = await pruneFences(conn.db, d, { olderThanMs: 1, now: Date.now() + 10 });
    assert.ok(pruned.deleted >= 3 && pruned.floor >= earlier[8]!, `floor ${pruned.floor}`);
    const max = earlier.reduce((a, b) => (a > b ? a : b));
    const fresh = await once('never-used');
    assert.ok(fresh > max, `${fresh} after ${max}`);
    assert.equal(await raiseFence(conn.db, d, `${prefix}never-used`, fresh), true, 'a new resource is not refused by the prune floor');
    const again = await once('old:0');
    assert.equal(await raiseFence(conn.db, d, resources[0]!, again), true, 'nor is a pruned one');
    assert.equal(await raiseFence(conn.db, d, resources[1]!, earlier[7]!), false, 'while a stale holder of a pruned resource is');
  });

  const assertEveryKeyExpires = async (prefix: string) => {
    let seen = 0;
    for (const [i, r] of nodes.redis.entries()) {
      for (const k of await r.keys(`${prefix}*`)) {
        seen++;
        const ttl = await r.pttl(k);
        assert.ok(ttl > 0, `node${i} ${k}: PTTL ${ttl} (a fencing key without expiry)`);
      }
    }
    assert.ok(seen >= 6, `the epoch and fence keys of 3 nodes, saw ${seen}`);
  };

  it('LOCKS_URL=redlock://…: the service opener parses, opens, pings, locks; an unreachable majority is a clear error', async () => {
    assert.deepEqual(parseRedlockUrl('redlock://:s3cret@a:1,b,c:3/2?nodeTimeoutMs=50'), {
      nodes: [
        { host: 'a', port: 1 },
        { host: 'b', port: 6379 },
        { host: 'c', port: 3 },
      ],
      username: undefined,
      password: 's3cret',
      db: 2,
      nodeTimeoutMs: 50,
    });
    assert.throws(() => parseRedlockUrl('redlock://a:1,b:2'), /odd number/);
    assert.throws(() => parseRedlockUrl('redlock://a:1,a:1,b:2'), /listed twice/);
    const ctx = { conn, anchor, prefix: uniquePrefix('svc'), metrics: {}, registry: new Registry() };
    const url = `redlock://${nodes.servers.map((s) => `127.0.0.1:${s.port}`).join(',')}`;
    const opened = await openRedlock(url, ctx);
    try {
      assert.equal(opened.kind, 'redlock');
      await opened.ping();
      const lease = await opened.provider.acquire('svc', { ttlMs: 2_000 });
      assert.ok(lease.fence > 0n);
      await lease.release();
    } finally {
      await opened.close();
    }
    const dead = await Promise.all([freePort(), freePort()]);
    const bad = `redlock://:pw@127.0.0.1:${nodes.servers[0]!.port},127.0.0.1:${dead[0]},127.0.0.1:${dead[1]}`;
    const t0 = Date.now();
    await assert.rejects(openRedlock(bad, ctx), (e: Error) => {
      assert.match(e.message, /cannot reach a majority \(2 of 3\) of the Redlock nodes at redlock:\/\/:\*\*\*@/);
      assert.ok(e.message.includes(`127.0.0.1:${dead[0]}: `) && e.message.includes('ECONNREFUSED'), e.message);
      assert.ok(!e.message.includes(':pw@'), 'password masked');
      return true;
    });
    assert.ok(Date.now() - t0 < 4_000, 'fails without waiting for the connect timeout');
  });

  it('with 2 of 3 nodes down: QuorumError naming each node, nothing left locked', async () => {
    const prefix = uniquePrefix('down');
    const p = provider({ prefix, nodeTimeoutMs: 300 });
    await (await p.acquire('k', { ttlMs: 2_000 })).release(); // epochs installed, scripts loaded
    await Promise.all([nodes.servers[0]!.stop(), nodes.servers[2]!.stop()]);
    const err = await p.tryAcquire('k', { ttlMs: 2_000 }).then(
      () => assert.fail('acquired with a minority'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof QuorumError, String(err));
    assert.equal(err.name, 'QuorumError');
    assert.equal(err.code, 'LOCK_BACKEND');
    assert.equal(err.causes.length, 3);
    assert.deepEqual(
      err.causes.map((c) => c.node),
      nodes.names,
    );
    assert.equal(err.causes[1]!.reason, 'granted');
    for (const i of [0, 2]) {
      assert.ok(err.causes[i]!.error !== undefined, `node ${i} has an error cause`);
      assert.ok(err.message.includes(`${nodes.names[i]}: ${err.causes[i]!.reason}`), err.message);
    }
    // the minority grant was given back
    await delay(50);
    const keys = await nodes.redis[1]!.keys(`${prefix}l:*`);
    assert.deepEqual(keys, []);
    // acquire() retries until its deadline, then reports the quorum failure
    await assert.rejects(p.acquire('k', { ttlMs: 2_000, timeoutMs: 300 }), QuorumError);
  });
});
