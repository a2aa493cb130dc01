// Operations endpoints: liveness, readiness, Prometheus metrics. No token, except /metrics
// when ALLOT_METRICS_TOKEN is set.
import type { FastifyPluginAsync } from 'fastify';
import { errorBody, isAllotError } from '../../core/errors.ts';
import type { AllotService } from '../../service/service.ts';
import { bearerMatches } from '../auth.ts';
import { Health, Readiness, errors, ok, ref, text } from '../schemas.ts';

export const opsRoutes: FastifyPluginAsync<{ service: AllotService; metricsToken?: string }> = async (app, { service, metricsToken }) => {
  app.get('/healthz', {
    schema: { operationId: 'getHealth', tags: ['operations'], summary: 'The process is up', security: [], response: { 200: ok(ref(Health), 'Up'), ...errors(['UNAVAILABLE', 'INTERNAL'], { v1: false }) } },
  }, async () => ({ status: 'ok' }));

  app.get('/readyz', {
    schema: {
      operationId: 'getReadiness', tags: ['operations'], summary: 'This instance can serve claims', security: [],
      description: '200 "ready" when every backend answers; 200 "degraded" (backends.locks "down") while the database answers and the lock backend does not, with LOCKS_DOWN=degrade (lock-based strategies run with the database guard only), so a load balancer keeps the instance. 503 UNAVAILABLE (with Retry-After, and error.backends naming the one down) while the database does not answer, while the lock backend does not with LOCKS_DOWN=refuse, or while this instance shuts down.',
      response: { 200: ok(ref(Readiness), 'Ready (or degraded: serving with the lock backend down)'), ...errors(['UNAVAILABLE', 'INTERNAL'], { v1: false }) },
    },
  }, async (req, reply) => {
    try {
      const r = await service.ready();
      if (r.status === 'degraded') req.log.warn({ backends: r.backends }, 'degraded: the lock backend does not answer; lock-based strategies run with the database guard only');
      return { status: r.status, backends: r.backends, dialect: service.dialect };
    } catch (err) {
      req.log.warn({ err }, 'not ready');
      reply.header('retry-after', '1');
      const e = err as { details?: { backends?: Record<string, string> } };
      const backends = e.details?.backends ?? { database: 'down' };
      return reply.code(503).send(errorBody('UNAVAILABLE', isAllotError(err) ? err.message : 'The database does not answer.', { backends }));
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
