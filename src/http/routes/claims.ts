// Claims: POST (a claim, idempotent with Idempotency-Key), list by user, get by id.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { claimView, type ClaimView as ClaimViewT } from '../../core/claim.ts';
import type { AllotService } from '../../service/service.ts';
import { ClaimBody, ClaimHeaders, ClaimIdParams, ClaimPage, ClaimView, ClaimsQuery, IdParams, errors, idempotencyKeyDoc, ok, ref } from '../schemas.ts';
import { integerQuery, pageLimit } from './paging.ts';

const KEY_DOC = idempotencyKeyDoc('Optional: a repeat with the same key and payload replays the first outcome (Idempotent-Replayed: true); the same key with another payload is 422 IDEMPOTENCY_KEY_REUSED. Scoped per campaign, kept at least 24 h.', false);

export const claimRoutes: FastifyPluginAsync<{ service: AllotService }> = async (app, { service }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/campaigns/:id/claims', {
    schema: {
      operationId: 'createClaim', tags: ['claims'], summary: 'Claim one unit for a user (a lottery: draw a prize)',
      description: 'Idempotency-Key: a repeat with the same key and payload replays the first outcome, errors included (Idempotent-Replayed: true). A lottery draw that lands on the miss weight is a 201 claim with "prizeId": null. SOLD_OUT does not count against the user\'s limit.',
      params: IdParams, headers: ClaimHeaders, body: ref(ClaimBody),
      response: {
        201: ok(Type.Object({ claim: ref(ClaimView) }), 'The claim, issued (or its replay)', { replayed: true }),
        ...errors(['CAMPAIGN_NOT_FOUND', 'SOLD_OUT', 'USER_LIMIT_REACHED', 'CAMPAIGN_NOT_ACTIVE', 'IDEMPOTENCY_IN_PROGRESS', 'IDEMPOTENCY_KEY_REUSED'], { replayed: [409] }),
      },
    },
    config: { swaggerTransform: ({ schema, url }) => ({ schema: { ...schema, headers: KEY_DOC }, url }) },
  }, async (req, reply) => {
    const key = req.headers['idempotency-key'] ?? null;
    const out = await service.claim(req.params.id, req.body.userId, key);
    if (out.replayed) reply.header('idempotent-replayed', 'true');
    req.log.info({ campaignId: req.params.id, userId: req.body.userId, result: out.result, status: out.status }, 'claim');
    // The body is a claim or an error body, or the stored JSON of either when replayed.
    return reply.code(out.status).send(out.body as { claim: ClaimViewT });
  });

  r.get('/campaigns/:id/claims', {
    schema: {
      operationId: 'listClaims', tags: ['claims'], summary: 'List claims of a campaign, optionally of one user', params: IdParams, querystring: ClaimsQuery,
      response: { 200: ok(ref(ClaimPage), 'A page of claims, by id'), ...errors(['CAMPAIGN_NOT_FOUND']) },
    },
    preValidation: integerQuery,
  }, async (req) => {
    const page = await service.listClaims(req.params.id, req.query.userId ?? null, pageLimit(req.query.limit), req.query.cursor ?? null);
    return { claims: page.items.map(claimView), nextCursor: page.nextCursor };
  });

  r.get('/claims/:claimId', {
    schema: {
      operationId: 'getClaim', tags: ['claims'], summary: 'Get a claim', params: ClaimIdParams,
      response: { 200: ok(Type.Object({ claim: ref(ClaimView) }), 'The claim'), ...errors(['CLAIM_NOT_FOUND']) },
    },
  }, async (req) => ({ claim: claimView(await service.getClaim(req.params.claimId)) }));
};
