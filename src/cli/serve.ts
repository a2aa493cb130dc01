// `allot serve`: open the service, listen, print the banner, and on SIGTERM/SIGINT stop taking
// connections, let in-flight requests finish, then close the database.
import pino from 'pino';
import { buildApp } from '../http/app.ts';
import { resolveAdminToken } from '../service/admin-token.ts';
import { loadConfig } from '../service/config.ts';
import { AllotService } from '../service/service.ts';
import { overrides, type DbFlags } from './commands.ts';

export async function serve(o: DbFlags & { port?: string; host?: string; allowUnsafeStrategies?: boolean }, version: string): Promise<void> {
  const config = loadConfig(process.env, overrides(o));
  const logger = pino({ level: config.logLevel, base: { service: 'allot' } });
  const token = resolveAdminToken(config.adminToken, config.dataDir);
  const service = await AllotService.open({
    config,
    onPoolError: (err) => logger.warn({ err }, 'database connection dropped'),
    onPayoutError: (err, context) => logger.error({ err }, `payouts: ${context} failed; the next sweep retries it`),
  });
  const app = await buildApp({
    service,
    adminToken: token.token,
    metricsToken: config.metricsToken,
    bodyLimitBytes: config.bodyLimitBytes,
    logger,
    version,
  });
  let address: string;
  try {
    address = await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await service.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new Error(`port ${config.port} is in use; set PORT (or --port) to another one`);
    throw err;
  }
  const url = address.replace('://0.0.0.0', '://127.0.0.1');
  const lines = [
    '',
    `  allot ${version} listening on ${url}`,
    `  database   ${service.dialect}  ${service.displayUrl}`,
    `  locks      ${service.locks.kind}${service.locks.displayUrl ? `  ${service.locks.displayUrl}` : ''}`,
    `  rail       ${service.payouts.railName}${config.railUrl ? '' : '   (transfer orders are paid by a simulation; set ALLOT_RAIL_URL for a real rail)'}`,
    `  data dir   ${config.dataDir}`,
    token.generated
      ? `  admin token ${token.token}   (generated now and stored in ${token.path}; shown only this once)`
      : token.path !== null ? `  admin token stored in ${token.path}` : '  admin token from ALLOT_ADMIN_TOKEN',
    `  API docs   ${url}/docs`,
    `  try        curl -s -H "Authorization: Bearer <token>" ${url}/v1/campaigns`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      logger.error('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    try {
      await app.close();
      await service.close();
      logger.info('stopped');
      process.exitCode = 0;
    } catch (err) {
      logger.error({ err }, 'error while stopping');
      process.exitCode = 1;
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
