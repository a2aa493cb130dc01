// The live dashboard: GET /dashboard is one self-contained page (no external scripts, styles or
// fonts) that asks for the admin token and then polls GET /dashboard/snapshot, which requires
// it, every second. The page holds no data itself, so it needs no token to load.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import { errorBody } from '../../core/errors.ts';
import type { AllotService } from '../../service/service.ts';
import { bearerMatches } from '../auth.ts';

const PAGE = readFileSync(new URL('./dashboard.html', import.meta.url), 'utf8');

/** Only the page's own inline script and style run (by hash), and it talks to this origin only. */
function contentSecurityPolicy(html: string): string {
  const hashes = (tag: string) =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => `'sha256-${createHash('sha256').update(m[1] ?? '', 'utf8').digest('base64')}'`).join(' ');
  return [
    "default-src 'none'",
    `script-src ${hashes('script')}`,
    `style-src ${hashes('style')}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const CSP = contentSecurityPolicy(PAGE);

export const dashboardRoutes: FastifyPluginAsync<{ service: AllotService; adminToken: string }> = async (app, { service, adminToken }) => {
  app.get('/dashboard', { schema: { hide: true } }, async (_req, reply) => {
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store');
    return PAGE;
  });

  app.get('/dashboard/snapshot', { schema: { hide: true } }, async (req, reply) => {
    if (!bearerMatches(req.headers.authorization, adminToken)) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send(errorBody('UNAUTHORIZED'));
    }
    reply.header('cache-control', 'no-store');
    return service.metrics.snapshot();
  });
};
