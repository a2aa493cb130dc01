// `allot serve`: check that the port is free (before anything is created), open the service,
// start the HTTP app, listen and print the banner, with a progress line per step on stderr.
// On SIGTERM/SIGINT: stop taking connections, let in-flight requests finish, close the database.
import { createServer } from 'node:net';
import pino from 'pino';
import { resolveAdminToken } from '../service/admin-token.ts';
import { loadConfig } from '../service/config.ts';
import { AllotService, type StartStep } from '../service/service.ts';
import { overrides, type DbFlags } from './commands.ts';
import { ListenError } from './exit-codes.ts';

export async function serve(o: DbFlags & { port?: string; host?: string; allowUnsafeStrategies?: boolean }, version: string): Promise<void> {
  const config = loadConfig(process.env, overrides(o));
  const step = progressSteps((text) => process.stderr.write(text));
  // The HTTP app's modules (fastify, swagger) load while the database opens.
  const appModule = import('../http/app.ts');
  appModule.catch(() => undefined);
  // The port first: when it is taken, nothing is created (no data dir, token or database).
  const reservation = await step(`checking port ${config.port} on ${config.host}`, () => reservePort(config.port, config.host), (r) => r.note);
  const logger = pino({ level: config.logLevel, base: { service: 'allot' } });
  let service: AllotService | undefined;
  let token: ReturnType<typeof resolveAdminToken> | undefined;
  try {
    token = resolveAdminToken(config.adminToken, config.dataDir);
    service = await AllotService.open({
      config,
      step,
      // A new data dir with no template yet is initialised in place (the fastest for this
      // start); the template is built in another process once it listens.
      pgliteBuildTemplate: 'later',
      onPoolError: (err) => logger.warn({ err }, 'database connection dropped'),
      onPayoutError: (err, context) => logger.error({ err }, `payouts: ${context} failed; the next sweep retries it`),
      keyPurge: {
        onRun: (run) => {
          if (run.deleted > 0 || run.lostLease) logger.info({ deleted: run.deleted, ms: run.finishedAt - run.startedAt, lostLease: run.lostLease }, `purged ${run.deleted} idempotency key(s) past their retention`);
        },
        onError: (err) => logger.warn({ err }, 'purging expired idempotency keys failed; the next interval retries it'),
      },
    });
  } catch (err) {
    await reservation.release();
    throw err;
  }
  const opened = service;
  const adminToken = token;
  const app = await step('starting the HTTP app', async () => {
    const { buildApp } = await appModule;
    const a = await buildApp({
      service: opened,
      adminToken: adminToken.token,
      metricsToken: config.metricsToken,
      bodyLimitBytes: config.bodyLimitBytes,
      http: {
        headersTimeoutMs: config.httpHeadersTimeoutMs,
        requestTimeoutMs: config.httpRequestTimeoutMs,
        keepAliveTimeoutMs: config.httpKeepAliveTimeoutMs,
        maxConnections: config.httpMaxConnections,
        checkIntervalMs: config.httpCheckIntervalMs,
      },
      logger,
      version,
    });
    await a.ready();
    return a;
  }).catch(async (err: unknown) => {
    await reservation.release();
    await opened.close();
    throw err;
  });
  let address: string;
  try {
    await reservation.release();
    address = await step(`listening on ${config.host}:${config.port}`, () => app.listen({ port: config.port, host: config.host }));
  } catch (err) {
    await app.close().catch(() => undefined);
    await opened.close();
    // Taken between the check and now (rare): say so, and where the new token went.
    const e = listenError(err, config.port, config.host);
    if (e instanceof ListenError && adminToken.generated) e.message += ` The admin token generated now is stored in ${adminToken.path}.`;
    throw e;
  }
  const url = address.replace('://0.0.0.0', '://127.0.0.1');
  const lines = [
    '',
    `  allot ${version} listening on ${url}   (ready ${(performance.now() / 1000).toFixed(2)} s after the process started)`,
    `  database   ${opened.dialect}  ${opened.displayUrl}`,
    `  locks      ${opened.locks.kind}${opened.locks.displayUrl ? `  ${opened.locks.displayUrl}` : ''}${lockNote(opened.locks)}`,
    `  rail       ${opened.payouts.railName}${config.railUrl ? '' : '   (transfer orders are paid by a simulation; set ALLOT_RAIL_URL for a real rail)'}`,
    `  data dir   ${config.dataDir}`,
    adminToken.generated
      ? `  admin token ${adminToken.token}   (generated now and stored in ${adminToken.path}; shown only this once)`
      : adminToken.path !== null ? `  admin token stored in ${adminToken.path}` : '  admin token from ALLOT_ADMIN_TOKEN',
    `  API docs   ${url}/docs`,
    `  try        curl -s -H "Authorization: Bearer <token>" ${url}/v1/campaigns`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
  // In the background, now that it answers: what the next new data dir is made from.
  const spare = new AbortController();
  void opened.prepareNextDataDir(spare.signal).catch(() => undefined);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    spare.abort();
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      logger.error('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    try {
      await app.close();
      await opened.close();
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

/** Prints "allot: <label>… 0.42 s (note)" on stderr for each start-up step: the label when the
 * step starts, its time when it ends. */
function progressSteps(write: (text: string) => void): StartStep {
  return async (label, work, note) => {
    const started = performance.now();
    const secs = () => `${((performance.now() - started) / 1000).toFixed(2)} s`;
    write(`allot: ${label}… `);
    let value;
    try {
      value = await work();
    } catch (err) {
      write(`failed after ${secs()}\n`);
      throw err;
    }
    const n = note?.(value);
    write(`${secs()}${n ? ` (${n})` : ''}\n`);
    return value;
  };
}

/** Holds the port until release(), so that a port in use is found before anything is created;
 * port 0 (any free port) needs no check. */
async function reservePort(port: number, host: string): Promise<{ note: string; release(): Promise<void> }> {
  if (port === 0) return { note: 'any free port', release: async () => undefined };
  // A client that connects meanwhile (a health check) is hung up on, so close() is not held up.
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => resolve());
  }).catch((err: unknown) => {
    throw listenError(err, port, host);
  });
  let closed: Promise<void> | null = null;
  return {
    note: 'free',
    release: () => (closed ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

/** Why `serve` cannot listen, and what to do: ListenError (exit 5), or the error as it is. */
function listenError(err: unknown, port: number, host: string): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const other = 'choose another with --port <n> or PORT=<n> (PORT=0 takes any free one)';
  if (code === 'EADDRINUSE') return new ListenError(`port ${port} on ${host} is in use (another allot, or another program); ${other}. Nothing was created.`, { cause: err });
  if (code === 'EACCES') return new ListenError(`not allowed to listen on port ${port} on ${host} (ports below 1024 need privileges); ${other}.`, { cause: err });
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new ListenError(`cannot listen on ${host}: it is not an address of this machine; set HOST (or --host) to 127.0.0.1, 0.0.0.0 or one of its addresses.`, { cause: err });
  }
  return err;
}

/** What the banner's locks line adds: why there is no lock backend, or what happens while it is down. */
function lockNote(locks: { kind: string; missing: string | null; whenDown: string }): string {
  if (locks.missing !== null) return '   (redis-lock campaigns are refused: set LOCKS_URL for a shared lock backend)';
  if (locks.kind === 'in-process') return '';
  return locks.whenDown === 'refuse' ? '   (LOCKS_DOWN=refuse: lock-based claims answer 503 while it is down)' : '';
}
