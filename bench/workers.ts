// What the multi-process benchmarks (bench:claims, bench:memory) share: the database of a
// backend, waiting for a worker's message, and the service each worker opens on that database.
import type { fork } from 'node:child_process';
import { AllotService } from '../src/service/service.ts';
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

/** The database of `backend`: DATABASE_URL_PG / DATABASE_URL_MYSQL, else a loopback server this
 * bench starts (added to `servers`, which the bench destroys at its end). */
export async function backendUrl(backend: string, servers: TestServer[]): Promise<string> {
  if (backend === 'postgres') return process.env.DATABASE_URL_PG ?? servers[servers.push(await startPostgres()) - 1]!.url;
  if (backend === 'mysql') return process.env.DATABASE_URL_MYSQL ?? servers[servers.push(await startMariadb()) - 1]!.url;
  throw new Error(`unknown backend ${backend} (postgres, mysql)`);
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
