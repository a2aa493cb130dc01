// The fastify app factory. It never listens: `allot serve` does, and tests use app.inject().
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AllotError, errorBody, type Problem } from '../core/errors.ts';
import type { AllotService } from '../service/service.ts';
import { allowedMethods } from './allowed-methods.ts';
import { bearerMatches } from './auth.ts';
import { addSharedSchemas, openapiOptions } from './openapi.ts';
import { bodyDrainLimit, capConnections, clientErrorHandler, drainBody, resolveHttpLimits, type HttpLimits } from './limits.ts';
import { adminRoutes } from './routes/admin.ts';
import { campaignRoutes } from './routes/campaigns.ts';
import { claimRoutes } from './routes/claims.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { opsRoutes } from './routes/ops.ts';
import { payoutRoutes } from './routes/payouts.ts';

export interface AppOptions {
  service: AllotService;
  adminToken: string;
  metricsToken?: string;
  bodyLimitBytes?: number;
  /** Timeouts and the connection cap of the HTTP server (src/http/limits.ts has the defaults). */
  http?: Partial<HttpLimits>;
  /** How much of an over-limit body is read and discarded before its 400 (default bodyDrainLimit()). */
  bodyDrainLimitBytes?: number;
  /** A pino logger; none means silent (tests). */
  logger?: FastifyBaseLogger;
  version?: string;
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

// Fastify's own client errors (bad JSON, empty body, too large, wrong media type) all mean
// "invalid input" in API.md: 400 VALIDATION_FAILED, nothing changed.
function clientErrorMessage(err: FastifyError, bodyLimit: number): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `the request body is too large: at most ${bodyLimit} bytes are accepted; send a smaller one`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'the request body must be JSON (Content-Type: application/json)';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the request body is empty; send a JSON object';
    default:
      return err.message.startsWith('Body') || err.code?.startsWith('FST_ERR_CTP') ? err.message : `malformed request: ${err.message}`;
  }
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const limits = resolveHttpLimits(opts.http);
  const bodyLimit = opts.bodyLimitBytes ?? 65_536;
  const drainLimit = opts.bodyDrainLimitBytes ?? bodyDrainLimit(bodyLimit);
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit,
    // Node's and fastify's defaults let a slow client hold a connection 60-90 s (docs/operations.md).
    http: { headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs },
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    clientErrorHandler: clientErrorHandler(limits),
    requestIdHeader: false,
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Unknown fields are errors, never silently dropped; types are never coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: true } },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Ids may be 128 characters; let the route schema judge longer ones (400, not 414).
    routerOptions: { maxParamLength: 1024 },
    // Errors raised before routing (a bad percent-escape, an over-long parameter) get the
    // API's error shape too.
    frameworkErrors: (err, _req, reply) => {
      (reply as unknown as FastifyReply).code(400).send(errorBody('VALIDATION_FAILED', `malformed request: ${err.message}`));
    },
    // Our own onRequest hook answers during shutdown, with the API's shape and Retry-After.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();
  capConnections(app.server, limits.maxConnections, () => app.log);

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    if (closing) {
      reply.header('retry-after', '1').header('connection', 'close');
      return reply.code(503).send(errorBody('UNAVAILABLE', 'This instance is shutting down; nothing was done. Retry (another instance will answer).', { outcome: 'nothing-issued' }));
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    opts.service.metrics.observeHttp(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime);
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof AllotError) {
      if (err.code === 'UNAVAILABLE') {
        reply.header('retry-after', '1');
        req.log.warn({ err: err.cause ?? err }, 'backend unavailable');
      }
      return reply.code(err.status).send(errorBody(err.code, err.message, err.details));
    }
    if (err.validation) {
      const problems = err.validation.map((v): Problem => {
        const path = `${err.validationContext ?? 'body'}${v.instancePath || ''}`;
        const params = v.params as { additionalProperty?: string; missingProperty?: string };
        if (v.keyword === 'additionalProperties' && params.additionalProperty !== undefined) return { path, message: `unknown field "${params.additionalProperty}"`, field: params.additionalProperty };
        if (v.keyword === 'required' && params.missingProperty !== undefined) return { path, message: v.message ?? 'is required', field: params.missingProperty };
        return { path, message: v.message ?? 'is invalid' };
      });
      const text = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
      return reply.code(400).send(errorBody('VALIDATION_FAILED', text, { problems }));
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const body = errorBody('VALIDATION_FAILED', clientErrorMessage(err, bodyLimit), err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? { limitBytes: bodyLimit } : undefined);
      if (!err.code?.startsWith('FST_ERR_CTP_') || req.raw.complete) return reply.code(400).send(body);
      // A body refused unread (too large, wrong media type): answering while the client still
      // sends it makes the client fail (EPIPE) before it reads the answer. Read the rest and
      // throw it away, up to drainLimit, then answer; fastify has set Connection: close. Past
      // drainLimit the answer goes out unread and the connection is cut.
      const declared = Number(req.headers['content-length']);
      void (declared > drainLimit ? Promise.resolve('over-cap' as const) : drainBody(req.raw, drainLimit)).then((result) => {
        if (result !== 'closed' && !reply.sent) reply.code(400).send(body);
      });
      return;
    }
    req.log.error({ err }, 'unhandled error');
    return reply.code(500).send(errorBody('INTERNAL', undefined, { requestId: req.id }));
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '/';
    const allow = allowedMethods(app, path);
    if (allow.length === 0) return reply.code(404).send(errorBody('NOT_FOUND', `no route ${req.method} ${path}`));
    // A known path: 405, but /v1 asks for the token first, as its routes do.
    if ((path === '/v1' || path.startsWith('/v1/')) && !bearerMatches(req.headers.authorization, opts.adminToken)) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send(errorBody('UNAUTHORIZED'));
    }
    reply.header('allow', allow.join(', '));
    return reply.code(405).send(errorBody('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}; use ${allow.join(', ')}`, { allow }));
  });

  await app.register(swagger, openapiOptions(opts.version ?? '0.0.0'));
  addSharedSchemas(app);
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(opsRoutes, { service: opts.service, metricsToken: opts.metricsToken });
  await app.register(dashboardRoutes, { service: opts.service, adminToken: opts.adminToken });
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', async (req, reply) => {
        if (!bearerMatches(req.headers.authorization, opts.adminToken)) {
          reply.header('www-authenticate', 'Bearer');
          return reply.code(401).send(errorBody('UNAUTHORIZED'));
        }
      });
      await v1.register(campaignRoutes, { service: opts.service });
      await v1.register(claimRoutes, { service: opts.service });
      await v1.register(adminRoutes, { service: opts.service });
      await v1.register(payoutRoutes, { service: opts.service });
    },
    { prefix: '/v1' },
  );
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
