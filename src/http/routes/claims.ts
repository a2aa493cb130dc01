// Claims: POST (a claim, idempotent with Idempotency-Key), list by user, get by id.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { claimView, type ClaimView as ClaimViewT } from '../../core/claim.ts';
import type { AllotService } from '../../service/service.ts';
import { ClaimBody, ClaimHeaders, ClaimIdParams, ClaimView, ClaimsQuery, IdParams, errorResponses } from '../schemas.ts';
import { pageLimit } from './paging.ts';

export const claimRoutes: FastifyPluginAsync<{ service: AllotService }> = async (app, { service }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/campaigns/:id/claims', {
    schema: {
      tags: ['claims'], summary: 'Claim one unit for a user',
      description: 'Idempotency-Key: a repeat with the same key and payload replays the first outcome (Idempotent-Replayed: true).',
      params: IdParams, headers: ClaimHeaders, body: ClaimBody,
      response: { 201: Type.Object({ claim: ClaimView }), ...errorResponses },
    },
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
      tags: ['claims'], summary: 'List claims of a campaign, optionally of one user', params: IdParams, querystring: ClaimsQuery,
      response: { 200: Type.Object({ claims: Type.Array(ClaimView), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errorResponses },
    },
  }, async (req) => {
    const page = await service.listClaims(req.params.id, req.query.userId ?? null, pageLimit(req.query.limit), req.query.cursor ?? null);
    return { claims: page.items.map(claimView), nextCursor: page.nextCursor };
  });

  r.get('/claims/:claimId', {
    schema: { tags: ['claims'], summary: 'Get a claim', params: ClaimIdParams, response: { 200: Type.Object({ claim: ClaimView }), ...errorResponses } },
  }, async (req) => ({ claim: claimView(await service.getClaim(req.params.claimId)) }));
};
