// A Sentinel failover in the middle of a stampede of `redis-lock` claims: two worker processes
// (each its own AllotService, LOCKS_URL=redis-sentinel://…) on PostgreSQL fire 300 claims from 150
// users at a stock of 100 while SENTINEL FAILOVER promotes the replica. Nothing oversold, no
// duplicate, every 201 durable, no 5xx but documented 503s, and fences never reused: a new epoch
// on the new master. This file is also the worker (ALLOT_SENTINEL_FAILOVER_WORKER=1).
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { AllotError } from '../../src/core/errors.ts';
import { AllotService } from '../../src/service/service.ts';
import { userLockKey } from '../../src/strategies/redis-lock.ts';
import { FENCE_COUNTER_BITS } from '../../packages/lock/src/index.ts';
import { startSentinelTopology, type SentinelTopology } from '../helpers/redis-topologies.ts';
import { once, shuffle } from './race-harness.ts';

const WORKER_ENV = 'ALLOT_SENTINEL_FAILOVER_WORKER';
const WORKERS = 2;
const USERS = 150;
const STOCK = 100;
/** Users 0..29 claim before the failover, 30..79 while it runs, 80..149 once the replica is promoted. */
const PHASE_OF = (u: number): 0 | 1 | 2 => (u < 30 ? 0 : u < 80 ? 1 : 2);
/** Over how long each phase's claims are spread (ms after the phase is fired). */
const SPREAD_MS = [300, 1_500, 300] as const;

interface Planned {
  idx: number;
  userId: string;
  key: string | null;
  phase: 0 | 1 | 2;
  delayMs: number;
}

interface Result {
  idx: number;
  userId: string;
  key: string | null;
  phase: number;
  status: number;
  body: { claim?: { id: string; userId: string }; error?: { code: string } } | null;
  result?: string;
  /** the fence that authorized an issued claim's write (StrategyStats.fence), as a string */
  fence?: { resource: string; fence: string };
  error?: string;
  code?: string;
  outcome?: unknown;
}

interface LeaseSeen {
  idx: number;
  pid: number;
  key: string;
  fence: string;
  ownerId: string;
  /** high-resolution epoch ms when the claim held it (afterLock) */
  at: number;
}

type ToWorker =
  | { type: 'open'; dbUrl: string; locksUrl: string; lockPrefix: string }
  | { type: 'job'; campaignId: string; claims: Planned[] }
  | { type: 'fire'; phase: number }
  | { type: 'collect' }
  | { type: 'close' };

type FromWorker = { type: 'ready' } | { type: 'armed' } | { type: 'done'; results: Result[]; leases: LeaseSeen[] };

if (process.env[WORKER_ENV] === '1') worker();
else suite();

function worker(): void {
  const send = (msg: FromWorker) => new Promise<void>((resolve) => process.send!(msg, () => resolve()));
  const current = new AsyncLocalStorage<number>();
  const leases: LeaseSeen[] = [];
  const now = () => performance.timeOrigin + performance.now();
  let service: AllotService | undefined;
  let job: Extract<ToWorker, { type: 'job' }> | undefined;
  const running: Promise<Result>[] = [];

  const claim = async (c: Planned): Promise<Result> => {
    const s = service!;
    const base = { idx: c.idx, userId: c.userId, key: c.key, phase: c.phase };
    await delay(c.delayMs);
    try {
      // Like a real client: while the first request under a key runs, wait and ask again.
      for (let attempt = 0; ; attempt++) {
        const out = await current.run(c.idx, () => s.claim(job!.campaignId, c.userId, c.key));
        const code = (out.body as { error?: { code?: string } }).error?.code;
        if (code !== 'IDEMPOTENCY_IN_PROGRESS' || attempt >= 400) {
          const f = out.stats?.fence;
          return { ...base, status: out.status, body: out.body as Result['body'], result: out.result, ...(f ? { fence: { resource: f.resource, fence: f.fence.toString() } } : {}) };
        }
        await delay(50);
      }
    } catch (err) {
      const e = err as Error & { cause?: Error };
      const info = err instanceof AllotError ? { code: err.code, outcome: err.details?.outcome } : {};
      return { ...base, status: err instanceof AllotError ? err.status : 0, body: null, error: `${e.message}${e.cause ? ` (cause: ${e.cause.message})` : ''}`, ...info };
    }
  };

  process.on('message', (msg: ToWorker) => {
    void (async () => {
      if (msg.type === 'open') {
        service = await AllotService.open({
          config: { databaseUrl: msg.dbUrl, dbPoolSize: 10, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: msg.locksUrl, lockPrefix: msg.lockPrefix },
          migrate: false,
          strategies: {
            redisLock: {
              // Every lease a claim held, attributed to the claim: the fences handed out, used or not.
              afterLock: async (held) => {
                const idx = current.getStore() ?? -1;
                for (const l of held) leases.push({ idx, pid: process.pid, key: l.key, fence: l.fence.toString(), ownerId: l.ownerId, at: now() });
              },
            },
          },
        });
        await send({ type: 'ready' });
      } else if (msg.type === 'job') {
        job = msg;
        await send({ type: 'armed' });
      } else if (msg.type === 'fire') {
        for (const c of job!.claims) if (c.phase === msg.phase) running.push(claim(c));
      } else if (msg.type === 'collect') {
        const results = await Promise.all(running);
        await send({ type: 'done', results, leases });
      } else if (msg.type === 'close') {
        await service?.close();
        process.disconnect();
      }
    })().catch((error: unknown) => {
      process.stderr.write(`sentinel failover worker: ${String((error as Error)?.stack ?? error)}\n`);
      process.exit(1);
    });
  });
}

function suite(): void {
  const PG = process.env.DATABASE_URL_PG;
  const SELF = fileURLToPath(import.meta.url);

  function plan(): Planned[] {
    const claims: Omit<Planned, 'idx'>[] = [];
    for (let u = 0; u < USERS; u++) {
      const userId = `user-${u}`;
      const phase = PHASE_OF(u);
      const at = () => Math.floor(Math.random() * SPREAD_MS[phase]);
      // Even users retry one request (same Idempotency-Key); odd users double-click (two requests).
      if (u % 2 === 0) claims.push({ userId, key: `k-${u}`, phase, delayMs: at() }, { userId, key: `k-${u}`, phase, delayMs: at() });
      else claims.push({ userId, key: null, phase, delayMs: at() }, { userId, key: `k-${u}`, phase, delayMs: at() });
    }
    return shuffle(claims).map((c, idx) => ({ ...c, idx }));
  }

  function startWorker(dbUrl: string, locksUrl: string, lockPrefix: string): { child: ChildProcess; ready: Promise<unknown> } {
    const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_ENV]: '1' };
    delete env.NODE_TEST_CONTEXT; // a plain process, not a test file of the runner's
    const child = fork(SELF, [], { execArgv: ['--import', 'tsx'], env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const ready = once(child, 'ready');
    child.send({ type: 'open', dbUrl, locksUrl, lockPrefix } satisfies ToWorker);
    return { child, ready };
  }

  async function stopWorker(c: ChildProcess): Promise<void> {
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    if (c.connected) c.send({ type: 'close' } satisfies ToWorker);
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  const epochOf = (fence: string | bigint) => BigInt(fence) >> FENCE_COUNTER_BITS;

  describe('Sentinel failover during a redis-lock stampede (PostgreSQL)', { skip: PG ? false : 'DATABASE_URL_PG is not set (npm test sets it)' }, () => {
    let topo: SentinelTopology | undefined;
    let service: AllotService | undefined;
    let db: SqlConnection | undefined;
    const workers: ChildProcess[] = [];
    const lockPrefix = `sfo-${randomUUID().slice(0, 8)}:`;

    before(async () => {
      topo = await startSentinelTopology();
      const t = topo;
      service = await AllotService.open({
        config: { databaseUrl: PG!, dbPoolSize: 4, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: t.url, lockPrefix },
      });
      // The service above migrated the database; the workers open it without migrating.
      const started = Array.from({ length: WORKERS }, () => startWorker(PG!, t.url, lockPrefix));
      workers.push(...started.map((s) => s.child));
      db = await connectSql({ url: PG!, poolSize: 1, timeoutMs: 5_000 });
      await Promise.all(started.map((s) => s.ready));
    });
    after(async () => {
      await Promise.all(workers.map(stopWorker));
      await service?.close();
      await db?.db.destroy();
      await topo?.destroy();
    });

    it('zero oversold, zero duplicates, zero lost acks, fences never reused and a new epoch on the new master', { timeout: 60_000 }, async () => {
      const t = topo!;
      const s = service!;
      const id = `sfo-${randomUUID().slice(0, 8)}`;
      await s.createCampaign({ id, kind: 'coupon', name: 'sentinel failover', stock: STOCK, strategy: 'redis-lock' });
      const fencesOf = async () =>
        (await sql<{ resource: string; fence: string; holder: string }>`SELECT resource, fence, holder FROM lock_fences WHERE resource LIKE ${`claim:user:${id}:%`}`.execute(db!.db)).rows;
      assert.deepEqual(await fencesOf(), [], 'no fence row for this campaign before the stampede');

      // Both claims of a user go to one worker: its successive leases of the user's lock come
      // through one client, which follows one master at a time.
      const claims = plan();
      const armed = workers.map((c) => once(c, 'armed'));
      workers.forEach((c, i) => c.send({ type: 'job', campaignId: id, claims: claims.filter((x) => Number(x.userId.slice(5)) % WORKERS === i) } satisfies ToWorker));
      await Promise.all(armed);
      const done = workers.map((c) => once<Extract<FromWorker, { type: 'done' }>>(c, 'done'));
      const fire = (phase: number) => workers.forEach((c) => c.send({ type: 'fire', phase } satisfies ToWorker));

      const oldMasterPort = await t.masterPort();
      fire(0);
      // The failover begins once the stampede is under way: some claims already committed.
      for (const deadline = Date.now() + 10_000; (await fencesOf()).length < 10; ) {
        assert.ok(Date.now() < deadline, 'no 10 claims committed within 10 s of the start');
        await delay(20);
      }
      const failoverAt = performance.timeOrigin + performance.now();
      fire(1);
      const promoted = await t.failover();
      const promotedAt = performance.timeOrigin + performance.now();
      assert.notEqual(promoted.port, oldMasterPort);
      fire(2);
      for (const c of workers) c.send({ type: 'collect' } satisfies ToWorker);
      const outs = await Promise.all(done);
      const results = outs.flatMap((o) => o.results);
      const leases = outs.flatMap((o) => o.leases);
      assert.equal(results.length, USERS * 2);

      // No 5xx but the documented 503: UNAVAILABLE, nothing issued.
      const unavailable = results.filter((r) => r.status === 503 && r.code === 'UNAVAILABLE' && r.outcome === 'nothing-issued');
      const failures = results.filter((r) => (r.status === 0 || r.status >= 500) && !unavailable.includes(r));
      assert.deepEqual(failures, [], 'no claim failed with an undocumented error');
      for (const r of results.filter((x) => x.status === 409)) {
        assert.ok(['SOLD_OUT', 'USER_LIMIT_REACHED'].includes(r.body!.error!.code), `unexpected refusal ${r.body!.error!.code}`);
      }
      const ok = results.filter((r) => r.status === 201);
      const acked = new Set(ok.map((r) => r.body!.claim!.id));

      // Retries under one key got one outcome (unless one of them got a 503 that issued nothing).
      const byKey = new Map<string, Result[]>();
      for (const r of results) if (r.key) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
      for (const [key, rs] of byKey) if (rs.length === 2 && !rs.some((r) => unavailable.includes(r))) assert.deepEqual(rs[0]!.body, rs[1]!.body, `key ${key} answered two outcomes`);

      // The database holds exactly the acknowledged claims, at most one per user, never over the stock.
      const campaign = await s.getCampaign(id);
      assert.ok(campaign.issued <= STOCK, `oversold: ${campaign.issued} > ${STOCK}`);
      assert.equal(campaign.issued, acked.size, 'issued equals the number of distinct 201s');
      if (unavailable.length === 0) assert.equal(campaign.issued, STOCK, 'with no 503, the whole stock went to 150 users');
      const rows = [];
      let cursor: string | null = null;
      do {
        const page = await s.listClaims(id, null, 1000, cursor);
        rows.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor);
      assert.deepEqual(new Set(rows.map((r) => r.id)), acked, 'every 201 has exactly one durable row, and no row lacks a 201');
      assert.equal(rows.length, acked.size);
      assert.equal(new Set(rows.map((r) => r.userId)).size, rows.length, 'nobody holds two claims');
      const audit = await s.audit(id);
      assert.equal(audit.ok, true, JSON.stringify(audit.checks));

      // Fences. (1) No fence of a user's lock handed to two leases, and within one process (one
      // client following one master at a time) a user's leases carry strictly increasing fences.
      const byResource = new Map<string, LeaseSeen[]>();
      for (const l of leases) byResource.set(l.key, [...(byResource.get(l.key) ?? []), l]);
      for (const [resource, ls] of byResource) {
        const fences = ls.map((l) => l.fence);
        assert.equal(new Set(fences).size, fences.length, `${resource}: a fence handed out twice: ${fences.filter((f, i) => fences.indexOf(f) !== i).join(', ')}`);
        for (const pid of new Set(ls.map((l) => l.pid))) {
          const seq = ls.filter((l) => l.pid === pid).sort((a, b) => a.at - b.at);
          for (let i = 1; i < seq.length; i++) assert.ok(BigInt(seq[i]!.fence) > BigInt(seq[i - 1]!.fence), `${resource} in process ${pid}: fence ${seq[i]!.fence} after ${seq[i - 1]!.fence}`);
        }
      }
      // (2) The fence store holds exactly the fences of the acknowledged writes: each fenced 201's
      // fence, from the lease that made it; a write that rolled back left nothing.
      const fenced = ok.filter((r) => r.result === 'issued' && r.fence);
      for (const r of fenced) assert.equal(r.fence!.resource, userLockKey(id, r.userId));
      const fenceRows = new Map((await fencesOf()).map((r) => [r.resource, r]));
      assert.deepEqual(new Map(fenced.map((r) => [r.fence!.resource, r.fence!.fence])), new Map([...fenceRows].map(([k, v]) => [k, BigInt(v.fence).toString()])), 'lock_fences holds one row per fenced 201, with its fence');
      for (const r of fenced) {
        const lease = byResource.get(r.fence!.resource)?.find((l) => l.fence === r.fence!.fence);
        assert.ok(lease, `${r.fence!.resource}: no lease carried the fence ${r.fence!.fence} of its 201`);
        if (lease.ownerId.length <= 128) assert.equal(fenceRows.get(r.fence!.resource)!.holder, lease.ownerId);
      }
      // (3) The failover came mid-stampede, and the new master issues fences of a new epoch,
      // above every epoch before it: a promoted replica that lacks the last counter increments
      // cannot hand out a fence again.
      const leasesBefore = leases.filter((l) => l.at < failoverAt);
      const afterPromotion = leases.filter((l) => claims[l.idx]?.phase === 2 && l.at > promotedAt);
      assert.ok(leasesBefore.length > 0, 'leases before the failover');
      assert.ok(afterPromotion.length > 0, 'leases after the promotion');
      const epochBefore = leasesBefore.reduce((m, l) => (epochOf(l.fence) > m ? epochOf(l.fence) : m), 0n);
      const epochsAfter = new Set(afterPromotion.map((l) => epochOf(l.fence)));
      assert.ok([...epochsAfter].some((e) => e > epochBefore), `the new master issued no new epoch: epochs ${[...epochsAfter].join(',')} after the promotion, ${epochBefore} before the failover`);
      assert.ok(ok.some((r) => r.phase === 2 && r.result === 'issued'), 'claims were issued after the promotion');

      const degraded = ok.filter((r) => r.result === 'issued' && !r.fence).length;
      process.stderr.write(
        `sentinel failover stampede: ${ok.length} answered 201 (${acked.size} claims, ${fenced.length} fenced, ${degraded} without a lock), ` +
          `${results.filter((r) => r.status === 409).length} 409, ${unavailable.length} 503; ${leases.length} leases, epochs ${epochBefore} -> ${[...epochsAfter].join(',')}; ` +
          `promoted ${Math.round(promotedAt - failoverAt)} ms after the failover began\n`,
      );
    });
  });
}
