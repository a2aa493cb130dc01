// The OpenAPI document of /openapi.json and /docs: @fastify/swagger builds it from the route
// schemas; this sets its header (servers, tags, security) and names the shared schemas.
import type { FastifyInstance } from 'fastify';
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { SHARED_SCHEMAS } from './schemas.ts';

const TAGS = [
  { name: 'campaigns', description: 'Create, read and list campaigns (coupons or lotteries); their invariant audit' },
  { name: 'claims', description: 'Claim a unit (a lottery: draw a prize), at most once per Idempotency-Key; list and read claims; draw proofs' },
  { name: 'administration', description: 'Add stock, pause and resume claims, reveal a lottery\'s seed' },
  { name: 'payouts', description: 'Fundings, balances, withdrawals and transfer orders over a double-entry ledger (docs/payouts.md)' },
  { name: 'operations', description: 'Liveness, readiness and Prometheus metrics: no token (but /metrics when ALLOT_METRICS_TOKEN is set)' },
];

export function openapiOptions(version: string): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'allot',
        version,
        description: 'Hands out limited things exactly once: coupons, lottery prizes, payouts. Every error is {"error":{"code","message",...}} (the codes: components.schemas.ErrorCode and docs/errors.md). See README and docs/.',
        license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
      },
      // Relative: the document describes the server that serves it, wherever it listens.
      servers: [{ url: '/', description: 'this server' }],
      tags: TAGS,
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'The admin token (ALLOT_ADMIN_TOKEN, or the one printed at first start); /metrics takes ALLOT_METRICS_TOKEN when set.' } } },
      security: [{ bearer: [] }],
    },
    // A shared schema keeps its $id as its name under components.schemas (default: def-N).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  };
}

/** Registers the shared schemas (those with an $id) for validation, serialization and the
 * document; before the routes that reference them. */
export function addSharedSchemas(app: FastifyInstance): void {
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
}
