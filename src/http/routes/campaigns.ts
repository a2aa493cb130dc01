// /v1/campaigns: create, get, list, audit.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { campaignView } from '../../core/campaign.ts';
import type { AllotService } from '../../service/service.ts';
import { AuditView, CampaignView, CreateCampaignBody, IdParams, PageQuery, errorResponses } from '../schemas.ts';
import { pageLimit } from './paging.ts';

export const campaignRoutes: FastifyPluginAsync<{ service: AllotService }> = async (app, { service }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/campaigns', {
    schema: { tags: ['campaigns'], summary: 'Create a campaign', body: CreateCampaignBody, response: { 201: CampaignView, ...errorResponses } },
  }, async (req, reply) => {
    const c = await service.createCampaign({ ...req.body, kind: req.body.kind ?? 'coupon' });
    req.log.info({ campaignId: c.id, stock: c.stock, strategy: c.strategy }, 'campaign created');
    return reply.code(201).send(campaignView(c));
  });

  r.get('/campaigns', {
    schema: {
      tags: ['campaigns'], summary: 'List campaigns (by id, paginated)', querystring: PageQuery,
      response: { 200: Type.Object({ campaigns: Type.Array(CampaignView), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errorResponses },
    },
  }, async (req) => {
    const page = await service.listCampaigns(pageLimit(req.query.limit), req.query.cursor ?? null);
    return { campaigns: page.items.map(campaignView), nextCursor: page.nextCursor };
  });

  r.get('/campaigns/:id', {
    schema: { tags: ['campaigns'], summary: 'Get a campaign with its issued and remaining counts', params: IdParams, response: { 200: CampaignView, ...errorResponses } },
  }, async (req) => campaignView(await service.getCampaign(req.params.id)));

  r.get('/campaigns/:id/audit', {
    schema: { tags: ['campaigns'], summary: 'Run the invariant checks for a campaign', params: IdParams, response: { 200: AuditView, ...errorResponses } },
  }, async (req) => service.audit(req.params.id));
};
