// Failures that once escaped the error registry as 500s: a deadlock or serialization failure in
// the Idempotency-Key statements, and a campaign whose strategy this instance does not know
// (a rolling deploy). Each must be a 503 that issued nothing, and a retry must work.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { TransientConflictError } from '../../src/core/errors.ts';
import { makeApp, uid, type TestApp } from '../helpers/app.ts';

describe('failures answered by the registry, never 500', () => {
  let t: TestApp;
  before(async () => {
    t = await makeApp();
  });
  after(async () => {
    await t?.close();
  });

  const create = async (extra: Record<string, unknown> = {}) => {
    const id = uid('fail');
    const res = await t.app.inject({ method: 'POST', url: '/v1/campaigns', headers: t.auth, payload: { id, name: 'f', stock: 5, ...extra } });
    assert.equal(res.statusCode, 201, res.body);
    return id;
  };
  const claim = (id: string, userId: string, key?: string) =>
    t.app.inject({ method: 'POST', url: `/v1/campaigns/${id}/claims`, headers: { ...t.auth, ...(key ? { 'idempotency-key': key } : {}) }, payload: { userId } });

  /** Makes one method of the key store fail `times` times with a deadlock, as the database would. */
  function deadlock(method: 'begin' | 'complete', times: number): () => void {
    const keys = t.service.keys as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const original = keys[method]!;
    let left = times;
    keys[method] = async (...args: unknown[]) => {
      if (left-- > 0) throw new TransientConflictError(Object.assign(new Error('deadlock detected'), { code: '40P01' }));
      return original.apply(keys, args);
    };
    return () => {
      keys[method] = original;
    };
  }

  test('a deadlock while taking the key is retried', async () => {
    const id = await create();
    const restore = deadlock('begin', 2);
    try {
      const res = await claim(id, 'u1', 'k1');
      assert.equal(res.statusCode, 201, res.body);
    } finally {
      restore();
    }
  });

  test('a key statement that keeps deadlocking answers 503 UNAVAILABLE and issues nothing', async () => {
    const id = await create();
    const restore = deadlock('begin', 1_000);
    try {
      const res = await claim(id, 'u1', 'k1');
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().error.code, 'UNAVAILABLE');
      assert.equal(res.json().error.outcome, 'nothing-issued');
      assert.ok(res.headers['retry-after']);
    } finally {
      restore();
    }
    const campaign = await t.app.inject({ method: 'GET', url: `/v1/campaigns/${id}`, headers: t.auth });
    assert.equal(campaign.json().issued, 0);
    assert.equal((await claim(id, 'u1', 'k1')).statusCode, 201, 'the retry runs');
  });

  test('a deadlock while storing a refusal answers 503 and the retry gets the refusal', async () => {
    const id = await create({ stock: 0 });
    const restore = deadlock('complete', 1_000);
    try {
      const res = await claim(id, 'u1', 'k-sold');
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().error.code, 'UNAVAILABLE');
    } finally {
      restore();
    }
    const again = await claim(id, 'u1', 'k-sold');
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'SOLD_OUT');
  });

  test('a campaign whose strategy this instance does not know answers 503, not 500', async () => {
    const id = await create();
    // What a newer release would have written.
    await sql`UPDATE campaigns SET strategy = 'from-the-future' WHERE id = ${id}`.execute(t.service.db);
    const res = await claim(id, 'u1', 'k-future');
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.json().error.code, 'UNAVAILABLE');
    assert.equal(res.json().error.strategy, 'from-the-future');
    assert.equal(res.json().error.outcome, 'nothing-issued');
    const view = await t.app.inject({ method: 'GET', url: `/v1/campaigns/${id}`, headers: t.auth });
    assert.equal(view.statusCode, 200);
    assert.equal(view.json().issued, 0);
  });
});
