// The service's lock provider: Redis when LOCKS_URL / REDIS_URL is set, in-process otherwise.
// Either way fences are anchored in SQL (lock_epochs), so they outrank every fence issued
// before a Redis loss or a restart, and the store's fence guard (lock_fences) stays correct.
import { Redis } from 'ioredis';
import { Histogram, type Registry } from 'prom-client';
import type { SqlConnection } from '../adapters/sql/connect.ts';
import { maskUrl } from '../adapters/sql/connect.ts';
import { AllotError } from '../core/errors.ts';
import { createMemoryLockProvider, createRedisLockProvider, fromIoredis, type LockEventHook, type LockMetrics, type LockProvider } from '@allot/lock';
import { registerLockMetrics } from '@allot/lock/prometheus';
import type { Lease } from '@allot/lock';
import { SqlFenceAnchor } from '../adapters/sql/sql-fences.ts';
import { sqlDialect } from '../adapters/sql/dialect.ts';

export interface ServiceLocks {
  provider: LockProvider;
  metrics: LockMetrics;
  /** 'redis' or 'in-process' */
  kind: string;
  displayUrl: string | null;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_LOCK_PREFIX = 'allot:lock:';

export async function openLocks(opts: { conn: SqlConnection; url?: string | undefined; prefix?: string | undefined; registry: Registry; onEvent?: LockEventHook }): Promise<ServiceLocks> {
  const prefix = opts.prefix ?? DEFAULT_LOCK_PREFIX;
  const metrics = registerLockMetrics(opts.registry);
  const hold = new Histogram({ name: 'allot_lock_hold_seconds', help: 'How long a lock was held: from acquired to released (release included).', labelNames: ['backend'], buckets: HOLD_BUCKETS, registers: [opts.registry] });
  const anchor = new SqlFenceAnchor(opts.conn.db, sqlDialect(opts.conn.family), prefix);
  if (!opts.url) {
    // In-memory counters restart at every start: a fresh durable epoch puts this process's
    // fences above every earlier one.
    const epoch = await anchor.nextEpoch();
    const provider = createMemoryLockProvider({ fenceBase: epoch << 40n, metrics, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
    return { provider: timedHolds(provider, hold), metrics, kind: 'in-process', displayUrl: null, ping: async () => {}, close: () => provider.close() };
  }
  const redis = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 2000, enableOfflineQueue: true });
  // Without a listener a connection error would be an unhandled 'error' event; ioredis reconnects by itself.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${maskUrl(opts.url)} (LOCKS_URL/REDIS_URL): ${(err as Error).message}`);
  }
  const provider = createRedisLockProvider({ client: fromIoredis(redis), prefix, fenceAnchor: anchor, metrics, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
  return {
    provider: timedHolds(provider, hold),
    metrics,
    kind: 'redis',
    displayUrl: maskUrl(opts.url),
    ping: async () => {
      try {
        await redis.ping();
      } catch (err) {
        throw new AllotError('UNAVAILABLE', 'Redis does not answer.', { backend: 'redis' }, { cause: err });
      }
    },
    close: async () => {
      await provider.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

const HOLD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The provider, with each lease's hold time observed when it is released (the lock library
 * reports acquisitions and handovers, not holds). */
function timedHolds(p: LockProvider, hold: Histogram<'backend'>): LockProvider {
  const observe = (started: number) => hold.observe({ backend: p.backend }, (performance.now() - started) / 1000);
  const track = (lease: Lease): Lease => {
    const started = performance.now();
    const release = lease.release.bind(lease);
    let done = false;
    lease.release = async () => {
      try {
        await release();
      } finally {
        if (!done) {
          done = true;
          observe(started);
        }
      }
    };
    return lease;
  };
  return {
    get backend() {
      return p.backend;
    },
    acquire: async (key, o) => track(await p.acquire(key, o)),
    tryAcquire: async (key, o) => {
      const lease = await p.tryAcquire(key, o);
      return lease && track(lease);
    },
    using: async (key, o, fn) => {
      let started: number | null = null;
      try {
        return await p.using(key, o, (signal, lease) => {
          started = performance.now();
          return fn(signal, lease);
        });
      } finally {
        if (started !== null) observe(started);
      }
    },
    close: () => p.close(),
  };
}
