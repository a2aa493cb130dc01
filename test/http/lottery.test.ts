// Lottery campaigns over HTTP (app.inject() on in-memory PGlite): draws, per-prize counts,
// SOLD_OUT only when every prize and the fallback are gone, administration (stock, pause,
// resume, reveal) and verifiable draw proofs. The audit passes after every step.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { verifyDrawProof, type DrawProof } from '../../src/core/lottery.ts';
import { ERROR_CODE, makeApp, TestClock, uid, type TestApp } from '../helpers/app.ts';

type Json = Record<string, unknown>;
interface PrizeView { id: string; name: string; stock: number; issued: number; remaining: number; weight: number }
interface View extends Json { id: string; stock: number; issued: number; remaining: number; paused: boolean; prizes: PrizeView[]; seedCommitment: string }

const clock = new TestClock();
let t: TestApp;

before(async () => {
  t = await makeApp({ clock });
});
after(async () => {
  await t?.close();
});

async function call(method: 'GET' | 'POST', url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  return t.app.inject({ method, url, headers: t.auth, ...(payload !== undefined ? { payload: payload as Json } : {}) });
}

function assertError(res: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode} ${res.body}`);
  const err = (res.json() as { error: Json }).error;
  assert.equal(err.code, code, res.body);
  assert.match(String(err.code), ERROR_CODE);
  assert.ok(typeof err.message === 'string' && err.message.length > 0);
}

async function createLottery(body: Json): Promise<View> {
  const res = await call('POST', '/v1/campaigns', { kind: 'lottery', name: 'draw', ...body });
  assert.equal(res.statusCode, 201, res.body);
  return res.json() as View;
}

async function view(id: string): Promise<View> {
  const res = await call('GET', `/v1/campaigns/${id}`);
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as View;
}

async function draw(id: string, userId: string): Promise<LightMyRequestResponse> {
  return call('POST', `/v1/campaigns/${id}/claims`, { userId });
}

async function drawOk(id: string, userId: string): Promise<{ id: string; prizeId: string | null }> {
  const res = await draw(id, userId);
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { claim: { id: string; prizeId: string | null } }).claim;
}

async function assertAudit(id: string): Promise<void> {
  const res = await call('GET', `/v1/campaigns/${id}/audit`);
  assert.equal(res.statusCode, 200, res.body);
  assert.equal((res.json() as { ok: boolean }).ok, true, res.body);
}

function prize(v: View, id: string): PrizeView {
  const p = v.prizes.find((x) => x.id === id);
  assert.ok(p, `no prize ${id} in ${JSON.stringify(v)}`);
  return p;
}

/** The small pool of the brief: 4 units in all, no miss. */
const SMALL = {
  prizes: [
    { id: 'p1', name: 'Phone', stock: 1, weight: 1 },
    { id: 'p2', name: 'Mug', stock: 2, weight: 5 },
    { id: 'c', name: 'Sticker', stock: 1, weight: 0 },
  ],
  missWeight: 0,
  fallback: 'c',
};

describe('lottery over HTTP', () => {
  test('create shows the prizes, miss weight, fallback and a seed commitment', async () => {
    const v = await createLottery({ id: uid('lot'), ...SMALL });
    assert.equal(v.kind, 'lottery');
    assert.equal(v.stock, 4);
    assert.equal(v.remaining, 4);
    assert.equal(v.paused, false);
    assert.deepEqual(v.prizes.map((p) => [p.id, p.stock, p.issued, p.remaining, p.weight]), [['c', 1, 0, 1, 0], ['p1', 1, 0, 1, 1], ['p2', 2, 0, 2, 5]]);
    assert.equal(v.missWeight, 0);
    assert.equal(v.fallback, 'c');
    assert.match(v.seedCommitment, /^[0-9a-f]{64}$/);
  });

  test('draws: 201 with a prize, a second draw of a user is USER_LIMIT_REACHED, per-prize counts match, then SOLD_OUT', async () => {
    const id = uid('lot');
    await createLottery({ id, ...SMALL });
    const won: Array<string | null> = [];
    for (const u of ['u1', 'u2', 'u3', 'u4']) {
      const c = await drawOk(id, u);
      assert.ok(c.prizeId !== null && ['p1', 'p2', 'c'].includes(c.prizeId), `prizeId ${c.prizeId}`);
      won.push(c.prizeId);
      assertError(await draw(id, u), 409, 'USER_LIMIT_REACHED');
      await assertAudit(id);
    }
    // Every unit went out exactly once: both mugs, the phone and the sticker (the fallback,
    // drawn once the weighted prizes were gone).
    assert.deepEqual([...won].sort(), ['c', 'p1', 'p2', 'p2']);
    const v = await view(id);
    assert.equal(v.issued, 4);
    assert.equal(v.remaining, 0);
    for (const p of v.prizes) {
      assert.equal(p.issued, won.filter((w) => w === p.id).length, p.id);
      assert.equal(p.remaining, 0, p.id);
    }
    assertError(await draw(id, 'u5'), 409, 'SOLD_OUT');
    // SOLD_OUT does not count against the user's limit: more stock, and u5 can draw.
    const more = await call('POST', `/v1/campaigns/${id}/stock`, { prizeId: 'p2', add: 1 });
    assert.equal(more.statusCode, 200, more.body);
    assert.equal((await drawOk(id, 'u5')).prizeId, 'p2');
    await assertAudit(id);
  });

  test('a miss is a 201 claim with prizeId null and counts against the limit', async () => {
    const id = uid('lot');
    // A prize of weight 0 is never a candidate (a pool of only misses is SOLD_OUT), so the
    // miss gets all but 1 / 2^31 of the odds.
    await createLottery({ id, prizes: [{ id: 'p1', name: 'Phone', stock: 5, weight: 1 }], missWeight: 2 ** 31 - 2 });
    const c = await drawOk(id, 'u1');
    assert.equal(c.prizeId, null);
    assertError(await draw(id, 'u1'), 409, 'USER_LIMIT_REACHED');
    const v = await view(id);
    assert.equal(v.issued, 0);
    assert.equal(prize(v, 'p1').remaining, 5);
    await assertAudit(id);
  });

  test('one prize selling out is not SOLD_OUT while another prize has stock', async () => {
    const id = uid('lot');
    await createLottery({ id, prizes: [{ id: 'a', name: 'A', stock: 1, weight: 1000 }, { id: 'b', name: 'B', stock: 3, weight: 1 }] });
    const got: Array<string | null> = [];
    for (let i = 0; i < 4; i++) got.push((await drawOk(id, `u${i}`)).prizeId);
    assert.deepEqual([...got].sort(), ['a', 'b', 'b', 'b']);
    assertError(await draw(id, 'u-late'), 409, 'SOLD_OUT');
    await assertAudit(id);
  });

  test('add stock to a prize: 200, remaining grows, the prize can be drawn again', async () => {
    const id = uid('lot');
    await createLottery({ id, prizes: [{ id: 'p1', name: 'Phone', stock: 1, weight: 1 }] });
    assert.equal((await drawOk(id, 'u1')).prizeId, 'p1');
    assertError(await draw(id, 'u2'), 409, 'SOLD_OUT');
    const res = await call('POST', `/v1/campaigns/${id}/stock`, { prizeId: 'p1', add: 2 });
    assert.equal(res.statusCode, 200, res.body);
    const v = res.json() as View;
    assert.equal(prize(v, 'p1').stock, 3);
    assert.equal(prize(v, 'p1').remaining, 2);
    assert.equal(v.stock, 3);
    assert.equal(v.remaining, 2);
    assert.deepEqual(await view(id), v);
    assert.equal((await drawOk(id, 'u2')).prizeId, 'p1');
    assert.equal((await drawOk(id, 'u3')).prizeId, 'p1');
    assertError(await draw(id, 'u4'), 409, 'SOLD_OUT');
    await assertAudit(id);
  });

  test('add stock to a coupon campaign', async () => {
    const id = uid('cpn');
    assert.equal((await call('POST', '/v1/campaigns', { id, name: 'c', stock: 1 })).statusCode, 201);
    const res = await call('POST', `/v1/campaigns/${id}/stock`, { add: 4 });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((res.json() as View).stock, 5);
    assert.equal((res.json() as View).remaining, 5);
    await assertAudit(id);
  });

  test('pause: claims get CAMPAIGN_NOT_ACTIVE; resume: 201 again; both idempotent, with no body or {}', async () => {
    const id = uid('lot');
    await createLottery({ id, prizes: [{ id: 'p1', name: 'Phone', stock: 10, weight: 1 }], perUserLimit: 5 });
    for (const payload of [undefined, {}]) {
      const res = await call('POST', `/v1/campaigns/${id}/pause`, payload);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal((res.json() as View).paused, true);
    }
    // An empty body sent with Content-Type JSON counts as no body here.
    const emptyJson = await t.app.inject({ method: 'POST', url: `/v1/campaigns/${id}/pause`, headers: { ...t.auth, 'content-type': 'application/json' }, payload: '' });
    assert.equal(emptyJson.statusCode, 200, emptyJson.body);
    assert.equal((await view(id)).paused, true);
    assertError(await draw(id, 'u1'), 409, 'CAMPAIGN_NOT_ACTIVE');
    assert.equal((await view(id)).issued, 0);
    for (const payload of [{}, undefined]) {
      const res = await call('POST', `/v1/campaigns/${id}/resume`, payload);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal((res.json() as View).paused, false);
    }
    assert.equal((await drawOk(id, 'u1')).prizeId, 'p1');
    assert.equal((await view(id)).issued, 1);
    await assertAudit(id);
  });

  test('proof: SEED_NOT_REVEALED before reveal; after it, a proof that verifies against the commitment', async () => {
    const id = uid('lot');
    const created = await createLottery({ id, prizes: [{ id: 'p1', name: 'Phone', stock: 2, weight: 1 }, { id: 'p2', name: 'Mug', stock: 5, weight: 3 }], missWeight: 2 });
    const claims = [];
    for (let i = 0; i < 6; i++) claims.push(await drawOk(id, `u${i}`));
    assertError(await call('GET', `/v1/claims/${claims[0]!.id}/proof`), 409, 'SEED_NOT_REVEALED');

    const rev = await call('POST', `/v1/campaigns/${id}/reveal`);
    assert.equal(rev.statusCode, 200, rev.body);
    const r = rev.json() as { campaignId: string; seed: string; seedCommitment: string; revealedAt: string };
    assert.equal(r.campaignId, id);
    assert.equal(r.seedCommitment, created.seedCommitment);
    assert.equal(createHash('sha256').update(Buffer.from(r.seed, 'hex')).digest('hex'), created.seedCommitment);
    assert.ok(!Number.isNaN(Date.parse(r.revealedAt)));
    // Revealing again is harmless and answers the same.
    const again = await call('POST', `/v1/campaigns/${id}/reveal`);
    assert.equal(again.statusCode, 200);
    assert.deepEqual(again.json(), r);

    for (const c of claims) {
      const res = await call('GET', `/v1/claims/${c.id}/proof`);
      assert.equal(res.statusCode, 200, res.body);
      const proof = (res.json() as { proof: DrawProof }).proof;
      assert.equal(proof.claimId, c.id);
      assert.equal(proof.campaignId, id);
      assert.equal(proof.prizeId, c.prizeId);
      assert.equal(proof.seed, r.seed);
      assert.equal(proof.seedCommitment, created.seedCommitment);
      assert.deepEqual(verifyDrawProof(proof), { ok: true, problems: [] });
    }
    await assertAudit(id);
  });

  test('a campaign past its endsAt reveals its seed by itself for a proof', async () => {
    const id = uid('lot');
    clock.set('2030-01-01T00:00:00Z');
    try {
      const created = await createLottery({ id, prizes: [{ id: 'p1', name: 'Phone', stock: 3, weight: 1 }], endsAt: '2030-01-02T00:00:00Z' });
      const c = await drawOk(id, 'u1');
      assertError(await call('GET', `/v1/claims/${c.id}/proof`), 409, 'SEED_NOT_REVEALED');
      clock.set('2030-01-02T00:00:01Z');
      assertError(await draw(id, 'u2'), 409, 'CAMPAIGN_NOT_ACTIVE');
      const res = await call('GET', `/v1/claims/${c.id}/proof`);
      assert.equal(res.statusCode, 200, res.body);
      const proof = (res.json() as { proof: DrawProof }).proof;
      assert.equal(proof.seedCommitment, created.seedCommitment);
      assert.equal(createHash('sha256').update(Buffer.from(proof.seed!, 'hex')).digest('hex'), created.seedCommitment);
      assert.equal(verifyDrawProof(proof).ok, true);
      await assertAudit(id);
    } finally {
      clock.set(null);
    }
  });

  test('the admin routes and the proof are in /openapi.json with tags and summaries', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    const paths = (res.json() as { paths: Record<string, Record<string, { tags?: string[]; summary?: string }>> }).paths;
    for (const [path, method] of [
      ['/v1/campaigns/{id}/stock', 'post'],
      ['/v1/campaigns/{id}/pause', 'post'],
      ['/v1/campaigns/{id}/resume', 'post'],
      ['/v1/campaigns/{id}/reveal', 'post'],
      ['/v1/claims/{claimId}/proof', 'get'],
    ] as const) {
      const op = paths[path]?.[method];
      assert.ok(op, `${method} ${path} missing from openapi.json`);
      assert.ok(op.tags && op.tags.length > 0, `${path}: no tags`);
      assert.ok(op.summary, `${path}: no summary`);
    }
  });
});
