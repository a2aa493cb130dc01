// Which methods a path answers, asked of fastify's own router, so that a wrong method on a known
// path is 405 with `Allow` (RFC 9110 §15.5.6) and only an unknown path is 404.
import type { FastifyInstance } from 'fastify';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** The methods routed for this path (no query string), in a fixed order; empty when none is. */
export function allowedMethods(app: FastifyInstance, path: string): string[] {
  return METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
}
