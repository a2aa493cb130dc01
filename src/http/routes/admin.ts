// Campaign administration: add stock, pause and resume, reveal a lottery's seed; and the proof
// of a lottery draw.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { campaignView } from '../../core/campaign.ts';
import { AllotError } from '../../core/errors.ts';
import type { AllotService } from '../../service/service.ts';
import { AddStockBody, CampaignView, ClaimIdParams, DrawProofView, IdParams, SeedRevealView, errors, ok, ref } from '../schemas.ts';

export const adminRoutes: FastifyPluginAsync<{ service: AllotService }> = async (app, { service }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/campaigns/:id/stock', {
    schema: {
      operationId: 'addStock', tags: ['administration'], summary: 'Add stock to a coupon campaign or to one prize of a lottery',
      description: 'Adds, never removes; safe beside concurrent claims. A lottery names the prize with prizeId; a coupon campaign must not. The total stays <= 2^31-1.',
      params: IdParams, body: ref(AddStockBody),
      response: { 200: ok(ref(CampaignView), 'The campaign with its new stock'), ...errors(['CAMPAIGN_NOT_FOUND', 'PRIZE_NOT_FOUND']) },
    },
  }, async (req) => {
    const c = await service.addStock(req.params.id, { prizeId: req.body.prizeId, add: req.body.add });
    req.log.info({ campaignId: c.id, prizeId: req.body.prizeId ?? null, add: req.body.add, stock: c.stock }, 'stock added');
    return campaignView(c);
  });

  // pause and resume take no body: an empty one is accepted even with Content-Type JSON (in
  // this scope only; elsewhere an empty JSON body is a 400).
  await app.register(async (scope) => {
    const defaultJson = scope.getDefaultJsonParser('error', 'error');
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      if (body === '') return done(null, undefined);
      defaultJson(req, body as string, done);
    });
    const s = scope.withTypeProvider<TypeBoxTypeProvider>();
    for (const [action, paused] of [['pause', true], ['resume', false]] as const) {
      s.post(`/campaigns/:id/${action}`, {
        schema: {
          operationId: paused ? 'pauseCampaign' : 'resumeCampaign', tags: ['administration'],
          summary: paused ? 'Pause claims (idempotent): claims get 409 CAMPAIGN_NOT_ACTIVE' : 'Resume claims after a pause (idempotent)',
          description: 'No body, or an empty JSON object. Other instances see the change within a second.',
          params: IdParams,
          response: { 200: ok(ref(CampaignView), paused ? 'The campaign, paused' : 'The campaign, resumed'), ...errors(['CAMPAIGN_NOT_FOUND']) },
        },
        // The body is optional, so it is checked here rather than by a schema (a schema would
        // refuse a request without one).
        preValidation: async (req) => {
          const body = req.body as unknown;
          if (body === undefined) return;
          if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length > 0) {
            throw new AllotError('VALIDATION_FAILED', `body: ${action} takes no body, or an empty JSON object`, { field: 'body' });
          }
        },
      }, async (req) => {
        const c = await service.setPaused(req.params.id, paused);
        req.log.info({ campaignId: c.id, paused }, paused ? 'campaign paused' : 'campaign resumed');
        return campaignView(c);
      });
    }
  });

  r.post('/campaigns/:id/reveal', {
    schema: {
      operationId: 'revealSeed', tags: ['administration'], summary: 'Reveal a lottery\'s secret seed (idempotent), so its draws can be recomputed',
      description: 'Also happens by itself once the campaign has ended (endsAt). A coupon campaign has no seed: 400.',
      params: IdParams, response: { 200: ok(ref(SeedRevealView), 'The seed and its commitment'), ...errors(['CAMPAIGN_NOT_FOUND']) },
    },
  }, async (req) => {
    const out = await service.revealSeed(req.params.id);
    req.log.info({ campaignId: out.campaignId }, 'seed revealed');
    return out;
  });

  r.get('/claims/:claimId/proof', {
    schema: {
      operationId: 'getDrawProof', tags: ['claims'], summary: 'The proof of a lottery draw: recompute it with the revealed seed',
      description: '409 SEED_NOT_REVEALED until the seed is revealed (POST /v1/campaigns/:id/reveal, or the campaign\'s end). A coupon claim has no proof: 400.',
      params: ClaimIdParams, response: { 200: ok(Type.Object({ proof: ref(DrawProofView) }), 'The proof'), ...errors(['CLAIM_NOT_FOUND', 'SEED_NOT_REVEALED']) },
    },
  }, async (req) => ({ proof: await service.drawProof(req.params.claimId) }));
};
