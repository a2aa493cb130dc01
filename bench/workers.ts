// What the multi-process benchmarks (bench:claims, bench:memory) share: the database of a
// backend, waiting for a worker's message, and the service each worker opens on that database.
import type { fork } from 'node:child_process';
import { AllotService } from '../src/service/service.ts';
import { sql } from 'kysely';
import { connectSql } from '../src/adapters/sql/connect.ts';
import { startMariadb, startPostgres, type TestServer } from '../src/lab/servers.ts';

/** Resolves with the worker's first message of `type`; rejects if the worker exits first. */
export function once<T>(child: ReturnType<typeof fork>, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: { type: string }) => {
      if (m.type === type) {
        child.off('message', on);
        resolve(m as T);
      }
    };
    child.on('message', on);
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before ${type}`)));
  });
}

export interface WorkerServiceJob {
  url: string;
  pool: number;
  /** Redis for redis-atomic (and its lock prefix) */
  locksUrl: string | null;
  lockPrefix: string;
  /** redis-atomic in `fast` mode */
  fast?: boolean;
}

/** A worker's own service on the bench's database (already migrated by the parent). */
export function openWorkerService(job: WorkerServiceJob): Promise<AllotService> {
  return AllotService.open({
    config: { databaseUrl: job.url, dbPoolSize: job.pool, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, ...(job.locksUrl ? { locksUrl: job.locksUrl, lockPrefix: job.lockPrefix } : {}) },
    migrate: false,
    payouts: { sweepIntervalMs: 0 },
    ...(job.fast ? { redisAtomic: { mode: 'fast' as const } } : {}),
  });
}

/** The servers a bench starts commit durably (fsync on; `durable` in src/lab/servers.ts), as in
 * production: the figures are durable claims. BENCH_DURABLE=0 starts them as the tests do. */
export const BENCH_DURABLE = process.env.BENCH_DURABLE !== '0';

/** The database of `backend`: DATABASE_URL_PG / DATABASE_URL_MYSQL, else a loopback server this
 * bench starts (added to `servers`, which the bench destroys at its end). */
export async function backendUrl(backend: string, servers: TestServer[]): Promise<string> {
  if (backend === 'postgres') return process.env.DATABASE_URL_PG ?? servers[servers.push(await startPostgres({ durable: BENCH_DURABLE })) - 1]!.url;
  if (backend === 'mysql') return process.env.DATABASE_URL_MYSQL ?? servers[servers.push(await startMariadb({ durable: BENCH_DURABLE })) - 1]!.url;
  throw new Error(`unknown backend ${backend} (postgres, mysql)`);
}

/** What the server at `url` does on commit, read from the server itself (for the results). */
export async function durabilityOf(url: string): Promise<string> {
  const conn = await connectSql({ url, poolSize: 1, timeoutMs: 10_000 });
  try {
    if (conn.family === 'pg') {
      const v = async (name: string) => String(((await sql.raw(`SHOW ${name}`).execute(conn.db)).rows[0] as Record<string, unknown>)[name]);
      const [fsync, sc, fpw] = [await v('fsync'), await v('synchronous_commit'), await v('full_page_writes')];
      return `PostgreSQL fsync=${fsync}, synchronous_commit=${sc}, full_page_writes=${fpw}${fsync === 'on' && sc === 'on' ? ' (durable commits)' : ' (NOT durable: a crash of the server may lose acknowledged commits)'}`;
    }
    const r = (await sql<{ f: unknown; d: unknown }>`SELECT @@innodb_flush_log_at_trx_commit AS f, @@innodb_doublewrite AS d`.execute(conn.db)).rows[0]!;
    return `MariaDB innodb_flush_log_at_trx_commit=${String(r.f)}, innodb_doublewrite=${String(r.d)}${Number(r.f) === 1 ? ' (durable commits)' : ' (NOT durable: a crash of the server may lose acknowledged commits)'}`;
  } finally {
    await conn.db.destroy();
  }
}

/** Sends each worker its job, waits until all are ready, starts them together ('go') and
 * returns their 'done' messages. */
export async function runWorkers<D>(children: Array<ReturnType<typeof fork>>, jobOf: (worker: number) => unknown): Promise<D[]> {
  const ready = children.map((c) => once(c, 'ready'));
  children.forEach((c, worker) => c.send(jobOf(worker) as never));
  await Promise.all(ready);
  const done = children.map((c) => once<D>(c, 'done'));
  for (const c of children) c.send('go');
  return Promise.all(done);
}
