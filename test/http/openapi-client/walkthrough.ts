// The README walk-through (campaigns and claims, the lottery, payouts) as a client program:
// openapi-fetch over the types openapi-typescript generates from /openapi.json (schema.ts).
// It type-checks only if the document describes each call (paths, parameters, the
// Idempotency-Key header, bodies, responses), and it asserts what the server answers.
// test/http/openapi.test.ts runs it against a listening service.
import assert from 'node:assert/strict';
import createClient from 'openapi-fetch';
import type { components, paths } from './schema.ts';

type Schemas = components['schemas'];
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Compiles only when A and B are the same type. */
function sameType<A, B>(proof: Equal<A, B>): void {
  assert.equal(proof, true);
}

/** The error codes the document lists for one status of one operation. */
type CodesOf<P extends keyof paths, M extends 'get' | 'post', S extends number> = paths[P][M] extends { responses: infer R }
  ? S extends keyof R ? R[S] extends { content: { 'application/json': { error: { code: infer C } } } } ? C : never : never
  : never;

export interface WalkThroughOptions {
  baseUrl: string;
  token: string;
  /** Makes the ids of this run unique (campaigns, users, fundings, orders). */
  runId: string;
  /** A fetch that sees every request (the test checks each answer against the document). */
  fetch?: (request: Request) => Promise<Response>;
}

export async function walkThrough(opts: WalkThroughOptions): Promise<void> {
  const client = createClient<paths>({
    baseUrl: opts.baseUrl,
    headers: { Authorization: `Bearer ${opts.token}` },
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  const id = (name: string): string => `${name}-${opts.runId}`;
  const replayed = (res: Response): string | null => res.headers.get('idempotent-replayed');

  // ---- operations ----------------------------------------------------------------------------
  const health = await client.GET('/healthz');
  assert.equal(health.response.status, 200);
  assert.equal(health.data?.status, 'ok');
  const ready = await client.GET('/readyz');
  assert.equal(ready.data?.status, 'ready');
  assert.equal(ready.data?.backends.database, 'ok');

  // ---- a campaign of 2 coupons, one per user ----------------------------------------------------
  const spring = id('spring');
  const created = await client.POST('/v1/campaigns', { body: { id: spring, name: '10 off', stock: 2 } });
  assert.equal(created.response.status, 201);
  const campaign: Schemas['Campaign'] | undefined = created.data;
  assert.ok(campaign);
  assert.deepEqual([campaign.id, campaign.kind, campaign.strategy, campaign.stock, campaign.issued, campaign.remaining], [spring, 'coupon', 'conditional', 2, 0, 2]);

  const again = await client.POST('/v1/campaigns', { body: { id: spring, name: '10 off', stock: 2 } });
  assert.equal(again.response.status, 409);
  assert.equal(again.error?.error.code, 'CAMPAIGN_EXISTS');

  // Claim, with an Idempotency-Key so a retry is safe.
  const claimFor = (userId: string, key?: string) =>
    client.POST('/v1/campaigns/{id}/claims', { params: { path: { id: spring }, ...(key ? { header: { 'Idempotency-Key': key } } : {}) }, body: { userId } });
  const first = await claimFor('alice', id('order-1'));
  assert.equal(first.response.status, 201);
  const claim: Schemas['Claim'] | undefined = first.data?.claim;
  assert.ok(claim);
  assert.deepEqual([claim.campaignId, claim.userId, claim.prizeId], [spring, 'alice', null]);
  assert.match(claim.id, /^clm_/);
  assert.equal(replayed(first.response), null);

  // The same request again (a retry): the same answer, replayed.
  const retry = await claimFor('alice', id('order-1'));
  assert.equal(retry.response.status, 201);
  assert.equal(replayed(retry.response), 'true');
  assert.deepEqual(retry.data?.claim, claim);

  // The same key for another request.
  const reused = await claimFor('bob', id('order-1'));
  assert.equal(reused.response.status, 422);
  assert.equal(reused.error?.error.code, 'IDEMPOTENCY_KEY_REUSED');

  // alice again without the key: her limit is 1.
  const limited = await claimFor('alice');
  assert.equal(limited.response.status, 409);
  assert.equal(limited.error?.error.code, 'USER_LIMIT_REACHED');
  assert.equal(limited.error?.error.message, 'The user already holds as many claims as the campaign allows.');

  assert.equal((await claimFor('bob')).response.status, 201);
  const soldOut = await claimFor('carol', id('order-3'));
  assert.equal(soldOut.response.status, 409);
  assert.equal(soldOut.error?.error.code, 'SOLD_OUT');
  // A refusal is replayed too.
  const soldOutAgain = await claimFor('carol', id('order-3'));
  assert.equal(soldOutAgain.error?.error.code, 'SOLD_OUT');
  assert.equal(replayed(soldOutAgain.response), 'true');

  // Check the invariants of the campaign against the database.
  const audit = await client.GET('/v1/campaigns/{id}/audit', { params: { path: { id: spring } } });
  assert.equal(audit.data?.ok, true);
  assert.ok(audit.data?.checks.some((c) => c.name === 'issued<=stock' && c.ok));

  const now = await client.GET('/v1/campaigns/{id}', { params: { path: { id: spring } } });
  assert.deepEqual([now.data?.issued, now.data?.remaining], [2, 0]);
  const missing = await client.GET('/v1/campaigns/{id}', { params: { path: { id: id('missing') } } });
  assert.equal(missing.response.status, 404);
  assert.equal(missing.error?.error.code, 'CAMPAIGN_NOT_FOUND');

  // Lists: claims by user, and page by page (limit is an integer, cursors are strings).
  const alices = await client.GET('/v1/campaigns/{id}/claims', { params: { path: { id: spring }, query: { userId: 'alice' } } });
  assert.deepEqual(alices.data?.claims.map((c) => c.id), [claim.id]);
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 5; page++) {
    const res = await client.GET('/v1/campaigns/{id}/claims', { params: { path: { id: spring }, query: { limit: 1, ...(cursor ? { cursor } : {}) } } });
    assert.equal(res.response.status, 200);
    seen.push(...(res.data?.claims ?? []).map((c) => c.userId));
    if (!res.data?.nextCursor) break;
    cursor = res.data.nextCursor;
  }
  assert.deepEqual(seen.sort(), ['alice', 'bob']);
  const badLimit = await client.GET('/v1/campaigns', { params: { query: { limit: 0 } } });
  assert.equal(badLimit.response.status, 400);
  assert.equal(badLimit.error?.error.code, 'VALIDATION_FAILED');
  assert.equal(badLimit.error?.error.problems?.[0]?.path, 'querystring/limit');
  const campaigns = await client.GET('/v1/campaigns', { params: { query: { limit: 1000 } } });
  assert.ok(campaigns.data?.campaigns.some((c) => c.id === spring));

  const byId = await client.GET('/v1/claims/{claimId}', { params: { path: { claimId: claim.id } } });
  assert.deepEqual(byId.data?.claim, claim);
  const noClaim = await client.GET('/v1/claims/{claimId}', { params: { path: { claimId: id('clm_missing') } } });
  assert.equal(noClaim.error?.error.code, 'CLAIM_NOT_FOUND');

  // ---- a lottery --------------------------------------------------------------------------------
  const autumn = id('autumn');
  const lottery = await client.POST('/v1/campaigns', {
    body: {
      id: autumn, kind: 'lottery', name: 'Autumn draw', missWeight: 30, fallback: 'sticker',
      prizes: [{ id: 'p1', name: 'Phone', stock: 3, weight: 1 }, { id: 'p2', name: 'Mug', stock: 50, weight: 50 }, { id: 'sticker', name: 'Sticker', stock: 100, weight: 0 }],
    },
  });
  assert.equal(lottery.response.status, 201);
  assert.deepEqual([lottery.data?.stock, lottery.data?.remaining, lottery.data?.prizes?.length], [153, 153, 3]);
  assert.match(lottery.data?.seedCommitment ?? '', /^[0-9a-f]{64}$/);
  const draw = await client.POST('/v1/campaigns/{id}/claims', { params: { path: { id: autumn } }, body: { userId: 'alice' } });
  assert.equal(draw.response.status, 201);
  assert.ok(draw.data);
  assert.ok([null, 'p1', 'p2', 'sticker'].includes(draw.data.claim.prizeId));
  const stocked = await client.POST('/v1/campaigns/{id}/stock', { params: { path: { id: autumn } }, body: { prizeId: 'p2', add: 20 } });
  assert.equal(stocked.data?.prizes?.find((p) => p.id === 'p2')?.stock, 70);
  const noPrize = await client.POST('/v1/campaigns/{id}/stock', { params: { path: { id: autumn } }, body: { prizeId: 'p9', add: 1 } });
  assert.equal(noPrize.error?.error.code, 'PRIZE_NOT_FOUND');
  assert.equal((await client.POST('/v1/campaigns/{id}/pause', { params: { path: { id: autumn } } })).data?.paused, true);
  const paused = await client.POST('/v1/campaigns/{id}/claims', { params: { path: { id: autumn } }, body: { userId: 'bob' } });
  assert.equal(paused.error?.error.code, 'CAMPAIGN_NOT_ACTIVE');
  assert.equal((await client.POST('/v1/campaigns/{id}/resume', { params: { path: { id: autumn } } })).data?.paused, false);
  const secret = await client.GET('/v1/claims/{claimId}/proof', { params: { path: { claimId: draw.data.claim.id } } });
  assert.equal(secret.response.status, 409);
  assert.equal(secret.error?.error.code, 'SEED_NOT_REVEALED');
  const revealed = await client.POST('/v1/campaigns/{id}/reveal', { params: { path: { id: autumn } } });
  assert.equal(revealed.data?.seedCommitment, lottery.data?.seedCommitment);
  const proof = await client.GET('/v1/claims/{claimId}/proof', { params: { path: { claimId: draw.data.claim.id } } });
  assert.equal(proof.data?.proof.seed, revealed.data?.seed);
  assert.equal(proof.data?.proof.prizeId, draw.data.claim.prizeId);

  // ---- payouts ----------------------------------------------------------------------------------
  const user = id('u');
  const funding = { fundingId: id('f-1'), userId: user, asset: 'CNY', amount: 500 };
  const funded = await client.POST('/v1/fundings', { body: funding });
  assert.equal(funded.response.status, 201);
  assert.equal(funded.data?.funding.amount, 500);
  const refunded = await client.POST('/v1/fundings', { body: funding });
  assert.equal(refunded.response.status, 200);
  assert.equal(replayed(refunded.response), 'true');
  const otherFunding = await client.POST('/v1/fundings', { body: { ...funding, amount: 501 } });
  assert.equal(otherFunding.error?.error.code, 'FUNDING_EXISTS');

  const withdrawal = { userId: user, asset: 'CNY', amount: 200 };
  // @ts-expect-error the document marks Idempotency-Key required for a withdrawal
  const keyless = await client.POST('/v1/withdrawals', { body: withdrawal });
  assert.equal(keyless.response.status, 400);
  assert.equal(keyless.error?.error.code, 'IDEMPOTENCY_KEY_REQUIRED');
  const withdraw = (key: string, body: Schemas['WithdrawalRequest'] = withdrawal) => client.POST('/v1/withdrawals', { params: { header: { 'Idempotency-Key': key } }, body });
  const w1 = await withdraw(id('w-1'));
  assert.equal(w1.response.status, 201);
  assert.deepEqual([w1.data?.withdrawal.amount, w1.data?.withdrawal.state], [200, 'succeeded']);
  const w1again = await withdraw(id('w-1'));
  assert.equal(replayed(w1again.response), 'true');
  assert.equal(w1again.data?.withdrawal.id, w1.data?.withdrawal.id);
  const short = await withdraw(id('w-2'), { ...withdrawal, amount: '9000' });
  assert.equal(short.response.status, 409);
  assert.equal(short.error?.error.code, 'INSUFFICIENT_FUNDS');

  const order = { orderId: id('o-1'), userId: user, asset: 'CNY', amount: 100, destination: 'addr-1' };
  const received = await client.POST('/v1/transfers', { body: order });
  assert.equal(received.response.status, 202);
  assert.equal(received.data?.transfer.orderId, order.orderId);
  let state: Schemas['TransferState'] | undefined = received.data?.transfer.state;
  for (const deadline = Date.now() + 10_000; state !== 'succeeded' && Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    state = (await client.GET('/v1/transfers/{orderId}', { params: { path: { orderId: order.orderId } } })).data?.transfer.state;
  }
  assert.equal(state, 'succeeded');
  const balances = await client.GET('/v1/accounts/{userId}/balances', { params: { path: { userId: user } } });
  assert.deepEqual(balances.data?.balances, [{ asset: 'CNY', available: 200, held: 0, paidOut: 300 }]);
  const waiting = await client.GET('/v1/transfers', { params: { query: { state: 'unknown', limit: 10 } } });
  assert.equal(waiting.response.status, 200);
  assert.ok(Array.isArray(waiting.data?.transfers));
  const resolved = await client.POST('/v1/transfers/{orderId}/resolve', { params: { path: { orderId: order.orderId } }, body: { outcome: 'failed', note: 'the bank has no record of it' } });
  assert.equal(resolved.response.status, 409);
  assert.equal(resolved.error?.error.code, 'ORDER_NOT_UNKNOWN');
  const ledger = await client.GET('/v1/ledger/audit');
  assert.equal(ledger.data?.ok, true);

  // ---- metrics, and a wrong token -----------------------------------------------------------------
  const metrics = await client.GET('/metrics', { parseAs: 'text' });
  assert.equal(metrics.response.status, 200);
  assert.match(metrics.data ?? '', /^allot_claims_total\{/m);
  const stranger = createClient<paths>({ baseUrl: opts.baseUrl, headers: { Authorization: 'Bearer wrong' }, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
  const denied = await stranger.GET('/v1/campaigns');
  assert.equal(denied.response.status, 401);
  assert.equal(denied.error?.error.code, 'UNAUTHORIZED');
}

/** Never called: what the generated types allow and refuse (checked when this file compiles). */
export function typeChecks(client: ReturnType<typeof createClient<paths>>): void {
  // limit is an integer, state one of the transfer states, cursor a string
  // @ts-expect-error limit is a number
  void client.GET('/v1/campaigns', { params: { query: { limit: '10' } } });
  // @ts-expect-error not a transfer state
  void client.GET('/v1/transfers', { params: { query: { state: 'lost' } } });
  // @ts-expect-error a claim needs a userId
  void client.POST('/v1/campaigns/{id}/claims', { params: { path: { id: 'x' } }, body: {} });
  // @ts-expect-error no such operation
  void client.DELETE('/v1/campaigns/{id}', { params: { path: { id: 'x' } } });
  // Each status lists its own codes.
  sameType<CodesOf<'/v1/campaigns/{id}/claims', 'post', 409>, 'SOLD_OUT' | 'USER_LIMIT_REACHED' | 'CAMPAIGN_NOT_ACTIVE' | 'IDEMPOTENCY_IN_PROGRESS'>(true);
  sameType<CodesOf<'/v1/campaigns/{id}/claims', 'post', 404>, 'CAMPAIGN_NOT_FOUND'>(true);
  sameType<CodesOf<'/v1/withdrawals', 'post', 400>, 'VALIDATION_FAILED' | 'IDEMPOTENCY_KEY_REQUIRED'>(true);
  sameType<CodesOf<'/v1/transfers/{orderId}/resolve', 'post', 409>, 'ORDER_NOT_UNKNOWN'>(true);
  sameType<CodesOf<'/readyz', 'get', 503>, 'UNAVAILABLE'>(true);
  sameType<Schemas['TransferState'], 'received' | 'executing' | 'succeeded' | 'failed' | 'unknown'>(true);
  sameType<Schemas['Amount'], number | string>(true);
}
