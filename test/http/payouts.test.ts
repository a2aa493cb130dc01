// The payouts API of API.md ("Payouts: balances, withdrawals, transfer orders") end to end
// through app.inject(): fundings, balances, withdrawals under a required Idempotency-Key,
// transfer orders whose id is unique forever, orders whose outcome is unknown and an operator's
// resolution, 64-bit amounts as strings, and the ledger audit. Two apps on in-memory PGlite:
// one with the default simulated rail (answers in ~5 ms), one whose rail never answers in time.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/http/app.ts';
import { railKey } from '../../src/ports/payment-rail.ts';
import { InProcessSimRail } from '../../src/rail/in-process.ts';
import { AllotService, type ServiceOptions } from '../../src/service/service.ts';
import { ERROR_CODE, TEST_TOKEN, uid } from '../helpers/app.ts';

type Json = Record<string, unknown>;
const AUTH = { authorization: `Bearer ${TEST_TOKEN}` };
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MAX_I64 = '9223372036854775807';

interface Harness {
  app: FastifyInstance;
  service: AllotService;
  rail: InProcessSimRail;
  close(): Promise<void>;
}

/** The test helper's app, with the rail and payout options this file needs. */
async function open(rail: InProcessSimRail, payouts?: ServiceOptions['payouts']): Promise<Harness> {
  const service = await AllotService.open({
    config: { databaseUrl: 'memory://', dbPoolSize: 4, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
    rail,
    ...(payouts ? { payouts } : {}),
  });
  const app = await buildApp({ service, adminToken: TEST_TOKEN });
  await app.ready();
  return {
    app,
    service,
    rail,
    async close() {
      await app.close();
      await service.close();
    },
  };
}

function client(h: () => Harness) {
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> =>
    h().app.inject({ method, url, headers: { ...AUTH, ...headers }, ...(payload !== undefined ? { payload: payload as Json } : {}) });
  const body = (res: LightMyRequestResponse, status: number): Json => {
    assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode} ${res.body}`);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    return res.json() as Json;
  };
  return {
    call,
    body,
    fund: async (fundingId: string, userId: string, asset: string, amount: number | string) => body(await call('POST', '/v1/fundings', { fundingId, userId, asset, amount }), 201).funding as Json,
    balances: async (userId: string) => body(await call('GET', `/v1/accounts/${userId}/balances`), 200).balances as Json[],
    withdraw: (userId: string, asset: string, amount: number | string, key?: string) =>
      call('POST', '/v1/withdrawals', { userId, asset, amount }, key === undefined ? {} : { 'idempotency-key': key }),
    transfer: (orderId: string, userId: string, asset: string, amount: number | string, destination = 'addr-1') =>
      call('POST', '/v1/transfers', { orderId, userId, asset, amount, destination }),
    get: async (orderId: string) => body(await call('GET', `/v1/transfers/${orderId}`), 200).transfer as Json,
    resolve: (orderId: string, outcome: string, note = 'checked with the bank') => call('POST', `/v1/transfers/${orderId}/resolve`, { outcome, note }),
    audit: async () => body(await call('GET', '/v1/ledger/audit'), 200) as { ok: boolean; checks: Json[] },
    /** Polls GET until the order leaves received/executing. */
    settled: async (orderId: string, ms = 5000): Promise<Json> => {
      const until = Date.now() + ms;
      for (;;) {
        const t = body(await call('GET', `/v1/transfers/${orderId}`), 200).transfer as Json;
        if (t.state !== 'received' && t.state !== 'executing') return t;
        if (Date.now() > until) assert.fail(`order ${orderId} still ${String(t.state)} after ${ms} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}

function assertError(res: LightMyRequestResponse, status: number, code: string): Json {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode} ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const err = (res.json() as Json).error as Json;
  assert.ok(err && typeof err === 'object', res.body);
  assert.equal(err.code, code);
  assert.match(String(err.code), ERROR_CODE);
  assert.equal(typeof err.message, 'string');
  assert.ok(String(err.message).length > 0);
  return err;
}

const bal = (asset: string, available: number | string, held: number | string, paidOut: number | string) => ({ asset, available, held, paidOut });

async function assertAuditOk(c: ReturnType<typeof client>): Promise<void> {
  const a = await c.audit();
  assert.equal(a.ok, true, JSON.stringify(a));
  for (const check of a.checks) assert.equal(check.ok, true, JSON.stringify(check));
}

describe('payouts over HTTP (simulated rail)', () => {
  let h: Harness;
  const c = client(() => h);

  before(async () => {
    h = await open(new InProcessSimRail());
  });
  after(async () => {
    await h?.close();
  });

  test('API.md walk-through: fund 500, withdraw 200 under a key, transfer 100, balances at each step', async () => {
    const user = uid('u');
    const fundingId = uid('f');
    const res = await c.call('POST', '/v1/fundings', { fundingId, userId: user, asset: 'CNY', amount: 500 });
    const funding = c.body(res, 201).funding as Json;
    assert.deepEqual(Object.keys(funding).sort(), ['amount', 'asset', 'createdAt', 'id', 'userId']);
    assert.deepEqual({ ...funding, createdAt: 'x' }, { id: fundingId, userId: user, asset: 'CNY', amount: 500, createdAt: 'x' });
    assert.match(String(funding.createdAt), ISO);
    assert.equal(res.headers['idempotent-replayed'], undefined);
    assert.deepEqual(await c.balances(user), [bal('CNY', 500, 0, 0)]);

    const key = uid('key');
    const w = await c.withdraw(user, 'CNY', 200, key);
    const withdrawal = c.body(w, 201).withdrawal as Json;
    assert.deepEqual(Object.keys(withdrawal).sort(), ['amount', 'asset', 'createdAt', 'id', 'state', 'userId']);
    assert.equal(withdrawal.userId, user);
    assert.equal(withdrawal.asset, 'CNY');
    assert.equal(withdrawal.amount, 200);
    assert.equal(withdrawal.state, 'succeeded');
    assert.match(String(withdrawal.id), /^[A-Za-z0-9_.:-]{1,128}$/);
    assert.equal(w.headers['idempotent-replayed'], undefined);
    assert.deepEqual(await c.balances(user), [bal('CNY', 300, 0, 200)]);

    const t = await c.transfer(uid('o'), user, 'CNY', 100);
    const transfer = c.body(t, 202).transfer as Json;
    assert.deepEqual(Object.keys(transfer).sort(), ['amount', 'asset', 'attempts', 'createdAt', 'destination', 'orderId', 'railRef', 'reason', 'resolution', 'state', 'updatedAt', 'userId']);
    assert.equal(transfer.state, 'received');
    assert.equal(transfer.attempts, 0);
    const done = await c.settled(String(transfer.orderId));
    assert.equal(done.state, 'succeeded');
    assert.equal(done.attempts, 1);
    assert.match(String(done.railRef), /^sim_/);
    assert.equal(done.reason, null);
    assert.equal(done.resolution, null);
    assert.deepEqual(await c.balances(user), [bal('CNY', 200, 0, 300)]);
    await assertAuditOk(c);
  });

  test('fundings: identical repeat is 200 replayed, a different body is 409 FUNDING_EXISTS; the balance moves once', async () => {
    const user = uid('u');
    const fundingId = uid('f');
    const first = await c.fund(fundingId, user, 'CNY', 70);
    const again = await c.call('POST', '/v1/fundings', { fundingId, userId: user, asset: 'CNY', amount: 70 });
    assert.deepEqual(c.body(again, 200), { funding: first });
    assert.equal(again.headers['idempotent-replayed'], 'true');
    for (const [payload, differs] of [
      [{ fundingId, userId: user, asset: 'CNY', amount: 71 }, ['amount']],
      [{ fundingId, userId: uid('other'), asset: 'CNY', amount: 70 }, ['userId']],
      [{ fundingId, userId: user, asset: 'USD', amount: '70' }, ['asset']],
    ] as const) {
      const err = assertError(await c.call('POST', '/v1/fundings', payload), 409, 'FUNDING_EXISTS');
      assert.deepEqual(err.existing, first);
      assert.deepEqual(err.differs, differs);
    }
    // the amount as a string is the same funding
    const asString = await c.call('POST', '/v1/fundings', { fundingId, userId: user, asset: 'CNY', amount: '70' });
    assert.equal(asString.statusCode, 200, asString.body);
    assert.deepEqual(await c.balances(user), [bal('CNY', 70, 0, 0)]);
  });

  test('withdrawals: a repeat replays (debited once), the key with another amount is 422, no key is 400, short funds 409', async () => {
    const user = uid('u');
    await c.fund(uid('f'), user, 'CNY', 500);
    const key = uid('key');
    const first = await c.withdraw(user, 'CNY', 200, key);
    const firstBody = c.body(first, 201);
    const repeat = await c.withdraw(user, 'CNY', 200, key);
    assert.deepEqual(c.body(repeat, 201), firstBody);
    assert.equal(repeat.headers['idempotent-replayed'], 'true');
    assert.deepEqual(await c.balances(user), [bal('CNY', 300, 0, 200)]);

    assertError(await c.withdraw(user, 'CNY', 250, key), 422, 'IDEMPOTENCY_KEY_REUSED');
    assertError(await c.withdraw(user, 'USD', 200, key), 422, 'IDEMPOTENCY_KEY_REUSED');
    assertError(await c.withdraw(user, 'CNY', 200), 400, 'IDEMPOTENCY_KEY_REQUIRED');
    const short = assertError(await c.withdraw(user, 'CNY', 301, uid('key')), 409, 'INSUFFICIENT_FUNDS');
    assert.equal(short.asset, 'CNY');
    assert.deepEqual(await c.balances(user), [bal('CNY', 300, 0, 200)]);

    // exactly the available balance is fine; then nothing is left
    assert.equal((await c.withdraw(user, 'CNY', 300, uid('key'))).statusCode, 201);
    assert.deepEqual(await c.balances(user), [bal('CNY', 0, 0, 500)]);
    await assertAuditOk(c);
  });

  test('withdrawal keys are scoped per user: the same key for another user is another withdrawal', async () => {
    const [a, b] = [uid('u'), uid('u')];
    await c.fund(uid('f'), a, 'CNY', 10);
    await c.fund(uid('f'), b, 'CNY', 10);
    const key = uid('shared');
    const wa = c.body(await c.withdraw(a, 'CNY', 4, key), 201).withdrawal as Json;
    const rb = await c.withdraw(b, 'CNY', 4, key);
    const wb = c.body(rb, 201).withdrawal as Json;
    assert.equal(rb.headers['idempotent-replayed'], undefined);
    assert.notEqual(wa.id, wb.id);
    assert.deepEqual(await c.balances(a), [bal('CNY', 6, 0, 4)]);
    assert.deepEqual(await c.balances(b), [bal('CNY', 6, 0, 4)]);
  });

  test('transfers: an identical repeat is 200 replayed and never executed twice; any field different is 409 ORDER_EXISTS', async () => {
    const user = uid('u');
    await c.fund(uid('f'), user, 'CNY', 1000);
    const orderId = uid('o');
    const executedBefore = h.rail.core.stats().executed;
    c.body(await c.transfer(orderId, user, 'CNY', 100, 'addr-1'), 202);
    const done = await c.settled(orderId);
    assert.equal(done.state, 'succeeded');

    const repeat = await c.transfer(orderId, user, 'CNY', 100, 'addr-1');
    assert.deepEqual(c.body(repeat, 200), { transfer: done });
    assert.equal(repeat.headers['idempotent-replayed'], 'true');
    await h.service.payouts.idle();
    assert.equal(h.rail.core.get(railKey(orderId))?.executions, 1);
    assert.equal(h.rail.core.stats().executed, executedBefore + 1);
    assert.equal((await c.get(orderId)).attempts, 1);

    const err = assertError(await c.transfer(orderId, user, 'CNY', 101, 'addr-1'), 409, 'ORDER_EXISTS');
    assert.deepEqual(err.differs, ['amount']);
    assert.deepEqual(err.existing, done);
    const err2 = assertError(await c.transfer(orderId, uid('other'), 'CNY', 100, 'addr-2'), 409, 'ORDER_EXISTS');
    assert.deepEqual(err2.differs, ['userId', 'destination']);
    // nothing moved for the refused ones, and the rail saw nothing new
    assert.deepEqual(await c.balances(user), [bal('CNY', 900, 0, 100)]);
    assert.equal(h.rail.core.stats().executed, executedBefore + 1);
  });

  test('transfers: 409 INSUFFICIENT_FUNDS and 404 ASSET_NOT_FOUND hold nothing and create no order', async () => {
    const user = uid('u');
    await c.fund(uid('f'), user, 'CNY', 50);
    const o1 = uid('o');
    const err = assertError(await c.transfer(o1, user, 'CNY', 51), 409, 'INSUFFICIENT_FUNDS');
    assert.equal(err.asset, 'CNY');
    assertError(await c.call('GET', `/v1/transfers/${o1}`), 404, 'ORDER_NOT_FOUND');
    const o2 = uid('o');
    assertError(await c.transfer(o2, user, 'NOPE', 1), 404, 'ASSET_NOT_FOUND');
    assertError(await c.call('GET', `/v1/transfers/${o2}`), 404, 'ORDER_NOT_FOUND');
    assert.deepEqual(await c.balances(user), [bal('CNY', 50, 0, 0)]);
    // the id was not burnt by the refusal: it can carry a valid order afterwards
    c.body(await c.transfer(o1, user, 'CNY', 50), 202);
    assert.equal((await c.settled(o1)).state, 'succeeded');
  });

  test('a failed rail answer releases the hold', async () => {
    const user = uid('u');
    await c.fund(uid('f'), user, 'CNY', 80);
    h.rail.core.configure({ failureRate: 1 });
    try {
      const orderId = uid('o');
      c.body(await c.transfer(orderId, user, 'CNY', 30), 202);
      const done = await c.settled(orderId);
      assert.equal(done.state, 'failed');
      assert.equal(done.railRef, null);
      assert.equal(typeof done.reason, 'string');
      assert.deepEqual(await c.balances(user), [bal('CNY', 80, 0, 0)]);
      assertError(await c.resolve(orderId, 'failed'), 409, 'ORDER_NOT_UNKNOWN');
    } finally {
      h.rail.core.configure({ failureRate: 0 });
    }
    await assertAuditOk(c);
  });

  test('GET /v1/transfers lists by state with pages; resolving a non-unknown order is 409 ORDER_NOT_UNKNOWN', async () => {
    const user = uid('u');
    await c.fund(uid('f'), user, 'CNY', 30);
    const prefix = uid('list');
    const ids = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`];
    for (const id of ids) c.body(await c.transfer(id, user, 'CNY', 10), 202);
    for (const id of ids) assert.equal((await c.settled(id)).state, 'succeeded');

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = c.body(await c.call('GET', `/v1/transfers?state=succeeded&limit=2${cursor ? `&cursor=${cursor}` : ''}`), 200) as { transfers: Json[]; nextCursor: string | null };
      assert.ok(page.transfers.length <= 2);
      for (const t of page.transfers) {
        assert.equal(t.state, 'succeeded');
        seen.push(String(t.orderId));
      }
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null && pages < 1000);
    for (const id of ids) assert.ok(seen.includes(id), `${id} missing from the succeeded list`);
    assert.deepEqual(seen, [...seen].sort(), 'ordered by order id');
    assert.equal(new Set(seen).size, seen.length, 'no order twice across pages');

    const unknown = c.body(await c.call('GET', '/v1/transfers?state=unknown'), 200) as { transfers: Json[] };
    assert.deepEqual(unknown.transfers, []);
    const all = c.body(await c.call('GET', '/v1/transfers?limit=1000'), 200) as { transfers: Json[] };
    for (const id of ids) assert.ok(all.transfers.some((t) => t.orderId === id));

    const err = assertError(await c.resolve(ids[0]!, 'succeeded'), 409, 'ORDER_NOT_UNKNOWN');
    assert.equal(err.state, 'succeeded');
    assertError(await c.resolve(uid('missing'), 'failed'), 404, 'ORDER_NOT_FOUND');
    assertError(await c.call('GET', `/v1/transfers/${uid('missing')}`), 404, 'ORDER_NOT_FOUND');
    assert.deepEqual(await c.balances(user), [bal('CNY', 0, 0, 30)]);
  });

  test('amounts past 2^53-1 travel as exact decimal strings, up to 2^63-1', async () => {
    const user = uid('u');
    const funded = await c.fund(uid('f'), user, 'BIG', MAX_I64);
    assert.equal(funded.amount, MAX_I64);
    assert.deepEqual(await c.balances(user), [bal('BIG', MAX_I64, 0, 0)]);

    const w = c.body(await c.withdraw(user, 'BIG', '9223372036854775806', uid('key')), 201).withdrawal as Json;
    assert.equal(w.amount, '9223372036854775806');
    assert.deepEqual(await c.balances(user), [bal('BIG', 1, 0, '9223372036854775806')]);
    // a balance would pass 2^63-1: refused, nothing changed
    const over = uid('f');
    assertError(await c.call('POST', '/v1/fundings', { fundingId: over, userId: user, asset: 'BIG', amount: MAX_I64 }), 400, 'VALIDATION_FAILED');
    assert.deepEqual(await c.balances(user), [bal('BIG', 1, 0, '9223372036854775806')]);

    const other = uid('u');
    await c.fund(uid('f'), other, 'BIG', '9007199254740993');
    const orderId = uid('o');
    const t = c.body(await c.transfer(orderId, other, 'BIG', '9007199254740993'), 202).transfer as Json;
    assert.equal(t.amount, '9007199254740993');
    assert.equal((await c.settled(orderId)).amount, '9007199254740993');
    assert.deepEqual(await c.balances(other), [bal('BIG', 0, 0, '9007199254740993')]);
    // 2^53-1 is still a number, in and out
    const edge = uid('u');
    assert.equal((await c.fund(uid('f'), edge, 'BIG', Number.MAX_SAFE_INTEGER)).amount, Number.MAX_SAFE_INTEGER);
    assert.deepEqual(await c.balances(edge), [bal('BIG', Number.MAX_SAFE_INTEGER, 0, 0)]);
    await assertAuditOk(c);
  });

  test('a user without any account has no balances', async () => {
    assert.deepEqual(await c.balances(uid('nobody')), []);
  });

  test('the payout routes are in /openapi.json under the payouts tag', async () => {
    const res = await c.call('GET', '/openapi.json');
    const doc = c.body(res, 200) as { openapi: string; paths: Record<string, Record<string, { tags?: string[]; summary?: string }>> };
    assert.match(doc.openapi, /^3\./);
    for (const [path, method] of [
      ['/v1/fundings', 'post'],
      ['/v1/accounts/{userId}/balances', 'get'],
      ['/v1/withdrawals', 'post'],
      ['/v1/transfers', 'post'],
      ['/v1/transfers', 'get'],
      ['/v1/transfers/{orderId}', 'get'],
      ['/v1/transfers/{orderId}/resolve', 'post'],
      ['/v1/ledger/audit', 'get'],
    ] as const) {
      const op = doc.paths[path]?.[method];
      assert.ok(op, `${method} ${path} missing from openapi.json`);
      assert.deepEqual(op.tags, ['payouts']);
      assert.ok(op.summary, `${path}: no summary`);
    }
  });

  test('GET /v1/ledger/audit is ok after all of the above', async () => {
    const a = await c.audit();
    assert.equal(a.ok, true);
    const names = new Set(a.checks.map((x) => x.name));
    for (const n of ['entries-sum-to-zero', 'accounts-match-journal', 'conserved', 'no-negative-balance', 'held=open-orders', 'paid-out=withdrawals+succeeded-orders', 'orders-held-once-settled-once']) {
      assert.ok(names.has(n), `audit has no ${n} check`);
    }
    for (const x of a.checks) assert.equal(x.ok, true, JSON.stringify(x));
  });
});

describe('payouts over HTTP: a rail that never answers in time (orders become unknown)', () => {
  let h: Harness;
  const c = client(() => h);

  before(async () => {
    h = await open(new InProcessSimRail({ timeoutRate: 1, timeoutMs: 100 }), { railTimeoutMs: 100 });
  });
  after(async () => {
    await h?.close();
  });

  test('unknown keeps the hold, no timer releases it; resolve succeeded posts it once; a repeat replays; the other outcome is 409', async () => {
    const user = uid('u');
    await c.fund(uid('f'), user, 'CNY', 500);
    const orderId = uid('o');
    c.body(await c.transfer(orderId, user, 'CNY', 120), 202);
    const t = await c.settled(orderId);
    assert.equal(t.state, 'unknown');
    assert.equal(t.attempts, 1);
    assert.equal(typeof t.reason, 'string');
    assert.ok(String(t.reason).length > 0);
    assert.deepEqual(await c.balances(user), [bal('CNY', 380, 120, 0)]);

    // listed among those waiting for a person
    const waiting = c.body(await c.call('GET', '/v1/transfers?state=unknown'), 200) as { transfers: Json[] };
    assert.ok(waiting.transfers.some((x) => x.orderId === orderId));
    // a sweep does not touch it (never released or re-sent by a timer)
    await h.service.payouts.recover();
    const still = await c.get(orderId);
    assert.equal(still.state, 'unknown');
    assert.equal(still.attempts, 1);
    assert.deepEqual(await c.balances(user), [bal('CNY', 380, 120, 0)]);
    // the identical order again answers the unknown order, without a second send
    const repeat = await c.transfer(orderId, user, 'CNY', 120);
    assert.equal((c.body(repeat, 200).transfer as Json).state, 'unknown');
    assert.equal(repeat.headers['idempotent-replayed'], 'true');
    assert.equal(h.rail.core.stats().duplicatesRefused, 0);
    await assertAuditOk(c);

    const res = await c.resolve(orderId, 'succeeded', 'the bank confirmed the payment');
    const resolved = c.body(res, 200).transfer as Json;
    assert.equal(res.headers['idempotent-replayed'], undefined);
    assert.equal(resolved.state, 'succeeded');
    const resolution = resolved.resolution as Json;
    assert.equal(resolution.outcome, 'succeeded');
    assert.equal(resolution.note, 'the bank confirmed the payment');
    assert.match(String(resolution.resolvedAt), ISO);
    assert.deepEqual(await c.get(orderId), resolved);
    const after = await c.balances(user);
    assert.deepEqual(after, [bal('CNY', 380, 0, 120)]);
    const auditAfter = await c.audit();
    assert.equal(auditAfter.ok, true);

    const again = await c.resolve(orderId, 'succeeded', 'a second click');
    assert.equal(again.headers['idempotent-replayed'], 'true');
    const againT = c.body(again, 200).transfer as Json;
    assert.equal(againT.state, 'succeeded');
    assert.equal((againT.resolution as Json).note, 'the bank confirmed the payment');
    assert.deepEqual(await c.balances(user), after);
    assert.deepEqual(await c.audit(), auditAfter);

    const other = assertError(await c.resolve(orderId, 'failed'), 409, 'ORDER_NOT_UNKNOWN');
    assert.equal(other.state, 'succeeded');
    assert.deepEqual(await c.balances(user), after);
    assert.deepEqual(await c.audit(), auditAfter);
  });

  test('resolve failed releases the hold to available; the order is then final', async () => {
    const user = uid('u');
    await c.fund(uid('f'), user, 'CNY', 40);
    const orderId = uid('o');
    c.body(await c.transfer(orderId, user, 'CNY', 40), 202);
    assert.equal((await c.settled(orderId)).state, 'unknown');
    assert.deepEqual(await c.balances(user), [bal('CNY', 0, 40, 0)]);
    // held funds are not available: a withdrawal meanwhile is short
    assertError(await c.withdraw(user, 'CNY', 1, uid('key')), 409, 'INSUFFICIENT_FUNDS');
    const t = c.body(await c.resolve(orderId, 'failed', 'the bank has no record of it'), 200).transfer as Json;
    assert.equal(t.state, 'failed');
    assert.deepEqual(await c.balances(user), [bal('CNY', 40, 0, 0)]);
    assertError(await c.resolve(orderId, 'succeeded'), 409, 'ORDER_NOT_UNKNOWN');
    assert.deepEqual(await c.balances(user), [bal('CNY', 40, 0, 0)]);
    await assertAuditOk(c);
  });
});
