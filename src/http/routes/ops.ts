// Operations endpoints: liveness, readiness, Prometheus metrics. No token, except /metrics
// when ALLOT_METRICS_TOKEN is set.
import type { FastifyPluginAsync } from 'fastify';
import { errorBody } from '../../core/errors.ts';
import type { AllotService } from '../../service/service.ts';
import { bearerMatches } from '../auth.ts';
import { Health, Readiness, errors, ok, ref, text } from '../schemas.ts';

export const opsRoutes: FastifyPluginAsync<{ service: AllotService; metricsToken?: string }> = async (app, { service, metricsToken }) => {
  app.get('/healthz', {
    schema: { operationId: 'getHealth', tags: ['operations'], summary: 'The process is up', security: [], response: { 200: ok(ref(Health), 'Up'), ...errors(['UNAVAILABLE', 'INTERNAL'], { v1: false }) } },
  }, async () => ({ status: 'ok' }));

  app.get('/readyz', {
    schema: {
      operationId: 'getReadiness', tags: ['operations'], summary: 'Every backend answers', security: [],
      description: '503 UNAVAILABLE (with Retry-After, and error.backends naming the one down) while the database or Redis does not answer, or while this instance shuts down.',
      response: { 200: ok(ref(Readiness), 'Ready: every backend answers'), ...errors(['UNAVAILABLE', 'INTERNAL'], { v1: false }) },
    },
  }, async (req, reply) => {
    try {
      await service.ready();
      return { status: 'ready', backends: { database: 'ok', locks: service.locks.kind === 'redis' ? 'ok' : 'in-process' }, dialect: service.dialect };
    } catch (err) {
      req.log.warn({ err }, 'not ready');
      reply.header('retry-after', '1');
      const redisDown = (err as { details?: { backend?: string } }).details?.backend === 'redis';
      return reply.code(503).send(errorBody('UNAVAILABLE', redisDown ? 'Redis (locks) does not answer.' : 'The database does not answer.', { backends: redisDown ? { locks: 'down' } : { database: 'down' } }));
    }
  });

  app.get('/metrics', {
    schema: {
      operationId: 'getMetrics', tags: ['operations'], summary: 'Prometheus metrics', security: metricsToken ? [{ bearer: [] }] : [],
      response: { 200: text('The Prometheus text exposition format (docs/operations.md lists the metrics)'), ...errors(metricsToken ? ['UNAUTHORIZED', 'UNAVAILABLE', 'INTERNAL'] : ['UNAVAILABLE', 'INTERNAL'], { v1: false }) },
    },
  }, async (req, reply) => {
    if (metricsToken !== undefined && !bearerMatches(req.headers.authorization, metricsToken)) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send(errorBody('UNAUTHORIZED'));
    }
    reply.header('content-type', service.metrics.registry.contentType);
    return service.metrics.registry.metrics();
  });
};
