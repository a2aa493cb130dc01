// LOCKS_URL=rediss-sentinel://… and rediss-cluster://…: the same backends over TLS. Throwaway
// topologies on loopback whose nodes and sentinels listen with TLS on the ports the URL names
// (certificate for 127.0.0.1 from a throwaway CA, made with openssl); replication, the sentinels'
// links and the cluster bus run over TLS too. Checked: the service's opener connects over TLS (the
// server sees the connection on its TLS port), locks and hand-offs work, a Sentinel failover is
// followed over TLS with fences still increasing, a client that does not trust the CA is refused
// with a message that says what to check, and the URL's TLS parameters are validated.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { NOOP_LOCK_METRICS } from '../../packages/lock/src/index.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { SqlFenceAnchor } from '../../src/adapters/sql/sql-fences.ts';
import { openRedisSentinel, parseRedisSentinelUrl } from '../../src/service/lock-backends/redis-sentinel.ts';
import { openRedisCluster, parseRedisClusterUrl } from '../../src/service/lock-backends/redis-cluster.ts';
import type { LockBackendContext, OpenedLockBackend } from '../../src/service/lock-backends/types.ts';
import { openFencedDb, startClusterTopology, startSentinelTopology, type ClusterTopology, type SentinelTopology } from '../helpers/redis-topologies.ts';
import { uniquePrefix } from './redis-harness.ts';

let db: Awaited<ReturnType<typeof openFencedDb>>;
const ctx = (tag: string): LockBackendContext => ({ conn: db.conn, anchor: new SqlFenceAnchor(db.conn.db, sqlDialect(db.conn.family), uniquePrefix(tag)), prefix: uniquePrefix(tag), metrics: NOOP_LOCK_METRICS, registry: new Registry() });

before(async () => {
  db = await openFencedDb();
});
after(async () => {
  await db?.close();
});

/** Two callers on one key through the opened backend: the second waits and is handed the lock. */
async function lockAndHandOver(opened: OpenedLockBackend, key: string): Promise<bigint[]> {
  const first = await opened.provider.acquire(key, { ttlMs: 5_000 });
  const waiting = opened.provider.acquire(key, { ttlMs: 5_000, timeoutMs: 5_000 });
  await new Promise((r) => setTimeout(r, 50));
  await first.release();
  const second = await waiting;
  await second.release();
  assert.ok(second.fence > first.fence, `fences ${first.fence} then ${second.fence}`);
  return [first.fence, second.fence];
}

describe('rediss-sentinel:// (TLS)', () => {
  let t: SentinelTopology;
  before(async () => {
    t = await startSentinelTopology('tlsmaster', { tls: true });
  });
  after(async () => {
    await t?.destroy();
  });

  it('parses the TLS form and refuses bad TLS parameters, naming what to do', () => {
    const cfg = parseRedisSentinelUrl('rediss-sentinel://:pw@h1:26380,h2/m?tlsCaFile=%2Fetc%2Fca.pem&tlsCertFile=c.pem&tlsKeyFile=k.pem');
    assert.deepEqual(cfg.tls, { caFile: '/etc/ca.pem', certFile: 'c.pem', keyFile: 'k.pem' });
    assert.equal(parseRedisSentinelUrl('redis-sentinel://h1/m').tls, undefined);
    assert.deepEqual(parseRedisSentinelUrl('rediss-sentinel://h1/m').tls, { caFile: undefined, certFile: undefined, keyFile: undefined }, 'the trust store by default');
    assert.throws(() => parseRedisSentinelUrl('redis-sentinel://:pw@h1/m?tlsCaFile=/ca.pem'), (e: Error) => /tlsCaFile needs TLS: use the rediss-sentinel:\/\/ scheme/.test(e.message) && !e.message.includes('pw@'));
    assert.throws(() => parseRedisSentinelUrl('rediss-sentinel://h1/m?tlsCertFile=c.pem'), /tlsCertFile and tlsKeyFile go together/);
    assert.throws(() => parseRedisSentinelUrl('rediss-sentinel://h1/m?tlsCAFile=/ca.pem'), /unknown parameter "tlsCAFile" \(known: sentinelPassword, connectTimeoutMs, tlsCaFile, tlsCertFile, tlsKeyFile\)/);
  });

  it('locks over TLS, follows a failover over TLS with fences still increasing, and refuses a CA it does not trust', async () => {
    const opened = await openRedisSentinel(t.url, ctx('tls-sentinel'));
    try {
      assert.equal(opened.kind, 'redis-sentinel');
      await opened.ping();
      const before = await lockAndHandOver(opened, 'tls-k');
      // the master sees this client on its TLS port
      const lease = await opened.provider.acquire('probe', { ttlMs: 5_000 });
      const clients = String(await t.master.command('CLIENT', 'LIST'));
      assert.match(clients, new RegExp(`laddr=127\\.0\\.0\\.1:${t.master.tlsPort} `), 'a connection on the TLS port');
      await lease.release();
      await t.failover();
      let after: bigint[] | undefined;
      for (let i = 0; i < 100 && !after; i++) {
        after = await lockAndHandOver(opened, 'tls-k').catch(async () => {
          await new Promise((r) => setTimeout(r, 100));
          return undefined;
        });
      }
      assert.ok(after, 'locks again on the promoted master');
      assert.ok(after[0]! > before[1]!, `fence after the failover ${after[0]} above ${before[1]}`);
      // (ioredis may still be moving its connections over when the first lock went through:
      // the client list is asked a few times)
      const onTls = new RegExp(`laddr=127\\.0\\.0\\.1:${t.replica.tlsPort} `);
      let list = '';
      for (let i = 0; i < 50 && !onTls.test(list); i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 100));
        list = String(await t.replica.command('CLIENT', 'LIST'));
      }
      assert.match(list, onTls, 'the promoted master reached over TLS');
      // and locks there (the first lock after the failover may have gone to the old master while
      // it still was one)
      const later = await lockAndHandOver(opened, 'tls-k');
      assert.ok(later[0]! > after[1]!, `fence ${later[0]} above ${after[1]}`);
    } finally {
      await opened.close();
    }
    const untrusted = t.url.replace(encodeURIComponent(t.certs!.caFile), encodeURIComponent(t.certs!.otherCaFile)) + '&connectTimeoutMs=1500';
    await assert.rejects(openRedisSentinel(untrusted, ctx('tls-bad')), (e: Error) => /cannot reach the Redis master "tlsmaster" through the sentinels at rediss-sentinel:/.test(e.message) && /over TLS, that the ports are the TLS ones and that the CA \(\?tlsCaFile=\) signed/.test(e.message));
    await assert.rejects(openRedisSentinel(t.url.replace(encodeURIComponent(t.certs!.caFile), '%2Fno%2Fsuch%2Fca.pem'), ctx('tls-missing')), /cannot read tlsCaFile \/no\/such\/ca\.pem/);
  });
});

describe('rediss-cluster:// (TLS)', () => {
  let t: ClusterTopology;
  before(async () => {
    t = await startClusterTopology({ tls: true });
  });
  after(async () => {
    await t?.destroy();
  });

  it('parses the TLS form; locks over TLS on every master; refuses a CA it does not trust', async () => {
    assert.deepEqual(parseRedisClusterUrl('rediss-cluster://h1:7000,h2:7000?tlsCaFile=%2Fca.pem').tls, { caFile: '/ca.pem', certFile: undefined, keyFile: undefined });
    assert.throws(() => parseRedisClusterUrl('redis-cluster://h1?tlsKeyFile=k.pem'), /tlsKeyFile needs TLS: use the rediss-cluster:\/\/ scheme/);
    assert.throws(() => parseRedisClusterUrl('rediss-cluster://h1?timeout=5'), /unknown parameter "timeout"/);
    const opened = await openRedisCluster(t.url, ctx('tls-cluster'));
    try {
      assert.equal(opened.kind, 'redis-cluster');
      await opened.ping();
      // keys on every master (their slots spread over the three)
      const masters = new Set<number>();
      for (let i = 0; masters.size < 3 && i < 64; i++) {
        const key = `tls-k${i}`;
        const node = await t.masterOf(`allot:lock:{${key}}:l`);
        if (masters.has(node.port)) continue;
        masters.add(node.port);
        await lockAndHandOver(opened, key);
        assert.match(String(await node.command('CLIENT', 'LIST')), new RegExp(`laddr=127\\.0\\.0\\.1:${node.tlsPort} `), `master ${node.port} reached over TLS`);
      }
      assert.equal(masters.size, 3);
    } finally {
      await opened.close();
    }
    const untrusted = t.url.replace(encodeURIComponent(t.certs!.caFile), encodeURIComponent(t.certs!.otherCaFile)) + '&connectTimeoutMs=1500';
    await assert.rejects(openRedisCluster(untrusted, ctx('tls-bad')), (e: Error) => /cannot reach the Redis Cluster at rediss-cluster:/.test(e.message) && /over TLS/.test(e.message));
  });
});
