// The lock backend dies mid-stampede: a private redis-server is SIGKILLed while 200 redis-lock
// claims (stock 50) run. With LOCKS_DOWN=degrade every claim still answers, fast (the circuit
// breaker fails lock operations at once instead of each waiting the 10 s lock timeout), with zero
// oversold and zero duplicates (the database guard is the safety); with LOCKS_DOWN=refuse claims
// answer 503 at once with Retry-After. /readyz tells degraded (200) from down (503).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/http/app.ts';
import { AllotService } from '../../src/service/service.ts';
import type { ClaimOutcome } from '../../src/service/claim-engine.ts';
import { startRedis, type TestServer } from '../helpers/servers.ts';

const TOKEN = 'locks-down-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
const pg = process.env.DATABASE_URL_PG;
/** the redis-lock strategy's lock timeout: the old behaviour made every claim wait this long */
const LOCK_TIMEOUT_MS = 10_000;
/** a claim must answer well within it (a wide margin, not a benchmark) */
const FAST_MS = LOCK_TIMEOUT_MS / 2;

interface Answer {
  user: string;
  status: number;
  code: string | undefined;
  ms: number;
}

describe('the lock backend killed mid-stampede', { skip: pg ? false : 'DATABASE_URL_PG is not set (run with npm test)' }, () => {
  let redis: TestServer;
  let degrade: AllotService;
  let refuse: AllotService;
  let degradeApp: FastifyInstance;
  let refuseApp: FastifyInstance;
  const lockPrefix = `down-${randomUUID().slice(0, 8)}:`;
  const campaign = `down-${randomUUID().slice(0, 8)}`;

  before(async () => {
    redis = await startRedis();
    const config = { databaseUrl: pg!, dbPoolSize: 8, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: redis.url, lockPrefix };
    degrade = await AllotService.open({ config: { ...config, locksDown: 'degrade' } });
    refuse = await AllotService.open({ config: { ...config, dbPoolSize: 2, locksDown: 'refuse' } });
    degradeApp = await buildApp({ service: degrade, adminToken: TOKEN });
    refuseApp = await buildApp({ service: refuse, adminToken: TOKEN });
  });
  after(async () => {
    await degradeApp?.close();
    await refuseApp?.close();
    await degrade?.close().catch(() => undefined);
    await refuse?.close().catch(() => undefined);
    await redis?.destroy();
  });

  test('degrade: 200 claims, Redis SIGKILLed mid-stampede: every claim answers fast, none oversold, none twice', async () => {
    await degrade.createCampaign({ id: campaign, kind: 'coupon', name: 'down', stock: 50, perUserLimit: 1, strategy: 'redis-lock' });
    assert.equal((await degradeApp.inject({ method: 'GET', url: '/readyz' })).json().status, 'ready');
    // 150 users, 50 of them twice in a row (concurrent duplicates): 200 claims. The first 30 start
    // with Redis up, and it is killed once 10 have answered (20 still in flight); the other 170
    // start right after the kill: at most 30 units are gone by then, so at least 20 are issued
    // after it, with the duplicates racing among them.
    const users = Array.from({ length: 150 }, (_, i) => (i >= 30 && i < 80 ? [`u${i}`, `u${i}`] : [`u${i}`])).flat();
    assert.equal(users.length, 200);
    const claim = async (user: string, onAnswer?: () => void): Promise<Answer> => {
      const t0 = performance.now();
      let o: ClaimOutcome | undefined;
      let code: string | undefined;
      try {
        o = await degrade.claim(campaign, user, null);
      } catch (err) {
        code = (err as { code?: string }).code ?? String(err);
      }
      const ms = performance.now() - t0;
      onAnswer?.();
      const body = o?.body as { error?: { code?: string } } | undefined;
      return { user, status: o?.status ?? 0, code: code ?? body?.error?.code, ms };
    };
    let answered = 0;
    let killed!: () => void;
    const kill = new Promise<void>((r) => (killed = r));
    const started = performance.now();
    const early = Promise.all(users.slice(0, 30).map((u) => claim(u, () => {
      if (++answered === 10) {
        redis.kill('SIGKILL');
        killed();
      }
    })));
    await kill;
    const killedAt = performance.now() - started;
    const afterKill = await Promise.all(users.slice(30).map((u) => claim(u)));
    const answers = [...(await early), ...afterKill];
    const totalMs = performance.now() - started;

    const slowest = Math.max(...afterKill.map((a) => a.ms));
    console.log(`# stampede: Redis killed at ${Math.round(killedAt)} ms; the 170 claims started after the kill: slowest ${Math.round(slowest)} ms (queueing on the database included), ${afterKill.filter((a) => a.status === 201).length} issued; all 200 in ${Math.round(totalMs)} ms`);
    // Before the breaker, each of them waited the whole lock timeout (then answered 503).
    assert.ok(slowest < LOCK_TIMEOUT_MS * 0.75, `every claim started after the kill answered well within the ${LOCK_TIMEOUT_MS} ms lock timeout: slowest ${Math.round(slowest)} ms`);
    assert.ok(afterKill.some((a) => a.status === 201), 'claims after the kill were issued');
    const unexpected = answers.filter((a) => a.status !== 201 && !(a.status === 409 && (a.code === 'SOLD_OUT' || a.code === 'USER_LIMIT_REACHED')));
    assert.deepEqual(unexpected, [], 'degrade: every claim is issued or refused for stock/limit, none answers 503');

    const issued = answers.filter((a) => a.status === 201);
    assert.equal(issued.length, 50, 'exactly the stock is issued (200 claims by 150 users for 50 units)');
    const claims = (await degrade.listClaims(campaign, null, 200, null)).items;
    assert.equal(claims.length, 50, 'zero oversold: 50 claims stored');
    assert.equal(new Set(claims.map((c) => c.userId)).size, claims.length, 'zero duplicates: no user holds two claims');
    assert.equal((await degrade.audit(campaign)).ok, true);

    assert.notEqual(degrade.locks.breakerState(), 'closed', 'the breaker opened (open, or half-open while probing)');
    const metrics = (await degradeApp.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /allot_lock_breaker_state\{state="closed"\} 0/);
    assert.match(metrics, /allot_lock_breaker_opened_total 1\b/);
    const ranWithoutLock = Number(/allot_lock_down_claims_total\{mode="degrade"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    assert.ok(ranWithoutLock > 0, 'some claims ran with the database guard only');

    // Readiness: degraded (200) while the database answers and the locks do not.
    const ready = await degradeApp.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { status: 'degraded', backends: { database: 'ok', locks: 'down' }, dialect: 'postgres' });
  });

  test('refuse: claims on a redis-lock campaign answer 503 at once with Retry-After; /readyz 503; other strategies still serve', async () => {
    assert.equal(redis.pid(), undefined, 'Redis is still down');
    // A campaign with stock (the stampede's is sold out, and a sold-out campaign refuses before any lock).
    const locked = `${campaign}-r`;
    assert.equal((await refuseApp.inject({ method: 'POST', url: '/v1/campaigns', headers: auth, payload: { id: locked, name: 'refuse', stock: 100, strategy: 'redis-lock' } })).statusCode, 201);
    const t0 = performance.now();
    const first = await refuseApp.inject({ method: 'POST', url: `/v1/campaigns/${locked}/claims`, headers: auth, payload: { userId: 'r-first' } });
    const firstMs = performance.now() - t0;
    assert.equal(first.statusCode, 503);
    assert.ok(firstMs < FAST_MS, `the first claim answered in ${Math.round(firstMs)} ms (< ${FAST_MS})`);
    assert.equal(first.headers['retry-after'], '1');

    const ready = await refuseApp.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.equal(ready.headers['retry-after'], '1');
    assert.equal(ready.json().error.backends.locks, 'down');
    assert.equal(ready.json().error.backends.database, 'ok');
    assert.equal(refuse.locks.breakerState() === 'closed', false, 'the breaker is open');

    const t1 = performance.now();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => refuseApp.inject({ method: 'POST', url: `/v1/campaigns/${locked}/claims`, headers: auth, payload: { userId: `r${i}` } })));
    const ms = performance.now() - t1;
    for (const a of answers) {
      assert.equal(a.statusCode, 503);
      assert.equal(a.headers['retry-after'], '1');
      assert.equal(a.json().error.code, 'UNAVAILABLE');
      assert.match(a.json().error.message, /lock backend/);
    }
    assert.ok(ms < 2000, `20 refused claims in ${Math.round(ms)} ms: no waiting on the dead backend`);

    // A campaign whose strategy needs no lock is served as usual.
    const plain = `${campaign}-plain`;
    assert.equal((await refuseApp.inject({ method: 'POST', url: '/v1/campaigns', headers: auth, payload: { id: plain, name: 'plain', stock: 5 } })).statusCode, 201);
    assert.equal((await refuseApp.inject({ method: 'POST', url: `/v1/campaigns/${plain}/claims`, headers: auth, payload: { userId: 'p' } })).statusCode, 201);
  });

  test('Redis back: a half-open probe closes the breaker and redis-lock claims take their lock again', async () => {
    await redis.start();
    const deadline = Date.now() + 8000;
    while (degrade.locks.breakerState() !== 'closed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(degrade.locks.breakerState(), 'closed');
    const ready = await degradeApp.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.json().status, 'ready');
    const c2 = `${campaign}-2`;
    await degrade.createCampaign({ id: c2, kind: 'coupon', name: 'again', stock: 5, strategy: 'redis-lock' });
    const o = await degrade.claim(c2, 'x', null);
    assert.equal(o.status, 201);
    assert.ok(o.stats?.fence, 'the claim was fenced: it held its lock');
  });

  test('the database down: /readyz answers 503 (a load balancer takes the instance out)', async () => {
    await degrade.db.destroy();
    const ready = await degradeApp.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.equal(ready.json().error.backends.database, 'down');
  });
});
