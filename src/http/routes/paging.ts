// Paging: the page size (default 100; the schema bounds it to 1-1000), and the query string's
// integers, which arrive as text.
import type { FastifyRequest } from 'fastify';

export function pageLimit(limit: number | undefined): number {
  return limit ?? 100;
}

/** A preValidation hook: `limit` as a number when it is digits only, so the schema (an integer
 * from 1 to 1000, as the OpenAPI document shows it) judges it. Anything else (1e3, 0x10, 1.5,
 * a repeated parameter) stays as sent and fails the schema: no type coercion, as everywhere. */
export async function integerQuery(req: FastifyRequest): Promise<void> {
  const query = req.query as Record<string, unknown> | undefined;
  if (query && typeof query.limit === 'string' && /^[0-9]{1,15}$/.test(query.limit)) query.limit = Number(query.limit);
}
