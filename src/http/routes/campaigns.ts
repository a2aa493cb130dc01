// /v1/campaigns: create, get, list, audit.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { campaignView } from '../../core/campaign.ts';
import type { AllotService } from '../../service/service.ts';
import { AuditView, CampaignPage, CampaignView, CreateCampaignBody, IdParams, PageQuery, errors, ok, ref } from '../schemas.ts';
import { integerQuery, pageLimit } from './paging.ts';

export const campaignRoutes: FastifyPluginAsync<{ service: AllotService }> = async (app, { service }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/campaigns', {
    schema: {
      operationId: 'createCampaign', tags: ['campaigns'], summary: 'Create a campaign',
      description: 'A coupon campaign gives stock; a lottery gives prizes (each with stock and weight), and optionally missWeight and fallback. Without an id, one is generated.',
      body: ref(CreateCampaignBody),
      response: { 201: ok(ref(CampaignView), 'The campaign, created'), ...errors(['CAMPAIGN_EXISTS', 'UNSAFE_STRATEGY']) },
    },
  }, async (req, reply) => {
    const c = await service.createCampaign({ ...req.body, kind: req.body.kind ?? 'coupon' });
    req.log.info({ campaignId: c.id, stock: c.stock, strategy: c.strategy }, 'campaign created');
    return reply.code(201).send(campaignView(c));
  });

  r.get('/campaigns', {
    schema: {
      operationId: 'listCampaigns', tags: ['campaigns'], summary: 'List campaigns (by id, paginated)', querystring: PageQuery,
      response: { 200: ok(ref(CampaignPage), 'A page of campaigns, by id'), ...errors([]) },
    },
    preValidation: integerQuery,
  }, async (req) => {
    const page = await service.listCampaigns(pageLimit(req.query.limit), req.query.cursor ?? null);
    return { campaigns: page.items.map(campaignView), nextCursor: page.nextCursor };
  });

  r.get('/campaigns/:id', {
    schema: {
      operationId: 'getCampaign', tags: ['campaigns'], summary: 'Get a campaign with its issued and remaining counts', params: IdParams,
      response: { 200: ok(ref(CampaignView), 'The campaign'), ...errors(['CAMPAIGN_NOT_FOUND']) },
    },
  }, async (req) => campaignView(await service.getCampaign(req.params.id)));

  r.get('/campaigns/:id/audit', {
    schema: {
      operationId: 'auditCampaign', tags: ['campaigns'], summary: 'Run the invariant checks for a campaign', params: IdParams,
      response: { 200: ok(ref(AuditView), 'The checks and whether all passed'), ...errors(['CAMPAIGN_NOT_FOUND']) },
    },
  }, async (req) => service.audit(req.params.id));
};
