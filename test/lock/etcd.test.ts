// etcd lock backend on a throwaway 3-member cluster: the contract suite, then faults (leader
// killed mid-stampede, a SIGSTOPped holder past its lease whose fenced SQL write is refused).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BackendLockProvider, EtcdClient, EtcdLockBackend, MemoryFenceAnchor, StaleFenceError, createEtcdLockProvider, type AttemptResult, type LockProvider } from '../../packages/lock/src/index.ts';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrate.ts';
import { checkFence } from '../helpers/fences.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { backendHarness, lockContract } from './contract.ts';
import { openEtcd, parseEtcdUrl } from '../../src/service/lock-backends/etcd.ts';
import type { LockBackendContext } from '../../src/service/lock-backends/types.ts';
import { Registry } from 'prom-client';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INDEX = fileURLToPath(new URL('../../packages/lock/src/index.ts', import.meta.url));
// The holder process: acquires, prints its fence, then answers each stdin line with the fence it
// would write with (and whether it noticed the loss).
const HOLDER = `
const { createEtcdLockProvider } = await import(process.argv[1]);
const [endpoints, prefix, key, ttl] = process.argv.slice(2);
const p = createEtcdLockProvider({ endpoints: endpoints.split(','), prefix, requestTimeoutMs: 800 });
const startedAt = Date.now(); // etcd grants the lease after this, so it cannot run out before startedAt + ttl
const lease = await p.acquire(key, { ttlMs: Number(ttl), timeoutMs: 5000 });
console.log('held ' + lease.fence + ' ' + startedAt);
process.stdin.setEncoding('utf8');
for await (const _ of process.stdin) console.log('fence ' + lease.fence + ' lost=' + lease.signal.aborted);
`;

const prefixFor = (tag: string) => `test:${tag}:${process.pid}:${randomBytes(3).toString('hex')}:`;

let cluster: EtcdCluster | undefined;
let starting: Promise<EtcdCluster> | undefined;
const getCluster = () => (starting ??= startEtcdCluster().then((c) => (cluster = c)));

after(async () => {
  await cluster?.destroy();
});

lockContract('etcd (3 members, JSON gateway)', async () => {
  const c = await getCluster();
  const client = new EtcdClient({ endpoints: c.endpoints });
  const prefix = prefixFor('contract');
  return backendHarness(
    () => new EtcdLockBackend({ client, ownsClient: false, prefix }),
    async () => {
      client.close();
    },
  );
});

describe('etcd lock faults', () => {
  let c: EtcdCluster;
  before(async () => {
    c = await getCluster();
  });

  it('keeps locking when the leader is killed mid-stampede: one holder at a time, fences strictly increasing', async () => {
    const key = 'stampede';
    const prefix = prefixFor('leader');
    // each provider starts at a different member, so one of them talks to the leader when it dies
    const ps: LockProvider[] = Array.from({ length: 3 }, (_, i) => createEtcdLockProvider({ endpoints: [...c.endpoints.slice(i), ...c.endpoints.slice(0, i)], prefix, requestTimeoutMs: 800, recheckMs: 300 }));
    const fences: bigint[] = [];
    let holders = 0;
    let maxHolders = 0;
    let killedAt = Infinity;
    let afterKill = 0;
    const stopAt = { t: Infinity };
    const worker = async (p: LockProvider) => {
      while (Date.now() < stopAt.t) {
        let lease;
        try {
          lease = await p.acquire(key, { ttlMs: 3_000, timeoutMs: 8_000 });
        } catch (error) {
          throw new Error(`acquire failed ${Date.now() - killedAt} ms after the kill`, { cause: error });
        }
        holders++;
        maxHolders = Math.max(maxHolders, holders);
        fences.push(lease.fence);
        if (Date.now() > killedAt) afterKill++;
        await delay(2);
        holders--;
        await lease.release().catch(() => undefined);
      }
    };
    const running = Promise.all(ps.flatMap((p) => [worker(p), worker(p)]));
    await delay(400);
    const leader = await c.leader();
    const beforeKill = fences.length;
    leader.kill('SIGKILL');
    killedAt = Date.now();
    await leader.exited();
    await delay(2_000);
    stopAt.t = Date.now();
    await running;
    await Promise.all(ps.map((p) => p.close()));
    assert.ok(beforeKill > 5, `acquisitions before the kill: ${beforeKill}`);
    assert.ok(afterKill > 5, `acquisitions after the kill: ${afterKill}`);
    assert.equal(maxHolders, 1);
    for (let i = 1; i < fences.length; i++) assert.ok(fences[i]! > fences[i - 1]!, `fence ${fences[i]} after ${fences[i - 1]}`);
  });

  it('wakes only the next waiter on release: each waiter watches its predecessor, not the holder', async () => {
    let attempts = 0;
    class Counting extends EtcdLockBackend {
      override attempt(req: Parameters<EtcdLockBackend['attempt']>[0]): Promise<AttemptResult> {
        attempts++;
        return super.attempt(req);
      }
    }
    const client = new EtcdClient({ endpoints: c.endpoints });
    // recheckMs far beyond the test: only watch events can wake a waiter
    const p = new BackendLockProvider(new Counting({ client, ownsClient: false, prefix: prefixFor('herd'), recheckMs: 20_000 }));
    const key = 'herd';
    const holder = await p.acquire(key, { ttlMs: 10_000 });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let acquired = 0;
    const waiters = Array.from({ length: 6 }, () =>
      p.acquire(key, { ttlMs: 10_000, timeoutMs: 15_000 }).then(async (l) => {
        acquired++;
        await gate;
        await l.release();
      }),
    );
    try {
      const deadline = Date.now() + 5_000;
      while (attempts < 12 && Date.now() < deadline) await delay(20); // each waiter: a fast-path miss, then it queues
      await delay(200);
      const before = attempts;
      await holder.release();
      while (acquired === 0 && Date.now() < deadline) await delay(10);
      await delay(300);
      assert.equal(acquired, 1);
      assert.equal(attempts - before, 1, 'only the next waiter re-attempted');
    } finally {
      open();
      await Promise.allSettled(waiters);
    }
    assert.equal(acquired, 6);
    await p.close();
    client.close();
  });

  it('a holder SIGSTOPped past its lease: the next holder gets a higher fence and the stale fence is refused by the SQL check (PGlite)', async () => {
    const prefix = prefixFor('sigstop');
    const key = 'job';
    const ttl = 1_000;
    // A PGlite data dir (copied from the machine's cached template: much faster than an in-memory
    // initdb), opened while the holder process starts.
    const dir = await mkdtemp(join(tmpdir(), 'allot-etcd-pglite-'));
    const opening = connectSql({ url: `pglite://${join(dir, 'db')}`, poolSize: 1, timeoutMs: 5_000 }).then(async (conn: SqlConnection) => {
      // Fresh, or copied from an already migrated template: migrateToLatest handles both.
      await migrateToLatest(conn);
      return conn;
    });
    opening.catch(() => undefined);
    let conn: SqlConnection | undefined;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', HOLDER, INDEX, c.endpoints.join(','), prefix, key, String(ttl)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const nextLine = async () => {
      const r = await Promise.race([lines.next(), delay(10_000).then(() => ({ done: true, value: undefined }))]);
      if (r.done) throw new Error('the holder process did not answer');
      return r.value as string;
    };
    const p = createEtcdLockProvider({ endpoints: c.endpoints, prefix, requestTimeoutMs: 800 });
    try {
      const [, fenceText, startedText] = (await nextLine()).split(' ');
      const childFence = BigInt(fenceText!);
      child.kill('SIGSTOP');
      // Measured from when the holder started acquiring (same machine clock): on a loaded machine its
      // "held" line can reach us most of a lease later, so our own clock would give no lower bound.
      const heldAt = Number(startedText);
      conn = await opening;
      await checkFence(conn.db, conn.family, key, childFence); // a write it made while it held the lock
      const lease = await p.acquire(key, { ttlMs: 5_000, timeoutMs: 6_000 });
      const after = Date.now() - heldAt;
      // etcd kept the stopped holder's lease until its TTL ran out (nobody was renewing it)
      assert.ok(after >= ttl - 300, `taken over ${after} ms after the holder started acquiring, before its ${ttl} ms lease ran out`);
      assert.ok(lease.fence > childFence, `fence ${lease.fence} after ${childFence}`);
      await checkFence(conn.db, conn.family, key, lease.fence);
      child.kill('SIGCONT');
      child.stdin!.write('report\n');
      const report = await nextLine();
      const staleFence = BigInt(report.split(' ')[1]!);
      assert.equal(staleFence, childFence, 'the resumed holder still carries its old fence');
      await assert.rejects(checkFence(conn.db, conn.family, key, staleFence), StaleFenceError);
      await delay(200); // the resumed holder's own deadline revokes only its own (gone) lease
      assert.equal(await p.tryAcquire(key), null, 'the new holder keeps the lock');
      await lease.release();
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await p.close();
      await (conn ?? (await opening.catch(() => undefined)))?.db.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with a fence anchor, fences are (epoch << 40) | revision, one epoch per cluster', async () => {
    const prefix = prefixFor('anchor');
    const a = createEtcdLockProvider({ endpoints: c.endpoints, prefix, fenceAnchor: new MemoryFenceAnchor() });
    const b = createEtcdLockProvider({ endpoints: c.endpoints, prefix, fenceAnchor: new MemoryFenceAnchor() });
    const l1 = await a.acquire('x', { ttlMs: 2_000 });
    await l1.release();
    const l2 = await b.acquire('x', { ttlMs: 2_000 });
    await l2.release();
    assert.ok(l1.fence >> 40n >= 1n, 'an epoch in the high bits');
    assert.equal(l2.fence >> 40n, l1.fence >> 40n, 'the epoch installed in etcd is shared');
    assert.ok(l2.fence > l1.fence);
    await a.close();
    await b.close();
  });

  it('opens LOCKS_URL=etcd://h1,h2,h3 (a dead member listed first) and names the URL when nothing answers', async () => {
    const ctx = { conn: undefined as never, anchor: new MemoryFenceAnchor(), prefix: prefixFor('svc'), metrics: {}, registry: new Registry() } satisfies LockBackendContext;
    const hosts = c.endpoints.map((e) => new URL(e).host);
    const dead = c.members.find((m) => m.pid() === undefined);
    const ordered = dead ? [new URL(dead.clientUrl).host, ...hosts.filter((h) => h !== new URL(dead.clientUrl).host)] : hosts;
    const opened = await openEtcd(`etcd://${ordered.join(',')}?requestTimeoutMs=800`, ctx);
    try {
      assert.equal(opened.kind, 'etcd');
      await opened.ping();
      const lease = await opened.provider.acquire('svc', { ttlMs: 2_000 });
      assert.ok(lease.fence >> 40n >= 1n, 'fences carry the anchor epoch');
      await lease.release();
    } finally {
      await opened.close();
    }
    assert.deepEqual(parseEtcdUrl('etcd://a,b:2380').endpoints, ['http://a:2379', 'http://b:2380']);
    assert.deepEqual(parseEtcdUrl('etcd://u:s%40cret@a:2379').auth, { username: 'u', password: 's@cret' });
    assert.throws(() => parseEtcdUrl('etcd://u@a:2379'), (e: Error) => /takes a user and a password/.test(e.message));
    assert.throws(() => parseEtcdUrl('etcd://u:secret@a:2379?tlsCaFile=/ca.pem'), (e: Error) => !e.message.includes('secret') && /tlsCaFile needs TLS: use the etcds:\/\/ scheme/.test(e.message));
    assert.deepEqual(parseEtcdUrl('etcds://a,b:2380?tlsCaFile=%2Fca.pem').endpoints, ['https://a:2379', 'https://b:2380']);
    await assert.rejects(openEtcd('etcd://127.0.0.1:1?connectTimeoutMs=300', ctx), /cannot reach the etcd cluster at etcd:\/\/127\.0\.0\.1:1\?connectTimeoutMs=300 \(LOCKS_URL\)/);
  });
});
