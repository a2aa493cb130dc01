// The HTTP API v1 of docs API.md, end to end through app.inject(): every endpoint's success and
// error paths. One app (in-memory PGlite) for the file; tests are isolated by campaign id.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/http/app.ts';
import { fingerprint } from '../../src/core/idempotency.ts';
import { ERROR_CODE, makeApp, TestClock, uid, type TestApp } from '../helpers/app.ts';

type Json = Record<string, unknown>;
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'HEAD' | 'OPTIONS';

const clock = new TestClock();
let t: TestApp;

before(async () => {
  t = await makeApp({ clock });
});
after(async () => {
  await t?.close();
});

async function call(method: Method, url: string, opts: { payload?: unknown; headers?: Record<string, string>; auth?: boolean } = {}): Promise<LightMyRequestResponse> {
  return t.app.inject({
    method,
    url,
    headers: { ...(opts.auth === false ? {} : t.auth), ...opts.headers },
    ...(opts.payload !== undefined ? { payload: opts.payload as Json } : {}),
  });
}

function json(res: LightMyRequestResponse): Json {
  return res.json() as Json;
}

function assertError(res: LightMyRequestResponse, status: number, code: string): Json {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode} ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = json(res);
  const err = body.error as Json;
  assert.ok(err && typeof err === 'object', `error body: ${res.body}`);
  assert.equal(err.code, code);
  assert.match(String(err.code), ERROR_CODE);
  assert.equal(typeof err.message, 'string');
  assert.ok((err.message as string).length > 0);
  return err;
}

async function createCampaign(body: Json): Promise<Json> {
  const res = await call('POST', '/v1/campaigns', { payload: body });
  assert.equal(res.statusCode, 201, res.body);
  return json(res);
}

async function claim(campaignId: string, userId: string, key?: string): Promise<LightMyRequestResponse> {
  return call('POST', `/v1/campaigns/${campaignId}/claims`, {
    payload: { userId },
    ...(key !== undefined ? { headers: { 'idempotency-key': key } } : {}),
  });
}

async function getCampaign(id: string): Promise<Json> {
  const res = await call('GET', `/v1/campaigns/${id}`);
  assert.equal(res.statusCode, 200, res.body);
  return json(res);
}

async function audit(id: string): Promise<{ ok: boolean; checks: Json[] }> {
  const res = await call('GET', `/v1/campaigns/${id}/audit`);
  assert.equal(res.statusCode, 200, res.body);
  return json(res) as { ok: boolean; checks: Json[] };
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('POST /v1/campaigns', () => {
  test('201 with the API.md shape (remaining, issued, createdAt)', async () => {
    const id = uid();
    const before = Date.now();
    const res = await call('POST', '/v1/campaigns', {
      payload: { id, kind: 'coupon', name: '10 off', stock: 1000, perUserLimit: 2, perUserDailyLimit: 1, startsAt: '2020-01-01T00:00:00Z', endsAt: '2099-01-01T00:00:00.000+01:00', strategy: 'conditional' },
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const c = json(res);
    assert.deepEqual(Object.keys(c).sort(), ['createdAt', 'endsAt', 'id', 'issued', 'kind', 'name', 'paused', 'perUserDailyLimit', 'perUserLimit', 'remaining', 'startsAt', 'stock', 'strategy'].sort());
    assert.equal(c.id, id);
    assert.equal(c.kind, 'coupon');
    assert.equal(c.name, '10 off');
    assert.equal(c.strategy, 'conditional');
    assert.equal(c.stock, 1000);
    assert.equal(c.issued, 0);
    assert.equal(c.remaining, 1000);
    assert.equal(c.perUserLimit, 2);
    assert.equal(c.perUserDailyLimit, 1);
    assert.equal(c.startsAt, '2020-01-01T00:00:00.000Z');
    assert.equal(c.endsAt, '2098-12-31T23:00:00.000Z');
    assert.match(String(c.createdAt), ISO);
    assert.ok(Date.parse(String(c.createdAt)) >= before - 1000);
    // and GET returns the same view
    assert.deepEqual(await getCampaign(id), c);
  });

  test('defaults: kind coupon, perUserLimit 1, no daily limit, no window, default strategy', async () => {
    const c = await createCampaign({ id: uid(), name: 'defaults', stock: 3 });
    assert.equal(c.kind, 'coupon');
    assert.equal(c.perUserLimit, 1);
    assert.equal(c.perUserDailyLimit, null);
    assert.equal(c.startsAt, null);
    assert.equal(c.endsAt, null);
    assert.equal(c.strategy, 'conditional');
  });

  test('ids may use every allowed character class (A-Z a-z 0-9 _ . : -) in paths', async () => {
    const id = `A.b:c_d-9.${uid()}`;
    await createCampaign({ id, name: 'chars', stock: 2 });
    assert.equal((await getCampaign(id)).id, id);
    const res = await claim(id, 'U.s:e_r-1');
    assert.equal(res.statusCode, 201, res.body);
    const claimId = String((json(res).claim as Json).id);
    assert.equal((await call('GET', `/v1/campaigns/${id}/claims?userId=U.s:e_r-1`)).statusCode, 200);
    assert.equal((await call('GET', `/v1/claims/${claimId}`)).statusCode, 200);
    assert.equal((await audit(id)).ok, true);
  });

  test('stock 0 and stock 2^31-1 are accepted', async () => {
    assert.equal((await createCampaign({ id: uid(), name: 'zero', stock: 0 })).remaining, 0);
    assert.equal((await createCampaign({ id: uid(), name: 'max', stock: 2 ** 31 - 1 })).stock, 2 ** 31 - 1);
  });

  test('generates an id when absent', async () => {
    const a = await createCampaign({ name: 'gen', stock: 1 });
    const b = await createCampaign({ name: 'gen', stock: 1 });
    assert.match(String(a.id), /^[A-Za-z0-9_.:-]{1,128}$/);
    assert.notEqual(a.id, b.id);
    assert.equal((await getCampaign(String(a.id))).name, 'gen');
  });

  test('409 CAMPAIGN_EXISTS when the id is taken, and the first one is unchanged', async () => {
    const id = uid();
    const first = await createCampaign({ id, name: 'first', stock: 5 });
    const res = await call('POST', '/v1/campaigns', { payload: { id, name: 'second', stock: 9 } });
    assertError(res, 409, 'CAMPAIGN_EXISTS');
    assert.deepEqual(await getCampaign(id), first);
  });

  test('201 for a lottery campaign: prizes, miss weight, fallback and the seed commitment in the view', async () => {
    const id = uid();
    const res = await call('POST', '/v1/campaigns', {
      payload: { id, kind: 'lottery', name: 'draw', prizes: [{ id: 'p1', name: 'Phone', stock: 3, weight: 1 }, { id: 'c', name: 'Sticker', stock: 10, weight: 0 }], missWeight: 30, fallback: 'c' },
    });
    assert.equal(res.statusCode, 201, res.body);
    const view = res.json();
    assert.equal(view.kind, 'lottery');
    assert.equal(view.stock, 13);
    assert.equal(view.remaining, 13);
    assert.deepEqual(view.prizes.map((p: { id: string; remaining: number }) => [p.id, p.remaining]), [['c', 10], ['p1', 3]]);
    assert.equal(view.missWeight, 30);
    assert.equal(view.fallback, 'c');
    assert.match(view.seedCommitment, /^[0-9a-f]{64}$/);
    assert.equal((await call('GET', `/v1/campaigns/${id}`)).json().seedCommitment, view.seedCommitment);
    assertError(await call('POST', '/v1/campaigns', { payload: { id: uid(), name: 'coupon with prizes', stock: 1, prizes: [] } }), 400, 'VALIDATION_FAILED');
  });

  test('400 when endsAt <= startsAt', async () => {
    for (const [startsAt, endsAt] of [['2030-01-02T00:00:00Z', '2030-01-01T00:00:00Z'], ['2030-01-01T00:00:00Z', '2030-01-01T00:00:00Z'], ['2030-01-01T01:00:00+01:00', '2030-01-01T00:00:00Z']]) {
      const id = uid();
      assertError(await call('POST', '/v1/campaigns', { payload: { id, name: 'w', stock: 1, startsAt, endsAt } }), 400, 'VALIDATION_FAILED');
      assertError(await call('GET', `/v1/campaigns/${id}`), 404, 'CAMPAIGN_NOT_FOUND');
    }
  });

  test('400 when a date is not an ISO-8601 instant with a zone', async () => {
    for (const startsAt of ['tomorrow', '2030-01-01', '2030-01-01T00:00:00', '2030-13-01T00:00:00Z', '2030-01-01T00:00:00+99:00', '']) {
      assertError(await call('POST', '/v1/campaigns', { payload: { id: uid(), name: 'w', stock: 1, startsAt } }), 400, 'VALIDATION_FAILED');
    }
  });

  test('400 for a calendar date that does not exist (2026-02-30)', async () => {
    assertError(await call('POST', '/v1/campaigns', { payload: { id: uid(), name: 'w', stock: 1, startsAt: '2026-02-30T00:00:00Z' } }), 400, 'VALIDATION_FAILED');
  });

  test('400 for an unknown strategy', async () => {
    const id = uid();
    const err = assertError(await call('POST', '/v1/campaigns', { payload: { id, name: 's', stock: 1, strategy: 'nope' } }), 400, 'VALIDATION_FAILED');
    assert.match(String(err.message), /nope/);
    assertError(await call('GET', `/v1/campaigns/${id}`), 404, 'CAMPAIGN_NOT_FOUND');
  });

  test('the pessimistic strategy can be chosen per campaign', async () => {
    const c = await createCampaign({ id: uid(), name: 'p', stock: 1, strategy: 'pessimistic' });
    assert.equal(c.strategy, 'pessimistic');
    assert.equal((await claim(String(c.id), 'u1')).statusCode, 201);
    assertError(await claim(String(c.id), 'u2'), 409, 'SOLD_OUT');
  });
});

describe('GET /v1/campaigns/:id and GET /v1/campaigns', () => {
  test('200 with issued/remaining that follow the claims', async () => {
    const id = uid();
    await createCampaign({ id, name: 'g', stock: 3 });
    assert.equal((await claim(id, 'a')).statusCode, 201);
    assert.equal((await claim(id, 'b')).statusCode, 201);
    const c = await getCampaign(id);
    assert.equal(c.issued, 2);
    assert.equal(c.remaining, 1);
    assert.equal(c.stock, 3);
  });

  test('404 CAMPAIGN_NOT_FOUND for an unknown id', async () => {
    const err = assertError(await call('GET', `/v1/campaigns/${uid('missing')}`), 404, 'CAMPAIGN_NOT_FOUND');
    assert.equal(typeof err.message, 'string');
  });

  test('a valid id of the full 128 characters can be created and then read and claimed', async () => {
    const id = `${uid()}-${'x'.repeat(128)}`.slice(0, 128);
    await createCampaign({ id, name: 'long', stock: 1 });
    assert.equal((await call('GET', `/v1/campaigns/${id}`)).statusCode, 200);
    assert.equal((await claim(id, 'u'.repeat(128))).statusCode, 201);
  });

  test('pagination with limit and cursor walks every page without repeats, in id order', async () => {
    const prefix = uid('page');
    const mine = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((s) => `${prefix}-${s}`);
    for (const id of [...mine].reverse()) await createCampaign({ id, name: id, stock: 1 });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await call('GET', `/v1/campaigns?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      assert.equal(res.statusCode, 200, res.body);
      const body = json(res) as { campaigns: Json[]; nextCursor: string | null };
      assert.ok(Array.isArray(body.campaigns));
      assert.ok(body.campaigns.length <= 3);
      for (const c of body.campaigns) {
        assert.equal(typeof c.remaining, 'number');
        seen.push(String(c.id));
      }
      cursor = body.nextCursor;
      pages++;
      assert.ok(pages < 1000, 'pagination does not end');
    } while (cursor !== null);
    assert.equal(new Set(seen).size, seen.length, 'a campaign appeared on two pages');
    assert.deepEqual([...seen].sort(), seen, 'pages are in id order');
    for (const id of mine) assert.ok(seen.includes(id), `${id} missing from the pages`);
    assert.ok(pages >= 3);
    // the default page (no limit) holds up to 100 and has the same shape
    const first = json(await call('GET', '/v1/campaigns')) as { campaigns: Json[]; nextCursor: string | null };
    assert.ok(first.campaigns.length >= 1 && first.campaigns.length <= 100);
    assert.ok('nextCursor' in first);
  });

  test('limit=1000 is accepted', async () => {
    assert.equal((await call('GET', '/v1/campaigns?limit=1000')).statusCode, 200);
  });
});

describe('POST /v1/campaigns/:id/claims', () => {
  test('201 with the claim shape', async () => {
    const id = uid();
    await createCampaign({ id, name: 'c', stock: 5 });
    const res = await claim(id, 'u-42');
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['idempotent-replayed'], undefined);
    const body = json(res);
    assert.deepEqual(Object.keys(body), ['claim']);
    const c = body.claim as Json;
    assert.deepEqual(Object.keys(c).sort(), ['campaignId', 'createdAt', 'id', 'prizeId', 'userId']);
    assert.match(String(c.id), /^[A-Za-z0-9_.:-]{1,128}$/);
    assert.equal(c.campaignId, id);
    assert.equal(c.userId, 'u-42');
    assert.equal(c.prizeId, null);
    assert.match(String(c.createdAt), ISO);
  });

  test('concurrent claims never oversell: 30 users on stock 7', async () => {
    const id = uid();
    await createCampaign({ id, name: 'race', stock: 7 });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => claim(id, `r${i}`)));
    const issued = results.filter((r) => r.statusCode === 201).length;
    assert.equal(issued, 7);
    for (const r of results.filter((x) => x.statusCode !== 201)) assertError(r, 409, 'SOLD_OUT');
    assert.equal((await getCampaign(id)).issued, 7);
    assert.equal((await audit(id)).ok, true);
  });

  test('concurrent repeats of one Idempotency-Key issue once: the others replay it or are told it is in progress', async () => {
    const id = uid();
    await createCampaign({ id, name: 'race-key', stock: 10, perUserLimit: 10 });
    const results = await Promise.all(Array.from({ length: 10 }, () => claim(id, 'u', 'race-key')));
    const created = results.filter((r) => r.statusCode === 201);
    assert.ok(created.length >= 1);
    assert.equal(new Set(created.map((r) => (json(r).claim as Json).id)).size, 1, 'two claims under one key');
    for (const r of results.filter((x) => x.statusCode !== 201)) assertError(r, 409, 'IDEMPOTENCY_IN_PROGRESS');
    assert.equal((await getCampaign(id)).issued, 1);
    assert.equal((await audit(id)).ok, true);
  });

  test('404 CAMPAIGN_NOT_FOUND for an unknown campaign', async () => {
    assertError(await claim(uid('missing'), 'u1'), 404, 'CAMPAIGN_NOT_FOUND');
    assertError(await claim(uid('missing'), 'u1', 'some-key'), 404, 'CAMPAIGN_NOT_FOUND');
  });

  test('409 SOLD_OUT when stock is gone; it does not count against the refused user', async () => {
    const id = uid();
    await createCampaign({ id, name: 'so', stock: 2, perUserLimit: 1 });
    assert.equal((await claim(id, 'a')).statusCode, 201);
    assert.equal((await claim(id, 'b')).statusCode, 201);
    // c is refused twice: both the first (through the database) and the cached refusal
    assertError(await claim(id, 'c'), 409, 'SOLD_OUT');
    assertError(await claim(id, 'c'), 409, 'SOLD_OUT');
    const c = await getCampaign(id);
    assert.equal(c.issued, 2);
    assert.equal(c.remaining, 0);
    const mine = json(await call('GET', `/v1/campaigns/${id}/claims?userId=c`)) as { claims: Json[] };
    assert.deepEqual(mine.claims, []);
    // the per-user counters only count the two issued claims: c's counter was not bumped
    const report = await audit(id);
    assert.equal(report.ok, true, JSON.stringify(report));
    const counters = report.checks.find((x) => x.name === 'user-counters=claims');
    assert.ok(counters);
    assert.equal(counters.countersSum, 2);
    assert.equal(counters.claims, 2);
  });

  test('409 SOLD_OUT on a campaign with stock 0', async () => {
    const id = uid();
    await createCampaign({ id, name: 'zero', stock: 0 });
    assertError(await claim(id, 'a'), 409, 'SOLD_OUT');
    assert.equal((await audit(id)).ok, true);
  });

  test('409 USER_LIMIT_REACHED with perUserLimit 1', async () => {
    const id = uid();
    await createCampaign({ id, name: 'l1', stock: 10, perUserLimit: 1 });
    assert.equal((await claim(id, 'u')).statusCode, 201);
    assertError(await claim(id, 'u'), 409, 'USER_LIMIT_REACHED');
    assert.equal((await claim(id, 'v')).statusCode, 201, 'another user is not limited');
    assert.equal((await getCampaign(id)).issued, 2);
  });

  test('409 USER_LIMIT_REACHED with perUserLimit 3 after exactly 3 claims', async () => {
    const id = uid();
    await createCampaign({ id, name: 'l3', stock: 10, perUserLimit: 3 });
    for (let i = 0; i < 3; i++) assert.equal((await claim(id, 'u')).statusCode, 201, `claim ${i + 1}`);
    assertError(await claim(id, 'u'), 409, 'USER_LIMIT_REACHED');
    assertError(await claim(id, 'u'), 409, 'USER_LIMIT_REACHED');
    const c = await getCampaign(id);
    assert.equal(c.issued, 3);
    const mine = json(await call('GET', `/v1/campaigns/${id}/claims?userId=u`)) as { claims: Json[] };
    assert.equal(mine.claims.length, 3);
    assert.equal((await audit(id)).ok, true);
  });

  test('perUserDailyLimit resets on the next UTC day (injected clock)', async () => {
    const id = uid();
    try {
      clock.set('2031-03-10T23:59:58.000Z');
      await createCampaign({ id, name: 'daily', stock: 10, perUserLimit: 3, perUserDailyLimit: 1 });
      assert.equal((await claim(id, 'u')).statusCode, 201);
      clock.set('2031-03-10T23:59:59.999Z');
      assertError(await claim(id, 'u'), 409, 'USER_LIMIT_REACHED');
      clock.set('2031-03-11T00:00:00.000Z');
      const next = await claim(id, 'u');
      assert.equal(next.statusCode, 201, next.body);
      assert.equal(((json(next).claim as Json).createdAt), '2031-03-11T00:00:00.000Z');
      assertError(await claim(id, 'u'), 409, 'USER_LIMIT_REACHED');
      clock.set('2031-03-12T12:00:00.000Z');
      assert.equal((await claim(id, 'u')).statusCode, 201);
      // the lifetime limit (3) still holds on a fresh day
      clock.set('2031-03-13T12:00:00.000Z');
      assertError(await claim(id, 'u'), 409, 'USER_LIMIT_REACHED');
      const report = await audit(id);
      assert.equal(report.ok, true, JSON.stringify(report));
    } finally {
      clock.set(null);
    }
  });

  test('409 CAMPAIGN_NOT_ACTIVE before startsAt and from endsAt on (injected clock)', async () => {
    const id = uid();
    try {
      await createCampaign({ id, name: 'window', stock: 10, perUserLimit: 10, startsAt: '2032-05-01T10:00:00Z', endsAt: '2032-05-01T12:00:00Z' });
      assertError(await claim(id, 'u'), 409, 'CAMPAIGN_NOT_ACTIVE'); // the real clock: long before
      clock.set('2032-05-01T09:59:59.999Z');
      assertError(await claim(id, 'u'), 409, 'CAMPAIGN_NOT_ACTIVE');
      clock.set('2032-05-01T10:00:00.000Z'); // startsAt is inclusive
      assert.equal((await claim(id, 'u')).statusCode, 201);
      clock.set('2032-05-01T11:59:59.999Z');
      assert.equal((await claim(id, 'u')).statusCode, 201);
      clock.set('2032-05-01T12:00:00.000Z'); // endsAt is exclusive
      assertError(await claim(id, 'u'), 409, 'CAMPAIGN_NOT_ACTIVE');
      clock.set('2040-01-01T00:00:00.000Z');
      assertError(await claim(id, 'v'), 409, 'CAMPAIGN_NOT_ACTIVE');
      assert.equal((await getCampaign(id)).issued, 2);
    } finally {
      clock.set(null);
    }
  });
});

describe('Idempotency-Key', () => {
  test('a repeat replays the same status and body with Idempotent-Replayed: true, issuing nothing more', async () => {
    const id = uid();
    await createCampaign({ id, name: 'idem', stock: 10, perUserLimit: 5 });
    const first = await claim(id, 'u', 'key-1');
    assert.equal(first.statusCode, 201);
    assert.equal(first.headers['idempotent-replayed'], undefined);
    for (let i = 0; i < 3; i++) {
      const again = await claim(id, 'u', 'key-1');
      assert.equal(again.statusCode, 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.deepEqual(json(again), json(first));
    }
    assert.equal((await getCampaign(id)).issued, 1);
    // a new key is a new claim
    const second = await claim(id, 'u', 'key-2');
    assert.equal(second.statusCode, 201);
    assert.notEqual((json(second).claim as Json).id, (json(first).claim as Json).id);
    assert.equal((await getCampaign(id)).issued, 2);
    assert.equal((await audit(id)).ok, true);
  });

  test('errors are replayed too: SOLD_OUT', async () => {
    const id = uid();
    await createCampaign({ id, name: 'idem-err', stock: 1 });
    assert.equal((await claim(id, 'a', 'ka')).statusCode, 201);
    const first = await claim(id, 'b', 'kb');
    assertError(first, 409, 'SOLD_OUT');
    assert.equal(first.headers['idempotent-replayed'], undefined);
    const again = await claim(id, 'b', 'kb');
    assertError(again, 409, 'SOLD_OUT');
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.deepEqual(json(again), json(first));
  });

  test('errors are replayed, not recomputed: CAMPAIGN_NOT_ACTIVE stays the answer after the window opens', async () => {
    const id = uid();
    try {
      await createCampaign({ id, name: 'idem-window', stock: 5, startsAt: '2033-01-01T00:00:00Z' });
      clock.set('2032-12-31T23:59:00Z');
      const first = await claim(id, 'u', 'early');
      assertError(first, 409, 'CAMPAIGN_NOT_ACTIVE');
      clock.set('2033-01-01T00:00:01Z');
      const again = await claim(id, 'u', 'early');
      assertError(again, 409, 'CAMPAIGN_NOT_ACTIVE');
      assert.equal(again.headers['idempotent-replayed'], 'true');
      // without the key (or with a new one) the claim now succeeds
      assert.equal((await claim(id, 'u', 'later')).statusCode, 201);
    } finally {
      clock.set(null);
    }
  });

  test('USER_LIMIT_REACHED is replayed', async () => {
    const id = uid();
    await createCampaign({ id, name: 'idem-limit', stock: 5 });
    assert.equal((await claim(id, 'u')).statusCode, 201);
    assertError(await claim(id, 'u', 'lim'), 409, 'USER_LIMIT_REACHED');
    const again = await claim(id, 'u', 'lim');
    assertError(again, 409, 'USER_LIMIT_REACHED');
    assert.equal(again.headers['idempotent-replayed'], 'true');
  });

  test('the same key with another userId is 422 IDEMPOTENCY_KEY_REUSED and issues nothing', async () => {
    const id = uid();
    await createCampaign({ id, name: 'idem-reuse', stock: 5 });
    const first = await claim(id, 'u1', 'shared');
    assert.equal(first.statusCode, 201);
    const other = await claim(id, 'u2', 'shared');
    assertError(other, 422, 'IDEMPOTENCY_KEY_REUSED');
    assert.equal((await getCampaign(id)).issued, 1);
    const none = json(await call('GET', `/v1/campaigns/${id}/claims?userId=u2`)) as { claims: Json[] };
    assert.deepEqual(none.claims, []);
    // the original payload still replays
    const again = await claim(id, 'u1', 'shared');
    assert.equal(again.statusCode, 201);
    assert.deepEqual(json(again), json(first));
  });

  test('keys are scoped per campaign', async () => {
    const a = uid();
    const b = uid();
    await createCampaign({ id: a, name: 'scope-a', stock: 5 });
    await createCampaign({ id: b, name: 'scope-b', stock: 5 });
    const ra = await claim(a, 'u', 'same-key');
    const rb = await claim(b, 'u', 'same-key');
    assert.equal(ra.statusCode, 201);
    assert.equal(rb.statusCode, 201);
    assert.equal(rb.headers['idempotent-replayed'], undefined);
    assert.equal((json(rb).claim as Json).campaignId, b);
    assert.notEqual((json(ra).claim as Json).id, (json(rb).claim as Json).id);
    // another user on campaign b with the key used on a: b's own binding decides (u), so 422
    assertError(await claim(b, 'v', 'same-key'), 422, 'IDEMPOTENCY_KEY_REUSED');
    assert.equal((await getCampaign(a)).issued, 1);
    assert.equal((await getCampaign(b)).issued, 1);
  });

  test('409 IDEMPOTENCY_IN_PROGRESS while a first request holds the key', async () => {
    const id = uid();
    await createCampaign({ id, name: 'idem-busy', stock: 5 });
    const fp = fingerprint('claim', { campaignId: id, userId: 'u' });
    const begun = await t.service.keys.begin(id, 'busy-key', fp, 'req_simulated', clock.now(), 60_000);
    assert.equal(begun.state, 'owner');
    const res = await claim(id, 'u', 'busy-key');
    assertError(res, 409, 'IDEMPOTENCY_IN_PROGRESS');
    assert.equal(res.headers['idempotent-replayed'], undefined);
    // a different payload under the running key is still a mismatch
    assertError(await claim(id, 'other', 'busy-key'), 422, 'IDEMPOTENCY_KEY_REUSED');
    assert.equal((await getCampaign(id)).issued, 0);
    // once the first request finishes, its outcome is replayed
    const stored = { status: 409, body: { error: { code: 'SOLD_OUT', message: 'No stock is left.' } } };
    await t.service.keys.complete(id, 'busy-key', 'req_simulated', stored, null);
    const replay = await claim(id, 'u', 'busy-key');
    assert.equal(replay.statusCode, 409);
    assert.equal(replay.headers['idempotent-replayed'], 'true');
    assert.deepEqual(json(replay), stored.body);
  });
  test('after the first request\'s lease runs out, a retry takes the key over and decides; the first loses its lease', async () => {
    const id = uid();
    try {
      clock.set('2034-06-01T00:00:00.000Z');
      await createCampaign({ id, name: 'idem-lease', stock: 5 });
      const fp = fingerprint('claim', { campaignId: id, userId: 'u' });
      assert.equal((await t.service.keys.begin(id, 'lease-key', fp, 'req_crashed', clock.now(), 1_000)).state, 'owner');
      clock.set('2034-06-01T00:00:00.999Z');
      assertError(await claim(id, 'u', 'lease-key'), 409, 'IDEMPOTENCY_IN_PROGRESS');
      clock.set('2034-06-01T00:00:01.000Z');
      const retry = await claim(id, 'u', 'lease-key');
      assert.equal(retry.statusCode, 201, retry.body);
      assert.equal(retry.headers['idempotent-replayed'], undefined);
      await assert.rejects(
        t.service.keys.complete(id, 'lease-key', 'req_crashed', { status: 409, body: {} }, null),
        (err: { code?: string }) => err.code === 'IDEMPOTENCY_IN_PROGRESS',
      );
      const replay = await claim(id, 'u', 'lease-key');
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.deepEqual(json(replay), json(retry));
      assert.equal((await getCampaign(id)).issued, 1);
      assert.equal((await audit(id)).ok, true);
    } finally {
      clock.set(null);
    }
  });
});

describe('claims: list and get', () => {
  test('GET /v1/campaigns/:id/claims?userId= lists only that user\'s claims', async () => {
    const id = uid();
    await createCampaign({ id, name: 'list', stock: 10, perUserLimit: 3 });
    const mine: string[] = [];
    for (const u of ['a', 'b', 'a', 'c', 'a', 'b']) {
      const res = await claim(id, u);
      assert.equal(res.statusCode, 201);
      if (u === 'a') mine.push(String((json(res).claim as Json).id));
    }
    const res = await call('GET', `/v1/campaigns/${id}/claims?userId=a`);
    assert.equal(res.statusCode, 200);
    const body = json(res) as { claims: Json[]; nextCursor: string | null };
    assert.equal(body.claims.length, 3);
    for (const c of body.claims) {
      assert.equal(c.userId, 'a');
      assert.equal(c.campaignId, id);
    }
    assert.deepEqual(body.claims.map((c) => c.id).sort(), [...mine].sort());
    // without userId: all six; a user with none: empty
    assert.equal((json(await call('GET', `/v1/campaigns/${id}/claims`)) as { claims: Json[] }).claims.length, 6);
    assert.deepEqual((json(await call('GET', `/v1/campaigns/${id}/claims?userId=nobody`)) as { claims: Json[] }).claims, []);
    // paging through the claims with limit=2 gives all six once
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = json(await call('GET', `/v1/campaigns/${id}/claims?limit=2${cursor ? `&cursor=${cursor}` : ''}`)) as { claims: Json[]; nextCursor: string | null };
      seen.push(...page.claims.map((c) => String(c.id)));
      cursor = page.nextCursor;
    } while (cursor !== null);
    assert.equal(seen.length, 6);
    assert.equal(new Set(seen).size, 6);
  });

  test('GET /v1/campaigns/:id/claims of an unknown campaign is 404 CAMPAIGN_NOT_FOUND', async () => {
    assertError(await call('GET', `/v1/campaigns/${uid('missing')}/claims?userId=a`), 404, 'CAMPAIGN_NOT_FOUND');
  });

  test('GET /v1/claims/:claimId: 200 with the claim, 404 CLAIM_NOT_FOUND otherwise', async () => {
    const id = uid();
    await createCampaign({ id, name: 'get', stock: 1 });
    const created = json(await claim(id, 'u')).claim as Json;
    const res = await call('GET', `/v1/claims/${String(created.id)}`);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(json(res), { claim: created });
    assertError(await call('GET', '/v1/claims/clm_does_not_exist'), 404, 'CLAIM_NOT_FOUND');
  });
});

describe('GET /v1/campaigns/:id/audit', () => {
  test('ok true with every check present', async () => {
    const id = uid();
    await createCampaign({ id, name: 'audit', stock: 3, perUserLimit: 2, perUserDailyLimit: 2 });
    await claim(id, 'a', 'k1');
    await claim(id, 'a');
    await claim(id, 'b');
    await claim(id, 'c'); // sold out
    await claim(id, 'a', 'k1'); // replay
    const report = await audit(id);
    assert.equal(report.ok, true, JSON.stringify(report));
    const names = report.checks.map((c) => c.name);
    for (const n of ['issued<=stock', 'issued=claims', 'per-user-limit', 'per-user-daily-limit', 'user-counters=claims', 'idempotency-keys<->claims']) {
      assert.ok(names.includes(n), `check ${n} missing: ${names.join(', ')}`);
    }
    for (const c of report.checks) assert.equal(c.ok, true, JSON.stringify(c));
    const stock = report.checks.find((c) => c.name === 'issued<=stock');
    assert.equal(stock?.issued, 3);
    assert.equal(stock?.stock, 3);
  });

  test('404 CAMPAIGN_NOT_FOUND for an unknown campaign', async () => {
    assertError(await call('GET', `/v1/campaigns/${uid('missing')}/audit`), 404, 'CAMPAIGN_NOT_FOUND');
  });
});

describe('operations endpoints', () => {
  test('/healthz and /readyz answer 200 without a token', async () => {
    const h = await call('GET', '/healthz', { auth: false });
    assert.equal(h.statusCode, 200);
    assert.deepEqual(json(h), { status: 'ok' });
    const r = await call('GET', '/readyz', { auth: false });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(json(r).status, 'ready');
  });

  test('/metrics is Prometheus text with allot_claims_total by result and strategy', async () => {
    const id = uid();
    await createCampaign({ id, name: 'metrics', stock: 1 });
    await claim(id, 'a');
    await claim(id, 'b'); // sold_out
    await claim(id, 'a'); // sold_out (cached)
    const res = await call('GET', '/metrics', { auth: false });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.match(res.body, /^# HELP allot_claims_total /m);
    assert.match(res.body, /^# TYPE allot_claims_total counter$/m);
    assert.match(res.body, /^allot_claims_total\{result="issued",strategy="conditional"\} [1-9]\d*$/m);
    assert.match(res.body, /^allot_claims_total\{result="sold_out",strategy="conditional"\} [1-9]\d*$/m);
    assert.match(res.body, /^allot_http_request_duration_seconds_count\{[^}]*route="\/v1\/campaigns\/:id\/claims"[^}]*\} \d+$/m);
  });

  test('/metrics needs the metrics token when one is configured', async () => {
    const metricsToken = 'metrics-token-0123456789abcdef';
    const app = await buildApp({ service: t.service, adminToken: t.token, metricsToken });
    try {
      const none = await app.inject({ method: 'GET', url: '/metrics' });
      assertError(none, 401, 'UNAUTHORIZED');
      assert.match(String(none.headers['www-authenticate']), /^Bearer/);
      assertError(await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer wrong-token' } }), 401, 'UNAUTHORIZED');
      // the admin token is not the metrics token
      assertError(await app.inject({ method: 'GET', url: '/metrics', headers: t.auth }), 401, 'UNAUTHORIZED');
      const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${metricsToken}` } });
      assert.equal(ok.statusCode, 200);
      assert.match(ok.body, /allot_claims_total/);
      // the other operations endpoints stay open
      assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    } finally {
      await app.close();
    }
  });

  test('/openapi.json is valid JSON with the /v1 paths', async () => {
    const res = await call('GET', '/openapi.json', { auth: false });
    assert.equal(res.statusCode, 200);
    const doc = JSON.parse(res.body) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.match(doc.openapi, /^3\./);
    const expected: Array<[string, string]> = [
      ['/v1/campaigns', 'post'],
      ['/v1/campaigns', 'get'],
      ['/v1/campaigns/{id}', 'get'],
      ['/v1/campaigns/{id}/claims', 'post'],
      ['/v1/campaigns/{id}/claims', 'get'],
      ['/v1/claims/{claimId}', 'get'],
      ['/v1/campaigns/{id}/audit', 'get'],
    ];
    for (const [path, method] of expected) {
      assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} missing from openapi.json (has ${Object.keys(doc.paths).join(', ')})`);
    }
  });

  test('/docs serves the OpenAPI UI (200, or a redirect to it)', async () => {
    let res = await call('GET', '/docs', { auth: false });
    if (res.statusCode >= 300 && res.statusCode < 400) {
      const location = String(res.headers.location);
      assert.ok(location.length > 0);
      res = await call('GET', new URL(location, 'http://localhost/docs').pathname, { auth: false });
    }
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/html/);
  });

  test('an unknown route is 404 with the error shape; a wrong method on a known one is 405', async () => {
    assertError(await call('GET', '/nope', { auth: false }), 404, 'NOT_FOUND');
    assertError(await call('GET', '/v1/nope'), 404, 'NOT_FOUND');
    const wrongMethod = await call('DELETE', `/v1/campaigns/${uid()}`);
    assertError(wrongMethod, 405, 'METHOD_NOT_ALLOWED');
    assert.equal(wrongMethod.headers.allow, 'GET, HEAD');
  });

  test('x-request-id: a valid one is echoed, an invalid one replaced, none generated', async () => {
    const given = await call('GET', '/healthz', { headers: { 'x-request-id': 'req-abc_123.x:y' } });
    assert.equal(given.headers['x-request-id'], 'req-abc_123.x:y');
    const bad = await call('GET', '/healthz', { headers: { 'x-request-id': 'has space' } });
    assert.notEqual(bad.headers['x-request-id'], 'has space');
    assert.match(String(bad.headers['x-request-id']), /^[A-Za-z0-9_.:-]{1,128}$/);
    const tooLong = await call('GET', '/healthz', { headers: { 'x-request-id': 'x'.repeat(129) } });
    assert.notEqual(tooLong.headers['x-request-id'], 'x'.repeat(129));
    const none = await call('GET', '/healthz');
    assert.match(String(none.headers['x-request-id']), /^[A-Za-z0-9_.:-]{1,128}$/);
    // also on errors and on /v1
    const err = await call('GET', `/v1/campaigns/${uid('missing')}`, { headers: { 'x-request-id': 'trace-404' } });
    assert.equal(err.statusCode, 404);
    assert.equal(err.headers['x-request-id'], 'trace-404');
    const unauth = await call('GET', '/v1/campaigns', { auth: false, headers: { 'x-request-id': 'trace-401' } });
    assert.equal(unauth.statusCode, 401);
    assert.equal(unauth.headers['x-request-id'], 'trace-401');
  });
});
